//! `auditlake verify` on the testdata lake, untouched and then tampered
//! with in each way the integrity log must catch.

use std::path::Path;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

use crate::common::*;

fn verify(lake: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify", "--lake", lake.to_str().unwrap()];
    args.extend(extra);
    auditlake(&args)
}

/// The finding lines (everything but the summary).
fn findings(out: &std::process::Output) -> Vec<String> {
    let text = stdout(out);
    let lines: Vec<&str> = text.lines().collect();
    lines[..lines.len() - 1]
        .iter()
        .map(|l| l.to_string())
        .collect()
}

/// Rewrites a Parquet file with what `change` makes of its rows, in
/// arrow-rs's default encoding (so its bytes change even when every row is
/// kept) and with the same schema.
fn rewrite_with(file: &Path, change: impl FnOnce(RecordBatch) -> RecordBatch) {
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(file).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let schema = batches[0].schema();
    let all = datafusion::arrow::compute::concat_batches(&schema, &batches).unwrap();
    let changed = change(all);
    assert_eq!(changed.schema(), schema, "a rewrite keeps the schema");
    let temp = file.with_extension("tmp");
    let mut writer = ArrowWriter::try_new(
        std::fs::File::create(&temp).unwrap(),
        Arc::clone(&schema),
        None,
    )
    .unwrap();
    writer.write(&changed).unwrap();
    writer.close().unwrap();
    std::fs::rename(temp, file).unwrap();
}

/// Rewrites a Parquet file with the first `keep` of its rows.
fn rewrite(file: &Path, keep: usize) {
    rewrite_with(file, |all| all.slice(0, keep));
}

/// `batch` with the first row's `column` set to `value` (a text column,
/// whatever its Arrow type in the file).
fn with_first_value(batch: RecordBatch, column: &str, value: &str) -> RecordBatch {
    use datafusion::arrow::array::{Array, AsArray, StringArray};
    use datafusion::arrow::compute::cast;
    use datafusion::arrow::datatypes::DataType;
    let index = batch.schema().index_of(column).unwrap();
    let original = batch.column(index);
    let text = cast(original, &DataType::Utf8).unwrap();
    let text = text.as_string::<i32>();
    assert_ne!(text.value(0), value, "the tampered value is a new one");
    let tampered: StringArray = (0..text.len())
        .map(|i| match i {
            0 => Some(value),
            _ => text.is_valid(i).then(|| text.value(i)),
        })
        .collect();
    let mut columns = batch.columns().to_vec();
    columns[index] = cast(&tampered, original.data_type()).unwrap();
    RecordBatch::try_new(batch.schema(), columns).unwrap()
}

/// The one finding line of a verify run that found exactly one thing.
fn only_finding(lake: &Path, extra: &[&str]) -> String {
    let out = verify(lake, extra);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let found = findings(&out);
    assert_eq!(found.len(), 1, "{found:#?}");
    found[0].clone()
}

#[test]
fn an_untouched_lake_verifies_and_says_its_head() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let out = verify(&lake, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with("verified: 3 files (") && text.contains(" and 3 log entries checked in "),
        "{text}"
    );
    assert!(text.contains("; everything holds; head "), "{text}");
    let json: serde_json::Value =
        serde_json::from_str(&stdout(&verify(&lake, &["--json"]))).unwrap();
    assert_eq!(json["files_checked"], 3);
    assert_eq!(json["findings"], serde_json::json!([]));
    let head = json["head"].as_str().unwrap().to_string();
    assert_eq!(head.len(), 64);
    assert!(verify(&lake, &["--expect-head", &head]).status.success());
    // Converting more moves the head: the old anchor no longer holds.
    convert_ok(&lake, &[&testdata("heroku-reexport")]);
    let out = verify(&lake, &["--expect-head", &head]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(findings(&out).len(), 1);
    assert!(findings(&out)[0].starts_with("head differs: the log's head is "));
    assert!(verify(&lake, &[]).status.success());
}

/// Re-encoding a file (same rows) and dropping a row are both caught, and
/// told apart; a removed file is missing, an added one unknown.
#[test]
fn changed_removed_and_added_files_are_found() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let month = |m: u32| lake.join(format!("heroku/year=2024/month={m}/acme.parquet"));
    rewrite(&month(1), 5);
    rewrite(&month(2), 3);
    std::fs::remove_file(month(3)).unwrap();
    std::fs::create_dir_all(lake.join("heroku/year=2024/month=5")).unwrap();
    std::fs::copy(month(2), month(5)).unwrap();
    let out = verify(&lake, &[]);
    assert_eq!(out.status.code(), Some(1));
    let found = findings(&out);
    assert_eq!(found.len(), 4, "{found:#?}");
    // Months merge in parallel: which entry wrote which month varies.
    let modified = |month: u32, what: &str| {
        let line = &found[month as usize - 1];
        let prefix = format!(
            "file modified: heroku/year=2024/month={month}/acme.parquet: modified since entry "
        );
        assert!(line.starts_with(&prefix), "{found:#?}");
        assert!(line.contains(what), "{found:#?}");
    };
    modified(1, ": its bytes differ (its rows do not) (5 rows, sha256 ");
    modified(2, ": its bytes and its rows differ (3 rows, sha256 ");
    assert!(found[1].contains("the log says 4 rows"), "{found:#?}");
    assert_eq!(
        found[2],
        "file unknown: heroku/year=2024/month=5/acme.parquet: present but unknown to the integrity log"
    );
    assert!(
        found[3].starts_with(
            "file missing: heroku/year=2024/month=3/acme.parquet: missing (written by entry "
        ),
        "{found:#?}"
    );
    assert!(
        stdout(&out)
            .lines()
            .last()
            .unwrap()
            .starts_with("FAILED: 2 files (")
    );
}

/// Files a reader of a table's directory would meet besides the month
/// files (DuckDB refuses the table over a Parquet file outside the
/// `year=/month=` layout) are found; hidden ones, like a conversion's
/// unfinished `.…inprogress`, are not.
#[test]
fn stray_files_in_a_table_directory_are_found() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let month = lake.join("heroku/year=2024/month=1");
    std::fs::copy(
        month.join("acme.parquet"),
        lake.join("heroku/extra.parquet"),
    )
    .unwrap();
    std::fs::write(month.join("notes.txt"), "x").unwrap();
    std::fs::write(month.join(".acme.parquet.1-1.inprogress"), "x").unwrap();
    std::fs::create_dir_all(lake.join("heroku/_scratch")).unwrap();
    std::fs::write(lake.join("heroku/_scratch/a.parquet"), "x").unwrap();
    let out = verify(&lake, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let reason =
        "not a month file of the lake's layout, and readers of the table's directory read it too";
    assert_eq!(
        findings(&out),
        [
            format!("file unknown: heroku/extra.parquet: {reason}"),
            format!("file unknown: heroku/year=2024/month=1/notes.txt: {reason}"),
        ]
    );
    std::fs::remove_file(lake.join("heroku/extra.parquet")).unwrap();
    std::fs::remove_file(month.join("notes.txt")).unwrap();
    assert_eq!(verify(&lake, &[]).status.code(), Some(0));
}

/// One value changed in place (same row count, same schema) and one row
/// added are each told as a file whose rows differ from the log's; so is a
/// month file taken from another lake. Putting the bytes back heals it.
#[test]
fn a_changed_value_an_added_row_and_a_foreign_file_are_found() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let month = |m: u32| format!("heroku/year=2024/month={m}/acme.parquet");
    let tamper = |m: u32, change: &dyn Fn(&Path), rows: &str, logged: &str| {
        let file = lake.join(month(m));
        let original = std::fs::read(&file).unwrap();
        change(&file);
        let line = only_finding(&lake, &[]);
        assert!(
            line.starts_with(&format!(
                "file modified: {}: modified since entry ",
                month(m)
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!(
                ": its bytes and its rows differ ({rows} rows, sha256 "
            )),
            "{line}"
        );
        assert!(
            line.contains(&format!("; the log says {logged} rows, sha256 ")),
            "{line}"
        );
        std::fs::write(&file, original).unwrap();
        assert!(verify(&lake, &[]).status.success());
    };
    // January: one actor's email changed; 5 rows before and after.
    tamper(
        1,
        &|file| {
            rewrite_with(file, |all| {
                with_first_value(all, "actor_email", "mallory@example.com")
            })
        },
        "5",
        "5",
    );
    // February: its first row once more.
    tamper(
        2,
        &|file| {
            rewrite_with(file, |all| {
                let schema = all.schema();
                datafusion::arrow::compute::concat_batches(&schema, &[all.clone(), all.slice(0, 1)])
                    .unwrap()
            })
        },
        "5",
        "4",
    );
    // March: the file another lake holds for the same month.
    let other = dir.path().join("other");
    convert_ok(&other, &[&testdata("heroku-reexport")]);
    tamper(
        3,
        &|file| {
            std::fs::copy(other.join(month(3)), file).unwrap();
        },
        "8",
        "5",
    );
}

/// Removing the newest entry leaves the file it wrote unknown to the log,
/// and moves the head off the anchored one.
#[test]
fn a_removed_last_entry_is_found() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let head = serde_json::from_str::<serde_json::Value>(&stdout(&verify(&lake, &["--json"])))
        .unwrap()["head"]
        .as_str()
        .unwrap()
        .to_string();
    let last = lake.join("_auditlake/log/000000000003.json");
    let entry: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&last).unwrap()).unwrap();
    let path = entry["files"][0]["path"].as_str().unwrap().to_string();
    std::fs::remove_file(&last).unwrap();
    assert_eq!(
        only_finding(&lake, &[]),
        format!("file unknown: {path}: present but unknown to the integrity log")
    );
    let found = findings(&verify(&lake, &["--expect-head", &head]));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("head differs: the log's head is "),
        "{found:#?}"
    );
}

/// An edited entry breaks the chain at the next one; a removed entry
/// breaks it where the numbers skip.
#[test]
fn edited_and_removed_log_entries_break_the_chain() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let log = lake.join("_auditlake/log");
    let second = log.join("000000000002.json");
    let text = std::fs::read_to_string(&second).unwrap();
    // Whichever month entry 2 wrote, its row count is changed.
    let entry: serde_json::Value = serde_json::from_str(&text).unwrap();
    let rows = entry["files"][0]["rows"].as_u64().unwrap();
    let path = entry["files"][0]["path"].as_str().unwrap().to_string();
    let edited = text.replace(
        &format!("\"rows\": {rows}"),
        &format!("\"rows\": {}", rows * 10),
    );
    assert_ne!(edited, text);
    std::fs::write(&second, edited).unwrap();
    let out = verify(&lake, &[]);
    assert_eq!(out.status.code(), Some(1));
    let found = findings(&out);
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(
        found[0].starts_with("chain broken at 3: it names "),
        "{found:#?}"
    );
    assert!(
        found[0].ends_with("(entry 2 was edited or removed)"),
        "{found:#?}"
    );
    assert_eq!(
        found[1],
        format!(
            "file modified: {path}: modified since entry 2: its row count differs from the log's ({rows} rows, sha256 {sha}; the log says {} rows, sha256 {sha})",
            rows * 10,
            sha = entry["files"][0]["sha256"].as_str().unwrap()
        )
    );

    std::fs::write(&second, text).unwrap();
    assert!(verify(&lake, &[]).status.success());
    std::fs::remove_file(&second).unwrap();
    let found = findings(&verify(&lake, &[]));
    assert!(
        found
            .iter()
            .any(|f| f.starts_with("chain broken at 2: found 000000000003.json holding entry 3")),
        "{found:#?}"
    );
}

/// Entries signed with a key from `keygen` verify against its public key;
/// a re-signed or unsigned entry, or another key, does not.
#[test]
fn signed_entries_verify_against_the_public_key() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("audit");
    let out = auditlake(&["keygen", "--out", keys.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let (secret, public) = (dir.path().join("audit.key"), dir.path().join("audit.pub"));
    assert_eq!(std::fs::read_to_string(&secret).unwrap().trim().len(), 64);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // keygen never overwrites.
    assert_eq!(
        auditlake(&["keygen", "--out", keys.to_str().unwrap()])
            .status
            .code(),
        Some(1)
    );
    let lake = dir.path().join("lake");
    let out = auditlake(&[
        "convert",
        "--quiet",
        "--sign-key",
        secret.to_str().unwrap(),
        "--lake",
        lake.to_str().unwrap(),
        testdata("heroku").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public_arg = ["--public-key", public.to_str().unwrap()];
    let out = verify(&lake, &public_arg);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));

    // A forged signature (its last hex digit changed) is invalid, and the
    // next entry's link to it no longer holds.
    let first = lake.join("_auditlake/log/000000000001.json");
    let signed = std::fs::read_to_string(&first).unwrap();
    let entry: serde_json::Value = serde_json::from_str(&signed).unwrap();
    let signature = entry["signature"].as_str().unwrap();
    let last = signature.chars().last().unwrap();
    let forged = format!(
        "{}{}",
        &signature[..signature.len() - 1],
        if last == '0' { '1' } else { '0' }
    );
    std::fs::write(&first, signed.replace(signature, &forged)).unwrap();
    let found = findings(&verify(&lake, &public_arg));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0],
        "signature invalid: entry 1 was not signed by the given key, or was changed after it was signed"
    );
    assert!(
        found[1].starts_with("chain broken at 2: ")
            && found[1].ends_with("(entry 1 was edited or removed)"),
        "{found:#?}"
    );
    std::fs::write(&first, &signed).unwrap();
    assert!(verify(&lake, &public_arg).status.success());

    // An unsigned entry (converted without the key) is found.
    convert_ok(&lake, &[&testdata("heroku-reexport")]);
    let found = findings(&verify(&lake, &public_arg));
    assert_eq!(found, ["signature missing: entry 4 is not signed"]);
    std::fs::remove_file(lake.join("_auditlake/log/000000000004.json")).unwrap();

    // Another key's public half rejects every entry.
    let other = dir.path().join("other");
    assert!(
        auditlake(&["keygen", "--out", other.to_str().unwrap()])
            .status
            .success()
    );
    let other_pub = dir.path().join("other.pub");
    let found = findings(&verify(
        &lake,
        &["--public-key", other_pub.to_str().unwrap()],
    ));
    assert!(
        found
            .iter()
            .filter(|f| f.starts_with("signature invalid: entry "))
            .count()
            >= 3,
        "{found:#?}"
    );

    // An edit of the signed entry (the head, so no chain hides it) is
    // caught; so is March, whose newest entry (4) was removed above.
    let head = lake.join("_auditlake/log/000000000003.json");
    let text = std::fs::read_to_string(&head).unwrap();
    std::fs::write(
        &head,
        text.replace("\"by\": \"convert\"", "\"by\": \"upgrade\""),
    )
    .unwrap();
    let found = findings(&verify(&lake, &public_arg));
    assert_eq!(found.len(), 2, "{found:#?}");
    assert_eq!(
        found[0],
        "signature invalid: entry 3 was not signed by the given key, or was changed after it was signed"
    );
    assert!(
        found[1].starts_with(
            "file modified: heroku/year=2024/month=3/acme.parquet: modified since entry "
        ) && found[1].contains(": its bytes and its rows differ (8 rows"),
        "{found:#?}"
    );
}

/// `verify --archives`: every entry of the testdata archives is in the
/// lake unchanged; an event converted again with another value is told as
/// superseded by the later archive; a row dropped from the lake is missing,
/// and a row no archive has is unexpected.
#[test]
fn archives_are_proved_entry_by_entry() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let heroku = testdata("heroku");
    let prove = |archives: &[&Path]| {
        let mut args = vec!["verify", "--lake", lake.to_str().unwrap(), "--archives"];
        args.extend(archives.iter().map(|p| p.to_str().unwrap()));
        auditlake(&args)
    };
    let out = prove(&[&heroku]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("enterprise-audit-log-acme-202402.json: 5 entries: 5 unchanged, 0 superseded, 0 missing, 0 altered\n"), "{text}");
    assert!(
        text.contains("verified: 3 archives proved against the lake in "),
        "{text}"
    );
    // January's archive alone leaves event 10 (January, from February's
    // archive) unexplained.
    let out = prove(&[&heroku.join("enterprise-audit-log-acme-202401.json.gz")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).starts_with(
        "unexpected: 0b6c1e3a-0000-4000-8000-000000000010 is in the lake but in none of the archives given\n"
    ), "{}", stdout(&out));

    // Event 22 again, as a later export has it: another action.
    let original = std::fs::read(heroku.join("enterprise-audit-log-acme-202403.json.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&original[..]), &mut text)
        .unwrap();
    let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut event = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"].as_str().unwrap().ends_with("22"))
        .unwrap()
        .clone();
    event["action"] = serde_json::json!("remove");
    let later = dir.path().join("later");
    std::fs::create_dir_all(&later).unwrap();
    let fix = later.join("enterprise-audit-log-acme-202403.json");
    std::fs::write(&fix, serde_json::json!({"entries": [event]}).to_string()).unwrap();
    convert_ok(&lake, &[&later]);
    let out = prove(&[&heroku, &later]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.starts_with(&format!(
            "superseded: {}: 0b6c1e3a-0000-4000-8000-000000000022 is held as {} has it\n",
            heroku
                .join("enterprise-audit-log-acme-202403.json.gz")
                .display(),
            fix.display()
        )),
        "{text}"
    );
    // Without the later archive, the lake's row is unexplained.
    let out = prove(&[&heroku]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("altered: "), "{}", stdout(&out));
    assert!(stdout(&out).contains(": 0b6c1e3a-0000-4000-8000-000000000022 differs in the lake, and no later archive given holds the lake's row\n"));

    // January without its first row (in file order: 01).
    let january = lake.join("heroku/year=2024/month=1/acme.parquet");
    let reader =
        datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
            std::fs::File::open(&january).unwrap(),
        )
        .unwrap()
        .build()
        .unwrap();
    let batches: Vec<RecordBatch> = reader.map(|b| b.unwrap()).collect();
    let all = datafusion::arrow::compute::concat_batches(&batches[0].schema(), &batches).unwrap();
    let mut writer =
        ArrowWriter::try_new(std::fs::File::create(&january).unwrap(), all.schema(), None).unwrap();
    writer.write(&all.slice(1, all.num_rows() - 1)).unwrap();
    writer.close().unwrap();
    let out = prove(&[&heroku, &later]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(&format!(
            "missing: {}: 0b6c1e3a-0000-4000-8000-000000000001 is not in the lake\n",
            heroku
                .join("enterprise-audit-log-acme-202401.json.gz")
                .display()
        )),
        "{}",
        stdout(&out)
    );
}

/// `query --evidence`: the answer, its SQL and parameters, the one file it
/// read (with the SHA-256 the log has for it), the log head and a verify
/// report, in a folder and a .tar.gz; a folder in use is refused.
#[tokio::test]
async fn query_evidence_holds_what_an_auditor_checks() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let evidence = dir.path().join("ticket-4711");
    let sql = "SELECT id, action FROM heroku WHERE month = 2 AND action = $action ORDER BY id";
    let out = auditlake(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--format",
        "csv",
        "--param",
        "action=create",
        "--evidence",
        evidence.to_str().unwrap(),
        sql,
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = "id,action\n0b6c1e3a-0000-4000-8000-000000000011,create\n0b6c1e3a-0000-4000-8000-000000000012,create\n";
    assert_eq!(stdout(&out), expected);
    assert_eq!(
        std::fs::read_to_string(evidence.join("result.csv")).unwrap(),
        expected
    );
    assert_eq!(
        std::fs::read_to_string(evidence.join("query.sql")).unwrap(),
        format!("{sql}\n")
    );
    let params: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evidence.join("params.json")).unwrap())
            .unwrap();
    assert_eq!(params, serde_json::json!({"action": "create"}));
    let rows = query_file(&evidence.join("result.parquet"), "SELECT count(*) FROM t").await;
    assert_eq!(rows, [["2"]]);
    let facts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(evidence.join("evidence.json")).unwrap())
            .unwrap();
    assert_eq!(facts["rows"], 2);
    assert_eq!(facts["verified"], true);
    let read = facts["files_read"].as_array().unwrap();
    assert_eq!(read.len(), 1);
    assert_eq!(read[0]["path"], "heroku/year=2024/month=2/acme.parquet");
    // The SHA-256 is the one the log recorded for that file.
    let log = std::fs::read_dir(lake.join("_auditlake/log"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .find(|t| t.contains("month=2/acme.parquet"))
        .unwrap();
    assert!(log.contains(read[0]["sha256"].as_str().unwrap()));
    let head: serde_json::Value = serde_json::from_str(&stdout(&auditlake(&[
        "status",
        "--json",
        "--lake",
        lake.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(facts["log_head"]["sha256"], head["log_head"]["sha256"]);
    // The .tar.gz holds the folder.
    let archive = dir.path().join("ticket-4711.tar.gz");
    let mut names: Vec<String> = tar::Archive::new(flate2::read::GzDecoder::new(
        std::fs::File::open(&archive).unwrap(),
    ))
    .entries()
    .unwrap()
    .map(|e| e.unwrap().path().unwrap().display().to_string())
    .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ticket-4711/evidence.json",
            "ticket-4711/params.json",
            "ticket-4711/query.sql",
            "ticket-4711/result.csv",
            "ticket-4711/result.parquet",
            "ticket-4711/verify.json",
        ]
    );
    let again = auditlake(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--evidence",
        evidence.to_str().unwrap(),
        "SELECT 1",
    ]);
    assert_eq!(again.status.code(), Some(1));
    assert!(stderr(&again).contains("is not empty: evidence goes into a new folder"));
    // The folder and the archive read as any file the user makes there.
    let ordinary = dir.path().join("ordinary");
    std::fs::create_dir(&ordinary).unwrap();
    std::fs::write(ordinary.join("f"), "x").unwrap();
    assert_eq!(mode(&evidence), mode(&ordinary));
    assert_eq!(mode(&archive), mode(&ordinary.join("f")));
}

/// Evidence of a query that fails is not written at all: no folder, no
/// archive, no hidden leftovers.
#[test]
fn a_failed_query_leaves_no_evidence() {
    let dir = testdata_lake();
    let lake = dir.path().join("lake");
    let cases = dir.path().join("cases");
    let evidence = cases.join("ticket-4712");
    let out = auditlake(&[
        "query",
        "--lake",
        lake.to_str().unwrap(),
        "--evidence",
        evidence.to_str().unwrap(),
        "SELECT 10 / (CAST(month AS INT) - 2) AS x FROM heroku",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("Divide by zero"), "{}", stderr(&out));
    assert_eq!(files_under(&cases), Vec::<String>::new());
    assert_eq!(std::fs::read_dir(&cases).unwrap().count(), 0);
}
