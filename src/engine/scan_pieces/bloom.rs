//! How many row groups a lookup by value reads once the bloom filters have
//! had their say.
//!
//! DataFusion tests a row group's bloom filters when it opens the file, after
//! the plan is made: a lookup of one event by id over 6 × 200k events plans
//! six working pieces, and five of them read nothing once opened. The
//! month left is decoded on one core while the other waits (`EXPLAIN
//! ANALYZE`: one partition, 200k ids). When the scan's predicate names the
//! only values a column may take and every footer at hand has a bloom
//! filter on that column, the scan reads at most about one row group a
//! value, and the rule cuts row groups as it would for that many.

use std::sync::Arc;

use datafusion::datasource::physical_plan::{FileScanConfig, FileSource, ParquetSource};
use datafusion::parquet::file::metadata::ParquetMetaData;
use datafusion::physical_expr::utils::{Guarantee, LiteralGuarantee};

/// The fewest values a column of the predicate of `config` may take, among
/// the columns with a bloom filter in every row group of `footers`; `None`
/// when no such column is named, or no footer is at hand.
pub(super) fn values_looked_up(
    config: &FileScanConfig,
    footers: &[Arc<ParquetMetaData>],
) -> Option<usize> {
    if footers.is_empty() {
        return None;
    }
    let source = config.file_source().downcast_ref::<ParquetSource>()?;
    if !source.table_parquet_options().global.bloom_filter_on_read {
        return None;
    }
    let predicate = FileSource::filter(source)?;
    LiteralGuarantee::analyze(&predicate)
        .into_iter()
        .filter(|guarantee| guarantee.guarantee == Guarantee::In)
        .filter(|guarantee| {
            footers
                .iter()
                .all(|footer| has_bloom_filters(footer, guarantee.column.name()))
        })
        .map(|guarantee| guarantee.literals.len())
        .min()
}

/// Whether every row group of `footer` has a bloom filter on the top-level
/// column `name`.
fn has_bloom_filters(footer: &ParquetMetaData, name: &str) -> bool {
    let schema = footer.file_metadata().schema_descr();
    let Some(index) = (0..schema.num_columns()).find(|&i| {
        let column = schema.column(i);
        let path = column.path().parts();
        path.len() == 1 && path[0] == name
    }) else {
        return false;
    };
    footer
        .row_groups()
        .iter()
        .all(|group| group.column(index).bloom_filter_offset().is_some())
}
