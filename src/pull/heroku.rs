//! Heroku Enterprise audit-trail archives, through the Platform API.
//!
//! `GET /enterprise-accounts/{account}/archives` lists the months;
//! `GET /enterprise-accounts/{account}/archives/{YYYY}/{MM}` gives a month's
//! presigned `url`, its `checksum` (SHA-256 of the gzip bytes as downloaded)
//! and `size`. A month is fetched when the checkpoint has not pulled it with
//! that checksum (so the current month, re-exported daily, is fetched again
//! whenever it changed), verified against its checksum before anything is
//! kept or converted, and downloaded without the API token. A failed
//! download asks the API for a fresh link before it is tried again.

use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use sha2::{Digest, Sha256};

use super::checkpoint::PulledMonth;
use super::http::{Api, Attempt, heroku_accept};
use super::raw::RawCopy;
use super::{PullOptions, PullSummary, convert_raw, now_text};
use crate::convert::{ArchiveStatus, Observer};
use crate::lake::Lake;

/// Downloads of one month tried with a fresh link before the pull gives up
/// on it until the next run.
const FRESH_LINKS: u32 = 3;

/// A month in the archive list (the Platform API's "audit trail archive").
#[derive(Debug, Deserialize)]
struct Archive {
    year: i32,
    #[serde(deserialize_with = "month_number")]
    month: u32,
    checksum: String,
    #[serde(default)]
    size: u64,
    #[serde(default)]
    url: Option<String>,
}

/// The API gives the month as `"01"`; accept a number too.
fn month_number<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Month {
        Text(String),
        Number(u32),
    }
    match Month::deserialize(d)? {
        Month::Number(n) => Ok(n),
        Month::Text(t) => t.parse().map_err(serde::de::Error::custom),
    }
}

impl Archive {
    /// The checksum, checked to be a SHA-256 in hex (it names the raw copy).
    fn sha256(&self) -> anyhow::Result<String> {
        let checksum = self.checksum.trim().to_ascii_lowercase();
        if checksum.len() != 64 || !checksum.bytes().all(|b| b.is_ascii_hexdigit()) {
            bail!(
                "the month's checksum {:?} is not a SHA-256 in hex",
                crate::report::one_line(&self.checksum)
            );
        }
        Ok(checksum)
    }

    fn label(&self) -> String {
        format!("{:04}-{:02}", self.year, self.month)
    }
}

/// What to pull.
pub struct HerokuPull {
    pub account: String,
    /// Months `YYYY-MM`, inclusive.
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Pulls the account's archives not pulled yet (or changed) into `lake`.
pub async fn pull(
    lake: &Lake,
    api: &Api,
    what: &HerokuPull,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<PullSummary> {
    let source = "heroku";
    let super::Started {
        _lock,
        mut checkpoint,
        mut summary,
    } = super::start(lake, options, source, &what.account).await?;
    let account = urlencoding(&what.account);
    let list = get_json(
        api,
        &format!("/enterprise-accounts/{account}/archives"),
        &mut summary,
    )
    .await?;
    let mut archives: Vec<Archive> = serde_json::from_slice(&list)
        .context("the archive list is not a JSON array of archives")?;
    archives.sort_by_key(|a| (a.year, a.month));
    let mut fetched = Vec::new();
    for archive in archives {
        let label = archive.label();
        if what.from.as_deref().is_some_and(|f| label.as_str() < f)
            || what.to.as_deref().is_some_and(|t| label.as_str() > t)
        {
            continue;
        }
        if checkpoint
            .months
            .get(&label)
            .is_some_and(|m| m.checksum == archive.checksum)
        {
            summary.unchanged += 1;
            continue;
        }
        match fetch_month(lake, api, options, &what.account, &archive, &mut summary).await {
            Ok((input, month)) => fetched.push((label, input, month)),
            Err(e) => summary.errors.push(format!(
                "{label}: {}",
                crate::report::one_line(&format!("{e:#}"))
            )),
        }
    }
    summary.fetched = fetched.iter().map(|(_, input, _)| input.clone()).collect();
    if !fetched.is_empty() {
        let inputs = fetched.iter().map(|(_, input, _)| input.clone()).collect();
        let converted = convert_raw(lake, options, inputs, observer).await?;
        // A month enters the checkpoint once its archive is recorded.
        for (label, input, month) in fetched {
            let done = converted.archives.iter().any(|o| {
                o.path == input
                    && matches!(
                        o.status,
                        ArchiveStatus::Converted | ArchiveStatus::Unchanged
                    )
            });
            if done {
                checkpoint.months.insert(label, month);
            }
        }
        summary.converted = Some(converted);
    }
    super::finish(lake, &mut checkpoint, &summary, summary.exit_code() == 0).await?;
    Ok(summary)
}

/// Downloads one month, checks it against its checksum, and keeps it.
async fn fetch_month(
    lake: &Lake,
    api: &Api,
    options: &PullOptions,
    account: &str,
    listed: &Archive,
    summary: &mut PullSummary,
) -> anyhow::Result<(String, PulledMonth)> {
    let path = format!(
        "/enterprise-accounts/{}/archives/{:04}/{:02}",
        urlencoding(account),
        listed.year,
        listed.month
    );
    let mut retry = 0;
    loop {
        // A fresh link each time: the last one may have expired.
        let info = get_json(api, &path, summary).await?;
        let archive: Archive =
            serde_json::from_slice(&info).context("the month's archive info is not an archive")?;
        let checksum = archive.sha256()?;
        let url = archive
            .url
            .as_deref()
            .context("the month's archive info has no url")?;
        let url = reqwest::Url::parse(url).context("the month's url is not a URL")?;
        let name = format!(
            "heroku/{account}/{}/{}/enterprise-audit-log-{account}-{:04}{:02}.json.gz",
            archive.label(),
            &checksum[..12],
            archive.year,
            archive.month
        );
        match download(lake, api, options, &url, &archive, &checksum, &name).await {
            Ok((input, size)) => {
                summary.pages += 1;
                summary.bytes += size;
                let month = PulledMonth {
                    checksum: archive.checksum,
                    size,
                    pulled_at: now_text(),
                };
                return Ok((input, month));
            }
            // An expired link (403) or a dropped download: ask again.
            Err(Failed::Link(attempt)) if retry < FRESH_LINKS => {
                let reason = match attempt {
                    Attempt::Retry { reason, .. } => reason,
                    Attempt::Fatal(e) => e.to_string(),
                };
                tracing::warn!("{}: {reason}; asking for a fresh link", listed.label());
                retry += 1;
                tokio::time::sleep(std::time::Duration::from_millis(250 << retry)).await;
            }
            Err(Failed::Link(Attempt::Retry { reason, .. })) => {
                bail!("the download failed {FRESH_LINKS} times: {reason}")
            }
            Err(Failed::Link(Attempt::Fatal(e)) | Failed::Content(e)) => return Err(e),
        }
    }
}

/// Why a download failed.
enum Failed {
    /// The link or the connection: worth a fresh link.
    Link(Attempt),
    /// What came, or keeping it: given up until the next pull.
    Content(anyhow::Error),
}

/// Downloads a month into its raw copy `name`, checking the bytes against
/// the API's `checksum` and `size` as they come; returns where the copy is
/// and its size. A download that fails leaves no copy.
async fn download(
    lake: &Lake,
    api: &Api,
    options: &PullOptions,
    url: &reqwest::Url,
    archive: &Archive,
    checksum: &str,
    name: &str,
) -> Result<(String, u64), Failed> {
    let mut body = api.download_once(url).await.map_err(Failed::Link)?;
    let mut copy = RawCopy::create(lake, options, name)
        .await
        .map_err(Failed::Content)?;
    let mut digest = Sha256::new();
    let mut size = 0u64;
    let received = async {
        while let Some(chunk) = body.chunk().await.map_err(Failed::Link)? {
            size += chunk.len() as u64;
            if archive.size > 0 && size > archive.size {
                return Err(Failed::Content(anyhow::anyhow!(
                    "the download is longer than the {} bytes the API gives as its size: nothing was converted; the next pull tries again",
                    archive.size
                )));
            }
            digest.update(&chunk);
            copy.write(chunk).await.map_err(Failed::Content)?;
        }
        let sha = hex::encode(digest.finalize());
        if sha != checksum {
            return Err(Failed::Content(anyhow::anyhow!(
                "the download does not match its checksum (got sha256 {sha}, the API says {}, {size} bytes of {}): nothing was converted; the next pull tries again",
                archive.checksum,
                archive.size
            )));
        }
        Ok(())
    }
    .await;
    match received {
        Ok(()) => Ok((copy.keep().await.map_err(Failed::Content)?, size)),
        Err(e) => {
            copy.abandon().await;
            Err(e)
        }
    }
}

/// GETs an archive endpoint. It is asked for with the Platform API's
/// version 3; if the API wants the `audit-trail` variant (HTTP 406, or a
/// message that names it), it is asked again so.
async fn get_json(
    api: &Api,
    path: &str,
    summary: &mut PullSummary,
) -> anyhow::Result<bytes::Bytes> {
    let url = api.url(path)?;
    let body = match api.get(&url, heroku_accept(None)).await {
        Err(e) if needs_variant(&e) => api.get(&url, heroku_accept(Some("audit-trail"))).await?,
        other => other?,
    };
    summary.pages += 1;
    summary.bytes += body.bytes.len() as u64;
    Ok(body.bytes)
}

fn needs_variant(e: &anyhow::Error) -> bool {
    let text = e.to_string();
    text.contains("HTTP 406") || text.contains("3.audit-trail")
}

/// An account name as one URL path segment.
fn urlencoding(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn archives_parse_as_the_api_lists_them() {
        let list = r#"[{"checksum":"ab","created_at":"2024-02-01T00:00:00Z","month":"01","size":3,"url":"https://x/y","year":2024},
                       {"checksum":"cd","month":2,"year":2024}]"#;
        let archives: Vec<Archive> = serde_json::from_str(list).unwrap();
        assert_eq!(archives[0].label(), "2024-01");
        assert_eq!(archives[0].size, 3);
        assert_eq!(archives[1].label(), "2024-02");
        assert_eq!(archives[1].url, None);
    }
}
