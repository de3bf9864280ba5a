#!/usr/bin/env bash
# Side-by-side comparison of auditlake and DuckDB on the same synthetic
# Heroku archives, in one run on one machine:
#   - convert: wall time, events/s, peak RSS (/usr/bin/time -v), lake bytes
#   - the headline query (config changes of one app in one month): median of
#     repeated runs on each engine's own lake
# and the ratios. Usage (from the repository root):
#   benches/compare/run.sh [MONTHS=2024-01:2024-06] [PER_MONTH=200000] [RUNS=15] [PROFILE=release] [PAYLOAD=small|mixed|large]
# It also measures the machine's floor under convert in the same run:
# inflating the archives alone, and inflating and parsing them into Arrow
# batches (examples/convert_floor.rs, as many threads as convert stages with).
# DuckDB comes from PyPI into a private virtualenv under target/compare/.
set -euo pipefail
cd "$(dirname "$0")/../.."

MONTHS=${MONTHS:-2024-01:2024-06}
PER_MONTH=${PER_MONTH:-200000}
RUNS=${RUNS:-15}
APP=${APP:-billing-3}
WORK=${WORK:-target/compare}
HERE=benches/compare

source "$HERE/prepare.sh"
N_MONTHS=$(ls "$ARCHIVES"/*.json.gz | wc -l)
EVENTS=$((N_MONTHS * PER_MONTH))
GZ_BYTES=$(cat "$ARCHIVES"/*.json.gz | wc -c)
JSON_BYTES=$(zcat "$ARCHIVES"/*.json.gz | wc -c)
QUERY_MONTH=$(echo "$MONTHS" | cut -d: -f1 | sed 's/-01$/-03/')
YEAR=${QUERY_MONTH%-*}; MON=$((10#${QUERY_MONTH#*-}))

# measure NAME CMD...: runs CMD under /usr/bin/time -v; sets SECONDS_<NAME> and RSS_<NAME> (MiB).
measure() {
  local name=$1; shift
  local log="$WORK/time-$name.log"
  /usr/bin/time -v "$@" > "$WORK/out-$name.log" 2> "$log"
  local wall rss
  wall=$(grep "Elapsed (wall clock)" "$log" | awk '{print $NF}' | awk -F: '{ if (NF==3) print $1*3600+$2*60+$3; else print $1*60+$2 }')
  rss=$(grep "Maximum resident set size" "$log" | awk '{print int($NF/1024)}')
  printf -v "SECONDS_$name" '%s' "$wall"
  printf -v "RSS_$name" '%s' "$rss"
}

echo "machine: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "data:    $N_MONTHS months x $PER_MONTH events = $EVENTS events ($PAYLOAD payloads, $((JSON_BYTES / EVENTS)) bytes of JSON an event), $((GZ_BYTES / 1048576)) MiB gzip, $((JSON_BYTES / 1048576)) MiB JSON"

# auditlake's convert takes seconds on a machine whose speed drifts by 20%
# from minute to minute: it runs CONVERT_RUNS times (fresh lake each time),
# spread before and after DuckDB's single long run, and the median counts.
walls=(); rss_max=0
convert_auditlake() {
  rm -rf "$WORK/lake-auditlake"
  measure auditlake "$BIN" convert --quiet --lake "$WORK/lake-auditlake" "$ARCHIVES"
  walls+=("$SECONDS_auditlake")
  if [ "$RSS_auditlake" -gt "$rss_max" ]; then rss_max=$RSS_auditlake; fi
}
CONVERT_RUNS=${CONVERT_RUNS:-3}
rm -rf "$WORK/lake-duckdb"
for _ in $(seq $(( (CONVERT_RUNS + 1) / 2 ))); do convert_auditlake; done
measure duckdb "$PY" "$HERE/duckdb_side.py" convert "$ARCHIVES" "$WORK/lake-duckdb"
for _ in $(seq $(( CONVERT_RUNS / 2 ))); do convert_auditlake; done
echo "auditlake convert runs (s): ${walls[*]}"
SECONDS_auditlake=$(printf '%s\n' "${walls[@]}" | sort -n | awk '{a[NR]=$1} END {print (NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2}')
RSS_auditlake=$rss_max
read -r _ INFLATE_S PARSE_S _ _ < <("$FLOOR" "$ARCHIVES" --threads 2 --runs 3 | tail -1 | sed 's/[a-z_]*=//g')
LAKE_A=$(du -sb --exclude=_auditlake "$WORK/lake-auditlake" | cut -f1)
LAKE_D=$(du -sb "$WORK/lake-duckdb" | cut -f1)

# Headline query: auditlake from process start to exit (what a user waits
# for), and in process via criterion (see BENCHMARKS.md); DuckDB in process.
times=()
for _ in $(seq "$RUNS"); do
  s=$(date +%s%N)
  "$BIN" query --lake "$WORK/lake-auditlake" --format csv --named config-changes --param app="$APP" --param month="$QUERY_MONTH" > "$WORK/answer-auditlake.csv"
  times+=($(( ($(date +%s%N) - s) / 1000 )))
done
Q_A=$(printf '%s\n' "${times[@]}" | sort -n | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m/1000}')
ROWS_A=$(($(wc -l < "$WORK/answer-auditlake.csv") - 1))
# In process: the same query RUNS times in one shell session (`.timer on`
# prints each query's time, planning and execution, in ms).
Q_A_IN=$( { echo ".timer on"; for _ in $(seq "$RUNS"); do echo ".run config-changes app=$APP month=$QUERY_MONTH"; done; } \
  | "$BIN" shell --lake "$WORK/lake-auditlake" 2>&1 \
  | awk '/ rows in .* ms$/ {print $(NF-1)}' | sort -n \
  | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f", m}')
read -r Q_D ROWS_D < <("$PY" "$HERE/duckdb_side.py" query "$WORK/lake-duckdb" "$APP" "$YEAR" "$MON" "$RUNS")

ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
echo
printf '%-34s %14s %14s %10s\n' "" auditlake duckdb "ratio"
printf '%-34s %14s %14s %10s\n' "convert wall (s)" "$SECONDS_auditlake" "$SECONDS_duckdb" "$(ratio "$SECONDS_duckdb" "$SECONDS_auditlake")x faster"
printf '%-34s %14.0f %14.0f %10s\n' "convert events/s" "$(ratio "$EVENTS" "$SECONDS_auditlake")" "$(ratio "$EVENTS" "$SECONDS_duckdb")" ""
printf '%-34s %14s %14s %10s\n' "floor: inflate only (s)" "$INFLATE_S" "" "convert = $(ratio "$SECONDS_auditlake" "$INFLATE_S")x"
printf '%-34s %14s %14s %10s\n' "floor: inflate and parse (s)" "$PARSE_S" "" "convert = $(ratio "$SECONDS_auditlake" "$PARSE_S")x"
printf '%-34s %14s %14s %10s\n' "convert peak RSS (MiB)" "$RSS_auditlake" "$RSS_duckdb" "$(ratio "$RSS_auditlake" "$RSS_duckdb")"
printf '%-34s %14s %14s %10s\n' "lake bytes" "$LAKE_A" "$LAKE_D" "$(ratio "$LAKE_A" "$LAKE_D")"
printf '%-34s %14s %14s %10s\n' "headline query in process (ms)" "$Q_A_IN" "$Q_D" "$(ratio "$Q_A_IN" "$Q_D")"
printf '%-34s %14s %14s\n' "headline query, process (ms)" "$Q_A" "-"
printf '%-34s %14s %14s\n' "headline query rows" "$ROWS_A" "$ROWS_D"
echo "(medians of $RUNS; in process: one auditlake shell session, one DuckDB connection; process: start to exit)"
