//! Every source besides Heroku's monthly archives, through the real binary:
//! Heroku daily event pages, Terraform Cloud audit trail pages, mapped
//! exports, format detection and forcing, and the `events` view over all.
//! Expected values are worked out in testdata/README.md.

use std::path::Path;

use crate::common::*;

fn lake_arg(lake: &Path) -> &str {
    lake.to_str().unwrap()
}

/// `auditlake query --format csv` output, asserting success.
fn csv(lake: &Path, args: &[&str]) -> String {
    let mut all = vec!["--format", "csv"];
    all.extend_from_slice(args);
    let out = query(lake, &all);
    assert!(out.status.success(), "query failed: {}", stderr(&out));
    stdout(&out)
}

fn convert_with(lake: &Path, extra: &[&str], inputs: &[&str]) -> std::process::Output {
    let mut args = vec!["convert", "--lake", lake_arg(lake)];
    args.extend_from_slice(extra);
    let paths: Vec<String> = inputs
        .iter()
        .map(|i| testdata(i).display().to_string())
        .collect();
    args.extend(paths.iter().map(String::as_str));
    auditlake(&args)
}

/// A lake holding every bundled source: heroku/, heroku-events/, terraform/
/// and both mapped exports.
fn full_lake() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    for (extra, inputs) in [
        (vec![], vec!["heroku", "heroku-events", "terraform"]),
        (
            vec!["--mapping", "mappings/dashboard.toml"],
            vec!["mapped/dashboard"],
        ),
        (
            vec!["--mapping", "mappings/heroic.toml"],
            vec!["mapped/heroic"],
        ),
    ] {
        let out = convert_with(&lake, &extra, &inputs);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    dir
}

#[test]
fn heroku_event_pages_merge_into_the_monthly_files() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    convert_ok(&lake, &[&testdata("heroku")]);
    let out = convert_with(&lake, &[], &["heroku-events"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Page 14 repeats archive event 22 and adds 31; page 15 repeats 31 and
    // adds 32. Both pages merge into March's file in one step: 5 + 2 rows.
    let text = stdout(&out);
    assert!(
        text.contains(
            "acme-events-2024-03-14.json  2 entries  months 2024-03  7 rows written (1 new)"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "acme-events-2024-03-15.json  2 entries  months 2024-03  7 rows written (1 new)"
        ),
        "{text}"
    );
    // Same table, same month file: nothing new in the tree.
    assert_eq!(
        data_files(&lake),
        [
            "heroku/year=2024/month=1/acme.parquet",
            "heroku/year=2024/month=2/acme.parquet",
            "heroku/year=2024/month=3/acme.parquet"
        ]
    );
    assert_eq!(
        csv(
            &lake,
            &[
                "SELECT right(id, 2) AS n, created_at FROM heroku WHERE month = 3 ORDER BY created_at"
            ]
        ),
        "n,created_at\n21,2024-03-01T00:00:00Z\n22,2024-03-04T11:22:33Z\n23,2024-03-08T16:00:00Z\n\
         24,2024-03-12T09:30:00Z\n31,2024-03-14T18:00:00Z\n25,2024-03-14T20:00:00Z\n32,2024-03-15T08:00:00Z\n"
    );
    // The headline question now includes dan's change from the daily page.
    assert_eq!(
        csv(
            &lake,
            &[
                "--named",
                "config-changes",
                "-p",
                "app=billing-api",
                "-p",
                "month=2024-03",
            ]
        )
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect::<Vec<_>>(),
        [
            "2024-03-01T00:00:00Z,ann@acme.io,set",
            "2024-03-04T11:22:33Z,zoë@acme.io,set",
            "2024-03-14T18:00:00Z,dan@acme.io,set"
        ]
    );
    // The status records the detected format.
    let out = auditlake(&["status", "--json", "--lake", lake_arg(&lake)]);
    assert!(
        stdout(&out).contains("\"heroku-events\""),
        "{}",
        stdout(&out)
    );
}

#[test]
fn terraform_pages_and_ndjson_pages_dedupe_by_id() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let out = convert_with(&lake, &[], &["terraform"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains(
            "audit-trail-2020-06-30.json  3 entries  months 2020-06,2020-07  5 rows written (3 new)"
        ),
        "{text}"
    );
    // The NDJSON file holds two pages; its first event repeats t3. Rows
    // written count the month files after the run: June 2 and July 3.
    assert!(
        text.contains(
            "audit-trail-since-2020-07-01.ndjson  3 entries  months 2020-07  3 rows written (2 new)"
        ),
        "{text}"
    );
    assert_eq!(
        data_files(&lake),
        [
            "terraform/year=2020/month=6/org-AGLwRmx1snv34Yts.parquet",
            "terraform/year=2020/month=7/org-AGLwRmx1snv34Yts.parquet"
        ]
    );
    assert_eq!(
        csv(&lake, &["SELECT * FROM terraform ORDER BY created_at"]),
        "id,created_at,version,type,auth_accessor_id,auth_description,auth_type,auth_impersonator_id,\
auth_organization_id,request_id,resource_id,resource_type,resource_action,resource_meta,extra,year,month\n\
ae66e491-db59-457c-8445-9c908ee726ae,2020-06-30T17:52:46Z,0,Resource,user-MaPuLxAXvtq2PWTH,pveverka,Client,,\
org-AGLwRmx1snv34Yts,4df584d4-7e2a-01e6-6cc0-4adbefa020e6,at-sjt83qTw3GZatuPm,authentication_token,create,,,2020,6\n\
5b1f3a4e-0000-4000-8000-000000000002,2020-06-30T18:10:00Z,0,Resource,user-MaPuLxAXvtq2PWTH,pveverka,Client,,\
org-AGLwRmx1snv34Yts,6c7d0000-0000-4000-8000-000000000002,ws-prod123,workspace,create,\"{\"\"name\"\":\"\"prod\"\"}\",,2020,6\n\
5b1f3a4e-0000-4000-8000-000000000003,2020-07-01T09:00:00Z,0,Resource,system,terraform,System,,\
org-AGLwRmx1snv34Yts,,run-FwnENkvDnrpyFC7M,run,applied,,,2020,7\n\
5b1f3a4e-0000-4000-8000-000000000004,2020-07-01T10:00:00Z,0,Resource,user-V3R563qtJNcExAkN,mia,Impersonated,\
user-Admin0000000001,org-AGLwRmx1snv34Yts,6c7d0000-0000-4000-8000-000000000004,var-Abc123,var,update,\
\"{\"\"key\"\":\"\"AWS_REGION\"\"}\",,2020,7\n\
5b1f3a4e-0000-4000-8000-000000000005,2020-07-02T11:00:00Z,0,Resource,user-MaPuLxAXvtq2PWTH,pveverka,Client,,\
org-AGLwRmx1snv34Yts,6c7d0000-0000-4000-8000-000000000005,at-sjt83qTw3GZatuPm,authentication_token,destroy,,\
\"{\"\"source_ip\"\":\"\"198.51.100.9\"\"}\",2020,7\n"
    );
    // Converting again changes nothing.
    let before: Vec<Vec<u8>> = data_files(&lake)
        .iter()
        .map(|f| std::fs::read(lake.join(f)).unwrap())
        .collect();
    let out = convert_with(&lake, &[], &["terraform"]);
    assert!(stdout(&out).contains("(0 converted, 2 unchanged, 0 failed)"));
    let after: Vec<Vec<u8>> = data_files(&lake)
        .iter()
        .map(|f| std::fs::read(lake.join(f)).unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn mapped_exports_become_tables_with_hashed_ids() {
    let dir = full_lake();
    let lake = dir.path().join("lake");
    let files = data_files(&lake);
    for f in [
        "dashboard/year=2024/month=3/acme.parquet",
        "dashboard/year=2024/month=4/acme.parquet",
        "heroic/year=2024/month=3/acme-games.parquet",
    ] {
        assert!(files.iter().any(|x| x == f), "{f} missing from {files:?}");
    }
    // The April row is in both CSV downloads: its hash id makes it one row.
    assert_eq!(
        csv(
            &lake,
            &[
                "SELECT created_at, type, action, actor, target, role, account, data FROM dashboard ORDER BY created_at"
            ]
        ),
        "created_at,type,action,actor,target,role,account,data\n\
2024-03-05T10:15:00Z,Session,Login,ann@acme.io,ann@acme.io,owner,acme,\"{\"\"Timestamp\"\":\"\"2024-03-05 10:15:00\"\"}\"\n\
2024-03-05T10:20:00Z,application,Updated,ann@acme.io,billing-api,owner,acme,\"{\"\"Timestamp\"\":\"\"2024-03-05 10:20:00\"\",\"\"Metadata\"\":\"\"{\\\"\"variable\\\"\":\\\"\"STRIPE_KEY\\\"\"}\"\"}\"\n\
2024-03-06T14:00:00Z,application,Deployed,bob@acme.io,web-frontend,developer,acme,\"{\"\"Timestamp\"\":\"\"2024-03-06 14:00:00\"\",\"\"Metadata\"\":\"\"{\\\"\"commit\\\"\":\\\"\"9f1c2ab\\\"\"}\"\"}\"\n\
2024-04-01T08:00:00Z,Domain,Deleted,bob@acme.io,old.acme.io,developer,acme,\"{\"\"Timestamp\"\":\"\"2024-04-01 08:00:00\"\"}\"\n\
2024-04-02T09:00:00Z,Custom Role,Created,zoë@acme.io,auditors,owner,acme,\"{\"\"Timestamp\"\":\"\"2024-04-02 09:00:00\"\",\"\"Metadata\"\":\"\"{\\\"\"permissions\\\"\":[\\\"\"read\\\"\"]}\"\"}\"\n"
    );
    // Ids are 32 hex digits, distinct, and the same on a forced re-conversion.
    let ids = csv(&lake, &["SELECT id FROM dashboard ORDER BY id"]);
    let list: Vec<&str> = ids.lines().skip(1).collect();
    assert_eq!(list.len(), 5);
    assert!(
        list.iter()
            .all(|id| id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
    );
    let out = convert_with(
        &lake,
        &["--force", "--mapping", "mappings/dashboard.toml"],
        &["mapped/dashboard"],
    );
    assert!(out.status.success());
    assert_eq!(csv(&lake, &["SELECT id FROM dashboard ORDER BY id"]), ids);

    // Seed 003: the event type splits into category and action; the actor
    // and the resource come from inside metadata, which stays whole in data.
    assert_eq!(
        csv(
            &lake,
            &[
                "SELECT created_at, type, action, actor, target, account FROM heroic ORDER BY created_at"
            ]
        ),
        "created_at,type,action,actor,target,account\n\
2024-03-02T12:00:00Z,Nakama Deployment,Update,ann@acme.io,prod-eu,acme-games\n\
2024-03-03T08:30:00Z,Organization User,Add,bob@acme.io,carol@acme.io,acme-games\n\
2024-03-09T16:45:00Z,Nakama Builder Trigger,Create,zoë@acme.io,main-branch,acme-games\n"
    );
    assert_eq!(
        csv(
            &lake,
            &["SELECT data->'metadata'->>'image' AS image FROM heroic WHERE action = 'Update'"]
        ),
        "image\nnakama:3.21\n"
    );
}

#[test]
fn the_events_view_spans_every_source() {
    let dir = full_lake();
    let lake = dir.path().join("lake");
    assert_eq!(
        csv(
            &lake,
            &[
                "--named",
                "actor-activity",
                "-p",
                "actor=ann@acme.io",
                "-p",
                "from=2024-03-01",
                "-p",
                "to=2024-03-31"
            ]
        ),
        "created_at,source,type,action,target,ip_address\n\
2024-03-01T00:00:00Z,heroku,config_change,set,billing-api,203.0.113.10\n\
2024-03-02T12:00:00Z,heroic,Nakama Deployment,Update,prod-eu,\n\
2024-03-05T10:15:00Z,dashboard,Session,Login,ann@acme.io,\n\
2024-03-05T10:20:00Z,dashboard,application,Updated,billing-api,\n\
2024-03-14T20:00:00Z,heroku,addon,destroy,web-frontend,203.0.113.10\n\
2024-03-15T08:00:00Z,heroku,app,create,reports,203.0.113.10\n"
    );
    // Terraform: actor = auth_description, actor_id = auth_accessor_id,
    // target = resource_id, data = resource_meta.
    assert_eq!(
        csv(
            &lake,
            &[
                "SELECT source, type, action, actor, actor_id, target, data FROM events WHERE source = 'terraform' AND actor = 'mia'"
            ]
        ),
        "source,type,action,actor,actor_id,target,data\n\
terraform,var,update,mia,user-V3R563qtJNcExAkN,var-Abc123,\"{\"\"key\"\":\"\"AWS_REGION\"\"}\"\n"
    );
    // Events per source: heroku 14 + 2 new from pages, terraform 5, dashboard 5, heroic 3.
    assert_eq!(
        csv(
            &lake,
            &["SELECT source, count(*) AS n FROM events GROUP BY source ORDER BY source"]
        ),
        "source,n\ndashboard,5\nheroic,3\nheroku,16\nterraform,5\n"
    );
    // March's top actors count every source (events, distinct targets): ann
    // 3 heroku + 1 heroic + 2 dashboard over 5 targets; bob 2 + 1 + 1 over 3.
    let top = csv(&lake, &["--named", "top-actors", "-p", "month=2024-03"]);
    let firsts: Vec<String> = top
        .lines()
        .skip(1)
        .map(|l| l.split(',').take(3).collect::<Vec<_>>().join(","))
        .collect();
    assert_eq!(
        firsts,
        [
            "ann@acme.io,6,5",
            "bob@acme.io,4,3",
            "zoë@acme.io,2,2",
            "dan@acme.io,1,1"
        ]
    );
}

#[test]
fn forced_formats_and_unrecognised_files_are_refused_clearly() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--format", "terraform"],
            "heroku/enterprise-audit-log-acme-202402.json",
            "expected Terraform Cloud audit trail pages ({\"data\": [...]}): this object has no such array (its keys are account, month, entries)",
        ),
        (
            &["--format", "heroku-events"],
            "terraform/audit-trail-2020-06-30.json",
            "byte 0: expected a JSON array of Heroku events, found an object",
        ),
        (
            &["--format", "heroku"],
            "heroku-events/acme-events-2024-03-14.json",
            "byte 0: expected a Heroku monthly archive ({\"entries\": [...]}), found an array",
        ),
        (
            &[],
            "mapped/dashboard/dashboard-audit-2024-03.csv",
            "byte 0: not a recognised audit file: it starts with 'T'; tried heroku (an object with an \"entries\" array), heroku-events (an array of events) and terraform (pages with a \"data\" array); for other exports write a mapping file and pass --mapping FILE",
        ),
    ];
    for (extra, input, reason) in cases {
        let out = convert_with(&lake, extra, &[input]);
        assert_eq!(out.status.code(), Some(1), "{input}");
        assert_eq!(
            stderr(&out),
            format!(
                "auditlake: error: {}: {reason}\n",
                testdata(input).display()
            ),
            "{input}"
        );
    }
    assert!(data_files(&lake).is_empty());
}

#[test]
fn mapping_errors_name_the_file_record_and_field() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let bad = dir.path().join("bad.csv");
    std::fs::write(
        &bad,
        "Timestamp,User,Action,Resource,Name,Role,Metadata\n\
         2024-03-05 10:15:00,ann@acme.io,Login,Session,ann,owner,\n\
         05/03/2024 10:20,ann@acme.io,Updated,application,billing-api,owner,\n",
    )
    .unwrap();
    let good = testdata("mapped/dashboard/dashboard-audit-2024-03.csv");
    let out = auditlake(&[
        "convert",
        "--lake",
        lake_arg(&lake),
        "--mapping",
        "mappings/dashboard.toml",
        bad.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "auditlake: error: {}: entry 1 (line 3): field \"Timestamp\" value \"05/03/2024 10:20\" does not match format \"%Y-%m-%d %H:%M:%S\"\n",
            bad.display()
        )
    );
    // The good file of the same run still converted; the bad one left nothing.
    assert_eq!(
        data_files(&lake),
        [
            "dashboard/year=2024/month=3/acme.parquet",
            "dashboard/year=2024/month=4/acme.parquet"
        ]
    );

    // A broken mapping file is named, with the key at fault.
    let mapping = dir.path().join("m.toml");
    std::fs::write(
        &mapping,
        "table = \"x\"\nformat = \"csv\"\n[fields]\nactor = \"User\"\n",
    )
    .unwrap();
    let out = auditlake(&[
        "convert",
        "--lake",
        lake_arg(&lake),
        "--mapping",
        mapping.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "auditlake: error: {}: invalid mapping: [fields] must name the created_at field\n",
            mapping.display()
        )
    );
}

#[test]
fn ndjson_exports_with_ids_and_epoch_times_map_too() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mapping = dir.path().join("app.toml");
    std::fs::write(
        &mapping,
        "table = \"appaudit\"\nformat = \"ndjson\"\naccount = \"acme\"\n[fields]\n\
         id = \"event_id\"\ncreated_at = { field = \"ts\", format = \"unix\" }\n\
         actor = \"user.email\"\naction = \"verb\"\nip_address = \"ip\"\n",
    )
    .unwrap();
    let input = dir.path().join("export.ndjson");
    // 1709632800 = 2024-03-05T10:00:00Z; e2 comes twice (the later line wins).
    std::fs::write(
        &input,
        "{\"event_id\":\"e1\",\"ts\":1709632800,\"user\":{\"email\":\"ann@acme.io\"},\"verb\":\"login\",\"ip\":\"10.0.0.1\"}\n\
         \n\
         {\"event_id\":\"e2\",\"ts\":\"1709632801.5\",\"user\":{\"email\":\"bob@acme.io\"},\"verb\":\"logout\"}\n\
         {\"event_id\":\"e2\",\"ts\":\"1709632801.5\",\"user\":{\"email\":\"bob@acme.io\"},\"verb\":\"logout\",\"note\":\"again\"}\n",
    )
    .unwrap();
    let out = auditlake(&[
        "convert",
        "--lake",
        lake_arg(&lake),
        "--mapping",
        mapping.to_str().unwrap(),
        input.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        csv(
            &lake,
            &["SELECT id, created_at, action, actor, ip_address, data FROM appaudit ORDER BY id"]
        ),
        "id,created_at,action,actor,ip_address,data\n\
e1,2024-03-05T10:00:00Z,login,ann@acme.io,10.0.0.1,\"{\"\"ts\"\":1709632800,\"\"user\"\":{\"\"email\"\":\"\"ann@acme.io\"\"}}\"\n\
e2,2024-03-05T10:00:01.500Z,logout,bob@acme.io,,\"{\"\"ts\"\":\"\"1709632801.5\"\",\"\"user\"\":{\"\"email\"\":\"\"bob@acme.io\"\"},\"\"note\"\":\"\"again\"\"}\"\n"
    );
    assert_eq!(
        data_files(&lake),
        ["appaudit/year=2024/month=3/acme.parquet"]
    );
}

/// An entry past `--max-entry-size` fails its archive with one line naming
/// the entry and the byte it starts at, before it is read whole; the other
/// archives of the run convert. The same holds for a CSV record.
#[test]
fn an_entry_past_the_size_limit_fails_only_its_archive() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let small = r#"{"id":"s1","created_at":"2024-03-01T00:00:00Z","action":"create"}"#;
    let big = format!(
        r#"{{"id":"b1","created_at":"2024-03-02T00:00:00Z","action":"update","data":{{"note":"{}"}}}}"#,
        "x".repeat(2 << 20)
    );
    let head = r#"{"entries":["#;
    let archive = dir.path().join("huge-entry.json");
    std::fs::write(&archive, format!("{head}{small},{big}]}}")).unwrap();
    let good = testdata("heroku/enterprise-audit-log-acme-202401.json.gz");
    let out = auditlake(&[
        "convert",
        "--quiet",
        "--max-entry-size",
        "1M",
        "--lake",
        lake_arg(&lake),
        archive.to_str().unwrap(),
        good.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let offset = head.len() + small.len() + 1;
    assert_eq!(
        stderr(&out),
        format!(
            "auditlake: error: {}: entry 1 (byte {offset}): the entry is larger than 1 MiB, the most this run converts (--max-entry-size, and at most 2/5 of --memory-limit): refused before it is read whole; raise them to convert it\n",
            archive.display()
        )
    );
    assert_eq!(csv(&lake, &["SELECT count(*) AS n FROM heroku"]), "n\n4\n");

    // Raised, the limit lets it through, whole.
    let out = convert_with(&lake, &["--quiet", "--max-entry-size", "4M"], &[]);
    assert_eq!(out.status.code(), Some(2), "no input is a usage error");
    let out = auditlake(&[
        "convert",
        "--quiet",
        "--max-entry-size",
        "4M",
        "--lake",
        lake_arg(&lake),
        archive.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        csv(
            &lake,
            &["SELECT length(data) AS n FROM heroku WHERE id = 'b1'"]
        ),
        format!("n\n{}\n", (2 << 20) + r#"{"note":""}"#.len())
    );

    // A CSV record likewise.
    let big_csv = dir.path().join("big.csv");
    std::fs::write(
        &big_csv,
        format!(
            "Timestamp,User,Action,Resource,Name,Role,Metadata\n2024-03-05 10:15:00,ann@acme.io,Login,Session,ann,owner,{}\n",
            "y".repeat(2 << 20)
        ),
    )
    .unwrap();
    let out = auditlake(&[
        "convert",
        "--quiet",
        "--max-entry-size",
        "1M",
        "--mapping",
        "mappings/dashboard.toml",
        "--lake",
        lake_arg(&lake),
        big_csv.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.contains("entry 0 (byte 50): the record is larger than 1048576 bytes"),
        "{err}"
    );
}

/// A key given twice in an entry keeps both values: the last in its column
/// (as JSON.parse and Python's json read it), the earlier one in `extra`;
/// a nested object with a field given twice is kept verbatim in `extra`.
#[test]
fn a_key_given_twice_keeps_both_values() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let archive = dir.path().join("dup.json");
    std::fs::write(
        &archive,
        r#"{"entries":[{"id":"d1","created_at":"2024-03-01T00:00:00Z","action":"first","action":"second","actor":{"email":"a@x","email":"b@x"}}]}"#,
    )
    .unwrap();
    convert_ok(&lake, &[&archive]);
    assert_eq!(
        csv(&lake, &["SELECT action, actor_email, extra FROM heroku"]),
        "action,actor_email,extra\nsecond,b@x,\"{\"\"action\"\":\"\"first\"\",\"\"actor\"\":{\"\"email\"\":\"\"a@x\"\",\"\"email\"\":\"\"b@x\"\"}}\"\n"
    );

    // A mapped export reads the same way: the last value fills the
    // columns; `data` keeps what the columns do not hold whole (both
    // `event_type`s, of which type and action hold parts, and the nested
    // object verbatim).
    let export = dir.path().join("heroic-audit-2024-03.json");
    std::fs::write(
        &export,
        r#"{"audit_logs":[{"timestamp":"2024-03-02T12:00:00Z","event_type":"Deployment Update","event_type":"Deployment Delete","metadata":{"actor_email":"ann@x","actor_email":"eve@x"}}]}"#,
    )
    .unwrap();
    let out = convert_with(
        &lake,
        &["--mapping", "mappings/heroic.toml"],
        &[export.to_str().unwrap()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        csv(&lake, &["SELECT type, action, actor, data FROM heroic"]),
        "type,action,actor,data\nDeployment,Delete,eve@x,\"{\"\"event_type\"\":\"\"Deployment Update\"\",\"\"event_type\"\":\"\"Deployment Delete\"\",\"\"metadata\"\":{\"\"actor_email\"\":\"\"ann@x\"\",\"\"actor_email\"\":\"\"eve@x\"\"}}\"\n"
    );
}

/// Every input the fuzzer (`examples/fuzz_sources.rs`) found a problem
/// with, read as the target that found it: refused with one line (or
/// converted), never a crash. The file name says the target.
#[test]
fn the_fuzz_corpus_is_refused_in_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = testdata("bad/fuzz");
    let mut files: Vec<_> = std::fs::read_dir(&corpus)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty());
    let good = testdata("mapped/dashboard/dashboard-audit-2024-03.csv");
    for (i, file) in files.iter().enumerate() {
        let name = file.file_name().unwrap().to_str().unwrap();
        let target = [
            "heroku-events",
            "heroku",
            "terraform",
            "detected",
            "dashboard",
            "heroic",
            "mapping",
        ]
        .into_iter()
        .find(|t| name.starts_with(&format!("{t}-")))
        .unwrap_or_else(|| panic!("{name}: no target named"));
        let lake = dir.path().join(format!("lake-{i}"));
        let mut args: Vec<String> = vec!["convert".into(), "--quiet".into(), "--lake".into()];
        args.push(lake.display().to_string());
        let mapping = |m: &str| vec!["--mapping".to_string(), format!("mappings/{m}.toml")];
        match target {
            "detected" => {}
            "heroku" | "heroku-events" | "terraform" => {
                args.extend(["--format".into(), target.into()])
            }
            "dashboard" | "heroic" => args.extend(mapping(target)),
            "mapping" => {
                args.extend(["--mapping".into(), file.display().to_string()]);
                args.push(good.display().to_string());
            }
            other => panic!("{name}: unknown target {other}"),
        }
        if target != "mapping" {
            args.push(file.display().to_string());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let out = auditlake(&args);
        let err = stderr(&out);
        assert!(
            matches!(out.status.code(), Some(0..=2)),
            "{name}: {:?} {err}",
            out.status
        );
        assert!(err.lines().count() <= 1, "{name}: {err}");
        if !out.status.success() {
            assert!(err.starts_with("auditlake: error: "), "{name}: {err}");
        }
        if target == "mapping" && err.contains("bad pattern") {
            // The regex crate's drawing of the fault is not repeated.
            assert!(!err.contains(" ^"), "{name}: {err}");
        }
    }
}
