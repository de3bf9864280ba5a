//! Heroku Enterprise audit trail (Platform API schema "audit-trail-event").
//!
//! Monthly archives are `{"entries": [event, ...]}` objects and daily event
//! pages (`GET /enterprise-accounts/{id}/events?day=…`) are `[event, ...]`
//! arrays; each event becomes one row of the `heroku` table. Nested objects (`actor`, `app`, ...) are
//! flattened into typed columns; `data` is kept as compact JSON text; any
//! member the columns cannot represent exactly (unknown keys, unexpected
//! shapes, non-canonical timestamps) is kept verbatim in `extra`, so every
//! entry can be rebuilt from its row: start from the columns, then let the
//! members of `extra` override.

use std::sync::LazyLock;

use datafusion::arrow::datatypes::SchemaRef;

use super::entry::SecondsFormat;
use super::flat::{FlatBatchBuilder, Kind, Layout, nested, top};
use crate::table::TableSpec;

/// Name of the lake table Heroku events are stored in.
pub const TABLE: &str = "heroku";

/// Where each column of the `heroku` table comes from. Every column but
/// `id` and `created_at` is nullable text; `extra` follows the last one.
pub static LAYOUT: Layout = Layout {
    columns: &[
        top("id", "id", Kind::Key),
        top("created_at", "created_at", Kind::Time),
        top("type", "type", Kind::Text),
        top("action", "action", Kind::Text),
        nested("actor_id", "actor", "id", Kind::Text),
        nested("actor_email", "actor", "email", Kind::Text),
        nested("app_id", "app", "id", Kind::Text),
        nested("app_name", "app", "name", Kind::Text),
        nested("owner_id", "owner", "id", Kind::Text),
        nested("owner_email", "owner", "email", Kind::Text),
        nested("team_id", "team", "id", Kind::Text),
        nested("team_name", "team", "name", Kind::Text),
        nested(
            "enterprise_account_id",
            "enterprise_account",
            "id",
            Kind::Text,
        ),
        nested(
            "enterprise_account_name",
            "enterprise_account",
            "name",
            Kind::Text,
        ),
        nested("ip_address", "request", "ip_address", Kind::Text),
        top("data", "data", Kind::Json),
    ],
    time_rendering: SecondsFormat::AutoSi,
};

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| LAYOUT.schema());

/// A builder of `heroku` rows.
pub fn batch_builder(rows: usize) -> FlatBatchBuilder {
    FlatBatchBuilder::new(&LAYOUT, SCHEMA.clone(), rows)
}

/// How the `heroku` table is laid out and written.
pub fn table_spec() -> TableSpec {
    TableSpec {
        name: TABLE.into(),
        schema: SCHEMA.clone(),
        time_column: "created_at",
        owner_column: "enterprise_account_name",
        // "What happened to app X (of type T) in month M" is the common question.
        sort_columns: &["app_name", "type", "created_at", "id"],
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
        // The app's own attributes (id, owner, team) follow `app_name`; the
        // actor and request do not, and the account is one per file.
        scattered_columns: &[
            "actor_id",
            "actor_email",
            "ip_address",
            "enterprise_account_id",
            "enterprise_account_name",
        ],
        events_select: "id, created_at, type, action, actor_email AS actor, \
            actor_id, coalesce(app_name, team_name, enterprise_account_name) AS target, \
            ip_address, data"
            .into(),
        descriptions: DESCRIPTIONS,
    }
}

/// What each column of `heroku` means (Heroku's audit-trail-event schema).
const DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "id",
        "the event's id, exactly as Heroku wrote it (unique in the table)",
    ),
    ("created_at", "when it happened (UTC, milliseconds)"),
    (
        "type",
        "kind of thing acted on: app, add_on, collaborator, config_var, …",
    ),
    ("action", "what was done to it: create, update, destroy, …"),
    ("actor_id", "id of the user who acted (actor.id)"),
    ("actor_email", "email of the user who acted (actor.email)"),
    ("app_id", "id of the app acted on (app.id)"),
    ("app_name", "name of the app acted on (app.name)"),
    ("owner_id", "id of the app's owner (owner.id)"),
    ("owner_email", "email of the app's owner (owner.email)"),
    ("team_id", "id of the team (team.id)"),
    ("team_name", "name of the team (team.name)"),
    (
        "enterprise_account_id",
        "id of the enterprise account (enterprise_account.id)",
    ),
    (
        "enterprise_account_name",
        "name of the enterprise account (enterprise_account.name)",
    ),
    (
        "ip_address",
        "where the request came from (request.ip_address)",
    ),
    (
        "data",
        "the event's details, compact JSON text (data->>'key')",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::TimeType;
    use datafusion::arrow::array::{Array, AsArray};

    use crate::source::entry::EntryError;
    use crate::source::scan::parse_entry;
    use datafusion::arrow::array::RecordBatch;

    fn build(entries: &[&str]) -> Result<RecordBatch, EntryError> {
        let mut b = batch_builder(0);
        for e in entries {
            let entry = parse_entry(e.as_bytes()).unwrap().unwrap();
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
        let b = build(&[r#"{"id":"0b6c1e3a-0000-4000-8000-00000000000e","type":"config_change","action":"set",
            "actor":{"id":"u1","email":"ann@example.com"},"app":{"id":"a1","name":"web"},
            "owner":{"id":"u2","email":"own@example.com"},"enterprise_account":{"id":"ea","name":"acme"},
            "team":{"id":"t1","name":"core"},"request":{"ip_address":"10.0.0.1"},
            "data":{"changes": [ "A" ]},"created_at":"2024-03-05T12:34:56Z"}"#])
        .unwrap();
        assert_eq!(b.num_rows(), 1);
        assert_eq!(b.schema().fields().len(), 17);
        let expect = [
            ("id", "0b6c1e3a-0000-4000-8000-00000000000e"),
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
        let ts = b.column(1).as_primitive::<TimeType>();
        assert_eq!(ts.value(0), 1_709_642_096_000);
    }

    #[test]
    fn keeps_what_columns_cannot_hold_in_extra() {
        let b = build(&[
            r#"{"id":"e2","created_at":"2024-03-05T13:34:56+01:00","app":null,
            "actor":{"id":"u1","email":"x@y","name":"X"},"type":7,"new_key":{"k": 1}}"#,
        ])
        .unwrap();
        assert_eq!(text(&b, "id", 0).as_deref(), Some("e2"));
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
    fn a_leap_second_keeps_its_month_and_its_text() {
        let b = build(&[r#"{"id":"e1","created_at":"2024-05-31T23:59:60Z"}"#]).unwrap();
        let ts = b.column(1).as_primitive::<TimeType>();
        // 2024-05-31T23:59:59.999Z: still May, where the text says it is.
        assert_eq!(ts.value(0), 1_717_199_999_999);
        assert_eq!(
            text(&b, "extra", 0).as_deref(),
            Some(r#"{"created_at":"2024-05-31T23:59:60Z"}"#)
        );
    }

    #[test]
    fn times_finer_than_a_millisecond_are_kept_verbatim() {
        let b = build(&[
            r#"{"id":"0b6c1e3a-0000-4000-8000-000000000001","created_at":"2024-03-05T12:34:56.123456Z"}"#,
            r#"{"id":"0b6c1e3a-0000-4000-8000-000000000002","created_at":"2024-03-05T12:34:56.123Z"}"#,
        ])
        .unwrap();
        let ts = b.column(1).as_primitive::<TimeType>();
        // The column holds milliseconds (rounded down); the text that it
        // cannot render back stays in `extra`, the text it can does not.
        assert_eq!(ts.value(0), 1_709_642_096_123);
        assert_eq!(ts.value(1), 1_709_642_096_123);
        assert_eq!(
            text(&b, "extra", 0).as_deref(),
            Some(r#"{"created_at":"2024-03-05T12:34:56.123456Z"}"#)
        );
        assert_eq!(text(&b, "extra", 1), None);
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

    /// Entries whose members change shape and order between rows (a null
    /// `app`, fields swapped, an unknown field) each land in their own
    /// columns, whatever the previous entry's guesses were, and a second
    /// batch from the same builder starts clean.
    #[test]
    fn entries_of_changing_shapes_fill_the_right_columns() {
        let rows = [
            r#"{"id":"e1","actor":{"id":"u1","email":"a@x"},"app":{"id":"a1","name":"web"},
                "team":{"id":"t1","name":"core"},"created_at":"2024-03-05T12:34:56Z"}"#,
            r#"{"id":"e2","actor":{"email":"b@x","id":"u2"},"app":null,
                "team":{"name":"pay","id":"t2"},"created_at":"2024-03-05T12:34:57Z"}"#,
            r#"{"id":"e3","app":{"name":"api","id":"a3","region":"eu"},"actor":{"id":"u3"},
                "created_at":"2024-03-05T12:34:58Z","team":{"id":"t3","name":"ops"}}"#,
        ];
        let mut builder = batch_builder(0);
        let mut batches = Vec::new();
        for chunk in [&rows[..], &rows[1..2]] {
            for row in chunk {
                builder
                    .append(&parse_entry(row.as_bytes()).unwrap().unwrap())
                    .unwrap();
            }
            batches.push(builder.finish());
        }
        let column = |b: &RecordBatch, name: &str| -> Vec<Option<String>> {
            (0..b.num_rows()).map(|row| text(b, name, row)).collect()
        };
        let some = |v: &[&str]| -> Vec<Option<String>> {
            v.iter()
                .map(|s| (!s.is_empty()).then(|| s.to_string()))
                .collect()
        };
        let first = &batches[0];
        assert_eq!(column(first, "id"), some(&["e1", "e2", "e3"]));
        assert_eq!(column(first, "actor_id"), some(&["u1", "u2", "u3"]));
        assert_eq!(column(first, "actor_email"), some(&["a@x", "b@x", ""]));
        assert_eq!(column(first, "app_id"), some(&["a1", "", "a3"]));
        assert_eq!(column(first, "app_name"), some(&["web", "", "api"]));
        assert_eq!(column(first, "team_id"), some(&["t1", "t2", "t3"]));
        assert_eq!(column(first, "team_name"), some(&["core", "pay", "ops"]));
        // Only the unknown field makes an object the columns cannot rebuild.
        assert_eq!(
            column(first, "extra"),
            vec![
                None,
                None,
                Some(r#"{"app":{"name":"api","id":"a3","region":"eu"}}"#.to_string())
            ]
        );
        let second = &batches[1];
        assert_eq!(column(second, "id"), some(&["e2"]));
        assert_eq!(column(second, "actor_email"), some(&["b@x"]));
        assert_eq!(column(second, "team_name"), some(&["pay"]));
        assert_eq!(column(second, "app_name"), some(&[""]));
    }
}
