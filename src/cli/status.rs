//! `auditlake status`: what the lake holds.

use crate::cli::{StatusArgs, human_bytes, open_existing_lake};

pub async fn run(args: StatusArgs) -> anyhow::Result<bool> {
    let lake = open_existing_lake(&args.lake).await?;
    let status = lake.status().await?;
    let pulls = crate::pull::checkpoint::Checkpoint::all(&lake).await?;
    let head = crate::lake::integrity::head(&lake).await?;
    crate::report::warn_if_mid_run(&lake).await;
    if args.json {
        let mut json = serde_json::to_value(&status)?;
        let coverage: Vec<serde_json::Value> = pulls
            .iter()
            .map(|c| {
                let mut v = serde_json::to_value(c).expect("a checkpoint serializes");
                v["holes"] = serde_json::to_value(c.holes()).expect("strings serialize");
                v
            })
            .collect();
        json["pulls"] = serde_json::Value::Array(coverage);
        json["log_head"] = serde_json::json!(
            head.as_ref()
                .map(|(seq, hash)| { serde_json::json!({"seq": seq, "sha256": hash}) })
        );
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(true);
    }
    println!("lake {} (format {})", status.lake, status.format_version);
    if status.needs_upgrade {
        println!(
            "written before lake format 1: run `auditlake upgrade --lake {}` before converting into it or querying it",
            status.lake
        );
    }
    if status.tables.is_empty() {
        println!("no tables yet: convert archives with `auditlake convert <PATH>...`");
    }
    for table in &status.tables {
        println!(
            "\ntable {}: {} month{}, {} file{}, {} rows, {}",
            table.name,
            table.months.len(),
            plural(table.months.len()),
            table.files,
            plural(table.files),
            table.rows,
            human_bytes(table.bytes)
        );
        println!("  {:<8} {:>10} {:>11}  owners", "month", "rows", "bytes");
        for m in &table.months {
            println!(
                "  {:<8} {:>10} {:>11}  {}",
                m.month,
                m.rows,
                human_bytes(m.bytes),
                m.owners.join(", ")
            );
        }
    }
    println!(
        "\n{} archive{} recorded",
        status.archives.len(),
        plural(status.archives.len())
    );
    for a in &status.archives {
        println!(
            "  {}  {}  {} entries  months {}  sha256 {}",
            a.converted_at,
            a.name,
            a.entries,
            a.months.join(","),
            &a.sha256[..12.min(a.sha256.len())]
        );
    }
    match &head {
        Some((seq, hash)) => println!(
            "\nintegrity log: {seq} entr{}, head sha256 {hash} (anchor it outside the lake; `auditlake verify` checks)",
            if *seq == 1 { "y" } else { "ies" }
        ),
        None => {
            println!("\nintegrity log: empty (files written before this version are not in it)")
        }
    }
    if !pulls.is_empty() {
        println!("\npulled sources");
        for checkpoint in &pulls {
            println!("  {}", checkpoint.summary_line());
        }
    }
    Ok(true)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
