//! The SQL shell (`auditlake shell`, or a bare `auditlake` on a terminal).
//! On a terminal it is a rustyline editor with history (Ctrl-R searches
//! it), completion, highlighting and multi-line statements, and results fit
//! the screen; otherwise it reads statements from stdin, `-c` or `-f`, so it
//! can be scripted. Knows nothing of archive formats: it talks to the
//! [`Engine`].

pub(crate) mod command;
mod explore;
pub(crate) mod helper;
mod last;
mod progress;
mod script;

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
use crate::engine::progress::PlanWatch;
use crate::print_format::{OutputFormat, PrintOptions, print_stream, terminal_width};
use command::{MetaCommand, help_text};
use helper::{ShellHelper, Vocabulary};
use last::LastResult;
use progress::{ClearOnOutput, Progress};
pub use script::Script;
use script::{Feed, Step};

/// Rows a result shows on a terminal unless `.maxrows` says otherwise.
pub const DEFAULT_MAX_ROWS: usize = 40;

/// What the shell is set to (the meta-commands change it).
struct Settings {
    format: OutputFormat,
    /// `None`: [`DEFAULT_MAX_ROWS`] on a terminal, every row elsewhere.
    max_rows: Option<Option<usize>>,
    /// `None`: the terminal's width.
    max_width: Option<usize>,
    /// `None`: types under the names when the table is fitted to a screen.
    types: Option<bool>,
    null: String,
    timer: bool,
    echo: bool,
    bail: bool,
}

/// The shell over one engine.
pub struct Shell {
    engine: Engine,
    queries: Vec<NamedQuery>,
    settings: Settings,
    output: Option<(PathBuf, File)>,
    /// After `.once`: where results go again once the next one is written.
    after_once: Option<Option<(PathBuf, File)>>,
    last: LastResult,
    /// How deep `.read` files are nested.
    depth: usize,
}

/// What a meta-command asks of the script or loop it is in.
enum Flow {
    Continue,
    Quit,
    /// Something inside failed and was reported (`.read`).
    Failed,
}

impl Shell {
    pub fn new(
        engine: Engine,
        queries: Vec<NamedQuery>,
        format: OutputFormat,
        max_rows: Option<usize>,
    ) -> Self {
        Shell {
            engine,
            queries,
            settings: Settings {
                format,
                max_rows: max_rows.map(Some),
                max_width: None,
                types: None,
                null: "NULL".to_string(),
                timer: false,
                echo: false,
                bail: false,
            },
            output: None,
            after_once: None,
            last: LastResult::default(),
            depth: 0,
        }
    }

    /// Runs the shell: the rc file first (when `init`), then `scripts` if
    /// any (each stops at its first error, and the shell exits after them),
    /// else the terminal or stdin. Returns false if something failed.
    pub async fn run(mut self, init: bool, scripts: Vec<Script>) -> anyhow::Result<bool> {
        if self.engine.is_empty() {
            eprintln!("note: {}", self.engine.empty_lake_message());
        }
        if init && let Some(rc) = script::rc_path().filter(|p| p.is_file()) {
            // Errors in the rc file are reported and the shell still starts.
            match self.run_file(&rc).await {
                Ok((Step::Quit, _)) => return Ok(true),
                Ok(_) => {}
                Err(e) => report(&e),
            }
            self.settings.bail = false;
        }
        if !scripts.is_empty() {
            self.settings.bail = true;
            for script in scripts {
                let text = match script.text() {
                    Ok(text) => text,
                    Err(e) => {
                        report(&e);
                        return Ok(false);
                    }
                };
                let mut feed = Feed::new(script.origin());
                let mut step = self.run_text(&mut feed, &text).await;
                if let Step::Continue = step {
                    step = self.finish_feed(&mut feed).await;
                }
                match step {
                    Step::Continue => {}
                    Step::Quit => return Ok(!feed.failed),
                    Step::Bail => return Ok(false),
                }
                if feed.failed {
                    return Ok(false);
                }
            }
            return Ok(true);
        }
        if std::io::stdin().is_terminal() {
            self.interactive().await?;
            Ok(true)
        } else {
            self.scripted().await
        }
    }

    /// Reads statements from a non-terminal stdin as they come, echoing
    /// nothing; every statement runs (unless `.bail on`), and the exit code
    /// says whether one failed.
    async fn scripted(&mut self) -> anyhow::Result<bool> {
        let mut feed = Feed::new(None);
        let stdin = std::io::stdin();
        for line in stdin.lock().lines() {
            let line = line.context("cannot read stdin")?;
            match self.feed_line(&mut feed, &line).await {
                Step::Continue => {}
                Step::Quit | Step::Bail => return Ok(!feed.failed),
            }
        }
        self.finish_feed(&mut feed).await;
        Ok(!feed.failed)
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
        tokio::select! {
            step = async {
                let mut feed = Feed::new(None);
                let step = self.run_text(&mut feed, input).await;
                match step {
                    Step::Continue | Step::Bail => self.finish_feed(&mut feed).await,
                    Step::Quit => Step::Quit,
                }
            } => match step {
                Step::Quit => Flow::Quit,
                Step::Continue | Step::Bail => Flow::Continue,
            },
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

    /// Runs one statement and prints its result where results go; a
    /// `.once` file takes this result only, whether it succeeds or fails.
    async fn execute(&mut self, sql: &str, params: Option<ParamValues>) -> anyhow::Result<()> {
        let result = self.execute_and_print(sql, params).await;
        self.end_once();
        result
    }

    /// Sends results back where they went before `.once`, if it was used.
    fn end_once(&mut self) {
        if let Some(previous) = self.after_once.take() {
            self.output = previous;
        }
    }

    async fn execute_and_print(
        &mut self,
        sql: &str,
        params: Option<ParamValues>,
    ) -> anyhow::Result<()> {
        let started = Instant::now();
        let options = self.print_options();
        let watch = PlanWatch::default();
        let progress = Progress::start(watch.clone());
        let stream = self.engine.execute_watched(sql, params, &watch).await?;
        let streams_rows = !matches!(
            options.format,
            OutputFormat::Table | OutputFormat::Box | OutputFormat::Markdown
        );
        let stream = ClearOnOutput::wrap(stream, progress, streams_rows);
        let stream = self.last.keep(stream);
        let printed = match &mut self.output {
            Some((_, file)) => print_stream(stream, &options, file).await?,
            None => {
                let mut stdout = std::io::stdout();
                print_stream(stream, &options, &mut stdout).await?
            }
        };
        if let Some(footer) = printed.footer() {
            self.note(&footer)?;
        }
        if self.settings.timer {
            self.note(&format!(
                "{} row{} in {}",
                printed.rows,
                if printed.rows == 1 { "" } else { "s" },
                elapsed(started.elapsed())
            ))?;
        }
        Ok(())
    }

    /// How the next result prints: fitted to the screen and cut at
    /// `.maxrows` on a terminal; whole into a file or a pipe (an explicit
    /// `.maxrows` or `.maxwidth` still applies to stdout).
    fn print_options(&self) -> PrintOptions {
        let s = &self.settings;
        let mut options = PrintOptions::whole(s.format);
        options.null = s.null.clone();
        if self.output.is_none() {
            let terminal = std::io::stdout().is_terminal();
            options.width = s
                .max_width
                .or_else(|| terminal.then(|| terminal_width().unwrap_or(80)));
            options.max_rows = match s.max_rows {
                Some(explicit) => explicit,
                None if terminal && s.format.is_for_reading() => Some(DEFAULT_MAX_ROWS),
                None => None,
            };
            options.color = terminal && std::env::var_os("NO_COLOR").is_none();
        }
        options.types = s.types.unwrap_or(options.width.is_some());
        options
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
        let s = &mut self.settings;
        match command {
            MetaCommand::Help => print!("{}", help_text()),
            MetaCommand::Quit => return Ok(Flow::Quit),
            MetaCommand::Tables => print!("{}", explore::tables(&self.engine).await?),
            MetaCommand::Schema(table) => {
                print!("{}", explore::schema(&self.engine, table.as_deref()).await?)
            }
            MetaCommand::Queries => print!("{}", describe_queries(&self.queries)),
            MetaCommand::Run { name, args } => {
                let query = find_named(&self.queries, &name)?;
                let params = query.bind(&args)?;
                let sql = query.sql.clone();
                self.execute(&sql, Some(params)).await?;
            }
            MetaCommand::Format(format) => s.format = format,
            MetaCommand::MaxRows(n) => s.max_rows = Some(n),
            MetaCommand::MaxWidth(n) => s.max_width = n,
            MetaCommand::Types(on) => s.types = Some(on),
            MetaCommand::NullValue(text) => s.null = text,
            MetaCommand::Timer(on) => {
                s.timer = on.unwrap_or(!s.timer);
                if on.is_none() {
                    println!("Timing is {}.", if s.timer { "on" } else { "off" });
                }
            }
            MetaCommand::Expanded(on) => {
                let expanded = on.unwrap_or(s.format != OutputFormat::Line);
                s.format = if expanded {
                    OutputFormat::Line
                } else {
                    OutputFormat::Table
                };
                if on.is_none() {
                    println!(
                        "Expanded display is {}.",
                        if expanded { "on" } else { "off" }
                    );
                }
            }
            MetaCommand::Echo(on) => s.echo = on,
            MetaCommand::Bail(on) => s.bail = on,
            MetaCommand::Last => {
                let printed = self.print_last().await;
                self.end_once();
                printed?
            }
            MetaCommand::Read(path) => match self.run_file(&path).await? {
                (Step::Quit, _) => return Ok(Flow::Quit),
                (Step::Bail, _) | (_, true) => return Ok(Flow::Failed),
                (Step::Continue, false) => {}
            },
            MetaCommand::Output(None) => {
                self.after_once = None;
                self.output = None;
            }
            MetaCommand::Output(Some(path)) => {
                let file = create_output(&path)?;
                self.after_once = None;
                self.output = Some((path, file));
            }
            MetaCommand::Once(path) => {
                let file = create_output(&path)?;
                let previous = self.output.replace((path, file));
                // A second `.once` before a result replaces the first.
                if self.after_once.is_none() {
                    self.after_once = Some(previous);
                }
            }
        }
        Ok(Flow::Continue)
    }

    /// `.last`: the previous result again, whole (every row, every column,
    /// no value cut), into `$PAGER` on a terminal when it is set.
    async fn print_last(&mut self) -> anyhow::Result<()> {
        let mut options = PrintOptions::whole(self.settings.format);
        options.null = self.settings.null.clone();
        options.types = self.settings.types.unwrap_or(false);
        let stream = self.last.replay()?;
        let pager = std::env::var("PAGER").ok().filter(|p| !p.trim().is_empty());
        match (&mut self.output, pager) {
            (Some((_, file)), _) => {
                print_stream(stream, &options, file).await?;
            }
            (None, Some(pager)) if std::io::stdout().is_terminal() => {
                let mut pager = last::Pager::start(&pager)?;
                let printed = print_stream(stream, &options, pager.input()).await;
                pager.wait(printed.map(|_| ()))?;
            }
            (None, _) => {
                print_stream(stream, &options, &mut std::io::stdout()).await?;
            }
        }
        Ok(())
    }
}

/// A file for `.output` or `.once`, created or emptied.
fn create_output(path: &std::path::Path) -> anyhow::Result<File> {
    File::create(path).with_context(|| format!("cannot create {}", path.display()))
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
