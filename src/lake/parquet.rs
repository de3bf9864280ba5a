//! How data files are written: settings chosen for fast, selective reads.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::parquet::arrow::ArrowSchemaConverter;
use datafusion::parquet::arrow::arrow_writer::ArrowWriterOptions;
use datafusion::parquet::basic::{Compression, Encoding, LogicalType, ZstdLevel};
use datafusion::parquet::errors::Result as ParquetResult;
use datafusion::parquet::file::metadata::{KeyValue, SortingColumn};
use datafusion::parquet::file::properties::{EnabledStatistics, WriterProperties};
use datafusion::parquet::schema::types::{ColumnPath, SchemaDescriptor, Type};

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

/// Distinct values a bloom filter is sized for (per row group) at a 1% false
/// positive rate; the writer then folds it down to the values it saw (a
/// month's ~50 apps take 80 bytes).
const BLOOM_NDV: u64 = 10_000;

/// zstd level of most columns: cheap enough that encoding keeps up with
/// parsing on the other core.
const ZSTD_LEVEL: i32 = 3;

/// zstd level of delta-encoded timestamps. zstd's optimal parser (level 15)
/// finds what the faster levels miss in bit-packed deltas: `created_at` of a
/// 200k-event month shrinks by ~10% (the file by 1%), and at ~600 KB a month
/// it costs little. The same level on every dictionary column saved only
/// 0.1% more of the file and slowed the 6 × 200k conversion by a quarter.
const TIME_ZSTD_LEVEL: i32 = 15;

/// zstd level of text columns without a dictionary (JSON, ids of mapped
/// tables): on a 200k-event month `data` shrinks by 8% from level 3, for
/// about 4% more convert CPU (6 × 200k benchmark). There are ~7 MB of it a
/// month: level 15 would save another 13% but take 0.7 s more per month,
/// a third of the whole conversion.
const TEXT_ZSTD_LEVEL: i32 = 9;

/// How a table's data files are written: [`writer_properties`] and the
/// Parquet schema, which marks 16-byte keys with the UUID logical type (arrow
/// has no UUID type of its own without an extension, so the default
/// conversion would leave them anonymous binary).
pub fn writer_options(spec: &TableSpec) -> ParquetResult<ArrowWriterOptions> {
    let descriptor = ArrowSchemaConverter::new().convert(&spec.schema)?;
    let root = descriptor.root_schema();
    let mut fields = Vec::with_capacity(root.get_fields().len());
    for (field, parquet) in spec.schema.fields().iter().zip(root.get_fields()) {
        fields.push(if field.data_type() == &crate::key::UUID_TYPE {
            let info = parquet.get_basic_info();
            Arc::new(
                Type::primitive_type_builder(info.name(), parquet.get_physical_type())
                    .with_repetition(info.repetition())
                    .with_length(16)
                    .with_logical_type(Some(LogicalType::Uuid))
                    .build()?,
            )
        } else {
            parquet.clone()
        });
    }
    let root = Type::group_type_builder(root.name())
        .with_fields(fields)
        .build()?;
    Ok(ArrowWriterOptions::new()
        .with_properties(writer_properties(spec))
        .with_parquet_schema(SchemaDescriptor::new(Arc::new(root))))
}

/// Parquet writer settings for a table's data files: zstd, dictionary pages
/// for low-cardinality columns only, delta encodings for timestamps,
/// page-level statistics (column and offset indexes) where pages can be
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
        .set_key_value_metadata(Some(vec![KeyValue::new(
            "auditlake.table".to_string(),
            spec.name.to_string(),
        )]))
        .set_created_by(format!("auditlake {}", env!("CARGO_PKG_VERSION")));
    // Columns without a dictionary. Text (JSON, ids of mapped tables) is
    // plain: at zstd 9 the length before each value helps matching more than
    // lengths kept apart (DELTA_LENGTH_BYTE_ARRAY): `data` of a 200k-event
    // month 1.09 -> 1.01 MB. Its page statistics and the UUID key's are
    // chunk-level only: no query prunes pages by JSON text or random keys
    // (filters on `id` run on its text), and the page index shrinks by 18 KB
    // a month. The UUID key is stored uncompressed: random bytes do not
    // compress, and zstd would only cost time on write and read. Timestamps
    // ordered within each sort group shrink as deltas.
    for field in spec.schema.fields() {
        if spec.dictionary_columns.contains(&field.name().as_str()) {
            continue;
        }
        let path = ColumnPath::from(field.name().as_str());
        match field.data_type() {
            DataType::Utf8 => {
                builder = builder
                    .set_column_encoding(path.clone(), Encoding::PLAIN)
                    .set_column_statistics_enabled(path.clone(), EnabledStatistics::Chunk)
                    .set_column_compression(
                        path,
                        Compression::ZSTD(
                            ZstdLevel::try_new(TEXT_ZSTD_LEVEL).expect("valid level"),
                        ),
                    );
            }
            t if t == &crate::key::UUID_TYPE => {
                builder = builder
                    .set_column_statistics_enabled(path.clone(), EnabledStatistics::Chunk)
                    .set_column_compression(path, Compression::UNCOMPRESSED);
            }
            DataType::Timestamp(..) => {
                builder = builder
                    .set_column_encoding(path.clone(), Encoding::DELTA_BINARY_PACKED)
                    .set_column_compression(
                        path,
                        Compression::ZSTD(
                            ZstdLevel::try_new(TIME_ZSTD_LEVEL).expect("valid level"),
                        ),
                    );
            }
            _ => {}
        }
    }
    for column in spec.dictionary_columns {
        builder = builder.set_column_dictionary_enabled(ColumnPath::from(*column), true);
    }
    for column in spec.scattered_columns {
        builder = builder
            .set_column_statistics_enabled(ColumnPath::from(*column), EnabledStatistics::Chunk);
    }
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
