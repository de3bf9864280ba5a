//! How errors and warnings reach the user, the same way from every command
//! and from the shell: one line each on stderr, `auditlake: error: …` and
//! `warning: …`.

use crate::lake::Lake;

/// A command asked for something that cannot be: a named query that does
/// not exist, a parameter missing, unknown or of the wrong form. Reported
/// like any error, with exit code 2, as clap's own usage errors are.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// The exit code of a command that failed with `e`: 2 for a [`UsageError`]
/// anywhere in its chain, else 1.
pub fn exit_code(e: &anyhow::Error) -> u8 {
    if e.chain().any(|cause| cause.is::<UsageError>()) {
        2
    } else {
        1
    }
}

/// Collapses a (possibly multi-line) error message into one line.
pub fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// The line an error is reported with: its whole chain of causes, on one line.
pub fn error_line(e: &anyhow::Error) -> String {
    format!("auditlake: error: {}", one_line(&format!("{e:#}")))
}

/// Tells stderr (one line each) about conversions that were interrupted or
/// are running: what a reader sees meanwhile is part old, part new.
pub async fn warn_if_mid_run(lake: &Lake) {
    match lake.run_warnings().await {
        Ok(lines) => lines.iter().for_each(|line| eprintln!("{line}")),
        Err(e) => eprintln!(
            "warning: cannot read the lake's run journals: {}",
            one_line(&format!("{e:#}"))
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_errors_exit_with_2_under_any_context() {
        let usage = anyhow::Error::new(UsageError("q: missing parameter n".into()));
        assert_eq!(exit_code(&usage.context("cannot run q")), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("cannot read a.parquet")), 1);
    }

    #[test]
    fn errors_are_one_line_with_their_causes() {
        let e = anyhow::anyhow!("Corrupt footer\n  at byte 4").context("cannot read a.parquet");
        assert_eq!(
            error_line(&e),
            "auditlake: error: cannot read a.parquet: Corrupt footer at byte 4"
        );
    }
}
