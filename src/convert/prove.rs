//! `auditlake verify --archives PATH…`: prove, entry by entry, that the lake
//! still holds what the archives say.
//!
//! Each archive is parsed again by the same `source` code a conversion
//! uses, so each entry becomes the row the lake stores for it (lossless:
//! whatever the columns do not hold is in `extra`). The lake's rows of the
//! months those entries fall in are read back; an entry's row and the
//! lake's row of its id are compared by their value digests
//! ([`row_digests`]). An entry is then in the lake unchanged, superseded (a
//! later conversion of the same id, one of the archives given, holds the
//! lake's row), missing, or altered. Rows of those months that no archive
//! given explains are unexpected. Archives are taken in the order the lake
//! converted them (their conversion records), so "later" means what it
//! meant when they were converted.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use anyhow::Context;
use chrono::{Datelike, TimeZone, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use serde::Serialize;

use super::discover;
use crate::lake::Lake;
use crate::lake::integrity::row_digests;
use crate::source::{self, Format};
use crate::table::TimeType;

/// What one archive's entries are in the lake.
#[derive(Debug, Default, Serialize)]
pub struct ArchiveProof {
    pub archive: String,
    pub sha256: String,
    pub entries: u64,
    pub unchanged: u64,
    /// (id, the archive whose row the lake holds).
    pub superseded: Vec<(String, String)>,
    pub missing: Vec<String>,
    pub altered: Vec<String>,
}

/// What `verify --archives` found.
#[derive(Debug, Serialize)]
pub struct ProofReport {
    pub archives: Vec<ArchiveProof>,
    /// Ids of rows in the months the archives cover that none of them has.
    pub unexpected: Vec<String>,
    pub seconds: f64,
}

impl ProofReport {
    pub fn ok(&self) -> bool {
        self.unexpected.is_empty()
            && self
                .archives
                .iter()
                .all(|a| a.missing.is_empty() && a.altered.is_empty())
    }
}

/// One archive parsed: its entries' ids, row digests and months.
struct Parsed {
    display: String,
    sha256: String,
    table: String,
    rows: HashMap<String, [u8; 32]>,
    entries: u64,
    months: BTreeSet<(i32, u32)>,
    converted_at: Option<String>,
}

/// Proves the archives at `paths` against `lake`.
pub async fn prove(
    lake: &Lake,
    paths: &[String],
    forced: Option<&Format>,
    max_entry_size: usize,
) -> anyhow::Result<ProofReport> {
    let started = Instant::now();
    let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
    let mut parsed = Vec::new();
    for input in discover::find_inputs(paths).await? {
        let fetched = discover::fetch(&input, scratch.path()).await?;
        let sha256 = super::sha256_file(fetched.path())
            .with_context(|| format!("{}: cannot read", input.display))?;
        let converted_at = lake.manifest().get(&sha256).await?.map(|r| r.converted_at);
        let path = fetched.path().to_path_buf();
        let display = input.display.clone();
        let forced = forced.cloned();
        let one = tokio::task::spawn_blocking(move || {
            parse(&path, forced.as_ref(), max_entry_size)
                .with_context(|| format!("{display}: cannot be read"))
        })
        .await??;
        parsed.push(Parsed {
            display: input.display,
            sha256,
            converted_at,
            ..one
        });
    }
    // The order the lake converted them in; archives it never recorded last.
    parsed.sort_by(|a, b| match (&a.converted_at, &b.converted_at) {
        (Some(x), Some(y)) => x.cmp(y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });

    // The lake's rows of every (table, month) the archives touch.
    let mut wanted: BTreeMap<String, BTreeSet<(i32, u32)>> = BTreeMap::new();
    for p in &parsed {
        wanted
            .entry(p.table.clone())
            .or_default()
            .extend(p.months.iter().copied());
    }
    let mut in_lake: HashMap<(String, String), [u8; 32]> = HashMap::new();
    for (table, months) in &wanted {
        let spec = crate::source::table_spec_for(table);
        for file in lake.data_files(table).await? {
            if !months.contains(&(file.key.year, file.key.month)) {
                continue;
            }
            crate::lake::verify::each_batch(lake, &file.location, file.bytes, |batch| {
                let ids = batch
                    .column_by_name(spec.key_column)
                    .context("the key column is missing")?
                    .as_string::<i32>();
                for (i, digest) in row_digests(batch)?.into_iter().enumerate() {
                    in_lake.insert((table.clone(), ids.value(i).to_string()), digest);
                }
                Ok(())
            })
            .await
            .with_context(|| format!("cannot read {}", lake.object_url(&file.location)))?;
        }
    }

    let mut explained = BTreeSet::new();
    let mut proofs = Vec::new();
    for (n, p) in parsed.iter().enumerate() {
        let mut proof = ArchiveProof {
            archive: p.display.clone(),
            sha256: p.sha256.clone(),
            entries: p.entries,
            ..ArchiveProof::default()
        };
        let mut ids: Vec<&String> = p.rows.keys().collect();
        ids.sort();
        for id in ids {
            let key = (p.table.clone(), id.clone());
            explained.insert(key.clone());
            match in_lake.get(&key) {
                None => proof.missing.push(id.clone()),
                Some(stored) if *stored == p.rows[id] => proof.unchanged += 1,
                Some(stored) => {
                    let by = parsed[n + 1..]
                        .iter()
                        .rev()
                        .find(|later| later.table == p.table && later.rows.get(id) == Some(stored));
                    match by {
                        Some(later) => proof.superseded.push((id.clone(), later.display.clone())),
                        None => proof.altered.push(id.clone()),
                    }
                }
            }
        }
        proofs.push(proof);
    }
    let mut unexpected: Vec<String> = in_lake
        .keys()
        .filter(|k| !explained.contains(*k))
        .map(|(_, id)| id.clone())
        .collect();
    unexpected.sort();
    Ok(ProofReport {
        archives: proofs,
        unexpected,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Parses one archive as a conversion would.
fn parse(
    path: &std::path::Path,
    forced: Option<&Format>,
    max_entry_size: usize,
) -> anyhow::Result<Parsed> {
    let opened = source::open_archive(path).context("cannot open")?;
    let mut rows = HashMap::new();
    let mut months = BTreeSet::new();
    let mut table = String::new();
    let (format, stats) =
        source::read_archive(opened.reader, forced, max_entry_size, |format, parsed| {
            let spec = format.table_spec();
            table = spec.name.clone();
            add_rows(
                &parsed.batch,
                spec.key_column,
                spec.time_column,
                &mut rows,
                &mut months,
            )
        })?;
    if table.is_empty() {
        table = format.table_spec().name;
    }
    Ok(Parsed {
        display: String::new(),
        sha256: String::new(),
        table,
        rows,
        entries: stats.entries,
        months,
        converted_at: None,
    })
}

/// Adds a batch's rows (id → digest; the last of a repeated id wins, as in
/// a conversion) and their months.
fn add_rows(
    batch: &RecordBatch,
    key_column: &str,
    time_column: &str,
    rows: &mut HashMap<String, [u8; 32]>,
    months: &mut BTreeSet<(i32, u32)>,
) -> anyhow::Result<()> {
    let ids = batch
        .column_by_name(key_column)
        .context("the key column is missing")?
        .as_string::<i32>();
    let times = batch
        .column_by_name(time_column)
        .context("the time column is missing")?
        .as_primitive::<TimeType>();
    for (i, digest) in row_digests(batch)?.into_iter().enumerate() {
        if times.is_valid(i)
            && let Some(t) = Utc.timestamp_millis_opt(times.value(i)).single()
        {
            months.insert((t.year(), t.month()));
        }
        rows.insert(ids.value(i).to_string(), digest);
    }
    Ok(())
}
