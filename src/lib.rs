//! auditlake: convert SaaS audit archives into a Hive-partitioned Parquet
//! lake and query it with SQL.
//!
//! Data flows one way:
//! [`source`] (archive formats → Arrow batches) → [`convert`] (stage, merge,
//! write) → [`lake`] (layout, manifests, atomic commit); the [`cli`] drives it.

pub mod cli;
pub mod convert;
pub mod lake;
pub mod source;
pub mod table;
