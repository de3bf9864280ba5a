//! Splitting SQL text into statements: `;` ends a statement except inside
//! quotes and comments. Used by `query` (several statements in one text),
//! the scripted shell, and the interactive shell's "is this complete?" check.

/// Lexical state while scanning.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Code,
    Single,
    Double,
    LineComment,
    BlockComment,
}

/// Scans `text`, returning the byte offsets of top-level `;`s and whether
/// the text ends inside a quote or a block comment.
fn scan(text: &str) -> (Vec<usize>, bool) {
    let bytes = text.as_bytes();
    let mut state = State::Code;
    let mut ends = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        let next = bytes.get(i + 1).copied();
        match state {
            State::Code => match b {
                b'\'' => state = State::Single,
                b'"' => state = State::Double,
                b'-' if next == Some(b'-') => state = State::LineComment,
                b'/' if next == Some(b'*') => {
                    state = State::BlockComment;
                    i += 1;
                }
                b';' => ends.push(i),
                _ => {}
            },
            State::Single if b == b'\'' => state = State::Code,
            State::Double if b == b'"' => state = State::Code,
            State::LineComment if b == b'\n' => state = State::Code,
            State::BlockComment if b == b'*' && next == Some(b'/') => {
                state = State::Code;
                i += 1;
            }
            _ => {}
        }
        i += 1;
    }
    (
        ends,
        matches!(state, State::Single | State::Double | State::BlockComment),
    )
}

/// True when the text has SQL other than whitespace and comments.
fn has_code(text: &str) -> bool {
    let mut rest = text;
    loop {
        rest = rest.trim_start();
        if let Some(r) = rest.strip_prefix("--") {
            rest = r.split_once('\n').map_or("", |(_, after)| after);
        } else if let Some(r) = rest.strip_prefix("/*") {
            rest = r.split_once("*/").map_or("", |(_, after)| after);
        } else {
            return !rest.is_empty();
        }
    }
}

/// The statements of `text`, without their `;`. A last statement without
/// `;` is included.
pub fn split_statements(text: &str) -> Vec<String> {
    let (ends, _) = scan(text);
    let mut statements = Vec::new();
    let mut start = 0;
    for end in ends.into_iter().chain(std::iter::once(text.len())) {
        let piece = &text[start..end];
        if has_code(piece) {
            statements.push(piece.trim().to_string());
        }
        start = (end + 1).min(text.len());
    }
    statements
}

/// True when the text ends with a complete statement: its last code is a
/// top-level `;` (so nothing but whitespace and comments follows it).
pub fn is_complete(text: &str) -> bool {
    let (ends, open) = scan(text);
    if open {
        return false;
    }
    match ends.last() {
        Some(&last) => !has_code(&text[last + 1..]),
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
    fn completeness() {
        assert!(is_complete("SELECT 1;"));
        assert!(is_complete("SELECT 1; -- done"));
        assert!(!is_complete("SELECT 1"));
        assert!(!is_complete("SELECT ';"));
        assert!(!is_complete("SELECT 1; SELECT 2"));
        assert!(!is_complete("SELECT 1 /* ; */"));
    }
}
