//! Reading an export described by a mapping: CSV rows, one JSON record
//! per line, or a JSON document whose records array sits at the mapping's
//! records path (the rest of each enclosing object is skipped).

use std::io::Read;
use std::sync::Arc;

use super::error::{SourceError, frame_err};
use super::json_frames::JsonFramer;
use super::mapping::{Mapping, RecordFormat};
use super::rows::{ParsedBatch, ReadStats, Rows, expect_array, read_array};
use super::{Format, Position, mapped};

/// Reads an export described by a mapping.
pub(super) fn read_mapped<R: Read>(
    reader: R,
    mapping: &Arc<Mapping>,
    max_entry_size: usize,
    sink: impl FnMut(&Format, ParsedBatch) -> anyhow::Result<()>,
) -> Result<(Format, ReadStats), SourceError> {
    let mut rows = Rows::new(Format::Mapped(mapping.clone()), sink);
    match mapping.format {
        RecordFormat::Csv => {
            mapped::read_csv(reader, max_entry_size, |line, json| {
                rows.push(json.as_bytes(), Position::Line(line))
            })?;
        }
        RecordFormat::Ndjson => {
            let mut framer = JsonFramer::with_limit(reader, max_entry_size);
            while framer
                .peek_significant()
                .map_err(frame_err(None))?
                .is_some()
            {
                let index = rows.entries;
                let frame = framer
                    .next_value_unchecked("in a line")
                    .map_err(frame_err(Some(index)))?;
                rows.push(frame.bytes, Position::Byte(frame.offset))?;
            }
        }
        RecordFormat::Json => {
            let mut framer = JsonFramer::with_limit(reader, max_entry_size);
            find_records(&mut framer, &mapping.records, &mut rows)?;
            framer.expect_end().map_err(frame_err(None))?;
        }
    }
    rows.finish()
}

/// Walks down `path` (object keys) to the records array and reads it; the
/// rest of each enclosing object is skipped.
fn find_records<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    path: &[String],
    rows: &mut Rows<S>,
) -> Result<(), SourceError> {
    let Some((first, rest)) = path.split_first() else {
        expect_array(framer, "records")?;
        return read_array(framer, rows, "in the records");
    };
    match framer.peek_significant().map_err(frame_err(None))? {
        Some(b'{') => {}
        _ => {
            return Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected an object holding \"{first}\" (the mapping's records path)"),
            ));
        }
    }
    framer.expect(b'{', "").map_err(frame_err(None))?;
    let mut found = false;
    if !framer.consume_if(b'}').map_err(frame_err(None))? {
        loop {
            let key = framer.next_key().map_err(frame_err(None))?;
            if key == *first && !found {
                found = true;
                find_records(framer, rest, rows)?;
            } else {
                framer.next_value("in an object").map_err(frame_err(None))?;
            }
            if !framer
                .next_separator(b'}', "in an object")
                .map_err(frame_err(None))?
            {
                break;
            }
        }
    }
    if !found {
        return Err(SourceError::invalid(format!(
            "no \"{first}\" member where the mapping's records path expects it"
        )));
    }
    Ok(())
}
