//! The interactive SQL shell (`auditlake shell`, or a bare `auditlake` on a
//! terminal). On a terminal it is a rustyline editor with history,
//! completion, highlighting and multi-line statements; otherwise it reads
//! statements from stdin and prints their results, so it can be scripted.
//! Knows nothing of archive formats: it talks to the [`Engine`].

pub(crate) mod command;
pub(crate) mod helper;

use std::fs::File;
use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use datafusion::common::ParamValues;
use rustyline::error::ReadlineError;
use rustyline::history::FileHistory;
use rustyline::{Config, Editor};

use crate::engine::Engine;
use crate::engine::named::{NamedQuery, describe_queries, find_named};
use crate::print_format::{OutputFormat, print_stream};
use crate::statements::{is_complete, split_statements};
use command::{MetaCommand, help_text};
use helper::{ShellHelper, Vocabulary};

/// What the shell is set to.
pub struct Shell {
    engine: Engine,
    queries: Vec<NamedQuery>,
    format: OutputFormat,
    max_rows: usize,
    timer: bool,
    output: Option<(PathBuf, File)>,
}

/// Whether the loop goes on.
enum Flow {
    Continue,
    Quit,
}

impl Shell {
    pub fn new(
        engine: Engine,
        queries: Vec<NamedQuery>,
        format: OutputFormat,
        max_rows: usize,
    ) -> Self {
        Shell {
            engine,
            queries,
            format,
            max_rows,
            timer: false,
            output: None,
        }
    }

    /// Runs the shell; returns false if a scripted run hit an error.
    pub async fn run(mut self) -> anyhow::Result<bool> {
        if self.engine.is_empty() {
            eprintln!("note: {}", self.engine.empty_lake_message());
        }
        if std::io::stdin().is_terminal() {
            self.interactive().await?;
            Ok(true)
        } else {
            self.scripted().await
        }
    }

    /// Reads statements from a non-terminal stdin, echoing nothing.
    async fn scripted(&mut self) -> anyhow::Result<bool> {
        let mut ok = true;
        let mut buffer = String::new();
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line.context("cannot read stdin")?;
            if buffer.trim().is_empty() && line.trim_start().starts_with('.') {
                match self.meta(line.trim()).await {
                    Ok(Flow::Quit) => return Ok(ok),
                    Ok(Flow::Continue) => {}
                    Err(e) => {
                        report(&e);
                        ok = false;
                    }
                }
                continue;
            }
            buffer.push_str(&line);
            buffer.push('\n');
            if is_complete(&buffer) {
                ok &= self.statements(&std::mem::take(&mut buffer)).await;
            }
        }
        if !buffer.trim().is_empty() {
            ok &= self.statements(&buffer).await;
        }
        Ok(ok)
    }

    async fn interactive(&mut self) -> anyhow::Result<()> {
        let config = Config::builder().auto_add_history(false).build();
        let mut editor: Editor<ShellHelper, FileHistory> = Editor::with_config(config)?;
        editor.set_helper(Some(ShellHelper {
            vocabulary: self.vocabulary().await,
            color: std::env::var_os("NO_COLOR").is_none(),
        }));
        let history = history_path();
        if let Some(path) = &history {
            let _ = editor.load_history(path);
        }
        println!(
            "auditlake {} — SQL over {}; .help for help, Ctrl-D to quit",
            env!("CARGO_PKG_VERSION"),
            self.engine.lake().location()
        );
        loop {
            match editor.readline("auditlake> ") {
                Ok(input) => {
                    if input.trim().is_empty() {
                        continue;
                    }
                    let _ = editor.add_history_entry(input.trim_end());
                    if let Some(path) = &history {
                        if let Some(dir) = path.parent() {
                            let _ = std::fs::create_dir_all(dir);
                        }
                        let _ = editor.save_history(path);
                    }
                    let flow = self.cancellable(&input).await;
                    if let Flow::Quit = flow {
                        break;
                    }
                }
                Err(ReadlineError::Interrupted) => continue,
                Err(ReadlineError::Eof) => break,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Runs one entry; Ctrl-C cancels it and returns to the prompt.
    async fn cancellable(&mut self, input: &str) -> Flow {
        let trimmed = input.trim();
        tokio::select! {
            flow = async {
                if trimmed.starts_with('.') {
                    match self.meta(trimmed).await {
                        Ok(flow) => flow,
                        Err(e) => { report(&e); Flow::Continue }
                    }
                } else {
                    self.statements(input).await;
                    Flow::Continue
                }
            } => flow,
            _ = tokio::signal::ctrl_c() => {
                eprintln!("^C query cancelled");
                Flow::Continue
            }
        }
    }

    async fn vocabulary(&self) -> Vocabulary {
        Vocabulary {
            tables: self.engine.relation_names(),
            columns: self.engine.all_column_names().await,
            queries: self.queries.iter().map(|q| q.name.clone()).collect(),
        }
    }

    /// Runs every statement of `text`; errors are printed and the rest still run.
    async fn statements(&mut self, text: &str) -> bool {
        let mut ok = true;
        for statement in split_statements(text) {
            if let Err(e) = self.execute(&statement, None).await {
                report(&e);
                ok = false;
            }
        }
        ok
    }

    async fn execute(&mut self, sql: &str, params: Option<ParamValues>) -> anyhow::Result<()> {
        let started = Instant::now();
        let stream = self.engine.execute(sql, params).await?;
        let max_rows = Some(self.max_rows);
        let format = self.format;
        let printed = match &mut self.output {
            Some((_, file)) => print_stream(stream, format, file, max_rows).await?,
            None => {
                let mut stdout = std::io::stdout();
                print_stream(stream, format, &mut stdout, max_rows).await?
            }
        };
        if printed.shown < printed.rows {
            self.note(&format!(
                "{} rows, showing the first {} (.maxrows to change)",
                printed.rows, printed.shown
            ))?;
        }
        if self.timer {
            self.note(&format!(
                "{} row{} in {}",
                printed.rows,
                if printed.rows == 1 { "" } else { "s" },
                elapsed(started.elapsed())
            ))?;
        }
        Ok(())
    }

    /// A line after a result, where the result went.
    fn note(&mut self, text: &str) -> anyhow::Result<()> {
        match &mut self.output {
            Some((_, file)) => writeln!(file, "{text}")?,
            None => println!("{text}"),
        }
        Ok(())
    }

    async fn meta(&mut self, line: &str) -> anyhow::Result<Flow> {
        let command = MetaCommand::parse(line).map_err(anyhow::Error::msg)?;
        match command {
            MetaCommand::Help => print!("{}", help_text()),
            MetaCommand::Quit => return Ok(Flow::Quit),
            MetaCommand::Tables => {
                for name in self.engine.relation_names() {
                    println!("{name}");
                }
            }
            MetaCommand::Schema(table) => {
                let names = match table {
                    Some(t) => vec![t],
                    None => self.engine.relation_names(),
                };
                for name in names {
                    let columns = self
                        .engine
                        .columns(&name)
                        .await
                        .with_context(|| format!("no table {name:?}; .tables lists them"))?;
                    println!("{name}");
                    for (column, ty, nullable) in columns {
                        println!(
                            "  {column:<26} {ty}{}",
                            if nullable { "" } else { " not null" }
                        );
                    }
                }
            }
            MetaCommand::Queries => print!("{}", describe_queries(&self.queries)),
            MetaCommand::Run { name, args } => {
                let query = find_named(&self.queries, &name)?;
                let params = query.bind(&args)?;
                let sql = query.sql.clone();
                self.execute(&sql, Some(params)).await?;
            }
            MetaCommand::Format(format) => self.format = format,
            MetaCommand::MaxRows(n) => self.max_rows = n,
            MetaCommand::Timer(on) => self.timer = on,
            MetaCommand::Output(None) => self.output = None,
            MetaCommand::Output(Some(path)) => {
                let file = File::create(&path)
                    .with_context(|| format!("cannot create {}", path.display()))?;
                self.output = Some((path, file));
            }
        }
        Ok(Flow::Continue)
    }
}

/// Prints an error on one line, as the commands do.
fn report(e: &anyhow::Error) {
    eprintln!("{}", crate::report::error_line(e));
}

/// `$XDG_STATE_HOME/auditlake/history`, else `~/.local/state/auditlake/history`.
fn history_path() -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    Some(state.join("auditlake").join("history"))
}

/// A query's time for `.timer`: milliseconds with a decimal under a second
/// (what interactive queries take, and what benchmarks parse), else seconds.
fn elapsed(d: std::time::Duration) -> String {
    if d.as_secs() == 0 {
        format!("{:.1} ms", d.as_secs_f64() * 1000.0)
    } else {
        format!("{:.3} s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::elapsed;
    use std::time::Duration;

    #[test]
    fn timer_shows_milliseconds_under_a_second() {
        assert_eq!(elapsed(Duration::from_micros(12_345)), "12.3 ms");
        assert_eq!(elapsed(Duration::from_micros(999_949)), "999.9 ms");
        assert_eq!(elapsed(Duration::from_millis(1_500)), "1.500 s");
    }
}
