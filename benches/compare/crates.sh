#!/usr/bin/env bash
# Measurements that need builds of their own (benches/compare/crates/):
# - flate2's inflate backends on the same archives: miniz_oxide, zlib-rs
#   (what auditlake uses), zlib-ng (a C build; needs cmake) and the C zlib;
# - sonic-rs parsing them, built for the x86-64 baseline auditlake ships as
#   and for this CPU (-C target-cpu=native): it picks SIMD code at compile time.
# One thread each; medians of RUNS. Compare with
# `cargo run --release --features json-crates --example json_crates -- DIR`.
#   benches/compare/crates.sh [DIR] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/crates"
DIR=$(realpath "${1:-../../../target/compare/archives-2024-01:2024-06-200000}")
RUNS=${2:-5}
OUT=${CARGO_TARGET_DIR:-../../../target}/compare-crates
if ! command -v cmake >/dev/null; then
  echo "zlib-ng needs cmake (e.g. pip install cmake)" >&2
  exit 2
fi
for backend in miniz zlib-rs zlib-ng zlib; do
  BACKEND=$backend cargo build -q --release --bin inflate --no-default-features \
    --features "$backend" --target-dir "$OUT/$backend"
  "$OUT/$backend/release/inflate" "$DIR" "$RUNS"
done
BUILD=x86-64 cargo build -q --release --bin sonic --features sonic --target-dir "$OUT/sonic"
"$OUT/sonic/release/sonic" "$DIR" "$RUNS"
BUILD=native RUSTFLAGS="-C target-cpu=native" cargo build -q --release --bin sonic \
  --features sonic --target-dir "$OUT/sonic-native"
"$OUT/sonic-native/release/sonic" "$DIR" "$RUNS"
