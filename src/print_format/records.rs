//! Formats written one row at a time: `line` (one `column = value` per line,
//! DuckDB's `.mode line` and psql's `\x`) and `tsv`.

use std::io::Write;

use unicode_width::UnicodeWidthStr;

use super::grid::Cell;

/// `line`: each row as `name = value` lines, the names right-aligned, rows
/// apart by an empty line. Values are written whole, as they are: this is
/// the way to read one long audit event.
pub(crate) struct LineWriter {
    names: Vec<String>,
    width: usize,
    rows: usize,
}

impl LineWriter {
    pub fn new(names: Vec<String>) -> Self {
        let width = names.iter().map(|n| n.width()).max().unwrap_or(0);
        LineWriter {
            names,
            width,
            rows: 0,
        }
    }

    pub fn write(&mut self, out: &mut dyn Write, row: &[Cell], null: &str) -> std::io::Result<()> {
        if self.rows > 0 {
            writeln!(out)?;
        }
        self.rows += 1;
        for (name, value) in self.names.iter().zip(row) {
            let pad = self.width - name.width();
            writeln!(
                out,
                "{:pad$}{name} = {}",
                "",
                value.as_deref().unwrap_or(null)
            )?;
        }
        Ok(())
    }
}

/// `tsv`: a header line of names, then one line per row, fields apart by a
/// tab. A tab, newline, carriage return or backslash in a value is written
/// `\t`, `\n`, `\r`, `\\` (PostgreSQL's text format), so a line is a row;
/// NULL is an empty field.
pub(crate) fn write_tsv_row<'a>(
    out: &mut dyn Write,
    fields: impl Iterator<Item = Option<&'a str>>,
) -> std::io::Result<()> {
    let mut line = String::new();
    for (i, field) in fields.enumerate() {
        if i > 0 {
            line.push('\t');
        }
        for c in field.unwrap_or("").chars() {
            match c {
                '\t' => line.push_str("\\t"),
                '\n' => line.push_str("\\n"),
                '\r' => line.push_str("\\r"),
                '\\' => line.push_str("\\\\"),
                c => line.push(c),
            }
        }
    }
    line.push('\n');
    out.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_records_align_names_and_keep_values_whole() {
        let mut writer = LineWriter::new(vec!["id".into(), "created_at".into(), "app".into()]);
        let mut out = Vec::new();
        let long = "d".repeat(300);
        writer
            .write(
                &mut out,
                &[Some("e1".into()), Some("2024-03-01".into()), None],
                "NULL",
            )
            .unwrap();
        writer
            .write(
                &mut out,
                &[Some("e2".into()), Some(long.clone()), None],
                "∅",
            )
            .unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!(
                "        id = e1\ncreated_at = 2024-03-01\n       app = NULL\n\n        id = e2\ncreated_at = {long}\n       app = ∅\n"
            )
        );
    }

    #[test]
    fn tsv_escapes_what_would_break_a_line() {
        let mut out = Vec::new();
        write_tsv_row(&mut out, [Some("a\tb"), None, Some("c\\d\ne")].into_iter()).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), "a\\tb\t\tc\\\\d\\ne\n");
    }
}
