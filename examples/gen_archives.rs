//! Generates realistic synthetic Heroku Enterprise monthly audit archives
//! (see `auditlake::synthetic`), for benchmarks and memory checks:
//!
//! ```sh
//! cargo run --release --example gen_archives -- --out DIR --months 2024-01:2024-12 --per-month 1000000 --seed 1
//! ```
//!
//! `--payload small|mixed|large` sets the size and mix of each event's
//! `data` (see `auditlake::synthetic::Payload`); `small` is the default.

use std::path::PathBuf;

use auditlake::synthetic::{Payload, Spec, generate};

fn usage(msg: &str) -> ! {
    eprintln!(
        "gen_archives: {msg}\nusage: gen_archives --out DIR [--months 2024-01:2024-12] [--per-month N] [--seed N] [--account NAME] [--payload small|mixed|large]"
    );
    std::process::exit(2);
}

fn parse_month(s: &str) -> (i32, u32) {
    let (y, m) = s
        .split_once('-')
        .unwrap_or_else(|| usage("months are YYYY-MM"));
    match (y.parse(), m.parse()) {
        (Ok(y), Ok(m)) if (1..=12).contains(&m) => (y, m),
        _ => usage("months are YYYY-MM"),
    }
}

fn main() -> std::io::Result<()> {
    let mut out = None;
    let mut months = "2024-01:2024-06".to_string();
    let mut spec = Spec {
        months: Vec::new(),
        per_month: 200_000,
        seed: 1,
        account: "acme".to_string(),
        payload: Payload::Small,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || {
            it.next()
                .unwrap_or_else(|| usage(&format!("{flag} needs a value")))
        };
        match flag.as_str() {
            "--out" => out = Some(PathBuf::from(value())),
            "--months" => months = value(),
            "--per-month" => {
                spec.per_month = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--per-month takes a number"))
            }
            "--seed" => {
                spec.seed = value()
                    .parse()
                    .unwrap_or_else(|_| usage("--seed takes a number"))
            }
            "--account" => spec.account = value(),
            "--payload" => spec.payload = value().parse().unwrap_or_else(|e: String| usage(&e)),
            other => usage(&format!("unknown argument {other}")),
        }
    }
    let (from, to) = months.split_once(':').unwrap_or((&months, &months));
    let (mut y, mut m) = parse_month(from);
    let end = parse_month(to);
    while (y, m) <= end {
        spec.months.push((y, m));
        (y, m) = if m == 12 { (y + 1, 1) } else { (y, m + 1) };
    }
    let out = out.unwrap_or_else(|| usage("--out DIR is required"));
    for file in generate(&spec, &out)? {
        eprintln!("wrote {} ({} entries)", file.display(), spec.per_month);
    }
    Ok(())
}
