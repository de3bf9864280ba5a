//! A conversion run's journal as the run keeps it (see
//! [`crate::lake::journal`] for what it is and who reads it).
//!
//! The run starts with the archives of interrupted runs that are not
//! recorded yet, ahead of its own inputs (so its own rows still win a key),
//! and takes their journals over: those are removed once this run's journal
//! names their archives and months. Every month commit is bracketed by two
//! journal writes (committing, committed) and every conversion record is
//! followed by one; the journal is removed once every archive that touched
//! the lake is recorded, and otherwise left for the next run.

use std::collections::HashSet;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::discover::{self, Input};
use crate::lake::journal::{JournalArchive, RunJournal};
use crate::lake::lock::LakeLock;
use crate::lake::{Lake, PartitionKey, layout};

/// What the interrupted runs left to do.
pub struct Interrupted {
    /// Their unrecorded archives that are still there, to convert first.
    pub inputs: Vec<Input>,
    /// Their entries in the journal, one per input (touched, with their
    /// sha256).
    archives: Vec<JournalArchive>,
    /// Their archives that are gone but may have rows in the lake: the new
    /// journal carries them, unfinished.
    missing: Vec<JournalArchive>,
    /// The month files they committed.
    committed: Vec<String>,
    /// Their journals' names.
    runs: Vec<String>,
}

impl Interrupted {
    /// Reads the journals left in `lake` (every one is an interrupted run's:
    /// the caller holds the writer lock). With `forget`, removes them
    /// instead, taking over nothing.
    pub async fn find(lake: &Lake, forget: bool) -> anyhow::Result<Interrupted> {
        let mut found = Interrupted {
            inputs: Vec::new(),
            archives: Vec::new(),
            missing: Vec::new(),
            committed: Vec::new(),
            runs: Vec::new(),
        };
        if let Some(root) = lake.local_root() {
            remove_unfinished_writes(&root.join(crate::lake::layout::META_DIR).join("runs"));
        }
        let manifest = lake.manifest();
        let mut seen = HashSet::new();
        for journal in lake.run_journals().await? {
            if forget {
                tracing::warn!(
                    "forgetting the interrupted run {} (started {}): its archives are not converted again",
                    journal.run,
                    journal.started_at
                );
                lake.remove_journal(&journal.run).await?;
                continue;
            }
            found.runs.push(journal.run.clone());
            found.committed.extend(journal.committed.iter().cloned());
            found.committed.extend(journal.committing.iter().cloned());
            for archive in &journal.archives {
                if archive.recorded || !seen.insert(archive.path.clone()) {
                    continue;
                }
                if let Some(sha) = &archive.sha256
                    && manifest.get(sha).await?.is_some()
                {
                    continue;
                }
                match discover::find_again(&archive.path).await {
                    Some(input) => {
                        tracing::warn!(
                            "completing the interrupted run {1}: converting {0} again first",
                            archive.path,
                            journal.run
                        );
                        found.inputs.push(input);
                        found.archives.push(archive.clone());
                    }
                    None if archive.touched => {
                        tracing::warn!(
                            "{}: gone, so the interrupted run {} cannot be completed; convert the archive again, or pass --forget-interrupted",
                            archive.path,
                            journal.run
                        );
                        found.missing.push(archive.clone());
                    }
                    // Gone, and none of its rows reached the lake.
                    None => {}
                }
            }
        }
        found.committed.sort();
        found.committed.dedup();
        Ok(found)
    }
}

/// The journal of the running conversion.
pub struct RunLog {
    lake: Lake,
    lock: Arc<LakeLock>,
    state: Mutex<State>,
}

struct State {
    journal: RunJournal,
    /// Whether the journal is in the lake yet.
    written: bool,
    /// Journals taken over, removed after this one's first write.
    took_over: Vec<String>,
    /// Month files committed, and being committed, with rows of each
    /// archive (ordinal), this run.
    committed_with: std::collections::HashMap<u64, (usize, usize)>,
    /// Archives an interrupted run had touched already.
    carried: HashSet<u64>,
}

impl RunLog {
    /// The journal of a run converting `inputs` (input order: ordinal `i`
    /// is `inputs[i]`), the first of which are `interrupted.inputs`.
    pub fn new(
        lake: &Lake,
        lock: Arc<LakeLock>,
        inputs: &[Input],
        interrupted: Interrupted,
    ) -> RunLog {
        let mut archives: Vec<JournalArchive> = inputs
            .iter()
            .enumerate()
            .map(|(i, input)| match interrupted.archives.get(i) {
                Some(archive) => archive.clone(),
                None => JournalArchive {
                    path: absolute(&input.display),
                    ..JournalArchive::default()
                },
            })
            .collect();
        // Archives of interrupted runs that are gone stay named.
        archives.extend(interrupted.missing);
        let carried = (0..interrupted.archives.len() as u64).collect();
        let mut journal = RunJournal::start(archives);
        journal.committed = interrupted.committed;
        journal.took_over = interrupted.runs.clone();
        RunLog {
            lake: lake.clone(),
            lock,
            state: Mutex::new(State {
                journal,
                written: false,
                took_over: interrupted.runs,
                committed_with: Default::default(),
                carried,
            }),
        }
    }

    async fn write(&self, state: &mut State) -> anyhow::Result<()> {
        self.lake.write_journal(&state.journal).await?;
        state.written = true;
        for run in std::mem::take(&mut state.took_over) {
            self.lake.remove_journal(&run).await?;
        }
        Ok(())
    }

    /// Called before a month file is committed with rows of the archives
    /// `archives` (ordinal, sha256): fails if this run may no longer write.
    pub async fn committing(
        &self,
        table: &str,
        key: &PartitionKey,
        archives: &[(u64, String)],
    ) -> anyhow::Result<()> {
        self.lock.check()?;
        let rel = layout::partition_rel(table, key);
        let mut state = self.state.lock().await;
        for (ordinal, sha) in archives {
            state.committed_with.entry(*ordinal).or_default().1 += 1;
            if let Some(archive) = state.journal.archives.get_mut(*ordinal as usize) {
                archive.touched = true;
                archive.sha256 = Some(sha.clone());
            }
        }
        if !state.journal.committing.contains(&rel) {
            state.journal.committing.push(rel);
        }
        self.write(&mut state).await
    }

    /// Called once a month file's commit ended (`ok`: the new file is in;
    /// else the old one stays, and an archive with no other committed
    /// month has not touched the lake after all).
    pub async fn committed(
        &self,
        table: &str,
        key: &PartitionKey,
        archives: &[(u64, String)],
        ok: bool,
    ) -> anyhow::Result<()> {
        let rel = layout::partition_rel(table, key);
        let mut state = self.state.lock().await;
        let state = &mut *state;
        state.journal.committing.retain(|r| *r != rel);
        if ok && !state.journal.committed.contains(&rel) {
            state.journal.committed.push(rel);
        }
        for (ordinal, _) in archives {
            let (committed, in_flight) = state.committed_with.entry(*ordinal).or_default();
            *committed += ok as usize;
            *in_flight -= 1;
            let touched = *committed > 0 || *in_flight > 0 || state.carried.contains(ordinal);
            if let Some(archive) = state.journal.archives.get_mut(*ordinal as usize) {
                archive.touched = touched;
            }
        }
        self.write(state).await
    }

    /// Called once an archive is recorded (or found recorded already).
    pub async fn recorded(&self, ordinal: u64) -> anyhow::Result<()> {
        let mut state = self.state.lock().await;
        let Some(archive) = state.journal.archives.get_mut(ordinal as usize) else {
            return Ok(());
        };
        if archive.recorded {
            return Ok(());
        }
        archive.recorded = true;
        // Nothing to say yet if the run has not touched the lake.
        if state.written {
            self.write(&mut state).await?;
        }
        Ok(())
    }

    /// Ends the run: removes the journal when every archive that touched
    /// the lake is recorded, else leaves it (with what is unfinished) for
    /// the next run. Returns the archives left unfinished.
    pub async fn close(&self) -> anyhow::Result<Vec<String>> {
        let mut state = self.state.lock().await;
        let unfinished: Vec<String> = state.journal.unfinished().map(|a| a.path.clone()).collect();
        if unfinished.is_empty() {
            for run in std::mem::take(&mut state.took_over) {
                self.lake.remove_journal(&run).await?;
            }
            if state.written {
                self.lake.remove_journal(&state.journal.run).await?;
            }
        } else {
            state.journal.committing.clear();
            self.write(&mut state).await?;
        }
        Ok(unfinished)
    }
}

/// A local path made absolute (a journal is read by later runs, perhaps
/// from another directory); URLs as they are.
pub fn absolute(display: &str) -> String {
    if crate::lake::is_s3(display) {
        return display.to_string();
    }
    std::path::absolute(display)
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| display.to_string())
}

/// Removes the staging files (`<run>.json#N`) of journal writes a kill cut
/// short; the journals themselves were replaced in one step, so they stay
/// whole.
fn remove_unfinished_writes(dir: &std::path::Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            let _ = std::fs::remove_file(&path);
        }
    }
}
