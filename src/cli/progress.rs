//! Progress display for `convert` on a terminal: one bar per archive being
//! read (bytes of the file), with result lines printed above the bars.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::convert::{ArchiveOutcome, Observer};
use crate::source::ByteCounter;

/// Prints each archive's outcome, with live bars when `bars` is true.
pub struct ConvertProgress {
    multi: MultiProgress,
    bars: Option<Mutex<Vec<(String, ProgressBar, ByteCounter)>>>,
    print_lines: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl ConvertProgress {
    pub fn new(bars: bool, print_lines: bool) -> Arc<Self> {
        let multi = MultiProgress::with_draw_target(if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        });
        let progress = Arc::new(ConvertProgress {
            multi,
            bars: bars.then(|| Mutex::new(Vec::new())),
            print_lines,
            stop: Arc::default(),
        });
        if bars {
            // Counters are plain atomics updated by the readers; a ticker moves the bars.
            let weak = Arc::downgrade(&progress);
            std::thread::spawn(move || {
                while let Some(p) = weak.upgrade() {
                    if p.stop.load(Ordering::Relaxed) {
                        break;
                    }
                    p.tick();
                    drop(p);
                    std::thread::sleep(Duration::from_millis(100));
                }
            });
        }
        progress
    }

    fn tick(&self) {
        if let Some(bars) = &self.bars {
            for (_, bar, counter) in bars.lock().expect("progress lock").iter() {
                bar.set_position(counter.load(Ordering::Relaxed));
            }
        }
    }

    /// Prints a line above the bars (or plainly when there are none).
    pub fn println(&self, line: &str) {
        if self.bars.is_some() {
            let _ = self.multi.println(line);
        } else {
            println!("{line}");
        }
    }

    pub fn finish(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.multi.clear();
    }
}

impl Observer for ConvertProgress {
    fn archive_started(&self, name: &str, file_bytes: u64, progress: ByteCounter) {
        if let Some(bars) = &self.bars {
            let bar = self.multi.add(ProgressBar::new(file_bytes));
            bar.set_style(
                ProgressStyle::with_template(
                    "{bar:30.cyan/blue} {bytes:>10}/{total_bytes:<10} {bytes_per_sec:>12} {wide_msg}",
                )
                .expect("valid template")
                .progress_chars("=> "),
            );
            bar.set_message(name.to_string());
            bars.lock()
                .expect("progress lock")
                .push((name.to_string(), bar, progress));
        }
    }

    fn archive_finished(&self, outcome: &ArchiveOutcome) {
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().expect("progress lock");
            if let Some(i) = bars.iter().position(|(p, _, _)| *p == outcome.path) {
                let (_, bar, _) = bars.remove(i);
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        if let Some(line) = super::convert::outcome_line(outcome)
            && self.print_lines
        {
            self.println(&line);
        }
    }
}
