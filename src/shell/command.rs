//! The shell's meta-commands (lines starting with `.`).

use std::path::PathBuf;

use clap::ValueEnum;

use crate::engine::named::parse_param;
use crate::print_format::OutputFormat;

/// Usage and description of each meta-command (for `.help` and completion).
pub const META_COMMANDS: &[(&str, &str)] = &[
    (".help", "show this help"),
    (".tables", "list tables and views"),
    (
        ".schema [TABLE]",
        "columns of a table (all tables without an argument)",
    ),
    (".queries", "list the named queries"),
    (".run NAME key=value…", "run a named query"),
    (".format table|csv|json|ndjson|markdown", "output format"),
    (
        ".maxrows N",
        "rows shown per result in table and markdown output",
    ),
    (".timer on|off", "print how long each statement took"),
    (
        ".output FILE|stdout",
        "write results to a file, or back to stdout",
    ),
    (".quit", "leave the shell (also Ctrl-D)"),
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
    MaxRows(usize),
    Timer(bool),
    Output(Option<PathBuf>),
    Quit,
}

impl MetaCommand {
    /// Parses a `.command args` line; the error says what is expected.
    pub fn parse(line: &str) -> Result<MetaCommand, String> {
        let mut words = line.split_whitespace();
        let command = words.next().unwrap_or("");
        let args: Vec<&str> = words.collect();
        let usage = |u: &str| Err(format!("usage: {u}"));
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
            (".format", [f]) => match OutputFormat::from_str(f, true) {
                Ok(OutputFormat::Parquet) | Err(_) => {
                    usage(".format table|csv|json|ndjson|markdown")
                }
                Ok(format) => Ok(MetaCommand::Format(format)),
            },
            (".format", _) => usage(".format table|csv|json|ndjson|markdown"),
            (".maxrows", [n]) => match n.parse() {
                Ok(n) if n > 0 => Ok(MetaCommand::MaxRows(n)),
                _ => usage(".maxrows N (a positive number)"),
            },
            (".maxrows", _) => usage(".maxrows N"),
            (".timer", ["on"]) => Ok(MetaCommand::Timer(true)),
            (".timer", ["off"]) => Ok(MetaCommand::Timer(false)),
            (".timer", _) => usage(".timer on|off"),
            (".output", ["stdout"]) => Ok(MetaCommand::Output(None)),
            (".output", [file]) => Ok(MetaCommand::Output(Some(PathBuf::from(file)))),
            (".output", _) => usage(".output FILE|stdout"),
            (".quit" | ".exit" | ".q", []) => Ok(MetaCommand::Quit),
            _ => Err(format!(
                "unknown command {command:?}; .help lists the commands"
            )),
        }
    }
}

/// The text of `.help`.
pub fn help_text() -> String {
    let mut text = String::from(
        "Statements end with ';' and may span lines. Ctrl-C cancels a running query, Ctrl-D exits.\n",
    );
    for (usage, description) in META_COMMANDS {
        text.push_str(&format!("  {usage:<42} {description}\n"));
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
            Ok(MetaCommand::MaxRows(5))
        );
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
            MetaCommand::parse(".timer maybe"),
            Err("usage: .timer on|off".into())
        );
        assert_eq!(
            MetaCommand::parse(".nope"),
            Err("unknown command \".nope\"; .help lists the commands".into())
        );
    }
}
