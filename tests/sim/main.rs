//! `outpost-sim`: the randomized simulation from the command line, to replay a seed that failed
//! in CI or to soak for as long as asked.
//!
//! ```text
//! outpost-sim --seed 7                 # replay one seed
//! outpost-sim --first 1 --seeds 50     # seeds 1 to 50
//! outpost-sim --soak 30m --json s.json # new seeds until 30 minutes have passed
//! ```
//!
//! It needs `outpost-server` built next to it (`cargo build -p outpost-server`).

use anyhow::{Context, Result, bail};
use clap::Parser;
use outpost_e2e::sim::{SimConfig, SimReport, run};
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(about = "Outpost's randomized sync simulation: devices, faults, restarts, checks")]
struct Args {
    /// Run this one seed (a replay).
    #[arg(long, conflicts_with_all = ["first", "seeds", "soak"])]
    seed: Option<u64>,
    /// The first seed of a range.
    #[arg(long, default_value_t = 1)]
    first: u64,
    /// How many seeds to run from --first.
    #[arg(long, default_value_t = 8)]
    seeds: u64,
    /// Run new seeds from --first until this much time has passed (`90s`, `30m`, `2h`).
    #[arg(long, value_parser = parse_duration)]
    soak: Option<Duration>,
    /// Devices per run.
    #[arg(long, default_value_t = 5)]
    devices: usize,
    /// Random steps per run (before everyone goes online and syncs).
    #[arg(long, default_value_t = 300)]
    steps: usize,
    /// Write the totals and every run's report to this file as JSON.
    #[arg(long)]
    json: Option<std::path::PathBuf>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?}: a duration is a number and s, m or h"))?;
    match unit {
        "s" | "" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(n * 60)),
        "h" => Ok(Duration::from_secs(n * 3600)),
        _ => Err(format!("{s:?}: a duration is a number and s, m or h")),
    }
}

#[derive(serde::Serialize, Default)]
struct Totals {
    seeds: u64,
    operations: u64,
    faults: u64,
    conflicts: u64,
    notes: usize,
    notebooks: usize,
    lost: usize,
    doubled: usize,
    seconds: f64,
    runs: Vec<SimReport>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<()> {
    let args = Args::parse();
    // RUST_LOG=outpost_core=debug shows every push reply and cycle of a replay.
    if std::env::var_os("RUST_LOG").is_some() {
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .init();
    }
    let started = Instant::now();
    let mut totals = Totals::default();
    let mut seed = args.seed.unwrap_or(args.first);
    let last = match (args.seed, args.soak) {
        (Some(s), _) => s,
        (None, Some(_)) => u64::MAX,
        (None, None) => args.first + args.seeds.saturating_sub(1),
    };
    while seed <= last {
        if args.soak.is_some_and(|soak| started.elapsed() >= soak) {
            break;
        }
        let cfg = SimConfig {
            devices: args.devices,
            steps: args.steps,
            ..SimConfig::new(seed)
        };
        let report = match tokio::spawn(run(cfg)).await {
            Ok(report) => report,
            Err(e) => bail!("seed {seed} failed: {e}\n  replay: outpost-sim --seed {seed}"),
        };
        println!("{report}");
        totals.seeds += 1;
        totals.operations += report.operations();
        totals.faults += report.faults_injected();
        totals.conflicts += report.conflicts_seen;
        totals.notes += report.notes;
        totals.notebooks += report.notebooks;
        totals.lost += report.lost;
        totals.doubled += report.doubled;
        totals.runs.push(report);
        seed += 1;
    }
    totals.seconds = started.elapsed().as_secs_f64();
    println!(
        "{} seeds, {} operations, {} faults, {} conflicts, {} notes, {} notebooks; {} lost, {} \
         doubled; all converged; {:.0} s",
        totals.seeds,
        totals.operations,
        totals.faults,
        totals.conflicts,
        totals.notes,
        totals.notebooks,
        totals.lost,
        totals.doubled,
        totals.seconds
    );
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&totals)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}
