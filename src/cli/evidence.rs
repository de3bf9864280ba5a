//! `query --evidence DIR`: an answer an auditor can check later.
//!
//! DIR receives the result (`result.csv`, `result.parquet`), the SQL
//! (`query.sql`), the bound parameters (`params.json`), what `verify` said
//! of the lake at the time (`verify.json`) and `evidence.json`: the tool and
//! its version, the time, the lake, the integrity log's head, every file
//! the query read with its SHA-256 and size, and the SHA-256 of each file
//! of the folder. DIR.tar.gz holds the same folder in one file.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::common::ParamValues;
use datafusion::parquet::arrow::ArrowWriter;
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::engine::{Engine, scanned_files};
use crate::lake::{integrity, verify};

/// Runs `sql` and writes its evidence into `dir`; returns the result.
pub async fn write(
    engine: &Engine,
    sql: &str,
    params: Option<ParamValues>,
    param_text: &[(String, String)],
    dir: &Path,
) -> anyhow::Result<Vec<RecordBatch>> {
    if dir.exists() && std::fs::read_dir(dir)?.next().is_some() {
        bail!(
            "{} is not empty: evidence goes into a new folder",
            dir.display()
        );
    }
    // Everything is written into a hidden folder beside DIR and put in
    // place at the end: a query or a write that fails leaves no half an
    // evidence folder for an auditor to be handed.
    let staging = super::partial::dir_beside(dir)?;
    let name = dir.file_name().unwrap_or_default().to_string_lossy();
    let archive_path = dir.with_file_name(format!("{name}.tar.gz"));
    let (batches, verified) = write_into(engine, sql, params, param_text, staging.path()).await?;
    let archive = pack(staging.path(), &name, &archive_path)?;
    if dir.exists() {
        // Empty, as checked above.
        std::fs::remove_dir(dir).with_context(|| format!("cannot replace {}", dir.display()))?;
    }
    std::fs::rename(staging.path(), dir)
        .with_context(|| format!("cannot create {}", dir.display()))?;
    // The folder is in place: nothing left to remove.
    let _ = staging.keep();
    archive
        .persist(&archive_path)
        .with_context(|| format!("cannot create {}", archive_path.display()))?;
    eprintln!(
        "evidence written to {} and {} (lake {})",
        dir.display(),
        archive_path.display(),
        if verified {
            "verified"
        } else {
            "NOT verified: see verify.json"
        }
    );
    Ok(batches)
}

/// Runs `sql` and writes the evidence files into `dir`; returns the result
/// and whether the lake verified.
async fn write_into(
    engine: &Engine,
    sql: &str,
    params: Option<ParamValues>,
    param_text: &[(String, String)],
    dir: &Path,
) -> anyhow::Result<(Vec<RecordBatch>, bool)> {
    let lake = engine.lake();
    let plan = engine
        .sql(sql, params)
        .await?
        .create_physical_plan()
        .await?;
    let batches = datafusion::physical_plan::collect(plan.clone(), engine.context().task_ctx())
        .await
        .context("the query failed")?;

    let mut files = Vec::new();
    for path in scanned_files(&plan) {
        let (sha256, size) = verify::file_sha256(lake, &path)
            .await
            .with_context(|| format!("cannot read {path}"))?;
        files.push(json!({"path": lake.relative(&path), "sha256": sha256, "size": size}));
    }
    let write_file = |name: &str, bytes: &[u8]| -> anyhow::Result<()> {
        std::fs::write(dir.join(name), bytes)
            .with_context(|| format!("cannot write {}", dir.join(name).display()))
    };
    write_file("query.sql", format!("{}\n", sql.trim()).as_bytes())?;
    let params: serde_json::Map<String, serde_json::Value> = param_text
        .iter()
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    write_file("params.json", &serde_json::to_vec_pretty(&params)?)?;
    let schema = match batches.first() {
        Some(b) => b.schema(),
        None => plan.schema(),
    };
    let mut csv = Vec::new();
    {
        let mut writer = datafusion::arrow::csv::WriterBuilder::new()
            .with_header(true)
            .build(&mut csv);
        for b in &batches {
            writer.write(b)?;
        }
    }
    write_file("result.csv", &csv)?;
    let mut parquet = Vec::new();
    {
        let mut writer = ArrowWriter::try_new(
            &mut parquet,
            crate::print_format::plain_schema(&schema),
            None,
        )?;
        for b in &batches {
            writer.write(&crate::print_format::plain_strings(b)?)?;
        }
        writer.close()?;
    }
    write_file("result.parquet", &parquet)?;
    let report = verify::verify(lake, None, None).await?;
    write_file("verify.json", &serde_json::to_vec_pretty(&report)?)?;
    let head = integrity::head(lake).await?;
    let mut contents = serde_json::Map::new();
    for name in [
        "query.sql",
        "params.json",
        "result.csv",
        "result.parquet",
        "verify.json",
    ] {
        let bytes = std::fs::read(dir.join(name))?;
        contents.insert(name.into(), json!(hex::encode(Sha256::digest(&bytes))));
    }
    let evidence = json!({
        "tool": "auditlake",
        "version": env!("CARGO_PKG_VERSION"),
        "created_at": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        "lake": lake.location(),
        "log_head": head.map(|(seq, sha256)| json!({"seq": seq, "sha256": sha256})),
        "rows": batches.iter().map(|b| b.num_rows()).sum::<usize>(),
        "files_read": files,
        "verified": report.ok(),
        "findings": report.findings.len(),
        "contents": contents,
    });
    write_file("evidence.json", &serde_json::to_vec_pretty(&evidence)?)?;
    Ok((batches, report.ok()))
}

/// The folder's files as a `.tar.gz` under the folder's `name`, written
/// to a hidden file beside `archive` for the caller to put in place.
fn pack(dir: &Path, name: &str, archive: &Path) -> anyhow::Result<tempfile::NamedTempFile> {
    let archive = super::partial::file_beside(archive)?;
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        archive.reopen()?,
        flate2::Compression::default(),
    ));
    let mut names: Vec<_> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.file_name()))
        .collect();
    names.sort();
    for entry in names {
        tar.append_path_with_name(dir.join(&entry), Path::new(name).join(&entry))?;
    }
    tar.into_inner()?.finish()?.flush()?;
    Ok(archive)
}
