//! How data files are written: settings chosen for fast, selective reads.

use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::basic::{Compression, Encoding, ZstdLevel};
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::ColumnPath;

use crate::table::TableSpec;

/// Rows per row group: a 200k-event month is one row group (one dictionary
/// and bloom filter per column), a 1M-event month four, so statistics and
/// bloom filters still skip most of a large month before the page index
/// narrows it further.
pub const ROW_GROUP_ROWS: usize = 256 * 1024;

/// Rows per data page: the unit the page index skips and zstd decompresses.
/// The default (about 1 MB of text, ~25k rows) made the headline query
/// decompress pages of 25k rows to return 1.4k (12 ms on the 1.2M-event
/// lake, against 5-8 ms at 2048 rows). Each page also costs a header, an
/// offset and column index entry and a fresh zstd frame, about 100 bytes a
/// column: on a 200k-event month 6144 rows instead of 2048 save 2% of the
/// file, and the headline query decodes ~0.1 ms more (3.3 ms in all).
pub const PAGE_ROWS: usize = 6144;

/// Bytes of a data page of the event id (PLAIN, 40 bytes an id). The
/// writer cuts its batches of ids to this budget and closes a page once it
/// is full, so a page holds 410-614 ids. A query that keeps scattered rows
/// (one IP's events; one hour across all apps, a few rows in each app's
/// and type's run) decompresses every page holding one of them, and ids are
/// more than half of a file's bytes: one IP's ~1,000 events of a 1M-event
/// month fall in about 40% of these pages, against every 6,144-row page.
/// Each page costs a header, an offset index entry and a zstd frame: `id`
/// is 1.3% larger (19.50 -> 19.75 MB on a 1M-event month). Pages of 8 KiB
/// made the lake 0.7% larger again and an actor's quarter, whose rows are
/// in every page anyway, slower.
pub const KEY_PAGE_BYTES: usize = 16 * 1024;

/// Bytes of a data page of the time column (512 timestamps). Within each
/// app's and type's run of a month (~2,300 events of 1M), a page then spans
/// about a week instead of the whole month, so the page index narrows an
/// hour's window to a page or two a run, and scattered rows decompress
/// fewer timestamps. `created_at` is 7% larger (3.04 -> 3.26 MB on a
/// 1M-event month: shorter zstd frames, more column index entries).
pub const TIME_PAGE_BYTES: usize = 4 * 1024;

/// Distinct values a bloom filter is sized for (per row group) at a 1% false
/// positive rate; the writer then folds it down to the values it saw (a
/// month's ~50 apps take 80 bytes).
const BLOOM_NDV: u64 = 10_000;

/// zstd level of most columns: cheap enough that encoding keeps up with
/// parsing on the other core.
const ZSTD_LEVEL: i32 = 3;

/// zstd level of timestamps. They are stored PLAIN (8 bytes a value): the
/// smaller DELTA_BINARY_PACKED encoding is misread by fastparquet when the
/// values jump back between sort groups (pandas returned 1689 for 2024), and
/// the lake must read right in every common reader. zstd finds most of what
/// the deltas saved in the runs of equal high bytes. Each page is its own
/// frame of [`TIME_PAGE_BYTES`], and in frames that short a deeper match
/// search finds almost nothing more: on a month's `created_at` in file order
/// (`zstd -b -B4096`), level 2 gives 706.2 KB for 200k events and 3.229 MB
/// for 1M, level 7 700.4 KB and 3.225 MB (0.8% and 0.1% less), but level 2
/// compresses at ~195 MB/s and level 7 at ~35 (level 1: as fast as 2, and
/// larger). Both decompress at 650-750 MB/s.
const TIME_ZSTD_LEVEL: i32 = 2;

/// zstd level of JSON text without a dictionary (`data`, `extra`,
/// `resource_meta`, mapped `data`). Level 9 made `data` 14% smaller than
/// level 1 on the generator's small events, but its lazy match search was
/// 31% of convert's CPU on archives of larger events (~740 bytes of JSON
/// an event), where it saved only 6.5% of `data`: `zstd -b` compressed
/// that text at 30 MB/s at level 9 and 297 MB/s at level 1, which
/// decompresses as fast. Level 1 keeps convert's speed on any event mix;
/// the lake stays below DuckDB's in bytes on every mix measured.
const TEXT_ZSTD_LEVEL: i32 = 1;

/// zstd level of event ids. Random UUID text is near its entropy at any
/// level, but how fast it decompresses is not: level 1 keeps mostly
/// Huffman-coded literals, where level 3 and up find many short matches in
/// the length prefixes and dashes, each a sequence to decode. Decompressing
/// the id column is most of a query that projects `id` over scattered rows
/// or looks one up (63% of a point lookup's CPU at level 3).
const KEY_ZSTD_LEVEL: i32 = 1;

/// False-positive rate the event id's bloom filter is folded down to. Ids
/// are unique, so a filter costs bits per row: a 200k-event month (one row
/// group) folds to 128 KiB at about 0.14, a full row group of 262,144 ids
/// stays at 256 KiB (about 0.03). A lookup of one id then reads the id
/// column of the row groups that may hold it instead of every one.
const KEY_BLOOM_FPP: f64 = 0.15;

/// Version of the lake format this build writes (see LAKE.md), recorded in
/// every data file's footer under [`FORMAT_VERSION_KEY`] and in
/// `_auditlake/lake.json`.
pub const FORMAT_VERSION: u32 = 1;

/// Footer key/value entry naming the lake format version of a data file.
pub const FORMAT_VERSION_KEY: &str = "auditlake.format_version";

/// Footer key/value entry naming the table a data file belongs to.
pub const TABLE_KEY: &str = "auditlake.table";

/// The writer, as recorded in every footer's `created_by`, in the
/// `<application> version <version>` form readers parse.
pub fn created_by() -> String {
    format!("auditlake version {}", env!("CARGO_PKG_VERSION"))
}

/// How a table's data files are written: [`writer_properties`], with the
/// Arrow schema embedded in the footer as usual.
pub fn writer_options(spec: &TableSpec) -> ArrowWriterOptions {
    ArrowWriterOptions::new().with_properties(writer_properties(spec))
}

/// Parquet writer settings for a table's data files: zstd, dictionary pages
/// for low-cardinality columns only, PLAIN for everything else (the
/// encodings every common reader decodes), page-level statistics (column and offset indexes) where pages can be
/// skipped by them, bloom filters on equality-filtered columns, and the sort
/// order recorded in the footer.
pub fn writer_properties(spec: &TableSpec) -> WriterProperties {
    let sorting = spec
        .sort_columns
        .iter()
        .map(|c| SortingColumn {
            column_idx: spec
                .schema
                .index_of(c)
                .expect("sort columns are in the schema") as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(ZSTD_LEVEL).expect("valid level"),
        ))
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_dictionary_enabled(false)
        .set_sorting_columns(Some(sorting))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(TABLE_KEY.to_string(), spec.name.to_string()),
            KeyValue::new(FORMAT_VERSION_KEY.to_string(), FORMAT_VERSION.to_string()),
        ]))
        .set_created_by(created_by());
    // Columns without a dictionary are PLAIN. For text (JSON, event ids) at
    // zstd 9 the length stored before each value helps matching more than
    // lengths kept apart (DELTA_LENGTH_BYTE_ARRAY): `data` of a 200k-event
    // month 1.09 -> 1.01 MB. JSON text and the key keep chunk-level
    // statistics only: no query prunes pages by JSON text or by a random id,
    // and the page index would cost ~18 KB a month.
    for field in spec.schema.fields() {
        if spec.dictionary_columns.contains(&field.name().as_str()) {
            continue;
        }
        let path = ColumnPath::from(field.name().as_str());
        let level = match field.data_type() {
            DataType::Timestamp(..) => TIME_ZSTD_LEVEL,
            DataType::Utf8 if field.name() == spec.key_column => KEY_ZSTD_LEVEL,
            DataType::Utf8 => TEXT_ZSTD_LEVEL,
            _ => continue,
        };
        builder = builder
            .set_column_encoding(path.clone(), Encoding::PLAIN)
            .set_column_compression(
                path.clone(),
                Compression::ZSTD(ZstdLevel::try_new(level).expect("valid level")),
            );
        if field.data_type() == &DataType::Utf8 {
            builder = builder.set_column_statistics_enabled(path, EnabledStatistics::Chunk);
        }
    }
    for column in spec.dictionary_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), true);
    }
    for column in spec.scattered_columns {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::Chunk);
    }
    let key = ColumnPath::from(spec.key_column);
    builder = builder
        .set_column_bloom_filter_enabled(key.clone(), true)
        .set_column_bloom_filter_fpp(key.clone(), KEY_BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(key.clone(), ROW_GROUP_ROWS as u64);
    builder = builder
        .set_column_data_page_size_limit(key, KEY_PAGE_BYTES)
        .set_column_data_page_size_limit(ColumnPath::from(spec.time_column), TIME_PAGE_BYTES);
    for column in spec.bloom_filter_columns {
        let path = ColumnPath::from(*column);
        builder = builder
            .set_column_dictionary_enabled(path.clone(), true)
            .set_column_bloom_filter_enabled(path.clone(), true)
            .set_column_bloom_filter_fpp(path.clone(), 0.01)
            .set_column_bloom_filter_max_ndv(path, BLOOM_NDV);
    }
    builder.build()
}
