//! Progress bars for long image work: one bar per blob, as `docker pull` draws them.

use std::collections::HashMap;
use std::sync::Mutex;

use berth_image::Progress;
use berth_types::Digest;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Draws one bar per blob on stderr; draws nothing when disabled (not a terminal, `--quiet`).
#[derive(Debug)]
pub struct LayerBars {
    multi: MultiProgress,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
}

impl LayerBars {
    pub fn new(enabled: bool) -> Self {
        let target = if enabled {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self {
            multi: MultiProgress::with_draw_target(target),
            bars: Mutex::new(HashMap::new()),
        }
    }

    /// Removes the bars from the screen.
    pub fn clear(&self) {
        let _ = self.multi.clear();
    }

    fn bar(&self, blob: &Digest) -> ProgressBar {
        let mut bars = self.bars.lock().unwrap_or_else(|e| e.into_inner());
        bars.entry(blob.clone())
            .or_insert_with(|| {
                let bar = self.multi.add(ProgressBar::no_length());
                bar.set_style(style());
                bar.set_prefix(blob.short().to_owned());
                bar
            })
            .clone()
    }
}

fn style() -> ProgressStyle {
    ProgressStyle::with_template(
        "{prefix}: {msg:<12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar())
    .progress_chars("=> ")
}

impl Progress for LayerBars {
    fn started(&self, blob: &Digest, action: &str, total: Option<u64>) {
        let bar = self.bar(blob);
        bar.set_position(0);
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_message(action.to_owned());
    }

    fn advanced(&self, blob: &Digest, bytes: u64) {
        self.bar(blob).inc(bytes);
    }

    fn finished(&self, blob: &Digest, outcome: &str) {
        let bar = self.bar(blob);
        bar.set_message(outcome.to_owned());
        bar.finish();
    }
}
