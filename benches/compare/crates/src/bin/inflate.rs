//! Inflates every `.json.gz` of a folder with the flate2 backend this build
//! was given (`--features miniz|zlib-rs|zlib-ng|zlib`), on one thread.
//!
//! `inflate DIR [RUNS]` prints the backend, the median seconds and MB/s of JSON.

fn main() {
    let dir = std::env::args().nth(1).expect("usage: inflate DIR [RUNS]");
    let runs = std::env::args()
        .nth(2)
        .map_or(5, |r| r.parse().expect("RUNS is a number"));
    let archives = compare_crates::archives(&dir);
    let mut bytes = 0;
    let seconds = compare_crates::median_seconds(runs, || {
        bytes = archives
            .iter()
            .map(|gz| compare_crates::inflate(gz).len())
            .sum();
    });
    println!(
        "{:<8} {seconds:.3} s  {:.0} MB/s of JSON ({:.0} MB)",
        env!("BACKEND"),
        bytes as f64 / 1e6 / seconds,
        bytes as f64 / 1e6
    );
}
