//! Limits on what one statement may ask of the engine.
//!
//! The parser, planner and optimizer walk a statement recursively: a long
//! chain of `OR`s, `+`s or `UNION ALL`s is a tree as deep as the chain is
//! long. DataFusion's `recursive_protection` grows the stack while it walks,
//! and the binary runs on threads with large stacks; beyond that, a
//! statement nested deeper than [`MAX_NESTING`] is refused before planning
//! with one line that says how to write it instead, rather than taking the
//! process (and a shell session) down.

use std::ops::ControlFlow;

use datafusion::sql::parser::{CopyToSource, Statement as DFStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, SetExpr, Visit, Visitor};

/// Deepest nesting of expressions, subqueries and set operations a
/// statement may have. Hand-written SQL stays far below it (the named
/// queries nest under 20 deep). It bounds what planning may cost, which
/// grows faster than the depth: in a debug build a 1,000-term `OR` chain
/// planned in 1 s, a 2,000-term `+` chain in 13 s, a 10,000-term one ran
/// for minutes.
pub const MAX_NESTING: usize = 1_000;

/// Longest statement accepted, in bytes of SQL text. The parser holds a
/// token and a syntax node for every few bytes, and a chain of operators
/// parses into a tree as deep as it is long before [`check_nesting`] can
/// look at it: a 2 MB chain of `+ 1` took 1 GB and 2.8 s to refuse, and a
/// 10 MB one overflowed the 256 MiB stack while the tree was dropped. A
/// 1 MiB statement still holds an `IN` list of 25,000 quoted ids.
pub const MAX_STATEMENT_BYTES: usize = 1 << 20;

/// Refuses statement text longer than [`MAX_STATEMENT_BYTES`], before it is
/// parsed.
pub fn check_length(sql: &str) -> anyhow::Result<()> {
    match sql.len() {
        bytes if bytes > MAX_STATEMENT_BYTES => Err(too_long(bytes)),
        _ => Ok(()),
    }
}

/// The error for a statement of `bytes` past [`MAX_STATEMENT_BYTES`].
pub fn too_long(bytes: usize) -> anyhow::Error {
    anyhow::anyhow!(
        "the statement is {bytes} bytes long; the limit is {MAX_STATEMENT_BYTES} (1 MiB): \
         split it, and put long lists of values in a table to join"
    )
}

/// Refuses a statement nested deeper than [`MAX_NESTING`].
pub fn check_nesting(statement: &DFStatement) -> anyhow::Result<()> {
    let depth = nesting(statement);
    if depth > MAX_NESTING {
        anyhow::bail!(
            "the statement nests {depth} levels deep (expressions, subqueries and UNIONs; the limit is {MAX_NESTING}): \
             write long OR chains as IN (...), and long UNION ALL chains as VALUES or a table"
        );
    }
    Ok(())
}

/// The deepest nesting in `statement`.
fn nesting(statement: &DFStatement) -> usize {
    let mut depth = Depth::default();
    let _ = match statement {
        DFStatement::Statement(s) => s.visit(&mut depth),
        DFStatement::Explain(e) => return nesting(&e.statement) + 1,
        DFStatement::CopyTo(c) => match &c.source {
            CopyToSource::Query(q) => q.visit(&mut depth),
            CopyToSource::Relation(_) => ControlFlow::Continue(()),
        },
        DFStatement::CreateExternalTable(_) | DFStatement::Reset(_) => ControlFlow::Continue(()),
    };
    depth.max
}

#[derive(Default)]
struct Depth {
    current: usize,
    max: usize,
}

impl Depth {
    fn enter(&mut self, by: usize) -> ControlFlow<()> {
        self.current += by;
        self.max = self.max.max(self.current);
        // Stop walking once the answer is known: the walk itself recurses.
        if self.max > MAX_NESTING {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.enter(1)
    }

    fn post_visit_expr(&mut self, _: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        let set_operations = set_operation_depth(&query.body);
        // Leave the set operations' depth counted for the whole query: its
        // selects are walked at that depth.
        self.enter(1 + set_operations)
    }

    fn post_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        self.current -= 1 + set_operation_depth(&query.body);
        ControlFlow::Continue(())
    }
}

/// How deep `UNION`/`EXCEPT`/`INTERSECT` nest in a query body, found
/// without recursion (a chain of 2,000 `UNION ALL`s is 2,000 deep).
fn set_operation_depth(body: &SetExpr) -> usize {
    let mut deepest = 0;
    let mut pending = vec![(body, 0usize)];
    while let Some((expr, depth)) = pending.pop() {
        if let SetExpr::SetOperation { left, right, .. } = expr {
            deepest = deepest.max(depth + 1);
            pending.push((left, depth + 1));
            pending.push((right, depth + 1));
        }
    }
    deepest
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::sql::parser::DFParser;

    fn depth_of(sql: &str) -> usize {
        let mut statements = DFParser::parse_sql(sql).unwrap();
        nesting(&statements.pop_front().unwrap())
    }

    #[test]
    fn counts_expressions_queries_and_set_operations() {
        // The query, the comparison, its two operands.
        assert_eq!(depth_of("SELECT 1 = 2"), 3);
        // a OR b OR c: two ORs, each operand one more.
        assert_eq!(depth_of("SELECT a = 1 OR a = 2 OR a = 3 FROM t"), 5);
        assert_eq!(
            depth_of("SELECT 1 UNION ALL SELECT 2 UNION ALL SELECT 3"),
            4
        );
        assert_eq!(depth_of("EXPLAIN SELECT 1"), 3);
        let long = vec!["1"; 30_000].join(" + ");
        check_length(&long).unwrap();
        assert!(
            check_nesting(&DFParser::parse_sql(&format!("SELECT {long}")).unwrap()[0]).is_err()
        );
    }

    #[test]
    fn refuses_statements_longer_than_the_limit() {
        let at_limit = format!("SELECT '{}'", "x".repeat(MAX_STATEMENT_BYTES - 9));
        assert_eq!(at_limit.len(), MAX_STATEMENT_BYTES);
        check_length(&at_limit).unwrap();
        let over = format!("{at_limit} ");
        let err = check_length(&over).unwrap_err().to_string();
        assert!(
            err.starts_with("the statement is 1048577 bytes long; the limit is 1048576 (1 MiB)"),
            "{err}"
        );
    }
}
