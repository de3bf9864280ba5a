//! `auditlake ddl`: DDL that registers the lake in another engine.

use crate::cli::{DdlArgs, DdlEngine, open_existing_lake};
use crate::lake::ddl::{Engine, Location, render};

pub async fn run(args: DdlArgs) -> anyhow::Result<bool> {
    let lake = open_existing_lake(&args.lake).await?;
    lake.ensure_readable().await?;
    let tables: Vec<_> = lake
        .tables()
        .await?
        .iter()
        .map(|name| crate::source::table_spec_for(name))
        .collect();
    let engine = match args.engine {
        DdlEngine::Duckdb => Engine::DuckDb,
        DdlEngine::Athena => Engine::Athena,
        DdlEngine::Trino => Engine::Trino,
        DdlEngine::Spark => Engine::Spark,
    };
    let endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
    let location = Location {
        root: lake.location(),
        endpoint: endpoint.as_deref(),
    };
    print!("{}", render(engine, &location, &tables)?);
    Ok(true)
}
