//! Query side: the headline question (config changes of one app in one
//! month) in process, and engine set-up over a lake of 12 months.
//!
//! The lake is `AUDITLAKE_BENCH_LAKE` when set (e.g. one built by
//! `benches/compare/run.sh`), else 12 synthetic months of 20k events built
//! in a temporary directory. Run with `cargo bench --bench query`.

use std::path::PathBuf;
use std::sync::Arc;

use auditlake::convert::{ConvertOptions, DEFAULT_MEMORY_LIMIT, Silent, convert};
use auditlake::engine::named;
use auditlake::engine::{Engine, EngineOptions};
use auditlake::lake::Lake;
use auditlake::synthetic::{Spec, generate};
use criterion::{Criterion, criterion_group, criterion_main};

fn lake(runtime: &tokio::runtime::Runtime, scratch: &std::path::Path) -> PathBuf {
    if let Some(path) = std::env::var_os("AUDITLAKE_BENCH_LAKE") {
        return PathBuf::from(path);
    }
    let spec = Spec {
        months: (1..=12).map(|m| (2024, m)).collect(),
        per_month: 20_000,
        seed: 1,
        account: "acme".into(),
        payload: Default::default(),
    };
    let archives = generate(&spec, &scratch.join("archives")).unwrap();
    let path = scratch.join("lake");
    let options = ConvertOptions {
        inputs: archives.iter().map(|p| p.display().to_string()).collect(),
        force: false,
        jobs: 2,
        memory_limit: DEFAULT_MEMORY_LIMIT,
        temp_dir: None,
        format: None,
        forget_interrupted: false,
        max_entry_size: auditlake::source::DEFAULT_MAX_ENTRY_SIZE,
    };
    runtime
        .block_on(convert(
            &Lake::local(&path).unwrap(),
            &options,
            Arc::new(Silent),
        ))
        .unwrap();
    path
}

fn bench_query(c: &mut Criterion) {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let lake = Lake::local(lake(&runtime, scratch.path())).unwrap();
    let queries = named::load(None).unwrap();
    let headline = queries.iter().find(|q| q.name == "config-changes").unwrap();
    let args = vec![
        ("app".to_string(), "billing-3".to_string()),
        ("month".to_string(), "2024-03".to_string()),
    ];

    c.bench_function("engine_open_12_months", |b| {
        b.to_async(&runtime)
            .iter(|| async { Engine::open(&lake, EngineOptions::default()).await.unwrap() });
    });

    let engine = runtime
        .block_on(Engine::open(&lake, EngineOptions::default()))
        .unwrap();
    c.bench_function("headline_config_changes_one_app_one_month", |b| {
        b.to_async(&runtime).iter(|| async {
            let params = headline.bind(&args).unwrap();
            let df = engine.sql(&headline.sql, Some(params)).await.unwrap();
            let batches = df.collect().await.unwrap();
            assert!(batches.iter().map(|b| b.num_rows()).sum::<usize>() > 0);
        });
    });
}

criterion_group!(benches, bench_query);
criterion_main!(benches);
