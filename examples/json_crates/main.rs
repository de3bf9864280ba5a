//! Weighs well-kept JSON crates against auditlake's own reader (the framer
//! of `source/json_frames.rs` and the scanner of `source/scan.rs`) on the
//! same Heroku monthly archives, from JSON already inflated into memory:
//!
//! - `auditlake`: the converter's reader, entry by entry into Arrow batches
//!   of the `heroku` table (every column, unknown members kept in `extra`,
//!   each entry's byte offset tracked for errors);
//! - `serde_json`, `sonic-rs` and `simd-json`: the whole document into typed
//!   entries that borrow their strings (`data` as raw JSON text where the
//!   crate can hand it out), then into Arrow builders of the same columns
//!   with the same timestamp parser and `data` compaction.
//!
//! The crates do less than the reader: they drop unknown members instead of
//! keeping them, hold the whole archive's entries at once instead of a batch
//! at a time, and report no entry offsets.
//!
//! ```sh
//! cargo run --release --features json-crates --example json_crates -- DIR [--runs 5]
//! ```
//!
//! One thread; prints the median seconds and MB/s of JSON per contender.

use std::borrow::Cow;
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::time::Instant;

use auditlake::source::entry::{compact_json, parse_timestamp};
use auditlake::source::{self, DEFAULT_MAX_ENTRY_SIZE, Format};
use datafusion::arrow::array::{StringBuilder, TimestampMillisecondBuilder};
use entry::{Archive, Entry};

mod entry;

#[path = "../shared/archives.rs"]
mod archives;
use archives::{archives_in, median};

fn usage(msg: &str) -> ! {
    eprintln!("json_crates: {msg}\nusage: json_crates DIR [--runs N]");
    std::process::exit(2);
}

/// The JSON text of `data`, as the crate hands it out.
trait RawText {
    fn text(&self) -> Cow<'_, str>;
}

impl RawText for &serde_json::value::RawValue {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.get())
    }
}

impl RawText for sonic_rs::LazyValue<'_> {
    fn text(&self) -> Cow<'_, str> {
        Cow::Borrowed(self.as_raw_str())
    }
}

/// simd-json parses in place and keeps no raw text: `data` is written out
/// again from its parsed value.
impl RawText for simd_json::BorrowedValue<'_> {
    fn text(&self) -> Cow<'_, str> {
        Cow::Owned(simd_json::to_string(self).expect("a parsed value writes"))
    }
}

/// Arrow builders of the `heroku` columns the typed entries fill.
struct Columns {
    created_at: TimestampMillisecondBuilder,
    text: Vec<StringBuilder>,
    rows: usize,
}

impl Columns {
    fn new() -> Self {
        Columns {
            created_at: TimestampMillisecondBuilder::new(),
            text: (0..15).map(|_| StringBuilder::new()).collect(),
            rows: 0,
        }
    }

    fn append<R: RawText>(&mut self, e: &Entry<'_, R>) {
        let time = parse_timestamp(&e.created_at, "created_at").expect("valid created_at");
        self.created_at.append_value(time.millis);
        macro_rules! pick {
            ($nested:ident . $member:ident) => {
                e.$nested.as_ref().and_then(|n| n.$member.as_deref())
            };
        }
        let raw = e.data.as_ref().map(|d| d.text());
        let data = raw.as_deref().map(compact_json);
        let values = [
            Some(&*e.id),
            e.kind.as_deref(),
            e.action.as_deref(),
            pick!(actor.id),
            pick!(actor.email),
            pick!(app.id),
            pick!(app.name),
            pick!(owner.id),
            pick!(owner.email),
            pick!(team.id),
            pick!(team.name),
            pick!(enterprise_account.id),
            pick!(enterprise_account.name),
            pick!(request.ip_address),
            data.as_deref(),
        ];
        for (builder, value) in self.text.iter_mut().zip(values) {
            builder.append_option(value);
        }
        self.rows += 1;
        if self.rows.is_multiple_of(8192) {
            self.finish();
        }
    }

    /// Ends a batch, as the reader does every 8,192 entries.
    fn finish(&mut self) {
        std::hint::black_box(self.created_at.finish());
        for builder in &mut self.text {
            std::hint::black_box(builder.finish());
        }
    }
}

fn fill<R: RawText>(archive: Archive<'_, R>) -> u64 {
    let mut columns = Columns::new();
    for entry in &archive.entries {
        columns.append(entry);
    }
    columns.finish();
    columns.rows as u64
}

fn ours(json: &[u8]) -> u64 {
    let mut rows = 0u64;
    source::read_archive(
        Cursor::new(json),
        Some(&Format::HerokuArchive),
        DEFAULT_MAX_ENTRY_SIZE,
        |_, parsed| {
            rows += parsed.batch.num_rows() as u64;
            Ok(())
        },
    )
    .expect("the archive reads");
    rows
}

fn with_serde_json(json: &[u8]) -> u64 {
    fill(
        serde_json::from_slice::<Archive<'_, &serde_json::value::RawValue>>(json)
            .expect("serde_json parses"),
    )
}

fn with_sonic_rs(json: &[u8]) -> u64 {
    fill(
        sonic_rs::from_slice::<Archive<'_, sonic_rs::LazyValue<'_>>>(json)
            .expect("sonic-rs parses"),
    )
}

/// The parse alone, into typed entries that are then dropped: what the
/// crate itself costs, without the Arrow builders.
fn sonic_rs_parse_only(json: &[u8]) -> u64 {
    sonic_rs::from_slice::<Archive<'_, sonic_rs::LazyValue<'_>>>(json)
        .expect("sonic-rs parses")
        .entries
        .len() as u64
}

fn serde_json_parse_only(json: &[u8]) -> u64 {
    serde_json::from_slice::<Archive<'_, &serde_json::value::RawValue>>(json)
        .expect("serde_json parses")
        .entries
        .len() as u64
}

fn with_simd_json(json: &[u8]) -> u64 {
    // It parses in place: the copy is part of what it costs.
    let mut copy = json.to_vec();
    fill(
        simd_json::serde::from_slice::<Archive<'_, simd_json::BorrowedValue<'_>>>(&mut copy)
            .expect("simd-json parses"),
    )
}

/// Parses one archive's JSON into Arrow batches; returns the rows.
type Parser = fn(&[u8]) -> u64;

fn main() {
    let mut dir = None;
    let mut runs = 5usize;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--runs" => {
                runs = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| usage("--runs takes a positive number"))
            }
            other if dir.is_none() && !other.starts_with('-') => dir = Some(PathBuf::from(other)),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let dir = dir.unwrap_or_else(|| usage("which folder?"));
    let paths = archives_in(&dir).unwrap_or_else(|e| usage(&e));
    let archives: Vec<Vec<u8>> = paths
        .iter()
        .map(|path| {
            let mut opened = source::open_archive(path).expect("the archive opens");
            let mut json = Vec::new();
            opened
                .reader
                .read_to_end(&mut json)
                .expect("the archive inflates");
            json
        })
        .collect();
    let bytes: usize = archives.iter().map(Vec::len).sum();

    let contenders: [(&str, Parser); 6] = [
        ("auditlake", ours),
        ("serde_json", with_serde_json),
        ("sonic-rs", with_sonic_rs),
        ("simd-json", with_simd_json),
        ("serde_json, parse only", serde_json_parse_only),
        ("sonic-rs, parse only", sonic_rs_parse_only),
    ];
    let mut times = vec![Vec::new(); contenders.len()];
    let mut rows = vec![0u64; contenders.len()];
    // Interleaved, so that drift over the run touches every contender alike.
    for _ in 0..runs {
        for (i, (_, parse)) in contenders.iter().enumerate() {
            let started = Instant::now();
            rows[i] = archives.iter().map(|json| parse(json)).sum();
            times[i].push(started.elapsed().as_secs_f64());
        }
    }
    println!(
        "{} archives, {:.0} MB of JSON, median of {runs}, one thread",
        archives.len(),
        bytes as f64 / 1e6
    );
    let base = median(times[0].clone());
    for (i, (name, _)) in contenders.iter().enumerate() {
        let s = median(times[i].clone());
        println!(
            "{name:<22} {s:>7.3} s  {:>6.0} MB/s  {:>5.2}x auditlake's time  {} rows",
            bytes as f64 / 1e6 / s,
            s / base,
            rows[i]
        );
    }
}
