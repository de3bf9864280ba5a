//! Every integration test, in one test binary: DataFusion is linked once
//! instead of once per file, which a cold CI run on two cores feels. Each
//! module drives the real `auditlake` binary (or the library) on temporary
//! lakes built from testdata/; `cargo test --test integration convert::`
//! runs one module.

mod common;
mod convert;
mod interop;
mod pull;
mod query;
mod s3;
mod shell;
mod shell_screen;
mod sources;
mod upgrade;
mod verify;
