//! How many partitions share a scan's pieces, and which pieces each
//! partition's group lists.

use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::physical_plan::FileGroup;

/// How many partitions share `pieces` (their sizes, in queue order) that
/// were planned over `planned`: more than planned when the pieces are too
/// few to balance. Three 200k-event months are three single-row-group
/// files; on two partitions one core reads two of them while the other
/// reads one and then waits (a makespan of two files where 1.5 is the
/// ideal). With a partition per piece, up to twice the planned count,
/// tokio interleaves them on the cores and they finish together.
pub(super) fn partitions_for(pieces: &[u64], planned: usize) -> usize {
    // A piece holding no row group's start reads nothing.
    let working = pieces.iter().filter(|&&bytes| bytes > 0).count();
    if working <= planned || planned == 0 {
        return planned;
    }
    let total: u64 = pieces.iter().sum();
    // Each partition takes the next piece of the shared queue when it is
    // done with its last one.
    let mut done_at = vec![0u64; planned];
    for &bytes in pieces {
        let first_free = done_at.iter_mut().min().expect("planned > 0");
        *first_free += bytes;
    }
    let makespan = *done_at.iter().max().expect("planned > 0");
    let ideal = total.div_ceil(planned as u64);
    // Within 15% of the ideal, the planned partitions are kept: every
    // partition more is one more decoder and one more input to merge.
    if makespan * 100 <= ideal * 115 {
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

/// What a scan's groups read: each piece's file and range, by group.
pub(super) fn layout(groups: &[FileGroup]) -> Vec<Vec<String>> {
    groups
        .iter()
        .map(|group| {
            group
                .iter()
                .map(|file| format!("{} {:?}", file.object_meta.location, file.range()))
                .collect()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_too_few_to_balance_get_more_partitions() {
        const MB: u64 = 1 << 20;
        // Three equal files on two: one core would read two, the other one.
        assert_eq!(partitions_for(&[7 * MB; 3], 2), 3);
        // Five: four partitions, twice the planned count at most.
        assert_eq!(partitions_for(&[7 * MB; 5], 2), 4);
        // Four, or sixteen, share out evenly as planned.
        assert_eq!(partitions_for(&[7 * MB; 4], 2), 2);
        assert_eq!(partitions_for(&[8 * MB; 16], 2), 2);
        // Six months and a small one of late events: within 15%.
        let mut months = vec![7 * MB; 6];
        months.push(MB / 10);
        assert_eq!(partitions_for(&months, 2), 2);
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
