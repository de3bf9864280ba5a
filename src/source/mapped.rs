//! Exports described by a [`Mapping`] file: records of a JSON array, NDJSON
//! or CSV become rows of a table the mapping names, with the columns every
//! source shares (`type`, `action`, `actor`, …) and the rest of each record
//! kept as a JSON object in `data`.

use std::borrow::Cow;
use std::cell::Cell;
use std::io::Read;
use std::rc::Rc;
use std::sync::{Arc, LazyLock};

use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use serde_json::Value;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};

use super::entry::{ExtraObject, RawEntry, compact_json, parse_timestamp, string_or_null};
use super::mapping::{FieldRule, MAPPED_FIELDS, Mapping, TimeFormat};
use super::{Position, SourceError};
use crate::table::{TableSpec, TimeBuilder, time_builder, time_data_type};

/// The columns of every mapped table: `id, created_at`, the fields a mapping
/// can fill ([`MAPPED_FIELDS`]), then `account, data`.
static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let names = ["id", "created_at"]
        .into_iter()
        .chain(MAPPED_FIELDS)
        .chain(["account", "data"]);
    let fields = names.map(|name| match name {
        "id" | "account" => Field::new(name, DataType::Utf8, false),
        "created_at" => Field::new(name, time_data_type(), false),
        _ => Field::new(name, DataType::Utf8, true),
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
});

/// How a mapped table is laid out and written. Every mapped table has the
/// same columns, so a table found in the lake can be registered by name.
pub fn table_spec(table: &str) -> TableSpec {
    TableSpec {
        name: table.to_string(),
        schema: SCHEMA.clone(),
        time_column: "created_at",
        owner_column: "account",
        sort_columns: &["created_at", "id"],
        key_column: "id",
        dictionary_columns: &["type", "action", "actor", "actor_id", "role", "account"],
        bloom_filter_columns: &["actor", "target"],
        scattered_columns: &[],
        events_select: "id, created_at, type, action, actor, actor_id, target, ip_address, data"
            .into(),
        descriptions: DESCRIPTIONS,
    }
}

/// What each column of a mapped table means (the mapping names the source
/// field of each).
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "id",
        "the event's id, as the export wrote it (unique in the table)",
    ),
    ("created_at", "when it happened (UTC, milliseconds)"),
    ("type", "kind of thing acted on"),
    ("action", "what was done to it"),
    ("actor", "who acted: an email, user or token name"),
    ("actor_id", "the actor's id"),
    ("target", "what was acted on"),
    ("ip_address", "where the request came from"),
    ("role", "the actor's role"),
    ("account", "the account the export belongs to"),
    (
        "data",
        "JSON object of every field not stored whole in a column",
    ),
];

/// Accumulates mapped records into Arrow columns.
pub struct MappedBatchBuilder {
    mapping: Arc<Mapping>,
    id: StringBuilder,
    created_at: TimeBuilder,
    /// type … role, then account, then data.
    text: [StringBuilder; 9],
    data: ExtraObject,
    len: usize,
}

/// Why a record could not be mapped; the caller adds where the record is.
#[derive(Debug, thiserror::Error)]
#[error("field {field:?} {problem}")]
pub struct MappingError {
    field: String,
    problem: String,
}

fn problem(rule: &FieldRule, problem: impl Into<String>) -> MappingError {
    MappingError {
        field: rule.field.clone(),
        problem: problem.into(),
    }
}

/// A field's value as text, and whether the column holds the top-level
/// member whole (then `data` need not keep it).
struct Found<'a> {
    text: Option<Cow<'a, str>>,
    member: Option<usize>,
}

impl MappedBatchBuilder {
    pub fn new(mapping: Arc<Mapping>, rows: usize) -> Self {
        MappedBatchBuilder {
            mapping,
            id: StringBuilder::with_capacity(rows, rows * 32),
            created_at: time_builder(rows),
            text: std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * 16)),
            data: ExtraObject::default(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends one record (`bytes` is its JSON text, hashed when the mapping
    /// names no id). On error nothing is appended.
    pub fn append(&mut self, record: &RawEntry<'_>, bytes: &[u8]) -> Result<(), MappingError> {
        let mapping = self.mapping.clone();
        let mut consumed = vec![false; record.members.len()];

        let time = find(record, &mapping.created_at)
            .filter(|f| f.text.is_some())
            .ok_or_else(|| problem(&mapping.created_at, "is missing"))?;
        let text = time.text.as_deref().expect("filtered above");
        let (millis, canonical) = parse_time(text, &mapping.time_format).ok_or_else(|| {
            problem(
                &mapping.created_at,
                time_problem(text, &mapping.time_format),
            )
        })?;
        if canonical && let Some(m) = time.member {
            consumed[m] = true;
        }

        let id = match &mapping.id {
            Some(rule) => {
                let found = find(record, rule)
                    .filter(|f| f.text.as_deref().is_some_and(|t| !t.is_empty()))
                    .ok_or_else(|| problem(rule, "is missing or empty (it is the record's id)"))?;
                if let Some(m) = found.member {
                    consumed[m] = true;
                }
                found.text.expect("filtered above").into_owned()
            }
            None => record_hash(bytes),
        };

        let mut values: [Option<Cow<'_, str>>; 7] = Default::default();
        for (slot, rule) in values.iter_mut().zip(&mapping.fields) {
            let Some(rule) = rule else { continue };
            if let Some(found) = find(record, rule) {
                if let Some(m) = found.member {
                    consumed[m] = true;
                }
                *slot = found.text;
            }
        }

        self.data.clear();
        for ((key, raw), used) in record.members.iter().zip(&consumed) {
            if !used {
                self.data.push(key, &compact_json(raw.get()));
            }
        }
        self.id.append_value(&id);
        self.created_at.append_value(millis);
        for (builder, value) in self.text.iter_mut().zip(&values) {
            builder.append_option(value.as_deref());
        }
        self.text[7].append_value(&mapping.account);
        self.text[8].append_option(self.data.finish());
        self.len += 1;
        Ok(())
    }

    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(SCHEMA.fields().len());
        columns.push(Arc::new(self.id.finish()));
        columns.push(Arc::new(self.created_at.finish()));
        for builder in &mut self.text {
            columns.push(Arc::new(builder.finish()));
        }
        self.len = 0;
        RecordBatch::try_new(SCHEMA.clone(), columns).expect("builder columns match the schema")
    }
}

/// Looks a rule's field up in a record: `None` when the field is absent.
/// A member whose name is the whole field (dots included) wins over a path.
/// Of a member given twice, the last is the field's value (as `JSON.parse`
/// and the flat formats read it); the earlier ones stay in `data`.
fn find<'a>(record: &RawEntry<'a>, rule: &FieldRule) -> Option<Found<'a>> {
    let member = |name: &str| record.members.iter().rposition(|(k, _)| k == name);
    let (index, rest) = match member(&rule.field) {
        Some(i) => (i, &rule.path[..0]),
        None => match member(&rule.path[0]) {
            Some(i) => (i, &rule.path[1..]),
            None => return None,
        },
    };
    let raw = record.members[index].1;
    let (text, whole) = if rest.is_empty() {
        match string_or_null(raw) {
            Some(v) => (v, true),
            None => (Some(compact_json(raw.get())), false),
        }
    } else {
        match descend(raw, rest) {
            Some(v) => (v.map(Cow::Owned), false),
            None => return None,
        }
    };
    let Some(pattern) = &rule.pattern else {
        return Some(Found {
            text,
            member: whole.then_some(index),
        });
    };
    let text = text.and_then(|t| {
        let caps = pattern.captures(&t)?;
        let m = caps.get(1).or_else(|| caps.get(0))?;
        Some(Cow::Owned(m.as_str().to_string()))
    });
    Some(Found { text, member: None })
}

/// Follows `path` into a JSON value, looking inside strings that hold JSON
/// (CSV exports keep nested data as JSON text). `Some(None)` is null.
fn descend(raw: &RawValue, path: &[String]) -> Option<Option<String>> {
    let mut value: Value = serde_json::from_str(raw.get()).ok()?;
    for key in path {
        if let Value::String(s) = &value {
            value = serde_json::from_str(s).ok()?;
        }
        value = value.as_object_mut()?.remove(key)?;
    }
    Some(match value {
        Value::Null => None,
        Value::String(s) => Some(s),
        other => Some(other.to_string()),
    })
}

/// A stable id for a record without one: the same record always hashes the
/// same, so re-exports dedupe.
fn record_hash(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let digest = Sha256::digest(compact_json(&text).as_bytes());
    hex::encode(&digest[..16])
}

/// Parses a time; `canonical` when the text is how the column renders back.
fn parse_time(text: &str, format: &TimeFormat) -> Option<(i64, bool)> {
    match format {
        TimeFormat::Rfc3339 => parse_timestamp(text, "created_at")
            .ok()
            .map(|t| (t.millis, t.canonical)),
        TimeFormat::Unix | TimeFormat::UnixMillis => {
            let scale = if *format == TimeFormat::Unix {
                1_000.0
            } else {
                1.0
            };
            let n: f64 = text.trim().parse().ok()?;
            n.is_finite().then(|| ((n * scale).round() as i64, false))
        }
        TimeFormat::Strftime(f) => {
            let millis = match DateTime::parse_from_str(text, f) {
                Ok(t) => t.with_timezone(&Utc).timestamp_millis(),
                Err(_) => NaiveDateTime::parse_from_str(text, f)
                    .ok()?
                    .and_utc()
                    .timestamp_millis(),
            };
            Some((millis, false))
        }
    }
}

fn time_problem(text: &str, format: &TimeFormat) -> String {
    match format {
        TimeFormat::Rfc3339 => {
            format!("value {text:?} is not an RFC 3339 timestamp (set format in the mapping)")
        }
        TimeFormat::Unix => format!("value {text:?} is not a number of seconds since 1970"),
        TimeFormat::UnixMillis => {
            format!("value {text:?} is not a number of milliseconds since 1970")
        }
        TimeFormat::Strftime(f) => format!("value {text:?} does not match format {f:?}"),
    }
}

/// Turns a CSV file into one JSON object per row (header → cell; empty cells
/// are left out, as absent), handing each to `record` with its line number.
/// Errors of `record` pass through unchanged.
pub fn read_csv<R: Read>(
    reader: R,
    max_record_size: usize,
    mut record: impl FnMut(u64, &str) -> Result<(), SourceError>,
) -> Result<(), SourceError> {
    let consumed = Rc::new(Cell::new(0u64));
    let record_start = Rc::new(Cell::new(0u64));
    let reader = RecordLimit {
        inner: reader,
        consumed: consumed.clone(),
        record_start: record_start.clone(),
        limit: max_record_size as u64,
    };
    let mut csv = csv::ReaderBuilder::new().from_reader(reader);
    let csv_error = |index: Option<u64>, e: csv::Error| SourceError::Invalid {
        entry: index,
        at: e.position().map(|p| Position::Line(p.line())),
        message: format!("invalid CSV: {e}"),
    };
    let headers = csv.headers().map_err(|e| csv_error(None, e))?.clone();
    if headers.is_empty() {
        return Err(SourceError::Invalid {
            entry: None,
            at: None,
            message: "the CSV file is empty: it has no header row".into(),
        });
    }
    let mut row = csv::StringRecord::new();
    let mut json = String::new();
    let mut index = 0u64;
    loop {
        record_start.set(csv.position().byte());
        match csv.read_record(&mut row) {
            Ok(false) => return Ok(()),
            Ok(true) => {}
            Err(e)
                if e.is_io_error()
                    && consumed.get() > record_start.get() + max_record_size as u64 =>
            {
                return Err(SourceError::Invalid {
                    entry: Some(index),
                    at: Some(Position::Byte(record_start.get())),
                    message: format!(
                        "the record is larger than {max_record_size} bytes (the --max-entry-size limit): refused before it is read whole; raise --max-entry-size to convert it"
                    ),
                });
            }
            Err(e) => return Err(csv_error(Some(index), e)),
        }
        json.clear();
        json.push('{');
        for (name, cell) in headers.iter().zip(row.iter()) {
            if cell.is_empty() {
                continue;
            }
            if json.len() > 1 {
                json.push(',');
            }
            json.push_str(&serde_json::to_string(name).expect("strings serialize"));
            json.push(':');
            json.push_str(&serde_json::to_string(cell).expect("strings serialize"));
        }
        json.push('}');
        record(row.position().map_or(0, |p| p.line()), &json)?;
        index += 1;
    }
}

/// A reader that fails once the CSV record being read (from
/// `record_start`) grows past `limit` bytes, so one hostile record cannot
/// take the memory: the csv crate reads a record whole.
struct RecordLimit<R> {
    inner: R,
    consumed: Rc<Cell<u64>>,
    record_start: Rc<Cell<u64>>,
    limit: u64,
}

impl<R: Read> Read for RecordLimit<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.consumed.get() > self.record_start.get() + self.limit {
            return Err(std::io::Error::other("record too large"));
        }
        let n = self.inner.read(buf)?;
        self.consumed.set(self.consumed.get() + n as u64);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use std::path::Path;

    fn mapping(text: &str) -> Arc<Mapping> {
        Arc::new(Mapping::parse(text, Path::new("m.toml")).unwrap())
    }

    fn row(m: &Arc<Mapping>, json: &str) -> Result<RecordBatch, MappingError> {
        let mut b = MappedBatchBuilder::new(m.clone(), 1);
        let entry: RawEntry = serde_json::from_str(json).unwrap();
        b.append(&entry, json.as_bytes())?;
        Ok(b.finish())
    }

    fn text(batch: &RecordBatch, name: &str) -> Option<String> {
        let c = batch.column_by_name(name).unwrap().as_string::<i32>();
        c.is_valid(0).then(|| c.value(0).to_string())
    }

    #[test]
    fn maps_paths_patterns_and_keeps_the_rest() {
        let m = mapping(
            r#"table = "heroic"
            format = "json"
            [fields]
            created_at = "timestamp"
            type = { field = "event_type", pattern = '^(.*) \S+$' }
            action = { field = "event_type", pattern = '(\S+)$' }
            actor = "metadata.actor_email"
            target = "metadata.resource_name""#,
        );
        let b = row(
            &m,
            r#"{"timestamp":"2024-03-05T10:00:00Z","event_type":"Nakama Deployment Update",
               "metadata":"{\"actor_email\":\"ann@x.io\",\"resource_name\":\"prod\",\"tier\":2}"}"#,
        )
        .unwrap();
        assert_eq!(text(&b, "type").as_deref(), Some("Nakama Deployment"));
        assert_eq!(text(&b, "action").as_deref(), Some("Update"));
        assert_eq!(text(&b, "actor").as_deref(), Some("ann@x.io"));
        assert_eq!(text(&b, "target").as_deref(), Some("prod"));
        assert_eq!(text(&b, "account").as_deref(), Some("heroic"));
        // The timestamp is canonical and consumed; the rest stays in data.
        assert_eq!(
            text(&b, "data").as_deref(),
            Some(
                r#"{"event_type":"Nakama Deployment Update","metadata":"{\"actor_email\":\"ann@x.io\",\"resource_name\":\"prod\",\"tier\":2}"}"#
            )
        );
        // No id field: a hash of the record, the same for the same record.
        let id = text(&b, "id").unwrap();
        assert_eq!(id.len(), 32);
        let again = row(
            &m,
            r#"{"timestamp":"2024-03-05T10:00:00Z", "event_type":"Nakama Deployment Update",
               "metadata":"{\"actor_email\":\"ann@x.io\",\"resource_name\":\"prod\",\"tier\":2}"}"#,
        )
        .unwrap();
        assert_eq!(text(&again, "id").unwrap(), id);
    }

    #[test]
    fn strftime_times_are_utc_and_errors_name_the_field() {
        let m = mapping(
            r#"table = "dash"
            format = "csv"
            [fields]
            created_at = { field = "Timestamp", format = "%Y-%m-%d %H:%M:%S" }
            id = "ID""#,
        );
        let b = row(&m, r#"{"ID":"7","Timestamp":"2024-03-05 10:00:00"}"#).unwrap();
        let ts = b.column(1).as_primitive::<crate::table::TimeType>();
        assert_eq!(ts.value(0), 1_709_632_800_000);
        assert_eq!(text(&b, "id").as_deref(), Some("7"));
        assert_eq!(
            text(&b, "data").as_deref(),
            Some(r#"{"Timestamp":"2024-03-05 10:00:00"}"#)
        );
        let e = row(&m, r#"{"ID":"7","Timestamp":"05/03/2024"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"field "Timestamp" value "05/03/2024" does not match format "%Y-%m-%d %H:%M:%S""#
        );
        let e = row(&m, r#"{"Timestamp":"2024-03-05 10:00:00"}"#).unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"field "ID" is missing or empty (it is the record's id)"#
        );
        let e = row(&m, r#"{"ID":"7"}"#).unwrap_err();
        assert_eq!(e.to_string(), r#"field "Timestamp" is missing"#);
    }
}
