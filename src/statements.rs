//! The one SQL lexer of auditlake: enough of SQL's lexical rules to find
//! statements and to colour them, shared by `query` (several statements in
//! one text), the scripted and interactive shell (the "is this complete?"
//! check) and the shell's highlighter, so that all three agree on what is a
//! string, a quoted identifier or a comment.
//!
//! Rules (DataFusion's generic dialect): `'…'` strings and `"…"` quoted
//! identifiers, each with its quote doubled inside (`'it''s'`); `--` line
//! comments; `/* … */` block comments (not nested); `;` ends a statement
//! anywhere else.

use std::ops::Range;

/// What a piece of SQL text is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lexeme {
    /// A keyword or an unquoted name.
    Word,
    /// A `'…'` string literal.
    String,
    /// A `"…"` quoted identifier.
    QuotedName,
    LineComment,
    BlockComment,
    /// A `;` outside strings and comments.
    Semicolon,
    Whitespace,
    /// Anything else: operators, numbers, punctuation.
    Other,
}

/// A piece of the text and what it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    pub kind: Lexeme,
    pub range: Range<usize>,
}

/// Where the lexer stands: between pieces, or inside a string, a quoted
/// name or a block comment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Inside {
    #[default]
    Code,
    Quote(u8),
    BlockComment,
}

/// The pieces of a text one by one. It can start inside a string or a
/// comment, where an earlier text left off ([`Completion`]).
struct Lexer<'a> {
    text: &'a str,
    i: usize,
    /// The state at `i`.
    inside: Inside,
    /// Where to lex again once more text is appended, when the text ends
    /// inside a string or a block comment.
    resume: usize,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str) -> Self {
        Lexer::resume(text, 0, Inside::Code)
    }

    fn resume(text: &'a str, i: usize, inside: Inside) -> Self {
        Lexer {
            text,
            i,
            inside,
            resume: i,
        }
    }

    /// Up to the closing quote, from inside a string or quoted name; a
    /// doubled quote is part of the text.
    fn quoted(&mut self, quote: u8) -> Lexeme {
        let bytes = self.text.as_bytes();
        loop {
            match bytes.get(self.i) {
                None => {
                    self.inside = Inside::Quote(quote);
                    self.resume = self.i;
                    break;
                }
                Some(&q) if q == quote && bytes.get(self.i + 1) == Some(&quote) => self.i += 2,
                Some(&q) if q == quote => {
                    self.i += 1;
                    break;
                }
                Some(_) => self.i += 1,
            }
        }
        if quote == b'\'' {
            Lexeme::String
        } else {
            Lexeme::QuotedName
        }
    }

    /// Up to the end of a block comment, from inside it.
    fn block_comment(&mut self) -> Lexeme {
        let from = self.i;
        match self.text[from..].find("*/") {
            Some(n) => self.i = from + n + 2,
            None => {
                self.i = self.text.len();
                self.inside = Inside::BlockComment;
                // A last `*` may begin the `*/` still to come.
                self.resume = if self.text.ends_with('*') && self.i > from {
                    self.i - 1
                } else {
                    self.i
                };
            }
        }
        Lexeme::BlockComment
    }
}

impl Iterator for Lexer<'_> {
    type Item = Piece;

    fn next(&mut self) -> Option<Piece> {
        let text = self.text;
        let bytes = text.as_bytes();
        let start = self.i;
        if start >= bytes.len() {
            return None;
        }
        let b = bytes[start];
        let next = bytes.get(start + 1).copied();
        let kind = match std::mem::take(&mut self.inside) {
            Inside::Quote(quote) => self.quoted(quote),
            Inside::BlockComment => self.block_comment(),
            Inside::Code => match b {
                b'\'' | b'"' => {
                    self.i += 1;
                    self.quoted(b)
                }
                b'-' if next == Some(b'-') => {
                    self.i = text[start..].find('\n').map_or(bytes.len(), |n| start + n);
                    Lexeme::LineComment
                }
                b'/' if next == Some(b'*') => {
                    self.i += 2;
                    self.block_comment()
                }
                b';' => {
                    self.i += 1;
                    Lexeme::Semicolon
                }
                b if b.is_ascii_whitespace() => {
                    while bytes.get(self.i).is_some_and(|b| b.is_ascii_whitespace()) {
                        self.i += 1;
                    }
                    Lexeme::Whitespace
                }
                _ => {
                    let c = text[start..].chars().next().expect("i is a char boundary");
                    if c.is_alphabetic() || c == '_' {
                        self.i = text[start..]
                            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                            .map_or(bytes.len(), |n| start + n);
                        Lexeme::Word
                    } else {
                        self.i += c.len_utf8();
                        Lexeme::Other
                    }
                }
            },
        };
        Some(Piece {
            kind,
            range: start..self.i,
        })
    }
}

/// The pieces of `text`, and whether it ends inside a string, a quoted
/// name or a block comment.
pub fn lex(text: &str) -> (Vec<Piece>, bool) {
    let mut lexer = Lexer::new(text);
    let pieces = lexer.by_ref().collect();
    (pieces, lexer.inside != Inside::Code)
}

/// True for pieces that are SQL, not whitespace or comments.
fn is_code(kind: Lexeme) -> bool {
    !matches!(
        kind,
        Lexeme::Whitespace | Lexeme::LineComment | Lexeme::BlockComment
    )
}

/// The statements of `text`, without their `;`. A last statement without
/// `;` is included.
pub fn split_statements(text: &str) -> Vec<String> {
    let mut statements = Vec::new();
    let mut start = 0;
    let mut code = false;
    for piece in Lexer::new(text) {
        if piece.kind == Lexeme::Semicolon {
            if code {
                statements.push(text[start..piece.range.start].trim().to_string());
            }
            start = piece.range.end;
            code = false;
        } else if is_code(piece.kind) {
            code = true;
        }
    }
    if code {
        statements.push(text[start..].trim().to_string());
    }
    statements
}

/// True when the text ends with a complete statement: its last code is a
/// top-level `;` (so nothing but whitespace and comments follows it).
pub fn is_complete(text: &str) -> bool {
    Completion::default().update(text)
}

/// Whether a text that only grows (a script read line by line) ends with a
/// complete statement, lexing each part of it once: lexing the whole text
/// again at every line made a statement of N lines cost N² (40,000 lines
/// of `+ 1` took 10 s).
#[derive(Clone, Debug, Default)]
pub struct Completion {
    /// Where lexing starts next time: the start of the last piece, which
    /// more text may still extend, or inside an open string or comment.
    resume: usize,
    inside: Inside,
    /// The text before `resume` has a `;` with no code after it.
    ended: bool,
}

impl Completion {
    /// Whether `text` ends with a complete statement. `text` is the text
    /// of the last call (if any) with more appended.
    pub fn update(&mut self, text: &str) -> bool {
        let ends = |ended: bool, kind: Lexeme| match kind {
            Lexeme::Semicolon => true,
            kind if is_code(kind) => false,
            _ => ended,
        };
        let mut lexer = Lexer::resume(text, self.resume, self.inside);
        let mut last: Option<Piece> = None;
        for piece in lexer.by_ref() {
            if let Some(done) = last.replace(piece) {
                self.ended = ends(self.ended, done.kind);
            }
        }
        let Some(last) = last else {
            return self.inside == Inside::Code && self.ended;
        };
        if lexer.inside == Inside::Code {
            // Lex the last piece again, in the state it started in: the
            // first piece may go on from inside a string or comment.
            if last.range.start != self.resume {
                self.resume = last.range.start;
                self.inside = Inside::Code;
            }
            ends(self.ended, last.kind)
        } else {
            self.resume = lexer.resume;
            self.inside = lexer.inside;
            false
        }
    }

    /// Drops the part of `text` that is lexed for good (when a statement
    /// grows past what will run, to keep memory bounded) and returns how
    /// many bytes went.
    pub fn forget_done(&mut self, text: &mut String) -> usize {
        let done = self.resume;
        text.drain(..done);
        self.resume = 0;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_outside_quotes_and_comments() {
        let sql = "SELECT ';' AS a; -- x; y\nSELECT \"b;c\" FROM t /* ; */;\n\n  ";
        assert_eq!(
            split_statements(sql),
            ["SELECT ';' AS a", "-- x; y\nSELECT \"b;c\" FROM t /* ; */"]
        );
        assert_eq!(split_statements("SELECT 1"), ["SELECT 1"]);
        assert!(split_statements(" ; -- only a comment\n").is_empty());
    }

    #[test]
    fn doubled_quotes_stay_inside() {
        assert_eq!(
            split_statements("SELECT 'a;''b'; SELECT \"x\"\";\"\"y\" FROM t"),
            ["SELECT 'a;''b'", "SELECT \"x\"\";\"\"y\" FROM t"]
        );
    }

    #[test]
    fn completeness() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(is_complete("SELECT 1; /* done */"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT \"a;"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(!is_complete("SELECT 1 /* ; */"));
        assert!(!is_complete("SELECT 1; /* open"));
    }

    /// Completeness from all the pieces of the whole text at once.
    fn complete_from_pieces(text: &str) -> bool {
        let (pieces, open) = lex(text);
        !open
            && pieces
                .iter()
                .rposition(|p| p.kind == Lexeme::Semicolon)
                .is_some_and(|last| !pieces[last + 1..].iter().any(|p| is_code(p.kind)))
    }

    #[test]
    fn completion_grows_with_the_text_as_a_whole_lexing_says() {
        let texts = [
            "SELECT 'it''s; done'; -- x\n",
            "SELECT \"a\"\"b;\" FROM t;\n",
            "SELECT 1 /* a ** ; **/ ; /* open ; */\n",
            "SELECT 1 /*/ ; */ - - 1;\n",
            "SELECT 1; SELECT '';\n;;",
            "SELECT 1; -",
        ];
        for text in texts {
            // Every prefix fed in turn, at every byte: as the whole prefix.
            let mut completion = Completion::default();
            for end in 1..=text.len() {
                let prefix = &text[..end];
                assert_eq!(
                    completion.update(prefix),
                    complete_from_pieces(prefix),
                    "{prefix:?}"
                );
            }
            // And with what is done dropped after each byte.
            let mut completion = Completion::default();
            let mut kept = String::new();
            for (end, c) in text.char_indices().map(|(i, c)| (i + c.len_utf8(), c)) {
                kept.push(c);
                assert_eq!(
                    completion.update(&kept),
                    complete_from_pieces(&text[..end]),
                    "{:?}",
                    &text[..end]
                );
                completion.forget_done(&mut kept);
            }
        }
        assert!(is_complete("SELECT 'it''s; done'; -- x\n"));
        assert!(!is_complete("SELECT 1 /*/ ; */ - - 1"));
    }

    #[test]
    fn pieces_cover_the_text() {
        let text = "select \"it's\" -- c\n/* é */ x;'s'";
        let (pieces, open) = lex(text);
        assert!(!open);
        let kinds: Vec<(Lexeme, &str)> = pieces
            .iter()
            .map(|p| (p.kind, &text[p.range.clone()]))
            .collect();
        assert_eq!(
            kinds,
            [
                (Lexeme::Word, "select"),
                (Lexeme::Whitespace, " "),
                (Lexeme::QuotedName, "\"it's\""),
                (Lexeme::Whitespace, " "),
                (Lexeme::LineComment, "-- c"),
                (Lexeme::Whitespace, "\n"),
                (Lexeme::BlockComment, "/* é */"),
                (Lexeme::Whitespace, " "),
                (Lexeme::Word, "x"),
                (Lexeme::Semicolon, ";"),
                (Lexeme::String, "'s'"),
            ]
        );
    }
}
