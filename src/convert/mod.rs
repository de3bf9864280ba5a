//! Converting archives into the lake.
//!
//! Each archive goes through two phases:
//! 1. **stage** (blocking, `jobs` archives in parallel): hash the file, skip
//!    it if the lake already recorded that sha256, otherwise stream-parse it
//!    into temporary per-partition files. A bad archive fails here, before it
//!    touched the lake.
//! 2. **merge and record** ([`schedule`]): each partition merges once with
//!    the parts of every archive that had rows for it (see [`merge`]), as
//!    soon as the archives still to come are unlikely to add to it, while
//!    later archives are still staging. Monthly archives spill a few events
//!    into the neighbouring month; merging a month once all its archives
//!    are staged writes each month file once in a backfill instead of twice.
//!    Archives are then recorded in the manifest, in input order. Input
//!    order decides which of two rows with one key wins ("the newest
//!    conversion wins").
//!
//! Staged rows not yet merged are bounded ([`schedule::OPEN_ROWS`]), which
//! bounds the temporary disk used and the key hashes held in memory.

pub(crate) mod discover;
mod gather;
mod journal;
mod key_sort;
pub(crate) mod merge;
pub mod prove;
mod schedule;
pub(crate) mod scratch;
mod sort_order;
pub(crate) mod stage;
pub(crate) mod upgrade;

use std::collections::{HashSet, VecDeque};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::FairSpillPool;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SessionConfig, SessionContext};
use serde::Serialize;
use sha2::{Digest, Sha256};
use tempfile::TempDir;
use tokio::sync::Semaphore;

use crate::lake::lock as lake_lock;
use crate::lake::{Lake, PartitionKey, commit::remove_stale_temp_files};
use crate::source::{self, ByteCounter, Format};
use crate::table::TableSpec;
use journal::{Interrupted, RunLog};
use schedule::Scheduler;
use scratch::Scratch;
use stage::{StagedPart, Stager};

/// Default memory limit of the merge engine. 256 MiB was measured too small
/// for a month of 2M events (the merge's two spilling sorts could not reserve
/// their merge buffers); 512 MiB merges it with a 570 MiB peak RSS.
pub const DEFAULT_MEMORY_LIMIT: usize = 512 * 1024 * 1024;

/// Rows (old and staged) above which a partition merges alone, with the
/// whole memory pool: a month of 200k events merges beside other work, one of
/// 1M does not.
pub const LARGE_MERGE_ROWS: u64 = 500_000;

/// How a conversion run behaves.
#[derive(Clone, Debug)]
pub struct ConvertOptions {
    /// Files, directories and `s3://` objects or prefixes to convert.
    pub inputs: Vec<String>,
    /// Convert archives even when their sha256 is already recorded.
    pub force: bool,
    /// Archives staged in parallel.
    pub jobs: usize,
    /// Memory limit of the merge engine, in bytes; sorts spill beyond it.
    pub memory_limit: usize,
    /// Where staging and spill files go (default: the system temp dir).
    pub temp_dir: Option<PathBuf>,
    /// Read every input as this format instead of detecting it
    /// (`--format`, or `--mapping` for a mapped export).
    pub format: Option<Format>,
    /// Remove the journals of interrupted runs instead of converting their
    /// archives again (for archives that are gone for good).
    pub forget_interrupted: bool,
    /// Largest entry (bytes of its JSON text) a source may hold; a larger
    /// one fails its archive.
    pub max_entry_size: usize,
}

/// What happened to one archive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ArchiveStatus {
    Converted,
    Unchanged,
    Failed,
}

/// The outcome of one archive, as printed and as logged with `--json`.
#[derive(Clone, Debug, Serialize)]
pub struct ArchiveOutcome {
    pub path: String,
    pub name: String,
    pub status: ArchiveStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub format: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub table: Option<String>,
    pub entries: u64,
    pub months: Vec<String>,
    /// Rows of the month files this archive's rows went into, after the merge.
    pub rows_written: u64,
    /// Keys this archive brought to the lake first (not in the lake before,
    /// nor in an earlier archive of the run).
    pub new_rows: u64,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl ArchiveOutcome {
    pub(crate) fn new(path: &str, status: ArchiveStatus) -> Self {
        ArchiveOutcome {
            path: path.to_string(),
            name: discover::file_name(path).to_string(),
            status,
            sha256: None,
            format: None,
            table: None,
            entries: 0,
            months: Vec::new(),
            rows_written: 0,
            new_rows: 0,
            seconds: 0.0,
            error: None,
        }
    }
}

/// The whole run.
#[derive(Clone, Debug, Serialize)]
pub struct RunSummary {
    pub lake: String,
    pub archives: Vec<ArchiveOutcome>,
    pub converted: usize,
    pub unchanged: usize,
    pub failed: usize,
    pub entries: u64,
    /// Rows of the month files the run wrote, each file counted once.
    pub rows_written: u64,
    pub new_rows: u64,
    pub seconds: f64,
}

/// Receives progress while a run goes on (the CLI prints it).
pub trait Observer: Send + Sync {
    /// Archive number `ordinal` of the run (its place in the input order)
    /// started being read; `progress` counts its bytes read.
    fn archive_started(
        &self,
        _ordinal: u64,
        _name: &str,
        _file_bytes: u64,
        _progress: ByteCounter,
    ) {
    }
    /// Archive number `ordinal` ended: converted, unchanged or failed.
    fn archive_finished(&self, _ordinal: u64, _outcome: &ArchiveOutcome) {}
}

/// An observer that reports nothing.
pub struct Silent;
impl Observer for Silent {}

/// Phase 1's result for one archive.
enum Prepared {
    Unchanged(ArchiveOutcome),
    Staged(StagedArchive),
}

struct StagedArchive {
    /// The archive's ordinal in the run.
    ordinal: u64,
    path: String,
    sha256: String,
    format: Format,
    spec: TableSpec,
    entries: u64,
    parts: Vec<(PartitionKey, StagedPart)>,
    /// Owns the staging files; removed on drop.
    _dir: TempDir,
    started: Instant,
}

/// Converts the archives of `options.inputs` into `lake`.
///
/// Archive-level failures are reported in the summary (status `failed`) and
/// do not stop the run; an `Err` means the run itself could not proceed.
pub async fn convert(
    lake: &Lake,
    options: &ConvertOptions,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<RunSummary> {
    let run_started = Instant::now();
    let inputs = discover::find_inputs(&options.inputs).await?;
    let lock = Arc::new(lake.lock_for_writing().await?);
    let result = convert_locked(lake, options, observer, inputs, lock.clone(), run_started).await;
    if let Ok(lock) = Arc::try_unwrap(lock) {
        lock.release().await;
    }
    result
}

/// [`convert`], once the lake's writer lock is held.
async fn convert_locked(
    lake: &Lake,
    options: &ConvertOptions,
    observer: Arc<dyn Observer>,
    inputs: Vec<discover::Input>,
    lock: Arc<lake_lock::LakeLock>,
    run_started: Instant,
) -> anyhow::Result<RunSummary> {
    lake.ensure_writable().await?;
    if let Some(root) = lake.local_root() {
        // Raw copies are a pull's, which may be downloading now.
        let raw = root.join(crate::lake::RAW_DIR);
        let stale = remove_stale_temp_files(root, Some(&raw))
            .with_context(|| format!("cannot clean up {}", root.display()))?;
        if stale > 0 {
            tracing::info!("removed {stale} unfinished file(s) left by an interrupted run");
        }
    } else if !lake.exists().await? {
        tracing::info!("creating a new lake at {}", lake.location());
    }
    // An interrupted run's archives convert first, so this run's own rows
    // still win a key they share.
    let interrupted = Interrupted::find(lake, options.forget_interrupted).await?;
    let mut archives = interrupted.inputs.clone();
    let carried: HashSet<String> = archives.iter().map(|i| i.display.clone()).collect();
    archives.extend(
        inputs
            .into_iter()
            .filter(|i| !carried.contains(&journal::absolute(&i.display))),
    );
    let run_log = Arc::new(RunLog::new(lake, lock, &archives, interrupted));

    let temp_root = options.temp_dir.clone().unwrap_or_else(std::env::temp_dir);
    let scratch = Scratch::create(&temp_root)?;
    let ctx = merge_session(options.memory_limit, scratch.path())?;
    lake.register_store(&ctx);

    let jobs = options.jobs.max(1);
    // `jobs` permits bound the CPU-heavy work at any moment, staging and
    // merging alike (and with it the memory: a merge and a staging never
    // stack beyond `jobs`). Up to `2 * jobs` archives are started ahead, so
    // a core whose archive finished early takes the next one instead of
    // waiting for the archive in front (results are still taken in order).
    let permits = Arc::new(Semaphore::new(jobs));
    let mut scheduler = Scheduler::new(
        lake,
        &ctx,
        permits.clone(),
        jobs,
        observer.clone(),
        run_log.clone(),
    );
    let job = StageJob {
        lake: lake.clone(),
        force: options.force,
        format: options.format.clone(),
        // An entry must fit the merge's sort with the whole pool (it takes
        // ~2.3x its size there).
        max_entry_size: options.max_entry_size.min(options.memory_limit / 5 * 2),
        staging: scratch.path().to_path_buf(),
        observer: observer.clone(),
        permits: permits.clone(),
    };
    let mut pending = VecDeque::new();
    let mut queue = archives.into_iter().enumerate().peekable();
    let mut seen = HashSet::new();
    loop {
        while pending.len() < 2 * jobs {
            let Some((ordinal, input)) = queue.next() else {
                break;
            };
            let job = job.clone();
            pending.push_back(tokio::spawn(async move {
                let display = input.display.clone();
                let ordinal = ordinal as u64;
                (ordinal, display, job.run(ordinal, input).await)
            }));
        }
        let Some(handle) = pending.pop_front() else {
            break;
        };
        let (ordinal, path, prepared) = handle.await.context("a conversion task panicked")?;
        match prepared {
            Ok(Prepared::Unchanged(outcome)) => scheduler.add_done(ordinal, outcome),
            Ok(Prepared::Staged(staged)) if !seen.insert(staged.sha256.clone()) => {
                // The same bytes were given twice in this run.
                let mut outcome = ArchiveOutcome::new(&staged.path, ArchiveStatus::Unchanged);
                outcome.sha256 = Some(staged.sha256);
                scheduler.add_done(ordinal, outcome);
            }
            Ok(Prepared::Staged(staged)) => scheduler.add_staged(staged),
            Err(e) => scheduler.add_done(ordinal, failed(&path, format!("{e:#}"))),
        }
    }
    let (outcomes, rows_written) = scheduler.finish().await?;
    let unfinished = run_log.close().await?;
    if !unfinished.is_empty() {
        tracing::warn!(
            "{} archive(s) of this run reached the lake only in part: {}; the next `auditlake convert` converts them again",
            unfinished.len(),
            unfinished.join(", ")
        );
    }
    if rows_written > 0 {
        lake.record_format().await?;
    }

    let count = |s| {
        outcomes
            .iter()
            .filter(|o: &&ArchiveOutcome| o.status == s)
            .count()
    };
    Ok(RunSummary {
        lake: lake.location().to_string(),
        converted: count(ArchiveStatus::Converted),
        unchanged: count(ArchiveStatus::Unchanged),
        failed: count(ArchiveStatus::Failed),
        entries: outcomes.iter().map(|o| o.entries).sum(),
        rows_written,
        new_rows: outcomes.iter().map(|o| o.new_rows).sum(),
        seconds: run_started.elapsed().as_secs_f64(),
        archives: outcomes,
    })
}

fn failed(path: &str, error: String) -> ArchiveOutcome {
    let mut outcome = ArchiveOutcome::new(path, ArchiveStatus::Failed);
    outcome.error = Some(error);
    outcome
}

/// The DataFusion session that merges partitions: bounded memory, spilling
/// to `spill_dir`.
pub fn merge_session(memory_limit: usize, spill_dir: &Path) -> anyhow::Result<SessionContext> {
    let runtime = RuntimeEnvBuilder::new()
        .with_memory_pool(Arc::new(FairSpillPool::new(memory_limit)))
        .with_disk_manager_builder(
            DiskManagerBuilder::default()
                .with_mode(DiskManagerMode::Directories(vec![spill_dir.to_path_buf()])),
        )
        .build_arc()
        .context("cannot start the merge engine")?;
    let mut config = SessionConfig::new()
        .with_target_partitions(std::thread::available_parallelism().map_or(2, |n| n.get()));
    // Read each staged Arrow file whole, as a stream: split into byte
    // ranges, DataFusion fetches all of a range's batches at once (a 2M-row
    // month peaked at 884 MiB instead of 600).
    config.options_mut().optimizer.repartition_file_scans = false;
    // Read strings as the table's own Utf8 (not Utf8View) so merged batches
    // match the schema the files are written with.
    config
        .options_mut()
        .execution
        .parquet
        .schema_force_view_types = false;
    Ok(SessionContext::new_with_config_rt(config, runtime))
}

/// What staging an archive needs, set once per run and cloned into each
/// archive's task.
#[derive(Clone)]
struct StageJob {
    lake: Lake,
    force: bool,
    format: Option<Format>,
    max_entry_size: usize,
    /// Where staging files (and fetched S3 archives) go.
    staging: PathBuf,
    observer: Arc<dyn Observer>,
    /// The run's CPU permits; staging an archive holds one.
    permits: Arc<Semaphore>,
}

impl StageJob {
    /// Phase 1 for archive number `ordinal`: fetch it if it is remote, then
    /// hash, look up and stage it on a blocking thread, holding a permit.
    async fn run(self, ordinal: u64, input: discover::Input) -> anyhow::Result<Prepared> {
        // Fair: archives start in input order.
        let _permit = self.permits.clone().acquire_owned().await?;
        let fetched = discover::fetch(&input, &self.staging).await?;
        let runtime = tokio::runtime::Handle::current();
        tokio::task::spawn_blocking(move || {
            self.prepare(&input.display, fetched.path(), ordinal, &runtime)
        })
        .await
        .context("a conversion task panicked")?
    }

    /// Hashes, looks up, and stages one archive (`display` is how the user
    /// named it; `path` where its bytes are on disk).
    fn prepare(
        &self,
        display: &str,
        path: &Path,
        ordinal: u64,
        runtime: &tokio::runtime::Handle,
    ) -> anyhow::Result<Prepared> {
        let started = Instant::now();
        let sha256 = sha256_file(path)?;
        if !self.force
            && let Some(record) = runtime.block_on(self.lake.manifest().get(&sha256))?
        {
            let mut outcome = ArchiveOutcome::new(display, ArchiveStatus::Unchanged);
            outcome.sha256 = Some(sha256);
            outcome.format = Some(record.format);
            outcome.table = Some(record.table);
            outcome.entries = record.entries;
            outcome.months = record.months;
            outcome.seconds = started.elapsed().as_secs_f64();
            return Ok(Prepared::Unchanged(outcome));
        }

        let opened = source::open_archive(path).context("cannot open")?;
        self.observer.archive_started(
            ordinal,
            discover::file_name(display),
            opened.file_bytes,
            opened.progress.clone(),
        );
        let dir = tempfile::Builder::new()
            .prefix("stage-")
            .tempdir_in(&self.staging)
            .context("cannot create a staging directory")?;
        let owner_fallback =
            discover::account_from_file_name(path).unwrap_or_else(|| "unknown".to_string());
        let mut stager: Option<Stager> = None;
        let read = source::read_archive(
            opened.reader,
            self.format.as_ref(),
            self.max_entry_size,
            |format, batch| {
                stager
                    .get_or_insert_with(|| {
                        Stager::new(
                            dir.path(),
                            format.table_spec(),
                            owner_fallback.clone(),
                            ordinal,
                        )
                    })
                    .push(batch)
            },
        );
        let (format, stats) = match read {
            Ok(read) => read,
            // The staging's own error, as it was.
            Err(source::SourceError::Sink(e)) => return Err(e),
            Err(e) => return Err(e.into()),
        };
        let parts = match stager {
            Some(s) => s.finish()?,
            None => Vec::new(),
        };
        Ok(Prepared::Staged(StagedArchive {
            ordinal,
            path: display.to_string(),
            sha256,
            spec: format.table_spec(),
            format,
            entries: stats.entries,
            parts,
            _dir: dir,
            started,
        }))
    }
}

/// Hex sha256 of a file's bytes (errors do not repeat the path).
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    let mut file = std::fs::File::open(path).context("cannot open")?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1024 * 1024];
    loop {
        let n = file.read(&mut buf).context("cannot read")?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}
