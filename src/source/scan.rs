//! One-pass, validating parser of one framed audit entry.
//!
//! The flat formats (Heroku, Terraform Cloud) need each entry's top-level
//! members, the members of its nested objects (`actor`, `app`, ...), the
//! decoded text of string values, and the raw text of everything else (for
//! `data` and `extra`). Parsing the entry with serde into raw values and then
//! each nested object again read every byte three times and was half of the
//! staging CPU; this parser reads it once, borrows every string without an
//! escape, and rejects exactly what JSON rejects (RFC 8259: grammar, escapes,
//! control characters, UTF-8), reporting the byte where it stopped.
//!
//! One recursive-descent parser, about 490 lines, with its 210 lines of tests
//! beside it: each grammar rule is a method on the same cursor.

use std::borrow::Cow;
use std::ops::Range;

/// Nesting deeper than this is refused (serde_json's limit too), so a
/// hostile entry cannot overflow the stack.
const MAX_DEPTH: usize = 128;

/// Why an entry is not valid JSON, and the byte (from the entry's start)
/// where the parser stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    pub offset: usize,
    pub message: &'static str,
}

/// What a member's value is, as far as the flat builders care.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Null,
    /// A string, unescaped (borrowed when it has no escape).
    Str(Cow<'a, str>),
    /// An object of the entry's top level: its members are
    /// `entry.nested[range]`.
    Object(Range<usize>),
    /// A number, boolean, array, or an object nested deeper.
    Other,
}

/// One member of an object.
#[derive(Debug, Clone)]
pub struct Member<'a> {
    pub key: Cow<'a, str>,
    pub value: Value<'a>,
    /// The value's JSON text as written.
    pub raw: &'a str,
    /// Whether `raw` has whitespace between its tokens (so it is not compact).
    pub spaced: bool,
}

impl Member<'_> {
    /// The value as compact JSON text (borrowed when already compact).
    pub fn compact(&self) -> Cow<'_, str> {
        if self.spaced {
            super::entry::compact_json(self.raw)
        } else {
            Cow::Borrowed(self.raw)
        }
    }
}

/// A parsed entry: an object's members, and the members of those of its
/// values that are objects.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    pub members: Vec<Member<'a>>,
    pub nested: Vec<Member<'a>>,
}

impl<'a> Entry<'a> {
    /// The members of an [`Value::Object`].
    pub fn object(&self, range: &Range<usize>) -> &[Member<'a>] {
        &self.nested[range.clone()]
    }
}

/// Parses `bytes`, which must hold exactly one JSON object (whitespace
/// around it allowed). `Ok(None)` when it holds a valid JSON value that is
/// not an object.
pub fn parse_entry(bytes: &[u8]) -> Result<Option<Entry<'_>>, ScanError> {
    let text = std::str::from_utf8(bytes).map_err(|e| ScanError {
        offset: e.valid_up_to(),
        message: "invalid UTF-8",
    })?;
    let (entry, end) = parse_prefix(text)?;
    let rest = text[end..].trim_start_matches([' ', '\n', '\r', '\t']);
    if !rest.is_empty() {
        return Err(ScanError {
            offset: text.len() - rest.len(),
            message: "trailing characters",
        });
    }
    Ok(entry)
}

/// Parses the JSON value at the start of `text` (leading whitespace
/// allowed); returns the entry (None when the value is not an object) and
/// where the value ends. An error at `text.len()` or beyond means the text
/// ended inside the value: with more text it may still parse.
pub fn parse_prefix(text: &str) -> Result<(Option<Entry<'_>>, usize), ScanError> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
        entry: Entry {
            members: Vec::with_capacity(16),
            nested: Vec::with_capacity(16),
        },
    };
    p.skip_ws();
    if p.peek() == Some(b'{') {
        p.object(Level::Top)?;
        Ok((Some(p.entry), p.pos))
    } else {
        p.value(1)?;
        Ok((None, p.pos))
    }
}

impl ScanError {
    /// Whether the parser stopped because its text ended (more text may
    /// complete the value) rather than at a bad byte.
    pub fn ran_out(&self, text: &str) -> bool {
        self.offset >= text.len()
    }
}

/// Where an object is: the entry itself, one of its values, or deeper.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    Top,
    Nested,
    Deep(usize),
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
    entry: Entry<'a>,
}

impl<'a> Parser<'a> {
    fn error(&self, message: &'static str) -> ScanError {
        ScanError {
            offset: self.pos,
            message,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    /// Skips whitespace; returns whether there was any.
    fn skip_ws(&mut self) -> bool {
        let start = self.pos;
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.pos += 1;
        }
        self.pos > start
    }

    /// Parses an object starting at `{`. At the top level and one below,
    /// its members are recorded; deeper, only validated.
    fn object(&mut self, level: Level) -> Result<bool, ScanError> {
        self.pos += 1; // '{'
        let mut spaced = self.skip_ws();
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(spaced);
        }
        loop {
            if self.peek() != Some(b'"') {
                return Err(self.expected_key());
            }
            let key = self.string()?;
            spaced |= self.skip_ws();
            match self.peek() {
                Some(b':') => self.pos += 1,
                Some(_) => return Err(self.error("expected `:`")),
                None => return Err(self.error("EOF while parsing an object")),
            }
            spaced |= self.skip_ws();
            let start = self.pos;
            let (value, value_spaced) = match level {
                Level::Top => self.member_value()?,
                Level::Nested => self.scalar_or(2)?,
                Level::Deep(depth) => {
                    let s = self.value(depth + 1)?;
                    (Value::Other, s)
                }
            };
            spaced |= value_spaced;
            let member = Member {
                key,
                value,
                raw: &self.text[start..self.pos],
                spaced: value_spaced,
            };
            match level {
                Level::Top => self.entry.members.push(member),
                Level::Nested => self.entry.nested.push(member),
                Level::Deep(_) => {}
            }
            let (more, separator_spaced) =
                self.separator(b'}', "expected `,` or `}`", "EOF while parsing an object")?;
            spaced |= separator_spaced;
            if !more {
                return Ok(spaced);
            }
        }
    }

    fn expected_key(&self) -> ScanError {
        match self.peek() {
            None => self.error("EOF while parsing an object"),
            Some(b'}') => self.error("trailing comma"),
            Some(_) => self.error("key must be a string"),
        }
    }

    /// A value of the entry's top level: objects there have their members
    /// recorded in `nested`.
    fn member_value(&mut self) -> Result<(Value<'a>, bool), ScanError> {
        if self.peek() == Some(b'{') {
            let first = self.entry.nested.len();
            let spaced = self.object(Level::Nested)?;
            return Ok((Value::Object(first..self.entry.nested.len()), spaced));
        }
        self.scalar_or(1)
    }

    /// A string or null decoded, anything else validated as `Other`.
    fn scalar_or(&mut self, depth: usize) -> Result<(Value<'a>, bool), ScanError> {
        match self.peek() {
            Some(b'"') => Ok((Value::Str(self.string()?), false)),
            Some(b'n') => {
                self.literal(b"null")?;
                Ok((Value::Null, false))
            }
            _ => Ok((Value::Other, self.value(depth)?)),
        }
    }

    /// Validates any value at `depth`; returns whether it has whitespace
    /// between tokens.
    fn value(&mut self, depth: usize) -> Result<bool, ScanError> {
        if depth > MAX_DEPTH {
            return Err(self.error("recursion limit exceeded"));
        }
        match self.peek() {
            Some(b'{') => self.object(Level::Deep(depth)),
            Some(b'[') => self.array(depth),
            Some(b'"') => self.string().map(|_| false),
            Some(b't') => self.literal(b"true").map(|_| false),
            Some(b'f') => self.literal(b"false").map(|_| false),
            Some(b'n') => self.literal(b"null").map(|_| false),
            Some(b'-' | b'0'..=b'9') => self.number().map(|_| false),
            Some(_) => Err(self.error("expected value")),
            None => Err(self.error("EOF while parsing a value")),
        }
    }

    fn array(&mut self, depth: usize) -> Result<bool, ScanError> {
        self.pos += 1; // '['
        let mut spaced = self.skip_ws();
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(spaced);
        }
        loop {
            if self.peek() == Some(b']') {
                return Err(self.error("trailing comma"));
            }
            spaced |= self.value(depth + 1)?;
            let (more, separator_spaced) =
                self.separator(b']', "expected `,` or `]`", "EOF while parsing a list")?;
            spaced |= separator_spaced;
            if !more {
                return Ok(spaced);
            }
        }
    }

    /// After a member or element: consumes `,` (returns true: more follow)
    /// or `close` (false), and the whitespace around; also says whether
    /// there was whitespace.
    fn separator(
        &mut self,
        close: u8,
        expected: &'static str,
        eof: &'static str,
    ) -> Result<(bool, bool), ScanError> {
        let mut spaced = self.skip_ws();
        match self.peek() {
            Some(b',') => {
                self.pos += 1;
                spaced |= self.skip_ws();
                Ok((true, spaced))
            }
            Some(b) if b == close => {
                self.pos += 1;
                Ok((false, spaced))
            }
            Some(_) => Err(self.error(expected)),
            None => Err(self.error(eof)),
        }
    }

    fn literal(&mut self, word: &[u8]) -> Result<(), ScanError> {
        for &expected in word {
            match self.peek() {
                Some(b) if b == expected => self.pos += 1,
                Some(_) => return Err(self.error("expected ident")),
                None => return Err(self.error("EOF while parsing a value")),
            }
        }
        Ok(())
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), ScanError> {
        if self.peek() == Some(b'-') {
            self.pos += 1;
        }
        match self.peek() {
            Some(b'0') => self.pos += 1,
            Some(b'1'..=b'9') => self.digits(),
            _ => return Err(self.error("invalid number")),
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.pos += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.pos += 1;
            }
            if !matches!(self.peek(), Some(b'0'..=b'9')) {
                return Err(self.error("invalid number"));
            }
            self.digits();
        }
        Ok(())
    }

    fn digits(&mut self) {
        while let Some(b'0'..=b'9') = self.peek() {
            self.pos += 1;
        }
    }

    /// Parses a string starting at its opening quote; borrows its text when
    /// it has no escape.
    fn string(&mut self) -> Result<Cow<'a, str>, ScanError> {
        self.pos += 1; // '"'
        let start = self.pos;
        self.pos += find_special(&self.bytes[self.pos..]);
        match self.peek() {
            Some(b'"') => {
                let text = &self.text[start..self.pos];
                self.pos += 1;
                Ok(Cow::Borrowed(text))
            }
            _ => self.escaped_string(start),
        }
    }

    /// The rest of a string from its first escape (or control character);
    /// `start` is just past its opening quote.
    fn escaped_string(&mut self, start: usize) -> Result<Cow<'a, str>, ScanError> {
        let mut out = String::with_capacity(self.pos - start + 16);
        out.push_str(&self.text[start..self.pos]);
        loop {
            match self.peek() {
                None => return Err(self.error("EOF while parsing a string")),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(b'\\') => {
                    self.pos += 1;
                    let c = match self.peek() {
                        None => return Err(self.error("EOF while parsing a string")),
                        Some(b'"') => '"',
                        Some(b'\\') => '\\',
                        Some(b'/') => '/',
                        Some(b'b') => '\u{8}',
                        Some(b'f') => '\u{c}',
                        Some(b'n') => '\n',
                        Some(b'r') => '\r',
                        Some(b't') => '\t',
                        Some(b'u') => {
                            self.pos += 1;
                            out.push(self.unicode_escape()?);
                            let from = self.pos;
                            self.pos += find_special(&self.bytes[self.pos..]);
                            out.push_str(&self.text[from..self.pos]);
                            continue;
                        }
                        Some(_) => return Err(self.error("invalid escape")),
                    };
                    out.push(c);
                    self.pos += 1;
                }
                Some(_) => {
                    return Err(self.error(
                        "control character (\\u0000-\\u001F) found while parsing a string",
                    ));
                }
            }
            let from = self.pos;
            self.pos += find_special(&self.bytes[self.pos..]);
            out.push_str(&self.text[from..self.pos]);
        }
    }

    /// The character of a `\uXXXX` escape whose `u` was consumed, joining a
    /// surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, ScanError> {
        let first = self.hex4()?;
        let code = match first {
            0xD800..=0xDBFF => {
                if self.bytes.get(self.pos..self.pos + 2) != Some(b"\\u") {
                    return Err(self.error("unexpected end of hex escape"));
                }
                self.pos += 2;
                let second = self.hex4()?;
                if !(0xDC00..=0xDFFF).contains(&second) {
                    return Err(self.error("lone leading surrogate in hex escape"));
                }
                0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
            }
            0xDC00..=0xDFFF => return Err(self.error("lone leading surrogate in hex escape")),
            code => code,
        };
        char::from_u32(code).ok_or_else(|| self.error("invalid unicode code point"))
    }

    fn hex4(&mut self) -> Result<u32, ScanError> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = match self.peek() {
                Some(b @ b'0'..=b'9') => b - b'0',
                Some(b @ b'a'..=b'f') => b - b'a' + 10,
                Some(b @ b'A'..=b'F') => b - b'A' + 10,
                Some(_) => return Err(self.error("invalid escape")),
                None => return Err(self.error("EOF while parsing a string")),
            };
            n = n * 16 + u32::from(digit);
            self.pos += 1;
        }
        Ok(n)
    }
}

/// Index of the first `"`, `\` or control character in `bytes` (its length
/// when there is none), eight bytes at a time.
fn find_special(bytes: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut i = 0;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let quote = w ^ (ONES * u64::from(b'"'));
        let backslash = w ^ (ONES * u64::from(b'\\'));
        // A zero byte of `quote`/`backslash`, or a byte below 0x20 of `w`;
        // borrows only create false hits above a true one, so the lowest
        // hit is exact.
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (backslash.wrapping_sub(ONES) & !backslash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let hits = hits & HIGH;
        if hits != 0 {
            return i + (hits.trailing_zeros() / 8) as usize;
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return i;
        }
        i += 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Option<Entry<'_>>, ScanError> {
        parse_entry(text.as_bytes())
    }

    #[test]
    fn members_nested_objects_and_raw_text() {
        let e = parse(
            r#"{"id":"e1","app":{"id":"a1","name":null},"data":{"x": [1, {"y":2}]},"n":-1.5e3}"#,
        )
        .unwrap()
        .unwrap();
        let keys: Vec<&str> = e.members.iter().map(|m| m.key.as_ref()).collect();
        assert_eq!(keys, ["id", "app", "data", "n"]);
        assert_eq!(e.members[0].value, Value::Str("e1".into()));
        let Value::Object(app) = &e.members[1].value else {
            panic!("app is an object")
        };
        let app = e.object(app);
        assert_eq!(app.len(), 2);
        assert_eq!(app[0].value, Value::Str("a1".into()));
        assert_eq!(app[1].value, Value::Null);
        assert_eq!(e.members[1].raw, r#"{"id":"a1","name":null}"#);
        let Value::Object(data) = &e.members[2].value else {
            panic!("data is an object")
        };
        assert_eq!(e.object(data)[0].value, Value::Other);
        assert_eq!(e.object(data)[0].raw, r#"[1, {"y":2}]"#);
        assert!(e.members[2].spaced && !e.members[1].spaced);
        assert_eq!(e.members[2].compact(), r#"{"x":[1,{"y":2}]}"#);
        assert_eq!(e.members[3].value, Value::Other);
        assert_eq!(e.members[3].raw, "-1.5e3");
    }

    #[test]
    fn strings_are_borrowed_unless_escaped() {
        let e =
            parse(r#"{"a":"plain é","b":"q\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00 end","\u0041":1}"#)
                .unwrap()
                .unwrap();
        assert!(matches!(
            &e.members[0].value,
            Value::Str(Cow::Borrowed("plain é"))
        ));
        assert_eq!(
            e.members[1].value,
            Value::Str("q\"\\/\u{8}\u{c}\n\r\té😀 end".into())
        );
        assert_eq!(e.members[2].key, "A");
    }

    #[test]
    fn not_an_object_is_none() {
        assert!(parse(" [1, 2] ").unwrap().is_none());
        assert!(parse(r#""text""#).unwrap().is_none());
        assert!(parse("null").unwrap().is_none());
    }

    /// The parser accepts and rejects what serde_json does.
    #[test]
    fn agrees_with_serde_json() {
        let cases = [
            r#"{}"#,
            r#" { "a" : [ ] , "b" : { } } "#,
            r#"{"a":0,"b":-0.0,"c":1E+2,"d":12e-1,"e":true,"f":false}"#,
            r#"{"a":01}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":-}"#,
            r#"{"a":1e}"#,
            r#"{"a":+1}"#,
            r#"{"a":tru}"#,
            r#"{"a":nul}"#,
            r#"{"a":1,}"#,
            r#"{"a":[1,]}"#,
            r#"{"a":[1 2]}"#,
            r#"{"a" 1}"#,
            r#"{a:1}"#,
            r#"{"a":1}}"#,
            r#"{"a":1} x"#,
            r#"{"a":"\x"}"#,
            r#"{"a":"\u12"}"#,
            r#"{"a":"\ud800"}"#,
            r#"{"a":"\udc00"}"#,
            r#"{"a":"\ud800\u0041"}"#,
            "{\"a\":\"tab\tinside\"}",
            "{\"a\":\"nl\ninside\"}",
            r#"{"a":"unterminated}"#,
            r#"{"a":{"b":{"c":[[[{"d":"e"}]]]}}}"#,
            r#"{"a":[}"#,
            r#"{"a":{]}"#,
            r#"{"#,
            r#"{"a""#,
            r#"{"a":"#,
        ];
        for case in cases {
            let serde_ok = serde_json::from_str::<serde_json::Value>(case).is_ok();
            assert_eq!(parse(case).is_ok(), serde_ok, "{case}");
        }
        let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
        assert!(parse(&deep).is_err());
        assert!(parse_entry(b"{\"a\":\"\xff\"}").is_err());
    }

    #[test]
    fn a_prefix_reports_where_its_value_ends_or_that_it_ran_out() {
        let text = r#"{"a":[1,2]} , {"b":2}"#;
        let (entry, end) = parse_prefix(text).unwrap();
        assert_eq!(end, 11);
        assert_eq!(entry.unwrap().members[0].raw, "[1,2]");
        for cut in 1..11 {
            let e = parse_prefix(&text[..cut]).unwrap_err();
            assert!(e.ran_out(&text[..cut]), "{cut}: {e:?}");
        }
        let bad = r#"{"a":x} {"#;
        assert!(!parse_prefix(bad).unwrap_err().ran_out(bad));
    }

    /// Random edits of real entries: the parser accepts exactly what
    /// serde_json accepts, and decodes the same member keys and strings.
    #[test]
    fn agrees_with_serde_json_on_mutated_entries() {
        let seeds = [
            r#"{"id":"d03f1c41-7312","type":"config_change","actor":{"id":"user-3","email":"dan0@acme.io"},"data":{"changes":["WEB_CONCURRENCY"],"n":-1.5e3,"ok":true,"x":null},"created_at":"2024-01-06T06:29:28Z"}"#,
            r#"{ "a" : "\u00e9\n\"q\"" , "b" : [ 1 , { "c" : "\ud83d\ude00" } ] , "d" : { } }"#,
        ];
        let alphabet = b"{}[]\":,\\ \tu0e9-.+Ex\x01\xc3\xa9";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut accepted = 0;
        for round in 0..4000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..1 + next(3) {
                let at = next(bytes.len());
                match next(3) {
                    0 => bytes[at] = alphabet[next(alphabet.len())],
                    1 => bytes.insert(at, alphabet[next(alphabet.len())]),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            let ours = parse_entry(&bytes);
            let theirs = serde_json::from_slice::<serde_json::Value>(&bytes);
            assert_eq!(
                ours.is_ok(),
                theirs.is_ok(),
                "{:?}: {ours:?}",
                String::from_utf8_lossy(&bytes)
            );
            if let (Ok(Some(entry)), Ok(serde_json::Value::Object(map))) = (ours, theirs) {
                accepted += 1;
                for member in &entry.members {
                    // serde keeps the last of repeated keys.
                    let last = entry.members.iter().rev().find(|m| m.key == member.key);
                    if !std::ptr::eq(last.unwrap(), member) {
                        continue;
                    }
                    let value = &map[member.key.as_ref()];
                    match &member.value {
                        Value::Str(s) => assert_eq!(value.as_str(), Some(s.as_ref())),
                        Value::Null => assert!(value.is_null()),
                        Value::Object(_) => assert!(value.is_object()),
                        Value::Other => {
                            assert_eq!(
                                &serde_json::from_str::<serde_json::Value>(member.raw).unwrap(),
                                value
                            )
                        }
                    }
                }
            }
        }
        // Both outcomes were exercised.
        assert!((100..3900).contains(&accepted), "{accepted}");
    }

    #[test]
    fn errors_name_the_byte() {
        let e = parse(r#"{"id":"b1","type":config_change}"#).unwrap_err();
        assert_eq!(
            e,
            ScanError {
                offset: 18,
                message: "expected value"
            }
        );
        assert_eq!(parse(r#"{"a":1 "b":2}"#).unwrap_err().offset, 7);
        assert_eq!(parse_entry(b"{\"a\":\"\xc3\"}").unwrap_err().offset, 6);
    }

    #[test]
    fn find_special_finds_the_first() {
        for (text, at) in [
            ("", 0),
            ("abc", 3),
            ("abcdefgh\"", 8),
            ("ab\\cdefghij\"", 2),
            ("abcdefghijklmno\u{1}", 15),
            ("éééé\"", 8),
            ("\u{7f}\u{80}x\"", 4),
        ] {
            assert_eq!(find_special(text.as_bytes()), at, "{text:?}");
        }
    }
}
