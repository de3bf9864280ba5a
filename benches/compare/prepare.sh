# Sourced by run.sh and suite.sh: DuckDB from PyPI in a private virtualenv,
# the release (or $PROFILE) build of auditlake and the archive generator,
# and the archives of $MONTHS x $PER_MONTH events. Sets PY, BIN, ARCHIVES.
mkdir -p "$WORK"
if [ ! -x "$WORK/venv/bin/python" ]; then
  python3 -m venv "$WORK/venv"
  "$WORK/venv/bin/pip" install --quiet duckdb pytz
fi
PY="$WORK/venv/bin/python"
# PROFILE=fast measures the no-LTO build (quick to rebuild while experimenting).
PROFILE=${PROFILE:-release}
# One build of both: built apart, the binary and the example resolve the
# dependencies' features differently and DataFusion is compiled twice.
# SKIP_BUILD=1 measures the binaries already built.
if [ -z "${SKIP_BUILD:-}" ]; then
  cargo build --quiet --profile "$PROFILE" --bin auditlake --example gen_archives --example convert_floor
fi
TARGET=${CARGO_TARGET_DIR:-target}
BIN=$TARGET/$PROFILE/auditlake

# PAYLOAD=small|mixed|large: the size and mix of each event's data (see
# auditlake::synthetic::Payload); small archives keep their old folder name.
PAYLOAD=${PAYLOAD:-small}
ARCHIVES="$WORK/archives-$MONTHS-$PER_MONTH"
if [ "$PAYLOAD" != small ]; then ARCHIVES="$ARCHIVES-$PAYLOAD"; fi
if [ ! -d "$ARCHIVES" ]; then
  "$TARGET/$PROFILE/examples/gen_archives" --out "$ARCHIVES" --months "$MONTHS" --per-month "$PER_MONTH" --seed 1 --payload "$PAYLOAD"
fi
FLOOR=$TARGET/$PROFILE/examples/convert_floor
