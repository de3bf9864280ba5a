//! `auditlake verify`: the integrity check, one line per finding.

use crate::cli::{VerifyArgs, human_bytes, open_existing_lake};
use crate::convert::prove::prove;
use crate::lake::Lake;
use crate::lake::verify::verify;
use crate::source::DEFAULT_MAX_ENTRY_SIZE;

pub async fn run(args: VerifyArgs) -> anyhow::Result<bool> {
    let lake = open_existing_lake(&args.lake).await?;
    if !args.archives.is_empty() {
        return prove_archives(&lake, &args).await;
    }
    let key = args
        .public_key
        .as_deref()
        .map(crate::lake::integrity::load_public_key)
        .transpose()?;
    let report = verify(&lake, args.expect_head.as_deref(), key.as_ref()).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.ok());
    }
    for finding in &report.findings {
        println!("{}", finding.message);
    }
    println!(
        "{}: {} file{} ({}) and {} log entr{} checked in {:.2} s; {}; head {}",
        if report.ok() { "verified" } else { "FAILED" },
        report.files_checked,
        if report.files_checked == 1 { "" } else { "s" },
        human_bytes(report.bytes_read),
        report.entries,
        if report.entries == 1 { "y" } else { "ies" },
        report.seconds,
        match report.findings.len() {
            0 => "everything holds".to_string(),
            1 => "1 finding".to_string(),
            n => format!("{n} findings"),
        },
        report.head.as_deref().unwrap_or("none (no log yet)")
    );
    Ok(report.ok())
}

/// `verify --archives`: one line per entry that is not in the lake as its
/// archive has it, one summary line per archive, then the verdict.
async fn prove_archives(lake: &Lake, args: &VerifyArgs) -> anyhow::Result<bool> {
    let report = prove(lake, &args.archives, None, DEFAULT_MAX_ENTRY_SIZE).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(report.ok());
    }
    for a in &report.archives {
        for id in &a.missing {
            println!("missing: {}: {id} is not in the lake", a.archive);
        }
        for id in &a.altered {
            println!(
                "altered: {}: {id} differs in the lake, and no later archive given holds the lake's row",
                a.archive
            );
        }
        for (id, by) in &a.superseded {
            println!("superseded: {}: {id} is held as {by} has it", a.archive);
        }
    }
    for id in &report.unexpected {
        println!("unexpected: {id} is in the lake but in none of the archives given");
    }
    for a in &report.archives {
        println!(
            "{}: {} entries: {} unchanged, {} superseded, {} missing, {} altered",
            a.archive,
            a.entries,
            a.unchanged,
            a.superseded.len(),
            a.missing.len(),
            a.altered.len()
        );
    }
    println!(
        "{}: {} archive{} proved against the lake in {:.2} s",
        if report.ok() { "verified" } else { "FAILED" },
        report.archives.len(),
        if report.archives.len() == 1 { "" } else { "s" },
        report.seconds
    );
    Ok(report.ok())
}
