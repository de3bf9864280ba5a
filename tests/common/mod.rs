//! Helpers shared by the integration tests: run the real binary, and read
//! what it wrote back with DataFusion.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::{ParquetReadOptions, SessionContext};

pub fn testdata(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(rel)
}

/// Runs `auditlake` with `args`, no `AUDITLAKE_LAKE` inherited.
pub fn auditlake(args: &[&str]) -> Output {
    auditlake_in(args, Path::new(env!("CARGO_MANIFEST_DIR")))
}

pub fn auditlake_in(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(args)
        .current_dir(cwd)
        .env_remove("AUDITLAKE_LAKE")
        .env_remove("RUST_LOG")
        .output()
        .expect("run auditlake")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Converts `inputs` into `lake` and asserts success.
pub fn convert_ok(lake: &Path, inputs: &[&Path]) -> Output {
    let mut args = vec!["convert", "--quiet", "--lake", lake.to_str().unwrap()];
    args.extend(inputs.iter().map(|p| p.to_str().unwrap()));
    let out = auditlake(&args);
    assert!(
        out.status.success(),
        "convert failed: {}\n{}",
        stdout(&out),
        stderr(&out)
    );
    out
}

/// Runs SQL over a lake's `heroku` table (with `year`, `month` partition
/// columns) and returns the rows as strings ("NULL" for nulls).
pub async fn query_lake(lake: &Path, sql: &str) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    let options = ParquetReadOptions::default().table_partition_cols(vec![
        ("year".to_string(), DataType::Int32),
        ("month".to_string(), DataType::Int32),
    ]);
    let dir = format!("{}/heroku/", lake.display());
    ctx.register_parquet("heroku", &dir, options).await.unwrap();
    collect(&ctx, sql).await
}

/// Runs SQL over one Parquet file registered as `t`.
pub async fn query_file(file: &Path, sql: &str) -> Vec<Vec<String>> {
    let ctx = SessionContext::new();
    ctx.register_parquet("t", file.to_str().unwrap(), ParquetReadOptions::default())
        .await
        .unwrap();
    collect(&ctx, sql).await
}

async fn collect(ctx: &SessionContext, sql: &str) -> Vec<Vec<String>> {
    let batches = ctx.sql(sql).await.unwrap().collect().await.unwrap();
    let options = FormatOptions::default().with_null("NULL");
    let mut rows = Vec::new();
    for batch in batches {
        let formatters: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options).unwrap())
            .collect();
        for r in 0..batch.num_rows() {
            rows.push(formatters.iter().map(|f| f.value(r).to_string()).collect());
        }
    }
    rows
}

/// Every file under `dir`, relative, sorted.
pub fn files_under(dir: &Path) -> Vec<String> {
    fn walk(base: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                walk(base, &p, out);
            } else {
                out.push(p.strip_prefix(base).unwrap().display().to_string());
            }
        }
    }
    let mut out = Vec::new();
    if dir.exists() {
        walk(dir, dir, &mut out);
    }
    out.sort();
    out
}

/// A file's or folder's permission bits.
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// Data files only (the lake's `heroku/...` tree).
pub fn data_files(lake: &Path) -> Vec<String> {
    files_under(lake)
        .into_iter()
        .filter(|f| !f.starts_with("_auditlake"))
        .collect()
}

/// A temporary lake holding the main job's result (testdata/heroku).
/// Asserts that `auditlake verify` finds the lake whole: every file and
/// the log's chain hold.
pub fn assert_verifies(lake: &Path) {
    let out = auditlake(&["verify", "--lake", lake.to_str().unwrap()]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains("; everything holds; head "),
        "{}",
        stdout(&out)
    );
}

pub fn testdata_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    convert_ok(&dir.path().join("lake"), &[&testdata("heroku")]);
    dir
}

/// Runs `auditlake` with `args`, feeding `input` on stdin.
pub fn auditlake_with_stdin(args: &[&str], input: &str) -> Output {
    use std::io::Write;
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(args)
        .env_remove("AUDITLAKE_LAKE")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run auditlake");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child.wait_with_output().expect("wait for auditlake")
}

/// `auditlake query --lake <lake> <args>` with the output as text.
pub fn query(lake: &Path, args: &[&str]) -> Output {
    let mut all = vec!["query", "--lake", lake.to_str().unwrap()];
    all.extend_from_slice(args);
    auditlake(&all)
}

/// Writes two small Heroku archives whose ids are not all canonical UUIDs:
/// `evt-1` (not a UUID; the second archive brings it again with new data),
/// an uppercase UUID, and a canonical one. Returns their directory.
pub fn odd_id_archives(dir: &Path) -> PathBuf {
    let archives = dir.join("odd-ids");
    std::fs::create_dir_all(&archives).unwrap();
    let event = |id: &str, time: &str, data: &str| {
        format!(
            r#"{{"id":"{id}","type":"app","action":"update","app":{{"id":"a1","name":"web"}},"enterprise_account":{{"id":"ea","name":"acme"}},"data":{data},"created_at":"{time}"}}"#
        )
    };
    let first = [
        event("evt-1", "2024-05-01T10:00:00Z", r#"{"v":1}"#),
        event(
            "0B6C1E3A-0000-4000-8000-0000000000AA",
            "2024-05-02T10:00:00Z",
            r#"{"v":2}"#,
        ),
        event(
            "0b6c1e3a-0000-4000-8000-0000000000bb",
            "2024-05-03T10:00:00Z",
            r#"{"v":3}"#,
        ),
    ];
    std::fs::write(
        archives.join("enterprise-audit-log-acme-202405.json"),
        format!(r#"{{"entries":[{}]}}"#, first.join(",")),
    )
    .unwrap();
    std::fs::write(
        archives.join("enterprise-audit-log-acme-202405b.json"),
        format!(
            r#"{{"entries":[{}]}}"#,
            event("evt-1", "2024-05-01T10:00:00Z", r#"{"v":4}"#)
        ),
    )
    .unwrap();
    archives
}

/// A session over the testdata lake at `location` (local or S3) reads each
/// month file as it listed it. A plan made before a conversion replaced
/// March fails with "was replaced" when it runs (never reading the new file
/// at the old file's offsets), and the session's next query lists again and
/// sees the re-export: 14 ids, then 14 + 3.
pub async fn a_session_reads_whole_files_across_a_conversion(location: &str) {
    use auditlake::engine::{Engine, EngineOptions};
    use datafusion::arrow::array::{Array, Int64Array};
    async fn count(engine: &Engine, sql: &str) -> i64 {
        let stream = engine.execute(sql, None).await.unwrap();
        let batches: Vec<_> = futures::TryStreamExt::try_collect(stream).await.unwrap();
        let column = batches[0].column(0);
        let counts = column.as_any().downcast_ref::<Int64Array>().unwrap();
        assert_eq!(counts.len(), 1);
        counts.value(0)
    }
    let lake = auditlake::lake::Lake::open(location).unwrap();
    let engine = Engine::open(&lake, EngineOptions::default()).await.unwrap();
    // count(*) could come from the cached footers; ids are read from pages.
    let sql = "SELECT count(DISTINCT id) FROM heroku";
    assert_eq!(count(&engine, sql).await, 14);

    let planned = engine
        .sql(sql, None)
        .await
        .unwrap()
        .create_physical_plan()
        .await
        .unwrap();
    let reexport = testdata("heroku-reexport");
    let out = auditlake(&[
        "convert",
        "--quiet",
        "--lake",
        location,
        reexport.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let task = engine.context().task_ctx();
    let err = datafusion::physical_plan::collect(planned, task)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("month=3/acme.parquet was replaced while the query read it"),
        "{err}"
    );
    assert_eq!(count(&engine, sql).await, 17);
}
