//! Mapping files: how an export that auditlake has no built-in reader for
//! (a dashboard's JSON, NDJSON or CSV download) becomes a table.
//!
//! ```toml
//! table = "dashboard"        # lake directory and SQL name
//! format = "csv"             # json | ndjson | csv
//! records = "logs"           # json only: dotted path of the array (absent: the top-level array)
//! account = "acme"           # owner of the rows: one file per account and month (default: the table)
//!
//! [fields]                   # each is a field name, a dotted path, or { field, pattern, format }
//! id = "ID"                  # absent: a stable hash of the record
//! created_at = { field = "Timestamp", format = "%Y-%m-%d %H:%M:%S" }  # rfc3339 (default), unix, unix_ms or strftime
//! actor = "User"
//! action = "Action"
//! type = { field = "event_type", pattern = '^(.*) \S+$' }             # first capture group
//! target = "metadata.resource_name"  # paths go into nested objects, and into JSON held in strings
//! ```
//! Every field not consumed whole by a column is kept in `data`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use regex::Regex;
use serde::Deserialize;

/// How the records are stored in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordFormat {
    Json,
    Ndjson,
    Csv,
}

/// How `created_at` is written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TimeFormat {
    Rfc3339,
    /// Seconds since the epoch (a number or a numeric string).
    Unix,
    /// Milliseconds since the epoch.
    UnixMillis,
    /// A chrono `strftime` pattern; without an offset the time is UTC.
    Strftime(String),
}

/// Where a column's value comes from.
#[derive(Clone, Debug)]
pub struct FieldRule {
    /// The field as written in the mapping (for messages).
    pub field: String,
    /// The path, split on dots.
    pub path: Vec<String>,
    /// A regex whose first capture group (or whole match) is the value.
    pub pattern: Option<Regex>,
}

/// The optional columns a mapping can fill, in table order.
pub const MAPPED_FIELDS: [&str; 7] = [
    "type",
    "action",
    "actor",
    "actor_id",
    "target",
    "ip_address",
    "role",
];

/// A validated mapping.
#[derive(Clone, Debug)]
pub struct Mapping {
    /// The mapping file, for messages.
    pub source: PathBuf,
    pub table: String,
    pub format: RecordFormat,
    pub records: Vec<String>,
    pub account: String,
    pub id: Option<FieldRule>,
    pub created_at: FieldRule,
    pub time_format: TimeFormat,
    /// One rule (or none) per [`MAPPED_FIELDS`] entry.
    pub fields: [Option<FieldRule>; 7],
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    table: String,
    format: RecordFormat,
    records: Option<String>,
    account: Option<String>,
    fields: FieldsFile,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldsFile {
    id: Option<FieldSpec>,
    created_at: Option<FieldSpec>,
    #[serde(rename = "type")]
    type_: Option<FieldSpec>,
    action: Option<FieldSpec>,
    actor: Option<FieldSpec>,
    actor_id: Option<FieldSpec>,
    target: Option<FieldSpec>,
    ip_address: Option<FieldSpec>,
    role: Option<FieldSpec>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FieldSpec {
    Path(String),
    Full(FieldTable),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FieldTable {
    field: String,
    pattern: Option<String>,
    format: Option<String>,
}

/// Table names a mapping may not take: the built-in tables and the view.
const RESERVED: [&str; 3] = ["heroku", "terraform", "events"];

impl Mapping {
    /// Reads and validates a mapping file. Errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Mapping> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read the mapping file", path.display()))?;
        Mapping::parse(&text, path).with_context(|| format!("{}: invalid mapping", path.display()))
    }

    pub fn parse(text: &str, source: &Path) -> anyhow::Result<Mapping> {
        let file: MappingFile =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.message()))?;
        let table = file.table;
        let valid_name = table.bytes().next().is_some_and(|b| b.is_ascii_lowercase())
            && table
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            bail!(
                "table {table:?} must be lower-case letters, digits and '_', starting with a letter"
            );
        }
        if RESERVED.contains(&table.as_str()) {
            bail!("table {table:?} is reserved for a built-in table or view; pick another name");
        }
        if file.records.is_some() && file.format != RecordFormat::Json {
            bail!("\"records\" applies to format = \"json\" only");
        }
        let records = match file.records {
            Some(r) if !r.is_empty() => r.split('.').map(str::to_string).collect(),
            _ => Vec::new(),
        };
        let fields = file.fields;
        let Some(created_at) = fields.created_at else {
            bail!("[fields] must name the created_at field");
        };
        let (created_at, time_format) = rule("created_at", created_at, true)?;
        let id = fields
            .id
            .map(|f| rule("id", f, false).map(|r| r.0))
            .transpose()?;
        // In MAPPED_FIELDS order.
        let optional = [
            fields.type_,
            fields.action,
            fields.actor,
            fields.actor_id,
            fields.target,
            fields.ip_address,
            fields.role,
        ];
        let mut rules: [Option<FieldRule>; 7] = Default::default();
        for ((slot, name), spec) in rules.iter_mut().zip(MAPPED_FIELDS).zip(optional) {
            *slot = spec
                .map(|f| rule(name, f, false).map(|r| r.0))
                .transpose()?;
        }
        Ok(Mapping {
            source: source.to_path_buf(),
            account: file.account.unwrap_or_else(|| table.clone()),
            table,
            format: file.format,
            records,
            id,
            created_at,
            time_format,
            fields: rules,
        })
    }
}

fn rule(column: &str, spec: FieldSpec, is_time: bool) -> anyhow::Result<(FieldRule, TimeFormat)> {
    let (field, pattern, format) = match spec {
        FieldSpec::Path(p) => (p, None, None),
        FieldSpec::Full(t) => (t.field, t.pattern, t.format),
    };
    if field.is_empty() {
        bail!("fields.{column}: the field name is empty");
    }
    let pattern = pattern
        .map(|p| {
            Regex::new(&p).map_err(|e| {
                anyhow::anyhow!("fields.{column}: bad pattern {p:?}: {}", regex_reason(&e))
            })
        })
        .transpose()?;
    if format.is_some() && !is_time {
        bail!("fields.{column}: \"format\" applies to created_at only");
    }
    let time_format = match format.as_deref() {
        None | Some("rfc3339") => TimeFormat::Rfc3339,
        Some("unix") => TimeFormat::Unix,
        Some("unix_ms") => TimeFormat::UnixMillis,
        Some(f) if f.contains('%') => TimeFormat::Strftime(f.to_string()),
        Some(f) => bail!(
            "fields.{column}: format {f:?} is not rfc3339, unix, unix_ms or a strftime pattern (e.g. \"%Y-%m-%d %H:%M:%S\")"
        ),
    };
    let path = field.split('.').map(str::to_string).collect();
    Ok((
        FieldRule {
            field,
            path,
            pattern,
        },
        time_format,
    ))
}

/// A regex error in one line: the regex crate draws the pattern with a
/// caret under the fault and the reason last (`error: unclosed group`).
fn regex_reason(e: &regex::Error) -> String {
    let text = e.to_string();
    let last = text
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    last.trim().trim_start_matches("error: ").to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> anyhow::Result<Mapping> {
        Mapping::parse(text, Path::new("m.toml"))
    }

    #[test]
    fn parses_a_full_mapping() {
        let m = parse(
            r#"table = "dash"
            format = "json"
            records = "a.b"
            [fields]
            created_at = { field = "ts", format = "unix_ms" }
            type = { field = "event", pattern = '^(.*) \S+$' }
            actor = "meta.email""#,
        )
        .unwrap();
        assert_eq!(m.records, ["a", "b"]);
        assert_eq!(m.account, "dash");
        assert_eq!(m.time_format, TimeFormat::UnixMillis);
        assert!(m.id.is_none());
        assert_eq!(m.fields[2].as_ref().unwrap().path, ["meta", "email"]);
        assert!(m.fields[0].as_ref().unwrap().pattern.is_some());
    }

    #[test]
    fn refuses_what_it_cannot_apply() {
        let err = |t: &str| format!("{:#}", parse(t).unwrap_err());
        assert!(
            err("table = \"events\"\nformat = \"csv\"\n[fields]\ncreated_at = \"t\"")
                .contains("reserved")
        );
        assert!(
            err("table = \"x\"\nformat = \"csv\"\n[fields]\nactor = \"u\"").contains("created_at")
        );
        assert!(
            err("table = \"x\"\nformat = \"xml\"\n[fields]\ncreated_at = \"t\"").contains("xml")
        );
        assert!(
            err("table = \"x\"\nformat = \"csv\"\n[fields]\ncreated_at = \"t\"\nwho = \"u\"")
                .contains("who")
        );
        assert!(
            err("table = \"x\"\nformat = \"csv\"\n[fields]\ncreated_at = { field = \"t\", format = \"dd/mm\" }")
                .contains("strftime")
        );
        assert!(
            err("table = \"Bad-Name\"\nformat = \"csv\"\n[fields]\ncreated_at = \"t\"")
                .contains("lower-case")
        );
    }
}
