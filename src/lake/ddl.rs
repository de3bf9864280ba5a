//! The lake's public contract, rendered as DDL for other engines: users who
//! outgrow one machine point DuckDB, Athena, Trino or Spark at the same
//! directory or prefix. Every table is Hive-partitioned by `year` and
//! `month` (integers); `created_at` is a UTC timestamp in milliseconds.
//!
//! The flat tables store their id as a UUID's 16 bytes (see [`crate::key`]).
//! DuckDB reads that as a UUID; for the Hive engines the files are declared
//! as `<table>_stored` with a binary id, and a view `<table>` shows the id as
//! text, as auditlake itself does. Either way an id that was not a canonical
//! UUID is shown as the source's own text, kept in `extra`.

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};

use crate::key::UUID_TYPE;
use crate::table::{EXTRA, TableSpec};

/// Suffix of the Hive engines' tables over the files, under the views that
/// show UUID ids as text.
const STORED_SUFFIX: &str = "_stored";

/// Engines `auditlake ddl` writes for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Engine {
    DuckDb,
    Athena,
    Trino,
    Spark,
}

/// Where the lake is, as the engine should read it.
pub struct Location<'a> {
    /// `s3://bucket/prefix` or an absolute local path.
    pub root: &'a str,
    /// The S3 endpoint of an S3-compatible server (`AWS_ENDPOINT_URL`).
    pub endpoint: Option<&'a str>,
}

impl Location<'_> {
    fn is_s3(&self) -> bool {
        self.root.starts_with("s3://") || self.root.starts_with("s3a://")
    }

    fn table_dir(&self, engine: Engine, table: &str) -> String {
        let root = self.root.trim_end_matches('/');
        match engine {
            // Spark's Hadoop S3 connector is s3a.
            Engine::Spark if root.starts_with("s3://") => {
                format!("s3a://{}/{table}/", &root["s3://".len()..])
            }
            _ => format!("{root}/{table}/"),
        }
    }
}

/// DDL registering `tables` (and the `events` view over them) in `engine`.
pub fn render(
    engine: Engine,
    location: &Location<'_>,
    tables: &[TableSpec],
) -> anyhow::Result<String> {
    if engine == Engine::Athena && !location.is_s3() {
        anyhow::bail!(
            "Athena reads tables from S3: copy the lake to S3 (e.g. `aws s3 sync {} s3://BUCKET/PREFIX`) and pass --lake s3://BUCKET/PREFIX",
            location.root
        );
    }
    let mut out = format!(
        "-- auditlake lake at {} ({} table{}), for {}.\n",
        location.root,
        tables.len(),
        if tables.len() == 1 { "" } else { "s" },
        match engine {
            Engine::DuckDb => "DuckDB",
            Engine::Athena => "Amazon Athena",
            Engine::Trino => "Trino (Hive connector, catalog `hive`)",
            Engine::Spark => "Spark SQL",
        }
    );
    out.push_str(&preamble(engine, location));
    for spec in tables {
        out.push_str(&table_ddl(engine, location, spec));
    }
    if !tables.is_empty() {
        out.push_str(&events_view(engine, tables));
    }
    Ok(out)
}

fn preamble(engine: Engine, location: &Location<'_>) -> String {
    match engine {
        Engine::DuckDb if location.is_s3() => {
            // Credentials come from the environment (credential_chain): none
            // are ever written into the DDL.
            let mut secret = String::from("TYPE s3, PROVIDER credential_chain");
            if let Some(endpoint) = location.endpoint {
                let (ssl, host) = match endpoint.split_once("://") {
                    Some(("http", host)) => (false, host),
                    Some((_, host)) => (true, host),
                    None => (true, endpoint),
                };
                secret.push_str(&format!(
                    ", ENDPOINT '{}', URL_STYLE 'path', USE_SSL {ssl}",
                    host.trim_end_matches('/')
                ));
            }
            format!(
                "INSTALL httpfs;\nLOAD httpfs;\nCREATE OR REPLACE SECRET auditlake ({secret});\n"
            )
        }
        Engine::Trino => {
            "CREATE SCHEMA IF NOT EXISTS hive.auditlake;\nUSE hive.auditlake;\n".into()
        }
        _ => String::new(),
    }
}

fn table_ddl(engine: Engine, location: &Location<'_>, spec: &TableSpec) -> String {
    let dir = location.table_dir(engine, &spec.name);
    let uuid_key = uuid_key(spec);
    if engine == Engine::DuckDb {
        let replace = uuid_key
            .map(|key| format!(" REPLACE ({} AS {key})", key_text(engine, key)))
            .unwrap_or_default();
        return format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT *{replace} FROM read_parquet('{dir}*/*/*.parquet', \
             hive_partitioning = true, hive_types = {{'year': INTEGER, 'month': INTEGER}});\n",
            name = spec.name
        );
    }
    let name = match uuid_key {
        Some(_) => format!("{}{STORED_SUFFIX}", spec.name),
        None => spec.name.clone(),
    };
    let mut ddl = match engine {
        Engine::DuckDb => unreachable!("handled above"),
        Engine::Athena => format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n{}\n)\nPARTITIONED BY (year int, month int)\n\
             STORED AS PARQUET\nLOCATION '{dir}';\nMSCK REPAIR TABLE {name};\n",
            columns(&spec.schema, engine)
        ),
        Engine::Trino => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n{},\n  year integer,\n  month integer\n)\n\
             WITH (format = 'PARQUET', external_location = '{dir}', partitioned_by = ARRAY['year', 'month']);\n\
             CALL hive.system.sync_partition_metadata('auditlake', '{name}', 'FULL');\n",
            columns(&spec.schema, engine)
        ),
        Engine::Spark => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n{},\n  year INT,\n  month INT\n)\nUSING PARQUET\n\
             PARTITIONED BY (year, month)\nLOCATION '{dir}';\nMSCK REPAIR TABLE {name};\n",
            columns(&spec.schema, engine)
        ),
    };
    if let Some(key) = uuid_key {
        let columns: Vec<String> = spec
            .schema
            .fields()
            .iter()
            .map(|f| match f.name() == key {
                true => format!("{} AS {key}", key_text(engine, key)),
                false => f.name().clone(),
            })
            .collect();
        ddl.push_str(&format!(
            "CREATE OR REPLACE VIEW {} AS SELECT {}, year, month FROM {name};\n",
            spec.name,
            columns.join(", ")
        ));
    }
    ddl
}

/// The table's UUID key column, if it has one.
fn uuid_key(spec: &TableSpec) -> Option<&str> {
    spec.schema
        .fields()
        .iter()
        .find(|f| f.data_type() == &UUID_TYPE)
        .map(|f| f.name().as_str())
}

/// SQL showing a stored UUID key as text: the source's own text when it is
/// kept in `extra` (it was not a canonical UUID), else the UUID's.
fn key_text(engine: Engine, key: &str) -> String {
    // 32 hex digits, hyphenated 8-4-4-4-12.
    let hyphenate = |hex: &str| {
        format!(
            "lower(regexp_replace({hex}, '^(.{{8}})(.{{4}})(.{{4}})(.{{4}})(.{{12}})$', '$1-$2-$3-$4-$5'))"
        )
    };
    let (raw, text) = match engine {
        Engine::DuckDb => (
            format!("json_extract_string({EXTRA}, '$.{key}')"),
            format!("CAST({key} AS VARCHAR)"),
        ),
        Engine::Athena | Engine::Trino => (
            format!("json_extract_scalar({EXTRA}, '$.{key}')"),
            hyphenate(&format!("to_hex({key})")),
        ),
        Engine::Spark => (
            format!("get_json_object({EXTRA}, '$.{key}')"),
            hyphenate(&format!("hex({key})")),
        ),
    };
    format!("coalesce({raw}, {text})")
}

fn columns(schema: &Schema, engine: Engine) -> String {
    schema
        .fields()
        .iter()
        .map(|f| format!("  {} {}", f.name(), type_name(f.data_type(), engine)))
        .collect::<Vec<_>>()
        .join(",\n")
}

fn type_name(data_type: &DataType, engine: Engine) -> &'static str {
    match (data_type, engine) {
        (DataType::FixedSizeBinary(_), Engine::Athena) => "binary",
        (DataType::FixedSizeBinary(_), Engine::Trino) => "varbinary",
        (DataType::FixedSizeBinary(_), _) => "BINARY",
        (DataType::Timestamp(..), Engine::Athena) => "timestamp",
        (DataType::Timestamp(TimeUnit::Millisecond, _), Engine::Trino) => "timestamp(3)",
        (DataType::Timestamp(..), Engine::Trino) => "timestamp(6)",
        (DataType::Timestamp(..), _) => "TIMESTAMP",
        (DataType::Int32, Engine::Athena | Engine::Trino) => "integer",
        (DataType::Int32, _) => "INT",
        (_, Engine::Athena) => "string",
        (_, Engine::Trino) => "varchar",
        _ => "STRING",
    }
}

/// `events`: the same view auditlake's engine defines.
fn events_view(engine: Engine, tables: &[TableSpec]) -> String {
    let selects: Vec<String> = tables
        .iter()
        .map(|t| {
            let select = match engine {
                // Spark has no unbounded VARCHAR.
                Engine::Spark => t.events_select.replace("AS VARCHAR)", "AS STRING)"),
                _ => t.events_select.clone(),
            };
            format!("SELECT {select}, year, month FROM {}", t.name)
        })
        .collect();
    format!(
        "CREATE OR REPLACE VIEW events AS\n{};\n",
        selects.join("\nUNION ALL\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duckdb_on_s3_uses_the_credential_chain_and_the_endpoint() {
        let specs = vec![crate::source::heroku::table_spec()];
        let ddl = render(
            Engine::DuckDb,
            &Location {
                root: "s3://b/lake",
                endpoint: Some("http://127.0.0.1:9000"),
            },
            &specs,
        )
        .unwrap();
        assert!(ddl.contains(
            "CREATE OR REPLACE SECRET auditlake (TYPE s3, PROVIDER credential_chain, ENDPOINT '127.0.0.1:9000', URL_STYLE 'path', USE_SSL false);"
        ));
        assert!(ddl.contains("read_parquet('s3://b/lake/heroku/*/*/*.parquet'"));
    }

    #[test]
    fn hive_engines_declare_columns_and_partitions() {
        let specs = vec![crate::source::terraform::table_spec()];
        let loc = Location {
            root: "s3://b/lake/",
            endpoint: None,
        };
        let spark = render(Engine::Spark, &loc, &specs).unwrap();
        assert!(spark.contains("CREATE TABLE IF NOT EXISTS terraform_stored (\n  id BINARY,\n  created_at TIMESTAMP,\n  version STRING,"));
        assert!(spark.contains(
            "CREATE OR REPLACE VIEW terraform AS SELECT coalesce(get_json_object(extra, '$.id'), \
             lower(regexp_replace(hex(id), '^(.{8})(.{4})(.{4})(.{4})(.{12})$', '$1-$2-$3-$4-$5'))) AS id, created_at, version,"
        ));
        assert!(spark.contains("MSCK REPAIR TABLE terraform_stored;"));
        assert!(spark.contains("LOCATION 's3a://b/lake/terraform/'"));
        assert!(spark.contains("CAST(NULL AS STRING) AS ip_address"));
        let athena = render(Engine::Athena, &loc, &specs).unwrap();
        assert!(athena.contains("PARTITIONED BY (year int, month int)"));
        assert!(athena.contains("  id binary,\n"));
        assert!(athena.contains(
            "coalesce(json_extract_scalar(extra, '$.id'), lower(regexp_replace(to_hex(id),"
        ));
        let trino = render(Engine::Trino, &loc, &specs).unwrap();
        assert!(trino.contains("created_at timestamp(3),"));
        assert!(trino.contains("  id varbinary,\n"));
        assert!(trino.contains("sync_partition_metadata('auditlake', 'terraform_stored', 'FULL')"));
        let local = Location {
            root: "/data/lake",
            endpoint: None,
        };
        assert!(render(Engine::Athena, &local, &specs).is_err());
    }
}
