//! Lakes and archives on a real S3-compatible server (moto, started by
//! scripts/test-services on 127.0.0.1). Skipped only when AWS_ENDPOINT_URL
//! is absent; scripts/test (and so CI) always sets it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::*;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

/// The test bucket, or None (with a note) when no server is configured.
pub(crate) fn bucket() -> Option<String> {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        eprintln!("skipped: AWS_ENDPOINT_URL is not set (scripts/test starts an S3 server)");
        return None;
    }
    Some(std::env::var("AUDITLAKE_TEST_S3_BUCKET").unwrap_or_else(|_| "auditlake-test".into()))
}

/// A prefix no other test uses.
pub(crate) fn unique(bucket: &str, name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("s3://{bucket}/{name}-{}-{nanos}", std::process::id())
}

pub(crate) fn store(bucket: &str) -> Arc<dyn ObjectStore> {
    auditlake::lake::s3_store(&url::Url::parse(&format!("s3://{bucket}")).unwrap()).unwrap()
}

/// Uploads every file of a testdata directory under `prefix` (a URL).
async fn upload(store: &Arc<dyn ObjectStore>, dir: &str, prefix: &str) {
    let key = prefix.splitn(4, '/').nth(3).unwrap();
    for entry in std::fs::read_dir(testdata(dir)).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let bytes = std::fs::read(&path).unwrap();
        store
            .put(
                &ObjectPath::from(format!("{key}/{name}")),
                PutPayload::from(bytes),
            )
            .await
            .unwrap();
    }
}

/// Keys under a URL prefix, relative to it, sorted.
pub(crate) async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    use futures::TryStreamExt;
    let key = prefix.splitn(4, '/').nth(3).unwrap();
    let root = ObjectPath::from(key);
    let mut found: Vec<String> = store
        .list(Some(&root))
        .map_ok(|m| m.location.as_ref()[key.len() + 1..].to_string())
        .try_collect()
        .await
        .unwrap();
    found.sort();
    found
}

fn run(args: &[&str]) -> std::process::Output {
    auditlake(args)
}

fn named_query_args() -> Vec<Vec<&'static str>> {
    vec![
        vec!["activity-by-ip", "ip=203.0.113.10"],
        vec![
            "actor-activity",
            "actor=ann@acme.io",
            "from=2024-01-01",
            "to=2024-03-31",
        ],
        vec!["addon-changes", "month=2024-03"],
        vec!["app-history", "app=billing-api"],
        vec!["collaborator-changes", "month=2024-01"],
        vec!["config-changes", "app=billing-api", "month=2024-03"],
        vec!["deploys", "app=billing-api", "month=2024-03"],
        vec!["destroyed-resources", "month=2024-03"],
        vec!["membership-changes", "month=2024-02"],
        vec!["top-actors", "month=2024-03"],
    ]
}

fn named_csv(lake: &str, query: &[&str]) -> String {
    let mut args = vec![
        "query", "--lake", lake, "--format", "csv", "--named", query[0],
    ];
    for p in &query[1..] {
        args.extend(["-p", p]);
    }
    let out = run(&args);
    assert!(out.status.success(), "{query:?}: {}", stderr(&out));
    stdout(&out)
}

#[tokio::test]
async fn an_s3_lake_from_s3_archives_answers_like_a_local_one() {
    let Some(bucket) = bucket() else { return };
    let store = store(&bucket);
    let archives = unique(&bucket, "archives");
    let reexport = unique(&bucket, "reexport");
    let lake = unique(&bucket, "lake");
    upload(&store, "heroku", &archives).await;
    upload(&store, "heroku-reexport", &reexport).await;

    // Convert from an S3 prefix (listed like a directory) into an S3 lake.
    let out = run(&["convert", "--lake", &lake, &format!("{archives}/")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("total: 3 archives (3 converted, 0 unchanged, 0 failed), 14 entries"),
        "{}",
        stdout(&out)
    );
    let data: Vec<String> = keys(&store, &lake)
        .await
        .into_iter()
        .filter(|k| !k.starts_with("_auditlake"))
        .collect();
    assert_eq!(
        data,
        [
            "heroku/year=2024/month=1/acme.parquet",
            "heroku/year=2024/month=2/acme.parquet",
            "heroku/year=2024/month=3/acme.parquet"
        ]
    );
    // Conversion records are written (after the data), one per archive.
    let records = keys(&store, &lake)
        .await
        .into_iter()
        .filter(|k| k.starts_with("_auditlake/archives/"))
        .count();
    assert_eq!(records, 3);

    // Idempotent: the same archives again change nothing.
    let march = ObjectPath::from(format!(
        "{}/heroku/year=2024/month=3/acme.parquet",
        lake.splitn(4, '/').nth(3).unwrap()
    ));
    let before = store.get(&march).await.unwrap().bytes().await.unwrap();
    let out = run(&["convert", "--lake", &lake, &archives]);
    assert!(
        stdout(&out).contains("(0 converted, 3 unchanged, 0 failed)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        store.get(&march).await.unwrap().bytes().await.unwrap(),
        before
    );

    // The re-exported March merges: 8 rows, 3 new.
    let out = run(&["convert", "--lake", &lake, &reexport]);
    assert!(
        stdout(&out).contains("8 entries  months 2024-03  8 rows written (3 new)"),
        "{}",
        stdout(&out)
    );

    // Status reads footers and records from S3.
    let out = run(&["status", "--lake", &lake]);
    let text = stdout(&out);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        text.contains("table heroku: 3 months, 3 files, 17 rows"),
        "{text}"
    );
    assert!(text.contains("4 archives recorded"), "{text}");

    // Every named query answers as on a local lake built from the same files.
    let dir = tempfile::tempdir().unwrap();
    let local = dir.path().join("lake");
    convert_ok(&local, &[&testdata("heroku")]);
    convert_ok(&local, &[&testdata("heroku-reexport")]);
    let local = local.to_str().unwrap();
    for query in named_query_args() {
        let expected = named_csv(local, &query);
        assert!(
            expected.lines().count() > 1,
            "{query:?} has no rows locally"
        );
        assert_eq!(named_csv(&lake, &query), expected, "{query:?}");
    }
}

#[tokio::test]
async fn s3_failures_are_one_line_and_bounded() {
    let Some(bucket) = bucket() else { return };
    let input = testdata("heroku/enterprise-audit-log-acme-202402.json");
    let input = input.to_str().unwrap();

    // A bucket that does not exist.
    let started = Instant::now();
    let missing = format!("s3://{bucket}-missing-bucket/lake");
    let out = run(&["convert", "--lake", &missing, input]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains(&format!("{bucket}-missing-bucket")), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // An endpoint nobody listens on: fails within the retry budget.
    let started = Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["status", "--lake", &format!("s3://{bucket}/lake")])
        .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with(&format!("auditlake: error: s3://{bucket}/lake: ")),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );
    // Credentials never appear in messages.
    let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_default();
    assert!(secret.is_empty() || !err.contains(&secret));

    // A bad archive leaves nothing in the S3 lake.
    let lake = unique(&bucket, "bad");
    let out = run(&[
        "convert",
        "--lake",
        &lake,
        testdata("bad/missing-id.json").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(keys(&store(&bucket), &lake).await.is_empty());
}

/// One synthetic February archive per seed, in its own directory (ids
/// differ between seeds; the month file is the same).
fn february(dir: &std::path::Path, seed: u64) -> std::path::PathBuf {
    let out = dir.join(format!("seed-{seed}"));
    auditlake::synthetic::generate(
        &auditlake::synthetic::Spec {
            months: vec![(2024, 2)],
            per_month: 20_000,
            seed,
            account: "acme".into(),
            payload: Default::default(),
        },
        &out,
    )
    .unwrap();
    out
}

fn spawn_convert(lake: &str, input: &std::path::Path, lease_seconds: &str) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["convert", "--quiet", "--lake", lake])
        .arg(input)
        .env_remove("RUST_LOG")
        .env("AUDITLAKE_LEASE_SECONDS", lease_seconds)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

/// `count(*)` and `count(DISTINCT id)` of a lake's heroku table.
fn counts(lake: &str) -> String {
    let out = run(&[
        "query",
        "--lake",
        lake,
        "--format",
        "csv",
        "SELECT count(*) AS n, count(DISTINCT id) AS ids FROM heroku",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out)
}

/// Two conversions into one S3 lake, each merging a different archive into
/// the same month: the second waits for the first's lease (and says so),
/// and the month holds both archives' rows.
#[tokio::test]
async fn two_writers_on_one_s3_lake_keep_every_row() {
    let Some(bucket) = bucket() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (february(dir.path(), 1), february(dir.path(), 2));
    for attempt in 0..3 {
        let lake = unique(&bucket, &format!("two-writers-{attempt}"));
        let first = spawn_convert(&lake, &a, "120");
        let second = spawn_convert(&lake, &b, "120");
        let (first, second) = (
            first.wait_with_output().unwrap(),
            second.wait_with_output().unwrap(),
        );
        assert!(first.status.success(), "{}", stderr(&first));
        assert!(second.status.success(), "{}", stderr(&second));
        assert_eq!(counts(&lake), "n,ids\n40000,40000\n");
        let waited = [&first, &second]
            .iter()
            .filter(|o| stderr(o).contains("waiting for the conversion that holds"))
            .count();
        assert_eq!(waited, 1, "{}\n{}", stderr(&first), stderr(&second));
        let left = keys(&store(&bucket), &lake).await;
        assert!(
            !left
                .iter()
                .any(|k| k.contains("lease") || k.contains("runs/")),
            "{left:?}"
        );
    }
}

/// A writer killed while it holds the lease stops renewing it: the next
/// writer waits for the lease to lapse, takes it over, and completes the
/// killed run's archive first.
#[tokio::test]
async fn a_killed_s3_writer_s_lease_lapses_and_its_run_is_completed() {
    let Some(bucket) = bucket() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (february(dir.path(), 3), february(dir.path(), 4));
    let lake = unique(&bucket, "killed-writer");
    let store = store(&bucket);
    let mut first = spawn_convert(&lake, &a, "3");
    let started = Instant::now();
    // Kill it once it has committed a month (its journal says so).
    loop {
        let journal = keys(&store, &lake)
            .await
            .into_iter()
            .find(|k| k.starts_with("_auditlake/runs/"));
        if let Some(journal) = journal {
            let key = format!("{}/{journal}", lake.splitn(4, '/').nth(3).unwrap());
            let text = match store.get(&ObjectPath::from(key)).await {
                Ok(r) => r.bytes().await.unwrap(),
                Err(_) => continue,
            };
            let value: serde_json::Value = serde_json::from_slice(&text).unwrap();
            if !value["committed"].as_array().unwrap().is_empty() {
                break;
            }
        }
        assert!(first.try_wait().unwrap().is_none(), "the run ended first");
        assert!(started.elapsed() < Duration::from_secs(120));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    first.kill().unwrap();
    first.wait().unwrap();
    let status = run(&["status", "--lake", &lake]);
    assert!(
        stderr(&status).contains("was interrupted"),
        "{}",
        stderr(&status)
    );

    let second = spawn_convert(&lake, &b, "3").wait_with_output().unwrap();
    let err = stderr(&second);
    assert!(second.status.success(), "{err}");
    assert!(err.contains("taking over the lapsed lease"), "{err}");
    assert!(err.contains("completing the interrupted run"), "{err}");
    assert_eq!(counts(&lake), "n,ids\n40000,40000\n");
    let status = run(&["status", "--lake", &lake]);
    assert_eq!(stderr(&status), "");
}

/// A lease held by a writer on another machine is waited out until it
/// lapses, then taken over.
#[tokio::test]
async fn another_machine_s_lease_is_waited_out() {
    let Some(bucket) = bucket() else { return };
    let lake = unique(&bucket, "foreign-lease");
    let store = store(&bucket);
    let expires = chrono::Utc::now() + chrono::Duration::seconds(3);
    let lease = serde_json::json!({
        "host": "elsewhere.example",
        "pid": 1,
        "since": "2026-01-01T00:00:00.000Z",
        "expires": expires.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    });
    let key = format!(
        "{}/_auditlake/lease.json",
        lake.splitn(4, '/').nth(3).unwrap()
    );
    store
        .put(
            &ObjectPath::from(key),
            PutPayload::from(serde_json::to_vec(&lease).unwrap()),
        )
        .await
        .unwrap();
    let started = Instant::now();
    let input = testdata("heroku");
    let out = run(&[
        "convert",
        "--quiet",
        "--lake",
        &lake,
        input.to_str().unwrap(),
    ]);
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(started.elapsed() >= Duration::from_secs(2), "{err}");
    assert!(
        err.contains("waiting for the conversion that holds")
            && err.contains("elsewhere.example pid 1"),
        "{err}"
    );
    assert!(err.contains("taking over the lapsed lease"), "{err}");
    assert_eq!(counts(&lake), "n,ids\n14,14\n");
}

/// The snapshot reads hold on S3 too: a read of a month object replaced
/// after it was listed is refused by `If-Match`, and the next query sees
/// the new object.
#[tokio::test]
async fn an_s3_session_reads_whole_objects_across_conversions() {
    let Some(bucket) = bucket() else { return };
    let lake = unique(&bucket, "snapshot");
    let out = run(&[
        "convert",
        "--quiet",
        "--lake",
        &lake,
        testdata("heroku").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    a_session_reads_whole_files_across_a_conversion(&lake).await;
}

/// `verify` reads an S3 lake's files and log as it reads a local one's.
#[tokio::test]
async fn an_s3_lake_verifies() {
    let Some(bucket) = bucket() else { return };
    let lake = unique(&bucket, "verify");
    let out = run(&[
        "convert",
        "--quiet",
        "--lake",
        &lake,
        testdata("heroku").to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = run(&["verify", "--lake", &lake]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).starts_with("verified: 3 files ("),
        "{}",
        stdout(&out)
    );
    let store = store(&bucket);
    let key = lake.splitn(4, '/').nth(3).unwrap();
    store
        .delete(&ObjectPath::from(format!(
            "{key}/heroku/year=2024/month=2/acme.parquet"
        )))
        .await
        .unwrap();
    let out = run(&["verify", "--lake", &lake]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with(
            "file missing: heroku/year=2024/month=2/acme.parquet: missing (written by entry "
        ),
        "{}",
        stdout(&out)
    );
}
