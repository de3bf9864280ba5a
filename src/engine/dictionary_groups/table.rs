//! Group ids of rows from their dictionary codes, and the counts by group.

use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, DictionaryArray, Int32Array, Int64Array, RecordBatch,
    StringViewBuilder,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{Int32Type, SchemaRef};
use datafusion::common::{DataFusionError, ScalarValue};
use datafusion::error::Result;

use super::{Count, GroupSource};

/// Ids of one group column's values, in first-seen order.
#[derive(Default)]
pub(super) struct ValueIds {
    /// Text values (dictionary columns); id `i` is `text[i]`, None for null.
    text: Vec<Option<String>>,
    ids: hashbrown::HashMap<String, u32>,
    null_id: Option<u32>,
    /// Partition values (partition columns); id `i` is `scalars[i]`.
    scalars: Vec<ScalarValue>,
    /// The last dictionary mapped, held so that its buffers (by which the
    /// next batch's dictionary is recognised) cannot be reused meanwhile,
    /// and the id of each of its codes: a column chunk's batches share one.
    last_dictionary: Option<ArrayRef>,
    code_ids: Vec<u32>,
}

impl ValueIds {
    fn text_id(&mut self, value: Option<&str>) -> u32 {
        let known = match value {
            Some(v) => self.ids.get(v).copied(),
            None => self.null_id,
        };
        if let Some(id) = known {
            return id;
        }
        let id = self.text.len() as u32;
        self.text.push(value.map(str::to_string));
        match value {
            Some(v) => {
                self.ids.insert(v.to_string(), id);
            }
            None => self.null_id = Some(id),
        }
        id
    }

    /// Maps each code of `values` (a batch's dictionary) to a value id,
    /// once per dictionary; true when the dictionary is not the last one.
    fn map_dictionary(&mut self, values: &ArrayRef) -> Result<bool> {
        if let Some(last) = &self.last_dictionary
            && same_buffers(last, values)
        {
            return Ok(false);
        }
        let text = values.as_string_opt::<i32>().ok_or_else(|| {
            DataFusionError::Internal(format!("dictionary values of type {}", values.data_type()))
        })?;
        self.code_ids = (0..text.len())
            .map(|i| self.text_id(text.is_valid(i).then(|| text.value(i))))
            .collect();
        self.last_dictionary = Some(Arc::clone(values));
        Ok(true)
    }
}

/// Whether two arrays are views of the same buffers (the same dictionary).
pub(super) fn same_buffers(a: &ArrayRef, b: &ArrayRef) -> bool {
    let (a, b) = (a.to_data(), b.to_data());
    a.len() == b.len()
        && a.offset() == b.offset()
        && a.buffers().len() == b.buffers().len()
        && a.buffers()
            .iter()
            .zip(b.buffers())
            .all(|(x, y)| x.as_ptr() == y.as_ptr() && x.len() == y.len())
}

/// One id per group and the counts of each. A group gets its id when a row
/// of it is first seen: level 0 maps the first column's value ids to
/// groups, and each further level maps (group so far, value id of the next
/// column) to a group. Only groups that rows reached are emitted.
pub(super) struct GroupTable {
    columns: Vec<ValueIds>,
    /// Level 0: value id of the first column -> group (u32::MAX: none yet).
    first: Vec<u32>,
    /// Level 0: group -> value id of the first column.
    first_of: Vec<u32>,
    /// Further levels: (group so far, value id) -> group.
    pairs: Vec<hashbrown::HashMap<u64, u32>>,
    /// Further levels: group -> (group so far, value id).
    pair_of: Vec<Vec<(u32, u32)>>,
    /// For each aggregate, the count of each final group.
    counts: Vec<Vec<i64>>,
    /// The group of each combination of codes of the current dictionaries
    /// (NO_GROUP: not seen yet), while they and the file's partition
    /// values stay the same.
    local_groups: Vec<u32>,
    local_constants: Option<Vec<u32>>,
}

const NO_GROUP: u32 = u32::MAX;

/// Counters a combination of codes has: consecutive rows count into
/// different lanes, since rows of one combination in a row would otherwise
/// each wait for the store of the one before.
const LANES: usize = 4;

/// The counter of row `r` of combination `l`.
fn lane(r: usize, l: usize) -> usize {
    l * LANES + r % LANES
}

/// The rows of each combination, its lanes summed.
fn lane_totals(lanes: &[u32]) -> Vec<u64> {
    lanes
        .chunks_exact(LANES)
        .map(|c| c.iter().map(|n| u64::from(*n)).sum())
        .collect()
}

/// Combinations of codes beyond which rows are grouped through the value
/// ids of each column (a hash lookup a column) rather than by a table
/// indexed by their codes (4 bytes a combination).
pub(super) const LOCAL_GROUPS: usize = 1 << 18;

/// One group column's codes in a batch.
enum Codes {
    /// The value id of a partition column's value, the same for every row.
    Constant(u32),
    /// A dictionary column's keys.
    Keys(Int32Array),
}

/// The constant value ids among `columns`, in order.
fn constants(columns: &[Codes]) -> Vec<u32> {
    columns
        .iter()
        .filter_map(|c| match c {
            Codes::Constant(id) => Some(*id),
            Codes::Keys(_) => None,
        })
        .collect()
}

impl GroupTable {
    pub(super) fn new(groups: &[GroupSource], aggregates: usize) -> Self {
        GroupTable {
            columns: groups.iter().map(|_| ValueIds::default()).collect(),
            first: Vec::new(),
            first_of: Vec::new(),
            pairs: groups.iter().skip(1).map(|_| Default::default()).collect(),
            pair_of: groups.iter().skip(1).map(|_| Vec::new()).collect(),
            counts: vec![Vec::new(); aggregates],
            local_groups: Vec::new(),
            local_constants: None,
        }
    }

    /// How many groups rows have reached (with no group column, the one
    /// group every row is in, as an aggregation without GROUP BY has).
    pub(super) fn len(&self) -> usize {
        if self.columns.is_empty() {
            return 1;
        }
        self.pair_of.last().map_or(self.first_of.len(), Vec::len)
    }

    /// Roughly the bytes held, for the memory pool.
    pub(super) fn memory_size(&self) -> usize {
        let text: usize = self
            .columns
            .iter()
            .map(|c| {
                let values: usize = c.text.iter().flatten().map(String::capacity).sum();
                // Each value is held twice (by id and in the map).
                2 * values + 64 * c.text.len() + 4 * c.code_ids.capacity()
            })
            .sum();
        let levels: usize = self.pairs.iter().map(|p| 16 * p.capacity()).sum::<usize>()
            + self.pair_of.iter().map(|p| 8 * p.capacity()).sum::<usize>()
            + 4 * (self.first.capacity() + self.first_of.capacity());
        let counts: usize = self.counts.iter().map(|c| 8 * c.capacity()).sum();
        text + levels + counts + 4 * self.local_groups.capacity()
    }

    fn partition_id(&mut self, column: usize, value: &ScalarValue) -> u32 {
        let scalars = &mut self.columns[column].scalars;
        match scalars.iter().position(|s| s == value) {
            Some(i) => i as u32,
            None => {
                scalars.push(value.clone());
                (scalars.len() - 1) as u32
            }
        }
    }

    /// Counts the rows of `batch` (of a file with `partition_values`).
    pub(super) fn add(
        &mut self,
        batch: &RecordBatch,
        groups: &[GroupSource],
        partition_values: &[ScalarValue],
        selected: Option<&[bool]>,
        counts: &[Count],
    ) -> Result<()> {
        // Each column's codes in this batch: a dictionary's keys (a null is
        // the code after its last value) or one partition value.
        let mut columns: Vec<Codes> = Vec::with_capacity(groups.len());
        for (i, group) in groups.iter().enumerate() {
            columns.push(match group {
                GroupSource::Partition(p) => {
                    let value = partition_values.get(*p).ok_or_else(|| {
                        DataFusionError::Internal("a file without its partition value".into())
                    })?;
                    Codes::Constant(self.partition_id(i, value))
                }
                GroupSource::Dictionary(name) => {
                    let column = batch.column_by_name(name).ok_or_else(|| {
                        DataFusionError::Internal(format!("no column {name} was read"))
                    })?;
                    let dictionary: &DictionaryArray<Int32Type> =
                        column.as_dictionary_opt().ok_or_else(|| {
                            DataFusionError::Internal(format!("{name} was not read as codes"))
                        })?;
                    if self.columns[i].map_dictionary(dictionary.values())? {
                        self.local_groups.clear();
                    }
                    Codes::Keys(dictionary.keys().clone())
                }
            });
        }
        if columns.iter().any(|c| matches!(c, Codes::Constant(_)))
            && self.local_constants.as_deref() != Some(&constants(&columns))
        {
            self.local_groups.clear();
            self.local_constants = Some(constants(&columns));
        }
        let rows = batch.num_rows();
        let radix: Vec<usize> = columns
            .iter()
            .enumerate()
            .map(|(i, c)| match c {
                Codes::Constant(_) => 1,
                Codes::Keys(_) => self.columns[i].code_ids.len() + 1,
            })
            .collect();
        let product = radix
            .iter()
            .try_fold(1usize, |p, r| p.checked_mul(*r))
            .filter(|p| *p <= LOCAL_GROUPS);
        let mut group: Vec<u32>;
        match product {
            // Few combinations of codes: each row's combination indexes the
            // groups of this batch's dictionaries directly; a combination
            // gets its group (through the value ids) when first seen.
            Some(product) => {
                if self.local_groups.len() != product {
                    self.local_groups.clear();
                    self.local_groups.resize(product, NO_GROUP);
                }
                // No dictionary column among the groups (a filtered count
                // without GROUP BY, or by partition only): every row is in
                // the one combination, and only the passing rows are counted.
                if product == 1 {
                    let n = selected.map_or(rows, |s| s.iter().filter(|s| **s).count());
                    return self.add_combinations(&columns, &radix, &[n as u64], counts);
                }
                // One dictionary column among them: its codes are the
                // combinations.
                let mut keyed = columns
                    .iter()
                    .enumerate()
                    .filter_map(|(c, codes)| match codes {
                        Codes::Keys(keys) => Some((c, keys)),
                        Codes::Constant(_) => None,
                    });
                if let (Some((c, keys)), None) = (keyed.next(), keyed.next())
                    && product <= rows
                {
                    return self.add_codes(&columns, &radix, c, keys, selected, counts);
                }
                let mut local = vec![0u32; rows];
                for (codes, radix) in columns.iter().zip(&radix) {
                    if let Codes::Keys(keys) = codes {
                        let null = (*radix - 1) as u32;
                        let radix = *radix as u32;
                        match keys.nulls().filter(|n| n.null_count() > 0) {
                            None => {
                                for (l, k) in local.iter_mut().zip(keys.values()) {
                                    *l = *l * radix + *k as u32;
                                }
                            }
                            // 64 rows a word of the validity bits, so that
                            // the choice of code is a select, not a branch.
                            Some(nulls) => {
                                let words = nulls.inner().bit_chunks().iter_padded();
                                for ((l, k), word) in local
                                    .chunks_mut(64)
                                    .zip(keys.values().chunks(64))
                                    .zip(words)
                                {
                                    for (j, (l, k)) in l.iter_mut().zip(k).enumerate() {
                                        let valid = (word >> j) & 1 != 0;
                                        *l = *l * radix + if valid { *k as u32 } else { null };
                                    }
                                }
                            }
                        }
                    }
                }
                // Fewer combinations than rows: count the rows of each
                // combination first, then give each its group once.
                if product <= rows {
                    return self.add_histogram(&columns, &radix, &local, selected, counts);
                }
                group = vec![0u32; rows];
                let mut ids = vec![0u32; columns.len()];
                for (r, (g, l)) in group.iter_mut().zip(&local).enumerate() {
                    if selected.is_some_and(|s| !s[r]) {
                        *g = NO_GROUP;
                        continue;
                    }
                    let mut found = self.local_groups[*l as usize];
                    if found == NO_GROUP {
                        let mut rest = *l as usize;
                        for c in (0..columns.len()).rev() {
                            let code = rest % radix[c];
                            rest /= radix[c];
                            ids[c] = self.value_id(c, &columns[c], code);
                        }
                        found = self.group_of(&ids);
                        self.local_groups[*l as usize] = found;
                    }
                    *g = found;
                }
            }
            // Too many: each row's value ids, folded level by level.
            None => {
                group = vec![0u32; rows];
                let mut ids = vec![0u32; columns.len()];
                for (r, g) in group.iter_mut().enumerate() {
                    if selected.is_some_and(|s| !s[r]) {
                        *g = NO_GROUP;
                        continue;
                    }
                    for (c, codes) in columns.iter().enumerate() {
                        let code = match codes {
                            Codes::Constant(_) => 0,
                            Codes::Keys(keys) if keys.is_null(r) => radix[c] - 1,
                            Codes::Keys(keys) => keys.value(r) as usize,
                        };
                        ids[c] = self.value_id(c, codes, code);
                    }
                    *g = self.group_of(&ids);
                }
            }
        }
        let reached = self.len();
        for (counts, count) in self.counts.iter_mut().zip(counts) {
            counts.resize(reached, 0);
            let keys = match count {
                Count::NonNull(c) => match &columns[*c] {
                    Codes::Keys(keys) if keys.null_count() > 0 => Some(keys),
                    _ => None,
                },
                Count::Rows => None,
            };
            let rows = group.iter().enumerate().filter(|(_, g)| **g != NO_GROUP);
            match keys {
                None => rows.for_each(|(_, g)| counts[*g as usize] += 1),
                Some(keys) => rows
                    .filter(|(r, _)| keys.is_valid(*r))
                    .for_each(|(_, g)| counts[*g as usize] += 1),
            }
        }
        Ok(())
    }

    /// Adds the counts of rows by combination of codes (`local`, indexes
    /// of `local_groups`): one pass over the rows, then one group lookup
    /// per combination met rather than per row.
    fn add_histogram(
        &mut self,
        columns: &[Codes],
        radix: &[usize],
        local: &[u32],
        selected: Option<&[bool]>,
        counts: &[Count],
    ) -> Result<()> {
        let mut lanes = vec![0u32; self.local_groups.len() * LANES];
        let mut count = |r: usize, l: u32, n: u32| lanes[lane(r, l as usize)] += n;
        match selected {
            None => local.iter().enumerate().for_each(|(r, l)| count(r, *l, 1)),
            Some(selected) => local
                .iter()
                .zip(selected)
                .enumerate()
                .for_each(|(r, (l, s))| count(r, *l, u32::from(*s))),
        }
        self.add_combinations(columns, radix, &lane_totals(&lanes), counts)
    }

    /// As [`Self::add_histogram`] when column `c` is the only dictionary
    /// column (the others constant, of radix 1): each row's code is its
    /// combination, counted straight from the keys. A null row's key is
    /// undefined (any code, or padding), so null rows are counted under the
    /// code they hold, then moved to the null code.
    fn add_codes(
        &mut self,
        columns: &[Codes],
        radix: &[usize],
        c: usize,
        keys: &Int32Array,
        selected: Option<&[bool]>,
        counts: &[Count],
    ) -> Result<()> {
        let null = radix[c] - 1;
        // A negative key wraps to a huge index, clamped like the rest.
        let code = |k: i32| (k as usize).min(null);
        let mut lanes = vec![0u32; self.local_groups.len() * LANES];
        match selected {
            None => {
                for (r, k) in keys.values().iter().enumerate() {
                    lanes[lane(r, code(*k))] += 1;
                }
            }
            Some(selected) => {
                for (r, (k, s)) in keys.values().iter().zip(selected).enumerate() {
                    lanes[lane(r, code(*k))] += u32::from(*s);
                }
            }
        }
        if let Some(nulls) = keys.nulls().filter(|n| n.null_count() > 0) {
            for r in (!nulls.inner()).set_indices() {
                let n = selected.map_or(1, |s| u32::from(s[r]));
                lanes[lane(r, code(keys.values()[r]))] -= n;
                lanes[lane(r, null)] += n;
            }
        }
        self.add_combinations(columns, radix, &lane_totals(&lanes), counts)
    }

    /// Adds `rows_of[l]` rows to the group of each combination of codes `l`
    /// (an index of `local_groups`) met.
    fn add_combinations(
        &mut self,
        columns: &[Codes],
        radix: &[usize],
        rows_of: &[u64],
        counts: &[Count],
    ) -> Result<()> {
        let mut met = Vec::new();
        let mut ids = vec![0u32; columns.len()];
        let mut codes = vec![0usize; columns.len()];
        for (l, n) in rows_of.iter().enumerate().filter(|(_, n)| **n > 0) {
            let mut rest = l;
            for c in (0..columns.len()).rev() {
                codes[c] = rest % radix[c];
                rest /= radix[c];
            }
            let mut group = self.local_groups[l];
            if group == NO_GROUP {
                for c in 0..columns.len() {
                    ids[c] = self.value_id(c, &columns[c], codes[c]);
                }
                group = self.group_of(&ids);
                self.local_groups[l] = group;
            }
            met.push((group, *n as i64, codes.clone()));
        }
        let reached = self.len();
        for (totals, count) in self.counts.iter_mut().zip(counts) {
            totals.resize(reached, 0);
            for (group, n, codes) in &met {
                let counted = match count {
                    Count::Rows => true,
                    // A null is the code after the dictionary's last value.
                    Count::NonNull(c) => {
                        matches!(columns[*c], Codes::Constant(_)) || codes[*c] + 1 != radix[*c]
                    }
                };
                if counted {
                    totals[*group as usize] += n;
                }
            }
        }
        Ok(())
    }

    /// The value id of `code` in column `c`.
    fn value_id(&mut self, c: usize, codes: &Codes, code: usize) -> u32 {
        match codes {
            Codes::Constant(id) => *id,
            Codes::Keys(_) => match self.columns[c].code_ids.get(code) {
                Some(id) => *id,
                None => self.columns[c].text_id(None),
            },
        }
    }

    /// The group of a row whose columns have value `ids`, made when new.
    fn group_of(&mut self, ids: &[u32]) -> u32 {
        let Some(first) = ids.first() else {
            return 0;
        };
        let value = *first as usize;
        if value >= self.first.len() {
            self.first.resize(value + 1, NO_GROUP);
        }
        if self.first[value] == NO_GROUP {
            self.first[value] = self.first_of.len() as u32;
            self.first_of.push(*first);
        }
        let mut g = self.first[value];
        for (level, id) in ids.iter().enumerate().skip(1) {
            let (pairs, pair_of) = (&mut self.pairs[level - 1], &mut self.pair_of[level - 1]);
            let key = (u64::from(g) << 32) | u64::from(*id);
            g = *pairs.entry(key).or_insert_with(|| {
                pair_of.push((g, *id));
                (pair_of.len() - 1) as u32
            });
        }
        g
    }

    /// The value id of each column for each group, in group order.
    fn unfold(&self) -> Vec<Vec<u32>> {
        let n = self.len();
        let mut ids = vec![vec![0u32; n]; self.columns.len()];
        for group in 0..n {
            let mut g = group as u32;
            for level in (0..self.pair_of.len()).rev() {
                let (before, id) = self.pair_of[level][g as usize];
                ids[level + 1][group] = id;
                g = before;
            }
            if let Some(first) = ids.first_mut() {
                first[group] = self.first_of[g as usize];
            }
        }
        ids
    }

    /// The groups and counts as a batch of the partial aggregation's schema.
    pub(super) fn emit(&self, schema: &SchemaRef, groups: &[GroupSource]) -> Result<RecordBatch> {
        let n = self.len();
        let ids = self.unfold();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(schema.fields().len());
        for (((group, column_ids), values), field) in groups
            .iter()
            .zip(&ids)
            .zip(&self.columns)
            .zip(schema.fields())
        {
            let array: ArrayRef = match group {
                GroupSource::Dictionary(_) => {
                    let mut builder = StringViewBuilder::with_capacity(n);
                    for id in column_ids {
                        builder.append_option(values.text[*id as usize].as_deref());
                    }
                    Arc::new(builder.finish())
                }
                GroupSource::Partition(_) => ScalarValue::iter_to_array(
                    column_ids
                        .iter()
                        .map(|id| values.scalars[*id as usize].clone()),
                )?,
            };
            columns.push(if array.data_type() == field.data_type() {
                array
            } else {
                cast(&array, field.data_type())?
            });
        }
        for counts in &self.counts {
            let mut counts = counts.clone();
            counts.resize(n, 0);
            columns.push(Arc::new(Int64Array::from(counts)));
        }
        Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::StringArray;
    use datafusion::arrow::buffer::{NullBuffer, ScalarBuffer};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    /// Teams of six rows: payments, web, payments, null, web, null. The
    /// null rows hold codes 2 (ops, which no row has) and 0 (payments).
    fn teams() -> RecordBatch {
        let keys = Int32Array::new(
            ScalarBuffer::from(vec![0, 1, 0, 2, 1, 0]),
            Some(NullBuffer::from(vec![true, true, true, false, true, false])),
        );
        let values = Arc::new(StringArray::from(vec!["payments", "web", "ops"]));
        let teams = DictionaryArray::<Int32Type>::try_new(keys, values).unwrap();
        let schema = Schema::new(vec![Field::new("team", teams.data_type().clone(), true)]);
        RecordBatch::try_new(Arc::new(schema), vec![Arc::new(teams)]).unwrap()
    }

    /// The table's groups as (team, rows, non-null teams), in group order.
    fn counted(selected: Option<&[bool]>) -> Vec<(Option<String>, i64, i64)> {
        let groups = [GroupSource::Dictionary("team".into())];
        let counts = [Count::Rows, Count::NonNull(0)];
        let mut table = GroupTable::new(&groups, counts.len());
        table
            .add(&teams(), &groups, &[], selected, &counts)
            .unwrap();
        let schema = Arc::new(Schema::new(vec![
            Field::new("team", DataType::Utf8View, true),
            Field::new("n", DataType::Int64, false),
            Field::new("m", DataType::Int64, false),
        ]));
        let batch = table.emit(&schema, &groups).unwrap();
        let team = batch.column(0).as_string_view();
        let n = batch
            .column(1)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        let m = batch
            .column(2)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
        (0..batch.num_rows())
            .map(|r| {
                let name = team.is_valid(r).then(|| team.value(r).to_string());
                (name, n.value(r), m.value(r))
            })
            .collect()
    }

    #[test]
    fn null_rows_count_as_null_whatever_code_they_hold() {
        let mut groups = counted(None);
        groups.sort();
        assert_eq!(
            groups,
            [
                (None, 2, 0),
                (Some("payments".into()), 2, 2),
                (Some("web".into()), 2, 2),
            ]
        );
        // Rows 0, 3 and 4 only: payments, null (holding ops's code), web.
        let mut groups = counted(Some(&[true, false, false, true, true, false]));
        groups.sort();
        assert_eq!(
            groups,
            [
                (None, 1, 0),
                (Some("payments".into()), 1, 1),
                (Some("web".into()), 1, 1),
            ]
        );
    }
}
