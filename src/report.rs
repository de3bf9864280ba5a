//! How errors and warnings reach the user, the same way from every command
//! and from the shell: one line each on stderr, `auditlake: error: …` and
//! `warning: …`.

use crate::lake::Lake;

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
    fn errors_are_one_line_with_their_causes() {
        let e = anyhow::anyhow!("Corrupt footer\n  at byte 4").context("cannot read a.parquet");
        assert_eq!(
            error_line(&e),
            "auditlake: error: cannot read a.parquet: Corrupt footer at byte 4"
        );
    }
}
