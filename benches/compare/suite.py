"""The query suite, on both engines in one run (see suite.sql).

usage: suite.py BIN AUDITLAKE_LAKE DUCKDB_LAKE RUNS [NAME...]

auditlake: one `auditlake shell` session per query (`.timer on`, one warm-up
run, then RUNS timed runs; the shell's own timer, from planning to the last
row printed), and `auditlake query` start to exit (median of 5) for the
one-shot time. DuckDB: one connection, one warm-up, RUNS timed runs of
`execute(...).fetchall()`. Medians; the answers of both are compared row by
row. Prints one line per query, then the geometric mean and the worst ratio.
"""
import csv
import io
import json
import math
import os
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import duckdb

HERE = Path(__file__).parent
TIMER = re.compile(r"^\d+ rows? in ([\d.]+) (ms|s)$")


def parse_suite(text):
    queries = []
    for block in text.split("-- name: ")[1:]:
        name, rest = block.split("\n", 1)
        question = re.search(r"-- question: (.*)", rest).group(1)
        ours = rest.split("-- auditlake\n", 1)[1].split("-- duckdb\n", 1)[0]
        theirs = rest.split("-- duckdb\n", 1)[1]
        queries.append((name.strip(), question, ours.strip(), theirs.strip()))
    return queries


def substitute(sql, values):
    for key, value in values.items():
        sql = sql.replace("${" + key + "}", str(value))
    assert "${" not in sql, sql
    return sql


def duckdb_connection(lake):
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    con.execute(
        f"CREATE VIEW lake AS SELECT * FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)"
    )
    return con


def values_for(con):
    """The suite's values, from the data itself."""
    counts = con.execute(
        "SELECT year, month, count(*) FROM lake GROUP BY year, month ORDER BY year, month"
    ).fetchall()
    # The generator's months (late events make a small month before them).
    most = max(n for _, _, n in counts)
    months = [(y, m) for y, m, n in counts if n > most // 10]
    year, month = months[min(2, len(months) - 1)]
    first_year, first_month = months[0]
    to_month = month + 1 if month < 12 else 1
    to_year = year if month < 12 else year + 1
    event_id = con.execute(
        f"SELECT CAST(id AS VARCHAR) FROM lake WHERE year = {year} AND month = {month} LIMIT 1"
    ).fetchone()[0]
    return {
        "YEAR": year,
        "MONTH": month,
        "APP": "billing-3",
        "ACTOR": "bob1@acme.io",
        "TEAM": "payments",
        "IP": "203.0.2.17",
        "ID": event_id,
        "FROM": f"{first_year:04}-{first_month:02}-01",
        "TO": f"{to_year:04}-{to_month:02}-01",
        "HOUR": f"{year:04}-{month:02}-15T10",
        "HOUR_SPACE": f"{year:04}-{month:02}-15 10",
    }


def text(value):
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    return str(value)


def auditlake_in_process(bin_path, lake, sql, runs):
    # SUITE_SETUP: statements run first (e.g. SET …), to try settings
    # without a rebuild; in-process times only.
    setup = os.environ.get("SUITE_SETUP", "")
    script = setup + "\n.format csv\n.timer on\n" + (sql + "\n") * (runs + 1)
    out = subprocess.run(
        [bin_path, "shell", "-n", "--lake", lake],
        input=script, capture_output=True, text=True, check=True,
    ).stdout
    times = []
    for line in out.splitlines():
        m = TIMER.match(line)
        if m:
            times.append(float(m.group(1)) * (1000 if m.group(2) == "s" else 1))
    times = times[-(runs + 1):]
    assert len(times) == runs + 1, (sql, out[-2000:])
    return statistics.median(times[1:])


def auditlake_one_shot(bin_path, lake, sql, runs=5):
    times = []
    answer = None
    for _ in range(runs):
        start = time.perf_counter()
        out = subprocess.run(
            [bin_path, "query", "--lake", lake, "--format", "csv", sql],
            capture_output=True, text=True, check=True,
        ).stdout
        times.append((time.perf_counter() - start) * 1000)
        answer = [row for row in csv.reader(io.StringIO(out))][1:]
    return statistics.median(times), answer


def duckdb_times(con, sql, runs):
    rows = con.execute(sql).fetchall()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        rows = con.execute(sql).fetchall()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times), [[text(v) for v in row] for row in rows]


def canonical(value):
    """A JSON object as text with its null members dropped: DuckDB's
    read_json gives every event's `data` the members of all events (as
    nulls), which its to_json writes out; the values are the same."""
    if not value.startswith("{"):
        return value
    try:
        parsed = json.loads(value)
    except ValueError:
        return value

    def drop_nulls(v):
        if isinstance(v, dict):
            return {k: drop_nulls(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [drop_nulls(x) for x in v]
        return v

    return json.dumps(drop_nulls(parsed), sort_keys=True, separators=(",", ":"))


def same(ours, theirs):
    if len(ours) != len(theirs):
        return False
    for a, b in zip(ours, theirs):
        if len(a) != len(b):
            return False
        for x, y in zip(a, b):
            if x == y or canonical(x) == canonical(y):
                continue
            try:
                if math.isclose(float(x), float(y), rel_tol=1e-9):
                    continue
            except ValueError:
                pass
            return False
    return True


def main():
    bin_path, our_lake, their_lake, runs = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    only = set(sys.argv[5:])
    con = duckdb_connection(their_lake)
    values = values_for(con)
    suite = [q for q in parse_suite((HERE / "suite.sql").read_text()) if not only or q[0] in only]
    print(f"values: {values}")
    print(f"{'query':<20} {'auditlake ms':>12} {'duckdb ms':>10} {'ratio':>7} {'one-shot ms':>12}  answers")
    ratios = []
    all_equal = True
    for name, _question, ours, theirs in suite:
        ours = substitute(ours, values)
        theirs = substitute(theirs, values)
        ours_ms = auditlake_in_process(bin_path, our_lake, ours, runs)
        one_shot_ms, our_answer = auditlake_one_shot(bin_path, our_lake, ours)
        their_ms, their_answer = duckdb_times(con, theirs, runs)
        equal = same(our_answer, their_answer)
        all_equal &= equal
        ratio = ours_ms / their_ms
        ratios.append((ratio, name))
        verdict = f"equal ({len(our_answer)} rows)" if equal else (
            f"DIFFERENT: {len(our_answer)} vs {len(their_answer)} rows; "
            f"first: {our_answer[:1]} vs {their_answer[:1]}"
        )
        print(f"{name:<20} {ours_ms:>12.1f} {their_ms:>10.1f} {ratio:>7.2f} {one_shot_ms:>12.1f}  {verdict}", flush=True)
    geomean = math.exp(sum(math.log(r) for r, _ in ratios) / len(ratios))
    worst = max(ratios)
    print(f"geometric mean of the ratios: {geomean:.2f}; worst: {worst[1]} {worst[0]:.2f}x")
    print(f"(medians of {runs}; ratio = auditlake / DuckDB in process, below 1 is faster)")
    sys.exit(0 if all_equal else 1)


if __name__ == "__main__":
    main()
