//! Parameterised queries planned once per session.
//!
//! A named query runs again and again in one shell session (`.run
//! config-changes app=… month=…`) with new values for the same SQL. Parsing
//! and optimizing its logical plan took a fifth of the headline query (0.6
//! of ~3.3 ms), and none of it depends on the values: the placeholders are
//! typed by the analyzer and filters are pushed into the scans with them in
//! place. So the optimized plan is kept, keyed by the SQL text; each run binds
//! the values into a copy (DataFusion replaces the placeholders, in the scans'
//! filters too, so month pruning, statistics and page indexes see literals at
//! physical planning) and plans only the physical side. A plan is kept only
//! when that is exact: no function that reads the clock ([`is_deterministic`])
//! and values of the types the analyzer gave the placeholders ([`fits`]).

use std::collections::HashMap;
use std::sync::Mutex;

use datafusion::common::ParamValues;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::logical_expr::{Expr, Volatility};
use datafusion::prelude::{DataFrame, SessionContext};

/// Optimized logical plans of parameterised queries, by SQL text.
#[derive(Default)]
pub struct PreparedPlans {
    plans: Mutex<HashMap<String, LogicalPlan>>,
}

impl PreparedPlans {
    /// The optimized plan of `sql`, if it was prepared in this session.
    pub fn get(&self, sql: &str) -> Option<LogicalPlan> {
        self.lock().get(sql).cloned()
    }

    /// Keeps `optimized` as the plan of `sql`.
    pub fn insert(&self, sql: &str, optimized: LogicalPlan) {
        self.lock().insert(sql.to_string(), optimized);
    }

    /// Forgets every plan: settings or tables changed, and a plan optimized
    /// under the old ones may no longer be the plan the session would make.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, LogicalPlan>> {
        // A panic while holding the lock leaves a map that is still whole.
        self.plans.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Whether `params` fit the placeholders of `optimized` as the analyzer
/// typed them. Only then can they be bound without the analyzer: a text value
/// for a placeholder compared with a timestamp (ad-hoc SQL with `--param
/// t=2024-06-30T23:00:00Z`) needs the cast the analyzer inserts, so such a
/// query is planned whole instead.
pub fn fits(optimized: &LogicalPlan, params: &ParamValues) -> bool {
    let Ok(types) = optimized.get_parameter_types() else {
        return false;
    };
    types.iter().all(|(id, expected)| {
        matches!(
            (params.get_placeholders_with_values(id), expected),
            (Ok(value), Some(expected)) if &value.value.data_type() == expected
        )
    })
}

/// A DataFrame over `optimized` with `params` bound, whose session runs no
/// analyzer or optimizer rules again: collecting it plans the physical side
/// only, with the session's current settings.
pub fn bind(
    ctx: &SessionContext,
    optimized: LogicalPlan,
    params: ParamValues,
) -> datafusion::error::Result<DataFrame> {
    let plan = optimized.with_param_values(params)?;
    let state = SessionStateBuilder::new_from_existing(ctx.state())
        .with_analyzer_rules(Vec::new())
        .with_optimizer_rules(Vec::new())
        .build();
    Ok(DataFrame::new(state, plan))
}

/// Whether every function in `plan` (and its subqueries) is immutable. The
/// optimizer folds stable functions such as `now()` into the plan, so a kept
/// plan of `… WHERE created_at > now() - INTERVAL '1 day'` would answer for
/// the first run's time ever after; such queries are planned whole each run.
pub fn is_deterministic(plan: &LogicalPlan) -> bool {
    let mut deterministic = true;
    let _ = plan.apply_with_subqueries(|node| {
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility != Volatility::Immutable
                {
                    deterministic = false;
                }
                Ok(if deterministic {
                    TreeNodeRecursion::Continue
                } else {
                    TreeNodeRecursion::Stop
                })
            })
        })
    });
    deterministic
}

/// Whether a statement's plan may be kept: a query, not a statement that
/// changes settings or tables (those clear the kept plans instead).
pub fn is_query(plan: &LogicalPlan) -> bool {
    !matches!(
        plan,
        LogicalPlan::Statement(_)
            | LogicalPlan::Ddl(_)
            | LogicalPlan::Dml(_)
            | LogicalPlan::Copy(_)
            | LogicalPlan::Explain(_)
            | LogicalPlan::Analyze(_)
    )
}
