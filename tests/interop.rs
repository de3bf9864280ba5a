//! The lake is a public contract: DuckDB and Spark read it as is, through
//! the DDL `auditlake ddl` prints for each, and get auditlake's answers.
//! Needs a Python with duckdb and pyspark, and a Java runtime for Spark
//! (AUDITLAKE_TEST_PYTHON, set by scripts/test-services, which installs all
//! three); skipped only when that variable is absent.

mod common;

use std::process::Command;

use common::*;

/// Runs `script` with the test Python; None when there is none.
fn python(script: &str, args: &[&str]) -> Option<String> {
    let Some(python) = std::env::var_os("AUDITLAKE_TEST_PYTHON") else {
        eprintln!("skipped: AUDITLAKE_TEST_PYTHON is not set (scripts/test installs duckdb)");
        return None;
    };
    let out = Command::new(python)
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

const DUCKDB: &str = r#"
import sys, duckdb
con = duckdb.connect()
con.execute("SET TimeZone = 'UTC'")
con.execute(open(sys.argv[1]).read())
for year, month, n in con.execute(
        "SELECT year, month, count(*) FROM heroku GROUP BY ALL ORDER BY ALL").fetchall():
    print(f"{year},{month},{n}")
print("--")
rows = con.execute("""
    SELECT strftime(created_at AT TIME ZONE 'UTC', '%Y-%m-%dT%H:%M:%SZ'), actor_email, action,
           data->>'changes', ip_address
    FROM heroku
    WHERE type = 'config_change' AND app_name = 'billing-api'
      AND created_at >= TIMESTAMPTZ '2024-03-01 00:00:00+00' AND created_at < TIMESTAMPTZ '2024-04-01 00:00:00+00'
    ORDER BY created_at, id""").fetchall()
for r in rows:
    print(",".join("" if v is None else str(v) for v in r))
"#;

#[test]
fn duckdb_reads_the_lake_with_the_printed_ddl_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&testdata("heroku")]);
    convert_ok(&lake, &[&testdata("heroku-reexport")]);
    let lake_s = lake.to_str().unwrap();

    let out = auditlake(&["ddl", "--engine", "duckdb", "--lake", lake_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ddl = dir.path().join("lake.sql");
    std::fs::write(&ddl, stdout(&out)).unwrap();

    let Some(duck) = python(DUCKDB, &[ddl.to_str().unwrap()]) else {
        return;
    };
    let (counts, answer) = duck.split_once("--\n").unwrap();

    // auditlake's own answers, in the same shape.
    let ours = query(
        &lake,
        &[
            "--format",
            "csv",
            "SELECT year, month, count(*) FROM heroku GROUP BY year, month ORDER BY year, month",
        ],
    );
    let ours_counts: String = stdout(&ours)
        .lines()
        .skip(1)
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(counts, ours_counts);
    assert_eq!(counts, "2024,1,5\n2024,2,4\n2024,3,8\n");

    // CSV quoting aside (the changes hold commas), the rows are the same.
    assert_eq!(unquote(answer), config_changes_of_billing_api(&lake));
    assert_eq!(answer.lines().count(), 4);
}

/// CSV without its quotes: the engines quote differently.
fn unquote(s: &str) -> String {
    s.replace('"', "")
}

/// auditlake's answer to the headline question for `billing-api` in March
/// 2024, as unquoted CSV rows without the header.
fn config_changes_of_billing_api(lake: &std::path::Path) -> String {
    let named = query(
        lake,
        &[
            "--format",
            "csv",
            "--named",
            "config-changes",
            "-p",
            "app=billing-api",
            "-p",
            "month=2024-03",
        ],
    );
    assert!(named.status.success(), "{}", stderr(&named));
    stdout(&named)
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", unquote(l)))
        .collect()
}

const DUCKDB_IDS: &str = r#"
import sys, duckdb
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
for (i,) in con.execute("SELECT id FROM heroku ORDER BY created_at").fetchall():
    print(i)
print(con.execute("SELECT count(*) FROM events WHERE id = 'evt-1'").fetchone()[0])
# The files alone: a native UUID column.
print(con.execute("SELECT typeof(id) FROM read_parquet(?) LIMIT 1",
                  [sys.argv[2] + "/heroku/*/*/*.parquet"]).fetchone()[0])
"#;

#[test]
fn duckdb_sees_uuids_and_the_sources_own_ids() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&odd_id_archives(dir.path())]);
    let lake_s = lake.to_str().unwrap();
    let out = auditlake(&["ddl", "--engine", "duckdb", "--lake", lake_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ddl = dir.path().join("lake.sql");
    std::fs::write(&ddl, stdout(&out)).unwrap();
    let Some(duck) = python(DUCKDB_IDS, &[ddl.to_str().unwrap(), lake_s]) else {
        return;
    };
    assert_eq!(
        duck,
        "evt-1\n0B6C1E3A-0000-4000-8000-0000000000AA\n0b6c1e3a-0000-4000-8000-0000000000bb\n1\nUUID\n"
    );
}

/// Runs each DDL file (statements end with `;` at a line end; `--` lines
/// are comments) in its own Spark database, then the queries; prints the
/// answers in the DuckDB test's shapes.
const SPARK: &str = r#"
import sys
from pyspark.sql import SparkSession
spark = (SparkSession.builder.master("local[1]")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.session.timeZone", "UTC")
         .config("spark.sql.shuffle.partitions", "1")
         .config("spark.sql.warehouse.dir", sys.argv[3])
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")

def run_ddl(path, database):
    spark.sql(f"CREATE DATABASE {database}")
    spark.sql(f"USE {database}")
    text = "\n".join(l for l in open(path).read().splitlines() if not l.startswith("--"))
    for statement in text.split(";\n"):
        if statement.strip():
            spark.sql(statement.strip().rstrip(";"))

run_ddl(sys.argv[1], "lake")
for year, month, n in spark.sql(
        "SELECT year, month, count(*) FROM heroku GROUP BY year, month ORDER BY year, month").collect():
    print(f"{year},{month},{n}")
print("--")
rows = spark.sql("""
    SELECT date_format(created_at, "yyyy-MM-dd'T'HH:mm:ss'Z'"), actor_email, action,
           get_json_object(data, '$.changes'), ip_address
    FROM heroku
    WHERE type = 'config_change' AND app_name = 'billing-api'
      AND created_at >= TIMESTAMP '2024-03-01 00:00:00' AND created_at < TIMESTAMP '2024-04-01 00:00:00'
    ORDER BY created_at, id""").collect()
for r in rows:
    print(",".join("" if v is None else str(v) for v in r))
print("--")
run_ddl(sys.argv[2], "odd")
for (i,) in spark.sql("SELECT id FROM heroku ORDER BY created_at").collect():
    print(i)
print(spark.sql("SELECT count(*) FROM events WHERE id = 'evt-1'").collect()[0][0])
"#;

#[test]
fn spark_reads_the_lake_with_the_printed_ddl_and_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = |lake: &std::path::Path, name: &str| {
        let out = auditlake(&["ddl", "--engine", "spark", "--lake", lake.to_str().unwrap()]);
        assert!(out.status.success(), "{}", stderr(&out));
        let path = dir.path().join(name);
        std::fs::write(&path, stdout(&out)).unwrap();
        path
    };
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&testdata("heroku")]);
    convert_ok(&lake, &[&testdata("heroku-reexport")]);
    let odd = dir.path().join("odd-lake");
    convert_ok(&odd, &[&odd_id_archives(dir.path())]);
    let (lake_sql, odd_sql) = (ddl(&lake, "lake.sql"), ddl(&odd, "odd.sql"));
    let warehouse = dir.path().join("warehouse");

    let Some(spark) = python(
        SPARK,
        &[
            lake_sql.to_str().unwrap(),
            odd_sql.to_str().unwrap(),
            warehouse.to_str().unwrap(),
        ],
    ) else {
        return;
    };
    let parts: Vec<&str> = spark.split("--\n").collect();
    assert_eq!(parts.len(), 3, "{spark}");

    // Months and rows, as auditlake and DuckDB count them.
    assert_eq!(parts[0], "2024,1,5\n2024,2,4\n2024,3,8\n");

    // The headline question: the same rows as `query --named
    // config-changes` (times in UTC, ids ordered as auditlake orders them).
    assert_eq!(unquote(parts[1]), config_changes_of_billing_api(&lake));
    assert_eq!(parts[1].lines().count(), 4);

    // UUID keys read as text, and ids that were not canonical UUIDs as the
    // source wrote them (kept in `extra`).
    assert_eq!(
        parts[2],
        "evt-1\n0B6C1E3A-0000-4000-8000-0000000000AA\n0b6c1e3a-0000-4000-8000-0000000000bb\n1\n"
    );
}
