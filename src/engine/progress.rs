//! How far a running statement has got, read from its physical plan's
//! metrics while it runs: what a shell shows for a long query.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::MetricValue;

/// Holds the physical plan of the statement [`super::Engine::execute_watched`]
/// runs, as soon as it is planned.
#[derive(Clone, Default)]
pub struct PlanWatch(Arc<Mutex<Option<Arc<dyn ExecutionPlan>>>>);

/// What the scans of a running plan have done so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ScanProgress {
    /// Files the plan will read, and those opened so far.
    pub files: usize,
    pub files_opened: usize,
    /// Rows the scans have produced.
    pub rows: usize,
    /// Bytes read from the files.
    pub bytes: usize,
}

impl PlanWatch {
    pub(super) fn set(&self, plan: Arc<dyn ExecutionPlan>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(plan);
    }

    /// The scans' progress, once the statement is planned.
    pub fn progress(&self) -> Option<ScanProgress> {
        let plan = self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()?;
        let mut progress = ScanProgress {
            files: super::scanned_files(&plan).len(),
            ..ScanProgress::default()
        };
        let mut opened = HashSet::new();
        leaves(&plan, &mut |leaf| {
            let Some(metrics) = leaf.metrics() else {
                return;
            };
            progress.rows += metrics.output_rows().unwrap_or(0);
            for metric in metrics.iter() {
                if let MetricValue::Count { name, count } = metric.value()
                    && name == "bytes_scanned"
                {
                    progress.bytes += count.value();
                    // Each file opened registers its own counters, labelled
                    // with its name.
                    if let Some(file) = metric.labels().iter().find(|l| l.name() == "filename") {
                        opened.insert(file.value().to_string());
                    }
                }
            }
        });
        progress.files_opened = opened.len();
        Some(progress)
    }
}

/// Calls `f` on every node without children: the scans.
fn leaves(plan: &Arc<dyn ExecutionPlan>, f: &mut dyn FnMut(&Arc<dyn ExecutionPlan>)) {
    let children = plan.children();
    if children.is_empty() {
        f(plan);
    }
    for child in children {
        leaves(child, f);
    }
}
