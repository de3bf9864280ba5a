//! A summary of what a lake holds, read from directory listings, Parquet
//! footers and conversion records (no data pages are read).

use serde::Serialize;

use super::Lake;
use super::journal::RunJournal;
use super::manifest::ArchiveRecord;
use super::version::LakeFormat;

#[derive(Debug, Serialize)]
pub struct LakeStatus {
    pub lake: String,
    /// The lake format version (`1`; `0.3` and the like for a lake written
    /// before format 1, which `auditlake upgrade` rewrites).
    pub format_version: String,
    /// Whether this build must upgrade the lake before it writes or reads it.
    pub needs_upgrade: bool,
    pub tables: Vec<TableStatus>,
    pub archives: Vec<ArchiveRecord>,
    /// Whether a conversion was interrupted (or is running) with part of its
    /// work committed: readers see some months new and some old until it is
    /// completed.
    pub interrupted: bool,
    /// The journals of such runs (see LAKE.md).
    pub runs: Vec<RunJournal>,
}

#[derive(Debug, Serialize)]
pub struct TableStatus {
    pub name: String,
    pub files: usize,
    pub rows: u64,
    pub bytes: u64,
    pub months: Vec<MonthStatus>,
}

#[derive(Debug, Serialize)]
pub struct MonthStatus {
    /// `YYYY-MM`.
    pub month: String,
    /// Owners (accounts, organisations) with a file this month.
    pub owners: Vec<String>,
    pub rows: u64,
    pub bytes: u64,
}

impl Lake {
    pub async fn status(&self) -> anyhow::Result<LakeStatus> {
        let mut tables = Vec::new();
        for name in self.tables().await? {
            let mut table = TableStatus {
                name: name.clone(),
                files: 0,
                rows: 0,
                bytes: 0,
                months: Vec::new(),
            };
            for file in self.data_files(&name).await? {
                let rows = self.row_count(&file.location).await?.unwrap_or(0);
                let label = file.key.month_label();
                if table.months.last().is_none_or(|m| m.month != label) {
                    table.months.push(MonthStatus {
                        month: label,
                        owners: Vec::new(),
                        rows: 0,
                        bytes: 0,
                    });
                }
                let month = table.months.last_mut().expect("pushed above");
                month.owners.push(file.key.owner.clone());
                month.rows += rows;
                month.bytes += file.bytes;
                table.files += 1;
                table.rows += rows;
                table.bytes += file.bytes;
            }
            tables.push(table);
        }
        let format = self.format().await?;
        let runs: Vec<RunJournal> = self
            .run_journals()
            .await?
            .into_iter()
            .filter(RunJournal::mid_run)
            .collect();
        Ok(LakeStatus {
            interrupted: !runs.is_empty(),
            runs,
            lake: self.location().to_string(),
            format_version: format.label(),
            needs_upgrade: matches!(format, LakeFormat::Legacy(_)),
            tables,
            archives: self.manifest().list().await?,
        })
    }
}
