//! The lake is a public contract: DuckDB reads it as is, through the DDL
//! `auditlake ddl --engine duckdb` prints, and gets auditlake's answers.
//! Needs a Python with duckdb (AUDITLAKE_TEST_PYTHON, set by
//! scripts/test-services); skipped only when that variable is absent.

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

    let named = query(
        &lake,
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
    // CSV quoting aside (the changes hold commas), the rows are the same.
    let unquote = |s: &str| s.replace('"', "");
    let ours_answer: String = stdout(&named)
        .lines()
        .skip(1)
        .map(|l| format!("{}\n", unquote(l)))
        .collect();
    assert_eq!(unquote(answer), ours_answer);
    assert_eq!(answer.lines().count(), 4);
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
