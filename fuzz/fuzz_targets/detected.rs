#![no_main]
//! Any bytes read as `detected` end in rows or a one-line error.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| auditlake_fuzz::read_archive(input, None));
