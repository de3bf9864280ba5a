//! Streaming framing of large JSON documents.
//!
//! Audit archives are single JSON documents of hundreds of megabytes
//! (`{"entries": [ ... ]}`). Parsing one into a `serde_json::Value`, or even
//! reading it into a `String`, would make memory grow with the archive. The
//! [`JsonFramer`] instead walks the document's *outer* structure byte by byte
//! and hands out each value of interest (an array element, a top-level value)
//! with its absolute byte offset: either in place, to a parser that reads it
//! straight from the buffer ([`JsonFramer::parse_next`], how entries of the
//! flat formats are read), or as one contiguous slice parsed on its own
//! ([`JsonFramer::next_value_unchecked`]). Either way every error can name
//! the exact byte where it happened.
//!
//! Memory held at any time is one read chunk plus the largest single value.
//!
//! The file is one type, about 550 lines of code and 150 of tests beside it:
//! every method keeps the same buffer invariants (`pos`, `valid_from`,
//! `valid_to`, `base`), so splitting them apart would scatter what must hold.

use std::io::{self, Read};

use serde::de::IgnoredAny;

use super::error::human_size;

/// Bytes requested from the underlying reader per read.
const READ_CHUNK: usize = 256 * 1024;

/// A structural error found while framing, with the absolute byte offset in
/// the (decompressed) stream where it was found.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("byte {offset}: {}", self.reason())]
    Syntax { offset: u64, message: String },
    #[error("byte {offset}: {}", self.reason())]
    Truncated { offset: u64, context: &'static str },
    #[error("byte {offset}: {}", self.reason())]
    TooLarge { offset: u64, limit: usize },
    #[error("{0}")]
    Io(#[from] io::Error),
}

impl FrameError {
    /// What went wrong, without the position: the one wording of each
    /// message, whoever words the position.
    pub fn reason(&self) -> String {
        match self {
            FrameError::Syntax { message, .. } => format!("invalid JSON: {message}"),
            FrameError::Truncated { context, .. } => {
                format!("unexpected end of input {context}: the archive is truncated")
            }
            FrameError::TooLarge { limit, .. } => format!(
                "the entry is larger than {}, the most this run converts (--max-entry-size, and at most 2/5 of --memory-limit): refused before it is read whole; raise them to convert it",
                human_size(*limit)
            ),
            FrameError::Io(e) => e.to_string(),
        }
    }

    /// Where it went wrong (none for I/O errors).
    pub fn offset(&self) -> Option<u64> {
        match self {
            FrameError::Syntax { offset, .. }
            | FrameError::Truncated { offset, .. }
            | FrameError::TooLarge { offset, .. } => Some(*offset),
            FrameError::Io(_) => None,
        }
    }

    fn syntax(offset: u64, message: impl Into<String>) -> Self {
        FrameError::Syntax {
            offset,
            message: message.into(),
        }
    }
}

/// One framed JSON value: its absolute byte offset and its raw bytes.
#[derive(Debug)]
pub struct Frame<'a> {
    pub offset: u64,
    pub bytes: &'a [u8],
}

/// Walks the outer structure of a JSON byte stream.
pub struct JsonFramer<R> {
    reader: R,
    buf: Vec<u8>,
    /// Index in `buf` of the next unread byte.
    pos: usize,
    /// Absolute stream offset of `buf[0]`.
    base: u64,
    eof: bool,
    /// Closing brackets expected while scanning a container; kept to avoid an
    /// allocation per value.
    stack: Vec<u8>,
    /// `buf[valid_from..valid_to]` is known to be UTF-8 ending at a character
    /// boundary (checked once per read, for [`parse_next`](Self::parse_next)).
    valid_from: usize,
    valid_to: usize,
    /// The bytes at `valid_to` are not UTF-8 (not merely cut by the read).
    invalid_at_end: bool,
    /// The largest value (bytes) the framer holds; a larger one is refused
    /// before it is read whole, so one hostile entry cannot take the memory.
    max_value: usize,
}

impl<R: Read> JsonFramer<R> {
    /// A framer that refuses any value larger than `max_value` bytes.
    pub fn with_limit(reader: R, max_value: usize) -> Self {
        JsonFramer {
            max_value,
            reader,
            buf: Vec::with_capacity(READ_CHUNK),
            pos: 0,
            base: 0,
            eof: false,
            stack: Vec::with_capacity(8),
            valid_from: 0,
            valid_to: 0,
            invalid_at_end: false,
        }
    }

    /// Absolute offset of the next unread byte.
    pub fn offset(&self) -> u64 {
        self.base + self.pos as u64
    }

    /// Drops the bytes before `pos` so the buffer does not grow with the
    /// stream. Only called between values, never while one is being framed.
    fn compact(&mut self) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.base += self.pos as u64;
            self.valid_from = self.valid_from.saturating_sub(self.pos);
            self.valid_to = self.valid_to.saturating_sub(self.pos);
            self.pos = 0;
        }
    }

    /// Reads more input, appending to the buffer. Returns false at end of
    /// input. Fails once the value being read (from `pos`) would exceed the
    /// limit.
    fn fill(&mut self) -> Result<bool, FrameError> {
        if self.eof {
            return Ok(false);
        }
        let old_len = self.buf.len();
        if old_len - self.pos > self.max_value {
            return Err(FrameError::TooLarge {
                offset: self.offset(),
                limit: self.max_value,
            });
        }
        self.buf.resize(old_len + READ_CHUNK, 0);
        let n = loop {
            match self.reader.read(&mut self.buf[old_len..]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.buf.truncate(old_len);
                    return Err(e.into());
                }
            }
        };
        self.buf.truncate(old_len + n);
        if n == 0 {
            self.eof = true;
        }
        Ok(n > 0)
    }

    /// Returns the byte at `pos + ahead`, reading more input if needed.
    fn byte_at(&mut self, index: usize) -> Result<Option<u8>, FrameError> {
        while index >= self.buf.len() {
            if !self.fill()? {
                return Ok(None);
            }
        }
        Ok(Some(self.buf[index]))
    }

    /// Skips whitespace (and a UTF-8 byte order mark at the very start) and
    /// returns the next significant byte without consuming it.
    pub fn peek_significant(&mut self) -> Result<Option<u8>, FrameError> {
        if self.offset() == 0
            && self.byte_at(0)? == Some(0xEF)
            && self.byte_at(1)? == Some(0xBB)
            && self.byte_at(2)? == Some(0xBF)
        {
            self.pos = 3;
        }
        loop {
            self.compact_if_large();
            match self.byte_at(self.pos)? {
                Some(b' ' | b'\n' | b'\r' | b'\t') => self.pos += 1,
                other => return Ok(other),
            }
        }
    }

    fn compact_if_large(&mut self) {
        if self.pos >= READ_CHUNK {
            self.compact();
        }
    }

    /// Consumes the expected structural byte (after whitespace).
    pub fn expect(&mut self, wanted: u8, context: &'static str) -> Result<(), FrameError> {
        match self.peek_significant()? {
            Some(b) if b == wanted => {
                self.pos += 1;
                Ok(())
            }
            Some(b) => Err(FrameError::syntax(
                self.offset(),
                format!(
                    "expected '{}' {context}, found {}",
                    wanted as char,
                    describe_byte(b)
                ),
            )),
            None => Err(FrameError::Truncated {
                offset: self.offset(),
                context,
            }),
        }
    }

    /// Frames the next complete JSON value (object, array, string, number or
    /// literal) starting at the next significant byte, and validates it.
    /// The returned slice stays valid until the next call on the framer.
    pub fn next_value(&mut self, context: &'static str) -> Result<Frame<'_>, FrameError> {
        let frame = self.next_value_unchecked(context)?;
        // Structural scanning checks brackets and strings; serde checks the rest
        // (escapes, numbers, literals, commas, UTF-8) and reports the position.
        if let Err(e) = serde_json::from_slice::<IgnoredAny>(frame.bytes) {
            return Err(FrameError::syntax(
                frame.offset + byte_offset_of(frame.bytes, e.line(), e.column()),
                json_reason(&e),
            ));
        }
        Ok(frame)
    }

    /// Like [`next_value`](Self::next_value) but without validation, for
    /// values the caller parses with serde itself (which validates anyway).
    pub fn next_value_unchecked(&mut self, context: &'static str) -> Result<Frame<'_>, FrameError> {
        let first = match self.peek_significant()? {
            Some(b) => b,
            None => {
                return Err(FrameError::Truncated {
                    offset: self.offset(),
                    context,
                });
            }
        };
        // No compaction here: moving the rest of the buffer down for every
        // value cost a third of the conversion time. `peek_significant`
        // compacts once the consumed prefix reaches a read chunk.
        let start = self.pos;
        let end = match first {
            b'{' | b'[' => self.scan_container()?,
            b'"' => self.scan_string(0)?,
            b'-' | b'0'..=b'9' | b't' | b'f' | b'n' => self.scan_scalar()?,
            other => {
                return Err(FrameError::syntax(
                    self.offset(),
                    format!(
                        "expected a JSON value {context}, found {}",
                        describe_byte(other)
                    ),
                ));
            }
        };
        let offset = self.offset();
        self.pos = end;
        Ok(Frame {
            offset,
            bytes: &self.buf[start..end],
        })
    }

    /// Offers the buffered text from the next significant byte on to
    /// `parse` (with its absolute offset), which returns how many bytes its
    /// value took, or None when the text ended inside the value: then more
    /// input is read and `parse` is called again with the longer text.
    ///
    /// This lets a parser read each value once, in place, instead of the
    /// framer scanning it first. Returns Ok(false), having consumed nothing,
    /// when the value cannot be offered as text (the input ends inside it,
    /// or it is not UTF-8): frame it with
    /// [`next_value_unchecked`](Self::next_value_unchecked) to learn why.
    pub fn parse_next<E: From<FrameError>>(
        &mut self,
        context: &'static str,
        mut parse: impl FnMut(&str, u64) -> Result<Option<usize>, E>,
    ) -> Result<bool, E> {
        if self.peek_significant()?.is_none() {
            return Err(FrameError::Truncated {
                offset: self.offset(),
                context,
            }
            .into());
        }
        let start = self.pos;
        let offset = self.base + start as u64;
        loop {
            let text = self.valid_text(start);
            let offered = text.len();
            if let Some(len) = parse(text, offset)? {
                self.pos = start + len;
                return Ok(true);
            }
            if self.invalid_at_end && start + offered < self.buf.len() {
                return Ok(false);
            }
            // Read at least as much again as was offered before offering
            // the text anew: the value is parsed O(log n) times, not once
            // per read chunk (which made a 200 MB entry quadratic).
            let wanted = start + 2 * offered.max(READ_CHUNK);
            let before = self.buf.len();
            loop {
                if !self.fill()? {
                    if self.buf.len() == before {
                        return Ok(false);
                    }
                    break;
                }
                if self.buf.len() >= wanted {
                    break;
                }
            }
        }
    }

    /// The longest UTF-8 text of the buffer from `start` on, checking bytes
    /// read since the last call.
    fn valid_text(&mut self, start: usize) -> &str {
        if !(self.valid_from..=self.valid_to).contains(&start)
            || !self.buf.get(start).is_some_and(u8::is_ascii)
        {
            // Not inside the checked run, or not at a character boundary
            // of it: start a new run here.
            self.valid_from = start;
            self.valid_to = start;
            self.invalid_at_end = false;
        }
        if !self.invalid_at_end && self.valid_to < self.buf.len() {
            match std::str::from_utf8(&self.buf[self.valid_to..]) {
                Ok(_) => self.valid_to = self.buf.len(),
                Err(e) => {
                    self.valid_to += e.valid_up_to();
                    self.invalid_at_end = e.error_len().is_some();
                }
            }
        }
        let bytes = &self.buf[start..self.valid_to];
        // SAFETY: `buf[valid_from..valid_to]` was checked to be UTF-8 by
        // `from_utf8` above (in pieces that each ended at a character
        // boundary, since a cut character is left for the next check), and
        // `start` is within it at an ASCII byte, hence at a character
        // boundary; the bytes are not modified until the run is reset
        // (`fill` only appends, `compact` shifts the indexes with the bytes).
        unsafe { std::str::from_utf8_unchecked(bytes) }
    }

    /// Reads an object key (a JSON string) and the following ':'.
    pub fn next_key(&mut self) -> Result<String, FrameError> {
        let frame_offset = self.offset();
        match self.peek_significant()? {
            Some(b'"') => {}
            Some(b) => {
                return Err(FrameError::syntax(
                    self.offset(),
                    format!("expected an object key, found {}", describe_byte(b)),
                ));
            }
            None => {
                return Err(FrameError::Truncated {
                    offset: frame_offset,
                    context: "inside the top-level object",
                });
            }
        }
        let frame = self.next_value("as an object key")?;
        let key: String = serde_json::from_slice(frame.bytes).map_err(|e| {
            FrameError::syntax(
                frame.offset,
                format!("invalid object key: {}", json_reason(&e)),
            )
        })?;
        self.expect(b':', "after an object key")?;
        Ok(key)
    }

    /// After a value inside a container: consumes ',' (returns true, more
    /// follow) or the closing byte (returns false).
    pub fn next_separator(&mut self, close: u8, context: &'static str) -> Result<bool, FrameError> {
        match self.peek_significant()? {
            Some(b',') => {
                self.pos += 1;
                Ok(true)
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok(false)
            }
            Some(b) => Err(FrameError::syntax(
                self.offset(),
                format!(
                    "expected ',' or '{}' {context}, found {}",
                    close as char,
                    describe_byte(b)
                ),
            )),
            None => Err(FrameError::Truncated {
                offset: self.offset(),
                context,
            }),
        }
    }

    /// Consumes the closing byte if it comes next (an empty container).
    pub fn consume_if(&mut self, byte: u8) -> Result<bool, FrameError> {
        if self.peek_significant()? == Some(byte) {
            self.pos += 1;
            Ok(true)
        } else {
            Ok(false)
        }
    }

    /// Checks that nothing but whitespace follows the document.
    pub fn expect_end(&mut self) -> Result<(), FrameError> {
        match self.peek_significant()? {
            None => Ok(()),
            Some(b) => Err(FrameError::syntax(
                self.offset(),
                format!(
                    "unexpected {} after the end of the JSON document",
                    describe_byte(b)
                ),
            )),
        }
    }

    /// Scans an object or array starting at `pos`; returns the end index
    /// (exclusive). Tracks nesting with a stack so mismatched brackets are
    /// reported where they occur.
    fn scan_container(&mut self) -> Result<usize, FrameError> {
        let start = self.pos;
        let mut stack = std::mem::take(&mut self.stack);
        stack.clear();
        let end = self.scan_container_with(start, &mut stack);
        self.stack = stack;
        end
    }

    fn scan_container_with(
        &mut self,
        start: usize,
        stack: &mut Vec<u8>,
    ) -> Result<usize, FrameError> {
        let mut i = start;
        loop {
            let b = match self.byte_at(i)? {
                Some(b) => b,
                None => {
                    return Err(FrameError::Truncated {
                        offset: self.base + i as u64,
                        context: "inside a JSON value",
                    });
                }
            };
            match b {
                b'"' => {
                    i = self.scan_string(i - self.pos)?;
                    continue;
                }
                b'{' => stack.push(b'}'),
                b'[' => stack.push(b']'),
                b'}' | b']' => {
                    if stack.pop() != Some(b) {
                        return Err(FrameError::syntax(
                            self.base + i as u64,
                            format!("mismatched '{}'", b as char),
                        ));
                    }
                    if stack.is_empty() {
                        return Ok(i + 1);
                    }
                }
                _ => {}
            }
            i += 1;
            // Fast path: skip runs of bytes that cannot change the structure.
            while i < self.buf.len() {
                match self.buf[i] {
                    b'"' | b'{' | b'}' | b'[' | b']' => break,
                    _ => i += 1,
                }
            }
        }
    }

    /// Scans a string whose opening quote is at `pos + rel`; returns the end
    /// index (exclusive) just past the closing quote.
    fn scan_string(&mut self, rel: usize) -> Result<usize, FrameError> {
        let mut i = self.pos + rel + 1;
        loop {
            // Fast path over plain bytes already in the buffer.
            match memchr::memchr2(b'"', b'\\', &self.buf[i.min(self.buf.len())..]) {
                Some(k) if self.buf[i + k] == b'"' => return Ok(i + k + 1),
                Some(k) => i += k,
                None => i = i.max(self.buf.len()),
            }
            match self.byte_at(i)? {
                None => {
                    return Err(FrameError::Truncated {
                        offset: self.base + i as u64,
                        context: "inside a JSON string",
                    });
                }
                Some(b'"') => return Ok(i + 1),
                Some(b'\\') => {
                    if self.byte_at(i + 1)?.is_none() {
                        return Err(FrameError::Truncated {
                            offset: self.base + i as u64,
                            context: "inside a JSON string",
                        });
                    }
                    i += 2;
                }
                Some(_) => i += 1,
            }
        }
    }

    /// Scans a number or literal: up to the next delimiter.
    fn scan_scalar(&mut self) -> Result<usize, FrameError> {
        let mut i = self.pos;
        loop {
            match self.byte_at(i)? {
                None => return Ok(i),
                Some(b',' | b'}' | b']' | b' ' | b'\n' | b'\r' | b'\t') => return Ok(i),
                Some(_) => i += 1,
            }
        }
    }
}

/// Human description of an unexpected byte for error messages.
pub fn describe_byte(b: u8) -> String {
    match b {
        b'{' => "an object".to_string(),
        b'[' => "an array".to_string(),
        b'"' => "a string".to_string(),
        b'-' | b'0'..=b'9' => "a number".to_string(),
        b't' | b'f' => "a boolean".to_string(),
        b'n' => "null".to_string(),
        0x20..=0x7e => format!("'{}'", b as char),
        _ => format!("byte 0x{b:02x}"),
    }
}

/// Converts serde_json's 1-based line/column inside `bytes` into a 0-based
/// byte offset from the start of `bytes`.
pub fn byte_offset_of(bytes: &[u8], line: usize, column: usize) -> u64 {
    let mut offset = 0usize;
    let mut current_line = 1usize;
    if line > 1 {
        for (i, &b) in bytes.iter().enumerate() {
            if b == b'\n' {
                current_line += 1;
                if current_line == line {
                    offset = i + 1;
                    break;
                }
            }
        }
    }
    (offset + column.saturating_sub(1)).min(bytes.len()) as u64
}

/// serde_json's message without its " at line X column Y" suffix (we report
/// absolute byte offsets instead).
pub fn json_reason(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.rfind(" at line ") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framer(s: &str) -> JsonFramer<&[u8]> {
        JsonFramer::with_limit(s.as_bytes(), usize::MAX)
    }

    #[test]
    fn frames_array_elements_with_offsets() {
        let doc = r#"{"x": 1, "entries": [ {"a":"}"} , [1,2], "s\"" ]}"#;
        let mut f = framer(doc);
        f.expect(b'{', "").unwrap();
        assert_eq!(f.next_key().unwrap(), "x");
        assert_eq!(f.next_value("").unwrap().bytes, b"1");
        assert!(f.next_separator(b'}', "").unwrap());
        assert_eq!(f.next_key().unwrap(), "entries");
        f.expect(b'[', "").unwrap();
        let first = f.next_value("").unwrap();
        assert_eq!(first.offset, 22);
        assert_eq!(first.bytes, br#"{"a":"}"}"#);
        assert!(f.next_separator(b']', "").unwrap());
        assert_eq!(f.next_value("").unwrap().bytes, b"[1,2]");
        assert!(f.next_separator(b']', "").unwrap());
        assert_eq!(f.next_value("").unwrap().bytes, br#""s\"""#);
        assert!(!f.next_separator(b']', "").unwrap());
        assert!(!f.next_separator(b'}', "").unwrap());
        f.expect_end().unwrap();
    }

    #[test]
    fn truncated_value_reports_offset() {
        let mut f = framer(r#"[{"a": "b"#);
        f.expect(b'[', "").unwrap();
        let err = f.next_value("").unwrap_err();
        assert!(
            matches!(err, FrameError::Truncated { offset: 9, .. }),
            "{err}"
        );
    }

    #[test]
    fn mismatched_bracket_reports_offset() {
        let mut f = framer(r#"[{"a": [1}]"#);
        f.expect(b'[', "").unwrap();
        let err = f.next_value("").unwrap_err();
        assert!(matches!(err, FrameError::Syntax { offset: 9, .. }), "{err}");
    }

    #[test]
    fn invalid_literal_is_reported_at_its_byte() {
        let mut f = framer("[\n{\"a\": tru}]");
        f.expect(b'[', "").unwrap();
        let err = f.next_value("").unwrap_err();
        match err {
            FrameError::Syntax { offset, .. } => assert!((8..=11).contains(&offset), "{offset}"),
            other => panic!("{other}"),
        }
    }

    #[test]
    fn values_larger_than_a_read_chunk_are_framed_whole() {
        let big = "x".repeat(READ_CHUNK * 2 + 17);
        let doc = format!("[\"{big}\", 5]");
        let mut f = framer(&doc);
        f.expect(b'[', "").unwrap();
        assert_eq!(f.next_value("").unwrap().bytes.len(), big.len() + 2);
        assert!(f.next_separator(b']', "").unwrap());
        assert_eq!(f.next_value("").unwrap().offset, big.len() as u64 + 5);
    }

    /// Hands out `n` bytes per read, to cut values and characters.
    struct Trickle<'a>(&'a [u8], usize);
    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(self.0.len()).min(buf.len());
            buf[..n].copy_from_slice(&self.0[..n]);
            self.0 = &self.0[n..];
            Ok(n)
        }
    }

    /// Parses every element of an array with `parse_next`, recording what
    /// each call was offered; an element that cannot be offered is framed.
    fn parse_all(doc: &[u8], read_size: usize) -> Vec<Result<(u64, String), String>> {
        let mut f = JsonFramer::with_limit(Trickle(doc, read_size), usize::MAX);
        f.expect(b'[', "").unwrap();
        let mut out = Vec::new();
        loop {
            let parsed = f.parse_next("", |text: &str, offset| {
                Ok::<_, FrameError>(match crate::source::scan::parse_prefix(text) {
                    Ok((_, len)) => {
                        out.push(Ok((offset, text[..len].to_string())));
                        Some(len)
                    }
                    Err(e) if e.ran_out(text) => None,
                    Err(e) => panic!("{e:?}"),
                })
            });
            match parsed {
                Ok(true) => {}
                Ok(false) => {
                    out.push(Err(match f.next_value_unchecked("") {
                        Ok(frame) => format!("framed {} bytes", frame.bytes.len()),
                        Err(e) => e.to_string(),
                    }));
                    return out;
                }
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return out;
                }
            }
            if !f.next_separator(b']', "").unwrap() {
                return out;
            }
        }
    }

    #[test]
    fn parse_next_reads_more_until_the_value_is_whole() {
        let doc = "[{\"a\":\"é€😀\"}, {\"b\":[1,2]} ,3]".as_bytes();
        for read_size in [1, 2, 3, 5, 64] {
            assert_eq!(
                parse_all(doc, read_size),
                [
                    Ok((1, "{\"a\":\"é€😀\"}".to_string())),
                    Ok((20, "{\"b\":[1,2]}".to_string())),
                    Ok((33, "3".to_string())),
                ],
                "{read_size}"
            );
        }
    }

    #[test]
    fn parse_next_declines_what_is_truncated_or_not_utf8() {
        let truncated = parse_all(b"[{\"a\":1}, {\"b\":", 4);
        assert_eq!(truncated[0], Ok((1, "{\"a\":1}".to_string())));
        assert_eq!(
            truncated[1],
            Err(
                "byte 15: unexpected end of input inside a JSON value: the archive is truncated"
                    .into()
            )
        );
        let not_utf8 = parse_all(b"[{\"a\":\"\xff\"}, 1]", 3);
        assert_eq!(not_utf8, [Err("framed 9 bytes".to_string())]);
    }

    #[test]
    fn byte_offset_from_line_and_column() {
        let bytes = b"ab\ncd\nef";
        assert_eq!(byte_offset_of(bytes, 1, 2), 1);
        assert_eq!(byte_offset_of(bytes, 3, 1), 6);
    }
}
