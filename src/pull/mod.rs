//! `auditlake pull`: fetch audit trails from the platforms' APIs, keep what
//! they served, and convert it.
//!
//! A pull of one source and account goes:
//! 1. read its checkpoint ([`checkpoint`]) to know what is already in;
//! 2. fetch what is not ([`heroku`], [`heroku_events`], [`terraform`]),
//!    through [`http`]'s
//!    retrying client;
//! 3. keep every body ([`raw`]), gzip-compressed, under
//!    `<lake>/_auditlake/raw/<source>/<account>/…` before anything is
//!    converted, so the lake can be rebuilt and checked from what the
//!    platform served;
//! 4. convert those files as `convert` does (they are archives like any
//!    other: `pull` hands bytes to `source`);
//! 5. write the checkpoint, only once the data it covers is committed.
//!
//! Killed anywhere, the next pull fetches again what the checkpoint does not
//! cover; converting what was fetched twice is a no-op (same sha256) or a
//! merge that keeps one row per id.

pub mod checkpoint;
pub mod heroku;
pub mod heroku_events;
pub mod http;
pub mod raw;
pub mod terraform;

use std::sync::Arc;

use anyhow::Context;
use serde::Serialize;

use crate::convert::{self, ConvertOptions, Observer, RunSummary};
use crate::lake::Lake;

/// How a pull behaves.
#[derive(Clone, Debug)]
pub struct PullOptions {
    /// Retries of a failing request before the pull gives up on it.
    pub max_retries: u32,
    /// `--timeout`: see [`http::DEFAULT_TIMEOUT`].
    pub timeout: std::time::Duration,
    /// Passed on to the conversion.
    pub convert: ConvertOptions,
    /// Where raw copies go instead of `<lake>/_auditlake/raw` (`--raw`: a
    /// directory or an `s3://` prefix).
    pub raw: Option<Lake>,
}

/// What a pull did, as printed with `--json`.
#[derive(Debug, Default, Serialize)]
pub struct PullSummary {
    pub source: String,
    pub account: String,
    /// Requests answered and bytes received.
    pub pages: u64,
    pub bytes: u64,
    /// Raw copies kept and converted this run.
    pub fetched: Vec<String>,
    /// Months or pages skipped because the checkpoint already covers them.
    pub unchanged: u64,
    /// One line per thing that failed; the pull tries it again next run.
    pub errors: Vec<String>,
    /// Windows the API can no longer serve (past its retention): events in
    /// them are lost unless another copy exists.
    pub gaps: Vec<[String; 2]>,
    /// The conversion of what was fetched.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub converted: Option<RunSummary>,
}

impl PullSummary {
    /// The exit code for a scheduler: 0 all pulled, 1 something failed (it
    /// is tried again next run), 3 history was lost to the API's retention.
    pub fn exit_code(&self) -> u8 {
        if !self.gaps.is_empty() {
            3
        } else if !self.errors.is_empty() || self.converted.as_ref().is_some_and(|c| c.failed > 0) {
            1
        } else {
            0
        }
    }
}

/// A token from the first of `vars` that is set and not empty.
pub fn token_from_env(vars: &[&str]) -> Option<String> {
    vars.iter()
        .filter_map(|v| std::env::var(v).ok())
        .map(|t| t.trim().to_string())
        .find(|t| !t.is_empty())
}

/// The password `~/.netrc` holds for `host` (how the Heroku CLI keeps its
/// token), if any.
pub fn token_from_netrc(host: &str) -> Option<String> {
    let home = std::env::var_os("HOME")?;
    let text = std::fs::read_to_string(std::path::Path::new(&home).join(".netrc")).ok()?;
    netrc_password(&text, host)
}

/// The `password` of the `machine host` entry of a netrc file.
fn netrc_password(text: &str, host: &str) -> Option<String> {
    let mut words = text.split_whitespace();
    let mut in_host = false;
    while let Some(word) = words.next() {
        match word {
            "machine" => in_host = words.next() == Some(host),
            "default" => in_host = false,
            "password" if in_host => return words.next().map(str::to_string),
            _ => {}
        }
    }
    None
}

/// Converts the raw copies `inputs` into the lake.
pub async fn convert_raw(
    lake: &Lake,
    options: &PullOptions,
    inputs: Vec<String>,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<RunSummary> {
    let mut convert_options = options.convert.clone();
    convert_options.inputs = inputs;
    convert::convert(lake, &convert_options, observer).await
}

/// Converts the raw copies a pull fetched (nothing, when it fetched
/// nothing) and records them in `summary`; returns whether every one
/// converted.
pub(crate) async fn convert_fetched(
    lake: &Lake,
    options: &PullOptions,
    inputs: Vec<String>,
    summary: &mut PullSummary,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<bool> {
    summary.fetched = inputs.clone();
    if inputs.is_empty() {
        return Ok(true);
    }
    let converted = convert_raw(lake, options, inputs, observer).await?;
    let ok = converted.failed == 0;
    summary.converted = Some(converted);
    Ok(ok)
}

/// Holds `_auditlake/pull/<source>-<account>.lock` for the pull's length
/// (local lakes): a second pull of the same source exits with a message
/// rather than fetching the same pages twice.
pub fn lock_pull(
    lake: &Lake,
    source: &str,
    account: &str,
) -> anyhow::Result<Option<std::fs::File>> {
    let Some(root) = lake.local_root() else {
        return Ok(None);
    };
    let dir = root.join("_auditlake/pull");
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(format!("{source}-{account}.lock"));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(Some(file)),
        Err(std::fs::TryLockError::WouldBlock) => anyhow::bail!(
            "another `auditlake pull {source}` of {account} is running on this lake ({}); this one stops",
            path.display()
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// What every pull starts with: the source's lock (held while the value
/// lives), its checkpoint, and an empty summary; what a killed pull left
/// half-downloaded is removed.
pub(crate) struct Started {
    pub _lock: Option<std::fs::File>,
    pub checkpoint: checkpoint::Checkpoint,
    pub summary: PullSummary,
}

pub(crate) async fn start(
    lake: &Lake,
    options: &PullOptions,
    source: &str,
    account: &str,
) -> anyhow::Result<Started> {
    let lock = lock_pull(lake, source, account)?;
    // Only under the lock is no other pull of the source writing there.
    if lock.is_some() {
        raw::remove_unfinished(lake, options, source, account)?;
    }
    let checkpoint = checkpoint::Checkpoint::load(lake, source, account).await?;
    Ok(Started {
        _lock: lock,
        checkpoint,
        summary: PullSummary {
            source: source.into(),
            account: account.into(),
            ..PullSummary::default()
        },
    })
}

/// Records how the pull ended in its checkpoint and writes it.
pub(crate) async fn finish(
    lake: &Lake,
    checkpoint: &mut checkpoint::Checkpoint,
    summary: &PullSummary,
    ok: bool,
) -> anyhow::Result<()> {
    checkpoint.last_pull = Some(checkpoint::LastPull {
        at: now_text(),
        ok,
        pages: summary.pages,
        bytes: summary.bytes,
    });
    checkpoint.save(lake).await
}

/// Now, as checkpoints write it.
pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_netrc_password_of_the_host() {
        let text = "machine git.example.com\n  login a\n  password nope\nmachine api.heroku.com\n  login me@acme.io\n  password t0ken\n";
        assert_eq!(
            netrc_password(text, "api.heroku.com").as_deref(),
            Some("t0ken")
        );
        assert_eq!(netrc_password(text, "other"), None);
        assert_eq!(netrc_password("default password x", "api.heroku.com"), None);
    }
}
