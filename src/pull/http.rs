//! The HTTP side of `pull`: one client with timeouts on every request,
//! retries for what is worth retrying (429 after the wait it asks for, 5xx,
//! dropped connections and cut bodies, with jittered exponential backoff),
//! and one-line errors for what is not (401/403 name the host and what to
//! check). The token goes only to the API's own host: downloads from
//! presigned URLs carry no `Authorization` header. No error or log line
//! holds the token.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use reqwest::header::{ACCEPT, AUTHORIZATION, HeaderMap, HeaderValue, RETRY_AFTER};
use reqwest::{StatusCode, Url};

/// `--timeout`: how long a request may wait for the server. An API page
/// must arrive whole within it; a download only gives up when the server
/// sends nothing for this long, since a month's archive of hundreds of MB
/// over a slow link takes minutes and is still healthy.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// Connecting gives up after this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The first backoff; it doubles with each retry, up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The longest `Retry-After` honoured; a longer one is waited in steps of
/// this, each counting as a retry.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// The largest API response read: a page of 1,000 events is 1–2 MiB, and a
/// server that sends more is not an API page.
const MAX_API_BODY: usize = 32 << 20;

/// Retries by default: 0.5 + 1 + 2 + 4 + 8 + 16 + 30 s of backoff at most,
/// so a request that keeps failing is given up within about two minutes.
pub const DEFAULT_MAX_RETRIES: u32 = 7;

/// A platform's API: its base URL, the token sent to it, and how hard to try.
pub struct Api {
    client: reqwest::Client,
    base: Url,
    authorization: HeaderValue,
    /// What to tell a user whose token is refused.
    token_hint: &'static str,
    max_retries: u32,
    /// The whole of an API request; also the longest silence in a download.
    timeout: Duration,
}

/// A response read whole.
pub struct Body {
    pub bytes: Bytes,
    pub headers: HeaderMap,
    pub status: StatusCode,
}

impl Api {
    /// `authorization` is the whole header value (`Bearer …`); `token_hint`
    /// names where the token came from, for the message when it is refused.
    pub fn new(
        base: &str,
        authorization: String,
        token_hint: &'static str,
        max_retries: u32,
        timeout: Duration,
    ) -> anyhow::Result<Api> {
        let base = Url::parse(base.trim_end_matches('/'))
            .with_context(|| format!("{base:?} is not a URL"))?;
        let mut authorization = HeaderValue::from_str(&authorization)
            .map_err(|_| anyhow::anyhow!("the token holds characters a header cannot"))?;
        authorization.set_sensitive(true);
        let client = reqwest::Client::builder()
            // Each read; API requests also bound their whole (`attempt`).
            .read_timeout(timeout)
            .connect_timeout(CONNECT_TIMEOUT)
            .user_agent(concat!("auditlake/", env!("CARGO_PKG_VERSION")))
            // A redirect must not carry the token to another host; reqwest
            // drops sensitive headers on cross-host redirects, and we follow
            // none anyway.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .context("cannot start the HTTP client")?;
        Ok(Api {
            client,
            base,
            authorization,
            token_hint,
            max_retries,
            timeout,
        })
    }

    /// The API's host, for messages.
    pub fn host(&self) -> String {
        host_of(&self.base)
    }

    /// `path` (with its query) under the base URL.
    pub fn url(&self, path_and_query: &str) -> anyhow::Result<Url> {
        let text = format!(
            "{}{path_and_query}",
            self.base.as_str().trim_end_matches('/')
        );
        Url::parse(&text).with_context(|| format!("{text:?} is not a URL"))
    }

    /// GETs `url` from the API (with the token), retrying as the module
    /// says; `headers` are added (`Accept`, `Range`).
    pub async fn get(&self, url: &Url, headers: HeaderMap) -> anyhow::Result<Body> {
        let mut all = headers;
        all.insert(AUTHORIZATION, self.authorization.clone());
        self.fetch(url, all, Some(self.timeout)).await
    }

    /// GETs a download once, for a caller that retries itself (with a
    /// fresh URL): no token; the body is read as it arrives, and only a
    /// silence of `--timeout` gives it up.
    pub async fn download_once(&self, url: &Url) -> Result<Download, Attempt> {
        let response = self.respond(url, &HeaderMap::new(), None).await?;
        Ok(Download { response })
    }

    async fn fetch(
        &self,
        url: &Url,
        headers: HeaderMap,
        whole: Option<Duration>,
    ) -> anyhow::Result<Body> {
        let mut retry = 0;
        loop {
            match self.attempt(url, &headers, whole).await {
                Ok(body) => return Ok(body),
                Err(Attempt::Fatal(e)) => return Err(e),
                Err(Attempt::Retry { wait, reason }) if retry < self.max_retries => {
                    let wait = wait.unwrap_or_else(|| backoff(retry));
                    tracing::warn!(
                        "{}: {reason}; retrying in {:.1} s ({} of {})",
                        shown(url),
                        wait.as_secs_f64(),
                        retry + 1,
                        self.max_retries
                    );
                    tokio::time::sleep(wait).await;
                    retry += 1;
                }
                Err(Attempt::Retry { reason, .. }) => bail!(
                    "{}: {reason}; gave up after {} retries (--max-retries)",
                    shown(url),
                    self.max_retries
                ),
            }
        }
    }

    /// One request, its body read whole (up to [`MAX_API_BODY`]), within
    /// `whole` if given.
    async fn attempt(
        &self,
        url: &Url,
        headers: &HeaderMap,
        whole: Option<Duration>,
    ) -> Result<Body, Attempt> {
        let mut response = self.respond(url, headers, whole).await?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut bytes = Vec::new();
        while let Some(chunk) = response.chunk().await.map_err(cut_short)? {
            if bytes.len() + chunk.len() > MAX_API_BODY {
                return Err(Attempt::Fatal(anyhow::anyhow!(
                    "{}: the response is larger than {} MiB, more than any page of the API holds",
                    shown(url),
                    MAX_API_BODY >> 20
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        if let Some(rate) = headers
            .get("ratelimit-remaining")
            .and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok())
            && rate == 0
        {
            // The next request would be refused: wait a moment first.
            tokio::time::sleep(FIRST_BACKOFF).await;
        }
        Ok(Body {
            bytes: bytes.into(),
            headers,
            status,
        })
    }

    /// Sends one request, within `whole` if given, and sorts its status:
    /// a success is returned with its body unread; the rest are a retry or
    /// a one-line error.
    async fn respond(
        &self,
        url: &Url,
        headers: &HeaderMap,
        whole: Option<Duration>,
    ) -> Result<reqwest::Response, Attempt> {
        let mut request = self.client.get(url.clone()).headers(headers.clone());
        if let Some(whole) = whole {
            request = request.timeout(whole);
        }
        let mut response = match request.send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(Attempt::Retry {
                    wait: None,
                    reason: format!("the request failed ({})", error_kind(&e)),
                });
            }
        };
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        if status == StatusCode::TOO_MANY_REQUESTS {
            return Err(Attempt::Retry {
                // Without a hint, the usual backoff: Heroku says nothing.
                wait: retry_after(response.headers()),
                reason: "rate limited (HTTP 429)".into(),
            });
        }
        if status.is_server_error() {
            return Err(Attempt::Retry {
                wait: None,
                reason: format!("the server failed (HTTP {})", status.as_u16()),
            });
        }
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = if headers.contains_key(AUTHORIZATION) {
                format!(
                    "{} refused the token (HTTP {}): check {} and that it may read the audit trail",
                    host_of(url),
                    status.as_u16(),
                    self.token_hint
                )
            } else {
                format!(
                    "{} refused the download (HTTP {}): the link may have expired",
                    host_of(url),
                    status.as_u16()
                )
            };
            return Err(Attempt::Fatal(anyhow::anyhow!(message)));
        }
        // The start of the body says why; the rest is not waited for.
        let mut text = Vec::new();
        while text.len() < 200 {
            match response.chunk().await.map_err(cut_short)? {
                Some(chunk) => text.extend_from_slice(&chunk),
                None => break,
            }
        }
        let text = String::from_utf8_lossy(&text[..text.len().min(200)]);
        Err(Attempt::Fatal(anyhow::anyhow!(
            "{}: HTTP {}: {}",
            shown(url),
            status.as_u16(),
            crate::report::one_line(&text)
        )))
    }
}

/// A download under way: its body, chunk by chunk.
pub struct Download {
    response: reqwest::Response,
}

impl Download {
    /// The next part of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, Attempt> {
        self.response.chunk().await.map_err(cut_short)
    }
}

/// A body that broke off is worth asking for again.
fn cut_short(e: reqwest::Error) -> Attempt {
    Attempt::Retry {
        wait: None,
        reason: format!("the response was cut short ({})", error_kind(&e)),
    }
}

/// How a request went wrong.
pub enum Attempt {
    /// Worth trying again, after `wait` if the server said how long.
    Retry {
        wait: Option<Duration>,
        reason: String,
    },
    Fatal(anyhow::Error),
}

/// The Accept header of the Heroku Platform API (`variant`: e.g.
/// `audit-trail`).
pub fn heroku_accept(variant: Option<&str>) -> HeaderMap {
    let value = match variant {
        Some(v) => format!("application/vnd.heroku+json; version=3.{v}"),
        None => "application/vnd.heroku+json; version=3".to_string(),
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        ACCEPT,
        HeaderValue::from_str(&value).expect("a valid header"),
    );
    headers
}

/// How long a 429 asks to wait, capped at [`MAX_RETRY_AFTER`]:
/// `Retry-After` in seconds or as an HTTP date (RFC 9110), else
/// `X-RateLimit-Reset`, which Terraform Cloud sends as the seconds until
/// its window resets (`0.076`; go-tfe waits for it) and some APIs as the
/// Unix time of the reset.
fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let text = |name| headers.get(name)?.to_str().ok().map(str::trim);
    let now = chrono::Utc::now();
    let wait = if let Some(value) = text(RETRY_AFTER.as_str()) {
        match value.parse::<u64>() {
            Ok(seconds) => Duration::from_secs(seconds),
            Err(_) => {
                let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
                (at.with_timezone(&chrono::Utc) - now)
                    .to_std()
                    .unwrap_or_default()
            }
        }
    } else {
        let reset: f64 = text("x-ratelimit-reset")?.parse().ok()?;
        if !reset.is_finite() || reset < 0.0 {
            return None;
        }
        // A value past 2001 in Unix seconds is a time, not a wait.
        let seconds = if reset > 1e9 {
            reset - now.timestamp_millis() as f64 / 1000.0
        } else {
            reset
        };
        Duration::from_secs_f64(seconds.clamp(0.0, MAX_RETRY_AFTER.as_secs_f64()))
    };
    Some(wait.min(MAX_RETRY_AFTER))
}

/// The wait before retry number `retry` (from 0): doubling from
/// [`FIRST_BACKOFF`], capped, with ±25 % jitter so that many clients do not
/// retry in step.
fn backoff(retry: u32) -> Duration {
    let base = FIRST_BACKOFF
        .saturating_mul(1 << retry.min(16))
        .min(MAX_BACKOFF);
    let jitter = rand::random_range(0.75..1.25);
    base.mul_f64(jitter)
}

/// A URL as shown in messages: without its query, which may hold a
/// presigned link's signature.
pub fn shown(url: &Url) -> String {
    let mut url = url.clone();
    url.set_query(None);
    url.to_string()
}

fn host_of(url: &Url) -> String {
    match url.port() {
        Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_string(),
    }
}

/// What kind of failure, without the URL reqwest would print (shown once
/// by the caller, without its query).
fn error_kind(e: &reqwest::Error) -> String {
    let kind = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else if e.is_body() || e.is_decode() {
        "the body was cut"
    } else {
        "the connection dropped"
    };
    let mut source = std::error::Error::source(e);
    let mut detail = String::new();
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_string()
    } else {
        format!("{kind}: {detail}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_its_jitter_and_is_capped() {
        for retry in 0..10 {
            let wait = backoff(retry).as_secs_f64();
            let base = (0.5 * f64::from(1u32 << retry)).min(30.0);
            assert!(
                wait >= base * 0.75 && wait <= base * 1.25,
                "{retry}: {wait}"
            );
        }
        let total: f64 = (0..DEFAULT_MAX_RETRIES)
            .map(|r| (0.5 * f64::from(1u32 << r)).min(30.0))
            .sum();
        assert!(total <= 120.0, "{total}");
    }

    #[test]
    fn shown_urls_lose_their_signature() {
        let url =
            Url::parse("https://bucket.s3.amazonaws.com/a.json.gz?X-Amz-Signature=secret").unwrap();
        assert_eq!(shown(&url), "https://bucket.s3.amazonaws.com/a.json.gz");
    }

    #[test]
    fn retry_after_is_seconds_a_date_or_the_rate_limit_reset_and_capped() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, HeaderValue::from_static("2"));
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(2)));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("3600"));
        assert_eq!(retry_after(&headers), Some(MAX_RETRY_AFTER));
        // A date in the past: go now.
        headers.insert(
            RETRY_AFTER,
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        let soon = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc2822();
        headers.insert(RETRY_AFTER, HeaderValue::from_str(&soon).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(28) && wait <= Duration::from_secs(30));
        headers.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&headers), None);

        // Terraform Cloud: the seconds until the window resets.
        let mut headers = HeaderMap::new();
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("0.076"));
        assert_eq!(retry_after(&headers), Some(Duration::from_millis(76)));
        let at = (chrono::Utc::now().timestamp() + 20).to_string();
        headers.insert("x-ratelimit-reset", HeaderValue::from_str(&at).unwrap());
        let wait = retry_after(&headers).unwrap();
        assert!(wait > Duration::from_secs(18) && wait <= Duration::from_secs(20));
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("-1"));
        assert_eq!(retry_after(&headers), None);
        headers.insert("x-ratelimit-reset", HeaderValue::from_static("NaN"));
        assert_eq!(retry_after(&headers), None);
    }
}
