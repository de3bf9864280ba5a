//! The machine's floor under `convert`: how long the archives of a folder
//! take to inflate alone, and to inflate and parse into Arrow batches with
//! the converter's own reader (no sort, no merge, no Parquet), each spread
//! over the same number of threads as convert's staging. `convert`'s time
//! divided by the parse floor says how much the rest of the pipeline costs.
//!
//! ```sh
//! cargo run --release --example convert_floor -- DIR [--threads 2] [--runs 3]
//! ```
//!
//! Prints one line per pass with the median of `--runs` and the bytes and
//! events read; the last line is machine-readable
//! (`floor inflate_s=… parse_s=… events=… json_bytes=…`).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use auditlake::source::{self, DEFAULT_MAX_ENTRY_SIZE};

#[path = "shared/archives.rs"]
mod archives;
use archives::{archives_in, median};

fn usage(msg: &str) -> ! {
    eprintln!("convert_floor: {msg}\nusage: convert_floor DIR [--threads N] [--runs N]");
    std::process::exit(2);
}

/// Runs `pass` on every archive, `threads` at a time; returns the seconds
/// it took and the sum of what `pass` counted.
fn timed(archives: &[PathBuf], threads: usize, pass: fn(&Path) -> (u64, u64)) -> (f64, u64, u64) {
    let queue = Mutex::new(archives.iter());
    let totals = Mutex::new((0u64, 0u64));
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..threads {
            scope.spawn(|| {
                loop {
                    let Some(path) = queue.lock().expect("queue").next() else {
                        return;
                    };
                    let (a, b) = pass(path);
                    let mut t = totals.lock().expect("totals");
                    t.0 += a;
                    t.1 += b;
                }
            });
        }
    });
    let (a, b) = *totals.lock().expect("totals");
    (started.elapsed().as_secs_f64(), a, b)
}

/// Inflates one archive into nothing: (JSON bytes, 0).
fn inflate(path: &Path) -> (u64, u64) {
    let mut opened = source::open_archive(path).expect("the archive opens");
    let mut buffer = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    loop {
        match opened.reader.read(&mut buffer) {
            Ok(0) => return (bytes, 0),
            Ok(n) => bytes += n as u64,
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

/// Inflates and parses one archive into Arrow batches: (0, events).
fn parse(path: &Path) -> (u64, u64) {
    let opened = source::open_archive(path).expect("the archive opens");
    let mut events = 0u64;
    source::read_archive(opened.reader, None, DEFAULT_MAX_ENTRY_SIZE, |_, parsed| {
        events += parsed.batch.num_rows() as u64;
        Ok(())
    })
    .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (0, events)
}

fn main() {
    let mut dir = None;
    let mut threads = 2usize;
    let mut runs = 3usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |flag: &str| -> usize {
            args.next()
                .and_then(|v| v.parse().ok())
                .filter(|n| *n > 0)
                .unwrap_or_else(|| usage(&format!("{flag} takes a positive number")))
        };
        match arg.as_str() {
            "--threads" => threads = number("--threads"),
            "--runs" => runs = number("--runs"),
            other if dir.is_none() && !other.starts_with('-') => dir = Some(PathBuf::from(other)),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let dir = dir.unwrap_or_else(|| usage("which folder?"));
    let archives = archives_in(&dir).unwrap_or_else(|e| usage(&e));

    let mut inflate_s = Vec::new();
    let mut parse_s = Vec::new();
    let (mut json_bytes, mut events) = (0, 0);
    for _ in 0..runs {
        let (s, bytes, _) = timed(&archives, threads, inflate);
        inflate_s.push(s);
        json_bytes = bytes;
        let (s, _, n) = timed(&archives, threads, parse);
        parse_s.push(s);
        events = n;
    }
    let (inflate_s, parse_s) = (median(inflate_s), median(parse_s));
    println!(
        "inflate only:      {inflate_s:.2} s ({:.0} MB/s of JSON), {} archives, {threads} threads",
        json_bytes as f64 / 1e6 / inflate_s,
        archives.len()
    );
    println!(
        "inflate and parse: {parse_s:.2} s ({:.0} k events/s, {:.0} MB/s of JSON)",
        events as f64 / 1e3 / parse_s,
        json_bytes as f64 / 1e6 / parse_s
    );
    println!(
        "floor inflate_s={inflate_s:.3} parse_s={parse_s:.3} events={events} json_bytes={json_bytes}"
    );
}
