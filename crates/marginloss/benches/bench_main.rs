//! Criterion benches: every fused `forward_backward` beside the plain reference
//! implementation in `marginloss::reference`, over a sweep of sizes, with the throughput
//! set to the bytes the fused call must read and write.
//!
//! Run all: `cargo bench -p marginloss --bench bench_main`; one topic:
//! `cargo bench -p marginloss --bench bench_main -- pointwise`. A quick smoke run of
//! every bench (each routine once): `cargo bench -p marginloss --bench bench_main -- --test`.

mod benchmarks;

criterion::criterion_main!(
    benchmarks::pointwise::benches,
    benchmarks::distance::benches,
    benchmarks::rows::benches,
    benchmarks::class::benches,
    benchmarks::batch::benches,
);
