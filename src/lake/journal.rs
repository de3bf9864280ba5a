//! Run journals: what a conversion run has committed, so that a run that
//! was interrupted is seen, told, and finished.
//!
//! Each month file is replaced atomically, but a run commits many of them
//! and then a conversion record per archive. A run killed between two
//! commits leaves some months new and some old, which every reader would
//! otherwise take for a finished lake. So a run keeps a journal,
//! `_auditlake/runs/<run>.json`: written before its first commit (naming
//! the run's archives), updated as each month file starts and finishes
//! committing and as each archive is recorded, and removed after the last
//! record. A journal whose writer no longer holds the lake's writer lock
//! belongs to an interrupted run: `status`, `query` and the shell warn
//! while one is there, and the next `convert` converts its archives again
//! first (the merge is idempotent), then removes it.
//!
//! Every journal write is one PUT (a rename on disk), so a journal is
//! always whole.

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::layout::META_DIR;
use super::lock::{WriterState, host_name, now_text};
use super::{Lake, store_error};

/// The journal of one run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunJournal {
    /// The run's name, also the journal's file name (without `.json`).
    pub run: String,
    pub host: String,
    pub pid: u32,
    pub started_at: String,
    pub updated_at: String,
    /// The run's archives, in the order their rows take precedence (a later
    /// one wins a key), including those it took over from interrupted runs.
    pub archives: Vec<JournalArchive>,
    /// Month files whose new version is committed (`table/year=Y/month=M/owner`).
    pub committed: Vec<String>,
    /// Month files whose commit started and has not been confirmed: each is
    /// either old or new, whole either way.
    pub committing: Vec<String>,
    /// Journals of interrupted runs whose archives this run took over.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub took_over: Vec<String>,
}

/// One archive of a run.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct JournalArchive {
    /// How it was named: a path or an `s3://` URL.
    pub path: String,
    /// Its sha256, once read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// Whether some of its rows may be in the lake already.
    #[serde(default)]
    pub touched: bool,
    /// Whether its conversion record is written (it is complete).
    #[serde(default)]
    pub recorded: bool,
}

impl RunJournal {
    /// A new journal for this process.
    pub fn start(archives: Vec<JournalArchive>) -> RunJournal {
        let started_at = now_text();
        let host = host_name();
        let pid = std::process::id();
        let stamp: String = started_at
            .chars()
            .filter(|c| c.is_ascii_digit())
            .take(17)
            .collect();
        let host_part: String = host
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40)
            .collect();
        RunJournal {
            run: format!("{stamp}-{host_part}-{pid}"),
            host,
            pid,
            updated_at: started_at.clone(),
            started_at,
            archives,
            ..RunJournal::default()
        }
    }

    /// Whether the lake may hold part of this run's work: an archive with
    /// rows committed and no record, or a month commit under way.
    pub fn mid_run(&self) -> bool {
        self.unfinished().next().is_some() || !self.committing.is_empty()
    }

    /// Archives of the run that may be in the lake in part: touched and not
    /// recorded.
    pub fn unfinished(&self) -> impl Iterator<Item = &JournalArchive> {
        self.archives.iter().filter(|a| a.touched && !a.recorded)
    }

    /// The months (`YYYY-MM`) of the month files committed or committing.
    pub fn months(&self) -> Vec<String> {
        let mut months: Vec<String> = self
            .committed
            .iter()
            .chain(&self.committing)
            .filter_map(|rel| month_of(rel))
            .collect();
        months.sort();
        months.dedup();
        months
    }

    /// One line for stderr about this journal; `running` says whether its
    /// writer is still at work.
    pub fn warning(&self, lake: &str, running: bool) -> String {
        let names: Vec<&str> = self
            .unfinished()
            .map(|a| a.path.rsplit(['/', '\\']).next().unwrap_or(&a.path))
            .collect();
        let names = match names.len() {
            0 => "its archives' records".to_string(),
            n if n <= 4 => names.join(", "),
            n => format!("{} and {} more", names[..3].join(", "), n - 3),
        };
        let months = self.months();
        let months = if months.is_empty() {
            "none yet".to_string()
        } else {
            months.join(", ")
        };
        if running {
            format!(
                "warning: a conversion into {lake} is running (run {}, {} pid {}): it has committed months {months} for {names}; answers may change until it finishes",
                self.run, self.host, self.pid
            )
        } else {
            format!(
                "warning: a conversion into {lake} was interrupted (run {}, started {}): months {months} hold its new rows but {names} did not finish; answers may mix old and new data until the next `auditlake convert` completes it",
                self.run, self.started_at
            )
        }
    }
}

/// `2024-03` from `table/year=2024/month=3/owner.parquet`.
fn month_of(rel: &str) -> Option<String> {
    let mut year = None;
    let mut month = None;
    for part in rel.split('/') {
        if let Some(y) = part.strip_prefix("year=") {
            year = y.parse::<i32>().ok();
        } else if let Some(m) = part.strip_prefix("month=") {
            month = m.parse::<u32>().ok();
        }
    }
    Some(format!("{:04}-{:02}", year?, month?))
}

impl Lake {
    fn runs_dir(&self) -> ObjectPath {
        self.object_path(&format!("{META_DIR}/runs"))
    }

    fn journal_path(&self, run: &str) -> ObjectPath {
        self.runs_dir().join(format!("{run}.json"))
    }

    /// Every run journal in the lake, oldest run first.
    pub async fn run_journals(&self) -> anyhow::Result<Vec<RunJournal>> {
        if self.local_root().is_some_and(|r| !r.is_dir()) {
            return Ok(Vec::new());
        }
        let dir = self.runs_dir();
        let objects: Vec<_> = self
            .store()
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| store_error(e, &self.object_url(&dir)))?;
        let mut journals = Vec::new();
        for meta in objects {
            if meta.location.extension() != Some("json") {
                continue;
            }
            let url = self.object_url(&meta.location);
            let bytes = match self.store().get(&meta.location).await {
                Ok(result) => result.bytes().await.map_err(|e| store_error(e, &url))?,
                // Removed since the listing: that run finished.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(store_error(e, &url)),
            };
            let journal: RunJournal = serde_json::from_slice(&bytes).map_err(|e| {
                anyhow::anyhow!(
                    "{url}: not a run journal ({e}); if no conversion is running, remove it"
                )
            })?;
            journals.push(journal);
        }
        journals.sort_by(|a, b| a.run.cmp(&b.run));
        Ok(journals)
    }

    /// Writes a journal in one step.
    pub async fn write_journal(&self, journal: &RunJournal) -> anyhow::Result<()> {
        let path = self.journal_path(&journal.run);
        let mut journal = journal.clone();
        journal.updated_at = now_text();
        self.store()
            .put(
                &path,
                PutPayload::from(serde_json::to_vec_pretty(&journal)?),
            )
            .await
            .map_err(|e| store_error(e, &self.object_url(&path)))?;
        Ok(())
    }

    /// Removes a run's journal (the run is complete, or taken over).
    pub async fn remove_journal(&self, run: &str) -> anyhow::Result<()> {
        let path = self.journal_path(run);
        match self.store().delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error(e, &self.object_url(&path))),
        }
    }

    /// One warning line per run journal that shows the lake mid-run (an
    /// interrupted run's, or a running conversion's), for stderr.
    pub async fn run_warnings(&self) -> anyhow::Result<Vec<String>> {
        let journals = self.run_journals().await?;
        if journals.is_empty() {
            return Ok(Vec::new());
        }
        let running = matches!(self.writer_state().await?, WriterState::Writing(_));
        let newest = journals.last().map(|j| j.run.clone());
        Ok(journals
            .iter()
            .filter(|j| j.mid_run())
            // While a writer runs, only the newest journal is its own.
            .map(|j| j.warning(self.location(), running && Some(&j.run) == newest.as_ref()))
            .collect())
    }
}
