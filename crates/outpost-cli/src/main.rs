//! `outpost`: a headless Outpost client on the same core as the desktop app, for QA scripts,
//! automation and benchmarks. Every read command takes `--json`; errors are one line on stderr
//! (a `{code, message}` object with `--json`) and a non-zero exit code that says what kind.

mod cli;
mod failure;
mod output;
mod run;
mod seed;
mod sync;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = cli::Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    match run::run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            failure::print_error(&err, args.json);
            ExitCode::from(failure::exit_code(&err))
        }
    }
}
