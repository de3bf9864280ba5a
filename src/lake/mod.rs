//! The lake: where data files and conversion records live, how they are
//! named, and how they are replaced atomically. Knows nothing of SQL or of
//! archive formats (only the [`TableSpec`](crate::table::TableSpec) shape).

pub mod commit;
pub mod layout;
pub mod manifest;
pub mod parquet;
pub mod status;

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::Context;
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};

pub use layout::PartitionKey;
use layout::{META_DIR, is_hidden, parse_partition_dir};
use manifest::Manifest;

/// Environment variable naming the default lake.
pub const LAKE_ENV: &str = "AUDITLAKE_LAKE";

/// A lake rooted in a local directory.
#[derive(Clone, Debug)]
pub struct Lake {
    root: PathBuf,
}

/// One data file of the lake.
#[derive(Clone, Debug)]
pub struct DataFile {
    pub table: String,
    pub key: PartitionKey,
    pub path: PathBuf,
    pub bytes: u64,
}

impl Lake {
    /// A lake at `root` (which need not exist yet: converting creates it).
    pub fn local(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root: PathBuf = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .context("cannot resolve the lake path: the current directory is unavailable")?
                .join(root)
        };
        Ok(Lake { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn exists(&self) -> bool {
        self.root.is_dir()
    }

    /// The bookkeeping directory (`_auditlake`).
    pub fn meta_dir(&self) -> PathBuf {
        self.root.join(META_DIR)
    }

    pub fn manifest(&self) -> Manifest {
        Manifest::new(&self.meta_dir())
    }

    pub fn table_dir(&self, table: &str) -> PathBuf {
        self.root.join(table)
    }

    pub fn partition_file(&self, table: &str, key: &PartitionKey) -> PathBuf {
        layout::partition_file(&self.root, table, key)
    }

    /// Takes the lake's writer lock, waiting if another conversion holds it.
    /// Two conversions merging into the same month file at once would lose
    /// one of the merges; the lock serialises them.
    pub fn lock_for_writing(&self) -> anyhow::Result<LakeLock> {
        let dir = self.meta_dir();
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create the lake at {}", self.root.display()))?;
        let path = dir.join("lock");
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                tracing::info!("another conversion holds {}; waiting", path.display());
                file.lock()
                    .with_context(|| format!("cannot lock {}", path.display()))?;
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(e).with_context(|| format!("cannot lock {}", path.display()));
            }
        }
        Ok(LakeLock { _file: file })
    }

    /// Table names: the visible top-level directories.
    pub fn tables(&self) -> io::Result<Vec<String>> {
        let mut tables = Vec::new();
        for entry in read_dir_if_exists(&self.root)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if entry.file_type()?.is_dir() && !is_hidden(&name) {
                tables.push(name);
            }
        }
        tables.sort();
        Ok(tables)
    }

    /// Every data file of a table, ordered by month then owner.
    pub fn data_files(&self, table: &str) -> io::Result<Vec<DataFile>> {
        let mut files = Vec::new();
        for year_entry in read_dir_if_exists(&self.table_dir(table))? {
            let year_entry = year_entry?;
            let Some(year) = parse_partition_dir(&year_entry.file_name().to_string_lossy(), "year")
            else {
                continue;
            };
            for month_entry in std::fs::read_dir(year_entry.path())? {
                let month_entry = month_entry?;
                let Some(month) =
                    parse_partition_dir(&month_entry.file_name().to_string_lossy(), "month")
                else {
                    continue;
                };
                for file in std::fs::read_dir(month_entry.path())? {
                    let file = file?;
                    let name = file.file_name().to_string_lossy().into_owned();
                    let Some(owner) = name.strip_suffix(".parquet") else {
                        continue;
                    };
                    if is_hidden(&name) {
                        continue;
                    }
                    files.push(DataFile {
                        table: table.to_string(),
                        key: PartitionKey {
                            year: year as i32,
                            month,
                            owner: owner.to_string(),
                        },
                        path: file.path(),
                        bytes: file.metadata()?.len(),
                    });
                }
            }
        }
        files.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(files)
    }
}

/// Held while converting; released on drop.
pub struct LakeLock {
    _file: File,
}

fn read_dir_if_exists(
    dir: &Path,
) -> io::Result<Box<dyn Iterator<Item = io::Result<std::fs::DirEntry>>>> {
    match std::fs::read_dir(dir) {
        Ok(entries) => Ok(Box::new(entries)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Box::new(std::iter::empty())),
        Err(e) => Err(e),
    }
}

/// Row count of a Parquet file, from its footer only.
pub fn parquet_row_count(path: &Path) -> anyhow::Result<u64> {
    let file = File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let reader = SerializedFileReader::new(file)
        .with_context(|| format!("{} is not a readable Parquet file", path.display()))?;
    Ok(reader.metadata().file_metadata().num_rows() as u64)
}
