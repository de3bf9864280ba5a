//! Heroku Enterprise audit trail (Platform API schema "audit-trail-event").
//!
//! Monthly archives are `{"entries": [event, ...]}` objects; each event becomes
//! one row of the `heroku` table. Nested objects (`actor`, `app`, ...) are
//! flattened into typed columns; `data` is kept as compact JSON text; any
//! member the columns cannot represent exactly (unknown keys, unexpected
//! shapes, non-canonical timestamps) is kept verbatim in `extra`, so every
//! entry can be rebuilt from its row: start from the columns, then let the
//! members of `extra` override.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringBuilder, TimestampMicrosecondBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::value::RawValue;

use super::entry::{
    EntryError, ExtraObject, RawEntry, parse_timestamp, required_string, string_fields,
    string_or_null,
};
use crate::table::TableSpec;

/// Name of the lake table Heroku events are stored in.
pub const TABLE: &str = "heroku";

/// The `heroku` table's columns, in order. All but `id` and `created_at` are
/// nullable text.
pub const COLUMNS: [&str; 17] = [
    "id",
    "created_at",
    "type",
    "action",
    "actor_id",
    "actor_email",
    "app_id",
    "app_name",
    "owner_id",
    "owner_email",
    "team_id",
    "team_name",
    "enterprise_account_id",
    "enterprise_account_name",
    "ip_address",
    "data",
    "extra",
];

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let fields = COLUMNS.iter().map(|&name| match name {
        "id" => Field::new(name, DataType::Utf8, false),
        "created_at" => Field::new(
            name,
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        _ => Field::new(name, DataType::Utf8, true),
    });
    Arc::new(Schema::new(fields.collect::<Vec<_>>()))
});

/// How the `heroku` table is laid out and written.
pub fn table_spec() -> TableSpec {
    TableSpec {
        name: TABLE,
        schema: SCHEMA.clone(),
        time_column: "created_at",
        owner_column: "enterprise_account_name",
        key_column: "id",
        // Few distinct values per month: dictionary pages make them tiny and
        // let readers compare codes instead of strings.
        dictionary_columns: &[
            "type",
            "action",
            "actor_id",
            "actor_email",
            "app_id",
            "app_name",
            "owner_id",
            "owner_email",
            "team_id",
            "team_name",
            "enterprise_account_id",
            "enterprise_account_name",
            "ip_address",
        ],
        // The columns compliance questions filter on by equality.
        bloom_filter_columns: &["app_name", "actor_email"],
        events_select: "'heroku' AS source, id, created_at, type, action, actor_email AS actor, \
            actor_id, coalesce(app_name, team_name, enterprise_account_name) AS target, \
            ip_address, data",
    }
}

/// Nested objects flattened into two columns each: (key, sub-keys).
const ACTOR: [&str; 2] = ["id", "email"];
const NAMED: [&str; 2] = ["id", "name"];

/// Accumulates Heroku events into Arrow columns.
pub struct HerokuBatchBuilder {
    id: StringBuilder,
    created_at: TimestampMicrosecondBuilder,
    text: [StringBuilder; 15],
    extra: ExtraObject,
    len: usize,
}

/// Index into `HerokuBatchBuilder::text` for each text column after `created_at`.
mod col {
    pub const TYPE: usize = 0;
    pub const ACTION: usize = 1;
    pub const ACTOR_ID: usize = 2;
    pub const APP_ID: usize = 4;
    pub const OWNER_ID: usize = 6;
    pub const TEAM_ID: usize = 8;
    pub const ENTERPRISE_ID: usize = 10;
    pub const IP_ADDRESS: usize = 12;
    pub const DATA: usize = 13;
    pub const EXTRA: usize = 14;
}

impl Default for HerokuBatchBuilder {
    fn default() -> Self {
        Self::with_capacity(0)
    }
}

impl HerokuBatchBuilder {
    pub fn with_capacity(rows: usize) -> Self {
        HerokuBatchBuilder {
            id: StringBuilder::with_capacity(rows, rows * 36),
            created_at: TimestampMicrosecondBuilder::with_capacity(rows).with_timezone("UTC"),
            text: std::array::from_fn(|_| StringBuilder::with_capacity(rows, rows * 16)),
            extra: ExtraObject::default(),
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends one event. On error nothing is appended.
    pub fn append(&mut self, entry: &RawEntry<'_>) -> Result<(), EntryError> {
        let mut id = None;
        let mut created_at = None;
        let mut values: [Option<std::borrow::Cow<'_, str>>; 14] = Default::default();
        self.extra.clear();
        for (key, raw) in &entry.members {
            let key = key.as_ref();
            match key {
                "id" => id = Some(*raw),
                "created_at" => created_at = Some(*raw),
                "type" | "action" => {
                    let slot = if key == "type" {
                        col::TYPE
                    } else {
                        col::ACTION
                    };
                    match string_or_null(raw) {
                        Some(v) => values[slot] = v,
                        None => self.extra.push(key, raw),
                    }
                }
                "actor" | "owner" => {
                    let slot = if key == "actor" {
                        col::ACTOR_ID
                    } else {
                        col::OWNER_ID
                    };
                    self.flatten(key, raw, ACTOR, &mut values[slot..slot + 2]);
                }
                "app" | "team" | "enterprise_account" => {
                    let slot = match key {
                        "app" => col::APP_ID,
                        "team" => col::TEAM_ID,
                        _ => col::ENTERPRISE_ID,
                    };
                    self.flatten(key, raw, NAMED, &mut values[slot..slot + 2]);
                }
                "request" => {
                    self.flatten(
                        key,
                        raw,
                        ["ip_address"],
                        &mut values[col::IP_ADDRESS..col::IP_ADDRESS + 1],
                    );
                }
                "data" => values[col::DATA] = Some(super::entry::compact_json(raw.get())),
                _ => self.extra.push(key, raw),
            }
        }
        let id = required_string(id, "id")?;
        let created_at_text = required_string(created_at, "created_at")?;
        let ts = parse_timestamp(&created_at_text, "created_at")?;
        if !ts.canonical {
            self.extra.push(
                "created_at",
                created_at.expect("checked by required_string"),
            );
        }

        self.id.append_value(&id);
        self.created_at.append_value(ts.micros);
        for (builder, value) in self.text.iter_mut().zip(values.iter()) {
            builder.append_option(value.as_deref());
        }
        self.text[col::EXTRA].append_option(self.extra.finish());
        self.len += 1;
        Ok(())
    }

    /// Flattens an object member into `slots`; keeps the original in `extra`
    /// when the columns cannot rebuild it exactly.
    fn flatten<'a, const N: usize>(
        &mut self,
        key: &str,
        raw: &'a RawValue,
        names: [&str; N],
        slots: &mut [Option<std::borrow::Cow<'a, str>>],
    ) {
        let fields = string_fields(raw, names);
        if !fields.canonical {
            self.extra.push(key, raw);
        }
        for (slot, value) in slots.iter_mut().zip(fields.values) {
            *slot = value;
        }
    }

    /// Takes the rows built so far as a batch of the `heroku` schema.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(COLUMNS.len());
        columns.push(Arc::new(self.id.finish()));
        columns.push(Arc::new(self.created_at.finish()));
        for builder in &mut self.text {
            columns.push(Arc::new(builder.finish()));
        }
        self.len = 0;
        RecordBatch::try_new(SCHEMA.clone(), columns).expect("builder columns match the schema")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::TimestampMicrosecondType;

    fn build(entries: &[&str]) -> Result<RecordBatch, EntryError> {
        let mut b = HerokuBatchBuilder::default();
        for e in entries {
            let entry: RawEntry = serde_json::from_str(e).unwrap();
            b.append(&entry)?;
        }
        Ok(b.finish())
    }

    fn text(batch: &RecordBatch, name: &str, row: usize) -> Option<String> {
        let col = batch.column_by_name(name).unwrap().as_string::<i32>();
        col.is_valid(row).then(|| col.value(row).to_string())
    }

    #[test]
    fn flattens_a_full_event() {
        let b = build(&[r#"{"id":"e1","type":"config_change","action":"set",
            "actor":{"id":"u1","email":"ann@example.com"},"app":{"id":"a1","name":"web"},
            "owner":{"id":"u2","email":"own@example.com"},"enterprise_account":{"id":"ea","name":"acme"},
            "team":{"id":"t1","name":"core"},"request":{"ip_address":"10.0.0.1"},
            "data":{"changes": [ "A" ]},"created_at":"2024-03-05T12:34:56Z"}"#])
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.schema().fields().len(), 17);
        let expect = [
            ("id", "e1"),
            ("type", "config_change"),
            ("action", "set"),
            ("actor_id", "u1"),
            ("actor_email", "ann@example.com"),
            ("app_id", "a1"),
            ("app_name", "web"),
            ("owner_id", "u2"),
            ("owner_email", "own@example.com"),
            ("team_id", "t1"),
            ("team_name", "core"),
            ("enterprise_account_id", "ea"),
            ("enterprise_account_name", "acme"),
            ("ip_address", "10.0.0.1"),
            ("data", r#"{"changes":["A"]}"#),
        ];
        for (name, value) in expect {
            assert_eq!(text(&b, name, 0).as_deref(), Some(value), "{name}");
        }
        assert_eq!(text(&b, "extra", 0), None);
        let ts = b.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(ts.value(0), 1_709_642_096_000_000);
    }

    #[test]
    fn keeps_what_columns_cannot_hold_in_extra() {
        let b = build(&[
            r#"{"id":"e2","created_at":"2024-03-05T13:34:56+01:00","app":null,
            "actor":{"id":"u1","email":"x@y","name":"X"},"type":7,"new_key":{"k": 1}}"#,
        ])
        .unwrap();
        assert_eq!(text(&b, "app_name", 0), None);
        assert_eq!(text(&b, "actor_email", 0).as_deref(), Some("x@y"));
        assert_eq!(text(&b, "type", 0), None);
        assert_eq!(text(&b, "data", 0), None);
        assert_eq!(
            text(&b, "extra", 0).as_deref(),
            Some(
                r#"{"actor":{"id":"u1","email":"x@y","name":"X"},"type":7,"new_key":{"k":1},"created_at":"2024-03-05T13:34:56+01:00"}"#
            )
        );
    }

    #[test]
    fn rejects_entries_without_id_or_time() {
        let err = build(&[r#"{"created_at":"2024-03-05T12:34:56Z"}"#]).unwrap_err();
        assert_eq!(err.to_string(), r#"required field "id" is missing"#);
        let err = build(&[r#"{"id":"x"}"#]).unwrap_err();
        assert_eq!(err.to_string(), r#"required field "created_at" is missing"#);
        let err = build(&[r#"{"id":"x","created_at":"yesterday"}"#]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#""created_at" value "yesterday" is not an RFC 3339 timestamp"#
        );
        let err = build(&[r#"{"id":5,"created_at":"2024-03-05T12:34:56Z"}"#]).unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"required field "id" is a number, expected a non-empty string"#
        );
    }
}
