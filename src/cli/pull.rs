//! `auditlake pull heroku|terraform`: credentials and base URLs from the
//! environment, as the platforms' own tools read them, then the pull and
//! its report.

use std::io::IsTerminal;

use anyhow::Context;

use super::progress::{ConvertProgress, failure_lines, total_line};
use super::{PullArgs, PullSource};
use crate::convert::{ConvertOptions, DEFAULT_MEMORY_LIMIT};
use crate::lake::Lake;
use crate::pull::heroku::{self, HerokuPull};
use crate::pull::heroku_events::{self, EventsPull};
use crate::pull::http::Api;
use crate::pull::{self, PullOptions, PullSummary, terraform};
use crate::source::DEFAULT_MAX_ENTRY_SIZE;

/// Runs the pull; returns its exit code (see [`PullSummary::exit_code`]).
pub async fn run(args: PullArgs) -> anyhow::Result<u8> {
    let lake = super::writing_lake(&args.lake, args.sign_key.as_deref())?;
    let raw = args.raw.as_deref().map(Lake::open).transpose()?;
    let options = PullOptions {
        raw,
        max_retries: args.max_retries,
        timeout: std::time::Duration::from_secs_f64(args.timeout),
        convert: ConvertOptions {
            inputs: Vec::new(),
            force: false,
            jobs: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_limit: args.memory_limit.max(DEFAULT_MEMORY_LIMIT / 8),
            temp_dir: args.temp_dir.clone(),
            format: None,
            forget_interrupted: false,
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
        },
    };
    let bars = !args.quiet && !args.json && std::io::stderr().is_terminal();
    let progress = ConvertProgress::new(bars, !args.quiet && !args.json);
    let summary = match &args.source {
        PullSource::Heroku { account, from, to } => {
            let api = heroku_api(&options)?;
            let what = HerokuPull {
                account: account.clone(),
                from: from.clone(),
                to: to.clone(),
            };
            heroku::pull(&lake, &api, &what, &options, progress.clone()).await
        }
        PullSource::HerokuEvents { account, from, to } => {
            let api = heroku_api(&options)?;
            let what = EventsPull {
                account: account.clone(),
                from: *from,
                to: *to,
            };
            heroku_events::pull(&lake, &api, &what, &options, progress.clone()).await
        }
        PullSource::Terraform => {
            let base = std::env::var("TFE_ADDRESS")
                .unwrap_or_else(|_| "https://app.terraform.io".to_string());
            let token = pull::token_from_env(&["TFE_TOKEN", "TF_TOKEN_app_terraform_io"])
                .context("no Terraform token: set TFE_TOKEN (an organization token) or TF_TOKEN_app_terraform_io")?;
            let api = Api::new(
                &base,
                format!("Bearer {token}"),
                "TFE_TOKEN (an organization token)",
                options.max_retries,
                options.timeout,
            )?;
            terraform::pull(&lake, &api, &options, progress.clone()).await
        }
    };
    progress.finish();
    let summary = summary?;
    report(&summary, &args);
    Ok(summary.exit_code())
}

/// The Heroku Platform API at `HEROKU_API_URL`, with the token of
/// `HEROKU_API_KEY` or the Heroku CLI's `~/.netrc` entry.
fn heroku_api(options: &PullOptions) -> anyhow::Result<Api> {
    let base =
        std::env::var("HEROKU_API_URL").unwrap_or_else(|_| "https://api.heroku.com".to_string());
    let token = pull::token_from_env(&["HEROKU_API_KEY"])
        .or_else(|| pull::token_from_netrc(&host_of(&base)))
        .context("no Heroku token: set HEROKU_API_KEY (or log in with the Heroku CLI, which keeps it in ~/.netrc)")?;
    Api::new(
        &base,
        format!("Bearer {token}"),
        "HEROKU_API_KEY (or ~/.netrc)",
        options.max_retries,
        options.timeout,
    )
}

fn report(summary: &PullSummary, args: &PullArgs) {
    for error in &summary.errors {
        eprintln!(
            "auditlake: error: {} {}: {error}",
            summary.source, summary.account
        );
    }
    if let Some(converted) = &summary.converted {
        failure_lines(converted);
    }
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(summary).expect("a summary serializes")
        );
    } else if !args.quiet {
        println!(
            "pulled {} {}: {} requests, {} bytes, {} new file(s), {} unchanged{}",
            summary.source,
            summary.account,
            summary.pages,
            summary.bytes,
            summary.fetched.len(),
            summary.unchanged,
            if summary.gaps.is_empty() {
                String::new()
            } else {
                format!(", {} retention gap(s)", summary.gaps.len())
            }
        );
        if let Some(converted) = &summary.converted {
            println!("{}", total_line(converted));
        }
    }
}

fn host_of(base: &str) -> String {
    reqwest::Url::parse(base)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_default()
}
