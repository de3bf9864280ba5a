#![no_main]
//! Any bytes read as the export that `mappings/dashboard.toml` describes end in
//! rows or a one-line error.

use std::sync::LazyLock;

use auditlake::source::Format;
use libfuzzer_sys::fuzz_target;

static FORMAT: LazyLock<Format> = LazyLock::new(|| {
    auditlake_fuzz::mapped(include_str!("../../mappings/dashboard.toml"), "dashboard.toml")
});

fuzz_target!(|input: &[u8]| auditlake_fuzz::read_archive(input, Some(&FORMAT)));
