//! The lake is a public contract. Every common reader, pointed at a table's
//! folder as is (no DDL, no schema), gets auditlake's answers: the rows per
//! month, the ids as the sources wrote them, the times in UTC, integer
//! `year`/`month`, its own `WHERE year = Y AND month = M`, and the headline
//! question (`tests/interop/readers.py` is each reader's side). DuckDB and
//! Spark also run the DDL `auditlake ddl` prints, including for a lake path
//! that holds quotes, spaces and `;`.
//!
//! Needs a Python with the readers and a Java runtime for Spark
//! (AUDITLAKE_TEST_PYTHON, set by scripts/test-services, which installs
//! them, pinned); skipped only when that variable is absent.

use std::process::Command;

use crate::common::*;

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

/// The tables of the matrix lake.
const TABLES: [&str; 4] = ["dashboard", "heroic", "heroku", "terraform"];

/// A lake of every bundled source: Heroku archives, a re-export and daily
/// pages, ids that are not canonical UUIDs, Terraform pages and NDJSON, and
/// both mapped exports; plus a generated month of 20,000 events of another
/// account (and its 1-in-1000 late events in the month before), whose times
/// fall back between the file's sort groups as real months do: on such a
/// month fastparquet misread 19,713 of 20,000 delta-encoded timestamps.
fn matrix_lake(dir: &std::path::Path) -> std::path::PathBuf {
    let lake = dir.join("lake");
    let generated = dir.join("generated");
    auditlake::synthetic::generate(
        &auditlake::synthetic::Spec {
            months: vec![(2024, 8)],
            per_month: 20_000,
            seed: 7,
            account: "globex".into(),
            payload: Default::default(),
        },
        &generated,
    )
    .unwrap();
    convert_ok(
        &lake,
        &[
            &testdata("heroku"),
            &testdata("heroku-reexport"),
            &testdata("heroku-events"),
            &testdata("terraform"),
            &odd_id_archives(dir),
            &generated,
        ],
    );
    for (mapping, data) in [
        ("dashboard", "mapped/dashboard"),
        ("heroic", "mapped/heroic"),
    ] {
        let out = auditlake(&[
            "convert",
            "--quiet",
            "--lake",
            lake.to_str().unwrap(),
            "--mapping",
            &format!("mappings/{mapping}.toml"),
            testdata(data).to_str().unwrap(),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    lake
}

/// auditlake's answers in the shape readers.py prints.
fn auditlake_answers(lake: &std::path::Path) -> (serde_json::Value, Vec<String>) {
    use serde_json::{Value, json};
    let ndjson = |args: &[&str]| -> Vec<Value> {
        let mut all = vec!["--format", "ndjson"];
        all.extend_from_slice(args);
        let out = query(lake, &all);
        assert!(out.status.success(), "{}", stderr(&out));
        stdout(&out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let mut answers = serde_json::Map::new();
    let mut months = Vec::new();
    for table in TABLES {
        let rows: Vec<Value> = ndjson(&[&format!(
            "SELECT year, month, id, CAST(created_at AS BIGINT) AS ms FROM {table} ORDER BY id"
        )])
        .into_iter()
        .map(|r| json!([r["year"], r["month"], r["id"], r["ms"]]))
        .collect();
        let mut counts = serde_json::Map::new();
        for r in ndjson(&[&format!(
            "SELECT year, month, count(*) AS n FROM {table} GROUP BY year, month ORDER BY year, month"
        )]) {
            let ym = format!("{}-{}", r["year"], r["month"]);
            if !months.contains(&ym) {
                months.push(ym.clone());
            }
            counts.insert(ym, r["n"].clone());
        }
        answers.insert(
            table.to_string(),
            json!({"rows": rows, "partitions_are_integers": true, "month_counts": counts}),
        );
    }
    // Every table is asked about every month (zero rows where it has none).
    for table in TABLES {
        let counts = answers[table]["month_counts"].as_object().unwrap().clone();
        let mut all = serde_json::Map::new();
        for ym in &months {
            all.insert(ym.clone(), counts.get(ym).cloned().unwrap_or(json!(0)));
        }
        answers[table]["month_counts"] = Value::Object(all);
    }
    let headline: Vec<Value> = ndjson(&[
        "--named",
        "config-changes",
        "-p",
        "app=billing-api",
        "-p",
        "month=2024-03",
    ])
    .into_iter()
    .map(|r| {
        json!([
            r["created_at"],
            r["actor"],
            r["action"],
            r["changes"],
            r["ip_address"]
        ])
    })
    .collect();
    answers.insert("config_changes".into(), Value::Array(headline));
    (Value::Object(answers), months)
}

/// Runs readers.py for `reader` on the matrix lake and compares its view of
/// every table with auditlake's.
fn reader_agrees(reader: &str) {
    let dir = tempfile::tempdir().unwrap();
    let lake = matrix_lake(dir.path());
    let (ours, months) = auditlake_answers(&lake);

    // auditlake's own answers, checked by hand against testdata: Heroku has
    // 5 events in January, 4 in February, 10 in March (the archive, its
    // re-export and the daily pages, deduplicated), 3 in May (odd ids); the
    // ids are the sources' text.
    let counts = |t: &str| ours[t]["month_counts"].to_string();
    assert!(
        counts("heroku").contains(r#""2024-1":5,"2024-2":4,"2024-3":10"#),
        "{}",
        counts("heroku")
    );
    assert!(
        counts("heroku").contains(r#""2024-5":3"#),
        "{}",
        counts("heroku")
    );
    let generated = |ym: &str| ours["heroku"]["month_counts"][ym].as_u64().unwrap();
    assert_eq!(generated("2024-7") + generated("2024-8"), 20_000);
    let ids: Vec<&str> = ours["heroku"]["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[2].as_str().unwrap())
        .collect();
    assert!(
        ids.contains(&"evt-1") && ids.contains(&"0B6C1E3A-0000-4000-8000-0000000000AA"),
        "{ids:?}"
    );
    assert_eq!(ours["config_changes"].as_array().unwrap().len(), 5);

    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/readers.py");
    let Some(theirs) = python_file(
        script,
        &[
            reader,
            lake.to_str().unwrap(),
            &TABLES.join(","),
            &months.join(","),
        ],
    ) else {
        return;
    };
    let theirs: serde_json::Value = serde_json::from_str(&theirs).unwrap();
    for table in TABLES {
        for part in ["rows", "partitions_are_integers", "month_counts"] {
            assert_eq!(
                theirs[table][part], ours[table][part],
                "{reader} disagrees on {table}: {part}"
            );
        }
    }
    assert_eq!(
        theirs["config_changes"], ours["config_changes"],
        "{reader} disagrees on the headline question"
    );
}

/// Runs the Python file `script`; None when there is no test Python.
fn python_file(script: &str, args: &[&str]) -> Option<String> {
    let source = std::fs::read_to_string(script).unwrap();
    python(&source, args)
}

macro_rules! readers {
    ($($test:ident => $reader:literal,)*) => {
        $(
            #[test]
            fn $test() {
                reader_agrees($reader);
            }
        )*
    };
}

readers! {
    duckdb_reads_the_folder_as_is => "duckdb",
    pyarrow_dataset_reads_the_folder_as_is => "pyarrow",
    polars_reads_the_folder_as_is => "polars",
    pandas_with_pyarrow_reads_the_folder_as_is => "pandas-pyarrow",
    pandas_with_fastparquet_reads_the_folder_as_is => "pandas-fastparquet",
    chdb_reads_the_folder_as_is => "chdb",
    datafusion_python_reads_the_folder_as_is => "datafusion",
    spark_reads_the_folder_as_is => "spark",
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
# The files alone: text.
print(con.execute("SELECT typeof(id) FROM read_parquet(?) LIMIT 1",
                  [sys.argv[2] + "/heroku/*/*/*.parquet"]).fetchone()[0])
"#;

#[test]
fn duckdb_sees_the_sources_own_ids() {
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
        "evt-1\n0B6C1E3A-0000-4000-8000-0000000000AA\n0b6c1e3a-0000-4000-8000-0000000000bb\n1\nVARCHAR\n"
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

    // Ids as the source wrote them.
    assert_eq!(
        parts[2],
        "evt-1\n0B6C1E3A-0000-4000-8000-0000000000AA\n0b6c1e3a-0000-4000-8000-0000000000bb\n1\n"
    );
}

/// A lake directory whose name would break out of a naively quoted
/// literal and run a statement of its own.
const HOSTILE_DIR: &str = r#"o'brien "lake"; x'); COPY (SELECT 42) TO 'pwned.csv'; --"#;

const DUCKDB_HOSTILE: &str = r#"
import os, sys, duckdb
os.chdir(sys.argv[2])
con = duckdb.connect()
con.execute(open(sys.argv[1]).read())
print(con.execute("SELECT count(*) FROM heroku").fetchone()[0])
print(con.execute("SELECT count(*) FROM events WHERE year = 2024 AND month = 3").fetchone()[0])
print(sorted(os.listdir(".")))
"#;

/// Runs `script` on the DDL `engine` prints for a lake at [`HOSTILE_DIR`]
/// holding testdata/heroku, in an empty working directory; the script's
/// arguments are the DDL file, that directory and a scratch directory.
fn run_hostile_ddl(engine: &str, script: &str) -> Option<String> {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join(HOSTILE_DIR);
    convert_ok(&lake, &[&testdata("heroku")]);
    let out = auditlake(&["ddl", "--engine", engine, "--lake", lake.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let ddl = dir.path().join("lake.sql");
    std::fs::write(&ddl, stdout(&out)).unwrap();
    let cwd = dir.path().join("cwd");
    std::fs::create_dir(&cwd).unwrap();
    let scratch = dir.path().join("scratch");
    python(
        script,
        &[
            ddl.to_str().unwrap(),
            cwd.to_str().unwrap(),
            scratch.to_str().unwrap(),
        ],
    )
}

#[test]
fn duckdb_ddl_for_a_hostile_lake_path_registers_it_and_runs_nothing_else() {
    // testdata/heroku: 5 + 4 + 5 events, 5 of them in March; no file written.
    if let Some(duck) = run_hostile_ddl("duckdb", DUCKDB_HOSTILE) {
        assert_eq!(duck, "14\n5\n[]\n");
    }
}

const SPARK_HOSTILE: &str = r#"
import os, sys
from pyspark.sql import SparkSession
os.chdir(sys.argv[2])
spark = (SparkSession.builder.master("local[1]")
         .config("spark.ui.enabled", "false")
         .config("spark.sql.warehouse.dir", sys.argv[3])
         .getOrCreate())
spark.sparkContext.setLogLevel("ERROR")
text = "\n".join(l for l in open(sys.argv[1]).read().splitlines() if not l.startswith("--"))
for statement in text.split(";\n"):
    if statement.strip():
        spark.sql(statement.strip().rstrip(";"))
print(spark.sql("SELECT count(*) FROM heroku").collect()[0][0])
print(spark.sql("SELECT count(*) FROM events WHERE year = 2024 AND month = 3").collect()[0][0])
print(sorted(os.listdir(".")))
"#;

#[test]
fn spark_ddl_for_a_hostile_lake_path_registers_it_and_runs_nothing_else() {
    if let Some(spark) = run_hostile_ddl("spark", SPARK_HOSTILE) {
        assert_eq!(spark, "14\n5\n[]\n");
    }
}
