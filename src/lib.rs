//! auditlake: convert SaaS audit archives into a Hive-partitioned Parquet
//! lake and query it with SQL.
//!
//! Data flows one way:
//! [`source`] (archive formats → Arrow batches) → [`convert`] (stage, merge,
//! write) → [`lake`] (layout, manifests, atomic commit) ← [`engine`]
//! (DataFusion session, tables, views, named queries) ← [`shell`] and [`cli`].

pub mod cli;
pub mod convert;
pub mod engine;
pub mod lake;
pub mod print_format;
pub mod pull;
pub mod report;
pub mod shell;
pub mod source;
pub(crate) mod statements;
pub mod synthetic;
pub mod table;
