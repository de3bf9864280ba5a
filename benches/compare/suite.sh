#!/usr/bin/env bash
# The query suite (suite.sql) on auditlake and DuckDB, each over its own lake
# of the same synthetic archives, in one run (see suite.py for how each side
# is timed). Lakes are built once per size and kept under target/compare/:
#   benches/compare/suite.sh [MONTHS=2024-01:2024-06] [PER_MONTH=200000] [RUNS=7] [PROFILE=release]
# e.g. MONTHS=2024-01:2024-12 PER_MONTH=1000000 for 12 x 1M events.
set -euo pipefail
cd "$(dirname "$0")/../.."

MONTHS=${MONTHS:-2024-01:2024-06}
PER_MONTH=${PER_MONTH:-200000}
RUNS=${RUNS:-7}

WORK=${WORK:-target/compare}
HERE=benches/compare

source "$HERE/prepare.sh"
OURS="$WORK/suite-lake-auditlake-$MONTHS-$PER_MONTH"
THEIRS="$WORK/suite-lake-duckdb-$MONTHS-$PER_MONTH"
if [ ! -d "$OURS" ]; then "$BIN" convert --quiet --lake "$OURS" "$ARCHIVES"; fi
if [ ! -d "$THEIRS" ]; then "$PY" "$HERE/duckdb_side.py" convert "$ARCHIVES" "$THEIRS"; fi

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "data:    $(ls "$ARCHIVES"/*.json.gz | wc -l) months x $PER_MONTH events; auditlake $PROFILE build; DuckDB $("$PY" -c 'import duckdb; print(duckdb.__version__)')"
"$PY" "$HERE/suite.py" "$BIN" "$OURS" "$THEIRS" "$RUNS" "$@"
