//! Pieces inside a row group, for scans of fewer row groups than cores.
//!
//! A 200k-event month is one row group of ~7 MB, and a question about one
//! month (one hour across all apps) read it on one core while the other
//! waited: on 6 × 200k events `EXPLAIN ANALYZE` showed one partition
//! decoding for 11.7 ms. DataFusion's Parquet opener takes a
//! `ParquetAccessPlan` from a file's extensions; a piece here is the file
//! with a plan that reads rows `a..b` of its one row group and skips every
//! other row, so partitions share the row group's pages. Pruning by the
//! page index and the filters then works inside each piece as it does in a
//! whole row group.
//!
//! A row group is cut only when the session's cached footer holds its
//! offset index (a filtered scan loads it, see `page_index`): without it the
//! reader fetches every column chunk whole, and each piece would fetch and
//! decode the other pieces' pages to pass over their rows. The cuts fall on
//! page boundaries of the row group's largest column, so each of its pages
//! is decoded by one piece; the smaller columns' pages (ids, times) that
//! straddle a cut are decoded by both.

use datafusion::datasource::physical_plan::parquet::{ParquetAccessPlan, RowGroupAccess};
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::arrow::arrow_reader::{RowSelection, RowSelector};

use super::cut::{self, Piece};

/// A row group smaller than this is read whole. What a cut costs is fixed
/// (a second open of the file, the small columns' pages at the cut decoded
/// twice), and under ~2 MB (~55k small events, a few milliseconds of
/// decoding) there is little left for the second core to take.
pub(super) const MIN_SPLIT_BYTES: u64 = 2 << 20;

/// `piece` cut into up to `parts` pieces of the rows of the one row group
/// it reads; `None` when it reads more or fewer than one row group, is
/// smaller than `min_bytes`, already carries an access plan, or its file's
/// offset index is not in `cache`.
pub(super) fn split(
    piece: &Piece,
    parts: usize,
    min_bytes: u64,
    cache: &FileMetadataCache,
) -> Option<Vec<Piece>> {
    let file = &piece.file;
    if parts < 2 || piece.bytes < min_bytes || !file.extensions.is_empty() {
        return None;
    }
    let footer = cut::cached_footer(cache, file)?;
    let (start, end) = file.range();
    let range = start as i64..end as i64;
    let mut held =
        footer.row_groups().iter().enumerate().filter(|(_, group)| {
            group.num_columns() > 0 && range.contains(&cut::first_byte(group))
        });
    let (index, group) = held.next()?;
    if held.next().is_some() {
        return None;
    }
    let rows = usize::try_from(group.num_rows()).ok()?;
    let largest = (0..group.num_columns()).max_by_key(|&c| group.column(c).compressed_size())?;
    let pages = footer.offset_index()?.get(index)?.get(largest)?;
    let page_starts: Vec<usize> = pages
        .page_locations()
        .iter()
        .filter_map(|page| usize::try_from(page.first_row_index).ok())
        .collect();
    let cuts = cuts(rows, parts, &page_starts);
    if cuts.len() < 3 {
        return None;
    }
    Some(
        cuts.windows(2)
            .map(|bounds| {
                let (from, to) = (bounds[0], bounds[1]);
                let mut plan = ParquetAccessPlan::new_none(footer.num_row_groups());
                plan.set(index, RowGroupAccess::Selection(rows_of(from, to, rows)));
                let mut part = file.clone();
                part.extensions.insert(plan);
                Piece {
                    file: part,
                    bytes: piece.bytes * (to - from) as u64 / rows as u64,
                }
            })
            .collect(),
    )
}

/// Where `rows` rows are cut into `parts`: 0, then for each inner cut the
/// page start in `page_starts` nearest its share, then `rows`. Fewer cuts
/// when pages are too few.
fn cuts(rows: usize, parts: usize, page_starts: &[usize]) -> Vec<usize> {
    let mut cuts = vec![0];
    for part in 1..parts {
        let ideal = rows * part / parts;
        let last = *cuts.last().expect("starts with 0");
        let nearest = page_starts
            .iter()
            .copied()
            .filter(|&start| start > last && start < rows)
            .min_by_key(|&start| start.abs_diff(ideal));
        if let Some(at) = nearest {
            cuts.push(at);
        }
    }
    cuts.push(rows);
    cuts.dedup();
    cuts
}

/// A selection of rows `from..to` of a row group of `rows`.
fn rows_of(from: usize, to: usize, rows: usize) -> RowSelection {
    let selectors: Vec<RowSelector> = [
        RowSelector::skip(from),
        RowSelector::select(to - from),
        RowSelector::skip(rows - to),
    ]
    .into_iter()
    .filter(|selector| selector.row_count > 0)
    .collect();
    RowSelection::from(selectors)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_fall_on_the_page_starts_nearest_each_share() {
        // 200,000 rows in pages of 6,144: the middle falls between 98,304
        // and 104,448, nearer the first.
        let starts: Vec<usize> = (0..33).map(|p| p * 6_144).collect();
        assert_eq!(cuts(200_000, 2, &starts), vec![0, 98_304, 200_000]);
        assert_eq!(cuts(200_000, 3, &starts), vec![0, 67_584, 135_168, 200_000]);
    }

    #[test]
    fn a_row_group_of_one_page_is_not_cut() {
        assert_eq!(cuts(5_000, 2, &[0]), vec![0, 5_000]);
        // Two pages: one cut, wherever the second begins.
        assert_eq!(cuts(5_000, 4, &[0, 4_000]), vec![0, 4_000, 5_000]);
    }

    #[test]
    fn a_selection_covers_the_whole_row_group() {
        let middle = rows_of(10, 30, 50);
        assert_eq!(middle.row_count(), 20);
        assert_eq!(middle.skipped_row_count(), 30);
        let first = rows_of(0, 30, 50);
        assert_eq!(
            Vec::<RowSelector>::from(first),
            vec![RowSelector::select(30), RowSelector::skip(20)]
        );
        let last = rows_of(30, 50, 50);
        assert_eq!(
            Vec::<RowSelector>::from(last),
            vec![RowSelector::skip(30), RowSelector::select(20)]
        );
    }
}
