//! Terraform Cloud / Enterprise audit trail, through
//! `GET /api/v2/organization/audit-trail?since=…&page[number]=N&page[size]=1000`
//! with an organization token.
//!
//! A pull starts from the checkpoint's newest `timestamp` less an overlap
//! (events of one second can straddle two polls; ids dedupe the rest) and
//! reads pages until `pagination.next_page` is null or a page is empty. The API keeps 14 days
//! only: when the checkpoint is older than that, what lies between it and
//! the retention's start is gone, and the pull says so loudly (a warning
//! line, the `gaps` field, exit code 3) after taking what is still there.

use std::sync::Arc;

use anyhow::{Context, bail};
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use serde::Deserialize;

use super::http::Api;
use super::raw::keep_raw;
use super::{PullOptions, PullSummary};
use crate::convert::Observer;
use crate::lake::Lake;

/// How long the API keeps audit events.
pub const RETENTION_DAYS: i64 = 14;

/// How far before the checkpoint's newest event a pull starts again.
const OVERLAP_MINUTES: i64 = 5;

/// Events per page (the API's largest).
const PAGE_SIZE: u32 = 1000;

/// Pages one pull follows at most: 100 million events, far more than
/// the API keeps in its 14 days.
const MAX_PAGES: u64 = 100_000;

/// The parts of a page the pull reads (the rows are read by `source`).
#[derive(Debug, Deserialize)]
struct Page {
    data: Vec<Event>,
    #[serde(default)]
    pagination: Option<Pagination>,
}

#[derive(Debug, Deserialize)]
struct Event {
    id: String,
    timestamp: String,
}

#[derive(Debug, Deserialize)]
struct Pagination {
    next_page: Option<u64>,
}

/// Pulls the audit trail the token's organization can read.
pub async fn pull(
    lake: &Lake,
    api: &Api,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<PullSummary> {
    let source = "terraform";
    let account = api.host().replace(':', "_");
    let super::Started {
        _lock,
        mut checkpoint,
        mut summary,
    } = super::start(lake, options, source, &account).await?;
    let started = Utc::now();
    let newest: Option<DateTime<Utc>> = checkpoint
        .newest_time
        .as_deref()
        .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
        .map(|t| t.with_timezone(&Utc));
    let since = newest.map(|t| t - Duration::minutes(OVERLAP_MINUTES));
    let retention_start = started - Duration::days(RETENTION_DAYS);
    if let Some(newest) = newest
        && newest < retention_start
    {
        let gap = [rfc3339(newest), rfc3339(retention_start)];
        eprintln!(
            "warning: Terraform audit events from {} to {} are lost: the last pull saw events up to {}, and the API keeps {RETENTION_DAYS} days; pull at least every {RETENTION_DAYS} days",
            gap[0], gap[1], gap[0]
        );
        checkpoint.gaps.push(gap.clone());
        summary.gaps.push(gap);
    }

    let stamp = started.format("%Y%m%dT%H%M%SZ");
    let mut inputs = Vec::new();
    let mut newest_seen: Option<(String, String)> = None;
    let mut page_number = 1u64;
    loop {
        let mut query = format!("page%5Bnumber%5D={page_number}&page%5Bsize%5D={PAGE_SIZE}");
        if let Some(since) = since {
            query = format!("since={}&{query}", rfc3339(since));
        }
        let url = api.url(&format!("/api/v2/organization/audit-trail?{query}"))?;
        let body = api.get(&url, accept_json_api()).await?;
        summary.pages += 1;
        summary.bytes += body.bytes.len() as u64;
        let page: Page = serde_json::from_slice(&body.bytes).with_context(|| {
            format!("page {page_number} of the audit trail is not an audit-trail page")
        })?;
        for event in &page.data {
            if newest_seen
                .as_ref()
                .is_none_or(|(t, id)| (&event.timestamp, &event.id) > (t, id))
            {
                newest_seen = Some((event.timestamp.clone(), event.id.clone()));
            }
        }
        if !page.data.is_empty() {
            let name = format!("terraform/{account}/{stamp}/page-{page_number:05}.json");
            inputs.push(keep_raw(lake, options, &name, &body.bytes).await?);
        }
        // An empty page ends the trail whatever it says next: a server that
        // never stops paging must not make the pull run forever.
        match page.pagination.and_then(|p| p.next_page) {
            Some(next) if next > page_number && !page.data.is_empty() => {
                if page_number >= MAX_PAGES {
                    bail!(
                        "the audit trail did not end after {MAX_PAGES} pages of {PAGE_SIZE} events: stopped; nothing was converted"
                    );
                }
                page_number = next
            }
            _ => break,
        }
    }
    let ok = super::convert_fetched(lake, options, inputs, &mut summary, observer).await?;
    if ok {
        if let Some((time, id)) = newest_seen
            && checkpoint.newest_time.as_ref().is_none_or(|t| time > *t)
        {
            checkpoint.newest_time = Some(time);
            checkpoint.newest_id = Some(id);
        }
        let from = since.map_or_else(|| rfc3339(retention_start), rfc3339);
        checkpoint.cover(&from, &rfc3339(started));
    }
    super::finish(
        lake,
        &mut checkpoint,
        &summary,
        ok && summary.errors.is_empty(),
    )
    .await?;
    Ok(summary)
}

fn accept_json_api() -> reqwest::header::HeaderMap {
    let mut headers = reqwest::header::HeaderMap::new();
    headers.insert(
        reqwest::header::ACCEPT,
        reqwest::header::HeaderValue::from_static("application/vnd.api+json"),
    );
    headers
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}
