//! docker's ways of showing ids, commands and sizes in tables.

/// The first 12 characters of an id, as `docker ps` shows them.
pub fn short_id(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}

/// `s` cut to `max` characters, the last one an ellipsis when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let mut cut: String = s.chars().take(max.saturating_sub(1)).collect();
    cut.push('…');
    cut
}

/// `value` with `digits` significant digits and no trailing zeros (C's `%.Ng` for the
/// magnitudes sizes have).
fn significant(value: f64, digits: i32) -> String {
    let whole_digits = if value < 1.0 {
        1
    } else {
        value.log10().floor() as i32 + 1
    };
    let decimals = (digits - whole_digits).max(0) as usize;
    let text = format!("{value:.decimals$}");
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        text
    }
}

fn scaled(bytes: u64, base: f64, units: &[&str], digits: i32) -> String {
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= base && unit + 1 < units.len() {
        value /= base;
        unit += 1;
    }
    format!("{}{}", significant(value, digits), units[unit])
}

/// Binary units with 4 significant digits, as docker shows memory: `1.465MiB`.
pub fn binary_size(bytes: u64) -> String {
    scaled(bytes, 1024.0, &["B", "KiB", "MiB", "GiB", "TiB", "PiB"], 4)
}

/// Decimal units with 3 significant digits, as docker shows block I/O: `4.1MB`.
pub fn decimal_size(bytes: u64) -> String {
    scaled(bytes, 1000.0, &["B", "kB", "MB", "GB", "TB", "PB"], 3)
}

/// A percentage with two decimals: `12.34%`.
pub fn percent(value: f64) -> String {
    format!("{value:.2}%")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_commands_are_cut_like_docker() {
        assert_eq!(short_id("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_id("abc"), "abc");
        assert_eq!(ellipsis("sleep 1000", 20), "sleep 1000");
        assert_eq!(
            ellipsis("sh -c 'while true; do :; done'", 20),
            "sh -c 'while true; …"
        );
    }

    #[test]
    fn sizes_read_like_dockers() {
        assert_eq!(binary_size(0), "0B");
        assert_eq!(binary_size(1536 * 1024), "1.5MiB");
        assert_eq!(binary_size(1_536_000), "1.465MiB");
        assert_eq!(binary_size(32 << 20), "32MiB");
        assert_eq!(binary_size(24 << 30), "24GiB");
        assert_eq!(decimal_size(0), "0B");
        assert_eq!(decimal_size(4_100_000), "4.1MB");
        assert_eq!(decimal_size(123_456), "123kB");
        assert_eq!(percent(0.5), "0.50%");
    }
}
