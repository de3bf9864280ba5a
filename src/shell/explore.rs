//! `.tables` and `.schema`: what the lake holds, as text.

use std::fmt::Write as _;

use anyhow::Context;
use unicode_width::UnicodeWidthStr;

use super::progress::thousands;
use crate::engine::Engine;

/// `.tables`: each table and view with its rows and months, e.g.
/// `heroku  14 rows  3 months, 2024-01 … 2024-03`.
pub(super) async fn tables(engine: &Engine) -> anyhow::Result<String> {
    let summaries = engine.summaries().await?;
    let name_width = summaries.iter().map(|s| s.name.width()).max().unwrap_or(0);
    let rows: Vec<String> = summaries.iter().map(|s| thousands(s.rows)).collect();
    let rows_width = rows.iter().map(|r| r.len()).max().unwrap_or(0);
    let mut out = String::new();
    for (summary, rows) in summaries.iter().zip(rows) {
        let pad = name_width - summary.name.width();
        let _ = write!(
            out,
            "{}{:pad$}  {rows:>rows_width$} row{}",
            summary.name,
            "",
            if summary.rows == 1 { "" } else { "s" }
        );
        let month = |m: (i32, i32)| format!("{:04}-{:02}", m.0, m.1);
        match (summary.first, summary.last) {
            (Some(first), Some(last)) if first == last => {
                let _ = write!(out, "  1 month, {}", month(first));
            }
            (Some(first), Some(last)) => {
                let _ = write!(
                    out,
                    "  {} months, {} … {}",
                    summary.months,
                    month(first),
                    month(last)
                );
            }
            _ => {}
        }
        out.push('\n');
    }
    Ok(out)
}

/// `.schema [TABLE]`: each column's name, type and meaning.
pub(super) async fn schema(engine: &Engine, table: Option<&str>) -> anyhow::Result<String> {
    let names = match table {
        Some(t) => vec![t.to_string()],
        None => engine.relation_names(),
    };
    let mut out = String::new();
    for name in names {
        let columns = engine
            .describe(&name)
            .await
            .with_context(|| format!("no table {name:?}; .tables lists them"))?;
        let types: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "{}{}",
                    c.data_type,
                    if c.nullable { "" } else { " not null" }
                )
            })
            .collect();
        let name_width = columns.iter().map(|c| c.name.width()).max().unwrap_or(0);
        let type_width = types.iter().map(|t| t.width()).max().unwrap_or(0);
        let _ = writeln!(out, "{name}");
        for (column, ty) in columns.iter().zip(types) {
            let line = format!(
                "  {}{:name_pad$}  {ty}{:type_pad$}  {}",
                column.name,
                "",
                "",
                column.description,
                name_pad = name_width - column.name.width(),
                type_pad = type_width - ty.width(),
            );
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    Ok(out)
}
