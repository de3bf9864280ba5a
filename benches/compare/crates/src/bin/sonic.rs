//! sonic-rs parsing the archives of a folder into typed entries that borrow
//! their strings, as `examples/json_crates.rs` does ("sonic-rs, parse
//! only"), from JSON inflated beforehand, on one thread. sonic-rs picks its
//! SIMD code at compile time, so `crates.sh` builds this twice: for the
//! x86-64 baseline auditlake ships as, and with `-C target-cpu=native`.
//!
//! `sonic DIR [RUNS]` prints the build, the median seconds and MB/s of JSON.

use std::borrow::Cow;

use serde::Deserialize;

#[derive(Deserialize)]
#[allow(dead_code)]
struct Nested<'a> {
    #[serde(borrow, default)]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    name: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    email: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    ip_address: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[allow(dead_code)]
struct Entry<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    created_at: Cow<'a, str>,
    #[serde(borrow, rename = "type", default)]
    kind: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    action: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    actor: Option<Nested<'a>>,
    #[serde(borrow, default)]
    app: Option<Nested<'a>>,
    #[serde(borrow, default)]
    owner: Option<Nested<'a>>,
    #[serde(borrow, default)]
    team: Option<Nested<'a>>,
    #[serde(borrow, default)]
    enterprise_account: Option<Nested<'a>>,
    #[serde(borrow, default)]
    request: Option<Nested<'a>>,
    #[serde(borrow, default)]
    data: Option<sonic_rs::LazyValue<'a>>,
}

#[derive(Deserialize)]
struct Archive<'a> {
    #[serde(borrow)]
    entries: Vec<Entry<'a>>,
}

fn main() {
    let dir = std::env::args().nth(1).expect("usage: sonic DIR [RUNS]");
    let runs = std::env::args()
        .nth(2)
        .map_or(5, |r| r.parse().expect("RUNS is a number"));
    let json: Vec<Vec<u8>> = compare_crates::archives(&dir)
        .iter()
        .map(|gz| compare_crates::inflate(gz))
        .collect();
    let bytes: usize = json.iter().map(Vec::len).sum();
    let mut entries = 0;
    let seconds = compare_crates::median_seconds(runs, || {
        entries = json
            .iter()
            .map(|j| {
                sonic_rs::from_slice::<Archive<'_>>(j)
                    .expect("sonic-rs parses")
                    .entries
                    .len()
            })
            .sum();
    });
    println!(
        "sonic-rs ({}) {seconds:.3} s  {:.0} MB/s of JSON, {entries} entries",
        env!("BUILD"),
        bytes as f64 / 1e6 / seconds
    );
}
