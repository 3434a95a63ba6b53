//! Matching and storing a new entry against the stories already stored: the time per entry
//! must not grow with the store (an in-memory LSH index finds candidates by band, not by
//! scanning). Stores of 1,000, 10,000 and 100,000 fingerprinted entries; `docs/benchmarks.md`
//! has the figures.

// The allocator the binary runs on (src/main.rs), so that the figures are the daemon's.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use feedmill::model::Entry;
use feedmill::model::SourceState;
use feedmill::store::sled::SledStore;

/// A made-up article: distinct words, so that no two of them are the same story.
fn article(source: usize, n: usize) -> Entry {
    let words: String = (0..60).map(|w| format!("s{source}n{n}w{w} ")).collect();
    Entry {
        identity: format!("{source}-{n}"),
        title: format!("Story {n} of source {source}"),
        link: Some(format!("https://s{source}.example/{n}")),
        published: None,
        updated: None,
        authors: vec![],
        summary: Some(format!("<p>{words}</p>")),
        content: None,
        categories: vec![],
        ..Entry::default()
    }
}

fn filled_store(entries: usize) -> (tempfile::TempDir, SledStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SledStore::open(&dir.path().join("db")).expect("store");
    let per_source = 1000.min(entries);
    let now = Utc.timestamp_opt(1_800_000_000, 0).single().expect("time");
    for source in 0..entries / per_source {
        let batch: Vec<Entry> = (0..per_source).map(|n| article(source, n)).collect();
        let mut state = SourceState::default();
        store
            .commit_fetch(&format!("s{source}"), &mut state, &batch, now)
            .expect("commit");
    }
    (dir, store)
}

fn match_new_entry(c: &mut Criterion) {
    let mut group = c.benchmark_group("match a new entry");
    group.sample_size(30);
    for size in [1_000usize, 10_000, 100_000] {
        let (_dir, store) = filled_store(size);
        let mut n = 0usize;
        group.bench_with_input(BenchmarkId::from_parameter(size), &size, |b, _| {
            b.iter(|| {
                // A new entry of a new source each time: matched against everything stored
                // (and no source's index grows across iterations, as retention ensures).
                n += 1;
                let mut state = SourceState::default();
                let entry = article(1_000_000 + n, n);
                let now = Utc.timestamp_opt(1_900_000_000, 0).single().expect("time");
                black_box(
                    store
                        .commit_fetch(&format!("incoming{n}"), &mut state, &[entry], now)
                        .expect("commit"),
                )
            })
        });
    }
    group.finish();
}

criterion_group!(benches, match_new_entry);
criterion_main!(benches);
