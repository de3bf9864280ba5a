//! `auditlake upgrade`: a lake written before format 1 (ids as 16-byte
//! UUIDs, the source's own id text in `extra`, times in microseconds,
//! `month=MM` directories, no `lake.json`) becomes exactly the lake a fresh
//! conversion writes, file by file, resumably.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::common::*;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, FixedSizeBinaryArray, RecordBatch, StringArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use datafusion::parquet::file::properties::WriterProperties;
use sha2::{Digest, Sha256};

/// Which earlier layout a fixture imitates.
#[derive(Clone, Copy)]
enum Legacy {
    /// 0.3: UUID ids (non-canonical ids as derived UUIDs, their text in
    /// `extra`), millisecond times.
    V03,
    /// 0.2: UUID ids and microsecond times.
    V02,
    /// 0.1: text ids and microsecond times.
    V01,
}

/// 0.3's stored id: the UUID's bytes, or a version-8 UUID from the text's
/// SHA-256 when the text is not a canonical UUID (which `extra` then keeps).
fn legacy_id(text: &str) -> ([u8; 16], bool) {
    if text.len() == 36
        && let Ok(uuid) = uuid::Uuid::try_parse(text)
    {
        return (uuid.into_bytes(), uuid.hyphenated().to_string() == text);
    }
    let digest = Sha256::digest(text.as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    (
        uuid::Builder::from_custom_bytes(bytes)
            .into_uuid()
            .into_bytes(),
        false,
    )
}

/// `extra` as 0.3 wrote it: the non-canonical id's text added before a
/// kept `created_at` text (the order the writer pushed them in).
fn legacy_extra(extra: Option<&str>, id: &str) -> String {
    let id = format!(r#""id":{}"#, serde_json::to_string(id).unwrap());
    match extra {
        None => format!("{{{id}}}"),
        Some(e) if e.contains(r#""created_at":"#) => {
            let at = e.find(r#""created_at":"#).unwrap();
            let (head, tail) = e.split_at(at);
            format!("{head}{id},{tail}")
        }
        Some(e) => format!("{},{id}}}", &e[..e.len() - 1]),
    }
}

/// Rewrites one format-1 file as `legacy` wrote it, at its zero-padded
/// path, and removes the format-1 file.
fn make_legacy(lake: &Path, rel: &str, legacy: Legacy) -> PathBuf {
    let file = lake.join(rel);
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let schema = batch.schema();
        let extra_index = schema.index_of("extra").unwrap();
        let ids = batch.column(0).as_string::<i32>();
        let extras = batch.column(extra_index).as_string::<i32>();
        let mut id_bytes = Vec::new();
        let mut new_extra = Vec::new();
        for row in 0..batch.num_rows() {
            let (bytes, canonical) = legacy_id(ids.value(row));
            id_bytes.push(bytes);
            let extra = extras.is_valid(row).then(|| extras.value(row));
            new_extra.push(if canonical {
                extra.map(str::to_string)
            } else {
                Some(legacy_extra(extra, ids.value(row)))
            });
        }
        let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
        let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
        if !matches!(legacy, Legacy::V01) {
            fields[0] = Field::new("id", DataType::FixedSizeBinary(16), false);
            columns[0] =
                Arc::new(FixedSizeBinaryArray::try_from_iter(id_bytes.into_iter()).unwrap());
            columns[extra_index] = Arc::new(StringArray::from(new_extra));
        }
        if matches!(legacy, Legacy::V02 | Legacy::V01) {
            let micros = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
            fields[1] = Field::new("created_at", micros.clone(), false);
            columns[1] = cast(&columns[1], &micros).unwrap();
        }
        batches.push(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap());
    }
    let out = lake.join(padded(rel));
    std::fs::create_dir_all(out.parent().unwrap()).unwrap();
    let props = WriterProperties::builder()
        .set_created_by(match legacy {
            Legacy::V03 => "auditlake 0.3.0".into(),
            Legacy::V02 => "auditlake 0.2.0".into(),
            Legacy::V01 => "auditlake 0.1.0".into(),
        })
        .build();
    let mut w = ArrowWriter::try_new(
        File::create(&out).unwrap(),
        batches[0].schema(),
        Some(props),
    )
    .unwrap();
    for b in &batches {
        w.write(b).unwrap();
    }
    w.close().unwrap();
    std::fs::remove_file(&file).unwrap();
    let _ = std::fs::remove_dir(file.parent().unwrap());
    out
}

/// `…/month=3/…` → `…/month=03/…`, as lakes before format 1 named months.
fn padded(rel: &str) -> String {
    let (head, tail) = rel.split_once("/month=").unwrap();
    let (month, file) = tail.split_once('/').unwrap();
    format!("{head}/month={month:0>2}/{file}")
}

/// Every row of every table, all columns as text, sorted: what a lake holds.
fn everything(lake: &Path) -> String {
    let mut all = String::new();
    for table in ["heroku", "terraform"] {
        let out = query(
            lake,
            &[
                "--format",
                "csv",
                &format!("SELECT * FROM {table} ORDER BY id, created_at"),
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        all.push_str(&stdout(&out));
    }
    all
}

/// A format-1 lake of Heroku archives (with non-canonical ids and a time
/// kept in `extra`) and Terraform pages.
fn fresh_lake(dir: &Path, name: &str) -> PathBuf {
    let lake = dir.join(name);
    convert_ok(&lake, &[&testdata("heroku"), &testdata("terraform")]);
    convert_ok(&lake, &[&odd_id_archives(dir)]);
    lake
}

/// The same lake as an earlier version left it.
fn legacy_lake(dir: &Path, name: &str, legacy: Legacy) -> PathBuf {
    let lake = fresh_lake(dir, name);
    for rel in data_files(&lake) {
        make_legacy(&lake, &rel, legacy);
    }
    std::fs::remove_file(lake.join("_auditlake/lake.json")).unwrap();
    lake
}

#[test]
fn a_lake_of_0_3_upgrades_to_what_a_fresh_conversion_writes() {
    let dir = tempfile::tempdir().unwrap();
    let expected = fresh_lake(dir.path(), "fresh");
    let lake = legacy_lake(dir.path(), "old", Legacy::V03);
    let lake_s = lake.to_str().unwrap();
    let records = files_under(&lake.join("_auditlake/archives"));
    // 3 monthly archives, 2 Terraform files, 2 archives with odd ids.
    assert_eq!(records.len(), 7);
    assert!(
        data_files(&lake).contains(&"heroku/year=2024/month=03/acme.parquet".to_string()),
        "{:?}",
        data_files(&lake)
    );

    // Before: status names the format, and writing or querying says to upgrade.
    let status = auditlake(&["status", "--lake", lake_s]);
    assert!(status.status.success(), "{}", stderr(&status));
    assert!(
        stdout(&status).contains("(format 0.3)"),
        "{}",
        stdout(&status)
    );
    let json = auditlake(&["status", "--json", "--lake", lake_s]);
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["format_version"], "0.3");
    assert_eq!(json["needs_upgrade"], true);
    let convert = auditlake(&[
        "convert",
        "--lake",
        lake_s,
        testdata("heroku-reexport").to_str().unwrap(),
    ]);
    assert_eq!(convert.status.code(), Some(1));
    assert!(
        stderr(&convert).contains("is in format 0.3, and this auditlake reads and writes format 1")
            && stderr(&convert).contains(&format!("run `auditlake upgrade --lake {lake_s}` first")),
        "{}",
        stderr(&convert)
    );
    assert_eq!(stderr(&convert).lines().count(), 1, "{}", stderr(&convert));
    let q = query(&lake, &["SELECT count(*) FROM heroku"]);
    assert_eq!(q.status.code(), Some(1));
    assert!(stderr(&q).contains("auditlake upgrade"), "{}", stderr(&q));

    let out = auditlake(&["upgrade", "--lake", lake_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    // 4 Heroku months (Jan-Mar, May) and 2 Terraform months.
    assert!(
        stdout(&out).contains("total: 6 files upgraded from format 0.3 to 1 (0 already upgraded)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(data_files(&lake), data_files(&expected));
    assert_eq!(everything(&lake), everything(&expected));
    assert!(everything(&lake).contains("evt-1,"), "the source's own id");
    // Same rows in the same order, written the same way: the same bytes.
    for rel in data_files(&expected) {
        assert!(
            std::fs::read(lake.join(&rel)).unwrap() == std::fs::read(expected.join(&rel)).unwrap(),
            "{rel} differs from a fresh conversion's"
        );
    }
    assert_eq!(
        files_under(&lake.join("_auditlake/archives")),
        records,
        "records kept"
    );
    // The integrity log covers every upgraded file.
    assert_verifies(&lake);
    let status = auditlake(&["status", "--lake", lake_s]);
    assert!(
        stdout(&status).contains("(format 1)"),
        "{}",
        stdout(&status)
    );

    // Idempotent: a second run changes nothing.
    let before: Vec<Vec<u8>> = data_files(&lake)
        .iter()
        .map(|f| std::fs::read(lake.join(f)).unwrap())
        .collect();
    let again = auditlake(&["upgrade", "--lake", lake_s]);
    assert!(again.status.success(), "{}", stderr(&again));
    assert!(
        stdout(&again).contains("already in format 1: nothing to do"),
        "{}",
        stdout(&again)
    );
    let after: Vec<Vec<u8>> = data_files(&lake)
        .iter()
        .map(|f| std::fs::read(lake.join(f)).unwrap())
        .collect();
    assert!(before == after);

    // And the upgraded lake takes new archives again.
    convert_ok(&lake, &[&testdata("heroku-reexport")]);
    assert_verifies(&lake);
}

#[test]
fn an_interrupted_upgrade_of_0_2_finishes_on_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let expected = fresh_lake(dir.path(), "fresh");
    let lake = legacy_lake(dir.path(), "old", Legacy::V02);
    let lake_s = lake.to_str().unwrap();
    // As a kill would leave it: lake.json saying an upgrade from 0.2 runs,
    // January done (the first file a reader meets), March rewritten at its
    // new path but its old file not yet removed.
    std::fs::write(
        lake.join("_auditlake/lake.json"),
        r#"{"format_version": 1, "written_by": "auditlake version 1.0.0", "upgrading_from": "0.2"}"#,
    )
    .unwrap();
    let january = "heroku/year=2024/month=1/acme.parquet";
    let march = "heroku/year=2024/month=3/acme.parquet";
    for rel in [january, march] {
        std::fs::create_dir_all(lake.join(rel).parent().unwrap()).unwrap();
        std::fs::copy(expected.join(rel), lake.join(rel)).unwrap();
    }
    std::fs::remove_file(lake.join("heroku/year=2024/month=01/acme.parquet")).unwrap();
    std::fs::remove_dir(lake.join("heroku/year=2024/month=01")).unwrap();
    let q = query(&lake, &["SELECT count(*) FROM heroku"]);
    assert_eq!(q.status.code(), Some(1), "a half-upgraded lake is not read");
    assert!(stderr(&q).contains("is in format 0.2"), "{}", stderr(&q));
    let status = auditlake(&["status", "--lake", lake_s]);
    assert!(
        stdout(&status).contains("run `auditlake upgrade"),
        "{}",
        stdout(&status)
    );

    let out = auditlake(&["upgrade", "--lake", lake_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("total: 5 files upgraded from format 0.2 to 1 (1 already upgraded)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(data_files(&lake), data_files(&expected));
    assert_eq!(everything(&lake), everything(&expected));
}

#[test]
fn a_lake_of_a_newer_format_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = fresh_lake(dir.path(), "lake");
    std::fs::write(
        lake.join("_auditlake/lake.json"),
        r#"{"format_version": 2, "written_by": "auditlake version 2.0.0"}"#,
    )
    .unwrap();
    let before = files_under(&lake);
    for args in [
        vec![
            "convert",
            "--lake",
            lake.to_str().unwrap(),
            testdata("heroku-reexport").to_str().unwrap(),
        ],
        vec!["upgrade", "--lake", lake.to_str().unwrap()],
        vec!["query", "--lake", lake.to_str().unwrap(), "SELECT 1"],
    ] {
        let out = auditlake(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains("is in format 2, newer than this auditlake")
                && stderr(&out).contains("use a newer auditlake"),
            "{args:?}: {}",
            stderr(&out)
        );
        assert_eq!(stderr(&out).lines().count(), 1);
    }
    assert_eq!(files_under(&lake), before, "nothing written");
}

#[test]
fn a_lake_of_0_1_upgrades_too() {
    let dir = tempfile::tempdir().unwrap();
    let expected = fresh_lake(dir.path(), "fresh");
    let lake = legacy_lake(dir.path(), "old", Legacy::V01);
    let out = auditlake(&["upgrade", "--lake", lake.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("total: 6 files upgraded from format 0.1 to 1"),
        "{}",
        stdout(&out)
    );
    assert_eq!(data_files(&lake), data_files(&expected));
    assert_eq!(everything(&lake), everything(&expected));
}
