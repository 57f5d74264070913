//! Benches of the pure parts on the hot and slow paths, with a `baseline` measuring the floor
//! (an empty closure through criterion), so other numbers read as ratios against it.

// criterion_group! defines the undocumented `benches` entry point.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::Arc;

use aiocop_events::{
    assemble, format_record, format_trace, Frame, RawArgs, RawRecord, Slice, Stack,
};
use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_queue::ArrayQueue;

fn frames(n: usize) -> Vec<Frame> {
    let file: Arc<str> = Arc::from("/srv/app/src/service/handlers.py");
    let func: Arc<str> = Arc::from("handle_request");
    (0..n)
        .map(|i| Frame::new(file.clone(), i32::try_from(i).unwrap_or(0), func.clone()))
        .collect()
}

fn record() -> RawRecord {
    RawRecord {
        event_name: "open".into(),
        args: RawArgs::Values(vec![
            "/srv/app/data/file.txt".into(),
            "r".into(),
            "524288".into(),
        ]),
        stack: Stack::shared(frames(20)),
        timestamp: 0.0,
        weight: Some(10),
    }
}

fn baseline(c: &mut Criterion) {
    c.bench_function("baseline", |b| b.iter(|| black_box(())));
}

fn severity(c: &mut Criterion) {
    c.bench_function("lookup_hit", |b| {
        b.iter(|| aiocop_severity::lookup(black_box(b"socket.socket.connect")))
    });
    c.bench_function("lookup_miss", |b| {
        b.iter(|| aiocop_severity::lookup(black_box(b"object.__getattr__")))
    });
    let weights = [Some(50), Some(10), None, Some(1)];
    c.bench_function("score_4", |b| {
        b.iter(|| aiocop_severity::score(black_box(weights)))
    });
}

fn formatting(c: &mut Criterion) {
    // A call site's first event: its 20-frame trace is formatted.
    let f = frames(20);
    c.bench_function("format_trace_20_frames", |b| {
        b.iter(|| format_trace(black_box(&f)))
    });
    // Every later event of the same call site: the shared stack is formatted already.
    let r = record();
    c.bench_function("format_record_20_frames", |b| {
        b.iter(|| format_record(black_box(&r)))
    });
    let slice = Slice {
        elapsed_ns: 40_000_000,
        threshold_ns: 30_000_000,
        records: vec![record(), record()],
        cpu_samples: vec![frames(20), frames(20), frames(10)],
        dropped_records: 0,
        ..Slice::default()
    };
    c.bench_function("assemble_2_records_3_samples", |b| {
        b.iter(|| assemble(black_box(&slice)))
    });
}

/// A reading of the handle clock (twice per monitored handle), next to `std::time::Instant`,
/// which reads `CLOCK_MONOTONIC`.
fn clock(c: &mut Criterion) {
    c.bench_function("clock_now_ns", |b| b.iter(aiocop_clock::now_ns));
    c.bench_function("instant_now", |b| b.iter(std::time::Instant::now));
}

fn queue(c: &mut Criterion) {
    let q: ArrayQueue<u64> = ArrayQueue::new(aiocop_events::MAX_RECORDS_PER_HANDLE);
    c.bench_function("queue_push_pop", |b| {
        b.iter(|| {
            let _ = q.push(black_box(7));
            q.pop()
        })
    });
}

criterion_group!(benches, baseline, severity, formatting, clock, queue);
criterion_main!(benches);
