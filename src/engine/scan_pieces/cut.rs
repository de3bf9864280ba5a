//! Where a scan's pieces begin and end: each file's ranges joined again,
//! then cut at its row groups when its footer is in the session's metadata
//! cache, or else by bytes.
//!
//! A row group is read by the piece holding its first byte (DataFusion's
//! `prune_by_range`), so a cut by bytes can leave a piece holding no row
//! group's start: it costs an open of the file and reads nothing, and the
//! piece after it holds more work than its bytes say. With the footer at
//! hand, every piece starts at a row group and its size is what it reads.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::datasource::listing::{FileRange, PartitionedFile};
use datafusion::datasource::physical_plan::parquet::metadata::CachedParquetMetaData;
use datafusion::execution::cache::cache_manager::FileMetadataCache;
use datafusion::parquet::file::metadata::{ParquetMetaData, RowGroupMetaData};

/// A piece of a scan: a file's range, and the bytes of row groups it reads
/// (its range's bytes where the row groups are not known).
#[derive(Debug, Clone)]
pub(super) struct Piece {
    pub file: PartitionedFile,
    pub bytes: u64,
}

/// Each file's touching ranges joined into one, in the order the files
/// first come. DataFusion splits by bytes alone: a 200k-event month, one
/// row group of 7 MB, is cut in two ranges of which the second holds no
/// row group's start and reads nothing. Joined, a file's work is where its
/// bytes are, and [`pieces_of`] then cuts it by the pieces' size.
pub(super) fn joined<'a>(files: impl Iterator<Item = &'a PartitionedFile>) -> Vec<PartitionedFile> {
    let mut joined: Vec<PartitionedFile> = Vec::new();
    // Where each file's last range ends, and which of `joined` it is.
    let mut ends: HashMap<(&object_store::path::Path, i64), usize> = HashMap::new();
    for file in files {
        let location = &file.object_meta.location;
        let Some(range) = &file.range else {
            joined.push(file.clone());
            continue;
        };
        let at = match ends.remove(&(location, range.start)) {
            Some(at) => {
                joined[at].range.as_mut().expect("a joined range").end = range.end;
                at
            }
            None => {
                joined.push(file.clone());
                joined.len() - 1
            }
        };
        ends.insert((location, range.end), at);
    }
    joined
}

/// `file` cut into pieces of about `piece` bytes: at its row groups when
/// `cache` holds its footer, by bytes otherwise.
pub(super) fn pieces_of(
    file: &PartitionedFile,
    piece: u64,
    cache: &FileMetadataCache,
) -> Vec<Piece> {
    match row_groups(cache, file) {
        Some(row_groups) => cut_at_row_groups(file, &row_groups, piece),
        None => cut(file, piece)
            .into_iter()
            .map(|file| Piece {
                bytes: range_bytes(&file),
                file,
            })
            .collect(),
    }
}

/// `file`'s footer from the session's cache, if it is still the file's.
pub(super) fn cached_footer(
    cache: &FileMetadataCache,
    file: &PartitionedFile,
) -> Option<Arc<ParquetMetaData>> {
    let entry = cache.get(&file.object_meta.location)?;
    if !entry.is_valid_for(&file.object_meta) {
        return None;
    }
    let metadata = entry
        .file_metadata
        .as_any()
        .downcast_ref::<CachedParquetMetaData>()?
        .parquet_metadata();
    Some(Arc::clone(metadata))
}

/// The first byte of a row group: where its first column's pages begin.
/// DataFusion reads a row group in the range that holds this byte.
pub(super) fn first_byte(group: &RowGroupMetaData) -> i64 {
    let column = group.column(0);
    column
        .dictionary_page_offset()
        .unwrap_or_else(|| column.data_page_offset())
}

/// The first byte and the compressed bytes of each of `file`'s row groups,
/// in file order, from the cached footer (if it is still the file's).
fn row_groups(cache: &FileMetadataCache, file: &PartitionedFile) -> Option<Vec<(i64, u64)>> {
    let metadata = cached_footer(cache, file)?;
    let mut row_groups: Vec<(i64, u64)> = metadata
        .row_groups()
        .iter()
        .filter(|group| group.num_columns() > 0)
        .map(|group| (first_byte(group), group.compressed_size().max(0) as u64))
        .collect();
    row_groups.sort_unstable();
    Some(row_groups)
}

/// `file`'s range cut at the starts of `row_groups` (first byte, bytes; in
/// file order) into pieces of whole row groups, each about `piece` bytes
/// and never empty of row groups unless the whole range is. The first
/// piece begins where the range does and the last ends where it does, so
/// the pieces cover the range.
fn cut_at_row_groups(file: &PartitionedFile, row_groups: &[(i64, u64)], piece: u64) -> Vec<Piece> {
    let (start, end) = file.range();
    let (start, end) = (start as i64, end as i64);
    // Each piece: the first byte of its first row group, and its bytes.
    let mut pieces: Vec<(i64, u64)> = Vec::new();
    for &(first, bytes) in row_groups
        .iter()
        .filter(|(first, _)| (start..end).contains(first))
    {
        match pieces.last_mut() {
            Some((_, taken)) if *taken + bytes <= piece => *taken += bytes,
            _ => pieces.push((first, bytes)),
        }
    }
    if pieces.len() <= 1 {
        let bytes = pieces.first().map_or(0, |&(_, bytes)| bytes);
        return vec![Piece {
            file: file.clone(),
            bytes,
        }];
    }
    let bounds: Vec<i64> = std::iter::once(start)
        .chain(pieces[1..].iter().map(|&(first, _)| first))
        .chain(std::iter::once(end))
        .collect();
    pieces
        .iter()
        .zip(bounds.windows(2))
        .map(|(&(_, bytes), bound)| {
            let mut part = file.clone();
            part.range = Some(FileRange {
                start: bound[0],
                end: bound[1],
            });
            Piece { file: part, bytes }
        })
        .collect()
}

/// The bytes of `file` its scan reads (its range, or all of it).
pub(super) fn range_bytes(file: &PartitionedFile) -> u64 {
    let (start, end) = file.range();
    end.saturating_sub(start)
}

/// `file`'s range cut into pieces of about equal size, none larger than
/// `piece` bytes, in order.
fn cut(file: &PartitionedFile, piece: u64) -> Vec<PartitionedFile> {
    let (start, end) = file.range();
    let bytes = end.saturating_sub(start);
    let count = bytes.div_ceil(piece.max(1)).max(1);
    if count == 1 {
        return vec![file.clone()];
    }
    let size = bytes.div_ceil(count);
    (0..count)
        .map(|i| {
            let from = start + i * size;
            let to = (from + size).min(end);
            let mut part = file.clone();
            part.range = Some(FileRange {
                start: from as i64,
                end: to as i64,
            });
            part
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(size: u64, range: Option<(i64, i64)>) -> PartitionedFile {
        let file = PartitionedFile::new("heroku/year=2024/month=3/acme.parquet", size);
        match range {
            Some((start, end)) => file.with_range(start, end),
            None => file,
        }
    }

    fn ranges(pieces: &[PartitionedFile]) -> Vec<(i64, i64)> {
        pieces
            .iter()
            .map(|p| {
                let r = p.range.as_ref().expect("a piece has a range");
                (r.start, r.end)
            })
            .collect()
    }

    #[test]
    fn a_range_is_cut_into_contiguous_pieces_that_cover_it() {
        // 17,550,156..35,095,834 is the second half of a 1M-event month.
        let pieces = cut(&file(35_095_834, Some((17_550_156, 35_095_834))), 6_000_000);
        assert_eq!(
            ranges(&pieces),
            vec![
                (17_550_156, 23_398_716),
                (23_398_716, 29_247_276),
                (29_247_276, 35_095_834),
            ]
        );
        // A whole file (no range) is cut from its first byte to its last.
        let pieces = cut(&file(10, None), 4);
        assert_eq!(ranges(&pieces), vec![(0, 4), (4, 8), (8, 10)]);
    }

    #[test]
    fn a_range_no_larger_than_a_piece_is_left_whole() {
        let whole = file(7_500_000, None);
        let pieces = cut(&whole, 8 << 20);
        assert_eq!(pieces.len(), 1);
        assert!(pieces[0].range.is_none());
        let ranged = file(9_000_000, Some((100, 4_000_000)));
        assert_eq!(ranges(&cut(&ranged, 8 << 20)), vec![(100, 4_000_000)]);
    }

    #[test]
    fn a_files_touching_ranges_are_joined_and_others_kept() {
        let other = PartitionedFile::new("heroku/year=2024/month=4/acme.parquet", 50);
        let files = [
            file(100, Some((0, 40))),
            other.clone(),
            file(100, Some((40, 70))),
            // Not touching what came before: kept apart.
            file(100, Some((80, 100))),
        ];
        let joined = joined(files.iter());
        assert_eq!(joined.len(), 3);
        assert_eq!(joined[0].range(), (0, 70));
        assert_eq!(joined[1].object_meta.location, other.object_meta.location);
        assert!(joined[1].range.is_none());
        assert_eq!(joined[2].range(), (80, 100));
    }

    /// Five row groups of 996 bytes, each starting 4 bytes into its
    /// thousand, as a lake file's first column begins after its magic.
    const ROW_GROUPS: [(i64, u64); 5] =
        [(4, 996), (1000, 996), (2000, 996), (3000, 996), (4000, 996)];

    fn bytes(pieces: &[Piece]) -> Vec<u64> {
        pieces.iter().map(|p| p.bytes).collect()
    }

    fn piece_ranges(pieces: &[Piece]) -> Vec<(i64, i64)> {
        let files: Vec<PartitionedFile> = pieces.iter().map(|p| p.file.clone()).collect();
        ranges(&files)
    }

    #[test]
    fn a_file_is_cut_at_its_row_groups() {
        let pieces = cut_at_row_groups(&file(5_000, None), &ROW_GROUPS, 2_000);
        assert_eq!(
            piece_ranges(&pieces),
            vec![(0, 2_000), (2_000, 4_000), (4_000, 5_000)]
        );
        assert_eq!(bytes(&pieces), vec![1_992, 1_992, 996]);
    }

    #[test]
    fn a_range_keeps_the_row_groups_that_start_in_it() {
        // DataFusion's second half of the file: the row group at 2,000 on.
        let pieces = cut_at_row_groups(&file(5_000, Some((1_500, 5_000))), &ROW_GROUPS, 2_000);
        assert_eq!(piece_ranges(&pieces), vec![(1_500, 4_000), (4_000, 5_000)]);
        assert_eq!(bytes(&pieces), vec![1_992, 996]);
        // A range holding no row group's start stays whole, with no work.
        let none = cut_at_row_groups(&file(5_000, Some((4_500, 5_000))), &ROW_GROUPS, 2_000);
        assert_eq!(piece_ranges(&none), vec![(4_500, 5_000)]);
        assert_eq!(bytes(&none), vec![0]);
        // Row groups that fit one piece leave the range as it was.
        let whole = cut_at_row_groups(&file(5_000, None), &ROW_GROUPS, 10_000);
        assert_eq!(whole.len(), 1);
        assert!(whole[0].file.range.is_none());
        assert_eq!(bytes(&whole), vec![4_980]);
    }

    #[test]
    fn without_a_cached_footer_a_file_is_cut_by_bytes() {
        let cache = datafusion::execution::runtime_env::RuntimeEnv::default()
            .cache_manager
            .get_file_metadata_cache();
        let pieces = pieces_of(&file(10, None), 4, cache.as_ref());
        assert_eq!(piece_ranges(&pieces), vec![(0, 4), (4, 8), (8, 10)]);
        assert_eq!(bytes(&pieces), vec![4, 4, 2]);
    }
}
