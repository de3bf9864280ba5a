//! sonic-rs parsing the archives of a folder into typed entries that borrow
//! their strings, as `examples/json_crates/main.rs` does ("sonic-rs, parse
//! only"), from JSON inflated beforehand, on one thread. sonic-rs picks its
//! SIMD code at compile time, so `crates.sh` builds this twice: for the
//! x86-64 baseline auditlake ships as, and with `-C target-cpu=native`.
//!
//! `sonic DIR [RUNS]` prints the build, the median seconds and MB/s of JSON.

#[allow(dead_code)]
#[path = "../../../../../examples/json_crates/entry.rs"]
mod entry;

/// What `examples/json_crates/main.rs` parses with sonic-rs.
type Archive<'a> = entry::Archive<'a, sonic_rs::LazyValue<'a>>;

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
