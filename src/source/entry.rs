//! Schema-agnostic view of one audit entry.
//!
//! An entry is parsed into its top-level `(key, raw JSON)` pairs, borrowing
//! from the framed bytes. Each format module then decides which keys become
//! typed columns and which are kept verbatim in the `extra` column, so that
//! nothing in an entry is ever dropped.

use std::borrow::Cow;
use std::fmt;

pub use chrono::SecondsFormat;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::{Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

/// The top-level members of one JSON object, in document order.
pub struct RawEntry<'a> {
    pub members: Vec<(Cow<'a, str>, &'a RawValue)>,
}

impl<'de: 'a, 'a> Deserialize<'de> for RawEntry<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct EntryVisitor<'a>(std::marker::PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for EntryVisitor<'a> {
            type Value = RawEntry<'a>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<RawEntry<'a>, M::Error> {
                let mut members = Vec::with_capacity(16);
                while let Some(key) = map.next_key::<Cow<'de, str>>()? {
                    let value: &'de RawValue = map.next_value()?;
                    members.push((key, value));
                }
                Ok(RawEntry { members })
            }
        }
        deserializer.deserialize_map(EntryVisitor(std::marker::PhantomData))
    }
}

/// Why a single entry could not be converted. The caller adds the file name,
/// entry index and byte offset.
#[derive(Debug, thiserror::Error)]
pub enum EntryError {
    #[error("entry is not a JSON object ({0})")]
    NotAnObject(String),
    #[error("required field \"{0}\" is missing")]
    Missing(&'static str),
    #[error("required field \"{field}\" is {found}, expected a non-empty string")]
    NotAString { field: &'static str, found: String },
    #[error("\"{field}\" value {value:?} is not an RFC 3339 timestamp")]
    BadTimestamp { field: &'static str, value: String },
}

/// `Some(Some(s))` for a JSON string, `Some(None)` for null, `None` otherwise.
pub fn string_or_null(raw: &RawValue) -> Option<Option<Cow<'_, str>>> {
    let text = raw.get();
    if text == "null" {
        return Some(None);
    }
    if !text.starts_with('"') {
        return None;
    }
    // A raw value was validated when its entry was parsed: a string without
    // a backslash is its own text between the quotes (no serde round trip,
    // which took a tenth of the parse for ~16 strings per entry).
    if text.len() >= 2 && memchr::memchr(b'\\', text.as_bytes()).is_none() {
        return Some(Some(Cow::Borrowed(&text[1..text.len() - 1])));
    }
    serde_json::from_str::<Cow<'_, str>>(text).ok().map(Some)
}

/// A parsed timestamp and whether its text is the canonical rendering of the
/// instant (so the text can be rebuilt from the column alone).
pub struct Timestamp {
    /// UTC milliseconds since the epoch ([`crate::table::TimeType`]).
    pub millis: i64,
    pub canonical: bool,
}

/// Parses an RFC 3339 timestamp (offsets and fractional seconds allowed).
/// Canonical: `YYYY-MM-DDTHH:MM:SSZ`, or with 3 fraction digits that are not
/// `.000`; anything else (offsets, finer fractions, `.000`) is kept verbatim.
pub fn parse_timestamp(text: &str, field: &'static str) -> Result<Timestamp, EntryError> {
    parse_timestamp_rendered(text, field, SecondsFormat::AutoSi)
}

/// Like [`parse_timestamp`], for sources whose own rendering is `rendering`
/// (Terraform Cloud always writes milliseconds): such text is canonical, so
/// it need not be kept verbatim to rebuild the entry.
pub fn parse_timestamp_rendered(
    text: &str,
    field: &'static str,
    rendering: SecondsFormat,
) -> Result<Timestamp, EntryError> {
    let bad = || EntryError::BadTimestamp {
        field,
        value: text.to_string(),
    };
    let parsed = DateTime::parse_from_rfc3339(text).map_err(|_| bad())?;
    let utc = parsed.with_timezone(&Utc);
    // A leap second (`23:59:60`), which chrono holds as second 59 with a
    // fraction of 1 s or more: counted as milliseconds it is the next
    // second, 00:00:00 of the next day and perhaps month. It is stored as
    // the last millisecond of the second before, in the month its text
    // names, and its text is kept.
    if utc.timestamp_subsec_nanos() >= 1_000_000_000 {
        return Ok(Timestamp {
            millis: utc.timestamp() * 1000 + 999,
            canonical: false,
        });
    }
    let millis = utc.timestamp_millis();
    let canonical = if rendering == SecondsFormat::AutoSi && text.len() == 20 && text.ends_with('Z')
    {
        true
    } else {
        utc.timestamp_subsec_nanos() % 1_000_000 == 0
            && text == utc.to_rfc3339_opts(rendering, true)
    };
    Ok(Timestamp { millis, canonical })
}

/// Renders a timestamp column value back as RFC 3339 text.
pub fn format_timestamp(millis: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(millis)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::AutoSi, true))
        .unwrap_or_else(|| millis.to_string())
}

/// Short description of a JSON value's type for messages.
pub fn describe_json(text: &str) -> String {
    match text.as_bytes().first() {
        Some(b'{') => "an object".into(),
        Some(b'[') => "an array".into(),
        Some(b'"') => "a string".into(),
        Some(b't' | b'f') => "a boolean".into(),
        Some(b'n') => "null".into(),
        _ => "a number".into(),
    }
}

/// The JSON text with insignificant whitespace removed, borrowing when there
/// is none (the usual case for machine-written archives).
pub fn compact_json(text: &str) -> Cow<'_, str> {
    // Byte-level: every structural byte of JSON is ASCII, and UTF-8
    // continuation bytes are never mistaken for one. Most values have spaces
    // only inside strings and are borrowed as they are.
    let bytes = text.as_bytes();
    let mut out: Option<Vec<u8>> = None;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                // Skip the string: to the next quote not escaped.
                i += 1;
                loop {
                    match memchr::memchr2(b'"', b'\\', &bytes[i..]) {
                        Some(k) if bytes[i + k] == b'\\' => i = (i + k + 2).min(bytes.len()),
                        Some(k) => {
                            i += k + 1;
                            break;
                        }
                        None => {
                            i = bytes.len();
                            break;
                        }
                    }
                }
            }
            b' ' | b'\n' | b'\r' | b'\t' => {
                let out = out.get_or_insert_with(|| Vec::with_capacity(bytes.len()));
                out.extend_from_slice(&bytes[copied..i]);
                i += 1;
                copied = i;
            }
            _ => i += 1,
        }
    }
    match out {
        None => Cow::Borrowed(text),
        Some(mut out) => {
            out.extend_from_slice(&bytes[copied.min(bytes.len())..]);
            Cow::Owned(String::from_utf8(out).expect("only ASCII whitespace was removed"))
        }
    }
}

/// Accumulates `extra`: a JSON object of members that the typed columns
/// cannot represent, kept verbatim (compacted).
#[derive(Default)]
pub struct ExtraObject {
    text: String,
}

impl ExtraObject {
    pub fn clear(&mut self) {
        self.text.clear();
    }

    /// Adds member `key` (unescaped text) with `value`, compact JSON text.
    pub fn push(&mut self, key: &str, value: &str) {
        self.text.push(if self.text.is_empty() { '{' } else { ',' });
        // Keys were unescaped when parsed; escape them again.
        self.text
            .push_str(&serde_json::to_string(key).expect("a string always serializes"));
        self.text.push(':');
        self.text.push_str(value);
    }

    /// The finished object, or None when no member was pushed.
    pub fn finish(&mut self) -> Option<&str> {
        if self.text.is_empty() {
            None
        } else {
            self.text.push('}');
            Some(&self.text)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leap_second_stays_in_its_month_and_keeps_its_text() {
        let t = parse_timestamp("2024-05-31T23:59:60Z", "created_at").unwrap();
        // 2024-05-31T23:59:59.999Z
        assert_eq!(t.millis, 1_717_199_999_999);
        assert!(!t.canonical);
        let t = parse_timestamp("2024-06-01T01:59:60.5+02:00", "created_at").unwrap();
        assert_eq!(t.millis, 1_717_199_999_999);
        assert!(!t.canonical);
        let t = parse_timestamp("2024-05-31T23:59:59Z", "created_at").unwrap();
        assert_eq!((t.millis, t.canonical), (1_717_199_999_000, true));
    }

    #[test]
    fn entry_members_keep_order_and_raw_text() {
        let e: RawEntry = serde_json::from_str(r#"{"b": {"x": [1, 2]}, "a": "\u00e9"}"#).unwrap();
        assert_eq!(e.members.len(), 2);
        assert_eq!(e.members[0].0, "b");
        assert_eq!(e.members[0].1.get(), r#"{"x": [1, 2]}"#);
        assert_eq!(e.members[1].1.get(), r#""\u00e9""#);
    }

    #[test]
    fn timestamps_parse_to_utc_millis() {
        let t = parse_timestamp("2024-03-05T12:34:56Z", "created_at").unwrap();
        assert_eq!(t.millis, 1_709_642_096_000);
        assert!(t.canonical);
        let t = parse_timestamp("2024-03-05T14:34:56.5+02:00", "created_at").unwrap();
        assert_eq!(t.millis, 1_709_642_096_500);
        assert!(!t.canonical);
        let t = parse_timestamp("2024-03-05T12:34:56.123Z", "created_at").unwrap();
        assert_eq!(t.millis, 1_709_642_096_123);
        assert!(t.canonical);
        // Finer than the column: rounded down in the column, and not
        // canonical, so the text is kept verbatim with the row.
        let t = parse_timestamp("2024-03-05T12:34:56.123456Z", "created_at").unwrap();
        assert_eq!(t.millis, 1_709_642_096_123);
        assert!(!t.canonical);
        assert!(parse_timestamp("2024-13-05T12:34:56Z", "created_at").is_err());
        assert_eq!(
            format_timestamp(1_709_642_096_500),
            "2024-03-05T12:34:56.500Z"
        );
    }

    #[test]
    fn string_or_null_unescapes_only_when_needed() {
        let raw = |t: &'static str| serde_json::from_str::<&RawValue>(t).unwrap();
        assert!(matches!(
            string_or_null(raw(r#""a b""#)),
            Some(Some(Cow::Borrowed("a b")))
        ));
        assert!(matches!(
            string_or_null(raw(r#""""#)),
            Some(Some(Cow::Borrowed("")))
        ));
        assert_eq!(
            string_or_null(raw(r#""x\"y\u00e9""#)).unwrap().unwrap(),
            "x\"yé"
        );
        assert!(matches!(string_or_null(raw("null")), Some(None)));
        assert!(string_or_null(raw("7")).is_none());
    }

    #[test]
    fn compact_json_keeps_string_whitespace() {
        assert_eq!(
            compact_json("{ \"a b\" : [1, \"x \\\" y\"] }"),
            "{\"a b\":[1,\"x \\\" y\"]}"
        );
        assert!(matches!(compact_json("{\"a\":1}"), Cow::Borrowed(_)));
        // Spaces only inside strings: borrowed as it is.
        let spaced = r#"{"description":"Deploy 42eee97","path":"a \\\" b"}"#;
        assert!(matches!(compact_json(spaced), Cow::Borrowed(t) if t == spaced));
        // An escaped backslash ends right before the closing quote.
        assert_eq!(
            compact_json(r#"{ "a" : "x\\" , "b": "\u00e9 é" }"#),
            r#"{"a":"x\\","b":"\u00e9 é"}"#
        );
    }

    #[test]
    fn extra_object_escapes_keys() {
        let mut x = ExtraObject::default();
        assert!(x.finish().is_none());
        x.push("we\"ird", "[1,2]");
        x.push("b", "null");
        assert_eq!(x.finish(), Some(r#"{"we\"ird":[1,2],"b":null}"#));
    }
}
