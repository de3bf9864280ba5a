//! Finds the archives named on the command line.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// File name endings searched for in directories (each also with `.gz`).
pub const EXTENSIONS: [&str; 4] = [".json", ".ndjson", ".jsonl", ".csv"];

/// Whether a file in a searched directory is taken as an input.
fn is_input_name(name: &str) -> bool {
    let name = name.strip_suffix(".gz").unwrap_or(name);
    EXTENSIONS.iter().any(|ext| name.ends_with(ext))
}

/// Expands files and directories (searched recursively for the
/// [`EXTENSIONS`], plain or gzipped) into a sorted, de-duplicated list of archive files. Sorted
/// order makes runs reproducible: when two archives hold the same event id,
/// the later one in this order wins.
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
