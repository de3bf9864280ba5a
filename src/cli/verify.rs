//! `auditlake verify`: the integrity check, one line per finding.

use crate::cli::{VerifyArgs, human_bytes, open_existing_lake};
use crate::lake::verify::verify;

pub async fn run(args: VerifyArgs) -> anyhow::Result<bool> {
    let lake = open_existing_lake(&args.lake).await?;
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
