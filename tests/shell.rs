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
        "+-----+\n| two |\n+-----+\n|   2 |\n+-----+\n"
    );
    assert_eq!(clean.status.code(), Some(0));
}

/// psql's backslash commands do what the dot commands do, where a statement
/// would start: `\dt` is not the start of a statement that swallows the
/// next lines, and `\q` leaves.
#[test]
fn psql_commands_are_understood() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let script = "\
\\dt
SELECT count(*) AS n FROM heroku;
\\x
SELECT 1 AS one, 'a' AS letter;
\\x
\\pset null '(none)'
SELECT NULL AS nothing;
\\pset format csv
SELECT 2 AS two;
\\timing
\\timing off
\\l
\\q
SELECT 3 AS three;
";
    let out = scripted(&lake, script);
    assert_eq!(
        stdout(&out),
        "\
heroku  14 rows  3 months, 2024-01 … 2024-03
events  14 rows  3 months, 2024-01 … 2024-03
+----+
| n  |
+----+
| 14 |
+----+
Expanded display is on.
   one = 1
letter = a
Expanded display is off.
+---------+
| nothing |
+---------+
| (none)  |
+---------+
two
2
Timing is on.
"
    );
    assert_eq!(
        stderr(&out),
        "auditlake: error: unknown command \"\\l\"; .help lists the commands (psql's among them)\n"
    );
    assert_eq!(out.status.code(), Some(1));
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

/// `.once` takes the next result only (a failed one too), then results go
/// where they went before: stdout, or the `.output` file.
#[test]
fn once_takes_the_next_result_only() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let once = dir.path().join("once.csv");
    let failed = dir.path().join("failed.csv");
    let kept = dir.path().join("kept.csv");
    let script = format!(
        ".format csv\n.once {once}\nSELECT 1 AS a;\nSELECT 2 AS b;\n\
         .once {failed}\nSELECT nope FROM heroku;\nSELECT 3 AS c;\n\
         .output {kept}\nSELECT 4 AS d;\n.once {once}\nSELECT 5 AS e;\nSELECT 6 AS f;\n",
        once = once.display(),
        failed = failed.display(),
        kept = kept.display()
    );
    let out = scripted(&lake, &script);
    assert_eq!(stdout(&out), "b\n2\nc\n3\n");
    assert_eq!(std::fs::read_to_string(&once).unwrap(), "e\n5\n");
    assert_eq!(std::fs::read_to_string(&failed).unwrap(), "");
    assert_eq!(std::fs::read_to_string(&kept).unwrap(), "d\n4\nf\n6\n");
    assert!(
        stderr(&out).contains("No field named nope"),
        "{}",
        stderr(&out)
    );
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
    // On a terminal: the type under the name, the number right-aligned.
    p.exp_string("| bigint |").unwrap();
    p.exp_string("|     14 |").unwrap();

    // Tab completes a table name.
    p.send("SELECT count(*) AS m FROM even").unwrap();
    p.send("\t").unwrap();
    p.send_line(" WHERE month = 2;").unwrap();
    p.exp_string("|      4 |").unwrap();

    p.send_line(".tables").unwrap();
    p.exp_string("events").unwrap();

    // An error, then the shell goes on.
    p.send_line("SELEC 1;").unwrap();
    p.exp_string("auditlake: error: SQL error").unwrap();
    p.send_line("SELECT 41 + 1 AS answer;").unwrap();
    p.exp_string("|     42 |").unwrap();

    // Ctrl-C cancels a long query and returns to the prompt.
    // Keys typed while a statement runs reach the terminal in cooked mode,
    // where Ctrl-C and Ctrl-D mean something else: each waits for the
    // state it acts on (the progress line, the prompt).
    p.send_line("SELECT max(value % 7) FROM range(50000000000);")
        .unwrap();
    p.exp_string("(Ctrl-C cancels)").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("query cancelled").unwrap();
    p.send_line("SELECT 7 AS seven;").unwrap();
    p.exp_string("|      7 |").unwrap();
    p.exp_string("auditlake> ").unwrap();

    // Ctrl-D leaves.
    p.send_control('d').unwrap();
    p.exp_eof().unwrap();

    let history = std::fs::read_to_string(state.join("auditlake/history")).unwrap();
    assert!(history.contains("SELECT 41 + 1 AS answer;"), "{history}");
    assert!(history.contains(".tables"), "{history}");
}

/// `-c` and `-f` run, print and exit; the first error stops them with exit
/// code 1, located by file and line for `-f`.
#[test]
fn commands_and_files_exit_at_the_first_error() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let lake = lake.to_str().unwrap();
    let ok = auditlake(&[
        "shell",
        "-n",
        "--lake",
        lake,
        "-c",
        "SELECT 40 + 2 AS answer;",
    ]);
    assert_eq!(ok.status.code(), Some(0), "{}", stderr(&ok));
    assert_eq!(
        stdout(&ok),
        "+--------+\n| answer |\n+--------+\n|     42 |\n+--------+\n"
    );

    let script = dir.path().join("report.sql");
    std::fs::write(
        &script,
        "SELECT 1 AS a;\n.format csv\nSELECT nope\n  FROM heroku;\nSELECT 2 AS b;\n",
    )
    .unwrap();
    let failed = auditlake(&[
        "shell",
        "-n",
        "--lake",
        lake,
        "-f",
        script.to_str().unwrap(),
    ]);
    assert_eq!(failed.status.code(), Some(1));
    // The statement after the error did not run.
    assert_eq!(stdout(&failed), "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
    let err = stderr(&failed);
    assert!(
        err.starts_with(&format!(
            "auditlake: error: {}:3: Schema error: No field named nope.",
            script.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");

    let missing = auditlake(&["shell", "-n", "--lake", lake, "-f", "/nonexistent/x.sql"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stderr(&missing).starts_with("auditlake: error: cannot read /nonexistent/x.sql"),
        "{}",
        stderr(&missing)
    );

    // -f files run before -c commands, in the order given.
    let setup = dir.path().join("setup.sql");
    std::fs::write(&setup, ".format csv\n").unwrap();
    let both = auditlake(&[
        "shell",
        "-n",
        "--lake",
        lake,
        "-c",
        "SELECT 1 AS one;",
        "-f",
        setup.to_str().unwrap(),
        "-c",
        "SELECT 2 AS two;",
    ]);
    assert_eq!(both.status.code(), Some(0), "{}", stderr(&both));
    assert_eq!(stdout(&both), "one\n1\ntwo\n2\n");
}

/// `.read` runs a file as if typed; `.bail on` stops at the first error;
/// `.echo on` prints each statement before its result.
#[test]
fn read_echo_and_bail() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let part = dir.path().join("part.sql");
    std::fs::write(&part, "SELECT 1 AS a;\nSELECT nope;\nSELECT 2 AS b;\n").unwrap();
    let script = format!(
        ".format csv\n.read {p}\nSELECT 3 AS c;\n.echo on\nSELECT 4 AS d;\n.bail on\n.read {p}\nSELECT 5 AS e;\n",
        p = part.display()
    );
    let out = scripted(&lake, &script);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        format!(
            "a\n1\nb\n2\nc\n3\nSELECT 4 AS d;\nd\n4\n.bail on\n.read {p}\nSELECT 1 AS a;\na\n1\nSELECT nope;\n",
            p = part.display()
        )
    );
    let errors: Vec<String> = stderr(&out)
        .lines()
        .map(|l| l.split(" Did you mean").next().unwrap().to_string())
        .collect();
    let located = format!(
        "auditlake: error: {}:2: Schema error: No field named nope.",
        part.display()
    );
    assert_eq!(errors, [located.clone(), located]);
}

/// The rc file runs first, unless -n.
#[test]
fn the_rc_file_sets_the_shell_up() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("auditlake")).unwrap();
    std::fs::write(
        config.join("auditlake/shellrc"),
        ".format csv\n.nullvalue -\n",
    )
    .unwrap();
    let run = |extra: &[&str]| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_auditlake"));
        command
            .args(["shell", "--lake", lake.to_str().unwrap()])
            .args(extra)
            .args(["-c", "SELECT 1 AS a;"])
            .env("XDG_CONFIG_HOME", &config)
            .env_remove("AUDITLAKE_LAKE");
        command.output().unwrap()
    };
    assert_eq!(stdout(&run(&[])), "a\n1\n");
    assert_eq!(stdout(&run(&["-n"])), "+---+\n| a |\n+---+\n| 1 |\n+---+\n");
}

/// line, tsv, .nullvalue, .maxwidth (which also applies to a pipe when
/// set), and .last re-printing the previous result whole.
#[test]
fn formats_null_text_width_and_last() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let script = "\
.format line
SELECT id, app_name, created_at FROM heroku WHERE id LIKE '%11';
.format tsv
SELECT 'x' AS \"a b\", NULL AS n, 'l1' || chr(10) || 'l2' AS multi;
.format table
.nullvalue ∅
SELECT NULL AS n;
.maxwidth 32
SELECT id, data FROM heroku WHERE id LIKE '%12';
.maxwidth auto
.types off
.last
.mode box
SELECT 1 AS one;
";
    let out = scripted(&lake, script);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "        id = 0b6c1e3a-0000-4000-8000-000000000011
  app_name = NULL
created_at = 2024-02-01T00:00:00Z
a b\tn\tmulti
x\t\tl1\\nl2
+---+
| n |
+---+
| ∅ |
+---+
+---------------+--------------+
| id            | data         |
| varchar       | varchar      |
+---------------+--------------+
| 0b6c1e3a-000… | {\"version\":… |
+---------------+--------------+
+--------------------------------------+-----------------------------------+
| id                                   | data                              |
+--------------------------------------+-----------------------------------+
| 0b6c1e3a-0000-4000-8000-000000000012 | {\"version\":42,\"commit\":\"9f1c2ab\"} |
+--------------------------------------+-----------------------------------+
┌─────┐
│ one │
├─────┤
│   1 │
└─────┘
"
    );
}

/// DESCRIBE and .schema say what each column means; .tables how much each
/// table holds.
#[test]
fn describe_schema_and_tables() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = query(&lake, &["--format", "csv", "DESCRIBE heroku"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "column_name,data_type,is_nullable,description");
    assert_eq!(
        lines[1],
        "id,Utf8View,NO,\"the event's id, exactly as Heroku wrote it (unique in the table)\""
    );
    assert_eq!(
        lines[8],
        "app_name,Utf8View,YES,name of the app acted on (app.name)"
    );
    assert_eq!(
        lines[18],
        "year,Int32,NO,partition: the UTC year of created_at (directory year=YYYY)"
    );
    assert_eq!(lines.len(), 20, "{text}");

    let out = scripted(&lake, ".tables\n.schema events\n");
    assert_eq!(
        stdout(&out),
        "\
heroku  14 rows  3 months, 2024-01 … 2024-03
events  14 rows  3 months, 2024-01 … 2024-03
events
  source      Utf8 not null                  the table the event comes from (heroku, terraform, a mapped table)
  id          Utf8View not null              the event's id, as the platform wrote it
  created_at  Timestamp(ms, \"UTC\") not null  when it happened (UTC, milliseconds)
  type        Utf8View                       what kind of thing was acted on
  action      Utf8View                       what was done to it (create, update, destroy, …)
  actor       Utf8View                       who acted: an email, user or token name
  actor_id    Utf8View                       the actor's id on the platform
  target      Utf8View                       what was acted on: app, team, account or resource id
  ip_address  Utf8View                       where the request came from
  data        Utf8View                       the event's details, as JSON text (data->>'key')
  year        Int32 not null                 partition: the UTC year of created_at (directory year=YYYY)
  month       Int32 not null                 partition: the UTC month of created_at, 1-12 (directory month=M)
"
    );
}
