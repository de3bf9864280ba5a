//! The order of a new month's staged rows: integer keys for the leading sort
//! columns, and DataFusion's row format only for the rows those keys tie.
//!
//! The sort columns of an event table start with text of a few distinct
//! values (`app_name`, `type`) and a timestamp, and end with the event id.
//! Encoding every row's whole key into the row format (~175 bytes an event)
//! and sorting by `memcmp` of those rows was 8.6% of a conversion's CPU
//! (`perf`, small mix): most comparisons ran through the same app and type
//! bytes before they reached the time. Here each leading text column is
//! replaced by its value's rank among the column's distinct values, and
//! ranks and timestamps are packed into two machine words per row, so the
//! sort compares integers held inline. Rows whose words tie (the same app,
//! type and millisecond) are then ordered by the remaining columns in the
//! row format, encoded for those rows only.

use std::collections::HashMap;

use anyhow::Context;
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::{SortOptions, cast, interleave};
use datafusion::arrow::datatypes::{DataType, Int32Type, Int64Type};
use datafusion::arrow::row::{RowConverter, SortField};
use datafusion::execution::memory_pool::MemoryReservation;

use super::stage::key_bytes;
use crate::table::TableSpec;

/// Words of integer key per row. Two hold an event table's app and type
/// ranks (a dozen bits) and its timestamp; more would only grow every row
/// for tables that do not need them.
const WORDS: usize = 2;

/// Distinct values a text column may have to be ranked. A column with more
/// (the event id) is compared in the row format instead.
const MAX_RANKED: usize = 1 << 16;

/// A row's packed key, then its place in staging order (ties, which
/// distinct keys do not have, keep that order).
type Key = ([u64; WORDS], u32);

/// The order's memory per row: the key while sorting (24 bytes), then the
/// (batch, row) pairs handed to the gather (16 bytes).
const BYTES_PER_ROW: usize = std::mem::size_of::<Key>() + 16;

/// (batch, row) of every staged row in the table's order (nulls last); `None`
/// when the pool cannot hold the keys.
pub(super) fn sort_order(
    spec: &TableSpec,
    batches: &[RecordBatch],
    reservation: &mut MemoryReservation,
) -> anyhow::Result<Option<Vec<(usize, usize)>>> {
    let Some(first) = batches.first() else {
        return Ok(Some(Vec::new()));
    };
    let schema = first.schema();
    let columns = spec
        .sort_columns
        .iter()
        .map(|c| {
            schema
                .index_of(c)
                .with_context(|| format!("staged rows lack the sort column {c}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
    anyhow::ensure!(
        u32::try_from(total).is_ok(),
        "a month of {total} staged rows is more than one sort can order"
    );
    if reservation.try_resize(total * BYTES_PER_ROW).is_err() {
        return Ok(None);
    }

    let mut keys: Vec<Key> = (0..total as u32).map(|i| ([0; WORDS], i)).collect();
    let packed = pack_leading_columns(batches, &columns, &mut keys)?;
    keys.sort_unstable();
    let tail = &columns[packed..];
    if !tail.is_empty() && !order_ties(batches, tail, &mut keys, reservation)? {
        return Ok(None);
    }

    let locate = Locator::new(batches);
    let order = keys.into_iter().map(|(_, g)| locate.at(g)).collect();
    reservation.try_resize(total * 16)?;
    Ok(Some(order))
}

/// Packs the leading sort columns that have integer keys into each row's
/// words, earlier columns in higher bits, and returns how many were packed.
/// Every row is packed alike, so comparing words compares those columns in
/// order.
fn pack_leading_columns(
    batches: &[RecordBatch],
    columns: &[usize],
    keys: &mut [Key],
) -> anyhow::Result<usize> {
    let mut word = 0;
    let mut used = 0;
    for (packed, &column) in columns.iter().enumerate() {
        if word + 1 == WORDS && used == 64 {
            return Ok(packed);
        }
        let Some(ranks) = integer_keys(batches, column)? else {
            return Ok(packed);
        };
        if used + ranks.bits > 64 {
            word += 1;
            used = 0;
        }
        if word == WORDS {
            return Ok(packed);
        }
        for (key, value) in keys.iter_mut().zip(ranks.values) {
            // A shift by 64 (a whole-word column) would overflow: the word
            // is empty then.
            key.0[word] = key.0[word].checked_shl(ranks.bits).unwrap_or(0) | value;
        }
        used += ranks.bits;
    }
    Ok(columns.len())
}

/// One column's integer key for every row, in staging order, and how many
/// bits it takes.
struct IntegerKeys {
    values: Vec<u64>,
    bits: u32,
}

/// The column's integer keys: the rank of each text value among the
/// column's distinct values (null after all of them), or an integer's
/// value with its sign bit flipped (so unsigned order is signed order).
/// `None` for a column that has no such key: text of more than
/// [`MAX_RANKED`] values, integers with nulls, other types.
fn integer_keys(batches: &[RecordBatch], column: usize) -> anyhow::Result<Option<IntegerKeys>> {
    let data_type = batches[0].column(column).data_type().clone();
    let mut values = Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    match data_type {
        DataType::Utf8 | DataType::Utf8View => {
            let mut distinct: HashMap<&[u8], u32> = HashMap::new();
            let mut slots = Vec::with_capacity(values.capacity());
            for batch in batches {
                for value in key_bytes(batch.column(column).as_ref())? {
                    let slot = match value {
                        None => u32::MAX,
                        Some(bytes) => {
                            let next = distinct.len() as u32;
                            let slot = *distinct.entry(bytes).or_insert(next);
                            if distinct.len() > MAX_RANKED {
                                return Ok(None);
                            }
                            slot
                        }
                    };
                    slots.push(slot);
                }
            }
            // Ranks in byte order, the row format's order for text.
            let mut sorted: Vec<(&[u8], u32)> = distinct.into_iter().collect();
            sorted.sort_unstable();
            let mut rank_of = vec![0u64; sorted.len()];
            for (rank, (_, slot)) in sorted.iter().enumerate() {
                rank_of[*slot as usize] = rank as u64;
            }
            let null_rank = sorted.len() as u64;
            values.extend(slots.into_iter().map(|slot| match slot {
                u32::MAX => null_rank,
                slot => rank_of[slot as usize],
            }));
            Ok(Some(IntegerKeys {
                values,
                bits: u64::BITS - null_rank.leading_zeros(),
            }))
        }
        DataType::Timestamp(..) | DataType::Int64 | DataType::Int32 | DataType::Date32 => {
            for batch in batches {
                let array = batch.column(column);
                if array.null_count() > 0 {
                    return Ok(None);
                }
                let flip = |v: i64| (v as u64) ^ (1 << 63);
                if matches!(array.data_type(), DataType::Int32 | DataType::Date32) {
                    let array = cast(array, &DataType::Int32)?;
                    let array = array.as_primitive::<Int32Type>();
                    values.extend(array.values().iter().map(|&v| flip(v.into())));
                } else {
                    let array = cast(array, &DataType::Int64)?;
                    let array = array.as_primitive::<Int64Type>();
                    values.extend(array.values().iter().map(|&v| flip(v)));
                }
            }
            Ok(Some(IntegerKeys { values, bits: 64 }))
        }
        _ => Ok(None),
    }
}

/// Orders each run of rows whose words tie by the remaining sort columns
/// (`tail`), encoded into the row format for the tied rows only. `false`
/// when the pool cannot hold them.
fn order_ties(
    batches: &[RecordBatch],
    tail: &[usize],
    keys: &mut [Key],
    reservation: &mut MemoryReservation,
) -> anyhow::Result<bool> {
    let runs = tied_runs(keys);
    if runs.is_empty() {
        return Ok(true);
    }
    let locate = Locator::new(batches);
    let positions: Vec<(usize, usize)> = runs
        .iter()
        .flat_map(|run| keys[run.clone()].iter())
        .map(|&(_, g)| locate.at(g))
        .collect();
    let options = SortOptions {
        descending: false,
        nulls_first: false,
    };
    let mut values = Vec::with_capacity(tail.len());
    let mut fields = Vec::with_capacity(tail.len());
    for &column in tail {
        let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(column).as_ref()).collect();
        let array = interleave(&arrays, &positions)?;
        fields.push(SortField::new_with_options(
            array.data_type().clone(),
            options,
        ));
        values.push(array);
    }
    let converter = RowConverter::new(fields)?;
    let rows = converter.convert_columns(&values)?;
    let held = reservation.size();
    let extra = rows.size()
        + values
            .iter()
            .map(|a| a.get_array_memory_size())
            .sum::<usize>();
    if reservation.try_resize(held + extra).is_err() {
        return Ok(false);
    }
    drop(values);
    let mut at = 0;
    let mut run_keys: Vec<(usize, Key)> = Vec::new();
    for run in runs {
        run_keys.clear();
        run_keys.extend(
            keys[run.clone()]
                .iter()
                .enumerate()
                .map(|(i, &k)| (at + i, k)),
        );
        run_keys.sort_unstable_by(|a, b| rows.row(a.0).cmp(&rows.row(b.0)).then(a.1.1.cmp(&b.1.1)));
        at += run.len();
        for (slot, (_, key)) in keys[run].iter_mut().zip(&run_keys) {
            *slot = *key;
        }
    }
    reservation.try_resize(held)?;
    Ok(true)
}

/// The ranges of sorted keys whose words are equal, two rows or more.
fn tied_runs(keys: &[Key]) -> Vec<std::ops::Range<usize>> {
    let mut runs = Vec::new();
    let mut start = 0;
    for i in 1..=keys.len() {
        if i == keys.len() || keys[i].0 != keys[start].0 {
            if i - start > 1 {
                runs.push(start..i);
            }
            start = i;
        }
    }
    runs
}

/// Finds a row by its place in staging order (all batches one after the
/// other).
struct Locator {
    starts: Vec<usize>,
}

impl Locator {
    fn new(batches: &[RecordBatch]) -> Self {
        let mut starts = Vec::with_capacity(batches.len());
        let mut start = 0;
        for batch in batches {
            starts.push(start);
            start += batch.num_rows();
        }
        Self { starts }
    }

    /// (batch, row) of the row at `place`.
    fn at(&self, place: u32) -> (usize, usize) {
        let place = place as usize;
        let batch = self.starts.partition_point(|&s| s <= place) - 1;
        (batch, place - self.starts[batch])
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{ArrayRef, Int64Array, StringArray, TimestampMillisecondArray};
    use datafusion::execution::memory_pool::{GreedyMemoryPool, MemoryConsumer, MemoryPool};
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;

    /// The order DataFusion's own sort gives: every sort column in the row
    /// format, ties in staging order.
    fn row_format_order(batches: &[RecordBatch], columns: &[usize]) -> Vec<(usize, usize)> {
        let options = SortOptions {
            descending: false,
            nulls_first: false,
        };
        let converter = RowConverter::new(
            columns
                .iter()
                .map(|&c| {
                    SortField::new_with_options(batches[0].column(c).data_type().clone(), options)
                })
                .collect(),
        )
        .unwrap();
        let mut rows = converter.empty_rows(0, 0);
        let mut places = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let keys: Vec<ArrayRef> = columns.iter().map(|&c| batch.column(c).clone()).collect();
            converter.append(&mut rows, &keys).unwrap();
            places.extend((0..batch.num_rows()).map(|r| (b, r)));
        }
        let mut order: Vec<usize> = (0..places.len()).collect();
        order.sort_by(|&a, &b| rows.row(a).cmp(&rows.row(b)));
        order.into_iter().map(|i| places[i]).collect()
    }

    fn spec_sorted_by(columns: &'static [&'static str]) -> TableSpec {
        let mut spec = crate::source::heroku::table_spec();
        spec.sort_columns = columns;
        spec
    }

    fn order_of(
        spec: &TableSpec,
        batches: &[RecordBatch],
        pool_bytes: usize,
    ) -> Option<Vec<(usize, usize)>> {
        let pool: Arc<dyn MemoryPool> = Arc::new(GreedyMemoryPool::new(pool_bytes));
        let mut reservation = MemoryConsumer::new("test").register(&pool);
        let order = sort_order(spec, batches, &mut reservation).unwrap();
        assert_eq!(
            reservation.size(),
            order.as_ref().map_or(0, |o| o.len() * 16),
            "only the order stays reserved"
        );
        order
    }

    /// Batches of (app, type, t, id, n): few apps and types with nulls,
    /// times from a range small enough that many rows tie on all three,
    /// negative ones among them, and a nullable integer.
    fn batches(seed: u64) -> Vec<RecordBatch> {
        let mut rng = StdRng::seed_from_u64(seed);
        let mut id = 0;
        (0..4)
            .map(|b| {
                let n = 700 + b * 50;
                let apps: Vec<Option<String>> = (0..n)
                    .map(|_| match rng.random_range(0..6) {
                        0 => None,
                        k => Some(format!("app-{k}")),
                    })
                    .collect();
                let types: Vec<&str> = (0..n)
                    .map(|_| ["config", "app", "addon-attachment"][rng.random_range(0..3)])
                    .collect();
                let times: Vec<i64> = (0..n).map(|_| rng.random_range(-4..6)).collect();
                let ids: Vec<String> = (0..n)
                    .map(|_| {
                        id += 1;
                        format!("{:08x}", (id * 2_654_435_761u64) % 1_000_003)
                    })
                    .collect();
                let counts: Vec<Option<i64>> = (0..n)
                    .map(|_| rng.random_bool(0.9).then(|| rng.random_range(0..3)))
                    .collect();
                let batch = RecordBatch::try_from_iter([
                    ("app_name", Arc::new(StringArray::from(apps)) as ArrayRef),
                    ("type", Arc::new(StringArray::from(types)) as _),
                    (
                        "created_at",
                        Arc::new(TimestampMillisecondArray::from(times)) as _,
                    ),
                    ("id", Arc::new(StringArray::from(ids)) as _),
                    ("n", Arc::new(Int64Array::from(counts)) as _),
                ])
                .unwrap();
                // Slices, as staged batches may be: their arrays have offsets.
                batch.slice(3, n as usize - 3)
            })
            .collect()
    }

    #[test]
    fn the_order_is_the_row_formats_with_ranks_times_and_ties() {
        let batches = batches(7);
        let spec = spec_sorted_by(&["app_name", "type", "created_at", "id"]);
        let order = order_of(&spec, &batches, 1 << 24).expect("fits");
        assert_eq!(order, row_format_order(&batches, &[0, 1, 2, 3]));
        // Rows did tie on the packed words, so the id decided some of them.
        let mut keys: Vec<Key> = (0..order.len() as u32).map(|i| ([0; WORDS], i)).collect();
        assert_eq!(
            pack_leading_columns(&batches, &[0, 1, 2, 3], &mut keys).unwrap(),
            3
        );
        keys.sort_unstable();
        assert!(!tied_runs(&keys).is_empty());
    }

    #[test]
    fn columns_past_the_words_or_without_integer_keys_are_compared_as_rows() {
        let batches = batches(11);
        // Two whole-word times fill both words: the third column and the
        // nullable integer are compared in the row format.
        for columns in [&[2usize, 2, 0, 3][..], &[4, 0, 3], &[3, 0], &[1, 4, 2, 3]] {
            let names: Vec<&'static str> = columns
                .iter()
                .map(|&c| ["app_name", "type", "created_at", "id", "n"][c])
                .collect();
            let spec = spec_sorted_by(names.leak());
            let order = order_of(&spec, &batches, 1 << 24).expect("fits");
            assert_eq!(order, row_format_order(&batches, columns), "{columns:?}");
        }
        let mut keys: Vec<Key> = (0..10).map(|i| ([0; WORDS], i)).collect();
        assert_eq!(
            pack_leading_columns(&batches[..1], &[2, 2, 0], &mut keys).unwrap(),
            2
        );
        assert_eq!(
            pack_leading_columns(&batches[..1], &[1, 4, 2], &mut keys).unwrap(),
            1
        );
    }

    #[test]
    fn ranks_pack_in_the_fewest_bits_nulls_last() {
        let batch = RecordBatch::try_from_iter([(
            "app_name",
            Arc::new(StringArray::from(vec![
                Some("b"),
                None,
                Some("a"),
                Some("b"),
            ])) as ArrayRef,
        )])
        .unwrap();
        let keys = integer_keys(&[batch], 0).unwrap().expect("text has ranks");
        assert_eq!(keys.values, [1, 2, 0, 1]);
        assert_eq!(keys.bits, 2);
    }

    #[test]
    fn keys_that_do_not_fit_the_pool_give_no_order() {
        let batches = batches(3);
        let spec = spec_sorted_by(&["app_name", "type", "created_at", "id"]);
        assert_eq!(order_of(&spec, &batches, 1000), None);
    }
}
