//! The previous result, kept for `.last`: its batches as they streamed past
//! (cheap clones of the same buffers), up to [`MAX_BYTES`].

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use anyhow::{Context, bail};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::StreamExt;

/// A result larger than this is not kept: `.last` says so instead of
/// holding a whole table in memory.
const MAX_BYTES: usize = 256 << 20;

#[derive(Default)]
struct Kept {
    schema: Option<SchemaRef>,
    batches: Vec<RecordBatch>,
    bytes: usize,
    too_large: bool,
}

/// The last result of the session.
#[derive(Default)]
pub(super) struct LastResult(Arc<Mutex<Kept>>);

impl LastResult {
    /// Forgets the previous result and keeps the batches of `stream` as
    /// they pass.
    pub fn keep(&mut self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let schema = stream.schema();
        let kept = Arc::new(Mutex::new(Kept {
            schema: Some(schema.clone()),
            ..Kept::default()
        }));
        self.0 = kept.clone();
        let teed = stream.inspect(move |batch| {
            let Ok(batch) = batch else { return };
            let mut kept = kept.lock().unwrap_or_else(|e| e.into_inner());
            if kept.too_large {
                return;
            }
            kept.bytes += batch.get_array_memory_size();
            if kept.bytes > MAX_BYTES {
                kept.too_large = true;
                kept.batches.clear();
            } else {
                kept.batches.push(batch.clone());
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, teed))
    }

    /// The kept result as a stream, to print again.
    pub fn replay(&self) -> anyhow::Result<SendableRecordBatchStream> {
        let kept = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let Some(schema) = kept.schema.clone() else {
            bail!("no result yet: .last prints the previous statement's result again");
        };
        if kept.too_large {
            bail!(
                "the last result was over {} MiB and was not kept; run it again with .output FILE",
                MAX_BYTES >> 20
            );
        }
        let batches: Vec<_> = kept.batches.iter().cloned().map(Ok).collect();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter(batches),
        )))
    }
}

/// `$PAGER`, run by the shell as git and psql do, reading what `.last`
/// prints on its stdin.
pub(super) struct Pager {
    child: Child,
    input: Option<std::process::ChildStdin>,
}

impl Pager {
    pub fn start(command: &str) -> anyhow::Result<Pager> {
        let mut child = Command::new("sh")
            .args(["-c", command])
            .stdin(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start the pager {command:?} ($PAGER)"))?;
        let input = child.stdin.take();
        Ok(Pager { child, input })
    }

    pub fn input(&mut self) -> &mut (dyn Write + Send) {
        self.input
            .as_mut()
            .expect("the pager's input is open until wait")
    }

    /// Closes the pager's input and waits for the user to leave it. A pager
    /// quit before the end (a broken pipe) is not an error.
    pub fn wait(mut self, printed: anyhow::Result<()>) -> anyhow::Result<()> {
        drop(self.input.take());
        let _ = self.child.wait();
        match printed {
            Err(e)
                if e.chain().any(|c| {
                    c.downcast_ref::<std::io::Error>()
                        .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
                }) =>
            {
                Ok(())
            }
            other => other,
        }
    }
}
