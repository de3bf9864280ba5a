//! A mutation fuzzer for the archive parsers and the mapping reader.
//!
//! Takes the bundled testdata as seeds, mutates them (bit flips, byte
//! inserts and deletes, structural characters, truncations, repeated and
//! spliced runs), and reads each mutant as every source format would: the
//! detected format, each forced built-in format, both mapped exports, and
//! the mapping files themselves. A mutant fails the run if reading it
//! panics or ends in an error that is not one line. Failing inputs are
//! written to `--out` (default `testdata/bad/fuzz/`), which CI reads back
//! (`tests/sources.rs`); CI runs that corpus, not the fuzzer.
//!
//! cargo run --release --example fuzz_sources -- --seconds 600 [--seed N] [--out DIR]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditlake::source::mapping::Mapping;
use auditlake::source::{self, Format};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Bytes a mutant may grow to: enough for structure, small enough to be fast.
const MAX_LEN: usize = 64 * 1024;

/// One way of reading an input.
#[derive(Clone)]
enum Target {
    /// `read_archive` with this format forced (None: detected).
    Archive(Option<Format>),
    /// `Mapping::parse` of the input as a mapping file.
    MappingFile,
}

fn usage(msg: &str) -> ! {
    eprintln!("fuzz_sources: {msg}\nusage: fuzz_sources [--seconds N] [--seed N] [--out DIR]");
    std::process::exit(2)
}

fn main() {
    let mut seconds = 60u64;
    let mut seed = 1u64;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut out = root.join("testdata/bad/fuzz");
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = || args.next().unwrap_or_else(|| usage("a value is missing"));
        match arg.as_str() {
            "--seconds" => seconds = value().parse().unwrap_or_else(|_| usage("--seconds N")),
            "--seed" => seed = value().parse().unwrap_or_else(|_| usage("--seed N")),
            "--out" => out = PathBuf::from(value()),
            other => usage(&format!("unknown argument {other}")),
        }
    }

    let mapping = |name: &str| {
        Format::Mapped(Arc::new(
            Mapping::load(&root.join(format!("mappings/{name}.toml"))).expect("bundled mapping"),
        ))
    };
    // (name, target, seeds): each target reads mutants of the inputs meant
    // for it. The name prefixes a failing input's file, and tells the
    // corpus test how to read it (see tests/sources.rs).
    let archives = seeds(
        root,
        &[
            "heroku",
            "heroku-events",
            "heroku-reexport",
            "terraform",
            "bad",
        ],
    );
    let targets: Vec<(&str, Target, Vec<Vec<u8>>)> = vec![
        ("detected", Target::Archive(None), archives),
        (
            "heroku",
            Target::Archive(Some(Format::HerokuArchive)),
            seeds(root, &["heroku", "heroku-reexport"]),
        ),
        (
            "heroku-events",
            Target::Archive(Some(Format::HerokuEvents)),
            seeds(root, &["heroku-events"]),
        ),
        (
            "terraform",
            Target::Archive(Some(Format::Terraform)),
            seeds(root, &["terraform"]),
        ),
        (
            "dashboard",
            Target::Archive(Some(mapping("dashboard"))),
            seeds(root, &["mapped/dashboard"]),
        ),
        (
            "heroic",
            Target::Archive(Some(mapping("heroic"))),
            seeds(root, &["mapped/heroic"]),
        ),
        (
            "mapping",
            Target::MappingFile,
            seeds(root, &["../mappings"]),
        ),
    ];
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let file = scratch.path().join("input");
    let mut rng = StdRng::seed_from_u64(seed);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let (mut runs, mut found) = (0u64, 0u64);
    let mut per_target = vec![0u64; targets.len()];
    // A panic is reported by the check below, not printed by the hook.
    std::panic::set_hook(Box::new(|_| {}));
    while Instant::now() < deadline {
        let t = rng.random_range(0..targets.len());
        let (name, target, inputs) = &targets[t];
        if inputs.is_empty() {
            continue;
        }
        let mut input = inputs[rng.random_range(0..inputs.len())].clone();
        for _ in 0..rng.random_range(1..=8) {
            mutate(&mut input, inputs, &mut rng);
        }
        if matches!(target, Target::MappingFile) {
            // A mapping file is text: saved as it was read.
            input = String::from_utf8_lossy(&input).into_owned().into_bytes();
        } else if rng.random_bool(0.1) {
            input = gzip(&input);
        }
        runs += 1;
        per_target[t] += 1;
        if let Some(problem) = check(target, &input, &file) {
            found += 1;
            std::fs::create_dir_all(&out).expect("create the output directory");
            let name = format!("{name}-{seed}-{runs}.bin");
            std::fs::write(out.join(&name), &input).expect("write the failing input");
            eprintln!("FOUND {name}: {problem}");
        }
    }
    let rate = runs as f64 / seconds.max(1) as f64;
    eprintln!(
        "fuzz_sources: {runs} inputs in {seconds} s ({rate:.0}/s), seed {seed}, {found} problems"
    );
    for ((name, _, _), n) in targets.iter().zip(per_target) {
        eprintln!("  {name:<16} {n}");
    }
    std::process::exit(if found == 0 { 0 } else { 1 });
}

/// Reads `input` as `target`; returns what went wrong, if anything did.
fn check(target: &Target, input: &[u8], file: &Path) -> Option<String> {
    let result = std::panic::catch_unwind(|| -> Result<(), String> {
        match target {
            Target::MappingFile => {
                let text = String::from_utf8_lossy(input);
                Mapping::parse(&text, Path::new("fuzz.toml"))
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            }
            Target::Archive(format) => {
                std::fs::write(file, input).expect("write the input");
                let opened = source::open_archive(file).map_err(|e| e.to_string())?;
                source::read_archive(opened.reader, format.as_ref(), 1 << 20, |_, _| Ok(()))
                    .map(|_| ())
                    .map_err(|e| format!("{e:#}"))
            }
        }
    });
    match result {
        Err(panic) => Some(format!(
            "panicked: {}",
            panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default()
        )),
        Ok(Err(message)) if message.contains('\n') => {
            Some(format!("a multi-line error: {message:?}"))
        }
        Ok(Err(message)) if message.trim().is_empty() => Some("an empty error".into()),
        Ok(_) => None,
    }
}

/// Every file of the testdata directories named, decompressed.
fn seeds(root: &Path, dirs: &[&str]) -> Vec<Vec<u8>> {
    let mut found = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(root.join("testdata").join(dir)) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_file() {
                continue;
            }
            let Ok(bytes) = std::fs::read(&path) else {
                continue;
            };
            let mut plain = Vec::new();
            let bytes = if bytes.starts_with(&[0x1f, 0x8b])
                && flate2::read::MultiGzDecoder::new(&bytes[..])
                    .take(MAX_LEN as u64)
                    .read_to_end(&mut plain)
                    .is_ok()
            {
                plain
            } else {
                bytes
            };
            found.push(bytes.into_iter().take(MAX_LEN).collect());
        }
    }
    found
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("gzip in memory");
    encoder.finish().expect("gzip in memory")
}

/// Bytes that change JSON's (and CSV's, TOML's) structure.
const STRUCTURAL: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b"\"",
    b",",
    b":",
    b"\\",
    b"\\u",
    b"\\ud800",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"NaN",
    b"\n",
    b"\r\n",
    b"\0",
    b"\xff",
    b"\xef\xbb\xbf",
    b"=",
    b"#",
    b"'",
    b"\"\"\"",
    b"[[",
    b"]]",
    b"\"id\":",
    b"\"created_at\":",
    b"\"entries\":",
    b"\"data\":",
    b"23:59:60Z",
    b"9999-12-31T23:59:59Z",
    b"0000-01-01T00:00:00Z",
];

fn mutate(input: &mut Vec<u8>, others: &[Vec<u8>], rng: &mut StdRng) {
    let len = input.len();
    let at = if len == 0 {
        0
    } else {
        rng.random_range(0..=len)
    };
    match rng.random_range(0..9) {
        0 if at < len => input[at] ^= 1 << rng.random_range(0..8),
        1 if at < len => {
            input.remove(at);
        }
        2 => input.insert(at, rng.random()),
        3 => {
            let token = STRUCTURAL[rng.random_range(0..STRUCTURAL.len())];
            input.splice(at..at, token.iter().copied());
        }
        4 => input.truncate(at),
        5 if at < len => {
            // Repeat a run: deep nesting, long strings, many members.
            let end = (at + rng.random_range(1..64)).min(len);
            let run = input[at..end].to_vec();
            for _ in 0..rng.random_range(1..200) {
                input.splice(at..at, run.iter().copied());
            }
        }
        6 if !others.is_empty() => {
            // Splice in a run of another seed.
            let other = &others[rng.random_range(0..others.len())];
            if !other.is_empty() {
                let from = rng.random_range(0..other.len());
                let to = (from + rng.random_range(1..256)).min(other.len());
                input.splice(at..at, other[from..to].iter().copied());
            }
        }
        7 if at < len => {
            let end = (at + rng.random_range(1..32)).min(len);
            input.drain(at..end);
        }
        _ => {
            // Replace a digit with another (times, numbers, offsets).
            if let Some(i) = input[at.min(len)..].iter().position(u8::is_ascii_digit) {
                input[at + i] = b'0' + rng.random_range(0..10);
            }
        }
    }
    input.truncate(MAX_LEN);
}
