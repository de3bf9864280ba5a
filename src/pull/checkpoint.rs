//! Where a source's pulls have got to: `_auditlake/pull/<source>-<account>.json`.
//!
//! Written only after the data it covers is committed to the lake, so a pull
//! killed at any point fetches again at most what it had not committed. It
//! records, per source: the newest event time and id seen, the months (with
//! the checksum pulled) or the time windows covered, the retention gaps the
//! API could no longer fill, and the last pull's time, result and volume.

use anyhow::Context;
use object_store::ObjectStoreExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::lake::Lake;

/// The checkpoint of one source and account.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Checkpoint {
    pub source: String,
    pub account: String,
    /// The newest event time seen (RFC 3339), and its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest_id: Option<String>,
    /// Heroku archives: each month pulled (`YYYY-MM`) and what was pulled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub months: BTreeMap<String, PulledMonth>,
    /// Time windows covered by successful pulls, `[from, to]` (RFC 3339),
    /// merged where they touch.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<[String; 2]>,
    /// Windows the API could no longer serve (past its retention).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub gaps: Vec<[String; 2]>,
    #[serde(default)]
    pub last_pull: Option<LastPull>,
}

/// A month archive as pulled.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct PulledMonth {
    pub checksum: String,
    pub size: u64,
    pub pulled_at: String,
}

/// The last pull: when, how it ended, how much it fetched.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct LastPull {
    pub at: String,
    pub ok: bool,
    pub pages: u64,
    pub bytes: u64,
}

impl Checkpoint {
    fn path(source: &str, account: &str) -> String {
        format!("_auditlake/pull/{source}-{account}.json")
    }

    /// The checkpoint of `source` and `account`, or a new one.
    pub async fn load(lake: &Lake, source: &str, account: &str) -> anyhow::Result<Checkpoint> {
        let path = lake.object_path(&Self::path(source, account));
        match lake.store().get(&path).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a pull checkpoint", lake.object_url(&path)))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(Checkpoint {
                source: source.to_string(),
                account: account.to_string(),
                ..Checkpoint::default()
            }),
            Err(e) => Err(e).context("cannot read the pull checkpoint"),
        }
    }

    /// Every checkpoint of the lake, for `status`.
    pub async fn all(lake: &Lake) -> anyhow::Result<Vec<Checkpoint>> {
        use futures::TryStreamExt;
        let dir = lake.object_path("_auditlake/pull");
        let metas: Vec<_> = lake.store().list(Some(&dir)).try_collect().await?;
        let mut found = Vec::new();
        for meta in metas {
            if !meta.location.as_ref().ends_with(".json") {
                continue;
            }
            let bytes = lake.store().get(&meta.location).await?.bytes().await?;
            if let Ok(checkpoint) = serde_json::from_slice(&bytes) {
                found.push(checkpoint);
            }
        }
        Ok(found)
    }

    /// Writes the checkpoint (in one step: a reader sees the old or the new).
    pub async fn save(&self, lake: &Lake) -> anyhow::Result<()> {
        let path = lake.object_path(&Self::path(&self.source, &self.account));
        let bytes = serde_json::to_vec_pretty(self)?;
        lake.store()
            .put(&path, bytes.into())
            .await
            .context("cannot write the pull checkpoint")?;
        Ok(())
    }

    /// What no successful pull covers between the first and the last window
    /// (holes between windows), then what the API's retention lost.
    pub fn holes(&self) -> Vec<[String; 2]> {
        let day = |t: &str| chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d").ok();
        let mut holes: Vec<[String; 2]> = self
            .windows
            .windows(2)
            .filter_map(|w| match (day(&w[0][1]), day(&w[1][0])) {
                // Days: the days strictly between the windows.
                (Some(end), Some(start)) => (start - end > chrono::Duration::days(1)).then(|| {
                    [
                        (end + chrono::Duration::days(1)).to_string(),
                        (start - chrono::Duration::days(1)).to_string(),
                    ]
                }),
                _ => Some([w[0][1].clone(), w[1][0].clone()]),
            })
            .collect();
        holes.extend(self.gaps.iter().cloned());
        holes
    }

    /// One line for `status`: what is covered, the holes, the last pull.
    pub fn summary_line(&self) -> String {
        let covered = if !self.months.is_empty() {
            let first = self.months.keys().next().expect("not empty");
            let last = self.months.keys().next_back().expect("not empty");
            format!("months {first}..{last} ({})", self.months.len())
        } else if let (Some(first), Some(last)) = (self.windows.first(), self.windows.last()) {
            format!("{} to {}", first[0], last[1])
        } else {
            "nothing yet".to_string()
        };
        let holes = self.holes();
        let holes = if holes.is_empty() {
            "no gaps".to_string()
        } else {
            let list: Vec<String> = holes
                .iter()
                .map(|h| format!("{} to {}", h[0], h[1]))
                .collect();
            format!("gaps: {}", list.join(", "))
        };
        let last = match &self.last_pull {
            Some(p) => format!("last pull {} {}", p.at, if p.ok { "ok" } else { "failed" }),
            None => "never pulled".to_string(),
        };
        format!(
            "{} {}: {covered}; {holes}; {last}",
            self.source, self.account
        )
    }

    /// Adds `[from, to]` to the covered windows, merging overlapping ones.
    pub fn cover(&mut self, from: &str, to: &str) {
        self.windows.push([from.to_string(), to.to_string()]);
        self.windows.sort();
        let mut merged: Vec<[String; 2]> = Vec::new();
        for w in self.windows.drain(..) {
            match merged.last_mut() {
                Some(last) if w[0] <= last[1] => {
                    if w[1] > last[1] {
                        last[1] = w[1].clone();
                    }
                }
                _ => merged.push(w),
            }
        }
        self.windows = merged;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_merge_where_they_overlap() {
        let mut c = Checkpoint::default();
        c.cover("2024-01-10T00:00:00Z", "2024-01-20T00:00:00Z");
        c.cover("2024-01-01T00:00:00Z", "2024-01-05T00:00:00Z");
        c.cover("2024-01-19T00:00:00Z", "2024-01-25T00:00:00Z");
        assert_eq!(
            c.windows,
            [
                [
                    "2024-01-01T00:00:00Z".to_string(),
                    "2024-01-05T00:00:00Z".to_string()
                ],
                [
                    "2024-01-10T00:00:00Z".to_string(),
                    "2024-01-25T00:00:00Z".to_string()
                ],
            ]
        );
    }
}
