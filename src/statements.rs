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

/// The pieces of `text`, and whether it ends inside a string, a quoted
/// name or a block comment.
pub fn lex(text: &str) -> (Vec<Piece>, bool) {
    let bytes = text.as_bytes();
    let mut pieces = Vec::new();
    let mut open = false;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        let kind = match b {
            b'\'' | b'"' => {
                // Up to the closing quote; a doubled quote is part of the text.
                i += 1;
                loop {
                    match bytes.get(i) {
                        None => {
                            open = true;
                            break;
                        }
                        Some(&q) if q == b && bytes.get(i + 1) == Some(&b) => i += 2,
                        Some(&q) if q == b => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                if b == b'\'' {
                    Lexeme::String
                } else {
                    Lexeme::QuotedName
                }
            }
            b'-' if next == Some(b'-') => {
                i = text[i..].find('\n').map_or(bytes.len(), |n| i + n);
                Lexeme::LineComment
            }
            b'/' if next == Some(b'*') => {
                match text[i + 2..].find("*/") {
                    Some(n) => i += 2 + n + 2,
                    None => {
                        i = bytes.len();
                        open = true;
                    }
                }
                Lexeme::BlockComment
            }
            b';' => {
                i += 1;
                Lexeme::Semicolon
            }
            b if b.is_ascii_whitespace() => {
                while bytes.get(i).is_some_and(|b| b.is_ascii_whitespace()) {
                    i += 1;
                }
                Lexeme::Whitespace
            }
            _ => {
                let c = text[i..].chars().next().expect("i is a char boundary");
                if c.is_alphabetic() || c == '_' {
                    let end = text[i..]
                        .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                        .map_or(bytes.len(), |n| i + n);
                    i = end;
                    Lexeme::Word
                } else {
                    i += c.len_utf8();
                    Lexeme::Other
                }
            }
        };
        pieces.push(Piece {
            kind,
            range: start..i,
        });
    }
    (pieces, open)
}

/// True when `pieces` hold SQL other than whitespace and comments.
fn has_code(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| {
        !matches!(
            p.kind,
            Lexeme::Whitespace | Lexeme::LineComment | Lexeme::BlockComment
        )
    })
}

/// The statements of `text`, without their `;`. A last statement without
/// `;` is included.
pub fn split_statements(text: &str) -> Vec<String> {
    let (pieces, _) = lex(text);
    pieces
        .split(|p| p.kind == Lexeme::Semicolon)
        .filter(|statement| has_code(statement))
        .map(|statement| {
            let range = statement[0].range.start..statement[statement.len() - 1].range.end;
            text[range].trim().to_string()
        })
        .collect()
}

/// True when the text ends with a complete statement: its last code is a
/// top-level `;` (so nothing but whitespace and comments follows it).
pub fn is_complete(text: &str) -> bool {
    let (pieces, open) = lex(text);
    if open {
        return false;
    }
    match pieces.iter().rposition(|p| p.kind == Lexeme::Semicolon) {
        Some(last) => !has_code(&pieces[last + 1..]),
        None => false,
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
