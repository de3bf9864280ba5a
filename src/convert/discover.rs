//! Finds the archives named on the command line: local files and
//! directories, and `s3://` objects and prefixes (listed like directories).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use tokio::io::AsyncWriteExt;

use crate::lake::{is_s3, s3_store, store_error};

/// One archive to convert.
#[derive(Clone, Debug)]
pub struct Input {
    /// How the user sees it: a path or an `s3://` URL.
    pub display: String,
    pub source: InputSource,
}

#[derive(Clone, Debug)]
pub enum InputSource {
    Local(PathBuf),
    Remote(Arc<dyn ObjectStore>, ObjectPath),
}

/// The last component of a path or URL.
pub fn file_name(display: &str) -> &str {
    display.rsplit(['/', '\\']).next().unwrap_or(display)
}

/// Expands the command line's paths and URLs into a sorted list of inputs.
/// Sorted order makes runs reproducible: when two archives hold the same
/// event id, the later one in this order wins.
pub async fn find_inputs(paths: &[String]) -> anyhow::Result<Vec<Input>> {
    let (remote, local): (Vec<&String>, Vec<&String>) = paths.iter().partition(|p| is_s3(p));
    let local: Vec<PathBuf> = local.into_iter().map(PathBuf::from).collect();
    let mut inputs: Vec<Input> = find_archives(&local)?
        .into_iter()
        .map(|p| Input {
            display: p.display().to_string(),
            source: InputSource::Local(p),
        })
        .collect();
    for url in remote {
        inputs.extend(list_s3(url).await?);
    }
    inputs.sort_by(|a, b| a.display.cmp(&b.display));
    inputs.dedup_by(|a, b| a.display == b.display);
    Ok(inputs)
}

/// The archive a run journal names (a file path or an `s3://` URL of one
/// object), if it is still there.
pub async fn find_again(display: &str) -> Option<Input> {
    if !is_s3(display) {
        let path = PathBuf::from(display);
        return path.is_file().then(|| Input {
            display: display.to_string(),
            source: InputSource::Local(path),
        });
    }
    let url = url::Url::parse(display).ok()?;
    let store = s3_store(&url).ok()?;
    let path = ObjectPath::parse(url.path().trim_start_matches('/')).ok()?;
    store.head(&path).await.ok()?;
    Some(Input {
        display: display.to_string(),
        source: InputSource::Remote(store, path),
    })
}

/// The objects at an `s3://` URL: the object itself, or every archive under
/// it taken as a prefix.
async fn list_s3(location: &str) -> anyhow::Result<Vec<Input>> {
    let url = url::Url::parse(location).with_context(|| format!("{location}: not a valid URL"))?;
    let store = s3_store(&url)?;
    let bucket_url = format!("s3://{}", url.host_str().unwrap_or_default());
    let key = url.path().trim_start_matches('/');
    let path = ObjectPath::parse(key.trim_end_matches('/'))
        .with_context(|| format!("{location}: not a valid S3 key"))?;
    let input = |path: ObjectPath| Input {
        display: format!("{bucket_url}/{path}"),
        source: InputSource::Remote(store.clone(), path),
    };
    if !key.is_empty() && !key.ends_with('/') {
        match store.head(&path).await {
            Ok(_) => return Ok(vec![input(path)]),
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(store_error(e, location)),
        }
    }
    let prefix = (!key.is_empty()).then_some(&path);
    let objects: Vec<_> = store
        .list(prefix)
        .try_collect()
        .await
        .map_err(|e| store_error(e, location))?;
    let found: Vec<Input> = objects
        .into_iter()
        .filter(|meta| {
            let name = meta.location.filename().unwrap_or_default();
            !name.starts_with('.') && is_input_name(name)
        })
        .map(|meta| input(meta.location))
        .collect();
    if found.is_empty() {
        bail!(
            "{location}: no archives found (no *.json, *.ndjson, *.jsonl or *.csv objects, plain or .gz, under this prefix)"
        );
    }
    Ok(found)
}

/// A local file holding the input's bytes: the file itself, or a download
/// (streamed to disk, so memory stays bounded) removed when dropped.
pub enum Fetched {
    Local(PathBuf),
    Downloaded {
        /// Removes the download when dropped.
        _dir: tempfile::TempDir,
        path: PathBuf,
    },
}

impl Fetched {
    pub fn path(&self) -> &Path {
        match self {
            Fetched::Local(p) | Fetched::Downloaded { path: p, .. } => p,
        }
    }
}

/// Makes an input readable from disk.
pub async fn fetch(input: &Input, scratch: &Path) -> anyhow::Result<Fetched> {
    let (store, path) = match &input.source {
        InputSource::Local(p) => return Ok(Fetched::Local(p.clone())),
        InputSource::Remote(store, path) => (store, path),
    };
    let dir = tempfile::Builder::new()
        .prefix("download-")
        .tempdir_in(scratch)
        .context("cannot create a download directory")?;
    let local = dir.path().join(file_name(&input.display));
    let mut file = tokio::fs::File::create(&local)
        .await
        .with_context(|| format!("cannot create {}", local.display()))?;
    let mut stream = store
        .get(path)
        .await
        .map_err(|e| store_error(e, &input.display))?
        .into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| store_error(e, &input.display))?;
        file.write_all(&chunk)
            .await
            .context("cannot save the download")?;
    }
    file.flush().await.context("cannot save the download")?;
    Ok(Fetched::Downloaded {
        _dir: dir,
        path: local,
    })
}

/// File name endings searched for in directories (each also with `.gz`).
pub const EXTENSIONS: [&str; 4] = [".json", ".ndjson", ".jsonl", ".csv"];

/// Whether a file in a searched directory is taken as an input.
fn is_input_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Expands files and directories (searched recursively for the
/// [`EXTENSIONS`], plain or gzipped) into a sorted, de-duplicated list of
/// archive files.
pub fn find_archives(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path)
            .with_context(|| format!("{}: cannot read this path", path.display()))?;
        if meta.is_dir() {
            let before = found.len();
            walk(path, &mut found)?;
            if found.len() == before {
                tracing::warn!(
                    "{}: no *.json, *.ndjson, *.jsonl or *.csv files (plain or .gz) in this directory",
                    path.display()
                );
            }
        } else {
            // A file named explicitly is taken whatever its name: the format
            // is detected from content.
            found.push(path.clone());
        }
    }
    found.sort();
    found.dedup();
    if found.is_empty() && !paths.is_empty() {
        bail!(
            "no archives found: the directories given hold no *.json, *.ndjson, *.jsonl or *.csv files (plain or .gz)"
        );
    }
    Ok(found)
}

fn walk(dir: &Path, found: &mut Vec<PathBuf>) -> anyhow::Result<()> {
    let entries = std::fs::read_dir(dir)
        .with_context(|| format!("{}: cannot list directory", dir.display()))?;
    for entry in entries {
        let entry = entry.with_context(|| format!("{}: cannot list directory", dir.display()))?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        if entry.file_type()?.is_dir() {
            walk(&path, found)?;
        } else if is_input_name(&name) {
            found.push(path);
        }
    }
    Ok(())
}

/// The account named by a Heroku archive file name
/// (`enterprise-audit-log-<account>-<YYYYMM>.json[.gz]`), used only when an
/// event does not name its enterprise account.
pub fn account_from_file_name(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let stem = stem.strip_suffix(".json")?;
    let rest = stem.strip_prefix("enterprise-audit-log-")?;
    let (account, month) = rest.rsplit_once('-')?;
    (month.len() == 6 && month.bytes().all(|b| b.is_ascii_digit()) && !account.is_empty())
        .then(|| account.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_from_heroku_file_names() {
        let p = Path::new("x/enterprise-audit-log-acme-corp-202403.json.gz");
        assert_eq!(account_from_file_name(p).as_deref(), Some("acme-corp"));
        assert_eq!(
            account_from_file_name(Path::new("enterprise-audit-log-a-2024.json")),
            None
        );
        assert_eq!(account_from_file_name(Path::new("other.json")), None);
    }

    #[test]
    fn finds_archives_recursively_sorted() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("b/c")).unwrap();
        for f in [
            "b/c/2.json.gz",
            "1.json",
            "b/notes.txt",
            "b/.hidden.json",
            "b/p.ndjson",
            "e.csv.gz",
        ] {
            std::fs::write(dir.path().join(f), b"{}").unwrap();
        }
        let found = find_archives(&[dir.path().to_path_buf()]).unwrap();
        let rel: Vec<_> = found
            .iter()
            .map(|p| p.strip_prefix(dir.path()).unwrap().to_path_buf())
            .collect();
        assert_eq!(
            rel,
            [
                PathBuf::from("1.json"),
                PathBuf::from("b/c/2.json.gz"),
                PathBuf::from("b/p.ndjson"),
                PathBuf::from("e.csv.gz")
            ]
        );
    }
}
