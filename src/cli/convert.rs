//! `auditlake convert`: runs a conversion and reports it.

use std::io::IsTerminal;

use std::sync::Arc;

use crate::cli::progress::{ConvertProgress, failure_lines, total_line};
use crate::cli::{ConvertArgs, SourceFormat};
use crate::convert::{self, ConvertOptions};
use crate::source::Format;
use crate::source::mapping::Mapping;

/// Runs `convert`; returns whether every archive converted (or was unchanged).
pub async fn run(args: ConvertArgs) -> anyhow::Result<bool> {
    let lake = super::writing_lake(&args.lake.lake, args.sign_key.as_deref())?;
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
    failure_lines(&summary);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else if !args.quiet {
        println!("{}", total_line(&summary));
    }
    Ok(summary.failed == 0)
}
