//! How many partitions share a scan's pieces, and which pieces each
//! partition's group lists.

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;

/// How many partitions share `pieces` (the bytes each reads) of a scan
/// planned over `planned`: a partition a piece that reads something, up to
/// twice the planned count.
///
/// Twice, for two reasons measured on the query suite. A partition waiting
/// on a read (the object store's reads run on tokio's blocking threads)
/// leaves its core idle when there are as many partitions as cores; with
/// twice as many, tokio gives the core to another: one IP over the whole
/// lake took 15–20% less time, one hour across all apps on 12 × 1M 15%.
/// And pieces too few to share out evenly finish together: three
/// 200k-event months are three single-row-group files, of which two
/// partitions read two on one core and one on the other (a makespan of two
/// files where 1.5 is the ideal); three partitions interleave them.
pub(super) fn partitions_for(pieces: &[u64], planned: usize) -> usize {
    // A piece holding no row group's start reads nothing.
    let working = pieces.iter().filter(|&&bytes| bytes > 0).count();
    if working <= planned || planned == 0 {
        return planned;
    }
    working.min(2 * planned)
}

/// `pieces` in `partitions` groups of consecutive pieces, as equal in
/// count as can be. The groups only set how many partitions the scan has:
/// all of them take their pieces from one queue, in this order.
pub(super) fn in_groups(pieces: Vec<PartitionedFile>, partitions: usize) -> Vec<FileGroup> {
    let count = pieces.len();
    let mut pieces = pieces.into_iter();
    (0..partitions)
        .map(|i| {
            let take = count / partitions + usize::from(i < count % partitions);
            FileGroup::new(pieces.by_ref().take(take).collect())
        })
        .collect()
}

/// Whether groups `a` and `b` read the same files' ranges in the same
/// partitions.
pub(super) fn same_layout(a: &[FileGroup], b: &[FileGroup]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(a, b)| {
            a.len() == b.len()
                && a.iter().zip(b.iter()).all(|(a, b)| {
                    a.object_meta.location == b.object_meta.location && a.range() == b.range()
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_a_working_piece_up_to_twice_the_planned_count() {
        const MB: u64 = 1 << 20;
        // Three equal files on two: one core would read two, the other one.
        assert_eq!(partitions_for(&[7 * MB; 3], 2), 3);
        // Four, five or sixteen: twice the planned count at most.
        assert_eq!(partitions_for(&[7 * MB; 4], 2), 4);
        assert_eq!(partitions_for(&[7 * MB; 5], 2), 4);
        assert_eq!(partitions_for(&[8 * MB; 16], 2), 4);
        assert_eq!(partitions_for(&[8 * MB; 16], 3), 6);
        // No more pieces than partitions: nothing to balance.
        assert_eq!(partitions_for(&[7 * MB, 30 * MB], 2), 2);
        // Pieces that read nothing do not count.
        assert_eq!(partitions_for(&[7 * MB, 7 * MB, 7 * MB, 0, 0], 2), 3);
        assert_eq!(partitions_for(&[7 * MB, 0, 7 * MB, 0], 2), 2);
    }

    #[test]
    fn groups_hold_consecutive_pieces_as_equal_in_count_as_can_be() {
        let pieces: Vec<_> = (0..5)
            .map(|i| {
                PartitionedFile::new("heroku/year=2024/month=3/acme.parquet", 10)
                    .with_range(i, i + 1)
            })
            .collect();
        let groups = in_groups(pieces, 3);
        let starts: Vec<Vec<i64>> = groups
            .iter()
            .map(|g| g.iter().map(|p| p.range.as_ref().unwrap().start).collect())
            .collect();
        assert_eq!(starts, vec![vec![0, 1], vec![2, 3], vec![4]]);
    }
}
