//! `auditlake convert`: runs a conversion and reports it.

use std::io::IsTerminal;

use std::sync::Arc;

use crate::cli::progress::ConvertProgress;
use crate::cli::{ConvertArgs, SourceFormat};
use crate::convert::{self, ArchiveOutcome, ArchiveStatus, ConvertOptions, RunSummary};
use crate::lake::Lake;
use crate::source::Format;
use crate::source::mapping::Mapping;

/// Runs `convert`; returns whether every archive converted (or was unchanged).
pub async fn run(args: ConvertArgs) -> anyhow::Result<bool> {
    let lake = Lake::open(&args.lake.lake)?;
    let format = match (&args.mapping, args.format) {
        (Some(path), _) => Some(Format::Mapped(Arc::new(Mapping::load(path)?))),
        (None, Some(f)) => Some(match f {
            SourceFormat::Heroku => Format::HerokuArchive,
            SourceFormat::HerokuEvents => Format::HerokuEvents,
            SourceFormat::Terraform => Format::Terraform,
        }),
        (None, None) => None,
    };
    let options = ConvertOptions {
        format,
        inputs: args.paths,
        force: args.force,
        jobs: args
            .jobs
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        memory_limit: args.memory_limit,
        temp_dir: args.temp_dir,
        forget_interrupted: args.forget_interrupted,
        max_entry_size: args.max_entry_size,
    };
    let bars = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let progress = ConvertProgress::new(bars, !args.quiet && !args.json);
    let summary = convert::convert(&lake, &options, progress.clone()).await;
    progress.finish();
    let summary = summary?;

    // Failures always go to stderr, one line each, whatever the output mode.
    for outcome in &summary.archives {
        if let Some(error) = &outcome.error {
            eprintln!(
                "auditlake: error: {}: {}",
                outcome.path,
                crate::cli::one_line(error)
            );
        }
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        println!("{}", total_line(&summary));
    }
    Ok(summary.failed == 0)
}

/// The line printed for one archive on stdout (failures are printed to
/// stderr instead, so this returns None for them).
pub fn outcome_line(o: &ArchiveOutcome) -> Option<String> {
    let months = if o.months.is_empty() {
        "-".to_string()
    } else {
        o.months.join(",")
    };
    match o.status {
        ArchiveStatus::Converted => Some(format!(
            "converted  {}  {} entries  months {}  {} rows written ({} new)  {:.2}s",
            o.name, o.entries, months, o.rows_written, o.new_rows, o.seconds
        )),
        ArchiveStatus::Unchanged => Some(format!(
            "unchanged  {}  {} entries  months {}  already converted (use --force to convert again)",
            o.name, o.entries, months
        )),
        ArchiveStatus::Failed => None,
    }
}

fn total_line(s: &RunSummary) -> String {
    format!(
        "total: {} archive{} ({} converted, {} unchanged, {} failed), {} entries, {} rows written ({} new), {:.2}s",
        s.archives.len(),
        if s.archives.len() == 1 { "" } else { "s" },
        s.converted,
        s.unchanged,
        s.failed,
        s.entries,
        s.rows_written,
        s.new_rows,
        s.seconds
    )
}
