//! When each partition merges, and when each archive is recorded.
//!
//! Archives are staged in input order (several at once). A partition (one
//! owner's month of one table) merges as soon as no archive still to come is
//! likely to add to it, so merging overlaps the staging of later archives
//! instead of waiting for the whole run: monthly archives come in month
//! order and each carries a few events of the month before, so month M is
//! merged once an archive whose months all lie after M has been staged. If a
//! later archive adds to a partition after all, the partition merges again
//! (correct, only slower): merges of one partition run one after the other,
//! in input order, so the newest conversion still wins.
//!
//! An archive is recorded in the manifest once every partition it had rows
//! for has merged, and only after every archive before it (input order), so
//! an interrupted run leaves a prefix of the archives recorded.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;

use std::panic::AssertUnwindSafe;

use anyhow::Context;
use datafusion::prelude::SessionContext;
use futures::FutureExt;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;

use super::journal::RunLog;
use super::merge::{self, MergeStats};
use super::stage::StagedPart;
use super::{ArchiveOutcome, ArchiveStatus, LARGE_MERGE_ROWS, Observer, StagedArchive, failed};
use crate::lake::integrity::{self, SourceArchive};
use crate::lake::manifest::ArchiveRecord;
use crate::lake::{Lake, PartitionKey};

/// A partition of one table.
type Partition = (String, PartitionKey);

/// Staged rows not yet merged above which every open partition merges,
/// whatever comes next: about 1.2 GB of staging files (Arrow IPC, ~300 bytes
/// a row) and 32 MB of key hashes.
pub const OPEN_ROWS: u64 = 4_000_000;

/// What the recorder hears, in the order it happened.
enum Message {
    /// The next archive of the run (input order).
    Archive(u64, Slot),
    /// A merge finished.
    Merged(Merged),
}

/// One merge's outcome.
struct Merged {
    partition: Partition,
    /// Ordinals of the archives whose parts it merged.
    archives: Vec<u64>,
    result: Result<MergeStats, String>,
}

/// An archive in the run, in input order, until it is recorded.
enum Slot {
    /// Nothing to merge (unchanged, a repeat, or failed to stage).
    Done(ArchiveOutcome),
    Staged {
        archive: Arc<StagedArchive>,
        /// Partitions it had rows for whose merge has not reported yet.
        waiting: usize,
        merged: Vec<(PartitionKey, Result<MergeStats, String>)>,
    },
}

/// Starts merges as archives arrive; see the module documentation.
pub struct Scheduler {
    lake: Lake,
    ctx: SessionContext,
    permits: Arc<Semaphore>,
    jobs: usize,
    /// Staged parts of each partition not yet handed to a merge.
    open: BTreeMap<Partition, Vec<(Arc<StagedArchive>, usize)>>,
    open_rows: u64,
    /// The last merge started for each partition: the next one waits for it.
    running: HashMap<Partition, JoinHandle<()>>,
    sender: mpsc::UnboundedSender<Message>,
    run_log: Arc<RunLog>,
    /// Records archives as their merges report; returns every outcome (input
    /// order) and the rows of the partition files written.
    recorder: JoinHandle<(Vec<ArchiveOutcome>, u64)>,
}

impl Scheduler {
    pub fn new(
        lake: &Lake,
        ctx: &SessionContext,
        permits: Arc<Semaphore>,
        jobs: usize,
        observer: Arc<dyn Observer>,
        run_log: Arc<RunLog>,
    ) -> Self {
        let (sender, receiver) = mpsc::unbounded_channel();
        Scheduler {
            lake: lake.clone(),
            ctx: ctx.clone(),
            permits,
            jobs,
            open: BTreeMap::new(),
            open_rows: 0,
            running: HashMap::new(),
            sender,
            recorder: tokio::spawn(record_in_order(
                lake.clone(),
                receiver,
                observer,
                run_log.clone(),
            )),
            run_log,
        }
    }

    /// Takes the next archive of the run (input order) that has nothing to
    /// merge.
    pub fn add_done(&mut self, ordinal: u64, outcome: ArchiveOutcome) {
        self.send(Message::Archive(ordinal, Slot::Done(outcome)));
    }

    fn send(&self, message: Message) {
        // The recorder only stops once every sender is gone.
        let _ = self.sender.send(message);
    }

    /// Takes the next staged archive of the run (input order) and starts the
    /// merges of the partitions it shows to be complete.
    pub fn add_staged(&mut self, archive: StagedArchive) {
        let archive = Arc::new(archive);
        // The first month this archive has rows for: earlier months of its
        // table are taken to be complete.
        let first_month = archive
            .parts
            .iter()
            .map(|(key, _)| (key.year, key.month))
            .min();
        for (p, (key, part)) in archive.parts.iter().enumerate() {
            self.open_rows += part.rows;
            self.open
                .entry((archive.spec.name.clone(), key.clone()))
                .or_default()
                .push((archive.clone(), p));
        }
        self.send(Message::Archive(
            archive.ordinal,
            Slot::Staged {
                waiting: archive.parts.len(),
                merged: Vec::new(),
                archive: archive.clone(),
            },
        ));
        let complete = complete_partitions(
            self.open.keys(),
            &archive.spec.name,
            first_month,
            self.open_rows,
        );
        for partition in complete {
            self.start_merge(partition);
        }
    }

    /// Starts the merge of one partition's open parts.
    fn start_merge(&mut self, partition: Partition) {
        let Some(parts) = self.open.remove(&partition) else {
            return;
        };
        self.open_rows -= parts.iter().map(|(a, p)| a.parts[*p].1.rows).sum::<u64>();
        let previous = self.running.remove(&partition);
        let lake = self.lake.clone();
        let ctx = self.ctx.clone();
        let permits = self.permits.clone();
        let jobs = self.jobs;
        let sender = self.sender.clone();
        let run_log = self.run_log.clone();
        let task_partition = partition.clone();
        let handle = tokio::spawn(async move {
            if let Some(previous) = previous {
                // Its result went to the recorder.
                let _ = previous.await;
            }
            let merge = merge_partition(
                &lake,
                &ctx,
                &task_partition.1,
                &parts,
                &permits,
                jobs,
                &run_log,
            );
            // A panic must still report, or its archives would wait forever.
            let result = match AssertUnwindSafe(merge).catch_unwind().await {
                Ok(result) => result.map_err(|e| format!("{e:#}")),
                Err(_) => Err("the merge panicked (a bug: please report it)".to_string()),
            };
            tracing::debug!(key = ?task_partition.1, parts = parts.len(), ?result, "merged partition");
            let mut archives: Vec<u64> = parts.iter().map(|(a, _)| a.ordinal).collect();
            archives.dedup();
            let _ = sender.send(Message::Merged(Merged {
                partition: task_partition,
                archives,
                result,
            }));
        });
        self.running.insert(partition, handle);
    }

    /// Merges every open partition, waits for all merges, and returns every
    /// archive's outcome (input order) and the rows of the partition files
    /// written (each file counted once).
    pub async fn finish(mut self) -> anyhow::Result<(Vec<ArchiveOutcome>, u64)> {
        let partitions: Vec<Partition> = self.open.keys().cloned().collect();
        for partition in partitions {
            self.start_merge(partition);
        }
        drop(self.sender);
        for (_, handle) in self.running.drain() {
            handle.await.context("a merge task failed")?;
        }
        self.recorder.await.context("recording the archives failed")
    }
}

/// The open partitions that the arrival of an archive of `table`, whose
/// first month is `first_month`, shows to be complete: the months of its
/// table before that one (archives come in time order, so later ones are
/// unlikely to add to them), or every open partition once the staged rows
/// not yet merged reach [`OPEN_ROWS`].
fn complete_partitions<'a>(
    open: impl Iterator<Item = &'a Partition>,
    table: &str,
    first_month: Option<(i32, u32)>,
    open_rows: u64,
) -> Vec<Partition> {
    match first_month {
        _ if open_rows >= OPEN_ROWS => open.cloned().collect(),
        Some(first) => open
            .filter(|(t, key)| t == table && (key.year, key.month) < first)
            .cloned()
            .collect(),
        None => Vec::new(),
    }
}

/// Records the archives in input order as their merges report, telling the
/// observer of each.
async fn record_in_order(
    lake: Lake,
    mut messages: mpsc::UnboundedReceiver<Message>,
    observer: Arc<dyn Observer>,
    run_log: Arc<RunLog>,
) -> (Vec<ArchiveOutcome>, u64) {
    let mut slots: VecDeque<(u64, Slot)> = VecDeque::new();
    let mut rows_after: HashMap<Partition, u64> = HashMap::new();
    let mut outcomes = Vec::new();
    while let Some(message) = messages.recv().await {
        match message {
            Message::Archive(ordinal, slot) => slots.push_back((ordinal, slot)),
            Message::Merged(merged) => {
                if let Ok(stats) = &merged.result {
                    rows_after.insert(merged.partition.clone(), stats.rows_after);
                }
                for (ordinal, slot) in &mut slots {
                    if let Slot::Staged {
                        waiting, merged: m, ..
                    } = slot
                        && merged.archives.contains(ordinal)
                    {
                        *waiting -= 1;
                        m.push((merged.partition.1.clone(), merged.result.clone()));
                    }
                }
            }
        }
        // Record the oldest archives whose merges have all reported.
        while let Some((_, slot)) = slots.front() {
            if matches!(slot, Slot::Staged { waiting, .. } if *waiting > 0) {
                break;
            }
            let (ordinal, slot) = slots.pop_front().expect("checked above");
            let mut outcome = match slot {
                Slot::Done(outcome) => outcome,
                Slot::Staged {
                    archive, merged, ..
                } => match merged.iter().find_map(|(_, r)| r.as_ref().err()) {
                    Some(error) => failed(&archive.path, error.clone()),
                    None => record(&lake, &archive, &merged)
                        .await
                        .unwrap_or_else(|(path, e)| failed(&path, format!("{e:#}"))),
                },
            };
            if matches!(
                outcome.status,
                ArchiveStatus::Converted | ArchiveStatus::Unchanged
            ) && let Err(e) = run_log.recorded(ordinal).await
            {
                outcome = failed(&outcome.path, format!("{e:#}"));
            }
            observer.archive_finished(ordinal, &outcome);
            outcomes.push(outcome);
        }
    }
    (outcomes, rows_after.values().sum())
}

/// Merges one partition's staged parts (input order) into its file, holding
/// one of the run's permits, or all of them for a large merge.
async fn merge_partition(
    lake: &Lake,
    ctx: &SessionContext,
    key: &PartitionKey,
    parts: &[(Arc<StagedArchive>, usize)],
    permits: &Semaphore,
    jobs: usize,
    run_log: &RunLog,
) -> anyhow::Result<MergeStats> {
    let spec = &parts[0].0.spec;
    let staged: Vec<&StagedPart> = parts.iter().map(|(a, p)| &a.parts[*p].1).collect();
    let target = lake.partition_path(&spec.name, key);
    let result = async {
        let old = lake.file_facts(&target).await?;
        let rows = old.as_ref().map_or(0, |f| f.rows) + staged.iter().map(|p| p.rows).sum::<u64>();
        // A large merge takes every permit: two of them at once would each
        // hold half the memory pool plus their unpooled readers, sorted
        // copies and writer (measured 1.0-1.1 GiB peak for two 1M-row
        // months against ~0.6 GiB for one).
        let weight = if rows > LARGE_MERGE_ROWS { jobs } else { 1 };
        let archives: Vec<(u64, String)> = parts
            .iter()
            .map(|(a, _)| (a.ordinal, a.sha256.clone()))
            .collect();
        let mut merged = {
            let _permits = permits.acquire_many(weight as u32).await?;
            run_log.committing(&spec.name, key, &archives).await?;
            merge::merge_into(ctx, lake, spec, &staged, &target, old.as_ref()).await
        };
        if merged.as_ref().is_err_and(out_of_memory) {
            // A few huge entries (up to --max-entry-size each) can need more
            // than one sort's share of the pool: merge again alone, with the
            // whole pool for one sort. Nothing was committed by the attempt.
            tracing::info!(
                "merging {} again alone, with the whole memory pool",
                lake.object_url(&target)
            );
            let _permits = permits.acquire_many(jobs as u32).await?;
            let alone = SessionContext::new_with_config_rt(
                ctx.copied_config().with_target_partitions(1),
                ctx.runtime_env(),
            );
            merged = merge::merge_into(&alone, lake, spec, &staged, &target, old.as_ref()).await;
        }
        if let Ok(stats) = &merged {
            let mut sources: Vec<SourceArchive> = Vec::new();
            for (archive, _) in parts {
                if !sources.iter().any(|s| s.sha256 == archive.sha256) {
                    sources.push(SourceArchive {
                        name: archive.path.clone(),
                        sha256: archive.sha256.clone(),
                        entries: archive.entries,
                    });
                }
            }
            if let Err(e) =
                integrity::append(lake, "convert", sources, vec![stats.file.clone()]).await
            {
                merged = Err(e.context("the month file was written but not logged"));
            }
        }
        run_log
            .committed(&spec.name, key, &archives, merged.is_ok())
            .await?;
        merged
    }
    .await;
    result
        .map_err(|e| {
            if out_of_memory(&e) {
                e.context(
                    "the merge needs more memory: raise --memory-limit (e.g. --memory-limit 1G)",
                )
            } else {
                e
            }
        })
        .with_context(|| format!("cannot merge into {}", lake.object_url(&target)))
}

/// Whether a merge failed for want of memory in the pool.
fn out_of_memory(e: &anyhow::Error) -> bool {
    format!("{e:#}").contains("Resources exhausted")
}

/// Records a committed archive in the manifest; returns its outcome.
async fn record(
    lake: &Lake,
    staged: &StagedArchive,
    merged: &[(PartitionKey, Result<merge::MergeStats, String>)],
) -> Result<ArchiveOutcome, (String, anyhow::Error)> {
    let mut outcome = ArchiveOutcome::new(&staged.path, ArchiveStatus::Converted);
    let mut months = Vec::new();
    for (key, stats) in merged {
        let stats = stats
            .as_ref()
            .expect("only called when every merge succeeded");
        outcome.rows_written += stats.rows_after;
        outcome.new_rows += stats
            .new_by_archive
            .get(&staged.ordinal)
            .copied()
            .unwrap_or(0);
        months.push(key.month_label());
    }
    months.sort();
    months.dedup();
    outcome.sha256 = Some(staged.sha256.clone());
    outcome.format = Some(staged.format.name().to_string());
    outcome.table = Some(staged.spec.name.clone());
    outcome.entries = staged.entries;
    outcome.months = months;
    outcome.seconds = staged.started.elapsed().as_secs_f64();
    let record = ArchiveRecord {
        sha256: staged.sha256.clone(),
        name: outcome.name.clone(),
        path: outcome.path.clone(),
        format: outcome.format.clone().unwrap_or_default(),
        table: outcome.table.clone().unwrap_or_default(),
        entries: outcome.entries,
        rows_written: outcome.rows_written,
        new_rows: outcome.new_rows,
        months: outcome.months.clone(),
        converted_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        seconds: outcome.seconds,
        auditlake_version: env!("CARGO_PKG_VERSION").to_string(),
    };
    lake.manifest()
        .put(&record)
        .await
        .context("the data was merged but the conversion record could not be written")
        .map_err(|e| (staged.path.clone(), e))?;
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partition(table: &str, year: i32, month: u32, owner: &str) -> Partition {
        (
            table.to_string(),
            PartitionKey {
                year,
                month,
                owner: owner.to_string(),
            },
        )
    }

    fn labels(partitions: Vec<Partition>) -> Vec<String> {
        partitions
            .iter()
            .map(|(t, k)| format!("{t} {} {}", k.month_label(), k.owner))
            .collect()
    }

    #[test]
    fn an_archive_completes_the_earlier_months_of_its_table() {
        let open: BTreeMap<Partition, ()> = [
            partition("heroku", 2023, 12, "acme"),
            partition("heroku", 2024, 1, "acme"),
            partition("heroku", 2024, 1, "globex"),
            partition("heroku", 2024, 2, "acme"),
            partition("terraform", 2023, 11, "acme"),
        ]
        .into_iter()
        .map(|p| (p, ()))
        .collect();
        let complete =
            |table, first, rows| labels(complete_partitions(open.keys(), table, first, rows));
        assert_eq!(
            complete("heroku", Some((2024, 2)), 0),
            [
                "heroku 2023-12 acme",
                "heroku 2024-01 acme",
                "heroku 2024-01 globex"
            ]
        );
        assert_eq!(
            complete("heroku", Some((2023, 12)), 0),
            Vec::<String>::new()
        );
        assert_eq!(
            complete("terraform", Some((2024, 1)), OPEN_ROWS - 1),
            ["terraform 2023-11 acme"]
        );
        // An archive with no rows completes nothing, unless memory says so.
        assert_eq!(complete("heroku", None, 0), Vec::<String>::new());
        assert_eq!(complete("heroku", None, OPEN_ROWS).len(), 5);
        assert_eq!(complete("heroku", Some((2023, 1)), OPEN_ROWS).len(), 5);
    }
}
