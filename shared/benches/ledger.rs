//! Ledger apply throughput, with and without the duplicate-id window, side by side.
use cashflow_shared::generator::{Generator, GeneratorSettings};
use cashflow_shared::ledger::Position;
use cashflow_shared::{Ledger, Money};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use rand::SeedableRng;
use rand::rngs::SmallRng;

fn bench(c: &mut Criterion) {
    let mut rng = SmallRng::seed_from_u64(1);
    let mut g = Generator::new(
        GeneratorSettings {
            accounts: 100,
            ..Default::default()
        },
        Money::from_major(100),
    )
    .unwrap();
    let txs: Vec<_> = (0..10_000).map(|i| g.next(&mut rng, i)).collect();
    let mut group = c.benchmark_group("ledger");
    group.throughput(Throughput::Elements(txs.len() as u64));
    for window in [1i64, cashflow_shared::ledger::DEFAULT_ID_WINDOW] {
        group.bench_function(format!("apply_10k_window_{window}"), |b| {
            b.iter(|| {
                let mut l = Ledger::with_id_window(Money::from_major(100), window);
                for (i, t) in txs.iter().enumerate() {
                    l.apply(
                        t,
                        Position {
                            partition: (t.account % 6) as i32,
                            offset: i as i64,
                        },
                    );
                }
                l
            })
        });
    }
    group.bench_function("parse_10k", |b| {
        let raw: Vec<String> = txs.iter().map(|t| t.to_json()).collect();
        b.iter(|| {
            raw.iter()
                .filter(|r| cashflow_shared::Transaction::parse(r.as_bytes()).is_ok())
                .count()
        })
    });
    // The borrowed form the balance calculator reads: the fast path for cashflow's own records.
    group.bench_function("parse_ref_10k", |b| {
        let raw: Vec<String> = txs.iter().map(|t| t.to_json()).collect();
        b.iter(|| {
            raw.iter()
                .filter(|r| cashflow_shared::TransactionRef::parse(r.as_bytes()).is_ok())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
