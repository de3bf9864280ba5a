"""DuckDB's side of the comparison: convert archives the way a DuckDB user
would (read_json + unnest(entries) + COPY ... PARTITION_BY), and time the
headline query on DuckDB's own lake.

usage: duckdb_side.py convert ARCHIVE_DIR LAKE_DIR
       duckdb_side.py query LAKE_DIR APP YEAR MONTH RUNS
"""
import glob
import statistics
import sys
import time

import duckdb


def connect():
    con = duckdb.connect()
    con.execute("SET threads = 2")
    con.execute("SET TimeZone = 'UTC'")
    return con


def convert(archives, lake):
    # One archive at a time: reading them all in one read_json runs out of
    # memory (each archive is a single JSON document DuckDB holds whole).
    con = connect()
    for path in sorted(glob.glob(f"{archives}/*.json.gz")):
        convert_one(con, path, lake)


def convert_one(con, path, lake):
    con.execute(f"""
        COPY (
            SELECT e.id,
                   CAST(e.created_at AS TIMESTAMPTZ) AS created_at,
                   e.type, e.action,
                   e.actor.id AS actor_id, e.actor.email AS actor_email,
                   e.app.id AS app_id, e.app.name AS app_name,
                   e.owner.id AS owner_id, e.owner.email AS owner_email,
                   e.team.id AS team_id, e.team.name AS team_name,
                   e.enterprise_account.id AS enterprise_account_id,
                   e.enterprise_account.name AS enterprise_account_name,
                   e.request.ip_address AS ip_address,
                   to_json(e.data) AS data,
                   year(CAST(e.created_at AS TIMESTAMPTZ)) AS year,
                   month(CAST(e.created_at AS TIMESTAMPTZ)) AS month
            FROM (SELECT unnest(entries) AS e
                  FROM read_json('{path}', maximum_object_size = 4000000000))
            ORDER BY created_at
        ) TO '{lake}' (FORMAT parquet, PARTITION_BY (year, month), COMPRESSION zstd, APPEND)
    """)


def query(lake, app, year, month, runs):
    con = connect()
    sql = f"""
        SELECT created_at, actor_email, action, data->>'changes' AS changes, ip_address
        FROM read_parquet('{lake}/**/*.parquet', hive_partitioning = true)
        WHERE year = {year} AND month = {month}
          AND type = 'config_change' AND app_name = ?
        ORDER BY created_at
    """
    times = []
    rows = 0
    for _ in range(runs):
        start = time.perf_counter()
        rows = len(con.execute(sql, [app]).fetchall())
        times.append(time.perf_counter() - start)
    print(f"{statistics.median(times) * 1000:.1f} {rows}")


if __name__ == "__main__":
    if sys.argv[1] == "convert":
        convert(sys.argv[2], sys.argv[3])
    else:
        query(sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6]))
