//! The lake's public contract, rendered as DDL for other engines: users who
//! outgrow one machine point DuckDB, Athena, Trino or Spark at the same
//! directory or prefix. Every table is Hive-partitioned by `year` and
//! `month` (integers); `created_at` is a UTC timestamp in milliseconds; ids
//! are text. The files are declared as they are: no views in between.
//!
//! The DDL is code a user runs, so every identifier and string literal in
//! it is quoted and escaped by the engine's own rules (a lake path holding
//! `'`, `"`, spaces or `;` registers that lake and runs nothing else), and
//! no credential is ever written into it.

use std::borrow::Cow;

use datafusion::arrow::datatypes::{DataType, Schema, TimeUnit};

use crate::table::{EVENTS_VIEW, TableSpec};

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

impl Engine {
    /// A quoted identifier.
    fn ident(self, name: &str) -> String {
        match self {
            // Spark SQL and Athena's Hive DDL quote with backticks.
            Engine::Spark | Engine::Athena => format!("`{}`", name.replace('`', "``")),
            Engine::DuckDb | Engine::Trino => format!("\"{}\"", name.replace('"', "\"\"")),
        }
    }

    /// A quoted identifier in a view's query (Athena's views are Trino SQL).
    fn view_ident(self, name: &str) -> String {
        match self {
            Engine::Athena => Engine::Trino.ident(name),
            _ => self.ident(name),
        }
    }

    /// A string literal.
    fn literal(self, text: &str) -> String {
        match self {
            // Spark and Hive read backslash escapes in literals (and take
            // `'a''b'` as two adjacent literals, not one with a quote).
            Engine::Spark | Engine::Athena => {
                format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
            }
            Engine::DuckDb | Engine::Trino => format!("'{}'", text.replace('\'', "''")),
        }
    }

    /// A string literal in a view's query.
    fn view_literal(self, text: &str) -> String {
        match self {
            Engine::Athena => Engine::Trino.literal(text),
            _ => self.literal(text),
        }
    }
}

/// Text safe inside a `--` comment: no line breaks or other control characters.
fn comment_text(text: &str) -> String {
    text.chars()
        .flat_map(|c| {
            if c.is_control() {
                c.escape_unicode().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

/// `text` as one word of a POSIX shell command, quoted when it needs to be,
/// so a suggested command can be pasted as it is.
fn shell_word(text: &str) -> Cow<'_, str> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        Cow::Borrowed(text)
    } else {
        Cow::Owned(format!("'{}'", text.replace('\'', "'\\''")))
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
            shell_word(location.root)
        );
    }
    if engine == Engine::DuckDb && location.root.contains(['*', '?', '[', '{']) {
        anyhow::bail!(
            "{}: DuckDB would read the characters * ? [ {{ in the lake's path as a glob; move the lake to a path without them",
            location.root
        );
    }
    let mut out = format!(
        "-- auditlake lake at {} ({} table{}), for {}.\n",
        comment_text(location.root),
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
                    ", ENDPOINT {}, URL_STYLE 'path', USE_SSL {ssl}",
                    engine.literal(host.trim_end_matches('/'))
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
    let name = engine.ident(&spec.name);
    match engine {
        Engine::DuckDb => format!(
            "CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet({}, \
             hive_partitioning = true, hive_types = {{'year': INTEGER, 'month': INTEGER}});\n",
            engine.literal(&format!("{dir}*/*/*.parquet"))
        ),
        Engine::Athena => format!(
            "CREATE EXTERNAL TABLE IF NOT EXISTS {name} (\n{}\n)\nPARTITIONED BY (`year` int, `month` int)\n\
             STORED AS PARQUET\nLOCATION {};\nMSCK REPAIR TABLE {name};\n",
            columns(&spec.schema, engine),
            engine.literal(&dir)
        ),
        Engine::Trino => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n{},\n  \"year\" integer,\n  \"month\" integer\n)\n\
             WITH (format = 'PARQUET', external_location = {}, partitioned_by = ARRAY['year', 'month']);\n\
             CALL hive.system.sync_partition_metadata('auditlake', {}, 'FULL');\n",
            columns(&spec.schema, engine),
            engine.literal(&dir),
            engine.literal(&spec.name)
        ),
        Engine::Spark => format!(
            "CREATE TABLE IF NOT EXISTS {name} (\n{},\n  `year` INT,\n  `month` INT\n)\nUSING PARQUET\n\
             PARTITIONED BY (`year`, `month`)\nLOCATION {};\nMSCK REPAIR TABLE {name};\n",
            columns(&spec.schema, engine),
            engine.literal(&dir)
        ),
    }
}

fn columns(schema: &Schema, engine: Engine) -> String {
    schema
        .fields()
        .iter()
        .map(|f| {
            format!(
                "  {} {}",
                engine.ident(f.name()),
                type_name(f.data_type(), engine)
            )
        })
        .collect::<Vec<_>>()
        .join(",\n")
}

fn type_name(data_type: &DataType, engine: Engine) -> &'static str {
    match (data_type, engine) {
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
            format!(
                "SELECT {} AS source, {select}, year, month FROM {}",
                engine.view_literal(&t.name),
                engine.view_ident(&t.name)
            )
        })
        .collect();
    format!(
        "CREATE OR REPLACE VIEW {} AS\n{};\n",
        engine.view_ident(EVENTS_VIEW),
        selects.join("\nUNION ALL\n")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_commands_quote_paths_for_the_shell() {
        assert_eq!(shell_word("/srv/audit/lake"), "/srv/audit/lake");
        assert_eq!(shell_word("/tmp/it's lake"), "'/tmp/it'\\''s lake'");
        assert_eq!(shell_word("$HOME/lake"), "'$HOME/lake'");
        assert_eq!(shell_word(""), "''");
    }

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
        assert!(ddl.contains(
            "CREATE OR REPLACE VIEW \"heroku\" AS SELECT * FROM read_parquet('s3://b/lake/heroku/*/*/*.parquet', \
             hive_partitioning = true, hive_types = {'year': INTEGER, 'month': INTEGER});"
        ));
        assert!(ddl.contains(
            "CREATE OR REPLACE VIEW \"events\" AS\nSELECT 'heroku' AS source, id, created_at,"
        ));
    }

    #[test]
    fn hive_engines_declare_columns_and_partitions() {
        let specs = vec![crate::source::terraform::table_spec()];
        let loc = Location {
            root: "s3://b/lake/",
            endpoint: None,
        };
        let spark = render(Engine::Spark, &loc, &specs).unwrap();
        assert!(spark.contains(
            "CREATE TABLE IF NOT EXISTS `terraform` (\n  `id` STRING,\n  `created_at` TIMESTAMP,\n  `version` STRING,"
        ));
        assert!(spark.contains("MSCK REPAIR TABLE `terraform`;"));
        assert!(spark.contains("LOCATION 's3a://b/lake/terraform/'"));
        assert!(spark.contains("CAST(NULL AS STRING) AS ip_address"));
        assert!(!spark.contains("_stored"), "no tables under views");
        let athena = render(Engine::Athena, &loc, &specs).unwrap();
        assert!(athena.contains("PARTITIONED BY (`year` int, `month` int)"));
        assert!(athena.contains("  `id` string,\n"));
        assert!(
            athena.contains("CREATE OR REPLACE VIEW \"events\" AS\nSELECT 'terraform' AS source")
        );
        let trino = render(Engine::Trino, &loc, &specs).unwrap();
        assert!(trino.contains("  \"created_at\" timestamp(3),"));
        assert!(trino.contains("  \"id\" varchar,\n"));
        assert!(trino.contains("sync_partition_metadata('auditlake', 'terraform', 'FULL')"));
        let local = Location {
            root: "/data/lake",
            endpoint: None,
        };
        assert!(render(Engine::Athena, &local, &specs).is_err());
    }

    #[test]
    fn paths_are_quoted_by_each_engine_s_rules() {
        let specs = vec![crate::source::terraform::table_spec()];
        let loc = Location {
            root: "/tmp/o'brien \\ \"x\"; DROP\n-- y",
            endpoint: None,
        };
        let duckdb = render(Engine::DuckDb, &loc, &specs).unwrap();
        assert!(
            duckdb.starts_with(
                "-- auditlake lake at /tmp/o'brien \\ \"x\"; DROP\\u{a}-- y (1 table)"
            )
        );
        assert!(
            duckdb.contains(
                "read_parquet('/tmp/o''brien \\ \"x\"; DROP\n-- y/terraform/*/*/*.parquet'"
            )
        );
        let spark = render(Engine::Spark, &loc, &specs).unwrap();
        assert!(spark.contains("LOCATION '/tmp/o\\'brien \\\\ \"x\"; DROP\n-- y/terraform/'"));
        let trino = render(Engine::Trino, &loc, &specs).unwrap();
        assert!(
            trino.contains("external_location = '/tmp/o''brien \\ \"x\"; DROP\n-- y/terraform/'")
        );
        assert_eq!(Engine::Spark.ident("a`b"), "`a``b`");
        assert_eq!(Engine::Trino.ident("a\"b"), "\"a\"\"b\"");
        let glob = Location {
            root: "/tmp/lake[1]",
            endpoint: None,
        };
        assert!(render(Engine::DuckDb, &glob, &specs).is_err());
    }
}
