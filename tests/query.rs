//! `auditlake query` and `auditlake queries` through the real binary on the
//! testdata lake; expected answers are worked out in testdata/README.md.

use crate::common::*;

fn ok(out: std::process::Output) -> String {
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    stdout(&out)
}

const TWO_ROWS: &str =
    "SELECT id, created_at, app_name, data FROM heroku WHERE month = 2 ORDER BY created_at LIMIT 2";

#[test]
fn every_output_format_byte_for_byte() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let run = |format: &str| ok(query(&lake, &["--format", format, TWO_ROWS]));
    assert_eq!(
        run("table"),
        "\
+--------------------------------------+--------------------------+--------------+--------------------------------------------------+
| id                                   | created_at               | app_name     | data                                             |
+--------------------------------------+--------------------------+--------------+--------------------------------------------------+
| 0b6c1e3a-0000-4000-8000-000000000011 | 2024-02-01T00:00:00Z     | NULL         | {\"user\":{\"email\":\"dan@acme.io\"},\"role\":\"member\"} |
| 0b6c1e3a-0000-4000-8000-000000000012 | 2024-02-14T12:00:00.250Z | web-frontend | {\"version\":42,\"commit\":\"9f1c2ab\"}                |
+--------------------------------------+--------------------------+--------------+--------------------------------------------------+
"
    );
    assert_eq!(
        run("csv"),
        r#"id,created_at,app_name,data
0b6c1e3a-0000-4000-8000-000000000011,2024-02-01T00:00:00Z,,"{""user"":{""email"":""dan@acme.io""},""role"":""member""}"
0b6c1e3a-0000-4000-8000-000000000012,2024-02-14T12:00:00.250Z,web-frontend,"{""version"":42,""commit"":""9f1c2ab""}"
"#
    );
    assert_eq!(
        run("json"),
        r#"[{"id":"0b6c1e3a-0000-4000-8000-000000000011","created_at":"2024-02-01T00:00:00Z","app_name":null,"data":"{\"user\":{\"email\":\"dan@acme.io\"},\"role\":\"member\"}"},{"id":"0b6c1e3a-0000-4000-8000-000000000012","created_at":"2024-02-14T12:00:00.250Z","app_name":"web-frontend","data":"{\"version\":42,\"commit\":\"9f1c2ab\"}"}]
"#
    );
    assert_eq!(
        run("ndjson"),
        r#"{"id":"0b6c1e3a-0000-4000-8000-000000000011","created_at":"2024-02-01T00:00:00Z","app_name":null,"data":"{\"user\":{\"email\":\"dan@acme.io\"},\"role\":\"member\"}"}
{"id":"0b6c1e3a-0000-4000-8000-000000000012","created_at":"2024-02-14T12:00:00.250Z","app_name":"web-frontend","data":"{\"version\":42,\"commit\":\"9f1c2ab\"}"}
"#
    );
    assert_eq!(
        run("markdown"),
        "\
| id                                   | created_at               | app_name     | data                                             |
|--------------------------------------|--------------------------|--------------|--------------------------------------------------|
| 0b6c1e3a-0000-4000-8000-000000000011 | 2024-02-01T00:00:00Z     | NULL         | {\"user\":{\"email\":\"dan@acme.io\"},\"role\":\"member\"} |
| 0b6c1e3a-0000-4000-8000-000000000012 | 2024-02-14T12:00:00.250Z | web-frontend | {\"version\":42,\"commit\":\"9f1c2ab\"}                |
"
    );
    // Empty results are still well-formed.
    let none = "SELECT id FROM heroku WHERE id = 'none'";
    assert_eq!(ok(query(&lake, &["--format", "json", none])), "[]\n");
    assert_eq!(ok(query(&lake, &["--format", "csv", none])), "id\n");
    assert_eq!(ok(query(&lake, &["--format", "ndjson", none])), "");
}

#[tokio::test]
async fn parquet_output_reads_back() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = dir.path().join("result.parquet");
    ok(query(
        &lake,
        &[
            "--format",
            "parquet",
            "--output",
            out.to_str().unwrap(),
            TWO_ROWS,
        ],
    ));
    let rows = query_file(&out, "SELECT id, app_name FROM t ORDER BY id").await;
    assert_eq!(
        rows,
        [
            ["0b6c1e3a-0000-4000-8000-000000000011", "NULL"],
            ["0b6c1e3a-0000-4000-8000-000000000012", "web-frontend"]
        ]
    );
    // Text is plain Utf8 in the file's Arrow schema (the engine reads it as
    // views), as in the lake's own files.
    let file = std::fs::File::open(&out).unwrap();
    let builder =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
            .unwrap();
    let types: Vec<String> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        types,
        [
            "id:Utf8",
            "created_at:Timestamp(ms, \"UTC\")",
            "app_name:Utf8",
            "data:Utf8"
        ]
    );
}

#[test]
fn the_headline_question_both_ways() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let named = ok(query(
        &lake,
        &[
            "--named",
            "config-changes",
            "--param",
            "app=billing-api",
            "--param",
            "month=2024-03",
            "--format",
            "csv",
        ],
    ));
    assert_eq!(
        named,
        "created_at,actor,action,changes,ip_address\n\
         2024-03-01T00:00:00Z,ann@acme.io,set,\"[\"\"STRIPE_KEY\"\"]\",203.0.113.10\n\
         2024-03-04T11:22:33Z,zoë@acme.io,set,\"[\"\"WEB_CONCURRENCY\"\",\"\"RAILS_ENV\"\"]\",198.51.100.23\n"
    );
    let sql = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "SELECT created_at, actor_email AS actor, action, data->>'changes' AS changes, ip_address FROM heroku \
         WHERE type = 'config_change' AND app_name = 'billing-api' \
         AND created_at >= '2024-03-01T00:00:00Z' AND created_at < '2024-04-01T00:00:00Z' ORDER BY created_at",
        ],
    ));
    assert_eq!(sql, named);
}

/// Each named query against answers worked out by hand from testdata/README.md.
#[test]
fn named_queries_give_hand_checked_answers() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let run = |name: &str, params: &[&str]| {
        let mut args = vec!["--format", "csv", "--named", name];
        for p in params {
            args.extend(["--param", p]);
        }
        ok(query(&lake, &args))
    };
    assert_eq!(
        run(
            "actor-activity",
            &["actor=bob@acme.io", "from=2024-01-01", "to=2024-02-20"]
        ),
        "created_at,source,type,action,target,ip_address\n\
         2024-01-10T10:15:00Z,heroku,config_change,set,billing-api,198.51.100.7\n\
         2024-02-14T12:00:00.250Z,heroku,code_release,create,web-frontend,198.51.100.7\n\
         2024-02-20T14:30:00Z,heroku,config_change,remove,billing-api,198.51.100.7\n"
    );
    assert_eq!(
        run("app-history", &["app=web-frontend"]),
        "created_at,type,action,actor,data\n\
         2024-01-25T08:00:00Z,addon,create,zoë@acme.io,\"{\"\"addon\"\":\"\"heroku-postgresql\"\",\"\"plan\"\":\"\"essential-0\"\"}\"\n\
         2024-02-14T12:00:00.250Z,code_release,create,bob@acme.io,\"{\"\"version\"\":42,\"\"commit\"\":\"\"9f1c2ab\"\"}\"\n\
         2024-03-12T09:30:00Z,config_change,set,bob@acme.io,\"{\"\"changes\"\":[\"\"CDN_URL\"\"]}\"\n\
         2024-03-14T20:00:00Z,addon,destroy,ann@acme.io,\"{\"\"addon\"\":\"\"heroku-redis\"\"}\"\n"
    );
    assert_eq!(
        run("deploys", &["app=billing-api", "month=2024-03"]),
        "created_at,actor,version,data\n2024-03-08T16:00:00Z,bob@acme.io,17,\"{\"\"version\"\":17}\"\n"
    );
    assert_eq!(
        run("collaborator-changes", &["month=2024-01"]),
        "created_at,app_name,action,collaborator,actor\n2024-01-20T17:45:30Z,billing-api,create,cy@acme.io,ann@acme.io\n"
    );
    assert_eq!(
        run("addon-changes", &["month=2024-03"]),
        "created_at,app_name,action,addon,actor\n2024-03-14T20:00:00Z,web-frontend,destroy,heroku-redis,ann@acme.io\n"
    );
    assert_eq!(
        run("destroyed-resources", &["month=2024-03"]),
        "created_at,type,target,actor,data\n2024-03-14T20:00:00Z,addon,web-frontend,ann@acme.io,\"{\"\"addon\"\":\"\"heroku-redis\"\"}\"\n"
    );
    assert_eq!(
        run("membership-changes", &["month=2024-02"]),
        "created_at,type,action,scope,member,actor\n\
         2024-02-01T00:00:00Z,team_membership,create,web,dan@acme.io,ann@acme.io\n\
         2024-02-29T23:00:00Z,enterprise_account_membership,update,acme,dan@acme.io,ann@acme.io\n"
    );
    // Event 10 sits in February's archive but happened in January.
    assert_eq!(
        run("activity-by-ip", &["ip=192.0.2.44"]),
        "created_at,source,actor,type,action,target\n2024-01-31T23:59:59Z,heroku,dan@acme.io,config_change,set,billing-api\n"
    );
    assert_eq!(
        run("top-actors", &["month=2024-03"]),
        "actor,events,targets,first_seen,last_seen\n\
         ann@acme.io,2,2,2024-03-01T00:00:00Z,2024-03-14T20:00:00Z\n\
         bob@acme.io,2,2,2024-03-08T16:00:00Z,2024-03-12T09:30:00Z\n\
         zoë@acme.io,1,1,2024-03-04T11:22:33Z,2024-03-04T11:22:33Z\n"
    );
}

#[test]
fn parameters_are_bound_never_spliced() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "--named",
            "config-changes",
            "--param",
            "app=x' OR '1'='1",
            "--param",
            "month=2024-03",
        ],
    ));
    assert_eq!(out, "created_at,actor,action,changes,ip_address\n");
    // Ad-hoc SQL binds --param values as text placeholders too.
    let out = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "-p",
            "app=x' OR '1'='1",
            "SELECT count(*) AS n FROM heroku WHERE app_name = $app",
        ],
    ));
    assert_eq!(out, "n\n0\n");
    let out = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "-p",
            "app=web-frontend",
            "SELECT count(*) AS n FROM heroku WHERE app_name = $app",
        ],
    ));
    assert_eq!(out, "n\n4\n");
    // A text value compared with a timestamp is cast as SQL would cast the
    // literal: March 22, 23, 24 and 25 are after the 4th's midnight.
    let out = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "-p",
            "t=2024-03-04T00:00:00Z",
            "SELECT count(*) AS n FROM heroku WHERE created_at > $t",
        ],
    ));
    assert_eq!(out, "n\n4\n");
}

#[test]
fn bad_parameters_are_refused_clearly() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let cases: [(&[&str], &str); 4] = [
        (
            &["--param", "app=x", "--param", "month=2024-3"],
            "auditlake: error: config-changes: parameter month=\"2024-3\" is not a month (YYYY-MM)\n",
        ),
        (
            &["--param", "app=x"],
            "auditlake: error: config-changes: missing parameter month (month: UTC calendar month, YYYY-MM); usage: auditlake query --named config-changes --param app=<text> --param month=<month>\n",
        ),
        (
            &[
                "--param",
                "app=x",
                "--param",
                "month=2024-03",
                "--param",
                "user=y",
            ],
            "auditlake: error: config-changes: unknown parameter \"user\" (parameters: app, month)\n",
        ),
        (&["--param", "app"], ""),
    ];
    for (params, expected) in cases {
        let mut args = vec!["--named", "config-changes"];
        args.extend_from_slice(params);
        let out = query(&lake, &args);
        // Usage errors, whether clap's or the named query's.
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        if !expected.is_empty() {
            assert_eq!(stderr(&out), expected);
        }
    }
    let out = query(&lake, &["--named", "no-such-query"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).starts_with(
            "auditlake: error: no named query \"no-such-query\"; `auditlake queries` lists them"
        ),
        "{}",
        stderr(&out)
    );
}

#[test]
fn the_lake_is_read_only_unless_asked() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let export = dir.path().join("export.csv");
    let copy = format!(
        "COPY (SELECT id FROM heroku ORDER BY id LIMIT 2) TO '{}'",
        export.display()
    );
    for (sql, kind) in [
        (copy.as_str(), "DML and COPY"),
        ("INSERT INTO heroku SELECT * FROM heroku", "DML and COPY"),
        ("CREATE TABLE t AS SELECT 1", "DDL"),
        ("DROP VIEW events", "DDL"),
    ] {
        let out = query(&lake, &[sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        assert_eq!(
            stderr(&out),
            format!(
                "auditlake: error: the lake is read-only: {kind} statements are refused (pass --allow-write to run them, e.g. for COPY … TO exports)\n"
            )
        );
    }
    assert!(!export.exists());
    ok(query(&lake, &["--allow-write", &copy]));
    assert_eq!(
        std::fs::read_to_string(&export).unwrap(),
        "id\n0b6c1e3a-0000-4000-8000-000000000001\n0b6c1e3a-0000-4000-8000-000000000002\n"
    );
}

#[test]
fn a_missing_or_empty_lake_says_how_to_convert() {
    let dir = tempfile::tempdir().unwrap();
    for lake in [dir.path().join("missing"), dir.path().to_path_buf()] {
        let out = query(&lake, &["SELECT 1"]);
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            stderr(&out),
            format!(
                "auditlake: error: the lake at {0} holds no tables yet; convert archives into it first: auditlake convert <PATH>... --lake {0}\n",
                lake.display()
            )
        );
    }
}

#[test]
fn errors_are_one_line_with_exit_1() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = query(&lake, &["SELEC 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with("auditlake: error: SQL error: ParserError"),
        "{}",
        stderr(&out)
    );
    assert_eq!(query(&lake, &[]).status.code(), Some(2));
}

#[test]
fn sql_from_stdin_and_files() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = auditlake_with_stdin(
        &[
            "query",
            "--format",
            "csv",
            "--lake",
            lake.to_str().unwrap(),
            "-",
        ],
        "SELECT count(*) AS n FROM heroku;\nSELECT count(*) AS m FROM events WHERE month = 1;",
    );
    assert_eq!(stdout(&out), "n\n14\nm\n5\n");

    let file = dir.path().join("q.sql");
    std::fs::write(
        &file,
        "-- how many events in March?\nSELECT count(*) AS n FROM heroku WHERE month = 3;\n",
    )
    .unwrap();
    assert_eq!(
        ok(query(
            &lake,
            &["--format", "csv", "-f", file.to_str().unwrap()]
        )),
        "n\n5\n"
    );
}

#[test]
fn queries_lists_names_and_parameters_and_takes_a_users_directory() {
    let listing = ok(auditlake(&["queries"]));
    for name in [
        "config-changes",
        "actor-activity",
        "app-history",
        "deploys",
        "collaborator-changes",
        "addon-changes",
        "destroyed-resources",
        "membership-changes",
        "activity-by-ip",
        "top-actors",
    ] {
        assert!(
            listing.contains(&format!("{name}\n")),
            "{name} missing from\n{listing}"
        );
    }
    assert!(listing.contains("config-changes\n    Who changed config vars on an app in a month (Heroku config_change events)\n    --param app=<text>  App name, e.g. billing-api\n    --param month=<month>  UTC calendar month, YYYY-MM\n"), "{listing}");

    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let mine = dir.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("ips.sql"), "-- name: ips-of\n-- description: IPs an actor used\n-- param: actor text  Who\nSELECT DISTINCT ip_address FROM heroku WHERE actor_email = $actor ORDER BY ip_address;\n").unwrap();
    let out = ok(query(
        &lake,
        &[
            "--queries",
            mine.to_str().unwrap(),
            "--format",
            "csv",
            "--named",
            "ips-of",
            "--param",
            "actor=ann@acme.io",
        ],
    ));
    assert_eq!(out, "ip_address\n203.0.113.10\n");
}

/// A time filter prunes to the months it allows: the plan of a March query
/// scans March's file only, and its metrics show one file opened.
#[test]
fn time_filters_prune_to_the_months_asked() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    for relation in ["heroku", "events"] {
        let plan = ok(query(
            &lake,
            &[
                "--format",
                "csv",
                &format!(
                    "EXPLAIN ANALYZE SELECT count(*) FROM {relation} WHERE created_at >= '2024-03-01T00:00:00Z' AND created_at < '2024-03-31T12:00:00Z'"
                ),
            ],
        ));
        assert!(plan.contains("month=3/acme.parquet"), "{plan}");
        assert!(
            !plan.contains("month=1/") && !plan.contains("month=2/"),
            "{plan}"
        );
        assert!(plan.contains("files_opened=1"), "{plan}");
    }
    // Without a time filter every month is scanned.
    let plan = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "EXPLAIN ANALYZE SELECT count(*) FROM heroku WHERE data IS NOT NULL",
        ],
    ));
    assert!(plan.contains("files_opened=3"), "{plan}");
    // BETWEEN bounds prune too: mid-January to February 1st opens two files.
    let plan = ok(query(
        &lake,
        &[
            "--format",
            "csv",
            "-p",
            "x=1",
            "EXPLAIN ANALYZE SELECT count(*) FROM heroku WHERE created_at BETWEEN '2024-01-15T00:00:00Z' AND '2024-02-01T00:00:00Z'",
        ],
    ));
    assert!(
        plan.contains("files_opened=2") && !plan.contains("month=3/"),
        "{plan}"
    );
}

/// A time bound at a month's first instant is answered by the partitions
/// alone (every row lies in the month of its own time), so the scan neither
/// tests nor decodes `created_at` for it; the answers are those of the bounds
/// themselves at the millisecond around each month's edge, and bounds that are
/// not at a month's start (or not `>=`/`<`) still test every row.
#[test]
fn month_start_bounds_are_answered_by_the_partitions() {
    let dir = tempfile::tempdir().unwrap();
    let entry = |id: &str, at: &str| {
        format!(
            r#"{{"id":"00000000-0000-4000-8000-00000000000{id}","type":"app","action":"update","actor":{{"id":"u","email":"ann@acme.io"}},"app":{{"id":"a","name":"billing-api"}},"enterprise_account":{{"id":"ea","name":"acme"}},"data":{{}},"created_at":"{at}"}}"#
        )
    };
    let entries = [
        entry("1", "2024-02-29T23:59:59.999Z"),
        entry("2", "2024-03-01T00:00:00.000Z"),
        entry("3", "2024-03-15T12:00:00Z"),
        entry("4", "2024-03-31T23:59:59.999Z"),
        entry("5", "2024-04-01T00:00:00.000Z"),
    ];
    let archive = dir.path().join("edges.json");
    std::fs::write(&archive, format!("[{}]", entries.join(","))).unwrap();
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&archive]);
    let ids = |filter: &str| {
        let out = ok(query(
            &lake,
            &[
                "--format",
                "csv",
                &format!("SELECT right(id, 1) AS e FROM heroku WHERE {filter} ORDER BY e"),
            ],
        ));
        out.lines().skip(1).collect::<Vec<_>>().join(",")
    };
    let march = "created_at >= '2024-03-01T00:00:00Z' AND created_at < '2024-04-01T00:00:00Z'";
    for (filter, want) in [
        (march, "2,3,4"),
        ("created_at < '2024-03-01T00:00:00Z'", "1"),
        ("created_at >= '2024-04-01T00:00:00Z'", "5"),
        (
            "'2024-04-01T00:00:00Z' > created_at AND '2024-03-01T00:00:00Z' <= created_at",
            "2,3,4",
        ),
        // Not at a month's start, or not >= and <: tested row by row.
        (
            "created_at >= '2024-03-01T00:00:00.001Z' AND created_at < '2024-04-01T00:00:00Z'",
            "3,4",
        ),
        (
            "created_at > '2024-03-01T00:00:00Z' AND created_at <= '2024-04-01T00:00:00Z'",
            "3,4,5",
        ),
        // The month's and the year's fields of the time are its partitions.
        (
            "date_trunc('month', created_at) = '2024-03-01T00:00:00Z'",
            "2,3,4",
        ),
        (
            "date_trunc('month', created_at) = '2024-03-02T00:00:00Z'",
            "",
        ),
        ("date_part('month', created_at) = 3", "2,3,4"),
        ("EXTRACT(MONTH FROM created_at) = 2", "1"),
        (
            "EXTRACT(YEAR FROM created_at) = 2024 AND date_part('month', created_at) = 4",
            "5",
        ),
        (
            "created_at >= '2024-03-01T00:00:00Z' OR id LIKE '%1'",
            "1,2,3,4,5",
        ),
    ] {
        assert_eq!(ids(filter), want, "{filter}");
    }

    let explain = |sql: &str| {
        ok(query(
            &lake,
            &["--format", "csv", &format!("EXPLAIN {sql}")],
        ))
    };
    let plan = explain(&format!("SELECT id FROM heroku WHERE {march}"));
    assert!(plan.contains("month=3/acme.parquet"), "{plan}");
    assert!(
        !plan.contains("month=2/") && !plan.contains("month=4/"),
        "{plan}"
    );
    // Exact filters of the table scan, none in the physical plan.
    assert!(
        plan.contains("full_filters=[heroku.created_at >="),
        "{plan}"
    );
    let physical = &plan[plan.find("physical_plan").unwrap()..];
    assert!(!physical.contains("created_at"), "{plan}");
    assert!(!physical.contains("FilterExec"), "{plan}");
    let plan = explain(
        "SELECT id FROM heroku WHERE date_trunc('month', created_at) = '2024-03-01T00:00:00Z'",
    );
    assert!(plan.contains("month=3/acme.parquet"), "{plan}");
    assert!(
        !plan.contains("month=2/") && !plan.contains("month=4/"),
        "{plan}"
    );
    let physical = &plan[plan.find("physical_plan").unwrap()..];
    assert!(!physical.contains("created_at"), "{plan}");
    // A count over whole months is then one of the footers' counts.
    let plan = explain(&format!("SELECT count(*) FROM heroku WHERE {march}"));
    assert!(plan.contains("FooterCountsExec: files=1"), "{plan}");
    assert_eq!(
        ok(query(
            &lake,
            &[
                "--format",
                "csv",
                &format!("SELECT count(*) AS n FROM heroku WHERE {march}")
            ]
        )),
        "n\n3\n"
    );
    let plan = explain(
        "SELECT id FROM heroku WHERE created_at >= '2024-03-01T00:00:00.001Z' AND created_at < '2024-04-01T00:00:00Z'",
    );
    assert!(plan.contains("created_at@1 >= 1709251200001"), "{plan}");
    assert!(!plan.contains("created_at@1 < 1711929600000"), "{plan}");
}

/// Counts by partition columns come from the files' footers, and agree
/// with counting the rows; a filter on a column of the files (or a count
/// of a column) still scans them.
#[test]
fn counts_by_month_come_from_the_footers() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let csv = |sql: &str| ok(query(&lake, &["--format", "csv", sql]));
    // testdata/README.md: January 5 events, February 4, March 5.
    assert_eq!(
        csv(
            "SELECT year, month, count(*) AS n, count(1) AS m FROM heroku GROUP BY year, month ORDER BY year, month"
        ),
        "year,month,n,m\n2024,1,5,5\n2024,2,4,4\n2024,3,5,5\n"
    );
    assert_eq!(
        csv("SELECT month, count(id) AS n FROM heroku GROUP BY month ORDER BY month"),
        "month,n\n1,5\n2,4\n3,5\n"
    );
    assert_eq!(csv("SELECT count(*) AS n FROM heroku"), "n\n14\n");
    assert_eq!(
        csv(
            "SELECT month, count(*) AS n FROM heroku WHERE year = 2024 AND month >= 2 GROUP BY month ORDER BY month"
        ),
        "month,n\n2,4\n3,5\n"
    );
    let plan = csv("EXPLAIN SELECT year, month, count(*) FROM heroku GROUP BY year, month");
    assert!(plan.contains("FooterCountsExec: files=3"), "{plan}");
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    let plan = csv(
        "EXPLAIN SELECT month, count(*) FROM heroku WHERE year = 2024 AND month = 3 GROUP BY month",
    );
    assert!(plan.contains("FooterCountsExec: files=1"), "{plan}");
    // On one partition (one core) too, where the partial and final
    // aggregations would otherwise be merged into one before the rule runs.
    let one = "SET datafusion.execution.target_partitions = 1; ";
    let plan = csv(&format!(
        "{one}EXPLAIN SELECT year, month, count(*) FROM heroku GROUP BY year, month"
    ));
    assert!(plan.contains("FooterCountsExec: files=3"), "{plan}");
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    assert_eq!(
        csv(&format!(
            "{one}SELECT year, month, count(*) AS n FROM heroku GROUP BY year, month ORDER BY year, month"
        )),
        "year,month,n\n2024,1,5\n2024,2,4\n2024,3,5\n"
    );
    // Distinct partition values need no rows either.
    assert_eq!(
        csv("SELECT month, count(DISTINCT 1) AS n FROM heroku GROUP BY month ORDER BY month"),
        "month,n\n1,1\n2,1\n3,1\n"
    );
    // A filter on the files' columns counts rows: 2, 1 and 3 config changes.
    assert_eq!(
        csv(
            "SELECT month, count(*) AS n FROM heroku WHERE type = 'config_change' GROUP BY month ORDER BY month"
        ),
        "month,n\n1,2\n2,1\n3,3\n"
    );
    // (counted on the codes of `type`; see the next test)
    let plan = csv(
        "EXPLAIN SELECT month, count(*) FROM heroku WHERE type = 'config_change' GROUP BY month",
    );
    assert!(!plan.contains("FooterCountsExec"), "{plan}");
    assert!(
        plan.contains("DictionaryGroupsExec: codes=[], filter=[type]"),
        "{plan}"
    );
    let plan = csv("EXPLAIN SELECT month, count(id) FROM heroku GROUP BY month");
    assert!(!plan.contains("FooterCountsExec"), "{plan}");
    assert!(plan.contains("DataSourceExec"), "{plan}");
}

/// Counts grouped by dictionary columns are counted on the files' codes
/// (`DictionaryGroupsExec`) and agree with testdata/README.md's events:
/// by type and action, by team (one event has none), distinct IPs per
/// actor, and by month and actor; with a filter on the files' columns, or
/// an aggregate other than a count, the scan is DataFusion's own.
#[test]
fn counts_by_dictionary_columns_come_from_the_codes() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let csv = |sql: &str| ok(query(&lake, &["--format", "csv", sql]));
    let by_type = "SELECT type, action, count(*) AS n FROM heroku GROUP BY type, action ORDER BY type, action";
    let by_type_answer = "type,action,n\n\
        addon,create,1\naddon,destroy,1\napp,create,1\ncode_release,create,2\n\
        collaborator,create,1\nconfig_change,remove,1\nconfig_change,set,5\n\
        enterprise_account_membership,update,1\nteam_membership,create,1\n";
    assert_eq!(csv(by_type), by_type_answer);
    let plan = csv(&format!("EXPLAIN {by_type}"));
    assert!(
        plan.contains("DictionaryGroupsExec: codes=[type, action], files=3"),
        "{plan}"
    );
    assert!(!plan.contains("DataSourceExec"), "{plan}");
    // Event 14 has no team: its group is null, and count(team_name) skips it.
    assert_eq!(
        csv(
            "SELECT team_name, count(*) AS n, count(team_name) AS m FROM heroku \
             GROUP BY team_name ORDER BY team_name NULLS LAST"
        ),
        "team_name,n,m\npayments,8,8\nweb,5,5\n,1,0\n"
    );
    // zoë worked from 198.51.100.7 (04) and 198.51.100.23 (22).
    let ips = "SELECT actor_email, count(DISTINCT ip_address) AS ips FROM heroku \
               GROUP BY actor_email ORDER BY actor_email";
    let ips_answer =
        "actor_email,ips\nann@acme.io,1\nbob@acme.io,1\ndan@acme.io,1\nzoë@acme.io,2\n";
    assert_eq!(csv(ips), ips_answer);
    let plan = csv(&format!("EXPLAIN {ips}"));
    assert!(
        plan.contains("DictionaryGroupsExec: codes=[actor_email, ip_address]"),
        "{plan}"
    );
    // A partition column among the groups.
    let by_month = "SELECT month, actor_email, count(*) AS n FROM heroku \
                    GROUP BY month, actor_email ORDER BY month, actor_email";
    let by_month_answer = "month,actor_email,n\n\
        1,ann@acme.io,2\n1,bob@acme.io,1\n1,dan@acme.io,1\n1,zoë@acme.io,1\n\
        2,ann@acme.io,2\n2,bob@acme.io,2\n\
        3,ann@acme.io,2\n3,bob@acme.io,2\n3,zoë@acme.io,1\n";
    assert_eq!(csv(by_month), by_month_answer);
    assert!(
        csv(&format!("EXPLAIN {by_month}"))
            .contains("DictionaryGroupsExec: codes=[actor_email], files=3")
    );
    // On one partition (one core) too.
    let one = "SET datafusion.execution.target_partitions = 1; ";
    let plan = csv(&format!("{one}EXPLAIN {by_type}"));
    assert!(plan.contains("DictionaryGroupsExec"), "{plan}");
    assert_eq!(csv(&format!("{one}{by_type}")), by_type_answer);
    // A filter on dictionary columns is answered from the codes too; a
    // count without groups is one group. ann@acme.io: 01 app, 03
    // collaborator, 11, 14, 21 config change, 25 addon.
    let ann = "SELECT type, count(*) AS n FROM heroku WHERE actor_email = 'ann@acme.io' \
               GROUP BY type ORDER BY type";
    assert_eq!(
        csv(ann),
        "type,n\naddon,1\napp,1\ncollaborator,1\nconfig_change,1\n\
         enterprise_account_membership,1\nteam_membership,1\n"
    );
    assert!(
        csv(&format!("EXPLAIN {ann}"))
            .contains("DictionaryGroupsExec: codes=[type], filter=[actor_email], files=3")
    );
    // payments' config changes: 02, 10 (billing-api, January), 13
    // (February), 21, 22 (March); the IN list and LIKE keep 21 and 22.
    for (sql, answer) in [
        (
            "SELECT count(*) AS n FROM heroku WHERE team_name = 'payments' AND type = 'config_change'",
            "n\n5\n",
        ),
        (
            "SELECT month, count(*) AS n FROM heroku WHERE team_name = 'payments' \
             AND type = 'config_change' AND actor_email IN ('ann@acme.io', 'zoë@acme.io') \
             GROUP BY month ORDER BY month",
            "month,n\n3,2\n",
        ),
        (
            "SELECT count(*) AS n FROM heroku WHERE actor_email LIKE 'zo%' AND team_name IS NOT NULL",
            "n\n2\n",
        ),
        // Event 14, the only one without a team.
        (
            "SELECT count(*) AS n FROM heroku WHERE team_name IS NULL",
            "n\n1\n",
        ),
        (
            "SELECT count(*) AS n FROM heroku WHERE actor_email = 'nobody'",
            "n\n0\n",
        ),
    ] {
        assert_eq!(csv(sql), answer, "{sql}");
        let plan = csv(&format!("EXPLAIN {sql}"));
        assert!(plan.contains("DictionaryGroupsExec"), "{sql}: {plan}");
    }
    // Filters on other columns, on two columns at once, other aggregates
    // and other group columns scan as before.
    for sql in [
        "EXPLAIN SELECT type, count(*) FROM heroku WHERE created_at >= TIMESTAMP '2024-02-01T12:00:00Z' GROUP BY type",
        "EXPLAIN SELECT type, count(*) FROM heroku WHERE type = action GROUP BY type",
        "EXPLAIN SELECT type, count(*) FROM heroku WHERE random() < 0.5 AND type = 'app' GROUP BY type",
        "EXPLAIN SELECT type, count(*) FROM heroku WHERE type = 'app' AND CAST(action AS INT) > 0 GROUP BY type",
        "EXPLAIN SELECT type, count(*) FROM heroku WHERE lower(actor_email) = 'ann@acme.io' GROUP BY type",
        "EXPLAIN SELECT type, count(id) FROM heroku GROUP BY type",
        "EXPLAIN SELECT type, max(created_at) FROM heroku GROUP BY type",
        "EXPLAIN SELECT id, count(*) FROM heroku GROUP BY id",
    ] {
        let plan = csv(sql);
        assert!(!plan.contains("DictionaryGroupsExec"), "{sql}: {plan}");
        assert!(plan.contains("DataSourceExec"), "{sql}: {plan}");
    }
}

#[test]
fn a_statement_without_a_result_prints_nothing() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let sql = "SET datafusion.execution.batch_size = 1024; SELECT 1 AS x";
    for (format, expected) in [
        ("csv", "x\n1\n"),
        ("json", "[{\"x\":1}]\n"),
        ("ndjson", "{\"x\":1}\n"),
        ("markdown", "| x |\n|---|\n| 1 |\n"),
    ] {
        assert_eq!(
            ok(query(&lake, &["--format", format, sql])),
            expected,
            "{format}"
        );
    }
}

#[test]
fn ids_are_shown_as_the_source_wrote_them() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&odd_id_archives(dir.path())]);
    let csv = |sql: &str| ok(query(&lake, &["--format", "csv", sql]));
    // Stored as the text each archive had (nothing of it in `extra`), the
    // second archive's evt-1 replacing the first's.
    assert_eq!(
        csv("SELECT id, data, extra FROM heroku ORDER BY created_at"),
        "id,data,extra\n\
         evt-1,\"{\"\"v\"\":4}\",\n\
         0B6C1E3A-0000-4000-8000-0000000000AA,\"{\"\"v\"\":2}\",\n\
         0b6c1e3a-0000-4000-8000-0000000000bb,\"{\"\"v\"\":3}\",\n"
    );
    assert_eq!(
        csv("SELECT source, data FROM events WHERE id = 'evt-1'"),
        "source,data\nheroku,\"{\"\"v\"\":4}\"\n"
    );
}

/// `year` and `month` filter by value: DataFusion lists only the directory
/// prefix it spells from leading equalities (`year=2024/month=3`), which is
/// how the lake names months (with `month=03`, this once answered no rows).
#[test]
fn year_and_month_equalities_find_their_partition() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    // testdata/README.md: January 5 rows, February 4, March 5.
    for (sql, expected) in [
        (
            "SELECT count(*) AS n FROM heroku WHERE year = 2024 AND month = 3",
            "5",
        ),
        (
            "SELECT count(*) AS n FROM heroku WHERE month = 2 AND year = 2024",
            "4",
        ),
        (
            "SELECT count(*) AS n FROM heroku WHERE 2024 = year AND 1 = month",
            "5",
        ),
        ("SELECT count(*) AS n FROM heroku WHERE year = 2024", "14"),
        ("SELECT count(*) AS n FROM heroku WHERE month = 3", "5"),
        (
            "SELECT count(*) AS n FROM events WHERE year = 2024 AND month = 2",
            "4",
        ),
        (
            "SELECT count(*) AS n FROM heroku WHERE year = 2024 AND month = 4",
            "0",
        ),
    ] {
        let out = ok(query(&lake, &["--format", "csv", sql]));
        assert_eq!(out, format!("n\n{expected}\n"), "{sql}");
    }
}

/// Long machine-written SQL: each of these shapes once aborted the process
/// with a stack overflow (exit 134). Each now gets one line saying it nests
/// too deep and how to write it instead; shorter chains plan; a shell
/// session goes on.
#[test]
fn long_sql_plans_or_is_refused_in_one_line() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let chain = |n: usize, term: &dyn Fn(usize) -> String, op: &str| {
        (0..n).map(term).collect::<Vec<_>>().join(op)
    };
    let ors = |n| chain(n, &|i| format!("type = 't{i}'"), " OR ");
    let unions = |n| chain(n, &|i| format!("SELECT {i} AS x"), " UNION ALL ");
    let pluses = |n| chain(n, &|_| "1".to_string(), " + ");
    let ands = |n| chain(n, &|_| "app_name IS NOT NULL".to_string(), " AND ");
    let run = |sql: String| {
        let file = dir.path().join("long.sql");
        std::fs::write(&file, sql).unwrap();
        query(&lake, &["--format", "csv", "-f", file.to_str().unwrap()])
    };
    for sql in [
        format!("SELECT count(*) FROM heroku WHERE {}", ors(5_000)),
        format!("SELECT count(*) FROM ({})", unions(2_000)),
        format!("SELECT {}", pluses(10_000)),
        format!("SELECT count(*) FROM heroku WHERE {}", ands(30_000)),
    ] {
        let out = run(sql);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        let err = stderr(&out);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(
            err.contains("levels deep")
                && err.contains("the limit is 1000")
                && err.contains("IN (...)"),
            "{err}"
        );
    }
    // Past 1 MiB of text a statement is refused before it is parsed: a
    // 10 MB chain once took 15 s and 5 GB, then overflowed the stack.
    let out = run(format!("SELECT {}", pluses(2_500_000)));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "auditlake: error: the statement is 10000004 bytes long; the limit is 1048576 (1 MiB): \
         split it, and put long lists of values in a table to join\n"
    );
    // Below the limit: no event has such a type; 500 rows; the sum.
    let plans = [
        (
            format!("SELECT count(*) AS n FROM heroku WHERE {}", ors(400)),
            "n\n0\n",
        ),
        (
            format!("SELECT count(*) AS n FROM ({})", unions(500)),
            "n\n500\n",
        ),
        (format!("SELECT {} AS n", pluses(300)), "n\n300\n"),
    ];
    for (sql, expected) in plans {
        assert_eq!(ok(run(sql)), expected);
    }

    // The shell says so and answers the next statement.
    let script = format!(
        ".format csv\nSELECT count(*) FROM heroku WHERE {};\nSELECT 42 AS answer;\n",
        ands(30_000)
    );
    let out = auditlake_with_stdin(&["shell", "--lake", lake.to_str().unwrap()], &script);
    assert_eq!(stdout(&out), "answer\n42\n", "{}", stderr(&out));
    assert!(
        stderr(&out).contains("the limit is 1000"),
        "{}",
        stderr(&out)
    );

    // A statement of 400,000 lines, 1.6 MB: the shell reads it in linear
    // time (lexing the whole statement again at each line took 10 s for
    // 40,000 lines), keeps at most the limit of it, refuses it in one line
    // and answers the next statement.
    let script = format!(
        ".format csv\nSELECT 1\n{};\nSELECT 42 AS answer;\n",
        "+ 1\n".repeat(400_000)
    );
    let out = auditlake_with_stdin(&["shell", "--lake", lake.to_str().unwrap()], &script);
    assert_eq!(stdout(&out), "answer\n42\n", "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "auditlake: error: the statement is 1600011 bytes long; the limit is 1048576 (1 MiB): \
         split it, and put long lists of values in a table to join\n"
    );
}

/// A function that builds text from a count cannot allocate past a quarter
/// of the query memory limit: refused in one line, before it allocates.
#[test]
fn string_builders_are_bounded_by_the_memory_limit() {
    let lake = testdata_lake();
    let lake = lake.path().join("lake");
    for (sql, name, bytes) in [
        (
            "SELECT length(repeat('x', 1000000000))",
            "repeat",
            1_000_000_000u64,
        ),
        ("SELECT lpad('x', 100000000)", "lpad", 400_000_000),
        ("SELECT rpad('x', 300000000)", "rpad", 1_200_000_000),
    ] {
        let out = query(&lake, &[sql]);
        assert_eq!(out.status.code(), Some(1), "{sql}");
        assert_eq!(
            stderr(&out),
            format!(
                "auditlake: error: Execution error: {name}() would build up to {bytes} bytes of text in one batch, more than a query may (268435456 bytes, a quarter of --memory-limit)\n"
            ),
            "{sql}"
        );
    }
    let out = query(
        &lake,
        &[
            "--format",
            "csv",
            "SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS l",
        ],
    );
    assert_eq!(stdout(&out), "r,l\nababab,007\n");
    // A higher limit lets a larger one through.
    let out = query(
        &lake,
        &[
            "--memory-limit",
            "4G",
            "--format",
            "csv",
            "SELECT length(repeat('x', 300000000)) AS n",
        ],
    );
    assert_eq!(stdout(&out), "n\n300000000\n", "{}", stderr(&out));
}

/// A session reads each month file as it listed it (see
/// `common::a_session_reads_whole_files_across_conversions`).
#[tokio::test]
async fn a_session_reads_whole_files_across_conversions() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    crate::common::a_session_reads_whole_files_across_a_conversion(lake.to_str().unwrap()).await;
}

/// `--output` writes the result whole or not at all: a query that fails
/// after 24,576 rows (the fourth batch divides by zero) leaves
/// yesterday's file as it was and no temporary file beside it; one that
/// succeeds replaces it.
#[test]
fn a_failed_query_leaves_its_output_file_as_it_was() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let results = dir.path().join("results");
    std::fs::create_dir(&results).unwrap();
    let file = results.join("out.csv");
    std::fs::write(&file, "yesterday\n").unwrap();
    let path = file.to_str().unwrap();
    let failing = "SELECT v, 10 / (v - 30000) AS x FROM generate_series(1, 100000) AS t(v)";
    let out = query(&lake, &["--format", "csv", "-o", path, failing]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Divide by zero"), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "yesterday\n");
    assert_eq!(files_under(&results), ["out.csv"]);

    let sql = "SELECT type, count(*) AS n FROM heroku GROUP BY type ORDER BY type";
    let out = query(&lake, &["--format", "csv", "-o", path, sql]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    // testdata/README.md: 14 events.
    let written = std::fs::read_to_string(&file).unwrap();
    assert!(written.starts_with("type,n\n"), "{written}");
    let total: u64 = written
        .lines()
        .skip(1)
        .map(|l| l.rsplit(',').next().unwrap().parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 14, "{written}");
    assert_eq!(files_under(&results), ["out.csv"]);
    // It reads as any file the user makes there, not as a private temporary.
    std::fs::write(results.join("ordinary"), "x").unwrap();
    assert_eq!(mode(&file), mode(&results.join("ordinary")));

    let missing = dir.path().join("nowhere/out.csv");
    let out = query(&lake, &["-o", missing.to_str().unwrap(), "SELECT 1"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "auditlake: error: cannot create {}: No such file or directory (os error 2)\n",
            missing.display()
        )
    );
}

/// `--timeout` stops a query that runs too long, in one line with exit 1,
/// and writes no output file; a timeout that is not a number of seconds is
/// a usage error.
#[test]
fn a_query_past_its_timeout_is_stopped() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let file = dir.path().join("out.csv");
    let endless = "SELECT count(*) AS n FROM generate_series(1, 100000000000) AS t(v)";
    let started = std::time::Instant::now();
    let out = query(
        &lake,
        &["--timeout", "0.5", "-o", file.to_str().unwrap(), endless],
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert_eq!(
        stderr(&out),
        "auditlake: error: the query ran longer than --timeout 0.5 s and was stopped: narrow it (a month, an app) or give it longer\n"
    );
    assert!(!file.exists());
    assert_eq!(
        files_under(dir.path())
            .iter()
            .filter(|f| !f.starts_with("lake/"))
            .count(),
        0
    );
    let out = query(&lake, &["--timeout", "0", "SELECT 1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}
