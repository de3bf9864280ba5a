//! Heroku Enterprise daily events, `GET /enterprise-accounts/{account}/events?day=YYYY-MM-DD`,
//! paged as the Platform API pages lists: a `206 Partial Content` answer
//! carries `Next-Range`, sent back as `Range` for the next page, until a
//! `200` ends the day.
//!
//! The window runs from the checkpoint's last day (read again: it may have
//! grown since) to today; a first pull takes the last 7 days unless
//! `--from` says otherwise. Each page is kept and converted like an archive
//! of Heroku events (a JSON array).

use std::sync::Arc;

use anyhow::Context;
use chrono::{Days, NaiveDate, Utc};
use reqwest::header::{HeaderValue, RANGE};

use super::http::{Api, heroku_accept};
use super::raw::keep_raw;
use super::{PullOptions, PullSummary};
use crate::convert::Observer;
use crate::lake::Lake;

/// Days a first pull takes when `--from` is not given.
const FIRST_DAYS: u64 = 7;

/// Pages of one day before the pull stops following `Next-Range` (a server
/// that never ends a day must not make the pull run forever).
const MAX_PAGES_PER_DAY: u64 = 10_000;

/// What to pull.
pub struct EventsPull {
    pub account: String,
    pub from: Option<NaiveDate>,
    pub to: Option<NaiveDate>,
}

/// Pulls the account's events, day by day.
pub async fn pull(
    lake: &Lake,
    api: &Api,
    what: &EventsPull,
    options: &PullOptions,
    observer: Arc<dyn Observer>,
) -> anyhow::Result<PullSummary> {
    let source = "heroku-events";
    let super::Started {
        _lock,
        mut checkpoint,
        mut summary,
    } = super::start(lake, options, source, &what.account).await?;
    let today = Utc::now().date_naive();
    let last_day = checkpoint
        .windows
        .last()
        .and_then(|w| NaiveDate::parse_from_str(&w[1], "%Y-%m-%d").ok());
    let from = what
        .from
        .or(last_day)
        .unwrap_or_else(|| today - Days::new(FIRST_DAYS - 1));
    let to = what.to.unwrap_or(today).min(today);
    let account: String = url::form_urlencoded::byte_serialize(what.account.as_bytes()).collect();
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let mut inputs = Vec::new();
    let mut day = from;
    while day <= to {
        let url = api.url(&format!("/enterprise-accounts/{account}/events?day={day}"))?;
        let mut range: Option<HeaderValue> = None;
        for page in 1..=MAX_PAGES_PER_DAY {
            let mut headers = heroku_accept(None);
            if let Some(r) = &range {
                headers.insert(RANGE, r.clone());
            }
            let body = api.get(&url, headers).await?;
            summary.pages += 1;
            summary.bytes += body.bytes.len() as u64;
            // Only how many: the events themselves are `source`'s to read.
            let events: Vec<serde::de::IgnoredAny> = serde_json::from_slice(&body.bytes)
                .with_context(|| format!("{day}, page {page}: the events are not a JSON array"))?;
            if !events.is_empty() {
                let name = format!(
                    "heroku-events/{}/{day}/{stamp}-p{page:05}.json",
                    what.account
                );
                inputs.push(keep_raw(lake, options, &name, &body.bytes).await?);
            }
            // An empty page, or a Next-Range that does not move, ends the
            // day: a server that keeps answering 206 must not hold the pull.
            let next = (body.status.as_u16() == 206 && !events.is_empty())
                .then(|| body.headers.get("next-range").cloned())
                .flatten();
            range = next.filter(|n| Some(n) != range.as_ref());
            if range.is_none() {
                break;
            }
        }
        day = day + Days::new(1);
    }
    let ok = super::convert_fetched(lake, options, inputs, &mut summary, observer).await?;
    if ok && from <= to {
        checkpoint.cover(&from.to_string(), &to.to_string());
    }
    super::finish(lake, &mut checkpoint, &summary, ok).await?;
    Ok(summary)
}
