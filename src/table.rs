//! The vocabulary shared by formats, the lake and the engine: what a table
//! looks like and how it is best stored. Formats produce a [`TableSpec`]; the
//! lake turns it into Parquet writer settings; the engine registers it.

use datafusion::arrow::array::PrimitiveBuilder;
use datafusion::arrow::datatypes::{DataType, SchemaRef, TimeUnit, TimestampMillisecondType};

/// Describes a table a format writes: its schema and how it is best stored.
#[derive(Clone, Debug)]
pub struct TableSpec {
    /// Table name: the lake directory and the SQL name.
    pub name: String,
    pub schema: SchemaRef,
    /// Timestamp column that decides the partition (year, month) and the sort order.
    pub time_column: &'static str,
    /// Column naming the account an event belongs to: one file per owner and month.
    pub owner_column: &'static str,
    /// Order of rows inside a data file (ascending, nulls last), recorded in
    /// the footer. Leading with the columns most queries filter on by
    /// equality keeps each value's rows in a few pages, so page statistics
    /// skip the rest and the runs compress well; it ends with the key, so the
    /// order is total and files are reproducible.
    pub sort_columns: &'static [&'static str],
    /// Unique key: when a key comes again, the newest conversion's row wins.
    pub key_column: &'static str,
    /// Low-cardinality columns worth dictionary encoding.
    pub dictionary_columns: &'static [&'static str],
    /// Columns queried by equality, worth a bloom filter.
    pub bloom_filter_columns: &'static [&'static str],
    /// Columns whose values do not follow the sort order (who acted and
    /// from where, rather than what was acted on): every page holds most of
    /// their values, so page min/max would never skip a page. They keep
    /// chunk statistics (and their bloom filter) but no column index.
    pub scattered_columns: &'static [&'static str],
    /// This table's part of the `events` view: a SELECT list producing
    /// `id, created_at, type, action, actor, actor_id, target, ip_address,
    /// data` (see [`EVENTS_COLUMNS`]); `source`, the table's name, comes
    /// first, quoted by whoever renders the view.
    pub events_select: String,
    /// What each column means, for `DESCRIBE` and `.schema`: every column
    /// of [`TableSpec::schema`] has one (a test checks), and [`describe`]
    /// adds `year`, `month` and `extra`.
    pub descriptions: &'static [(&'static str, &'static str)],
}

/// The Arrow type of every table's time column: UTC milliseconds. Heroku
/// writes whole seconds and Terraform Cloud milliseconds, so nothing is
/// rounded; a source time finer than a millisecond is rounded down and its
/// text kept verbatim with the row (`extra` or `data`). Milliseconds delta-
/// encode in about a quarter fewer bytes than microseconds, and Parquet's
/// `TIMESTAMP_MILLIS` is what Hive-lineage readers (Athena) take most readily.
pub type TimeType = TimestampMillisecondType;

/// Builds a column of [`TimeType`] values.
pub type TimeBuilder = PrimitiveBuilder<TimeType>;

/// The [`DataType`] of a time column.
pub fn time_data_type() -> DataType {
    DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()))
}

/// A new [`TimeBuilder`] for `rows` values, in UTC.
pub fn time_builder(rows: usize) -> TimeBuilder {
    TimeBuilder::with_capacity(rows).with_timezone("UTC")
}

/// Name of the column of flat tables that holds what the other columns
/// cannot represent, as a JSON object of the source's own members.
pub const EXTRA: &str = "extra";

/// `schema` with every column of type `from` typed `to` (names, nullability
/// and metadata kept): how the engine reads text as views, and how a file
/// it hands out says plain `STRING` again.
pub fn retype_columns(schema: &SchemaRef, from: &DataType, to: &DataType) -> SchemaRef {
    let fields: Vec<_> = schema
        .fields()
        .iter()
        .map(|f| {
            let field = f.as_ref().clone();
            if f.data_type() == from {
                field.with_data_type(to.clone())
            } else {
                field
            }
        })
        .collect();
    std::sync::Arc::new(datafusion::arrow::datatypes::Schema::new_with_metadata(
        fields,
        schema.metadata().clone(),
    ))
}

/// Quotes an SQL identifier.
pub fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Name of the view over every source.
pub const EVENTS_VIEW: &str = "events";

/// What the `events` view's columns mean.
pub const EVENTS_DESCRIPTIONS: &[(&str, &str)] = &[
    (
        "source",
        "the table the event comes from (heroku, terraform, a mapped table)",
    ),
    ("id", "the event's id, as the platform wrote it"),
    ("created_at", "when it happened (UTC, milliseconds)"),
    ("type", "what kind of thing was acted on"),
    ("action", "what was done to it (create, update, destroy, …)"),
    ("actor", "who acted: an email, user or token name"),
    ("actor_id", "the actor's id on the platform"),
    (
        "target",
        "what was acted on: app, team, account or resource id",
    ),
    ("ip_address", "where the request came from"),
    ("data", "the event's details, as JSON text (data->>'key')"),
];

/// What a column of `spec`'s table (or of the `events` view, for `None`)
/// means; the partition columns and `extra` are described once for all.
pub fn describe(spec: Option<&TableSpec>, column: &str) -> &'static str {
    let own = match spec {
        Some(spec) => spec.descriptions,
        None => EVENTS_DESCRIPTIONS,
    };
    if let Some((_, text)) = own.iter().find(|(name, _)| *name == column) {
        return text;
    }
    match column {
        "year" => "partition: the UTC year of created_at (directory year=YYYY)",
        "month" => "partition: the UTC month of created_at, 1-12 (directory month=M)",
        EXTRA => {
            "JSON object of what the columns cannot hold exactly (unknown keys, non-canonical times); NULL when none"
        }
        _ => "",
    }
}

/// Columns of the `events` view that unifies every source.
pub const EVENTS_COLUMNS: [&str; 10] = [
    "source",
    "id",
    "created_at",
    "type",
    "action",
    "actor",
    "actor_id",
    "target",
    "ip_address",
    "data",
];
