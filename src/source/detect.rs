//! Reading the built-in JSON formats, detected from the content (or as
//! `--format` forces): a Heroku archive is an object with an `"entries"`
//! array, Heroku daily events a bare array, Terraform Cloud pages objects
//! with a `"data"` array (one per file or one per line). Mapped exports are
//! read by [`super::mapped_reader`].

use std::io::Read;

use super::Format;
use super::error::{SourceError, frame_err, shown_name};
use super::json_frames::{JsonFramer, describe_byte};
use super::mapped_reader::read_mapped;
use super::rows::{ParsedBatch, ReadStats, Rows, expect_array, read_array};

/// What detection tries, for the message when nothing matches.
const TRIED: &str = "tried heroku (an object with an \"entries\" array), heroku-events \
    (an array of events) and terraform (pages with a \"data\" array); for other exports \
    write a mapping file and pass --mapping FILE";

/// Streams a file and hands each batch of rows to `sink`. The format is
/// `forced` when given (`--format`, `--mapping`), else detected from content.
/// Returns the format and counts.
///
/// On error, batches already handed out must be discarded by the caller: the
/// file as a whole is rejected.
pub fn read_archive<R: Read>(
    reader: R,
    forced: Option<&Format>,
    max_entry_size: usize,
    sink: impl FnMut(&Format, ParsedBatch) -> anyhow::Result<()>,
) -> Result<(Format, ReadStats), SourceError> {
    if let Some(Format::Mapped(m)) = forced {
        return read_mapped(reader, m, max_entry_size, sink);
    }
    let mut framer = JsonFramer::with_limit(reader, max_entry_size);
    match framer.peek_significant().map_err(frame_err(None))? {
        None => Err(SourceError::invalid(
            "the file is empty: not an audit archive",
        )),
        Some(b'[') => match forced {
            None | Some(Format::HerokuEvents) => {
                let mut rows = Rows::new(Format::HerokuEvents, sink);
                read_array(&mut framer, &mut rows, "in the array")?;
                framer.expect_end().map_err(frame_err(None))?;
                rows.finish()
            }
            Some(f) => Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected {}, found an array", f.shape()),
            )),
        },
        Some(b'{') => match forced {
            Some(Format::HerokuEvents) => Err(SourceError::at(
                None,
                framer.offset(),
                format!("expected {}, found an object", Format::HerokuEvents.shape()),
            )),
            _ => read_pages(&mut framer, forced, sink),
        },
        Some(b) => {
            let found = describe_byte(b);
            let message = match forced {
                Some(f) => format!("expected {}, found {found}", f.shape()),
                None => format!("not a recognised audit file: it starts with {found}; {TRIED}"),
            };
            Err(SourceError::at(None, framer.offset(), message))
        }
    }
}

/// Reads one or more top-level objects: a Heroku archive (`"entries"`) or
/// Terraform pages (`"data"`, possibly one page per line). Other members are
/// skipped.
fn read_pages<R: Read, S: FnMut(&Format, ParsedBatch) -> anyhow::Result<()>>(
    framer: &mut JsonFramer<R>,
    forced: Option<&Format>,
    sink: S,
) -> Result<(Format, ReadStats), SourceError> {
    let mut sink = Some(sink);
    let mut rows: Option<Rows<S>> = None;
    loop {
        framer
            .expect(b'{', "at the start")
            .map_err(frame_err(None))?;
        let mut found = false;
        let mut other_keys = Vec::new();
        if !framer.consume_if(b'}').map_err(frame_err(None))? {
            loop {
                let key = framer.next_key().map_err(frame_err(None))?;
                let detected = match rows.as_ref().map(|r| &r.format).or(forced) {
                    _ if found => None,
                    None if key == "entries" => Some(Format::HerokuArchive),
                    None if key == "data" => Some(Format::Terraform),
                    Some(Format::HerokuArchive) if key == "entries" => Some(Format::HerokuArchive),
                    Some(Format::Terraform) if key == "data" => Some(Format::Terraform),
                    _ => None,
                };
                if let Some(format) = detected {
                    found = true;
                    let rows = rows
                        .get_or_insert_with(|| Rows::new(format, sink.take().expect("taken once")));
                    let context = if key == "entries" {
                        "in \"entries\""
                    } else {
                        "in \"data\""
                    };
                    expect_array(framer, &key)?;
                    read_array(framer, rows, context)?;
                } else {
                    framer
                        .next_value("as a top-level value")
                        .map_err(frame_err(None))?;
                    if other_keys.len() < 5 {
                        other_keys.push(shown_name(&key));
                    }
                }
                if !framer
                    .next_separator(b'}', "in the top-level object")
                    .map_err(frame_err(None))?
                {
                    break;
                }
            }
        }
        if !found {
            let keys = if other_keys.is_empty() {
                "it is empty".to_string()
            } else {
                format!("its keys are {}", other_keys.join(", "))
            };
            let message = match rows.as_ref().map(|r| &r.format).or(forced) {
                Some(f) => format!(
                    "expected {}: this object has no such array ({keys})",
                    f.shape()
                ),
                None => format!(
                    "not a recognised audit file: the top-level object has no \"entries\" or \"data\" array ({keys}); {TRIED}"
                ),
            };
            return Err(SourceError::invalid(message));
        }
        let is_terraform = matches!(rows.as_ref().map(|r| &r.format), Some(Format::Terraform));
        match framer.peek_significant().map_err(frame_err(None))? {
            Some(b'{') if is_terraform => continue,
            _ => {
                framer.expect_end().map_err(frame_err(None))?;
                break;
            }
        }
    }
    rows.expect("found an array").finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads `bytes` as `forced` would (None: detected); the format's name
    /// and the entry count, or the error's text.
    fn read(bytes: &[u8], forced: Option<&Format>) -> Result<(&'static str, u64), String> {
        read_archive(bytes, forced, 1 << 20, |_, _| Ok(()))
            .map(|(format, stats)| (format.name(), stats.entries))
            .map_err(|e| e.to_string())
    }

    const EVENT: &str = r#"{"id":"e1","created_at":"2024-01-02T03:04:05Z","type":"app","action":"create","actor":{"email":"a@b.c"}}"#;

    #[test]
    fn the_format_is_told_by_the_first_array_found() {
        let archive = format!(r#"{{"account":"acme","entries":[{EVENT}]}}"#);
        let events = format!("  [{EVENT},{EVENT}]");
        let pages = "{\"data\":[]}\n{\"data\":[],\"pagination\":{}}";
        let cases: [(&[u8], (&str, u64)); 6] = [
            (archive.as_bytes(), ("heroku", 1)),
            (br#"{"entries":[]}"#, ("heroku", 0)),
            (events.as_bytes(), ("heroku-events", 2)),
            (b"[]", ("heroku-events", 0)),
            (br#"{"data":[]}"#, ("terraform", 0)),
            (pages.as_bytes(), ("terraform", 0)),
        ];
        for (bytes, expected) in cases {
            let text = String::from_utf8_lossy(bytes);
            assert_eq!(read(bytes, None), Ok(expected), "{text}");
        }
    }

    #[test]
    fn what_is_no_archive_says_what_was_tried() {
        assert_eq!(
            read(b"", None),
            Err("the file is empty: not an audit archive".to_string())
        );
        let err = read(b"\n \"text\"", None).unwrap_err();
        assert!(
            err.starts_with("byte 2: not a recognised audit file: it starts with "),
            "{err}"
        );
        assert!(err.ends_with(TRIED), "{err}");
        let err = read(br#"{"rows":[],"next":null}"#, None).unwrap_err();
        assert!(
            err.starts_with(
                "not a recognised audit file: the top-level object has no \"entries\" or \"data\" array (its keys are rows, next)"
            ),
            "{err}"
        );
    }

    #[test]
    fn a_forced_format_refuses_another_shape() {
        assert_eq!(
            read(b"[]", Some(&Format::Terraform)),
            Err(
                "byte 0: expected Terraform Cloud audit trail pages ({\"data\": [...]}), found an array"
                    .to_string()
            )
        );
        assert_eq!(
            read(br#"{"entries":[]}"#, Some(&Format::HerokuEvents)),
            Err("byte 0: expected a JSON array of Heroku events, found an object".to_string())
        );
        assert_eq!(
            read(br#"{"entries":[]}"#, Some(&Format::Terraform)),
            Err(
                "expected Terraform Cloud audit trail pages ({\"data\": [...]}): this object has no such array (its keys are entries)"
                    .to_string()
            )
        );
        // A Heroku archive is one object; a second one is trailing data.
        let err = read(b"{\"entries\":[]}\n{\"entries\":[]}", None).unwrap_err();
        assert!(err.starts_with("byte 15: "), "{err}");
    }

    #[test]
    fn entries_must_be_an_array() {
        assert_eq!(
            read(br#"{"entries":{}}"#, None),
            Err("byte 11: \"entries\" must be an array, found an object".to_string())
        );
    }
}
