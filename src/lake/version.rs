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
    /// Written before format 1 (no `lake.json`): the version of auditlake
    /// that wrote one of its files, as its footer says (e.g. `0.3.0`).
    Legacy(String),
}

impl LakeFormat {
    /// The format version as shown by `status`: `1`, `0.3`, ….
    pub fn label(&self) -> String {
        match self {
            LakeFormat::Empty | LakeFormat::Current => FORMAT_VERSION.to_string(),
            LakeFormat::Newer(v) => v.to_string(),
            LakeFormat::Legacy(version) => legacy_format(version),
        }
    }
}

/// The format label of a lake written by auditlake `version` before format
/// 1: its major.minor (`0.3.0` → `0.3`).
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

    /// Records that the lake is in this build's format.
    pub async fn write_info(&self) -> anyhow::Result<()> {
        let info = LakeInfo {
            format_version: FORMAT_VERSION,
            written_by: created_by(),
        };
        let path = self.info_path();
        let json = serde_json::to_vec_pretty(&info)?;
        self.store()
            .put(&path, PutPayload::from(json))
            .await
            .map_err(|e| store_error(e, &self.object_url(&path)))?;
        Ok(())
    }

    /// Which format the lake is in: from `lake.json`, else (no such file)
    /// empty or legacy, from the first data file's footer.
    pub async fn format(&self) -> anyhow::Result<LakeFormat> {
        if let Some(info) = self.info().await? {
            return Ok(match info.format_version {
                v if v == FORMAT_VERSION => LakeFormat::Current,
                v if v > FORMAT_VERSION => LakeFormat::Newer(v),
                v => LakeFormat::Legacy(format!("{v}")),
            });
        }
        for table in self.tables().await? {
            if let Some(file) = self.data_files(&table).await?.first() {
                let facts = self.file_facts(&file.location).await?;
                let writer = facts
                    .and_then(|f| f.created_by)
                    .and_then(|c| written_by_version(&c))
                    .unwrap_or_else(|| "0".to_string());
                return Ok(LakeFormat::Legacy(writer));
            }
        }
        Ok(LakeFormat::Empty)
    }

    /// Fails, saying what to do, unless this build may write into the lake;
    /// records the format in a new lake.
    pub async fn ensure_writable(&self) -> anyhow::Result<()> {
        match self.format().await? {
            LakeFormat::Current => Ok(()),
            LakeFormat::Empty => self.write_info().await,
            other => Err(self.format_error(&other)),
        }
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
                "the lake at {lake} is in format {} (written by auditlake {}), and this auditlake reads and writes format {FORMAT_VERSION}: \
                 run `auditlake upgrade --lake {lake}` first",
                other.label(),
                match other {
                    LakeFormat::Legacy(v) => v.as_str(),
                    _ => "?",
                }
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
        assert_eq!(LakeFormat::Legacy("0.3.0".into()).label(), "0.3");
        assert_eq!(LakeFormat::Legacy("0".into()).label(), "0");
        assert_eq!(LakeFormat::Current.label(), "1");
    }
}
