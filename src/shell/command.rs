//! The shell's meta-commands: DuckDB's dot commands (lines starting with
//! `.`), and psql's backslash commands for the same things (`\q`, `\d`,
//! `\timing`, …), so either habit works. Either kind is a command only where
//! a statement would start.

use std::path::PathBuf;

use clap::ValueEnum;

use crate::engine::named::parse_param;
use crate::print_format::OutputFormat;

/// Usage and description of each meta-command (for `.help` and completion).
pub const META_COMMANDS: &[(&str, &str)] = &[
    (".help", "show this help"),
    (".tables", "tables and views, with their rows and months"),
    (
        ".schema [TABLE]",
        "columns of a table, their types and meaning (all tables without an argument)",
    ),
    (".queries", "list the named queries"),
    (".run NAME key=value…", "run a named query"),
    (
        ".format table|box|line|csv|tsv|json|ndjson|markdown",
        "output format (.mode is the same)",
    ),
    (
        ".maxrows N|all",
        "rows shown per result on a terminal (default 40)",
    ),
    (
        ".maxwidth N|auto",
        "width tables are fitted to (default: the terminal's)",
    ),
    (".types on|off", "column types under the names in tables"),
    (".nullvalue TEXT", "how NULL is shown (default NULL)"),
    (
        ".last",
        "print the previous result again in full (into $PAGER if set)",
    ),
    (".timer on|off", "print how long each statement took"),
    (".echo on|off", "print each statement before running it"),
    (".bail on|off", "stop a script at its first error"),
    (".read FILE", "run the statements and commands of FILE"),
    (
        ".output FILE|stdout",
        "write results to a file (never cut), or back to stdout",
    ),
    (".once FILE", "write the next result only to a file"),
    (".quit", "leave the shell (also Ctrl-D)"),
];

/// psql's backslash commands the shell understands, each the same as a dot
/// command (for `.help` and completion).
pub const PSQL_COMMANDS: &[(&str, &str)] = &[
    ("\\q", ".quit"),
    ("\\?", ".help"),
    ("\\d, \\dt, \\dv", ".tables"),
    ("\\d TABLE", ".schema TABLE"),
    ("\\timing [on|off]", ".timer (without on|off: switch it)"),
    (
        "\\x [on|off]",
        ".format line, or back to table (without on|off: switch it)",
    ),
    ("\\i FILE", ".read FILE"),
    ("\\o [FILE]", ".output FILE, or back to stdout"),
    (
        "\\pset format NAME",
        ".format NAME (psql's aligned and wrapped are table)",
    ),
    ("\\pset null TEXT", ".nullvalue TEXT"),
];

/// Whether `line`, where a statement would start, is a meta-command rather
/// than SQL: no statement starts with `.` or `\`.
pub fn is_meta_line(line: &str) -> bool {
    line.trim_start().starts_with(['.', '\\'])
}

/// What `.format` accepts, for its usage line and completion.
pub const FORMAT_NAMES: &[&str] = &[
    "table", "box", "line", "csv", "tsv", "json", "ndjson", "markdown",
];

#[derive(Debug, PartialEq)]
pub enum MetaCommand {
    Help,
    Tables,
    Schema(Option<String>),
    Queries,
    Run {
        name: String,
        args: Vec<(String, String)>,
    },
    Format(OutputFormat),
    /// `None`: every row.
    MaxRows(Option<usize>),
    /// `None`: the terminal's width.
    MaxWidth(Option<usize>),
    Types(bool),
    NullValue(String),
    Last,
    /// `None`: switch it (psql's `\timing`).
    Timer(Option<bool>),
    /// psql's `\x`: one line per value (`.format line`), or back to tables.
    /// `None`: switch it.
    Expanded(Option<bool>),
    Echo(bool),
    Bail(bool),
    Read(PathBuf),
    Output(Option<PathBuf>),
    /// The next result only into this file.
    Once(PathBuf),
    Quit,
}

impl MetaCommand {
    /// Parses a `.command args` or `\command args` line; the error says
    /// what is expected.
    pub fn parse(line: &str) -> Result<MetaCommand, String> {
        let line = line.trim();
        let (command, rest) = line
            .split_once(char::is_whitespace)
            .map_or((line, ""), |(c, r)| (c, r.trim()));
        let args: Vec<&str> = rest.split_whitespace().collect();
        if command.starts_with('\\') {
            return parse_psql(command, &args, rest);
        }
        let usage = |u: &str| Err(format!("usage: {u}"));
        let switch = |name: &str| match args.as_slice() {
            ["on"] => Ok(true),
            ["off"] => Ok(false),
            _ => Err(format!("usage: {name} on|off")),
        };
        match (command, args.as_slice()) {
            (".help", []) => Ok(MetaCommand::Help),
            (".tables", []) => Ok(MetaCommand::Tables),
            (".schema", []) => Ok(MetaCommand::Schema(None)),
            (".schema", [t]) => Ok(MetaCommand::Schema(Some(t.to_string()))),
            (".schema", _) => usage(".schema [TABLE]"),
            (".queries", []) => Ok(MetaCommand::Queries),
            (".run", [name, rest @ ..]) => Ok(MetaCommand::Run {
                name: name.to_string(),
                args: rest
                    .iter()
                    .map(|a| parse_param(a))
                    .collect::<Result<_, _>>()?,
            }),
            (".run", []) => usage(".run NAME key=value…"),
            (".format" | ".mode", [f]) => match format_named(f) {
                Some(format) => Ok(MetaCommand::Format(format)),
                None => Err(format!("usage: {command} {}", FORMAT_NAMES.join("|"))),
            },
            (".format" | ".mode", _) => Err(format!("usage: {command} {}", FORMAT_NAMES.join("|"))),
            (".maxrows", ["all"]) => Ok(MetaCommand::MaxRows(None)),
            (".maxrows", [n]) => match n.parse() {
                Ok(n) if n > 0 => Ok(MetaCommand::MaxRows(Some(n))),
                _ => usage(".maxrows N|all (N a positive number)"),
            },
            (".maxrows", _) => usage(".maxrows N|all"),
            (".maxwidth", ["auto"]) => Ok(MetaCommand::MaxWidth(None)),
            (".maxwidth", [n]) => match n.parse() {
                Ok(n) if n >= 20 => Ok(MetaCommand::MaxWidth(Some(n))),
                _ => usage(".maxwidth N|auto (N at least 20)"),
            },
            (".maxwidth", _) => usage(".maxwidth N|auto"),
            (".types", _) => switch(".types").map(MetaCommand::Types),
            (".nullvalue", [_, ..]) => Ok(MetaCommand::NullValue(unquote(rest).to_string())),
            (".nullvalue", []) => usage(".nullvalue TEXT"),
            (".last", []) => Ok(MetaCommand::Last),
            (".timer", _) => switch(".timer").map(|on| MetaCommand::Timer(Some(on))),
            (".echo", _) => switch(".echo").map(MetaCommand::Echo),
            (".bail", _) => switch(".bail").map(MetaCommand::Bail),
            (".read", [_, ..]) => Ok(MetaCommand::Read(PathBuf::from(unquote(rest)))),
            (".read", []) => usage(".read FILE"),
            (".output", ["stdout"]) => Ok(MetaCommand::Output(None)),
            (".output", [_, ..]) => Ok(MetaCommand::Output(Some(PathBuf::from(unquote(rest))))),
            (".output", _) => usage(".output FILE|stdout"),
            (".once", [_, ..]) => Ok(MetaCommand::Once(PathBuf::from(unquote(rest)))),
            (".once", []) => usage(".once FILE"),
            (".quit" | ".exit" | ".q", []) => Ok(MetaCommand::Quit),
            _ => Err(format!(
                "unknown command {command:?}; .help lists the commands"
            )),
        }
    }
}

/// psql's backslash commands, as the dot commands they stand for.
fn parse_psql(command: &str, args: &[&str], rest: &str) -> Result<MetaCommand, String> {
    let usage = |u: &str| Err(format!("usage: {u}"));
    let switch = |name: &str| match args {
        [] => Ok(None),
        ["on"] => Ok(Some(true)),
        ["off"] => Ok(Some(false)),
        _ => Err(format!("usage: {name} [on|off]")),
    };
    match (command, args) {
        ("\\q" | "\\quit", []) => Ok(MetaCommand::Quit),
        ("\\?", _) => Ok(MetaCommand::Help),
        ("\\d" | "\\d+" | "\\dt" | "\\dt+" | "\\dv" | "\\dv+", []) => Ok(MetaCommand::Tables),
        ("\\d" | "\\d+", [_, ..]) => Ok(MetaCommand::Schema(Some(unquote(rest).to_string()))),
        ("\\timing", _) => switch("\\timing").map(MetaCommand::Timer),
        ("\\x", _) => switch("\\x").map(MetaCommand::Expanded),
        ("\\i", [_, ..]) => Ok(MetaCommand::Read(PathBuf::from(unquote(rest)))),
        ("\\i", []) => usage("\\i FILE"),
        ("\\o", []) => Ok(MetaCommand::Output(None)),
        ("\\o", [_, ..]) => Ok(MetaCommand::Output(Some(PathBuf::from(unquote(rest))))),
        ("\\pset", ["format", name]) => {
            let name = match *name {
                "aligned" | "wrapped" => "table",
                other => other,
            };
            format_named(name)
                .map(MetaCommand::Format)
                .ok_or_else(|| format!("usage: \\pset format aligned|{}", FORMAT_NAMES.join("|")))
        }
        ("\\pset", ["null", _, ..]) => {
            let text = rest.strip_prefix("null").unwrap_or(rest).trim();
            Ok(MetaCommand::NullValue(unquote(text).to_string()))
        }
        ("\\pset", _) => usage("\\pset format NAME | \\pset null TEXT"),
        _ => Err(format!(
            "unknown command \"{command}\"; .help lists the commands (psql's among them)"
        )),
    }
}

/// A format by its name or by a DuckDB `.mode` name (`duckbox`, `tabs`,
/// `jsonlines`). Parquet is for `query --output` only.
fn format_named(name: &str) -> Option<OutputFormat> {
    let name = match name.to_ascii_lowercase().as_str() {
        "duckbox" => "box".to_string(),
        "tabs" => "tsv".to_string(),
        "jsonlines" => "ndjson".to_string(),
        other => other.to_string(),
    };
    match OutputFormat::from_str(&name, true) {
        Ok(OutputFormat::Parquet) | Err(_) => None,
        Ok(format) => Some(format),
    }
}

/// An argument without the quotes around it, if it has them.
fn unquote(text: &str) -> &str {
    for q in ['\'', '"'] {
        if text.len() >= 2 && text.starts_with(q) && text.ends_with(q) {
            return &text[1..text.len() - 1];
        }
    }
    text
}

/// The text of `.help`.
pub fn help_text() -> String {
    let mut text = String::from(
        "Statements end with ';' and may span lines. Ctrl-C cancels a running query, Ctrl-D exits.\n",
    );
    for (usage, description) in META_COMMANDS {
        text.push_str(&format!("  {usage:<52} {description}\n"));
    }
    text.push_str("psql's commands work too:\n");
    for (usage, same_as) in PSQL_COMMANDS {
        text.push_str(&format!("  {usage:<52} {same_as}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_commands_and_explains_mistakes() {
        assert_eq!(
            MetaCommand::parse(".format csv"),
            Ok(MetaCommand::Format(OutputFormat::Csv))
        );
        assert_eq!(
            MetaCommand::parse(".maxrows 5"),
            Ok(MetaCommand::MaxRows(Some(5)))
        );
        assert_eq!(
            MetaCommand::parse(".mode duckbox"),
            Ok(MetaCommand::Format(OutputFormat::Box))
        );
        assert_eq!(
            MetaCommand::parse(".mode tabs"),
            Ok(MetaCommand::Format(OutputFormat::Tsv))
        );
        assert_eq!(
            MetaCommand::parse(".format line"),
            Ok(MetaCommand::Format(OutputFormat::Line))
        );
        assert_eq!(
            MetaCommand::parse(".format parquet"),
            Err("usage: .format table|box|line|csv|tsv|json|ndjson|markdown".into())
        );
        assert_eq!(
            MetaCommand::parse(".nullvalue '(null)'"),
            Ok(MetaCommand::NullValue("(null)".into()))
        );
        assert_eq!(
            MetaCommand::parse(".read 'my queries/a.sql'"),
            Ok(MetaCommand::Read("my queries/a.sql".into()))
        );
        assert_eq!(
            MetaCommand::parse(".maxwidth 5"),
            Err("usage: .maxwidth N|auto (N at least 20)".into())
        );
        assert_eq!(MetaCommand::parse(".echo on"), Ok(MetaCommand::Echo(true)));
        assert_eq!(
            MetaCommand::parse(".run config-changes app=web month=2024-03"),
            Ok(MetaCommand::Run {
                name: "config-changes".into(),
                args: vec![
                    ("app".into(), "web".into()),
                    ("month".into(), "2024-03".into())
                ]
            })
        );
        assert_eq!(
            MetaCommand::parse(".output stdout"),
            Ok(MetaCommand::Output(None))
        );
        assert_eq!(
            MetaCommand::parse(".once 'march report.csv'"),
            Ok(MetaCommand::Once("march report.csv".into()))
        );
        assert_eq!(MetaCommand::parse(".once"), Err("usage: .once FILE".into()));
        assert_eq!(
            MetaCommand::parse(".timer maybe"),
            Err("usage: .timer on|off".into())
        );
        assert_eq!(
            MetaCommand::parse(".nope"),
            Err("unknown command \".nope\"; .help lists the commands".into())
        );
    }

    #[test]
    fn psql_commands_are_the_dot_commands() {
        let parsed = |line: &str| MetaCommand::parse(line);
        assert_eq!(parsed("\\q"), Ok(MetaCommand::Quit));
        assert_eq!(parsed("  \\?"), Ok(MetaCommand::Help));
        for tables in ["\\d", "\\dt", "\\dv", "\\d+", "\\dt+"] {
            assert_eq!(parsed(tables), Ok(MetaCommand::Tables), "{tables}");
        }
        assert_eq!(
            parsed("\\d heroku"),
            Ok(MetaCommand::Schema(Some("heroku".into())))
        );
        assert_eq!(
            parsed("\\d+ \"my events\""),
            Ok(MetaCommand::Schema(Some("my events".into())))
        );
        assert_eq!(parsed("\\timing"), Ok(MetaCommand::Timer(None)));
        assert_eq!(parsed("\\timing off"), Ok(MetaCommand::Timer(Some(false))));
        assert_eq!(parsed(".timer on"), Ok(MetaCommand::Timer(Some(true))));
        assert_eq!(
            parsed("\\timing maybe"),
            Err("usage: \\timing [on|off]".into())
        );
        assert_eq!(parsed("\\x"), Ok(MetaCommand::Expanded(None)));
        assert_eq!(parsed("\\x on"), Ok(MetaCommand::Expanded(Some(true))));
        assert_eq!(
            parsed("\\i 'my queries/a.sql'"),
            Ok(MetaCommand::Read("my queries/a.sql".into()))
        );
        assert_eq!(parsed("\\i"), Err("usage: \\i FILE".into()));
        assert_eq!(parsed("\\o"), Ok(MetaCommand::Output(None)));
        assert_eq!(
            parsed("\\o out.csv"),
            Ok(MetaCommand::Output(Some("out.csv".into())))
        );
        assert_eq!(
            parsed("\\pset format csv"),
            Ok(MetaCommand::Format(OutputFormat::Csv))
        );
        assert_eq!(
            parsed("\\pset format aligned"),
            Ok(MetaCommand::Format(OutputFormat::Table))
        );
        assert_eq!(
            parsed("\\pset null '(null)'"),
            Ok(MetaCommand::NullValue("(null)".into()))
        );
        assert_eq!(
            parsed("\\pset border 2"),
            Err("usage: \\pset format NAME | \\pset null TEXT".into())
        );
        assert_eq!(
            parsed("\\l"),
            Err("unknown command \"\\l\"; .help lists the commands (psql's among them)".into())
        );
        assert!(is_meta_line("  \\dt") && is_meta_line(".tables"));
        assert!(!is_meta_line("SELECT '\\d'"));
    }
}
