//! The randomized simulation in CI (issues 6 and 11): a bounded number of seeds, each five
//! devices of one account through their own fault proxies to the real server process (one seed
//! in four on PostgreSQL), random operations, offline periods, faults, restarts, clock skews,
//! server kills, backups and restores of an older one, and a full or read-only disk; then all
//! online and synced, and the checks of `outpost_e2e::sim::verify` (every replica identical to the server,
//! every note created and not deleted for good present once, every last write shown, nothing
//! pending or in conflict).
//!
//! `OUTPOST_SIM_SEEDS=first..end` picks the seeds (default `1..9`); a failure names its seed,
//! and `cargo run -p outpost-e2e --bin outpost-sim -- --seed N` replays it.

use outpost_e2e::sim::{SimConfig, SimReport, run};

fn seeds() -> std::ops::Range<u64> {
    let spec = std::env::var("OUTPOST_SIM_SEEDS").unwrap_or_else(|_| "1..9".into());
    let (first, end) = spec
        .split_once("..")
        .unwrap_or_else(|| panic!("OUTPOST_SIM_SEEDS is first..end, not {spec:?}"));
    let parse = |s: &str| {
        s.trim()
            .parse::<u64>()
            .unwrap_or_else(|_| panic!("OUTPOST_SIM_SEEDS: {s:?} is not a number"))
    };
    parse(first)..parse(end)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_devices_faults_and_restarts_converge_with_nothing_lost_or_doubled() {
    let mut total = SimReport::default();
    let mut runs = 0;
    for seed in seeds() {
        // In a task of its own, so that a failed check is reported with its seed.
        let report = match tokio::spawn(run(SimConfig::new(seed))).await {
            Ok(report) => report,
            Err(e) => panic!(
                "the simulation failed with seed {seed}: {e}\n  replay it with: cargo run -p \
                 outpost-e2e --bin outpost-sim -- --seed {seed}"
            ),
        };
        eprintln!("{report}");
        runs += 1;
        total.steps += report.steps;
        total.notes += report.notes;
        total.notebooks += report.notebooks;
        total.ops_refused += report.ops_refused;
        for (k, v) in &report.ops {
            *total.ops.entry(k).or_default() += v;
        }
        for (k, v) in &report.faults {
            *total.faults.entry(k).or_default() += v;
        }
        total.conflicts_seen += report.conflicts_seen;
        total.seconds += report.seconds;
    }
    assert!(runs > 0, "OUTPOST_SIM_SEEDS names no seed");
    eprintln!(
        "simulation: {runs} seeds, {} operations, {} faults, {} conflicts, {} notes and {} \
         notebooks in all; 0 lost, 0 doubled, all converged; {:.1} s",
        total.operations(),
        total.faults_injected(),
        total.conflicts_seen,
        total.notes,
        total.notebooks,
        total.seconds
    );
}
