//! rustyline helper: completion of SQL keywords, table and column names,
//! meta-commands (psql's too), named queries and file paths (inside a `'…'`
//! string, and after `.read`, `.output`, `\i` and `\o`); keyword
//! highlighting; multi-line statements (Enter inserts a newline until the
//! statement ends with `;`).

use std::borrow::Cow;

use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter};
use rustyline::hint::Hinter;
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::command::{FORMAT_NAMES, META_COMMANDS, PSQL_COMMANDS, is_meta_line};
use crate::statements::{Lexeme, is_complete, lex};

/// SQL keywords offered for completion and highlighted.
const KEYWORDS: &[&str] = &[
    "SELECT",
    "FROM",
    "WHERE",
    "GROUP",
    "BY",
    "ORDER",
    "HAVING",
    "LIMIT",
    "OFFSET",
    "AS",
    "AND",
    "OR",
    "NOT",
    "IN",
    "IS",
    "NULL",
    "LIKE",
    "ILIKE",
    "BETWEEN",
    "CASE",
    "WHEN",
    "THEN",
    "ELSE",
    "END",
    "DISTINCT",
    "COUNT",
    "SUM",
    "MIN",
    "MAX",
    "AVG",
    "JOIN",
    "LEFT",
    "RIGHT",
    "INNER",
    "OUTER",
    "FULL",
    "ON",
    "USING",
    "UNION",
    "ALL",
    "WITH",
    "ASC",
    "DESC",
    "NULLS",
    "FIRST",
    "LAST",
    "CAST",
    "INTERVAL",
    "TIMESTAMP",
    "DATE",
    "EXPLAIN",
    "ANALYZE",
    "SHOW",
    "TABLES",
    "COLUMNS",
    "DESCRIBE",
    "OVER",
    "PARTITION",
    "DATE_TRUNC",
    "DATE_PART",
    "COALESCE",
    "TRUE",
    "FALSE",
    "EXISTS",
    "VALUES",
    "COPY",
    "TO",
    "JSON_GET_STR",
    "JSON_CONTAINS",
    "JSON_GET",
    "TO_TIMESTAMP",
    "NOW",
];

/// Names the shell knows about, refreshed when the lake is opened.
#[derive(Default, Clone)]
pub struct Vocabulary {
    pub tables: Vec<String>,
    pub columns: Vec<String>,
    pub queries: Vec<String>,
}

#[derive(Helper)]
pub struct ShellHelper {
    pub vocabulary: Vocabulary,
    pub color: bool,
}

impl Completer for ShellHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        let before = &line[..pos];
        if let Some(typed) = path_being_typed(before) {
            return Ok((pos - typed.len(), complete_path(typed)));
        }
        let trimmed = before.trim_start();
        let start = if trimmed.starts_with('\\') && !trimmed.contains(' ') {
            pos - trimmed.len()
        } else {
            before
                .rfind(|c: char| !(c.is_alphanumeric() || c == '_' || c == '.' || c == '-'))
                .map_or(0, |i| i + 1)
        };
        let word = &before[start..];
        let mut candidates: Vec<String> = Vec::new();
        if trimmed.starts_with('\\') && !trimmed.contains(' ') {
            candidates.extend(psql_command_names());
        } else if trimmed.starts_with("\\d ") || trimmed.starts_with("\\d+ ") {
            candidates.extend(self.vocabulary.tables.iter().cloned());
        } else if trimmed.starts_with('\\') {
            return Ok((pos, Vec::new()));
        } else if trimmed.starts_with('.') && !trimmed.contains(' ') {
            candidates.extend(
                META_COMMANDS
                    .iter()
                    .map(|(c, _)| c.split_whitespace().next().unwrap_or(c).to_string()),
            );
        } else if trimmed.starts_with(".run ") {
            candidates.extend(self.vocabulary.queries.iter().cloned());
        } else if trimmed.starts_with(".schema ") {
            candidates.extend(self.vocabulary.tables.iter().cloned());
        } else if trimmed.starts_with(".format ") || trimmed.starts_with(".mode ") {
            candidates.extend(FORMAT_NAMES.iter().map(|s| s.to_string()));
        } else if trimmed.starts_with('.') {
            return Ok((pos, Vec::new()));
        } else {
            let lower = word.chars().next().is_some_and(|c| c.is_lowercase());
            candidates.extend(KEYWORDS.iter().map(|k| {
                if lower {
                    k.to_lowercase()
                } else {
                    k.to_string()
                }
            }));
            candidates.extend(self.vocabulary.tables.iter().cloned());
            candidates.extend(self.vocabulary.columns.iter().cloned());
        }
        if word.is_empty() && !is_meta_line(trimmed) {
            return Ok((pos, Vec::new()));
        }
        let needle = word.to_lowercase();
        let mut matches: Vec<Pair> = candidates
            .into_iter()
            .filter(|c| c.to_lowercase().starts_with(&needle))
            .map(|c| Pair {
                display: c.clone(),
                replacement: c,
            })
            .collect();
        matches.sort_by(|a, b| a.display.cmp(&b.display));
        matches.dedup_by(|a, b| a.display == b.display);
        Ok((start, matches))
    }
}

/// The names of the psql commands (`\d`, `\timing`, …), as typed.
fn psql_command_names() -> impl Iterator<Item = String> {
    PSQL_COMMANDS.iter().flat_map(|(usage, _)| {
        usage
            .split(", ")
            .filter_map(|u| u.split_whitespace().next())
            .map(str::to_string)
    })
}

/// The path typed so far, when the cursor is in one: inside an unclosed
/// `'…'` string of SQL (`COPY … TO '`, `read_parquet('`), or the argument
/// of `.read` and `.output`.
fn path_being_typed(before: &str) -> Option<&str> {
    let trimmed = before.trim_start();
    for command in [".read ", ".output ", "\\i ", "\\o "] {
        if let Some(rest) = trimmed.strip_prefix(command) {
            return Some(rest.trim_start().trim_start_matches(['\'', '"']));
        }
    }
    if is_meta_line(trimmed) {
        return None;
    }
    let (pieces, open) = lex(before);
    let last = pieces.last()?;
    (open && last.kind == Lexeme::String).then(|| &before[last.range.start + 1..])
}

/// The entries of the typed path's directory that start as its last part
/// does; directories end in `/` so Tab goes on into them.
fn complete_path(typed: &str) -> Vec<Pair> {
    let (dir, prefix) = match typed.rfind('/') {
        Some(i) => (&typed[..=i], &typed[i + 1..]),
        None => ("", typed),
    };
    let Ok(entries) = std::fs::read_dir(if dir.is_empty() { "." } else { dir }) else {
        return Vec::new();
    };
    let mut matches: Vec<Pair> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            if !name.starts_with(prefix) || (name.starts_with('.') && !prefix.starts_with('.')) {
                return None;
            }
            let slash = if e.path().is_dir() { "/" } else { "" };
            Some(Pair {
                display: format!("{name}{slash}"),
                replacement: format!("{dir}{name}{slash}"),
            })
        })
        .collect();
    matches.sort_by(|a, b| a.display.cmp(&b.display));
    matches
}

impl Hinter for ShellHelper {
    type Hint = String;
}

impl Validator for ShellHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        let input = ctx.input();
        let trimmed = input.trim();
        if trimmed.is_empty() || is_meta_line(trimmed) || is_complete(input) {
            Ok(ValidationResult::Valid(None))
        } else {
            Ok(ValidationResult::Incomplete)
        }
    }
}

impl Highlighter for ShellHelper {
    fn highlight<'l>(&self, line: &'l str, _pos: usize) -> Cow<'l, str> {
        if !self.color || is_meta_line(line) {
            return Cow::Borrowed(line);
        }
        Cow::Owned(highlight_sql(line))
    }

    fn highlight_char(&self, _line: &str, _pos: usize, _kind: CmdKind) -> bool {
        self.color
    }
}

/// Keywords bold blue, strings green, comments grey, from the lexer that
/// splits statements (so a keyword inside a comment or a quoted name stays
/// plain).
fn highlight_sql(line: &str) -> String {
    const KEYWORD: &str = "\x1b[1;34m";
    const STRING: &str = "\x1b[32m";
    const COMMENT: &str = "\x1b[90m";
    const RESET: &str = "\x1b[0m";
    let mut out = String::with_capacity(line.len() + 16);
    for piece in lex(line).0 {
        let text = &line[piece.range];
        let colour = match piece.kind {
            Lexeme::Word if KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(text)) => KEYWORD,
            Lexeme::String => STRING,
            Lexeme::LineComment | Lexeme::BlockComment => COMMENT,
            _ => "",
        };
        if colour.is_empty() {
            out.push_str(text);
        } else {
            out.push_str(colour);
            out.push_str(text);
            out.push_str(RESET);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_completed_inside_strings_and_after_read() {
        assert_eq!(path_being_typed("COPY t TO 'out/x"), Some("out/x"));
        assert_eq!(path_being_typed("SELECT * FROM read_parquet('"), Some(""));
        assert_eq!(path_being_typed(".read queries/a"), Some("queries/a"));
        assert_eq!(path_being_typed("\\i queries/a"), Some("queries/a"));
        assert_eq!(path_being_typed("\\o 'out/r"), Some("out/r"));
        assert_eq!(path_being_typed("\\d her"), None);
        assert_eq!(path_being_typed("SELECT 'done' FROM t"), None);
        assert_eq!(path_being_typed("SELECT \"it's"), None);

        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("lake")).unwrap();
        std::fs::write(dir.path().join("late.sql"), "").unwrap();
        std::fs::write(dir.path().join("other"), "").unwrap();
        let typed = format!("{}/la", dir.path().display());
        let found: Vec<(String, String)> = complete_path(&typed)
            .into_iter()
            .map(|p| (p.display, p.replacement))
            .collect();
        let base = dir.path().display();
        assert_eq!(
            found,
            [
                ("lake/".to_string(), format!("{base}/lake/")),
                ("late.sql".to_string(), format!("{base}/late.sql")),
            ]
        );
    }

    #[test]
    fn psql_commands_are_offered_as_typed() {
        let names: Vec<String> = psql_command_names().collect();
        for name in [
            "\\q", "\\?", "\\d", "\\dt", "\\dv", "\\timing", "\\x", "\\i", "\\o",
        ] {
            assert!(names.iter().any(|n| n == name), "{name} in {names:?}");
        }
        assert!(
            names
                .iter()
                .all(|n| n.starts_with('\\') && !n.contains(' ')),
            "{names:?}"
        );
    }

    #[test]
    fn highlights_keywords_and_strings_only() {
        assert_eq!(
            highlight_sql("select app from t where x = 'from'"),
            "\x1b[1;34mselect\x1b[0m app \x1b[1;34mfrom\x1b[0m t \x1b[1;34mwhere\x1b[0m x = \x1b[32m'from'\x1b[0m"
        );
    }

    /// The highlighter and the splitter once disagreed on these: a keyword
    /// in a block comment or a quoted name was coloured, and a `'` inside a
    /// quoted name started a string.
    #[test]
    fn comments_and_quoted_names_are_not_code() {
        assert_eq!(
            highlight_sql("/* select */ select \"from\" from t"),
            "\x1b[90m/* select */\x1b[0m \x1b[1;34mselect\x1b[0m \"from\" \x1b[1;34mfrom\x1b[0m t"
        );
        assert_eq!(
            highlight_sql("select \"it's\", 'a''b' from t -- from"),
            "\x1b[1;34mselect\x1b[0m \"it's\", \x1b[32m'a''b'\x1b[0m \x1b[1;34mfrom\x1b[0m t \x1b[90m-- from\x1b[0m"
        );
    }
}
