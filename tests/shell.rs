//! `auditlake shell`: scripted through stdin, and interactive through a real
//! pseudo-terminal.

use std::process::Command;

use crate::common::*;

fn scripted(lake: &std::path::Path, script: &str) -> std::process::Output {
    auditlake_with_stdin(&["shell", "--lake", lake.to_str().unwrap()], script)
}

#[test]
fn scripted_statements_and_meta_commands() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let script = "\
SELECT count(*) AS n
  FROM heroku;
.format csv
SELECT nope FROM heroku;
SELECT month, count(*) AS n FROM heroku GROUP BY month ORDER BY month; SELECT 1 AS one;
.maxrows 2
.format markdown
SELECT id FROM heroku ORDER BY id;
.format csv
.run deploys app=billing-api month=2024-03
.run deploys app=billing-api
.tables
.schema events
.bogus
";
    let out = scripted(&lake, script);
    assert_eq!(
        stdout(&out),
        "\
+----+
| n  |
+----+
| 14 |
+----+
month,n
1,5
2,4
3,5
one
1
| id                                   |
|--------------------------------------|
| 0b6c1e3a-0000-4000-8000-000000000001 |
| 0b6c1e3a-0000-4000-8000-000000000002 |
14 rows, showing the first 2 (.maxrows to change)
created_at,actor,version,data
2024-03-08T16:00:00Z,bob@acme.io,17,\"{\"\"version\"\":17}\"
heroku
events
events
  source                     Utf8 not null
  id                         Utf8 not null
  created_at                 Timestamp(ms, \"UTC\") not null
  type                       Utf8
  action                     Utf8
  actor                      Utf8
  actor_id                   Utf8
  target                     Utf8
  ip_address                 Utf8
  data                       Utf8
  year                       Int32 not null
  month                      Int32 not null
"
    );
    let err = stderr(&out);
    let errors: Vec<&str> = err
        .lines()
        .map(|l| l.split(" Did you mean").next().unwrap())
        .collect();
    assert_eq!(
        errors,
        [
            "auditlake: error: Schema error: No field named nope.",
            "auditlake: error: deploys: missing parameter month (month: UTC calendar month, YYYY-MM); usage: auditlake query --named deploys --param app=<text> --param month=<month>",
            "auditlake: error: unknown command \".bogus\"; .help lists the commands",
        ]
    );
    // A script that hit errors exits 1 (after running everything).
    assert_eq!(out.status.code(), Some(1));

    let clean = scripted(&lake, "SELECT 2 AS two;\n.quit\nSELECT 3;\n");
    assert_eq!(
        stdout(&clean),
        "+-----+\n| two |\n+-----+\n| 2   |\n+-----+\n"
    );
    assert_eq!(clean.status.code(), Some(0));
}

/// A named query's plan is kept for the session and bound to new values on
/// every run: each run answers for its own values, and a SET (which forgets
/// the kept plans) changes nothing in the answers.
#[test]
fn a_named_query_runs_again_with_new_values() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let script = "\
.format csv
.run config-changes app=billing-api month=2024-03
.run config-changes app=web-frontend month=2024-03
.run config-changes app=billing-api month=2024-01
SET datafusion.execution.batch_size = 2;
.run config-changes app=billing-api month=2024-03
";
    let out = scripted(&lake, script);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let answers: Vec<Vec<&str>> = text
        .split("created_at,actor,action,changes,ip_address\n")
        .skip(1)
        // Rows only: SET prints an empty result of its own.
        .map(|a| a.lines().filter(|l| l.starts_with("2024-")).collect())
        .collect();
    assert_eq!(answers.len(), 4, "{text}");
    // testdata/README.md: billing-api's March config changes are 21 and 22.
    let march = [
        "2024-03-01T00:00:00Z,ann@acme.io,set,\"[\"\"STRIPE_KEY\"\"]\",203.0.113.10",
        "2024-03-04T11:22:33Z,zoë@acme.io,set,\"[\"\"WEB_CONCURRENCY\"\",\"\"RAILS_ENV\"\"]\",198.51.100.23",
    ];
    assert_eq!(answers[0], march);
    // web-frontend's one March config change is 24.
    assert_eq!(answers[1].len(), 1, "{text}");
    assert!(answers[1][0].starts_with("2024-03-12T09:30:00Z,"), "{text}");
    // billing-api in January: 02, and 10 from February's archive.
    assert_eq!(answers[2].len(), 2, "{text}");
    assert!(answers[2][1].starts_with("2024-01-31T23:59:59Z,"), "{text}");
    assert_eq!(answers[3], march);
}

/// A named query that reads the clock is planned afresh each run: the
/// optimizer folds `now()` into the plan, so a kept plan would answer with
/// the first run's time.
#[test]
fn a_named_query_reading_the_clock_is_not_kept() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let queries = dir.path().join("queries");
    std::fs::create_dir_all(&queries).unwrap();
    std::fs::write(
        queries.join("clock.sql"),
        "-- name: clock\n-- description: the time and an app\n-- param: app text  App name\n\
         SELECT CAST(now() AS VARCHAR) AS t, count(*) AS n FROM heroku WHERE app_name = $app;\n",
    )
    .unwrap();
    let out = auditlake_with_stdin(
        &[
            "shell",
            "--lake",
            lake.to_str().unwrap(),
            "--queries",
            queries.to_str().unwrap(),
        ],
        ".format csv\n.run clock app=billing-api\n.run clock app=billing-api\n",
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let rows: Vec<&str> = text.lines().filter(|l| !l.starts_with("t,")).collect();
    assert_eq!(rows.len(), 2, "{text}");
    // testdata/README.md: billing-api's events are 01 02 03 10 in January,
    // 13 in February, 21 22 23 in March.
    assert!(rows.iter().all(|r| r.ends_with(",8")), "{text}");
    assert_ne!(rows[0], rows[1], "now() was frozen: {text}");
}

#[test]
fn output_goes_to_a_file_and_back() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let file = dir.path().join("out.csv");
    let script = format!(
        ".format csv\n.output {}\nSELECT 1 AS a;\n.output stdout\nSELECT 2 AS b;\n",
        file.display()
    );
    let out = scripted(&lake, &script);
    assert_eq!(stdout(&out), "b\n2\n");
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "a\n1\n");
}

#[test]
fn writes_are_refused_in_the_shell_too() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = scripted(
        &lake,
        "DROP VIEW events;\nSELECT count(*) AS n FROM events;\n",
    );
    assert_eq!(
        stderr(&out),
        "auditlake: error: the lake is read-only: DDL statements are refused (pass --allow-write to run them, e.g. for COPY … TO exports)\n"
    );
    assert!(stdout(&out).contains("| 14 |"), "{}", stdout(&out));
}

/// The interactive shell in a real pseudo-terminal.
#[test]
fn interactive_session_in_a_pseudo_terminal() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let state = dir.path().join("state");
    let mut command = Command::new(env!("CARGO_BIN_EXE_auditlake"));
    command
        .args(["shell", "--lake", lake.to_str().unwrap()])
        .env("XDG_STATE_HOME", &state)
        .env("NO_COLOR", "1")
        .env("TERM", "xterm");
    let mut p = rexpect::session::spawn_command(command, Some(20_000)).unwrap();
    p.exp_string("auditlake> ").unwrap();

    // A statement over two lines.
    p.send_line("SELECT count(*) AS n").unwrap();
    p.send_line("FROM heroku;").unwrap();
    p.exp_string("| 14 |").unwrap();

    // Tab completes a table name.
    p.send("SELECT count(*) AS m FROM even").unwrap();
    p.send("\t").unwrap();
    p.send_line(" WHERE month = 2;").unwrap();
    p.exp_string("| 4 |").unwrap();

    p.send_line(".tables").unwrap();
    p.exp_string("events").unwrap();

    // An error, then the shell goes on.
    p.send_line("SELEC 1;").unwrap();
    p.exp_string("auditlake: error: SQL error").unwrap();
    p.send_line("SELECT 41 + 1 AS answer;").unwrap();
    p.exp_string("| 42 ").unwrap();

    // Ctrl-C cancels a long query and returns to the prompt.
    p.send_line("SELECT max(value % 7) FROM range(50000000000);")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(700));
    p.send_control('c').unwrap();
    p.exp_string("query cancelled").unwrap();
    p.send_line("SELECT 7 AS seven;").unwrap();
    p.exp_string("| 7 ").unwrap();

    // Ctrl-D leaves.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    let history = std::fs::read_to_string(state.join("auditlake/history")).unwrap();
    assert!(history.contains("SELECT 41 + 1 AS answer;"), "{history}");
    assert!(history.contains(".tables"), "{history}");
}
