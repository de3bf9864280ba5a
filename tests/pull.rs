//! `auditlake pull` against a real HTTP/1.1 server on 127.0.0.1
//! (tests/pull/fake_api.py, Python's standard library) that serves the
//! Heroku archive endpoints and the Terraform audit trail as documented and
//! injects faults. Expected rows come from testdata/README.md.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use serde_json::{Value, json};

use crate::common::*;

const TOKEN: &str = "s3cr3t-t0ken-8472";

/// The fake API, running until dropped.
struct FakeApi {
    child: Child,
    port: u16,
    scenario: PathBuf,
    log: PathBuf,
}

impl FakeApi {
    fn start(dir: &Path, scenario: Value) -> FakeApi {
        let path = dir.join("scenario.json");
        let log = dir.join("requests.log");
        let mut api = FakeApi {
            child: Command::new(python())
                .arg(testdata("../tests/pull/fake_api.py"))
                .arg(&path)
                .stdout(Stdio::piped())
                .spawn()
                .expect("python3 runs the fake API"),
            port: 0,
            scenario: path,
            log,
        };
        api.set(scenario);
        let mut line = String::new();
        BufReader::new(api.child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        api.port = line.trim().strip_prefix("PORT ").unwrap().parse().unwrap();
        api
    }

    /// Replaces the scenario (read again on every request).
    fn set(&self, mut scenario: Value) {
        scenario["log"] = json!(self.log);
        let mut file = std::fs::File::create(&self.scenario).unwrap();
        file.write_all(scenario.to_string().as_bytes()).unwrap();
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn requests(&self) -> Vec<String> {
        std::fs::read_to_string(&self.log)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

impl Drop for FakeApi {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn python() -> String {
    std::env::var("AUDITLAKE_TEST_PYTHON").unwrap_or_else(|_| "python3".into())
}

fn pull(api: &FakeApi, lake: &Path, args: &[&str], token: &str) -> Output {
    let binary = Command::new(env!("CARGO_BIN_EXE_auditlake"));
    let (url, home) = (lake.to_str().unwrap(), lake.parent().unwrap());
    pull_command(binary, api, url, home, args, token)
        .output()
        .unwrap()
}

/// `command` (the binary, or a wrapper before it) given a pull's arguments
/// and environment, into the lake at `lake` (a directory or a URL).
fn pull_command(
    mut command: Command,
    api: &FakeApi,
    lake: &str,
    home: &Path,
    args: &[&str],
    token: &str,
) -> Command {
    command
        .arg("pull")
        .args(args)
        .args(["--lake", lake, "--max-retries", "3"])
        .env("HEROKU_API_URL", api.url())
        .env("TFE_ADDRESS", api.url())
        .env("HEROKU_API_KEY", token)
        .env("TFE_TOKEN", token)
        .env("HOME", home)
        .env_remove("RUST_LOG");
    command
}

/// Runs a pull under a Python parent whose only child it is, and returns
/// its output and its peak resident memory in bytes (`ru_maxrss`).
fn pull_peak_memory(api: &FakeApi, lake: &Path, args: &[&str]) -> (Output, u64) {
    const MEASURE: &str = "import resource, subprocess, sys\n\
        code = subprocess.run(sys.argv[1:]).returncode\n\
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss\n\
        sys.stderr.write('PEAK %d\\n' % peak)\n\
        sys.exit(code)\n";
    let mut wrapper = Command::new(python());
    wrapper
        .args(["-c", MEASURE])
        .arg(env!("CARGO_BIN_EXE_auditlake"));
    let (url, home) = (lake.to_str().unwrap(), lake.parent().unwrap());
    let out = pull_command(wrapper, api, url, home, args, TOKEN)
        .output()
        .unwrap();
    let text = stderr(&out);
    let peak_kib: u64 = text
        .lines()
        .find_map(|l| l.strip_prefix("PEAK "))
        .unwrap_or_else(|| panic!("no peak in {text}"))
        .parse()
        .unwrap();
    (out, peak_kib * 1024)
}

/// The three testdata months as the API serves them: gzip files.
fn heroku_months(dir: &Path) -> Vec<Value> {
    let gz = |name: &str| -> PathBuf {
        let path = testdata(&format!("heroku/{name}"));
        if name.ends_with(".gz") {
            return path;
        }
        let out = dir.join(format!("{name}.gz"));
        let mut encoder =
            flate2::write::GzEncoder::new(std::fs::File::create(&out).unwrap(), Default::default());
        encoder.write_all(&std::fs::read(&path).unwrap()).unwrap();
        encoder.finish().unwrap();
        out
    };
    vec![
        json!({"year": 2024, "month": 1, "file": gz("enterprise-audit-log-acme-202401.json.gz")}),
        json!({"year": 2024, "month": 2, "file": gz("enterprise-audit-log-acme-202402.json")}),
        json!({"year": 2024, "month": 3, "file": gz("enterprise-audit-log-acme-202403.json.gz")}),
    ]
}

fn rows(lake: &Path, table: &str) -> (String, String) {
    let out = query(
        lake,
        &[
            "--format",
            "csv",
            &format!("SELECT count(*) AS n, count(DISTINCT id) AS ids FROM {table}"),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    let line = text.lines().nth(1).unwrap().to_string();
    let (n, ids) = line.split_once(',').unwrap();
    (n.to_string(), ids.to_string())
}

fn checkpoint(lake: &Path, name: &str) -> Value {
    let text = std::fs::read_to_string(lake.join(format!("_auditlake/pull/{name}.json"))).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// No file of the lake, and nothing printed, holds the token.
fn assert_no_token(lake: &Path, outputs: &[&Output]) {
    for out in outputs {
        assert!(!stdout(out).contains(TOKEN) && !stderr(out).contains(TOKEN));
    }
    for file in files_under(lake) {
        let bytes = std::fs::read(lake.join(&file)).unwrap();
        assert!(
            !bytes.windows(TOKEN.len()).any(|w| w == TOKEN.as_bytes()),
            "{file} holds the token"
        );
    }
}

/// Three months through a rate limit, a server error, a dropped download
/// and an API that wants the audit-trail variant: all 14 events land, the
/// checkpoint holds the three checksums, the raw copies are kept, and the
/// token went to the API only. A second pull fetches nothing; a re-exported
/// March is fetched again and adds its 3 new events.
#[test]
fn heroku_archives_are_pulled_verified_and_converted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut scenario = json!({
        "token": TOKEN,
        "heroku": {"account": "acme", "archives": heroku_months(dir.path()), "require_variant": true},
        "faults": [
            {"id": "a", "path": "/enterprise-accounts/acme/archives", "kind": "429", "retry_after": 1},
            {"id": "b", "path": "/enterprise-accounts/acme/archives/2024/02", "kind": "500"},
            {"id": "c", "path": "/s3/", "kind": "reset"},
            {"id": "d", "path": "/s3/", "kind": "expired"},
        ],
    });
    let api = FakeApi::start(dir.path(), scenario.clone());
    let first = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--json"],
        TOKEN,
    );
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    let summary: Value = serde_json::from_str(&stdout(&first)).unwrap();
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 3);
    assert_eq!(summary["converted"]["entries"], 14);
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
    let months = checkpoint(&lake, "heroku-acme")["months"].clone();
    assert_eq!(
        months.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["2024-01", "2024-02", "2024-03"]
    );
    let raw: Vec<String> = files_under(&lake.join("_auditlake/raw/heroku/acme"));
    assert_eq!(raw.len(), 3, "{raw:?}");
    let requests = api.requests();
    assert!(
        requests
            .iter()
            .filter(|r| r.contains(" /s3/"))
            .all(|r| r.ends_with("auth=no"))
    );
    assert!(
        requests
            .iter()
            .filter(|r| !r.contains(" /s3/"))
            .all(|r| r.ends_with("auth=yes"))
    );
    assert!(
        requests.iter().filter(|r| r.contains(" /s3/")).count() >= 5,
        "{requests:#?}"
    );

    let second = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--json"],
        TOKEN,
    );
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let summary: Value = serde_json::from_str(&stdout(&second)).unwrap();
    assert_eq!(summary["unchanged"], 3);
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 0);

    scenario["heroku"]["archives"][2]["file"] = json!(testdata(
        "heroku-reexport/enterprise-audit-log-acme-202403.json.gz"
    ));
    api.set(scenario);
    let third = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--json"],
        TOKEN,
    );
    assert_eq!(third.status.code(), Some(0), "{}", stderr(&third));
    let summary: Value = serde_json::from_str(&stdout(&third)).unwrap();
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 1);
    assert_eq!(rows(&lake, "heroku"), ("17".into(), "17".into()));
    assert_no_token(&lake, &[&first, &second, &third]);
    // What the pulls committed, re-export merge included, verifies.
    assert_verifies(&lake);
    // And the raw copies prove every row of the lake, entry by entry.
    let raw = lake.join("_auditlake/raw/heroku");
    let proved = auditlake(&[
        "verify",
        "--lake",
        lake.to_str().unwrap(),
        "--archives",
        raw.to_str().unwrap(),
    ]);
    assert_eq!(
        proved.status.code(),
        Some(0),
        "{}{}",
        stdout(&proved),
        stderr(&proved)
    );
    assert!(
        stdout(&proved).contains("verified: 4 archives proved against the lake in "),
        "{}",
        stdout(&proved)
    );
}

/// A download that does not match its checksum is one error line, converts
/// nothing of that month, and is fetched again by the next pull.
#[test]
fn a_wrong_checksum_converts_nothing_and_is_pulled_again() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let scenario = json!({
        "token": TOKEN,
        "heroku": {"account": "acme", "archives": heroku_months(dir.path())},
        "faults": [{"id": "a", "path": "/enterprise-accounts/acme/archives/2024/01", "kind": "badsum"}],
    });
    let api = FakeApi::start(dir.path(), scenario);
    let out = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(lines.len(), 1, "{err}");
    assert!(
        lines[0].starts_with(
            "auditlake: error: heroku acme: 2024-01: the download does not match its checksum"
        ),
        "{err}"
    );
    // January's archive holds 01-04; event 10 (January) came with February.
    assert_eq!(rows(&lake, "heroku"), ("10".into(), "10".into()));
    let months = checkpoint(&lake, "heroku-acme")["months"].clone();
    assert!(months.get("2024-01").is_none());

    let again = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--json"],
        TOKEN,
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let summary: Value = serde_json::from_str(&stdout(&again)).unwrap();
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 1);
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
}

/// What the API says of a month bounds its download: bytes past its
/// `size` stop it, and a checksum that is not a SHA-256 is refused before
/// the download is asked for. Each is one line and keeps nothing of its
/// month; the other months convert.
#[test]
fn a_month_s_size_and_checksum_bound_its_download() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut months = heroku_months(dir.path());
    months[0]["size"] = json!(100);
    months[1]["checksum"] = json!("md5/0cc175b9");
    let scenario = json!({"token": TOKEN, "heroku": {"account": "acme", "archives": months}});
    let api = FakeApi::start(dir.path(), scenario);
    let out = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("error")).collect();
    assert_eq!(
        lines,
        [
            "auditlake: error: heroku acme: 2024-01: the download is longer than the 100 bytes the API gives as its size: nothing was converted; the next pull tries again",
            "auditlake: error: heroku acme: 2024-02: the month's checksum \"md5/0cc175b9\" is not a SHA-256 in hex",
        ],
        "{err}"
    );
    // March's 21-25 only.
    assert_eq!(rows(&lake, "heroku"), ("5".into(), "5".into()));
    let raw = files_under(&lake.join("_auditlake/raw/heroku/acme"));
    assert!(raw.len() == 1 && raw[0].starts_with("2024-03/"), "{raw:?}");
    let february = months[1]["file"].as_str().unwrap();
    assert!(!api.requests().iter().any(|r| r.contains(february)));
}

/// A refused token is one line naming the host and what to check, never
/// the token, with exit code 1 and nothing written.
#[test]
fn a_refused_token_is_one_line_without_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let api = FakeApi::start(
        dir.path(),
        json!({"token": "another", "heroku": {"account": "acme", "archives": heroku_months(dir.path())}}),
    );
    let out = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!(
            "auditlake: error: 127.0.0.1:{} refused the token (HTTP 401): check HEROKU_API_KEY (or ~/.netrc) and that it may read the audit trail\n",
            api.port
        )
    );
    assert!(data_files(&lake).is_empty());
    let none = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["pull", "terraform", "--lake", lake.to_str().unwrap()])
        .env_remove("TFE_TOKEN")
        .env_remove("TF_TOKEN_app_terraform_io")
        .output()
        .unwrap();
    assert_eq!(none.status.code(), Some(1));
    assert!(stderr(&none).contains("no Terraform token: set TFE_TOKEN"));
}

/// The testdata events t1…t5, moved to the last hours.
fn terraform_events(hours_ago: &[i64]) -> Vec<Value> {
    let mut events = Vec::new();
    let page: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("terraform/audit-trail-2020-06-30.json")).unwrap(),
    )
    .unwrap();
    events.extend(page["data"].as_array().unwrap().iter().cloned());
    for line in std::fs::read_to_string(testdata("terraform/audit-trail-since-2020-07-01.ndjson"))
        .unwrap()
        .lines()
    {
        let page: Value = serde_json::from_str(line).unwrap();
        for e in page["data"].as_array().unwrap() {
            if !events.iter().any(|x| x["id"] == e["id"]) {
                events.push(e.clone());
            }
        }
    }
    let now = chrono::Utc::now();
    events
        .into_iter()
        .zip(hours_ago)
        .map(|(mut e, h)| {
            let t = now - chrono::Duration::hours(*h);
            e["timestamp"] = json!(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
            e
        })
        .collect()
}

/// Pages of two through a dropped connection: the five events land once;
/// the next pull starts from the checkpoint (less its overlap) and adds
/// only the new event.
#[test]
fn terraform_pages_resume_from_the_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let events = terraform_events(&[50, 40, 30, 20, 10]);
    let mut scenario = json!({
        "token": TOKEN,
        "terraform": {"events": events, "page_size": 2},
        "faults": [{"id": "a", "path": "/api/v2/organization/audit-trail", "kind": "reset"}],
    });
    let api = FakeApi::start(dir.path(), scenario.clone());
    let first = pull(&api, &lake, &["terraform", "--json"], TOKEN);
    assert_eq!(first.status.code(), Some(0), "{}", stderr(&first));
    assert_eq!(rows(&lake, "terraform"), ("5".into(), "5".into()));
    let saved = checkpoint(&lake, &format!("terraform-127.0.0.1_{}", api.port));
    assert_eq!(saved["newest_id"], events[4]["id"]);
    assert_eq!(saved["newest_time"], events[4]["timestamp"]);

    let mut newer = events[4].clone();
    newer["id"] = json!("5b1f3a4e-0000-4000-8000-000000000006");
    newer["timestamp"] =
        json!(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    scenario["terraform"]["events"]
        .as_array_mut()
        .unwrap()
        .push(newer);
    scenario["faults"] = json!([]);
    api.set(scenario);
    let second = pull(&api, &lake, &["terraform", "--json"], TOKEN);
    assert_eq!(second.status.code(), Some(0), "{}", stderr(&second));
    let requests = api.requests();
    let last = requests.last().unwrap();
    assert!(last.contains("since="), "{last}");
    assert_eq!(rows(&lake, "terraform"), ("6".into(), "6".into()));
    assert_no_token(&lake, &[&first, &second]);
}

/// Terraform Cloud's 429 says in `X-RateLimit-Reset` how many seconds its
/// window has left, and no `Retry-After`: the pull waits that long (twice
/// 1.5 s here; its own backoff would wait about 0.5 s and then 1 s) and
/// gets every event. A server that names a next page after the last is
/// followed to its first empty page, no further.
#[test]
fn terraform_rate_limits_are_waited_out_as_the_api_says() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let scenario = json!({
        "token": TOKEN,
        "terraform": {"events": terraform_events(&[30, 20, 10]), "page_size": 2, "endless": true},
        "faults": [{"id": "a", "path": "/api/v2/organization/audit-trail", "kind": "429",
                    "reset": 1.5, "times": 2}],
        // And pages past the last still name a next one: the empty page ends it.
    });
    let api = FakeApi::start(dir.path(), scenario);
    let started = std::time::Instant::now();
    let out = pull(&api, &lake, &["terraform"], TOKEN);
    let took = started.elapsed();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(took >= std::time::Duration::from_secs(3), "{took:?}");
    // Two 429s, pages 1 and 2, and the empty page 3.
    assert_eq!(api.requests().len(), 5, "{:#?}", api.requests());
    assert_eq!(rows(&lake, "terraform"), ("3".into(), "3".into()));
}

/// An API answer larger than any page (40 MiB) is refused in one line
/// before it is read further or parsed, and not asked for again.
#[test]
fn an_api_answer_larger_than_any_page_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let scenario = json!({
        "token": TOKEN,
        "terraform": {"events": terraform_events(&[30])},
        "faults": [{"id": "a", "path": "/api/v2/organization/audit-trail", "kind": "huge"}],
    });
    let api = FakeApi::start(dir.path(), scenario);
    let out = pull(&api, &lake, &["terraform"], TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.ends_with("the response is larger than 32 MiB, more than any page of the API holds\n"),
        "{err}"
    );
    assert_eq!(api.requests().len(), 1);
}

/// A checkpoint older than the API's 14 days: what is left is pulled, and
/// the loss is told on stderr, in `gaps` and by exit code 3.
#[test]
fn a_checkpoint_past_the_retention_reports_the_gap() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let events = terraform_events(&[24 * 20, 24 * 16, 30, 20, 10]);
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "terraform": {"events": events}}),
    );
    let name = format!("terraform-127.0.0.1_{}", api.port);
    std::fs::create_dir_all(lake.join("_auditlake/pull")).unwrap();
    let old = (chrono::Utc::now() - chrono::Duration::days(21))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    std::fs::write(
        lake.join(format!("_auditlake/pull/{name}.json")),
        json!({"source": "terraform", "account": format!("127.0.0.1_{}", api.port), "newest_time": old}).to_string(),
    )
    .unwrap();
    let out = pull(&api, &lake, &["terraform", "--json"], TOKEN);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(&format!("warning: Terraform audit events from {old} to ")),
        "{}",
        stderr(&out)
    );
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["gaps"][0][0], json!(old));
    // The two events older than 14 days are gone from the API.
    assert_eq!(rows(&lake, "terraform"), ("3".into(), "3".into()));
    assert_eq!(checkpoint(&lake, &name)["gaps"][0][0], json!(old));
}

/// Two days of events, the first in two pages (206 + Next-Range, then
/// 200): the three distinct events (22, 31, 32) land once each, every page
/// is kept, and the checkpoint covers both days.
#[test]
fn heroku_events_follow_next_range_day_by_day() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let day = |name: &str| -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(testdata(&format!("heroku-events/{name}"))).unwrap(),
        )
        .unwrap()
    };
    let mut first = day("acme-events-2024-03-14.json");
    first.as_array_mut().unwrap().extend(
        day("acme-events-2024-03-15.json")
            .as_array()
            .unwrap()
            .iter()
            .cloned(),
    );
    // The 14th serves 22, 31, 32 in pages of two; the 15th 31 and 32 again.
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "heroku": {"account": "acme", "archives": [], "page_size": 2,
               "events": {"2024-03-14": [first[0], first[1], first[3]], "2024-03-15": day("acme-events-2024-03-15.json")}}}),
    );
    let out = pull(
        &api,
        &lake,
        &[
            "heroku-events",
            "--account",
            "acme",
            "--from",
            "2024-03-14",
            "--to",
            "2024-03-15",
            "--json",
        ],
        TOKEN,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["pages"], 3);
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 3);
    assert_eq!(rows(&lake, "heroku"), ("3".into(), "3".into()));
    let ranged: Vec<String> = api
        .requests()
        .into_iter()
        .filter(|r| r.contains("day=2024-03-14"))
        .collect();
    assert_eq!(ranged.len(), 2, "{ranged:?}");
    assert_eq!(
        checkpoint(&lake, "heroku-events-acme")["windows"],
        json!([["2024-03-14", "2024-03-15"]])
    );
    // A later pull of the 17th leaves the 16th uncovered.
    let out = pull(
        &api,
        &lake,
        &[
            "heroku-events",
            "--account",
            "acme",
            "--from",
            "2024-03-17",
            "--to",
            "2024-03-17",
        ],
        TOKEN,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let status = auditlake(&["status", "--lake", lake.to_str().unwrap()]);
    let line = stdout(&status)
        .lines()
        .find(|l| l.contains("heroku-events acme"))
        .unwrap()
        .to_string();
    assert!(
        line.starts_with("  heroku-events acme: 2024-03-14 to 2024-03-17; gaps: 2024-03-16 to 2024-03-16; last pull "),
        "{line}"
    );
    assert!(line.ends_with(" ok"), "{line}");
    let json: Value = serde_json::from_str(&stdout(&auditlake(&[
        "status",
        "--json",
        "--lake",
        lake.to_str().unwrap(),
    ])))
    .unwrap();
    assert_eq!(
        json["pulls"][0]["holes"],
        json!([["2024-03-16", "2024-03-16"]])
    );
}

/// A pull killed while it downloads January leaves no checkpoint of what
/// it had not committed, and of the download only a hidden temporary file;
/// the next pull removes that, fetches again, and the lake ends with each
/// of the 14 events once. Raw copies go where `--raw` says.
#[test]
fn a_killed_pull_is_completed_by_the_next() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let raw = dir.path().join("raw");
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "heroku": {"account": "acme", "archives": heroku_months(dir.path())},
               "faults": [{"id": "slow", "path": "/s3/", "kind": "trickle", "pieces": 2, "seconds": 30}]}),
    );
    let mut child = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["pull", "heroku", "--account", "acme", "--quiet", "--lake"])
        .arg(&lake)
        .arg("--raw")
        .arg(&raw)
        .env("HEROKU_API_URL", api.url())
        .env("HEROKU_API_KEY", TOKEN)
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let downloading = || -> Vec<String> {
        files_under(&raw.join("heroku/acme"))
            .into_iter()
            .filter(|f| f.ends_with(".inprogress"))
            .collect()
    };
    while downloading().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "the pull never downloaded"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!lake.join("_auditlake/pull/heroku-acme.json").exists());
    let left = files_under(&raw.join("heroku/acme"));
    assert!(
        left.len() == 1 && left[0].rsplit('/').next().unwrap().starts_with('.'),
        "{left:?}"
    );

    let out = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["pull", "heroku", "--account", "acme", "--json", "--lake"])
        .arg(&lake)
        .arg("--raw")
        .arg(&raw)
        .env("HEROKU_API_URL", api.url())
        .env("HEROKU_API_KEY", TOKEN)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
    assert_eq!(files_under(&raw.join("heroku/acme")).len(), 3);
    assert!(!lake.join("_auditlake/raw").exists());
    assert_eq!(
        checkpoint(&lake, "heroku-acme")["months"]
            .as_object()
            .unwrap()
            .len(),
        3
    );
}

/// A download cut in half (the server closes it cleanly, so only the
/// checksum can tell) converts nothing of February; the next pull fetches
/// it again.
#[test]
fn a_truncated_download_is_never_converted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    // February is the one month gzipped into the test's directory.
    let scenario = json!({
        "token": TOKEN,
        "heroku": {"account": "acme", "archives": heroku_months(dir.path())},
        "faults": [{"id": "a", "path": format!("/s3{}", dir.path().display()), "kind": "truncate"}],
    });
    let api = FakeApi::start(dir.path(), scenario);
    let out = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).starts_with(
            "auditlake: error: heroku acme: 2024-02: the download does not match its checksum"
        ),
        "{}",
        stderr(&out)
    );
    // January 01-04 and March 21-25; event 10 (January) comes with February.
    assert_eq!(rows(&lake, "heroku"), ("9".into(), "9".into()));
    // Nothing of February's half was kept, not even a temporary file.
    let raw = files_under(&lake.join("_auditlake/raw/heroku/acme"));
    let names: Vec<_> = raw.iter().map(|p| p.rsplit('/').next().unwrap()).collect();
    assert_eq!(
        names,
        [
            "enterprise-audit-log-acme-202401.json.gz",
            "enterprise-audit-log-acme-202403.json.gz"
        ],
        "{raw:?}"
    );
    let again = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
}

/// January's four events after `pad` bytes of blanks, gzip without
/// compression: an archive as large as wanted that still converts.
fn padded_january(dir: &Path, pad: usize) -> PathBuf {
    const PAD: &str = "import gzip, sys\n\
        text = gzip.open(sys.argv[1]).read()\n\
        start = text.index(b'[') + 1\n\
        body = text[:start] + b' ' * int(sys.argv[3]) + text[start:]\n\
        open(sys.argv[2], 'wb').write(gzip.compress(body, compresslevel=0))\n";
    let archive = dir.join("padded.json.gz");
    let made = Command::new(python())
        .args(["-c", PAD])
        .arg(testdata("heroku/enterprise-audit-log-acme-202401.json.gz"))
        .arg(&archive)
        .arg(pad.to_string())
        .status()
        .unwrap();
    assert!(made.success());
    assert!(std::fs::metadata(&archive).unwrap().len() > pad as u64);
    archive
}

/// A server that answers every page of a day with the same page and the
/// same `Next-Range` is asked twice, not forever: a range that does not
/// move ends the day.
#[test]
fn a_next_range_that_does_not_move_ends_the_day() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let day: Value = serde_json::from_str(
        &std::fs::read_to_string(testdata("heroku-events/acme-events-2024-03-15.json")).unwrap(),
    )
    .unwrap();
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "heroku": {"account": "acme", "archives": [], "page_size": 1,
               "stuck": true, "events": {"2024-03-15": day}}}),
    );
    let args = [
        "heroku-events",
        "--account",
        "acme",
        "--from",
        "2024-03-15",
        "--to",
        "2024-03-15",
    ];
    let out = pull(&api, &lake, &args, TOKEN);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(api.requests().len(), 2, "{:#?}", api.requests());
    assert_eq!(rows(&lake, "heroku"), ("1".into(), "1".into()));
}

/// A month's archive goes to its raw copy as it downloads, never whole in
/// memory: pulling a 128 MiB archive peaks under 96 MiB, where holding the
/// download alone would take 128. The copy is the archive, byte for byte,
/// and converts.
#[test]
fn a_large_archive_streams_to_its_raw_copy() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let archive = padded_january(dir.path(), 128 << 20);
    let scenario = json!({
        "token": TOKEN,
        "heroku": {"account": "acme", "archives": [{"year": 2024, "month": 1, "file": archive}]},
    });
    let api = FakeApi::start(dir.path(), scenario);
    let (out, peak) = pull_peak_memory(&api, &lake, &["heroku", "--account", "acme"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(peak < 96 << 20, "peak {} MiB", peak >> 20);
    let month = lake.join("_auditlake/raw/heroku/acme/2024-01");
    let raw = files_under(&month);
    assert_eq!(raw.len(), 1, "{raw:?}");
    assert!(std::fs::read(month.join(&raw[0])).unwrap() == std::fs::read(&archive).unwrap());
    assert_eq!(rows(&lake, "heroku"), ("4".into(), "4".into()));
}

/// On S3 a raw copy is a multipart upload, visible only once the download
/// is whole and checked: a 24 MiB archive cut in half leaves no object
/// (its parts are aborted), and the next pull keeps it whole.
#[tokio::test]
async fn a_cut_download_leaves_no_object_on_s3() {
    let Some(bucket) = crate::s3::bucket() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let lake = crate::s3::unique(&bucket, "pull");
    let archive = padded_january(dir.path(), 24 << 20);
    let scenario = json!({
        "token": TOKEN,
        "heroku": {"account": "acme", "archives": [{"year": 2024, "month": 1, "file": archive}]},
        "faults": [{"id": "a", "path": "/s3", "kind": "truncate"}],
    });
    let api = FakeApi::start(dir.path(), scenario);
    let binary = || Command::new(env!("CARGO_BIN_EXE_auditlake"));
    let args = ["heroku", "--account", "acme"];
    let pull_s3 = || {
        pull_command(binary(), &api, &lake, dir.path(), &args, TOKEN)
            .output()
            .unwrap()
    };
    let out = pull_s3();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("2024-01: the download does not match its checksum"),
        "{}",
        stderr(&out)
    );
    let store = crate::s3::store(&bucket);
    let raw = format!("{lake}/_auditlake/raw");
    assert_eq!(crate::s3::keys(&store, &raw).await, Vec::<String>::new());
    let again = pull_s3();
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let kept = crate::s3::keys(&store, &raw).await;
    assert_eq!(kept.len(), 1, "{kept:?}");
    let key = format!("{}/{}", raw.splitn(4, '/').nth(3).unwrap(), kept[0]);
    let bytes = store
        .get_opts(&object_store::path::Path::from(key), Default::default())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes == std::fs::read(&archive).unwrap());
}

/// `--timeout` bounds an API request whole and a download by its
/// silences: a download that trickles in over 2.1 s, 0.7 s at a time, is
/// kept under `--timeout 1`; a month's info that takes 3 s, and a download
/// that sends nothing for 3 s, are given up on after 1 s and asked again.
#[test]
fn timeouts_bound_api_requests_whole_and_downloads_by_silence() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let log = dir.path().join("requests.log");
    let months = heroku_months(dir.path());
    let file = |i: usize| format!("/s3{}", months[i]["file"].as_str().unwrap());
    let scenario = json!({
        "token": TOKEN,
        "log": log,
        "heroku": {"account": "acme", "archives": months},
        "faults": [
            {"id": "trickle", "path": file(0), "kind": "trickle", "pieces": 3, "seconds": 0.7},
            {"id": "info", "path": "/enterprise-accounts/acme/archives/2024/02", "kind": "slow", "seconds": 3},
            {"id": "silent", "path": file(2), "kind": "slow", "seconds": 3},
        ],
    });
    let api = FakeApi::start(dir.path(), scenario);
    let out = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--timeout", "1"],
        TOKEN,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
    let requests = std::fs::read_to_string(&log).unwrap();
    let count = |path: &str| requests.lines().filter(|l| l.contains(path)).count();
    assert_eq!(count(&file(0)), 1, "{requests}");
    assert_eq!(count("/archives/2024/02 "), 2, "{requests}");
    assert_eq!(count(&file(2)), 2, "{requests}");
    assert_eq!(count("/archives/2024/03 "), 2, "{requests}");

    let bad = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--timeout", "0"],
        TOKEN,
    );
    assert_eq!(bad.status.code(), Some(2), "{}", stderr(&bad));
}

/// An empty month converts to nothing in either shape the API serves,
/// `{"entries": []}` and `[]`, and still enters the checkpoint.
#[test]
fn empty_months_of_either_shape_are_pulled() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let mut months = heroku_months(dir.path());
    for (month, text) in [(4, "{\"entries\": []}"), (5, "[]")] {
        let path = dir
            .path()
            .join(format!("enterprise-audit-log-acme-20240{month}.json.gz"));
        let mut encoder = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            Default::default(),
        );
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
        months.push(json!({"year": 2024, "month": month, "file": path}));
    }
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "heroku": {"account": "acme", "archives": months}}),
    );
    let out = pull(
        &api,
        &lake,
        &["heroku", "--account", "acme", "--from", "2024-03", "--json"],
        TOKEN,
    );
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let summary: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(summary["fetched"].as_array().unwrap().len(), 3);
    assert_eq!(summary["converted"]["entries"], 5);
    assert_eq!(rows(&lake, "heroku"), ("5".into(), "5".into()));
    let pulled = checkpoint(&lake, "heroku-acme")["months"].clone();
    assert_eq!(
        pulled.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["2024-03", "2024-04", "2024-05"]
    );
}

/// Two pulls of one source on one lake: the second says who runs and
/// stops (exit 1) without fetching; the first finishes.
#[test]
fn a_second_pull_of_the_same_source_stops_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let api = FakeApi::start(
        dir.path(),
        json!({"token": TOKEN, "heroku": {"account": "acme", "archives": heroku_months(dir.path())},
               "faults": [{"id": "slow", "path": "/s3/", "kind": "slow", "seconds": 2}]}),
    );
    let mut first = Command::new(env!("CARGO_BIN_EXE_auditlake"))
        .args(["pull", "heroku", "--account", "acme", "--quiet", "--lake"])
        .arg(&lake)
        .env("HEROKU_API_URL", api.url())
        .env("HEROKU_API_KEY", TOKEN)
        .spawn()
        .unwrap();
    while !api.requests().iter().any(|r| r.contains(" /s3/")) {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let requests = api.requests().len();
    let second = pull(&api, &lake, &["heroku", "--account", "acme"], TOKEN);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr(&second).starts_with(
            "auditlake: error: another `auditlake pull heroku` of acme is running on this lake ("
        ),
        "{}",
        stderr(&second)
    );
    assert_eq!(api.requests().len(), requests, "the second pull fetched");
    assert!(first.wait().unwrap().success());
    assert_eq!(rows(&lake, "heroku"), ("14".into(), "14".into()));
}
