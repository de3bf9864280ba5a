//! The lake: where data files and conversion records live, how they are
//! named, and how they are replaced atomically. Knows nothing of SQL or of
//! archive formats (only the [`TableSpec`](crate::table::TableSpec) shape).

pub(crate) mod commit;
pub(crate) mod ddl;
pub mod integrity;
pub(crate) mod journal;
pub(crate) mod layout;
pub(crate) mod local_reads;
pub(crate) mod lock;
pub(crate) mod manifest;
pub mod parquet;
pub(crate) mod snapshot;
pub(crate) mod status;
pub mod verify;
pub(crate) mod version;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use datafusion::arrow::datatypes::{DataType, Schema};
use datafusion::parquet::arrow::parquet_to_arrow_schema;
use datafusion::parquet::file::metadata::ParquetMetaDataReader;
use datafusion::prelude::SessionContext;
use futures::TryStreamExt;
use object_store::aws::AmazonS3Builder;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, RetryConfig};
use url::Url;

pub use layout::PartitionKey;
use layout::{META_DIR, is_hidden, parse_partition_dir};
use manifest::Manifest;
use snapshot::SnapshotStore;

/// Environment variable naming the default lake.
pub const LAKE_ENV: &str = "AUDITLAKE_LAKE";

/// Where `pull` keeps the bodies it fetched, unless told elsewhere
/// (`--raw`); conversions leave it alone.
pub const RAW_DIR: &str = "_auditlake/raw";

/// A lake: a local directory or an S3 prefix, reached through `object_store`
/// either way. Only writing month files differs (see [`Lake::month_writer`]).
#[derive(Clone, Debug)]
pub struct Lake {
    store: Arc<dyn ObjectStore>,
    /// The root as given to users: a path, or `s3://bucket/prefix`.
    display: String,
    /// `s3://bucket` for S3 lakes (what DataFusion registers the store under).
    store_url: Option<Url>,
    /// The root inside the store.
    prefix: ObjectPath,
    /// The root on disk for local lakes.
    local: Option<PathBuf>,
    /// Signs the integrity log's new entries (`--sign-key`).
    signer: Option<Arc<ed25519_dalek::SigningKey>>,
}

/// One data file of the lake.
#[derive(Clone, Debug)]
pub struct DataFile {
    pub table: String,
    pub key: PartitionKey,
    pub location: ObjectPath,
    pub bytes: u64,
}

/// What a table's directory holds ([`Lake::list_table`]).
#[derive(Debug, Default)]
pub struct TableListing {
    /// Its month files, ordered by month then owner.
    pub files: Vec<DataFile>,
    /// Every other file that no part of its path hides (`.` or `_`),
    /// relative to the lake, in order: readers of the directory meet them.
    pub strays: Vec<String>,
}

/// True for `s3://…` (and `s3a://…`) locations.
pub fn is_s3(location: &str) -> bool {
    location.starts_with("s3://") || location.starts_with("s3a://")
}

/// An S3 store for `bucket`, configured from the standard AWS environment
/// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`,
/// `AWS_REGION`/`AWS_DEFAULT_REGION`, `AWS_ENDPOINT_URL`, `AWS_ALLOW_HTTP`).
/// Retries are bounded so that a wrong endpoint or credentials fail within
/// about 30 seconds rather than hanging a scheduled job.
pub fn s3_store(url: &Url) -> anyhow::Result<Arc<dyn ObjectStore>> {
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .with_context(|| format!("{url}: an S3 location needs a bucket: s3://BUCKET/PREFIX"))?;
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(RetryConfig {
            max_retries: 2,
            retry_timeout: Duration::from_secs(15),
            ..RetryConfig::default()
        })
        .with_client_options(
            // Replaces the client options from_env read: carry AWS_ALLOW_HTTP over.
            ClientOptions::new()
                .with_allow_http(
                    std::env::var("AWS_ALLOW_HTTP").is_ok_and(|v| v.eq_ignore_ascii_case("true")),
                )
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60)),
        );
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        // S3-compatible servers are addressed by path, not virtual host.
        builder = builder
            .with_endpoint(endpoint)
            .with_virtual_hosted_style_request(false);
    }
    let store = builder
        .build()
        .with_context(|| format!("cannot configure S3 access for {url}"))?;
    Ok(Arc::new(store))
}

impl Lake {
    /// A lake at `location`: `s3://bucket/prefix` or a local directory
    /// (which need not exist yet: converting creates it).
    pub fn open(location: &str) -> anyhow::Result<Self> {
        if !is_s3(location) {
            return Lake::local(location);
        }
        let url = Url::parse(location).with_context(|| format!("{location}: not a valid URL"))?;
        let store = s3_store(&url)?;
        let prefix = ObjectPath::parse(url.path().trim_matches('/'))
            .with_context(|| format!("{location}: not a valid S3 prefix"))?;
        let store_url = Url::parse(&format!("s3://{}", url.host_str().unwrap_or_default()))?;
        Ok(Lake {
            store,
            display: location.trim_end_matches('/').to_string(),
            store_url: Some(store_url),
            prefix,
            local: None,
            signer: None,
        })
    }

    /// A lake in a local directory.
    pub fn local(root: impl Into<PathBuf>) -> anyhow::Result<Self> {
        let root: PathBuf = root.into();
        let root = if root.is_absolute() {
            root
        } else {
            std::env::current_dir()
                .context("cannot resolve the lake path: the current directory is unavailable")?
                .join(root)
        };
        let prefix = ObjectPath::from_absolute_path(&root)
            .with_context(|| format!("{}: not a usable lake path", root.display()))?;
        Ok(Lake {
            store: Arc::new(LocalFileSystem::new()),
            display: root.display().to_string(),
            store_url: None,
            prefix,
            local: Some(root),
            signer: None,
        })
    }

    /// This lake, signing the integrity log entries it appends with `key`.
    pub fn signing_with(mut self, key: ed25519_dalek::SigningKey) -> Self {
        self.signer = Some(Arc::new(key));
        self
    }

    pub(crate) fn signer(&self) -> Option<&ed25519_dalek::SigningKey> {
        self.signer.as_deref()
    }

    /// The lake's location as users wrote it (a path or an `s3://` URL).
    pub fn location(&self) -> &str {
        &self.display
    }

    /// The root directory of a local lake.
    pub fn local_root(&self) -> Option<&Path> {
        self.local.as_deref()
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// Lets `ctx` read this lake's objects, each as it was when the query
    /// listed it (see [`snapshot`]). Returns the store, whose
    /// [`SnapshotStore::replacements`] tells whether a failed query read a
    /// file that a conversion replaced meanwhile.
    pub fn register_store(&self, ctx: &SessionContext) -> Arc<SnapshotStore> {
        let (url, store) = match &self.store_url {
            Some(url) => (url.clone(), SnapshotStore::new(self.store.clone())),
            None => (
                Url::parse("file://").expect("file:// is a URL"),
                SnapshotStore::local(Arc::new(LocalFileSystem::new())),
            ),
        };
        let store = Arc::new(store);
        ctx.register_object_store(&url, store.clone());
        store
    }

    /// `rel` (slash-separated) under the lake root, in the store.
    pub fn object_path(&self, rel: &str) -> ObjectPath {
        let mut path = self.prefix.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path = path.clone().join(part);
        }
        path
    }

    /// `path` relative to the lake's root, `/`-separated (as the integrity
    /// log names files).
    pub fn relative(&self, path: &ObjectPath) -> String {
        path.prefix_match(&self.prefix)
            .map(|parts| {
                parts
                    .map(|p| p.as_ref().to_string())
                    .collect::<Vec<_>>()
                    .join("/")
            })
            .unwrap_or_else(|| path.to_string())
    }

    /// A URL DataFusion can read an object of this lake at.
    pub fn object_url(&self, path: &ObjectPath) -> String {
        match &self.store_url {
            Some(url) => format!("{}/{path}", url.as_str().trim_end_matches('/')),
            None => format!("/{path}"),
        }
    }

    /// URL of a table's directory, for a listing table.
    pub fn table_url(&self, table: &str) -> String {
        let dir = self.object_url(&self.object_path(table));
        format!("{dir}/")
    }

    pub fn manifest(&self) -> Manifest {
        Manifest::new(
            self.store.clone(),
            self.object_path(&format!("{META_DIR}/archives")),
        )
    }

    /// Where a partition's data file lives.
    pub fn partition_path(&self, table: &str, key: &PartitionKey) -> ObjectPath {
        self.object_path(&layout::partition_rel(table, key))
    }

    /// Whether the lake holds anything. For S3 this also proves the bucket
    /// and credentials work.
    pub async fn exists(&self) -> anyhow::Result<bool> {
        if let Some(root) = &self.local {
            return Ok(root.is_dir());
        }
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| store_error(e, &self.display))?;
        Ok(!listing.common_prefixes.is_empty() || !listing.objects.is_empty())
    }

    /// Table names: the top-level directories named as tables are
    /// (`[a-z][a-z0-9_]*`, see LAKE.md); anything else beside them is not
    /// the lake's.
    pub async fn tables(&self) -> anyhow::Result<Vec<String>> {
        if self.local.as_ref().is_some_and(|r| !r.is_dir()) {
            return Ok(Vec::new());
        }
        let listing = self
            .store
            .list_with_delimiter(Some(&self.prefix))
            .await
            .map_err(|e| store_error(e, &self.display))?;
        let mut tables: Vec<String> = listing
            .common_prefixes
            .iter()
            .filter_map(|p| p.filename().map(str::to_string))
            .filter(|name| layout::is_table_name(name))
            .collect();
        tables.sort();
        Ok(tables)
    }

    /// Every data file of a table, ordered by month then owner.
    pub async fn data_files(&self, table: &str) -> anyhow::Result<Vec<DataFile>> {
        Ok(self.list_table(table).await?.files)
    }

    /// A table's directory, listed once: its data files, and the other
    /// files readers of the directory would meet.
    pub async fn list_table(&self, table: &str) -> anyhow::Result<TableListing> {
        let dir = self.object_path(table);
        let objects: Vec<_> = self
            .store
            .list(Some(&dir))
            .try_collect()
            .await
            .map_err(|e| store_error(e, &self.display))?;
        let mut listing = TableListing::default();
        for meta in objects {
            let Some(rel) = meta.location.prefix_match(&dir) else {
                continue;
            };
            let parts: Vec<String> = rel.map(|p| p.as_ref().to_string()).collect();
            if parts.iter().any(|p| is_hidden(p)) {
                continue;
            }
            let key = match parts.as_slice() {
                [year, month, name] => match (
                    parse_partition_dir(year, "year"),
                    parse_partition_dir(month, "month"),
                    name.strip_suffix(".parquet"),
                ) {
                    (Some(year), Some(month), Some(owner)) => Some(PartitionKey {
                        year: year as i32,
                        month,
                        owner: owner.to_string(),
                    }),
                    _ => None,
                },
                _ => None,
            };
            match key {
                Some(key) => listing.files.push(DataFile {
                    table: table.to_string(),
                    key,
                    location: meta.location,
                    bytes: meta.size,
                }),
                None => listing.strays.push(self.relative(&meta.location)),
            }
        }
        listing.files.sort_by(|a, b| a.key.cmp(&b.key));
        listing.strays.sort();
        Ok(listing)
    }

    /// Row count of a data file, from its footer only; None when it does not exist.
    pub async fn row_count(&self, path: &ObjectPath) -> anyhow::Result<Option<u64>> {
        Ok(self.file_facts(path).await?.map(|f| f.rows))
    }

    /// Row count and declared order of a data file, from its footer only;
    /// None when it does not exist.
    pub async fn file_facts(&self, path: &ObjectPath) -> anyhow::Result<Option<FileFacts>> {
        let size = match self.store.head(path).await {
            Ok(meta) => meta.size,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(store_error(e, &self.object_url(path))),
        };
        // The footer: metadata, its length (4 bytes LE) and the magic `PAR1`.
        let not_parquet = || format!("{} is not a readable Parquet file", self.object_url(path));
        let fetch = |range: std::ops::Range<u64>| async move {
            self.store
                .get_range(path, range)
                .await
                .map_err(|e| store_error(e, &self.object_url(path)))
        };
        anyhow::ensure!(size >= 12, not_parquet());
        let tail = fetch(size - 8..size).await?;
        anyhow::ensure!(&tail[4..] == b"PAR1", not_parquet());
        let len = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
        anyhow::ensure!(len + 8 <= size, not_parquet());
        let footer = fetch(size - 8 - len..size - 8).await?;
        let metadata = ParquetMetaDataReader::decode_metadata(&footer).with_context(not_parquet)?;
        let columns = metadata.file_metadata().schema_descr();
        // The order every row group declares (ascending, nulls last), by name.
        let orders = metadata.row_groups().iter().map(|rg| {
            rg.sorting_columns().map(|sorting| {
                sorting
                    .iter()
                    .map(|s| {
                        let idx = s.column_idx as usize;
                        (!s.descending && !s.nulls_first && idx < columns.num_columns())
                            .then(|| columns.column(idx).name().to_string())
                    })
                    .collect::<Option<Vec<_>>>()
            })
        });
        let mut sorted_by = None;
        for (i, order) in orders.enumerate() {
            let order = order.flatten();
            if i == 0 {
                sorted_by = order;
            } else if order != sorted_by {
                sorted_by = None;
                break;
            }
        }
        let file = metadata.file_metadata();
        let schema = parquet_to_arrow_schema(file.schema_descr(), file.key_value_metadata())
            .with_context(not_parquet)?;
        let format_version = file.key_value_metadata().and_then(|kv| {
            kv.iter()
                .find(|e| e.key == parquet::FORMAT_VERSION_KEY)
                .and_then(|e| e.value.as_deref()?.parse().ok())
        });
        Ok(Some(FileFacts {
            rows: file.num_rows() as u64,
            format_version,
            created_by: file.created_by().map(str::to_string),
            sorted_by: sorted_by.unwrap_or_default(),
            columns: schema
                .fields()
                .iter()
                .map(|f| (f.name().clone(), f.data_type().clone()))
                .collect(),
        }))
    }
}

/// What a data file's footer says about it.
#[derive(Clone, Debug)]
pub struct FileFacts {
    pub rows: u64,
    /// The lake format version its footer records (None before format 1).
    pub format_version: Option<u32>,
    /// The footer's `created_by`: the program that wrote it.
    pub created_by: Option<String>,
    /// The columns its rows are sorted by (ascending, nulls last), as every
    /// row group declares; empty when unknown.
    pub sorted_by: Vec<String>,
    /// Each column's name and type, as the file stores them.
    pub columns: Vec<(String, DataType)>,
}

impl FileFacts {
    /// Checks that the file stores `schema`'s columns with their types, so
    /// rows can be merged into it; a file of an older format (before 1: ids
    /// as 16-byte UUIDs, timestamps in microseconds) says how to upgrade.
    pub fn check_layout(&self, schema: &Schema, url: &str) -> anyhow::Result<()> {
        for field in schema.fields() {
            let stored = self.columns.iter().find(|(name, _)| name == field.name());
            if let Some((_, stored)) = stored
                && stored != field.data_type()
            {
                anyhow::bail!(
                    "{url} stores column {} as {stored}, but this version of auditlake writes {}: \
                     the file comes from an earlier version; run `auditlake upgrade` on the lake first",
                    field.name(),
                    field.data_type()
                );
            }
        }
        Ok(())
    }
}

/// Says which object store failed and why in one line, never the credentials.
pub fn store_error(e: object_store::Error, location: &str) -> anyhow::Error {
    let reason = match &e {
        object_store::Error::NotFound { .. } => "not found".to_string(),
        _ => {
            let mut text = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                let more = s.to_string();
                if !text.contains(&more) {
                    text.push_str(": ");
                    text.push_str(&more);
                }
                source = s.source();
            }
            text.replace('\n', " ")
        }
    };
    anyhow::anyhow!("{location}: {reason}")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// LAKE.md names the file of an owner with bytes outside
    /// `[A-Za-z0-9._-]`: the escapes of [`layout::owner_file_name`], whose
    /// `%` the object store writes as `%25`, on disk as in an S3 key.
    #[tokio::test]
    async fn owner_files_are_named_as_the_contract_says() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::local(dir.path()).unwrap();
        let key = PartitionKey {
            year: 2024,
            month: 3,
            owner: "a/b c".into(),
        };
        let path = lake.partition_path("heroku", &key);
        assert_eq!(path.filename(), Some("a%252Fb%2520c.parquet"));
        lake.store.put(&path, "x".into()).await.unwrap();
        let on_disk = dir
            .path()
            .join("heroku/year=2024/month=3/a%252Fb%2520c.parquet");
        assert!(on_disk.is_file(), "{on_disk:?} is missing");
        assert_eq!(
            lake.relative(&path),
            "heroku/year=2024/month=3/a%252Fb%2520c.parquet"
        );
    }
}
