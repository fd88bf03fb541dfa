//! `outpost-server`: runs the sync server. With `--data-dir` it needs nothing else (embedded
//! SQLite); with `--database-url postgres://...` several instances can share one database.

use anyhow::{Context, Result};
use clap::Parser;
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Parser)]
#[command(name = "outpost-server", version, about = "The Outpost sync server")]
struct Args {
    /// Directory of the embedded SQLite database (created if missing).
    #[arg(
        long,
        value_name = "DIR",
        env = "OUTPOST_SERVER_DATA_DIR",
        conflicts_with = "database_url"
    )]
    data_dir: Option<PathBuf>,

    /// PostgreSQL connection URL, for several instances on one database.
    #[arg(long, value_name = "URL", env = "OUTPOST_DATABASE_URL")]
    database_url: Option<String>,

    /// Address to listen on. Port 0 picks a free port (printed at start-up).
    #[arg(long, default_value = "127.0.0.1:8787", env = "OUTPOST_LISTEN")]
    listen: SocketAddr,

    /// Log as JSON lines (for log collectors).
    #[arg(long)]
    log_json: bool,
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

async fn open_storage(args: &Args) -> Result<Arc<dyn Storage>> {
    if let Some(url) = &args.database_url {
        let storage = PgStorage::connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        tracing::info!("storage: PostgreSQL");
        return Ok(Arc::new(storage));
    }
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => {
            dirs_default().context("no --data-dir given and no home directory to default to")?
        }
    };
    let storage = SqliteStorage::open(&dir).context("opening the SQLite database")?;
    tracing::info!(db = %storage.path().display(), "storage: embedded SQLite");
    Ok(Arc::new(storage))
}

fn dirs_default() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/outpost-server"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,tower_http=info"));
    if args.log_json {
        tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .init();
    } else {
        tracing_subscriber::fmt().with_env_filter(filter).init();
    }
    let storage = open_storage(&args).await?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Scripts and tests read this line to learn the port.
    println!("outpost-server listening on http://{addr}");
    tracing::info!(%addr, storage = storage.kind(), "listening");
    serve(listener, AppState::new(storage), shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}
