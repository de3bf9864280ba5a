//! Which lake format a lake is in, and whether this build may read or write
//! it. `_auditlake/lake.json` records the format version (LAKE.md); lakes
//! written before format 1 have no such file, and their data files say
//! which version wrote them (`created_by` in the footer).
//!
//! A build writes only into a lake of its own format (an older one must be
//! upgraded first, a newer one needs a newer build) and reads only lakes it
//! answers correctly: its own format.

use object_store::{ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

use super::layout::META_DIR;
use super::parquet::{FORMAT_VERSION, created_by};
use super::{Lake, store_error};

/// The contents of `_auditlake/lake.json`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct LakeInfo {
    /// The lake format version every data file of the lake follows.
    pub format_version: u32,
    /// The build that created the lake or last changed its format.
    pub written_by: String,
    /// While `auditlake upgrade` runs (or after it was interrupted): the
    /// format it upgrades from; some files may still be in that format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upgrading_from: Option<String>,
}

/// The format a lake is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LakeFormat {
    /// No data and no `lake.json`: a new lake, written in this build's format.
    Empty,
    /// This build's format.
    Current,
    /// A format newer than this build knows.
    Newer(u32),
    /// Written before format 1, or an upgrade from it still to finish: the
    /// format, named by the version of auditlake that wrote it (`0.3`).
    Legacy(String),
}

impl LakeFormat {
    /// The format version as shown by `status`: `1`, `0.3`, ….
    pub fn label(&self) -> String {
        match self {
            LakeFormat::Empty | LakeFormat::Current => FORMAT_VERSION.to_string(),
            LakeFormat::Newer(v) => v.to_string(),
            LakeFormat::Legacy(label) => label.clone(),
        }
    }
}

/// The format of a file written before format 1 by auditlake `version`:
/// its major.minor (`0.3.0` → `0.3`).
fn legacy_format(version: &str) -> String {
    let mut parts = version.split('.');
    match (parts.next(), parts.next()) {
        (Some(major), Some(minor)) => format!("{major}.{minor}"),
        _ => version.to_string(),
    }
}

impl Lake {
    fn info_path(&self) -> object_store::path::Path {
        self.object_path(&format!("{META_DIR}/lake.json"))
    }

    /// `_auditlake/lake.json`, if the lake has one.
    pub async fn info(&self) -> anyhow::Result<Option<LakeInfo>> {
        let path = self.info_path();
        let bytes = match self.store().get(&path).await {
            Ok(result) => result.bytes().await,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => Err(e),
        }
        .map_err(|e| store_error(e, &self.object_url(&path)))?;
        let info = serde_json::from_slice(&bytes).map_err(|e| {
            anyhow::anyhow!(
                "{}: not a lake description ({e}); it should hold {{\"format_version\": {FORMAT_VERSION}, …}}",
                self.object_url(&path)
            )
        })?;
        Ok(Some(info))
    }

    /// Records that the lake is in this build's format, or (with
    /// `upgrading_from`) that an upgrade to it has begun.
    pub async fn write_info(&self, upgrading_from: Option<&str>) -> anyhow::Result<()> {
        let info = LakeInfo {
            format_version: FORMAT_VERSION,
            written_by: created_by(),
            upgrading_from: upgrading_from.map(str::to_string),
        };
        let path = self.info_path();
        let json = serde_json::to_vec_pretty(&info)?;
        self.store()
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| store_error(e, &self.object_url(&path)))?;
        Ok(())
    }

    /// Which format the lake is in: from `lake.json`; without one (a lake
    /// before format 1, or a first conversion that had not finished), from
    /// the first data file's footer; without data, empty.
    pub async fn format(&self) -> anyhow::Result<LakeFormat> {
        if let Some(info) = self.info().await? {
            return Ok(match (info.format_version, info.upgrading_from) {
                (_, Some(from)) => LakeFormat::Legacy(from),
                (v, None) if v == FORMAT_VERSION => LakeFormat::Current,
                (v, None) if v > FORMAT_VERSION => LakeFormat::Newer(v),
                (v, None) => LakeFormat::Legacy(v.to_string()),
            });
        }
        for table in self.tables().await? {
            if let Some(file) = self.data_files(&table).await?.first() {
                let facts = self.file_facts(&file.location).await?;
                return Ok(match facts.as_ref().and_then(|f| f.format_version) {
                    Some(v) if v == FORMAT_VERSION => LakeFormat::Current,
                    Some(v) if v > FORMAT_VERSION => LakeFormat::Newer(v),
                    _ => LakeFormat::Legacy(
                        facts
                            .and_then(|f| f.created_by)
                            .and_then(|c| written_by_version(&c))
                            .map_or_else(|| "0".to_string(), |v| legacy_format(&v)),
                    ),
                });
            }
        }
        Ok(LakeFormat::Empty)
    }

    /// Fails, saying what to do, unless this build may write into the lake.
    /// (A conversion records the format once it has written data: see
    /// [`Lake::record_format`].)
    pub async fn ensure_writable(&self) -> anyhow::Result<()> {
        match self.format().await? {
            LakeFormat::Current | LakeFormat::Empty => Ok(()),
            other => Err(self.format_error(&other)),
        }
    }

    /// Writes `lake.json` if the lake has none yet (after a first
    /// conversion: a run that wrote nothing leaves nothing behind).
    pub async fn record_format(&self) -> anyhow::Result<()> {
        if self.info().await?.is_none() {
            self.write_info(None).await?;
        }
        Ok(())
    }

    /// Fails, saying what to do, unless this build reads the lake correctly.
    pub async fn ensure_readable(&self) -> anyhow::Result<()> {
        match self.format().await? {
            LakeFormat::Current | LakeFormat::Empty => Ok(()),
            other => Err(self.format_error(&other)),
        }
    }

    /// What to tell a user whose lake is in another format.
    pub fn format_error(&self, format: &LakeFormat) -> anyhow::Error {
        let lake = self.location();
        match format {
            LakeFormat::Newer(v) => anyhow::anyhow!(
                "the lake at {lake} is in format {v}, newer than this auditlake ({}, format {FORMAT_VERSION}) knows: \
                 use a newer auditlake",
                env!("CARGO_PKG_VERSION")
            ),
            other => anyhow::anyhow!(
                "the lake at {lake} is in format {}, and this auditlake reads and writes format {FORMAT_VERSION}: \
                 run `auditlake upgrade --lake {lake}` first",
                other.label(),
            ),
        }
    }
}

/// The version in a footer's `created_by` written by auditlake
/// (`auditlake 0.3.0`, `auditlake version 1.0.0`).
pub fn written_by_version(created_by: &str) -> Option<String> {
    let rest = created_by.strip_prefix("auditlake ")?;
    let rest = rest.strip_prefix("version ").unwrap_or(rest);
    Some(rest.split_whitespace().next()?.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_from_created_by() {
        assert_eq!(
            written_by_version("auditlake 0.3.0").as_deref(),
            Some("0.3.0")
        );
        assert_eq!(
            written_by_version("auditlake version 1.0.0").as_deref(),
            Some("1.0.0")
        );
        assert_eq!(written_by_version("parquet-rs version 59.0.0"), None);
        assert_eq!(legacy_format("0.3.0"), "0.3");
        assert_eq!(legacy_format("0"), "0");
        assert_eq!(LakeFormat::Current.label(), "1");
    }
}
