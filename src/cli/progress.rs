//! What `convert` prints while it runs: one bar per archive being read
//! (bytes of the file) on a terminal, each archive's result line above the
//! bars, and the total line. The conversion reports through its
//! [`Observer`]; nothing here reaches back into the command.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::convert::{ArchiveOutcome, ArchiveStatus, Observer, RunSummary};
use crate::source::ByteCounter;

/// Prints each archive's outcome, with live bars when `bars` is true.
pub struct ConvertProgress {
    multi: MultiProgress,
    /// The bars of the archives being read, by their ordinal in the run.
    bars: Option<Mutex<Vec<(u64, ProgressBar, ByteCounter)>>>,
    print_lines: bool,
    stop: Arc<std::sync::atomic::AtomicBool>,
}

impl ConvertProgress {
    pub fn new(bars: bool, print_lines: bool) -> Arc<Self> {
        let target = if bars {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        Self::drawing_to(target, bars, print_lines)
    }

    fn drawing_to(target: ProgressDrawTarget, bars: bool, print_lines: bool) -> Arc<Self> {
        let multi = MultiProgress::with_draw_target(target);
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
    fn archive_started(&self, ordinal: u64, name: &str, file_bytes: u64, progress: ByteCounter) {
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
                .push((ordinal, bar, progress));
        }
    }

    fn archive_finished(&self, ordinal: u64, outcome: &ArchiveOutcome) {
        if let Some(bars) = &self.bars {
            let mut bars = bars.lock().expect("progress lock");
            if let Some(i) = bars.iter().position(|(o, _, _)| *o == ordinal) {
                let (_, bar, _) = bars.remove(i);
                bar.finish_and_clear();
                self.multi.remove(&bar);
            }
        }
        if let Some(line) = outcome_line(outcome)
            && self.print_lines
        {
            self.println(&line);
        }
    }
}

/// The line printed for one archive on stdout (failures are printed to
/// stderr instead, so this returns None for them).
pub fn outcome_line(o: &ArchiveOutcome) -> Option<String> {
    let months = if o.months.is_empty() {
        "-".to_string()
    } else {
        o.months.join(",")
    };
    match o.status {
        ArchiveStatus::Converted => Some(format!(
            "converted  {}  {} entries  months {}  {} rows written ({} new)  {:.2}s",
            o.name, o.entries, months, o.rows_written, o.new_rows, o.seconds
        )),
        ArchiveStatus::Unchanged => Some(format!(
            "unchanged  {}  {} entries  months {}  already converted (use --force to convert again)",
            o.name, o.entries, months
        )),
        ArchiveStatus::Failed => None,
    }
}

/// Prints each failed archive of a run on stderr, one line each.
pub fn failure_lines(summary: &RunSummary) {
    for outcome in &summary.archives {
        if let Some(error) = &outcome.error {
            eprintln!(
                "auditlake: error: {}: {}",
                outcome.path,
                crate::report::one_line(error)
            );
        }
    }
}

pub fn total_line(s: &RunSummary) -> String {
    format!(
        "total: {} archive{} ({} converted, {} unchanged, {} failed), {} entries, {} rows written ({} new), {:.2}s",
        s.archives.len(),
        if s.archives.len() == 1 { "" } else { "s" },
        s.converted,
        s.unchanged,
        s.failed,
        s.entries,
        s.rows_written,
        s.new_rows,
        s.seconds
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    impl ConvertProgress {
        fn open_bars(&self) -> Vec<u64> {
            let bars = self.bars.as_ref().expect("bars");
            bars.lock().unwrap().iter().map(|(o, _, _)| *o).collect()
        }
    }

    fn outcome(path: &str, status: ArchiveStatus) -> ArchiveOutcome {
        let mut o = ArchiveOutcome::new(path, status);
        o.entries = 4;
        o.months = vec!["2024-01".into(), "2024-02".into()];
        o
    }

    /// A bar is started under the archive's file name and removed when the
    /// archive of the same ordinal finishes, whatever path it is reported
    /// under; two archives of one name keep their own bars.
    #[test]
    fn bars_end_with_their_archive() {
        let progress = ConvertProgress::drawing_to(ProgressDrawTarget::hidden(), true, false);
        let observer: &dyn Observer = progress.as_ref();
        observer.archive_started(0, "a.json.gz", 10, ByteCounter::default());
        observer.archive_started(1, "a.json.gz", 20, ByteCounter::default());
        observer.archive_started(2, "b.json", 30, ByteCounter::default());
        assert_eq!(progress.open_bars(), [0, 1, 2]);
        observer.archive_finished(1, &outcome("/in/2/a.json.gz", ArchiveStatus::Converted));
        assert_eq!(progress.open_bars(), [0, 2]);
        observer.archive_finished(2, &outcome("s3://b/in/b.json", ArchiveStatus::Failed));
        observer.archive_finished(0, &outcome("/in/1/a.json.gz", ArchiveStatus::Unchanged));
        assert!(progress.open_bars().is_empty());
        progress.finish();
    }

    #[test]
    fn outcome_lines_say_what_happened_and_failures_go_elsewhere() {
        let mut converted = outcome("/in/a.json.gz", ArchiveStatus::Converted);
        converted.rows_written = 9;
        converted.new_rows = 3;
        converted.seconds = 0.5;
        assert_eq!(
            outcome_line(&converted).unwrap(),
            "converted  a.json.gz  4 entries  months 2024-01,2024-02  9 rows written (3 new)  0.50s"
        );
        let mut unchanged = outcome("/in/a.json.gz", ArchiveStatus::Unchanged);
        unchanged.months.clear();
        assert_eq!(
            outcome_line(&unchanged).unwrap(),
            "unchanged  a.json.gz  4 entries  months -  already converted (use --force to convert again)"
        );
        assert_eq!(outcome_line(&outcome("x", ArchiveStatus::Failed)), None);
    }
}
