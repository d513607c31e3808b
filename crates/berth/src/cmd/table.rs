//! docker's plain tables: a header line, no borders, columns three spaces apart.

/// Lays `rows` out under `header` the way `docker ps`, `images` and `stats` do.
pub fn plain<R: Into<comfy_table::Row>>(
    header: &[&str],
    rows: impl IntoIterator<Item = R>,
) -> String {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::NOTHING);
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    for column in table.column_iter_mut() {
        column.set_padding((0, 3));
    }
    table.trim_fmt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_three_spaces_apart_and_lines_carry_no_trailing_blanks() {
        let text = plain(&["ID", "NAME"], [vec!["a", "web"], vec!["bbbb", "db"]]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines, ["ID     NAME", "a      web", "bbbb   db"], "{text}");
    }
}
