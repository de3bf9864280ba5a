//! A row builder for formats whose entries are JSON objects of strings and
//! small nested objects (Heroku's audit-trail events, Terraform Cloud's audit
//! trail): a static [`Layout`] says which top-level member, or which member of
//! a nested object, feeds which column.
//!
//! Lossless by construction: a member the columns cannot represent exactly
//! (an unknown key, an unexpected shape, a non-canonical timestamp) is kept
//! verbatim in the `extra` column, so an entry is rebuilt from its row by
//! starting from the columns and letting the members of `extra` override.
//! Null and absent are the same for the layout's own keys.

use std::borrow::Cow;
use std::sync::Arc;

use super::entry::{
    EntryError, ExtraObject, SecondsFormat, describe_json, parse_timestamp_rendered,
};
use super::scan::{Entry, Member, Value};
use crate::table::{TimeBuilder, time_builder, time_data_type};
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, StringBuilder};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};

/// What a column holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// The entry's key: a required, non-empty string, stored as the
    /// source's own text (lake format 1: every reader filters and joins on
    /// the id a user copied from the platform).
    Key,
    /// The entry's time: a required RFC 3339 string, stored as UTC milliseconds
    /// ([`crate::table::TimeType`]).
    Time,
    /// A string (or null).
    Text,
    /// Any JSON value, stored as compact JSON text (null is stored as NULL).
    Json,
}

/// One column: its name, where its value comes from, and its kind.
#[derive(Debug)]
pub struct Column {
    pub name: &'static str,
    /// Top-level member of the entry.
    pub member: &'static str,
    /// Member of that nested object, or None when the top-level value itself.
    pub field: Option<&'static str>,
    pub kind: Kind,
}

/// A column fed by a top-level member.
pub const fn top(name: &'static str, member: &'static str, kind: Kind) -> Column {
    Column {
        name,
        member,
        field: None,
        kind,
    }
}

/// A column fed by a member of a nested object.
pub const fn nested(
    name: &'static str,
    member: &'static str,
    field: &'static str,
    kind: Kind,
) -> Column {
    Column {
        name,
        member,
        field: Some(field),
        kind,
    }
}

/// The columns of a table, in order, followed by the implicit `extra`
/// column. Exactly one column is [`Kind::Key`] and one is [`Kind::Time`].
pub struct Layout {
    pub columns: &'static [Column],
    /// How the source renders its timestamps; other renderings of the same
    /// instant are kept verbatim in `extra`.
    pub time_rendering: SecondsFormat,
}

pub use crate::table::EXTRA;

impl Layout {
    /// The Arrow schema: key and time are non-null, the rest nullable.
    pub fn schema(&self) -> SchemaRef {
        let mut fields: Vec<Field> = self
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Key => Field::new(c.name, DataType::Utf8, false),
                Kind::Time => Field::new(c.name, time_data_type(), false),
                Kind::Text | Kind::Json => Field::new(c.name, DataType::Utf8, true),
            })
            .collect();
        fields.push(Field::new(EXTRA, DataType::Utf8, true));
        Arc::new(Schema::new(fields))
    }

    fn position(&self, kind: Kind) -> usize {
        self.columns
            .iter()
            .position(|c| c.kind == kind)
            .expect("a layout has a key and a time column")
    }
}

enum ColumnBuilder {
    Text(StringBuilder),
    Time(TimeBuilder),
}

/// Accumulates entries into Arrow columns following a [`Layout`].
pub struct FlatBatchBuilder {
    layout: &'static Layout,
    schema: SchemaRef,
    builders: Vec<ColumnBuilder>,
    extra: ExtraObject,
    extra_builder: StringBuilder,
    key_column: usize,
    time_column: usize,
    len: usize,
    /// The column found for the n-th top-level member of the previous
    /// entry: entries of one archive list their members in one order, so one
    /// comparison usually finds the column. Fixed size: a member past the end
    /// gets no guess.
    member_guesses: Vec<Option<usize>>,
    /// The column found for the k-th field of the nested object whose first
    /// column is c, at `c + k` while that is one of the object's columns.
    /// Counted within their object, so an entry whose `app` is null does not
    /// shift the guesses of the objects after it.
    field_guesses: Vec<Option<usize>>,
    /// For each column, the first column fed by the same top-level member:
    /// nested lookups compare this number instead of the member's name.
    member_of: Vec<usize>,
}

impl FlatBatchBuilder {
    pub fn new(layout: &'static Layout, schema: SchemaRef, rows: usize) -> Self {
        let builders = layout
            .columns
            .iter()
            .map(|c| match c.kind {
                Kind::Time => ColumnBuilder::Time(time_builder(rows)),
                Kind::Key => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 36)),
                _ => ColumnBuilder::Text(StringBuilder::with_capacity(rows, rows * 16)),
            })
            .collect();
        FlatBatchBuilder {
            layout,
            schema,
            builders,
            extra: ExtraObject::default(),
            extra_builder: StringBuilder::with_capacity(rows, rows * 8),
            key_column: layout.position(Kind::Key),
            time_column: layout.position(Kind::Time),
            len: 0,
            member_guesses: vec![None; 2 * layout.columns.len()],
            field_guesses: vec![None; layout.columns.len()],
            member_of: layout
                .columns
                .iter()
                .map(|c| {
                    layout
                        .columns
                        .iter()
                        .position(|o| o.member == c.member)
                        .expect("a column finds itself")
                })
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// Appends one entry. On error nothing is appended.
    pub fn append(&mut self, entry: &Entry<'_>) -> Result<(), EntryError> {
        let columns = self.layout.columns;
        let mut values: Vec<Option<Cow<'_, str>>> = vec![None; columns.len()];
        let mut key_member = None;
        let mut time_member = None;
        self.extra.clear();
        let shadowed = shadowed_members(&entry.members);
        for (index, member) in entry.members.iter().enumerate() {
            let key = member.key.as_ref();
            if shadowed.contains(&index) {
                // A key given twice: its last value is the entry's (as for
                // JSON.parse, Python's json and DuckDB), the earlier one is
                // kept in `extra`, so nothing of the entry is lost.
                self.extra.push(key, &member.compact());
                continue;
            }
            let found = self.find_column(index, Lookup::Member(key));
            let Some((first, column)) = found.map(|i| (i, &columns[i])) else {
                self.extra.push(key, &member.compact());
                continue;
            };
            if column.field.is_none() {
                match (column.kind, &member.value) {
                    (Kind::Key, _) => key_member = Some(member),
                    (Kind::Time, _) => time_member = Some(member),
                    (Kind::Text, Value::Str(s)) => values[first] = Some(Cow::Borrowed(s)),
                    (Kind::Text, Value::Null) | (Kind::Json, Value::Null) => {}
                    (Kind::Text, _) => self.extra.push(key, &member.compact()),
                    (Kind::Json, _) => values[first] = Some(member.compact()),
                }
                continue;
            }
            if !self.flatten(entry, member, first, &mut values) {
                self.extra.push(key, &member.compact());
            }
        }
        let key_name = columns[self.key_column].member;
        values[self.key_column] = Some(Cow::Borrowed(required_string(key_member, key_name)?));
        let time_name = columns[self.time_column].member;
        let time_text = required_string(time_member, time_name)?;
        let ts = parse_timestamp_rendered(time_text, time_name, self.layout.time_rendering)?;
        if !ts.canonical {
            let raw = time_member.expect("checked by required_string");
            self.extra.push(time_name, &raw.compact());
        }

        for (i, builder) in self.builders.iter_mut().enumerate() {
            match builder {
                ColumnBuilder::Time(b) => b.append_value(ts.millis),
                ColumnBuilder::Text(b) => b.append_option(values[i].as_deref()),
            }
        }
        self.extra_builder.append_option(self.extra.finish());
        self.len += 1;
        Ok(())
    }

    /// Spreads a nested object's members over their columns. Returns false
    /// when the columns cannot rebuild it exactly (the caller keeps it in
    /// `extra`); string values of known members are used even then.
    fn flatten<'a>(
        &mut self,
        entry: &'a Entry<'_>,
        member: &'a Member<'_>,
        first: usize,
        values: &mut [Option<Cow<'a, str>>],
    ) -> bool {
        let object = match &member.value {
            Value::Null => return true,
            Value::Object(range) => entry.object(range),
            _ => return false,
        };
        let mut canonical = true;
        for (k, field) in object.iter().enumerate() {
            let Some(i) = self.find_column(first + k, Lookup::Field(first, &field.key)) else {
                canonical = false;
                continue;
            };
            if values[i].is_some() {
                // A field given twice: its last value goes in the column,
                // and the object, verbatim, in `extra`.
                canonical = false;
            }
            match (self.layout.columns[i].kind, &field.value) {
                (_, Value::Null) => {}
                (Kind::Json, _) => values[i] = Some(field.compact()),
                (_, Value::Str(s)) => values[i] = Some(Cow::Borrowed(s)),
                _ => canonical = false,
            }
        }
        canonical
    }

    /// The column a member or nested field feeds (for a top-level member,
    /// the first of its columns), trying the previous entry's answer for the
    /// same `slot` first (see `member_guesses` and `field_guesses`).
    fn find_column(&mut self, slot: usize, lookup: Lookup<'_>) -> Option<usize> {
        let columns = self.layout.columns;
        let member_of = &self.member_of;
        let matches = |i: usize| match lookup {
            Lookup::Member(name) => same(columns[i].member, name),
            Lookup::Field(first, name) => {
                member_of[i] == first && columns[i].field.is_some_and(|f| same(f, name))
            }
        };
        // A field past its object's own columns has no slot: it would take
        // the next object's.
        let (guesses, slot) = match lookup {
            Lookup::Member(_) => (&mut self.member_guesses, Some(slot)),
            Lookup::Field(first, _) => (
                &mut self.field_guesses,
                (member_of.get(slot) == Some(&first)).then_some(slot),
            ),
        };
        // Top-level guesses are always first matches, so a match is the answer.
        if let Some(Some(guess)) = slot.and_then(|slot| guesses.get(slot)).copied()
            && matches(guess)
        {
            return Some(guess);
        }
        let found = (0..columns.len()).find(|&i| matches(i));
        if let Some(guess) = slot.and_then(|slot| guesses.get_mut(slot)) {
            *guess = found;
        }
        found
    }

    /// Takes the rows built so far as a batch.
    ///
    /// Arrow's builders start again from empty buffers after `finish`, and
    /// growing a column by doubling copies it about once more: each builder
    /// is given the room of the batch it just built, and an eighth more.
    pub fn finish(&mut self) -> RecordBatch {
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.builders.len() + 1);
        let rows = with_headroom(self.len);
        for builder in &mut self.builders {
            columns.push(match builder {
                ColumnBuilder::Text(b) => Arc::new(finish_text(b, rows)),
                ColumnBuilder::Time(b) => {
                    let array = b.finish();
                    *b = time_builder(rows);
                    Arc::new(array)
                }
            });
        }
        columns.push(Arc::new(finish_text(&mut self.extra_builder, rows)));
        self.len = 0;
        RecordBatch::try_new(self.schema.clone(), columns)
            .expect("builder columns match the schema")
    }
}

/// Finishes a text column and leaves its builder room for a batch like it.
fn finish_text(builder: &mut StringBuilder, rows: usize) -> StringArray {
    let array = builder.finish();
    *builder = StringBuilder::with_capacity(rows, with_headroom(array.value_data().len()));
    array
}

/// A size and an eighth more.
fn with_headroom(n: usize) -> usize {
    n + n / 8
}

/// What [`FlatBatchBuilder::find_column`] looks for.
#[derive(Clone, Copy)]
enum Lookup<'a> {
    /// A top-level member, by name.
    Member(&'a str),
    /// A field of the nested object whose member's first column is given.
    Field(usize, &'a str),
}

/// String equality for short names, inlined: a `memcmp` call per
/// comparison was 6% of the conversion.
#[inline]
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).all(|(x, y)| x == y)
}

/// A required, non-empty string member.
fn required_string<'a>(
    member: Option<&'a Member<'_>>,
    field: &'static str,
) -> Result<&'a str, EntryError> {
    let member = member.ok_or(EntryError::Missing(field))?;
    match &member.value {
        Value::Str(s) if !s.is_empty() => Ok(s),
        Value::Null => Err(EntryError::Missing(field)),
        _ => Err(EntryError::NotAString {
            field,
            found: describe_json(member.raw),
        }),
    }
}

/// Indexes of members whose key comes again later in the entry. Entries
/// have a dozen members, so comparing pairs is cheaper than hashing; a
/// hostile entry with thousands of members is hashed.
fn shadowed_members(members: &[Member<'_>]) -> Vec<usize> {
    if members.len() <= 32 {
        return (0..members.len())
            .filter(|&i| members[i + 1..].iter().any(|m| m.key == members[i].key))
            .collect();
    }
    let mut last = std::collections::HashMap::with_capacity(members.len());
    for (i, m) in members.iter().enumerate() {
        last.insert(m.key.as_ref(), i);
    }
    (0..members.len())
        .filter(|&i| last[members[i].key.as_ref()] != i)
        .collect()
}
