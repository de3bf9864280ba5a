//! Link-time settings of the `auditlake` binary.

fn main() {
    // Relative relocations packed (RELR, glibc 2.36+; the linker leaves them
    // unpacked where the C library cannot apply them): the binary's ~200k
    // pointers in its tables of functions are relocated from a bitmap of
    // ~70 KB instead of a 4.8 MB table read at every start, which took about
    // a millisecond of each one-shot `auditlake query`.
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
    println!("cargo:rerun-if-changed=build.rs");
}
