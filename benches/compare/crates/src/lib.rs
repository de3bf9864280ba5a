//! What the two measurements share: the archives of a folder, and medians.

use std::io::Read;
use std::path::PathBuf;

/// The `.json.gz` archives of `dir`, in name order, as gzip bytes.
pub fn archives(dir: &str) -> Vec<Vec<u8>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "gz"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no .json.gz archives in {dir}");
    paths
        .iter()
        .map(|p| std::fs::read(p).expect("the archive reads"))
        .collect()
}

/// Inflates one gzip archive.
pub fn inflate(gz: &[u8]) -> Vec<u8> {
    let mut json = Vec::new();
    flate2::read::MultiGzDecoder::new(gz)
        .read_to_end(&mut json)
        .expect("the archive inflates");
    json
}

/// The median of `runs` timings of `pass`, in seconds.
pub fn median_seconds(runs: usize, mut pass: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let started = std::time::Instant::now();
            pass();
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[runs / 2]
}
