//! Result output formats, shared by `query` and `shell`.
//!
//! csv, tsv, json, ndjson, line and parquet are written batch by batch as
//! the query produces them, so a large result never sits in memory; table,
//! box and markdown need every row shown for the column widths, and are cut
//! at `max_rows` when one is given. Table and box fit a terminal's width
//! (see [`grid`]); what goes to a file or a pipe is never cut.

mod ahead;
mod grid;
mod records;

use std::io::{IsTerminal, Write};

use clap::ValueEnum;
use comfy_table::presets::ASCII_MARKDOWN;
use comfy_table::{ContentArrangement, Table};
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::arrow::json::WriterBuilder;
use datafusion::arrow::json::writer::{JsonArray, LineDelimited};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::physical_plan::SendableRecordBatchStream;
use futures::StreamExt;

use grid::{ASCII, BOX, Cell, GridStyle, Heading};
use records::{LineWriter, write_tsv_row};

/// How results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// An ASCII grid, fitted to the terminal.
    Table,
    /// A Unicode box grid (DuckDB's duckbox), fitted to the terminal.
    Box,
    /// One `column = value` line per column, rows apart by an empty line.
    Line,
    Csv,
    /// Tab-separated, with `\t`, `\n` and `\\` escaped.
    Tsv,
    Json,
    Ndjson,
    Markdown,
    Parquet,
}

impl OutputFormat {
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Table => "table",
            OutputFormat::Box => "box",
            OutputFormat::Line => "line",
            OutputFormat::Csv => "csv",
            OutputFormat::Tsv => "tsv",
            OutputFormat::Json => "json",
            OutputFormat::Ndjson => "ndjson",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Parquet => "parquet",
        }
    }

    /// Binary formats must not go to a terminal.
    pub fn is_binary(self) -> bool {
        self == OutputFormat::Parquet
    }

    /// Formats that show a limited number of rows on a terminal.
    pub fn is_for_reading(self) -> bool {
        matches!(
            self,
            OutputFormat::Table | OutputFormat::Box | OutputFormat::Line | OutputFormat::Markdown
        )
    }
}

/// How a result is printed.
#[derive(Clone, Debug)]
pub struct PrintOptions {
    pub format: OutputFormat,
    /// Rows shown by table, box, line and markdown; the rest are counted.
    pub max_rows: Option<usize>,
    /// Screen columns table and box are fitted into; `None` never cuts.
    pub width: Option<usize>,
    /// A row of column types under the names (table and box).
    pub types: bool,
    /// How NULL is shown in table, box and line.
    pub null: String,
    /// Dim NULL in table and box (a colour terminal).
    pub color: bool,
}

impl PrintOptions {
    /// Everything, uncut: for files and pipes.
    pub fn whole(format: OutputFormat) -> Self {
        PrintOptions {
            format,
            max_rows: None,
            width: None,
            types: false,
            null: "NULL".to_string(),
            color: false,
        }
    }

    /// For stdout: fitted to the terminal when stdout is one (`query`).
    pub fn for_stdout(format: OutputFormat) -> Self {
        let mut options = PrintOptions::whole(format);
        if std::io::stdout().is_terminal() {
            options.width = terminal_width();
            options.types = true;
            options.color = std::env::var_os("NO_COLOR").is_none();
        }
        options
    }
}

/// The width of the terminal on stdout (else `$COLUMNS`), if there is one.
pub fn terminal_width() -> Option<usize> {
    terminal_size::terminal_size_of(std::io::stdout())
        .map(|(w, _)| usize::from(w.0))
        .filter(|&w| w > 0)
        .or_else(|| std::env::var("COLUMNS").ok()?.parse().ok())
}

/// How many rows and columns a result had, and how many were printed.
#[derive(Debug, Clone, Copy, Default)]
pub struct Printed {
    pub rows: usize,
    pub shown: usize,
    pub columns: usize,
    pub shown_columns: usize,
}

impl Printed {
    /// The line under a result that was cut, saying what is not shown.
    pub fn footer(&self) -> Option<String> {
        let plural = |n: usize, what: &str| format!("{n} {what}{}", if n == 1 { "" } else { "s" });
        let rows_cut = self.shown < self.rows;
        let columns_cut = self.shown_columns < self.columns;
        match (rows_cut, columns_cut) {
            (false, false) => None,
            (true, false) => Some(format!(
                "{} rows, showing the first {} (.maxrows to change)",
                self.rows, self.shown
            )),
            (false, true) => Some(format!(
                "{}, {} ({} shown)",
                plural(self.rows, "row"),
                plural(self.columns, "column"),
                self.shown_columns
            )),
            (true, true) => Some(format!(
                "{} rows ({} shown), {} ({} shown)",
                self.rows,
                self.shown,
                plural(self.columns, "column"),
                self.shown_columns
            )),
        }
    }
}

/// Writes a result stream as `options` say.
pub async fn print_stream(
    mut stream: SendableRecordBatchStream,
    options: &PrintOptions,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<Printed> {
    let schema = stream.schema();
    let mut printed = Printed {
        columns: schema.fields().len(),
        shown_columns: schema.fields().len(),
        ..Printed::default()
    };
    // A statement with no result (`SET`, DDL) prints nothing in any format,
    // as in psql and DuckDB, not an empty CSV header or JSON array.
    if schema.fields().is_empty() {
        while let Some(batch) = stream.next().await {
            batch?;
        }
        return Ok(printed);
    }
    let limit = options.max_rows.unwrap_or(usize::MAX);
    match options.format {
        OutputFormat::Table | OutputFormat::Box | OutputFormat::Markdown => {
            let mut kept = Vec::new();
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                let room = limit.saturating_sub(printed.shown);
                if room > 0 {
                    let take = room.min(batch.num_rows());
                    kept.push(batch.slice(0, take));
                    printed.shown += take;
                }
            }
            let text = if options.format == OutputFormat::Markdown {
                markdown_text(&schema, &kept)?
            } else {
                let style = GridStyle {
                    borders: if options.format == OutputFormat::Box {
                        &BOX
                    } else {
                        &ASCII
                    },
                    width: options.width,
                    types: options.types,
                    null: &options.null,
                    color: options.color,
                };
                let grid = grid::draw(&headings(&schema), &cells(&kept)?, &style);
                printed.shown_columns = grid.shown_columns;
                grid.text
            };
            if !text.is_empty() {
                writeln!(out, "{text}")?;
            }
        }
        OutputFormat::Line => {
            let mut writer =
                LineWriter::new(schema.fields().iter().map(|f| f.name().clone()).collect());
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                let room = limit.saturating_sub(printed.shown);
                let take = room.min(batch.num_rows());
                if take > 0 {
                    for row in cells(&[batch.slice(0, take)])? {
                        writer.write(out, &row, &options.null)?;
                    }
                    printed.shown += take;
                }
            }
        }
        OutputFormat::Tsv => {
            write_tsv_row(out, schema.fields().iter().map(|f| Some(f.name().as_str())))?;
            printed.rows = ahead::write_formatted(&mut stream, out, tsv_text)
                .await?
                .rows;
            printed.shown = printed.rows;
        }
        OutputFormat::Csv => {
            let written = ahead::write_formatted(&mut stream, out, csv_text).await?;
            if written.batches == 0 {
                // Still print the header of an empty result.
                out.write_all(&csv_text(&RecordBatch::new_empty(schema.clone()), true)?)?;
            }
            printed.rows = written.rows;
            printed.shown = printed.rows;
        }
        OutputFormat::Json => {
            // An empty result is `[]` (arrow writes the brackets on finish).
            printed.rows = write_json_array(&mut stream, out).await?;
            writeln!(out)?;
            printed.shown = printed.rows;
        }
        OutputFormat::Ndjson => {
            printed.rows = ahead::write_formatted(&mut stream, out, ndjson_text)
                .await?
                .rows;
            printed.shown = printed.rows;
        }
        OutputFormat::Parquet => {
            let mut writer = ArrowWriter::try_new(&mut *out, plain_schema(&schema), None)?;
            while let Some(batch) = stream.next().await {
                let batch = batch?;
                printed.rows += batch.num_rows();
                writer.write(&plain_strings(&batch)?)?;
            }
            writer.close()?;
            printed.shown = printed.rows;
        }
    }
    out.flush()?;
    Ok(printed)
}

/// `schema` with string views as plain `Utf8`: the engine reads text as
/// views, but a Parquet file handed to other readers says `STRING` and
/// nothing more in its Arrow schema, as the lake's own files do.
pub fn plain_schema(schema: &SchemaRef) -> SchemaRef {
    crate::table::retype_columns(schema, &DataType::Utf8View, &DataType::Utf8)
}

/// `batch` in [`plain_schema`].
pub fn plain_strings(batch: &RecordBatch) -> anyhow::Result<RecordBatch> {
    let schema = plain_schema(&batch.schema());
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(|(c, f)| datafusion::arrow::compute::cast(c, f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema, columns)?)
}

/// The headings of a grid: names, short SQL type names, and which columns
/// hold numbers.
fn headings(schema: &SchemaRef) -> Vec<Heading> {
    schema
        .fields()
        .iter()
        .map(|f| Heading {
            name: f.name().clone(),
            type_label: type_label(f.data_type()),
            numeric: f.data_type().is_numeric(),
            whole: f.data_type().is_numeric() || f.data_type().is_temporal(),
        })
        .collect()
}

/// The values of `batches` as text, row by row; NULL as `None`.
fn cells(batches: &[RecordBatch]) -> anyhow::Result<Vec<Vec<Cell>>> {
    let options = format_options();
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .map(|c| {
                Ok((
                    ArrayFormatter::try_new(c.as_ref(), &options)?,
                    c.logical_nulls(),
                ))
            })
            .collect::<Result<Vec<_>, datafusion::arrow::error::ArrowError>>()?;
        for row in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|(formatter, nulls)| {
                        if nulls.as_ref().is_some_and(|n| n.is_null(row)) {
                            None
                        } else {
                            Some(formatter.value(row).to_string())
                        }
                    })
                    .collect(),
            );
        }
    }
    Ok(rows)
}

/// A column type as SQL users read it (DuckDB's names), under the names
/// of a grid.
pub fn type_label(data_type: &DataType) -> String {
    use DataType::*;
    match data_type {
        Utf8 | LargeUtf8 | Utf8View => "varchar".into(),
        Boolean => "boolean".into(),
        Int8 => "tinyint".into(),
        Int16 => "smallint".into(),
        Int32 => "integer".into(),
        Int64 => "bigint".into(),
        UInt8 => "utinyint".into(),
        UInt16 => "usmallint".into(),
        UInt32 => "uinteger".into(),
        UInt64 => "ubigint".into(),
        Float16 | Float32 => "float".into(),
        Float64 => "double".into(),
        Decimal128(p, s) | Decimal256(p, s) => format!("decimal({p},{s})"),
        Date32 | Date64 => "date".into(),
        Timestamp(_, Some(_)) => "timestamptz".into(),
        Timestamp(_, None) => "timestamp".into(),
        Time32(_) | Time64(_) => "time".into(),
        Interval(_) => "interval".into(),
        Binary | LargeBinary | BinaryView | FixedSizeBinary(_) => "blob".into(),
        Dictionary(_, values) => type_label(values),
        List(f) | LargeList(f) | ListView(f) | LargeListView(f) | FixedSizeList(f, _) => {
            format!("{}[]", type_label(f.data_type()))
        }
        Struct(_) => "struct".into(),
        Map(..) => "map".into(),
        Null => "null".into(),
        other => other.to_string().to_lowercase(),
    }
}

/// Streams batches as one JSON array (its brackets and commas span the
/// batches, so it is written by one writer); returns the row count.
async fn write_json_array(
    stream: &mut SendableRecordBatchStream,
    out: &mut (dyn Write + Send),
) -> anyhow::Result<usize> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, JsonArray>(out);
    let mut rows = 0;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        rows += batch.num_rows();
        writer.write(&batch)?;
    }
    writer.finish()?;
    Ok(rows)
}

/// A batch as CSV, with the header line when it is the first.
fn csv_text(batch: &RecordBatch, first: bool) -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::new();
    datafusion::arrow::csv::WriterBuilder::new()
        .with_header(first)
        .with_timestamp_tz_format("%Y-%m-%dT%H:%M:%S%.fZ".to_string())
        .build(&mut text)
        .write(batch)?;
    Ok(text)
}

/// A batch as TSV lines (the header is written before the first).
fn tsv_text(batch: &RecordBatch, _first: bool) -> anyhow::Result<Vec<u8>> {
    let mut text = Vec::new();
    for row in cells(std::slice::from_ref(batch))? {
        write_tsv_row(&mut text, row.iter().map(|c| c.as_deref()))?;
    }
    Ok(text)
}

/// A batch as JSON lines.
fn ndjson_text(batch: &RecordBatch, _first: bool) -> anyhow::Result<Vec<u8>> {
    let mut writer = WriterBuilder::new()
        .with_explicit_nulls(true)
        .build::<_, LineDelimited>(Vec::new());
    writer.write(batch)?;
    writer.finish()?;
    Ok(writer.into_inner())
}

fn format_options() -> FormatOptions<'static> {
    FormatOptions::default().with_null("NULL")
}

fn markdown_text(schema: &SchemaRef, batches: &[RecordBatch]) -> anyhow::Result<String> {
    let mut table = Table::new();
    table.load_preset(ASCII_MARKDOWN);
    table.set_content_arrangement(ContentArrangement::Disabled);
    table.set_header(schema.fields().iter().map(|f| f.name().clone()));
    let options = format_options();
    for batch in batches {
        let formatters = batch
            .columns()
            .iter()
            .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<Result<Vec<_>, _>>()?;
        for row in 0..batch.num_rows() {
            table.add_row(
                formatters
                    .iter()
                    .map(|f| f.value(row).to_string().replace('|', "\\|")),
            );
        }
    }
    Ok(table.to_string())
}
