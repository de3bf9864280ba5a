//! Text run as if typed: stdin, `-c`, `-f`, `.read` and the rc file. Lines
//! starting with `.` or `\` (outside a statement) are meta-commands; the rest
//! are SQL, run statement by statement as each one completes.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;

use anyhow::Context;

use super::command::is_meta_line;
use super::{Flow, Shell, report};
use crate::engine::limits::{self, MAX_STATEMENT_BYTES};
use crate::statements::{Completion, split_statements};

/// `.read` files reading `.read` files stop this deep (a file that reads
/// itself would otherwise never end).
const MAX_DEPTH: usize = 16;

/// A script given on the command line.
#[derive(Debug, Clone)]
pub enum Script {
    /// `-c TEXT`
    Command(String),
    /// `-f FILE`
    File(PathBuf),
}

impl Script {
    pub(super) fn text(&self) -> anyhow::Result<String> {
        match self {
            Script::Command(text) => Ok(text.clone()),
            Script::File(path) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display())),
        }
    }

    /// The name errors are located by (files only; `-c` is one line).
    pub(super) fn origin(&self) -> Option<String> {
        match self {
            Script::Command(_) => None,
            Script::File(path) => Some(path.display().to_string()),
        }
    }
}

/// `$XDG_CONFIG_HOME/auditlake/shellrc`, else `~/.config/auditlake/shellrc`:
/// run when the shell starts, unless `-n`.
pub(super) fn rc_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("auditlake").join("shellrc"))
}

/// Running a file's lines: boxed, since `.read` inside it runs a file too.
pub(super) type FileRun<'a> = Pin<Box<dyn Future<Output = anyhow::Result<(Step, bool)>> + 'a>>;

/// Whether a script goes on.
pub(super) enum Step {
    Continue,
    /// `.quit`
    Quit,
    /// An error with `.bail on`.
    Bail,
}

/// Lines of one script as they arrive, and where its errors are.
pub(super) struct Feed {
    origin: Option<String>,
    buffer: String,
    /// Where the statement in `buffer` ends, lexed as lines arrive.
    completion: Completion,
    /// Bytes of a statement longer than the engine takes, dropped from the
    /// front of `buffer` so that memory stays bounded until its `;`.
    dropped: usize,
    line: usize,
    /// The line the statement in `buffer` starts on.
    start: usize,
    /// Whether anything failed.
    pub failed: bool,
}

impl Feed {
    pub fn new(origin: Option<String>) -> Feed {
        Feed {
            origin,
            buffer: String::new(),
            completion: Completion::default(),
            dropped: 0,
            line: 0,
            start: 0,
            failed: false,
        }
    }

    /// An error as the user sees it: `FILE:LINE: …` for a file.
    fn locate(&self, e: anyhow::Error, line: usize) -> anyhow::Error {
        match &self.origin {
            Some(origin) => e.context(format!("{origin}:{line}")),
            None => e,
        }
    }
}

impl Shell {
    /// Runs the lines of `path` (`.read`, the rc file) and tells whether
    /// they went on, quit or bailed, and whether any failed.
    pub(super) fn run_file<'a>(&'a mut self, path: &'a Path) -> FileRun<'a> {
        Box::pin(async move {
            if self.depth >= MAX_DEPTH {
                anyhow::bail!(
                    "{}: .read nested {MAX_DEPTH} deep (does a file read itself?)",
                    path.display()
                );
            }
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            self.depth += 1;
            let mut feed = Feed::new(Some(path.display().to_string()));
            let mut step = self.run_text(&mut feed, &text).await;
            if let Step::Continue = step {
                step = self.finish_feed(&mut feed).await;
            }
            self.depth -= 1;
            Ok((step, feed.failed))
        })
    }

    /// Feeds every line of `text`, stopping at `.quit` or a bail.
    pub(super) async fn run_text(&mut self, feed: &mut Feed, text: &str) -> Step {
        for line in text.lines() {
            match self.feed_line(feed, line).await {
                Step::Continue => {}
                stop => return stop,
            }
        }
        Step::Continue
    }

    /// Takes one line: a meta-command runs at once, SQL once its statement
    /// is complete.
    pub(super) async fn feed_line(&mut self, feed: &mut Feed, line: &str) -> Step {
        feed.line += 1;
        if feed.dropped == 0 && feed.buffer.trim().is_empty() {
            feed.buffer.clear();
            feed.completion = Completion::default();
            feed.start = feed.line;
            if is_meta_line(line) {
                return self.meta_line(feed, line.trim()).await;
            }
        }
        feed.buffer.push_str(line);
        feed.buffer.push('\n');
        let complete = feed.completion.update(&feed.buffer);
        // A statement still open past the limit will be refused: keep only
        // what its end may depend on (statements before it on its first
        // line go with it).
        if !complete && feed.dropped + feed.buffer.len() > MAX_STATEMENT_BYTES {
            feed.dropped += feed.completion.forget_done(&mut feed.buffer);
        }
        if complete {
            return self.take_statements(feed).await;
        }
        Step::Continue
    }

    /// Runs what is left when the script ends (a last statement without `;`).
    pub(super) async fn finish_feed(&mut self, feed: &mut Feed) -> Step {
        if feed.dropped == 0 && feed.buffer.trim().is_empty() {
            return Step::Continue;
        }
        self.take_statements(feed).await
    }

    /// Runs the statements in `feed`'s buffer, or refuses them when they
    /// were longer than the engine takes.
    async fn take_statements(&mut self, feed: &mut Feed) -> Step {
        let text = std::mem::take(&mut feed.buffer);
        feed.completion = Completion::default();
        let dropped = std::mem::take(&mut feed.dropped);
        if dropped == 0 {
            return self.run_statements(feed, &text).await;
        }
        let e = limits::too_long(dropped + text.len());
        report(&feed.locate(e, feed.start));
        self.failed(feed)
    }

    async fn meta_line(&mut self, feed: &mut Feed, line: &str) -> Step {
        if self.settings.echo {
            let _ = self.note(line);
        }
        match self.meta(line).await {
            Ok(Flow::Quit) => Step::Quit,
            Ok(Flow::Continue) => Step::Continue,
            Ok(Flow::Failed) => self.failed(feed),
            Err(e) => {
                report(&feed.locate(e, feed.line));
                self.failed(feed)
            }
        }
    }

    async fn run_statements(&mut self, feed: &mut Feed, text: &str) -> Step {
        for statement in split_statements(text) {
            if self.settings.echo {
                let _ = self.note(&format!("{statement};"));
            }
            if let Err(e) = self.execute(&statement, None).await {
                report(&feed.locate(e, feed.start));
                if let Step::Bail = self.failed(feed) {
                    return Step::Bail;
                }
            }
        }
        Step::Continue
    }

    fn failed(&self, feed: &mut Feed) -> Step {
        feed.failed = true;
        if self.settings.bail {
            Step::Bail
        } else {
            Step::Continue
        }
    }
}
