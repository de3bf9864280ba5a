//! `auditlake upgrade`: rewrites a lake of an earlier format into this
//! build's format.

use crate::cli::{UpgradeArgs, open_existing_lake};
use crate::convert::upgrade::upgrade;

pub async fn run(args: UpgradeArgs) -> anyhow::Result<bool> {
    let lake = open_existing_lake(&args.lake).await?;
    let lake = match &args.sign_key {
        Some(path) => lake.signing_with(crate::lake::integrity::load_signing_key(path)?),
        None => lake,
    };
    let temp_root = args.temp_dir.unwrap_or_else(std::env::temp_dir);
    let summary = upgrade(&lake, args.memory_limit, &temp_root).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
        return Ok(true);
    }
    for file in &summary.files {
        println!(
            "upgraded  {} {} {}  {} rows",
            file.table, file.month, file.owner, file.rows
        );
    }
    if summary.was_current {
        println!(
            "the lake at {} is already in format {}: nothing to do",
            summary.lake,
            crate::lake::parquet::FORMAT_VERSION
        );
    } else {
        println!(
            "total: {} file{} upgraded from format {} to {} ({} already upgraded), {:.2}s",
            summary.files.len(),
            if summary.files.len() == 1 { "" } else { "s" },
            summary.from_format,
            crate::lake::parquet::FORMAT_VERSION,
            summary.already_current,
            summary.seconds
        );
    }
    Ok(true)
}
