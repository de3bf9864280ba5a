//! Convert throughput: one synthetic month (100k events by default, or
//! `AUDITLAKE_BENCH_EVENTS`) into a fresh lake, reported as events/s and as
//! MB/s of uncompressed JSON. Run with `cargo bench --bench convert`.

use std::sync::Arc;

use auditlake::convert::{ConvertOptions, DEFAULT_MEMORY_LIMIT, Silent, convert};
use auditlake::lake::Lake;
use auditlake::synthetic::{Spec, generate};
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};

fn events() -> u64 {
    std::env::var("AUDITLAKE_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000)
}

fn bench_convert(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let spec = Spec {
        months: vec![(2024, 3)],
        per_month: events(),
        seed: 1,
        account: "acme".into(),
        payload: Default::default(),
    };
    let archives = generate(&spec, &dir.path().join("archives")).unwrap();
    let json_bytes = {
        let mut n = 0u64;
        auditlake::synthetic::write_month(&spec, 2024, 3, &mut CountingSink(&mut n)).unwrap();
        n
    };
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let options = |lake: &std::path::Path| ConvertOptions {
        inputs: archives.iter().map(|p| p.display().to_string()).collect(),
        force: false,
        jobs: 2,
        memory_limit: DEFAULT_MEMORY_LIMIT,
        temp_dir: Some(lake.parent().unwrap().to_path_buf()),
        format: None,
        forget_interrupted: false,
        max_entry_size: auditlake::source::DEFAULT_MAX_ENTRY_SIZE,
    };

    for (name, throughput) in [
        ("convert_events", Throughput::Elements(spec.per_month)),
        ("convert_json_bytes", Throughput::Bytes(json_bytes)),
    ] {
        let mut group = c.benchmark_group(name);
        group.sample_size(10).throughput(throughput);
        group.bench_function(format!("{}_events", spec.per_month), |b| {
            b.to_async(&runtime).iter_batched(
                || tempfile::tempdir_in(dir.path()).unwrap(),
                |lake_dir| {
                    let lake_path = lake_dir.path().join("lake");
                    let options = options(&lake_path);
                    async move {
                        let lake = Lake::local(&lake_path).unwrap();
                        let summary = convert(&lake, &options, Arc::new(Silent)).await.unwrap();
                        assert_eq!(summary.failed, 0);
                        drop(lake_dir);
                    }
                },
                BatchSize::PerIteration,
            );
        });
        group.finish();
    }
}

/// Counts bytes written.
struct CountingSink<'a>(&'a mut u64);
impl std::io::Write for CountingSink<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        *self.0 += buf.len() as u64;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

criterion_group!(benches, bench_convert);
criterion_main!(benches);
