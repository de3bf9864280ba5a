#![no_main]
//! Any text read as a mapping file is a mapping or a one-line error.

use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &[u8]| auditlake_fuzz::read_mapping(input));
