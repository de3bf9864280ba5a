"""What common Parquet readers see in an auditlake lake, read as is.

    python readers.py READER LAKE TABLE[,TABLE...] Y-M[,Y-M...]

Points READER at each table's folder, with no DDL and no schema, as a new
user would, and prints one JSON document:

    {"<table>": {"rows": [[year, month, id, created_at_ms], ...],   sorted by id
                 "partitions_are_integers": true,
                 "month_counts": {"Y-M": n, ...}},                 the reader's own
                                                                     WHERE year = Y AND month = M
     "config_changes": [[created_at ISO, actor_email, action, changes, ip], ...]}

`config_changes` is the headline question (billing-api, March 2024), asked
with the reader's own filters. The test compares all of it with auditlake's
answers.
"""

import json
import os
import sys
from datetime import datetime, timezone

READER, LAKE = sys.argv[1], sys.argv[2]
TABLES = sys.argv[3].split(",")
MONTHS = [tuple(int(p) for p in ym.split("-")) for ym in sys.argv[4].split(",") if ym]

MARCH = (datetime(2024, 3, 1, tzinfo=timezone.utc), datetime(2024, 4, 1, tzinfo=timezone.utc))
MARCH_MS = tuple(int(t.timestamp()) * 1000 for t in MARCH)


def folder(table):
    return os.path.join(LAKE, table)


def iso(ms):
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def changes(data):
    if data is None:
        return None
    value = json.loads(data).get("changes")
    return None if value is None else json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def headline(rows):
    """rows: (created_at_ms, id, actor_email, action, data, ip), filtered by the reader."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    return [[iso(r[0]), r[2], r[3], changes(r[4]), r[5]] for r in rows]


def sql_reader(run, scan_sql, month_sql, headline_sql):
    """Readers with SQL: `run(sql)` returns a list of tuples."""
    out = {}
    for t in TABLES:
        rows = [list(r) for r in run(scan_sql(t))]
        out[t] = {
            "rows": sorted([[r[0], r[1], r[2], r[3]] for r in rows], key=lambda r: r[2]),
            "partitions_are_integers": all(is_int(r[0]) and is_int(r[1]) for r in rows),
            "month_counts": {f"{y}-{m}": run(month_sql(t, y, m))[0][0] for (y, m) in MONTHS},
        }
    out["config_changes"] = headline(run(headline_sql))
    return out


def duckdb_reader():
    import duckdb
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    src = lambda t: f"read_parquet('{folder(t)}/*/*/*.parquet', hive_partitioning = true)"
    return sql_reader(
        lambda q: con.execute(q).fetchall(),
        lambda t: f"SELECT year, month, id, epoch_ms(created_at) FROM {src(t)}",
        lambda t, y, m: f"SELECT count(*) FROM {src(t)} WHERE year = {y} AND month = {m}",
        f"""SELECT epoch_ms(created_at), id, actor_email, action, data, ip_address FROM {src('heroku')}
            WHERE type = 'config_change' AND app_name = 'billing-api'
              AND created_at >= TIMESTAMPTZ '2024-03-01 00:00:00+00'
              AND created_at < TIMESTAMPTZ '2024-04-01 00:00:00+00'""",
    )


def chdb_reader():
    import chdb
    def run(q):
        res = chdb.query(q + " SETTINGS use_hive_partitioning = 1", "JSONCompact")
        return [tuple(r) for r in json.loads(res.bytes() if hasattr(res, "bytes") else str(res))["data"]]
    src = lambda t: f"file('{folder(t)}/*/*/*.parquet', Parquet)"
    return sql_reader(
        run,
        lambda t: f"SELECT year, month, id, toUnixTimestamp64Milli(created_at) FROM {src(t)}",
        lambda t, y, m: f"SELECT count() FROM {src(t)} WHERE year = {y} AND month = {m}",
        f"""SELECT toUnixTimestamp64Milli(created_at), id, actor_email, action, data, ip_address FROM {src('heroku')}
            WHERE type = 'config_change' AND app_name = 'billing-api'
              AND created_at >= toDateTime64('2024-03-01 00:00:00', 3, 'UTC')
              AND created_at < toDateTime64('2024-04-01 00:00:00', 3, 'UTC')""",
    )


def datafusion_reader():
    import pyarrow as pa
    from datafusion import SessionContext
    ctx = SessionContext()
    for t in TABLES:
        ctx.register_parquet(t, folder(t) + "/", table_partition_cols=[("year", pa.int32()), ("month", pa.int32())])
    run = lambda q: [tuple(r.values()) for r in ctx.sql(q).to_pylist()]
    return sql_reader(
        run,
        lambda t: f"SELECT year, month, id, arrow_cast(created_at, 'Int64') FROM {t}",
        lambda t, y, m: f"SELECT count(*) FROM {t} WHERE year = {y} AND month = {m}",
        """SELECT arrow_cast(created_at, 'Int64'), id, actor_email, action, data, ip_address FROM heroku
           WHERE type = 'config_change' AND app_name = 'billing-api'
             AND created_at >= TIMESTAMP '2024-03-01T00:00:00Z' AND created_at < TIMESTAMP '2024-04-01T00:00:00Z'""",
    )


def spark_reader():
    from pyspark.sql import SparkSession
    spark = (SparkSession.builder.master("local[1]")
             .config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC")
             .config("spark.sql.shuffle.partitions", "1")
             .getOrCreate())
    spark.sparkContext.setLogLevel("ERROR")
    for t in TABLES:
        spark.read.parquet(folder(t)).createOrReplaceTempView(t)
    run = lambda q: [tuple(r) for r in spark.sql(q).collect()]
    return sql_reader(
        run,
        lambda t: f"SELECT year, month, id, unix_millis(created_at) FROM {t}",
        lambda t, y, m: f"SELECT count(*) FROM {t} WHERE year = {y} AND month = {m}",
        """SELECT unix_millis(created_at), id, actor_email, action, data, ip_address FROM heroku
           WHERE type = 'config_change' AND app_name = 'billing-api'
             AND created_at >= TIMESTAMP '2024-03-01 00:00:00' AND created_at < TIMESTAMP '2024-04-01 00:00:00'""",
    )


def frame_reader(scan, scan_month, scan_headline):
    """Readers of data frames: `scan(table)` returns columns as Python lists
    {year, month, id, ms}; `scan_month` the row count the reader's own filter
    keeps; `scan_headline` the filtered headline rows."""
    out = {}
    for t in TABLES:
        cols = scan(t)
        rows = [list(r) for r in zip(cols["year"], cols["month"], cols["id"], cols["ms"])]
        out[t] = {
            "rows": sorted(rows, key=lambda r: r[2]),
            "partitions_are_integers": all(is_int(r[0]) and is_int(r[1]) for r in rows),
            "month_counts": {f"{y}-{m}": scan_month(t, y, m) for (y, m) in MONTHS},
        }
    out["config_changes"] = headline(scan_headline())
    return out


def pyarrow_reader():
    import pyarrow.compute as pc
    import pyarrow.dataset as ds
    import pyarrow as pa
    dataset = lambda t: ds.dataset(folder(t), format="parquet", partitioning="hive")
    def scan(t):
        table = dataset(t).to_table()
        return {
            "year": table["year"].to_pylist(), "month": table["month"].to_pylist(),
            "id": table["id"].to_pylist(), "ms": pc.cast(table["created_at"], pa.int64()).to_pylist(),
        }
    def scan_month(t, y, m):
        return dataset(t).to_table(filter=(ds.field("year") == y) & (ds.field("month") == m)).num_rows
    def scan_headline():
        lo, hi = (pa.scalar(t, pa.timestamp("ms", "UTC")) for t in MARCH)
        f = ((ds.field("type") == "config_change") & (ds.field("app_name") == "billing-api")
             & (ds.field("created_at") >= lo) & (ds.field("created_at") < hi))
        t = dataset("heroku").to_table(filter=f)
        ms = pc.cast(t["created_at"], pa.int64()).to_pylist()
        return list(zip(ms, *(t[c].to_pylist() for c in ["id", "actor_email", "action", "data", "ip_address"])))
    return frame_reader(scan, scan_month, scan_headline)


def polars_reader():
    import polars as pl
    frame = lambda t: pl.scan_parquet(folder(t) + "/**/*.parquet", hive_partitioning=True)
    def scan(t):
        df = frame(t).select("year", "month", "id", pl.col("created_at").dt.epoch("ms").alias("ms")).collect()
        return {c: df[c].to_list() for c in ["year", "month", "id", "ms"]}
    def scan_month(t, y, m):
        return frame(t).filter((pl.col("year") == y) & (pl.col("month") == m)).select(pl.len()).collect().item()
    def scan_headline():
        lo, hi = MARCH
        df = (frame("heroku")
              .filter((pl.col("type") == "config_change") & (pl.col("app_name") == "billing-api")
                      & (pl.col("created_at") >= lo) & (pl.col("created_at") < hi))
              .select(pl.col("created_at").dt.epoch("ms"), "id", "actor_email", "action", "data", "ip_address")
              .collect())
        return df.rows()
    return frame_reader(scan, scan_month, scan_headline)


def pandas_reader(engine):
    import pandas as pd
    epoch = pd.Timestamp(0, tz="UTC")
    def utc(series):
        # fastparquet returns UTC-adjusted timestamps as naive values in UTC.
        return series.dt.tz_localize("UTC") if series.dt.tz is None else series
    def ms(series):
        return [int((t - epoch) // pd.Timedelta(milliseconds=1)) for t in utc(series)]
    def values(series):
        # Partition columns come back as categoricals; their values are what
        # a user compares with.
        return [v.item() if hasattr(v, "item") else v for v in series.tolist()]
    def scan(t):
        df = pd.read_parquet(folder(t), engine=engine)
        return {"year": values(df["year"]), "month": values(df["month"]),
                "id": df["id"].tolist(), "ms": ms(df["created_at"])}
    def scan_month(t, y, m):
        op = "==" if engine == "fastparquet" else "="
        return len(pd.read_parquet(folder(t), engine=engine, filters=[("year", op, y), ("month", op, m)]))
    def scan_headline():
        df = pd.read_parquet(folder("heroku"), engine=engine)
        lo, hi = (pd.Timestamp(t) for t in MARCH)
        at = utc(df["created_at"])
        df = df[(df["type"] == "config_change") & (df["app_name"] == "billing-api")
                & (at >= lo) & (at < hi)]
        cols = [df[c].tolist() for c in ["id", "actor_email", "action", "data", "ip_address"]]
        nan_to_none = lambda v: None if isinstance(v, float) else v
        return [tuple(nan_to_none(v) for v in r) for r in zip(ms(df["created_at"]), *cols)]
    return frame_reader(scan, scan_month, scan_headline)


READERS = {
    "duckdb": duckdb_reader,
    "pyarrow": pyarrow_reader,
    "polars": polars_reader,
    "pandas-pyarrow": lambda: pandas_reader("pyarrow"),
    "pandas-fastparquet": lambda: pandas_reader("fastparquet"),
    "chdb": chdb_reader,
    "datafusion": datafusion_reader,
    "spark": spark_reader,
}

print(json.dumps(READERS[READER](), sort_keys=True))
