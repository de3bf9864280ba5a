//! Month pruning from time filters.
//!
//! Files are partitioned by `year=`/`month=` directories, but users filter on
//! the event time (`created_at >= '2024-03-01'`). DataFusion prunes listing
//! partitions only with predicates on the partition columns, so this wrapper
//! derives them: from time bounds among the pushed-down filters it adds
//! `year * 100 + month BETWEEN lo AND hi`, and a query for March opens only
//! March's files. The derived predicate is implied by the original filters,
//! so results never change.
//!
//! Some filters on the time say no more than a partition predicate, since
//! every row lies in the month of its own time (LAKE.md): a bound at the
//! first instant of a month (`created_at >= '2024-01-01'`, `created_at <
//! '2024-04-01'`), and the time's month or year compared with `=`
//! (`date_trunc('month', created_at) = …`, `EXTRACT(MONTH FROM created_at) =
//! 3`). Such a filter is reported as exact and replaced by that predicate
//! ([`partition_equivalent`]), so the scan neither decodes nor tests the time
//! column for it: a month's or a quarter's question, the common compliance
//! window, then filters only on what it asks about.

use std::borrow::Cow;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Datelike, Timelike};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{ScanArgs, ScanResult, Session, TableProvider};
use datafusion::common::ScalarValue;
use datafusion::datasource::TableType;
use datafusion::error::Result;
use datafusion::logical_expr::utils::split_conjunction;
use datafusion::logical_expr::{Between, BinaryExpr, Expr, Operator, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::prelude::{col, lit};

/// A table partitioned by `year`/`month` of `time_column`.
#[derive(Debug)]
pub struct MonthPrunedTable {
    inner: Arc<dyn TableProvider>,
    time_column: String,
}

impl MonthPrunedTable {
    pub fn new(inner: Arc<dyn TableProvider>, time_column: &str) -> Self {
        MonthPrunedTable {
            inner,
            time_column: time_column.to_string(),
        }
    }

    /// The filters plus the partition predicate derived from them, if any,
    /// with each filter that says no more than a partition predicate
    /// ([`partition_equivalent`]) replaced by it.
    fn with_month_filter<'a>(&self, filters: &'a [Expr]) -> Cow<'a, [Expr]> {
        let range = month_range(filters, &self.time_column);
        let mut replaced = false;
        let mut all: Vec<Expr> = filters
            .iter()
            .map(|f| match partition_equivalent(f, &self.time_column) {
                Some(partitions) => {
                    replaced = true;
                    partitions
                }
                None => f.clone(),
            })
            .collect();
        match range {
            Some((lo, hi)) => all.push(year_month().between(lit(lo), lit(hi))),
            None if !replaced => return Cow::Borrowed(filters),
            None => {}
        }
        Cow::Owned(all)
    }
}

/// `year * 100 + month`, the partition key in one number.
fn year_month() -> Expr {
    col("year") * lit(100) + col("month")
}

#[async_trait]
impl TableProvider for MonthPrunedTable {
    fn schema(&self) -> SchemaRef {
        self.inner.schema()
    }

    fn table_type(&self) -> TableType {
        self.inner.table_type()
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        let mut support = self.inner.supports_filters_pushdown(filters)?;
        for (filter, support) in filters.iter().zip(support.iter_mut()) {
            if partition_equivalent(filter, &self.time_column).is_some() {
                *support = TableProviderFilterPushDown::Exact;
            }
        }
        Ok(support)
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let filters = self.with_month_filter(filters);
        self.inner.scan(state, projection, &filters, limit).await
    }

    async fn scan_with_args<'a>(
        &self,
        state: &dyn Session,
        args: ScanArgs<'a>,
    ) -> Result<ScanResult> {
        let filters = self.with_month_filter(args.filters().unwrap_or(&[]));
        let projection = args.projection();
        let args = ScanArgs::default()
            .with_filters(Some(&filters))
            .with_projection(projection)
            .with_limit(args.limit());
        self.inner.scan_with_args(state, args).await
    }
}

/// The inclusive range of `year * 100 + month` that the conjunction of
/// `filters` allows for `time_column`, when it is bounded on either side.
fn month_range(filters: &[Expr], time_column: &str) -> Option<(i32, i32)> {
    let mut lo: Option<i64> = None; // inclusive lower bound, micros
    let mut hi: Option<i64> = None; // inclusive upper bound, micros
    let mut raise = |v: i64| lo = Some(lo.map_or(v, |l| l.max(v)));
    let mut bounds = Vec::new();
    for filter in filters {
        for expr in split_conjunction(filter) {
            collect_bounds(expr, time_column, &mut bounds);
        }
    }
    for (op, v) in bounds {
        match op {
            Operator::Gt => raise(v.saturating_add(1)),
            Operator::GtEq => raise(v),
            Operator::Lt => hi = Some(hi.map_or(v - 1, |h| h.min(v - 1))),
            Operator::LtEq => hi = Some(hi.map_or(v, |h| h.min(v))),
            Operator::Eq => {
                raise(v);
                hi = Some(hi.map_or(v, |h| h.min(v)));
            }
            _ => {}
        }
    }
    if lo.is_none() && hi.is_none() {
        return None;
    }
    let ym = |micros: i64| {
        DateTime::from_timestamp_micros(micros).map(|t| t.year() * 100 + t.month() as i32)
    };
    let lo = lo.map_or(Some(i32::MIN), ym)?;
    let hi = hi.map_or(Some(i32::MAX), ym)?;
    Some((lo, hi))
}

/// The predicate on `year`/`month` that holds of exactly the rows `filter`
/// holds of, when there is one: every row lies in the UTC month of its own
/// time (LAKE.md), so
/// - `time >= t` and `time < t` with `t` a month's first instant are
///   `year * 100 + month >= …` and `< …`;
/// - `date_trunc('month' | 'year', time) = t` (`t` a month's or a year's
///   first instant) is that month or year;
/// - `date_part('month' | 'year', time) = n` (also `EXTRACT`) is
///   `month = n` or `year = n`.
///
/// Either side may hold the column. The time column's values are instants
/// (`Timestamp(ms, "UTC")` in every table), whose fields DataFusion reads in
/// UTC like the partitions.
fn partition_equivalent(filter: &Expr, time_column: &str) -> Option<Expr> {
    let Expr::BinaryExpr(BinaryExpr { left, op, right }) = filter else {
        return None;
    };
    let (op, subject, value) = match op.swap() {
        Some(swapped) if matches!(right.as_ref(), Expr::Column(_) | Expr::ScalarFunction(_)) => {
            (swapped, right.as_ref(), left.as_ref())
        }
        _ => (*op, left.as_ref(), right.as_ref()),
    };
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == time_column);
    if is_time(subject) {
        let t = month_start(value)?;
        let ym = lit(t.year() * 100 + t.month() as i32);
        return match op {
            Operator::GtEq => Some(year_month().gt_eq(ym)),
            Operator::Lt => Some(year_month().lt(ym)),
            _ => None,
        };
    }
    let Expr::ScalarFunction(call) = subject else {
        return None;
    };
    let [unit, arg] = &call.args[..] else {
        return None;
    };
    if op != Operator::Eq || !is_time(arg) {
        return None;
    }
    let unit = match unit {
        Expr::Literal(ScalarValue::Utf8(Some(u)) | ScalarValue::Utf8View(Some(u)), _) => {
            u.to_ascii_lowercase()
        }
        _ => return None,
    };
    match (call.func.name(), unit.as_str()) {
        ("date_trunc", "month") => {
            let t = month_start(value)?;
            Some(year_month().eq(lit(t.year() * 100 + t.month() as i32)))
        }
        ("date_trunc", "year") => {
            let t = month_start(value).filter(|t| t.month() == 1)?;
            Some(col("year").eq(lit(t.year())))
        }
        ("date_part", "month") => {
            let n = literal_integer(value).filter(|n| (1..=12).contains(n))?;
            Some(col("month").eq(lit(n as i32)))
        }
        ("date_part", "year") => {
            let n = literal_integer(value).and_then(|n| i32::try_from(n).ok())?;
            Some(col("year").eq(lit(n)))
        }
        _ => None,
    }
}

/// A timestamp literal that is exactly the first instant of a UTC month.
fn month_start(value: &Expr) -> Option<DateTime<chrono::Utc>> {
    // literal_micros rounds nanoseconds; a bound between two microseconds
    // is not a month's first instant.
    if let Expr::Literal(ScalarValue::TimestampNanosecond(Some(v), _), _) = value
        && v % 1_000 != 0
    {
        return None;
    }
    let t = literal_micros(value).and_then(DateTime::from_timestamp_micros)?;
    (t.day() == 1 && t.num_seconds_from_midnight() == 0 && t.nanosecond() == 0).then_some(t)
}

/// An integer literal (`date_part` gives `Int32`; users may write either).
fn literal_integer(value: &Expr) -> Option<i64> {
    match value {
        Expr::Literal(ScalarValue::Int32(Some(n)), _) => Some(i64::from(*n)),
        Expr::Literal(ScalarValue::Int64(Some(n)), _) => Some(*n),
        _ => None,
    }
}

/// Collects `(op, micros)` for comparisons `time_column op literal`,
/// normalised so the column is on the left.
fn collect_bounds(expr: &Expr, time_column: &str, out: &mut Vec<(Operator, i64)>) {
    let is_time = |e: &Expr| matches!(e, Expr::Column(c) if c.name == time_column);
    match expr {
        Expr::BinaryExpr(BinaryExpr { left, op, right }) => {
            if is_time(left)
                && let Some(v) = literal_micros(right)
            {
                out.push((*op, v));
            } else if is_time(right)
                && let Some(v) = literal_micros(left)
                && let Some(op) = op.swap()
            {
                out.push((op, v));
            }
        }
        Expr::Between(Between {
            expr,
            negated: false,
            low,
            high,
        }) if is_time(expr) => {
            if let Some(v) = literal_micros(low) {
                out.push((Operator::GtEq, v));
            }
            if let Some(v) = literal_micros(high) {
                out.push((Operator::LtEq, v));
            }
        }
        _ => {}
    }
}

/// A timestamp literal in microseconds (rounding toward the bound's side
/// does not matter at month granularity).
fn literal_micros(expr: &Expr) -> Option<i64> {
    let Expr::Literal(value, _) = expr else {
        return None;
    };
    match value {
        ScalarValue::TimestampSecond(Some(v), _) => v.checked_mul(1_000_000),
        ScalarValue::TimestampMillisecond(Some(v), _) => v.checked_mul(1_000),
        ScalarValue::TimestampMicrosecond(Some(v), _) => Some(*v),
        ScalarValue::TimestampNanosecond(Some(v), _) => Some(v.div_euclid(1_000)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Expr {
        let micros = DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
        lit(ScalarValue::TimestampMicrosecond(
            Some(micros),
            Some("UTC".into()),
        ))
    }

    #[test]
    fn derives_month_ranges() {
        let t = || col("created_at");
        let march = t()
            .gt_eq(ts("2024-03-01T00:00:00Z"))
            .and(t().lt(ts("2024-04-01T00:00:00Z")));
        assert_eq!(month_range(&[march], "created_at"), Some((202403, 202403)));
        let between = t().between(ts("2023-12-15T00:00:00Z"), ts("2024-02-01T00:00:00Z"));
        assert_eq!(
            month_range(&[between], "created_at"),
            Some((202312, 202402))
        );
        let open = ts("2024-05-31T23:59:59Z").lt(t());
        assert_eq!(month_range(&[open], "created_at"), Some((202405, i32::MAX)));
        let eq = t().eq(ts("2024-01-31T23:59:59Z"));
        assert_eq!(month_range(&[eq], "created_at"), Some((202401, 202401)));
        assert_eq!(
            month_range(&[col("app_name").eq(lit("x"))], "created_at"),
            None
        );
        // A disjunction says nothing certain about either side.
        let or = t()
            .lt(ts("2024-01-01T00:00:00Z"))
            .or(t().gt(ts("2024-06-01T00:00:00Z")));
        assert_eq!(month_range(&[or], "created_at"), None);
    }

    #[test]
    fn only_bounds_at_a_months_first_instant_are_exact() {
        let t = || col("created_at");
        let exact = |e: Expr| partition_equivalent(&e, "created_at").is_some();
        assert!(exact(t().gt_eq(ts("2024-03-01T00:00:00Z"))));
        assert!(exact(t().lt(ts("2025-01-01T00:00:00Z"))));
        assert!(exact(ts("2024-03-01T00:00:00Z").lt_eq(t())));
        assert!(exact(ts("2024-03-01T00:00:00Z").gt(t())));
        // Other operators, instants and columns test every row.
        assert!(!exact(t().gt(ts("2024-03-01T00:00:00Z"))));
        assert!(!exact(t().lt_eq(ts("2024-03-01T00:00:00Z"))));
        assert!(!exact(t().eq(ts("2024-03-01T00:00:00Z"))));
        assert!(!exact(t().gt_eq(ts("2024-03-01T00:00:00.001Z"))));
        assert!(!exact(t().gt_eq(ts("2024-03-02T00:00:00Z"))));
        assert!(!exact(col("updated_at").gt_eq(ts("2024-03-01T00:00:00Z"))));
        assert!(!exact(t().between(
            ts("2024-03-01T00:00:00Z"),
            ts("2024-04-01T00:00:00Z")
        )));
        let half_a_micro = lit(ScalarValue::TimestampNanosecond(
            Some(1_709_251_200_000_000_500),
            Some("UTC".into()),
        ));
        assert!(!exact(t().gt_eq(half_a_micro)));
        let at_start_in_nanos = lit(ScalarValue::TimestampNanosecond(
            Some(1_709_251_200_000_000_000),
            Some("UTC".into()),
        ));
        assert!(exact(t().gt_eq(at_start_in_nanos)));
    }

    #[test]
    fn month_and_year_functions_of_the_time_are_their_partitions() {
        use datafusion::functions::datetime::expr_fn::{date_part, date_trunc};
        let t = || col("created_at");
        let to = |e: Expr| partition_equivalent(&e, "created_at");
        assert_eq!(
            to(date_trunc(lit("month"), t()).eq(ts("2024-03-01T00:00:00Z"))),
            Some(year_month().eq(lit(202403)))
        );
        assert_eq!(
            to(ts("2024-01-01T00:00:00Z").eq(date_trunc(lit("YEAR"), t()))),
            Some(col("year").eq(lit(2024)))
        );
        assert_eq!(
            to(date_part(lit("month"), t()).eq(lit(3))),
            Some(col("month").eq(lit(3)))
        );
        assert_eq!(
            to(lit(2023i64).eq(date_part(lit("year"), t()))),
            Some(col("year").eq(lit(2023)))
        );
        assert_eq!(
            to(t().lt(ts("2024-04-01T00:00:00Z"))),
            Some(year_month().lt(lit(202404)))
        );
        // Not a month's (or a year's) start, not a month number, another
        // unit, operator or column: tested row by row.
        assert_eq!(
            to(date_trunc(lit("month"), t()).eq(ts("2024-03-02T00:00:00Z"))),
            None
        );
        assert_eq!(
            to(date_trunc(lit("year"), t()).eq(ts("2024-03-01T00:00:00Z"))),
            None
        );
        assert_eq!(
            to(date_trunc(lit("day"), t()).eq(ts("2024-03-01T00:00:00Z"))),
            None
        );
        assert_eq!(to(date_part(lit("month"), t()).eq(lit(13))), None);
        assert_eq!(to(date_part(lit("day"), t()).eq(lit(1))), None);
        assert_eq!(to(date_part(lit("month"), t()).gt_eq(lit(3))), None);
        assert_eq!(
            to(date_part(lit("month"), col("updated_at")).eq(lit(3))),
            None
        );
    }
}
