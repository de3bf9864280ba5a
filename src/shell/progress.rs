//! The progress line of a long statement: after [`SHOW_AFTER`], one line on
//! stderr says how many files and rows the scans have read and how long it
//! has run, and is cleared before the result prints. Only on a terminal
//! (indicatif draws nothing elsewhere).

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::Result;
use datafusion::execution::{RecordBatchStream, SendableRecordBatchStream};
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::engine::progress::{PlanWatch, ScanProgress};

/// A statement that answers sooner shows no progress line.
pub(crate) const SHOW_AFTER: Duration = Duration::from_secs(2);

/// The progress line of one statement; cleared when dropped.
pub(crate) struct Progress {
    bar: ProgressBar,
    ticker: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    /// Starts watching the statement whose plan `watch` will hold.
    pub fn start(watch: PlanWatch) -> Progress {
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        if let Ok(style) = ProgressStyle::with_template("{spinner} {msg}") {
            bar.set_style(style);
        }
        let shown = bar.clone();
        let started = Instant::now();
        let ticker = tokio::spawn(async move {
            tokio::time::sleep(SHOW_AFTER).await;
            loop {
                shown.set_message(describe(watch.progress(), started.elapsed()));
                shown.tick();
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        });
        Progress {
            bar,
            ticker: Some(ticker),
        }
    }

    /// Stops and clears the line.
    pub fn finish(&mut self) {
        if let Some(ticker) = self.ticker.take() {
            ticker.abort();
            self.bar.finish_and_clear();
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The progress line's text: `3 of 12 files · 1,204,000 rows · 48.2 MB ·
/// 4.1 s (Ctrl-C cancels)`.
pub(crate) fn describe(progress: Option<ScanProgress>, elapsed: Duration) -> String {
    let mut parts = Vec::new();
    if let Some(p) = progress {
        if p.files > 0 {
            parts.push(format!(
                "{} of {} files",
                p.files_opened.min(p.files),
                p.files
            ));
        }
        parts.push(format!("{} rows", thousands(p.rows as u64)));
        if p.bytes > 0 {
            parts.push(format!("{:.1} MB", p.bytes as f64 / 1e6));
        }
    }
    parts.push(format!("{:.1} s (Ctrl-C cancels)", elapsed.as_secs_f64()));
    parts.join(" · ")
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A result stream that clears the progress line when printing starts: at
/// the first batch for formats printed as the rows come, at the end for
/// those that need every row first.
pub(crate) struct ClearOnOutput {
    inner: SendableRecordBatchStream,
    progress: Option<Progress>,
    at_first_batch: bool,
}

impl ClearOnOutput {
    pub fn wrap(
        inner: SendableRecordBatchStream,
        progress: Progress,
        at_first_batch: bool,
    ) -> SendableRecordBatchStream {
        Box::pin(ClearOnOutput {
            inner,
            progress: Some(progress),
            at_first_batch,
        })
    }
}

impl Stream for ClearOnOutput {
    type Item = Result<RecordBatch>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let polled = self.inner.poll_next_unpin(cx);
        let done = match &polled {
            Poll::Ready(None) | Poll::Ready(Some(Err(_))) => true,
            Poll::Ready(Some(Ok(_))) => self.at_first_batch,
            Poll::Pending => false,
        };
        if done {
            self.progress = None;
        }
        polled
    }
}

impl RecordBatchStream for ClearOnOutput {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_says_files_rows_bytes_and_time() {
        let progress = ScanProgress {
            files: 12,
            files_opened: 3,
            rows: 1_204_000,
            bytes: 48_210_000,
        };
        assert_eq!(
            describe(Some(progress), Duration::from_millis(4_120)),
            "3 of 12 files · 1,204,000 rows · 48.2 MB · 4.1 s (Ctrl-C cancels)"
        );
        assert_eq!(
            describe(None, Duration::from_millis(2_500)),
            "2.5 s (Ctrl-C cancels)"
        );
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }
}
