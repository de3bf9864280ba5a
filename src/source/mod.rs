//! Archive formats: each module turns one archive's byte stream into Arrow
//! record batches of its table's schema. Nothing here knows about the lake.

mod archive;
mod detect;
pub mod entry;
mod error;
pub(crate) mod flat;
pub(crate) mod heroku;
pub(crate) mod json_frames;
pub(crate) mod mapped;
mod mapped_reader;
pub mod mapping;
mod rows;
pub(crate) mod scan;
pub(crate) mod terraform;

use std::sync::Arc;

use crate::table::TableSpec;
use mapping::Mapping;

pub use archive::{ByteCounter, OpenedArchive, open_archive, open_reader};
pub use detect::read_archive;
pub use error::{Position, SourceError};
pub use rows::{ParsedBatch, ReadStats};

/// Rows per record batch handed to the converter.
pub const BATCH_ROWS: usize = 8192;

/// The default largest entry (bytes of its JSON text, or of a CSV record):
/// real audit entries are a few kilobytes; one of 64 MiB is an export bug
/// or an attack, and converting it would take hundreds of megabytes.
pub const DEFAULT_MAX_ENTRY_SIZE: usize = 64 << 20;

/// The built-in tables, for the engine to register. Tables written through a
/// mapping are registered by name with [`mapped::table_spec`].
pub fn table_specs() -> Vec<TableSpec> {
    vec![heroku::table_spec(), terraform::table_spec()]
}

/// The spec of a table found in a lake: a built-in table, else a table
/// written through a mapping (every mapped table has the same columns).
pub fn table_spec_for(name: &str) -> TableSpec {
    table_specs()
        .into_iter()
        .find(|s| s.name == name)
        .unwrap_or_else(|| mapped::table_spec(name))
}

/// The formats auditlake reads.
#[derive(Clone, Debug)]
pub enum Format {
    /// Heroku Enterprise monthly archive: `{"entries": [...]}`.
    HerokuArchive,
    /// Heroku daily event pages: `[event, ...]`.
    HerokuEvents,
    /// Terraform Cloud audit trail pages: `{"data": [...], "pagination": …}`,
    /// one per file or one per line.
    Terraform,
    /// An export described by a mapping file.
    Mapped(Arc<Mapping>),
}

impl Format {
    /// The name used by `--format` and in conversion records.
    pub fn name(&self) -> &'static str {
        match self {
            Format::HerokuArchive => "heroku",
            Format::HerokuEvents => "heroku-events",
            Format::Terraform => "terraform",
            Format::Mapped(_) => "mapped",
        }
    }

    /// How the format's files look, for messages.
    pub(crate) fn shape(&self) -> &'static str {
        match self {
            Format::HerokuArchive => "a Heroku monthly archive ({\"entries\": [...]})",
            Format::HerokuEvents => "a JSON array of Heroku events",
            Format::Terraform => "Terraform Cloud audit trail pages ({\"data\": [...]})",
            Format::Mapped(_) => "records as the mapping describes",
        }
    }

    pub fn table_spec(&self) -> TableSpec {
        match self {
            Format::HerokuArchive | Format::HerokuEvents => heroku::table_spec(),
            Format::Terraform => terraform::table_spec(),
            Format::Mapped(m) => mapped::table_spec(&m.table),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESCRIBE and `.schema` say what every column means: a column added
    /// without a description fails here.
    #[test]
    fn every_column_is_described() {
        for spec in table_specs()
            .into_iter()
            .chain([mapped::table_spec("dash")])
        {
            for field in spec.schema.fields() {
                assert!(
                    !crate::table::describe(Some(&spec), field.name()).is_empty(),
                    "{}.{} has no description",
                    spec.name,
                    field.name()
                );
            }
        }
        for column in crate::table::EVENTS_COLUMNS {
            assert!(!crate::table::describe(None, column).is_empty(), "{column}");
        }
    }
}
