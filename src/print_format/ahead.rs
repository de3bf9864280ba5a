//! Text formats are formatted on other threads, a few batches ahead, and
//! written in order.
//!
//! A query's last operator (a sort's merge, a limit) hands its batches to
//! the one thread that prints them, and formatting rows as text is slower
//! than producing them: the 657,700 destroyed resources of 12 × 1M events
//! took ~160 ms of CSV formatting after a scan of ~360 ms a core, all of it
//! on the printing thread while the other cores sat idle. Each batch is
//! formatted into bytes on tokio's blocking pool while the next one is
//! produced; the bytes are written in the order of the batches, so the
//! output is the same as one writer's.

use std::io::Write;

use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

/// A batch's text: `first` says whether it is the result's first batch
/// (the one that carries a header).
pub(super) type Formatter = fn(&RecordBatch, bool) -> anyhow::Result<Vec<u8>>;

/// Batches of fewer rows are formatted on the printing thread: handing a
/// batch to another thread and waking this one again costs more than
/// formatting a few hundred rows, and a short question's answer is one
/// such batch.
const FORMAT_HERE_ROWS: usize = 256;

/// The cores, looked up once: `available_parallelism` reads the cgroup's
/// CPU quota from `/sys` and `/proc` at every call, which `perf` put at
/// 3.6% of a footer-answered count run over and over in one shell.
fn cores() -> usize {
    static CORES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CORES.get_or_init(|| std::thread::available_parallelism().map_or(2, |n| n.get()))
}

/// What [`write_formatted`] wrote.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Written {
    pub rows: usize,
    /// Batches, empty ones included: the first carried the header.
    pub batches: usize,
}

/// Writes every batch of `stream` to `out` as `format` makes it, formatting
/// as many batches at once as there are cores.
pub(super) async fn write_formatted(
    stream: &mut SendableRecordBatchStream,
    out: &mut (dyn Write + Send),
    format: Formatter,
) -> anyhow::Result<Written> {
    let mut formatted = stream
        .enumerate()
        .map(|(i, batch)| async move {
            let batch = batch?;
            let rows = batch.num_rows();
            let bytes = if rows < FORMAT_HERE_ROWS {
                format(&batch, i == 0)?
            } else {
                tokio::task::spawn_blocking(move || format(&batch, i == 0)).await??
            };
            anyhow::Ok((rows, bytes))
        })
        .buffered(cores());
    let mut written = Written::default();
    while let Some(next) = formatted.next().await {
        let (rows, bytes) = next?;
        written.rows += rows;
        written.batches += 1;
        out.write_all(&bytes)?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::Int64Array;
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use datafusion::physical_plan::stream::RecordBatchStreamAdapter;

    use super::*;

    fn numbered(batch: &RecordBatch, first: bool) -> anyhow::Result<Vec<u8>> {
        // The later batches take longer, so any reordering would show.
        let values = batch
            .column(0)
            .as_any()
            .downcast_ref::<Int64Array>()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(
            (10 - values.value(0) as u64 % 10) * 2,
        ));
        let mut text = String::new();
        if first {
            text.push_str("n\n");
        }
        for v in values.iter().flatten() {
            text.push_str(&format!("{v}\n"));
        }
        Ok(text.into_bytes())
    }

    fn schema() -> Arc<Schema> {
        Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)]))
    }

    fn stream_of(items: Vec<datafusion::error::Result<RecordBatch>>) -> SendableRecordBatchStream {
        Box::pin(RecordBatchStreamAdapter::new(
            schema(),
            futures::stream::iter(items),
        ))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn batches_are_written_in_their_order_with_one_header() {
        // Batches large enough to be formatted on other threads.
        let n = FORMAT_HERE_ROWS as i64;
        let batches: Vec<_> = (0..10)
            .map(|b| {
                RecordBatch::try_new(
                    schema(),
                    vec![Arc::new(Int64Array::from_iter_values(b * n..b * n + n))],
                )
                .map_err(Into::into)
            })
            .collect();
        let mut stream = stream_of(batches);
        let mut out = Vec::new();
        let written = write_formatted(&mut stream, &mut out, numbered)
            .await
            .unwrap();
        assert_eq!(
            written,
            Written {
                rows: 10 * FORMAT_HERE_ROWS,
                batches: 10
            }
        );
        let expected: String = std::iter::once("n\n".to_string())
            .chain((0..10 * n).map(|v| format!("{v}\n")))
            .collect();
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    static FORMATTED_ON: std::sync::Mutex<Vec<(usize, std::thread::ThreadId)>> =
        std::sync::Mutex::new(Vec::new());

    fn note_thread(batch: &RecordBatch, _first: bool) -> anyhow::Result<Vec<u8>> {
        FORMATTED_ON
            .lock()
            .unwrap()
            .push((batch.num_rows(), std::thread::current().id()));
        Ok(Vec::new())
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn small_batches_are_formatted_here_and_large_ones_elsewhere() {
        let batch = |rows: usize| {
            RecordBatch::try_new(
                schema(),
                vec![Arc::new(Int64Array::from_iter_values(0..rows as i64))],
            )
            .map_err(Into::into)
        };
        let small = FORMAT_HERE_ROWS - 1;
        let mut stream = stream_of(vec![batch(small), batch(FORMAT_HERE_ROWS)]);
        write_formatted(&mut stream, &mut Vec::new(), note_thread)
            .await
            .unwrap();
        let here = std::thread::current().id();
        let seen = FORMATTED_ON.lock().unwrap().clone();
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0], (small, here));
        assert_eq!(seen[1].0, FORMAT_HERE_ROWS);
        assert_ne!(
            seen[1].1, here,
            "a large batch is formatted on the blocking pool"
        );
    }

    #[tokio::test]
    async fn an_error_in_the_stream_ends_the_output_after_the_batches_before_it() {
        let first =
            RecordBatch::try_new(schema(), vec![Arc::new(Int64Array::from(vec![7]))]).unwrap();
        let items = vec![
            Ok(first),
            Err(datafusion::error::DataFusionError::Execution(
                "the archive broke".into(),
            )),
        ];
        let mut stream = stream_of(items);
        let mut out = Vec::new();
        let err = write_formatted(&mut stream, &mut out, numbered)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("the archive broke"), "{err}");
        assert_eq!(String::from_utf8(out).unwrap(), "n\n7\n");
    }
}
