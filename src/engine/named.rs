//! Named, parameterised queries: `queries/*.sql` (embedded in the binary)
//! and a user's own directory.
//!
//! A query file starts with a header of `--` comments:
//!
//! ```sql
//! -- name: config-changes
//! -- description: Who changed config on an app in a month
//! -- param: app text  App name
//! -- param: month month  UTC calendar month, YYYY-MM
//! SELECT … WHERE app_name = $app AND created_at >= $month_start AND created_at < $month_end
//! ```
//!
//! Values are parsed by their declared type and bound to DataFusion
//! placeholders — never spliced into the SQL text. Types and the
//! placeholders they provide:
//!
//! | type | accepts | placeholders |
//! |---|---|---|
//! | `text` | anything | `$name` |
//! | `int` | an integer | `$name` |
//! | `date` | `YYYY-MM-DD` (UTC) | `$name` (midnight), `$name_end` (next midnight) |
//! | `timestamp` | RFC 3339, `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (UTC) | `$name` |
//! | `month` | `YYYY-MM` (UTC) | `$name` (text), `$name_start`, `$name_end` (first instant of the next month) |
//!
//! A month or date becomes a half-open time range on the event time, which
//! the engine turns into partition pruning: only that month's files are read.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, bail};
use chrono::{DateTime, Months, NaiveDate, NaiveDateTime, TimeZone, Utc};
use datafusion::common::{ParamValues, ScalarValue};

use crate::report::UsageError;

/// The queries shipped with auditlake.
const BUILTIN: &[(&str, &str)] = &[
    (
        "config-changes.sql",
        include_str!("../../queries/config-changes.sql"),
    ),
    (
        "actor-activity.sql",
        include_str!("../../queries/actor-activity.sql"),
    ),
    (
        "app-history.sql",
        include_str!("../../queries/app-history.sql"),
    ),
    ("deploys.sql", include_str!("../../queries/deploys.sql")),
    (
        "collaborator-changes.sql",
        include_str!("../../queries/collaborator-changes.sql"),
    ),
    (
        "addon-changes.sql",
        include_str!("../../queries/addon-changes.sql"),
    ),
    (
        "destroyed-resources.sql",
        include_str!("../../queries/destroyed-resources.sql"),
    ),
    (
        "membership-changes.sql",
        include_str!("../../queries/membership-changes.sql"),
    ),
    (
        "activity-by-ip.sql",
        include_str!("../../queries/activity-by-ip.sql"),
    ),
    (
        "top-actors.sql",
        include_str!("../../queries/top-actors.sql"),
    ),
];

/// Declared type of a parameter.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParamType {
    Text,
    Int,
    Date,
    Timestamp,
    Month,
}

impl ParamType {
    fn parse(word: &str) -> Option<Self> {
        Some(match word {
            "text" => ParamType::Text,
            "int" => ParamType::Int,
            "date" => ParamType::Date,
            "timestamp" => ParamType::Timestamp,
            "month" => ParamType::Month,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            ParamType::Text => "text",
            ParamType::Int => "int",
            ParamType::Date => "date",
            ParamType::Timestamp => "timestamp",
            ParamType::Month => "month",
        }
    }
}

#[derive(Clone, Debug)]
pub struct Param {
    pub name: String,
    pub ty: ParamType,
    pub description: String,
}

#[derive(Clone, Debug)]
pub struct NamedQuery {
    pub name: String,
    pub description: String,
    pub params: Vec<Param>,
    pub sql: String,
    /// Where it came from (file name), for messages.
    pub origin: String,
}

/// The built-in queries, then those of `dir` (which override by name).
pub fn load(dir: Option<&Path>) -> anyhow::Result<Vec<NamedQuery>> {
    let mut queries = Vec::new();
    for (file, text) in BUILTIN {
        queries.push(parse(text, file).expect("built-in queries are valid"));
    }
    if let Some(dir) = dir {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read the queries directory {}", dir.display()))?;
        let mut paths: Vec<_> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "sql"))
            .collect();
        paths.sort();
        for path in paths {
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let query = parse(&text, &path.display().to_string())?;
            queries.retain(|q| q.name != query.name);
            queries.push(query);
        }
    }
    queries.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(queries)
}

/// Parses a query file's header and body.
pub fn parse(text: &str, origin: &str) -> anyhow::Result<NamedQuery> {
    let mut name = None;
    let mut description = String::new();
    let mut params = Vec::new();
    let mut body = Vec::new();
    let mut in_header = true;
    for line in text.lines() {
        let trimmed = line.trim();
        if in_header && let Some(comment) = trimmed.strip_prefix("--") {
            let comment = comment.trim();
            if let Some(v) = comment.strip_prefix("name:") {
                name = Some(v.trim().to_string());
            } else if let Some(v) = comment.strip_prefix("description:") {
                description = v.trim().to_string();
            } else if let Some(v) = comment.strip_prefix("param:") {
                let mut words = v.split_whitespace();
                let (Some(pname), Some(ty)) = (words.next(), words.next()) else {
                    bail!(
                        "{origin}: a param line needs a name and a type: `-- param: NAME TYPE description`"
                    );
                };
                let ty = ParamType::parse(ty).with_context(|| {
                    format!("{origin}: parameter {pname}: unknown type {ty:?} (text, int, date, timestamp, month)")
                })?;
                params.push(Param {
                    name: pname.to_string(),
                    ty,
                    description: words.collect::<Vec<_>>().join(" "),
                });
            }
            continue;
        }
        if in_header && trimmed.is_empty() {
            continue;
        }
        in_header = false;
        body.push(line);
    }
    let name = name.with_context(|| format!("{origin}: missing `-- name:` header"))?;
    let sql = body
        .join("\n")
        .trim()
        .trim_end_matches(';')
        .trim()
        .to_string();
    if sql.is_empty() {
        bail!("{origin}: the query has no SQL after its header");
    }
    Ok(NamedQuery {
        name,
        description,
        params,
        sql,
        origin: origin.to_string(),
    })
}

impl NamedQuery {
    /// Parses `key=value` arguments by the declared types into placeholder
    /// values. Every declared parameter is required; unknown ones are refused.
    pub fn bind(&self, args: &[(String, String)]) -> anyhow::Result<ParamValues> {
        let mut values: HashMap<String, ScalarValue> = HashMap::new();
        for (key, _) in args {
            if !self.params.iter().any(|p| &p.name == key) {
                return Err(usage(format!(
                    "{}: unknown parameter {key:?} (parameters: {})",
                    self.name,
                    self.param_list()
                )));
            }
        }
        for param in &self.params {
            let Some((_, raw)) = args.iter().rev().find(|(k, _)| *k == param.name) else {
                return Err(usage(format!(
                    "{}: missing parameter {} ({}: {}); usage: {}",
                    self.name,
                    param.name,
                    param.ty.name(),
                    param.description,
                    self.usage()
                )));
            };
            let bad = |what: &str| {
                usage(format!(
                    "{}: parameter {}={raw:?} is not {what}",
                    self.name, param.name
                ))
            };
            let name = &param.name;
            match param.ty {
                ParamType::Text => {
                    values.insert(name.clone(), ScalarValue::Utf8(Some(raw.clone())));
                }
                ParamType::Int => {
                    let v: i64 = raw.trim().parse().map_err(|_| bad("an integer"))?;
                    values.insert(name.clone(), ScalarValue::Int64(Some(v)));
                }
                ParamType::Date => {
                    let d = NaiveDate::parse_from_str(raw.trim(), "%Y-%m-%d")
                        .map_err(|_| bad("a date (YYYY-MM-DD)"))?;
                    let start = midnight(d);
                    let end = start + chrono::Duration::days(1);
                    values.insert(name.clone(), ts(start));
                    values.insert(format!("{name}_end"), ts(end));
                }
                ParamType::Timestamp => {
                    let t = parse_timestamp(raw.trim()).ok_or_else(|| {
                        bad("a timestamp (RFC 3339, or YYYY-MM-DD[ HH:MM:SS] in UTC)")
                    })?;
                    values.insert(name.clone(), ts(t));
                }
                ParamType::Month => {
                    let d = NaiveDate::parse_from_str(&format!("{}-01", raw.trim()), "%Y-%m-%d")
                        .ok()
                        .filter(|_| raw.trim().len() == 7)
                        .ok_or_else(|| bad("a month (YYYY-MM)"))?;
                    let start = midnight(d);
                    let end = start + Months::new(1);
                    values.insert(
                        name.clone(),
                        ScalarValue::Utf8(Some(raw.trim().to_string())),
                    );
                    values.insert(format!("{name}_start"), ts(start));
                    values.insert(format!("{name}_end"), ts(end));
                }
            }
        }
        Ok(ParamValues::Map(
            values.into_iter().map(|(k, v)| (k, v.into())).collect(),
        ))
    }

    fn param_list(&self) -> String {
        if self.params.is_empty() {
            return "none".to_string();
        }
        self.params
            .iter()
            .map(|p| p.name.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// `--named NAME --param k=<type> …`
    pub fn usage(&self) -> String {
        let mut s = format!("auditlake query --named {}", self.name);
        for p in &self.params {
            s.push_str(&format!(" --param {}=<{}>", p.name, p.ty.name()));
        }
        s
    }
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0).expect("midnight exists"))
}

fn ts(t: DateTime<Utc>) -> ScalarValue {
    ScalarValue::TimestampMillisecond(Some(t.timestamp_millis()), Some("UTC".into()))
}

fn parse_timestamp(s: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    for format in ["%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().map(midnight)
}

/// A readable list of named queries, shared with the shell's `.queries`.
pub fn describe_queries(queries: &[NamedQuery]) -> String {
    let mut text = String::new();
    for q in queries {
        text.push_str(&format!("{}\n    {}\n", q.name, q.description));
        for p in &q.params {
            text.push_str(&format!(
                "    --param {}=<{}>  {}\n",
                p.name,
                p.ty.name(),
                p.description
            ));
        }
    }
    text
}

/// A usage error (exit code 2) saying `message`.
fn usage(message: String) -> anyhow::Error {
    anyhow::Error::new(UsageError(message))
}

pub fn find_named<'a>(queries: &'a [NamedQuery], name: &str) -> anyhow::Result<&'a NamedQuery> {
    queries.iter().find(|q| q.name == name).ok_or_else(|| {
        usage(format!(
            "no named query {name:?}; `auditlake queries` lists them ({})",
            queries
                .iter()
                .map(|q| q.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })
}

/// Parses a parameter `KEY=VALUE` (`--param`, `.run NAME KEY=VALUE…`).
pub fn parse_param(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        _ => Err(format!("{text:?} is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn map(p: ParamValues) -> HashMap<String, ScalarValue> {
        match p {
            ParamValues::Map(m) => m.into_iter().map(|(k, v)| (k, v.value)).collect(),
            ParamValues::List(_) => panic!("expected a map"),
        }
    }

    #[test]
    fn builtin_queries_parse() {
        let queries = load(None).unwrap();
        assert_eq!(queries.len(), BUILTIN.len());
        let cc = queries.iter().find(|q| q.name == "config-changes").unwrap();
        assert_eq!(
            cc.params
                .iter()
                .map(|p| (p.name.as_str(), p.ty))
                .collect::<Vec<_>>(),
            [("app", ParamType::Text), ("month", ParamType::Month)]
        );
        assert!(!cc.sql.contains("--"));
        // Every file under queries/ is embedded.
        let on_disk = std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/queries"))
            .unwrap()
            .count();
        assert_eq!(on_disk, BUILTIN.len());
    }

    #[test]
    fn month_binds_a_half_open_range() {
        let q = parse("-- name: q\n-- param: month month  M\nSELECT 1", "q.sql").unwrap();
        let m = map(q.bind(&args(&[("month", "2024-12")])).unwrap());
        let millis = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().timestamp_millis();
        assert_eq!(
            m["month_start"],
            ScalarValue::TimestampMillisecond(
                Some(millis("2024-12-01T00:00:00Z")),
                Some("UTC".into())
            )
        );
        assert_eq!(
            m["month_end"],
            ScalarValue::TimestampMillisecond(
                Some(millis("2025-01-01T00:00:00Z")),
                Some("UTC".into())
            )
        );
        assert_eq!(m["month"], ScalarValue::Utf8(Some("2024-12".into())));
    }

    #[test]
    fn bad_values_are_refused_clearly() {
        let q = parse(
            "-- name: q\n-- param: month month  M\n-- param: n int  N\nSELECT 1",
            "q.sql",
        )
        .unwrap();
        let err = q
            .bind(&args(&[("month", "2024-13"), ("n", "1")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"q: parameter month="2024-13" is not a month (YYYY-MM)"#
        );
        let err = q
            .bind(&args(&[("month", "2024-03"), ("n", "x")]))
            .unwrap_err();
        assert_eq!(err.to_string(), r#"q: parameter n="x" is not an integer"#);
        let err = q.bind(&args(&[("month", "2024-03")])).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("q: missing parameter n (int: N)"),
            "{err}"
        );
        let err = q
            .bind(&args(&[("month", "2024-03"), ("n", "1"), ("x", "y")]))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"q: unknown parameter "x" (parameters: month, n)"#
        );
    }

    #[test]
    fn headers_are_validated() {
        assert!(
            parse("SELECT 1", "a.sql")
                .unwrap_err()
                .to_string()
                .contains("missing `-- name:`")
        );
        let err = parse("-- name: a\n-- param: x blob\nSELECT 1", "a.sql").unwrap_err();
        assert!(err.to_string().contains("unknown type \"blob\""), "{err}");
    }
}
