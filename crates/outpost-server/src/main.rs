//! `outpost-server`: runs the sync server. With `--data-dir` it needs nothing else (embedded
//! SQLite); with `--database-url postgres://...` several instances can share one database.

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use outpost_protocol::blobs::MAX_CHUNK_BYTES;
use outpost_server::audit::Audit;
use outpost_server::blobs::collect::{DEFAULT_GRACE_DAYS, collect_every, grace_ms};
use outpost_server::blobs::{BlobConfig, Blobs, DEFAULT_CHUNK_BYTES, DEFAULT_MAX_BLOB_BYTES};
use outpost_server::storage::Storage;
use outpost_server::storage::postgres::PgStorage;
use outpost_server::storage::sqlite::SqliteStorage;
use outpost_server::{AppState, serve};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "outpost-server",
    version,
    about = "The Outpost sync server",
    args_conflicts_with_subcommands = true,
    after_help = "Without a command it serves. `outpost-server audit --help` for the check QA runs; `backup` and `restore` for backups of the SQLite database; `collect-blobs` to collect attachments' bytes now."
)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,

    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that each note is stored once: per account, count the notes and name any note id
    /// stored twice, any mutation handled twice, and notes whose title and body appear under
    /// more than one id. Read-only; may run beside a running server.
    #[command(
        after_help = "Exit codes: 0 each note counted once, 1 error, 2 usage, 3 something is doubled."
    )]
    Audit(AuditArgs),
    /// Write a consistent copy of the SQLite database to a new file. Safe while the server runs.
    Backup(BackupArgs),
    /// Put a backup in place of the SQLite database, with the server stopped; or, with
    /// --database-url, mark a PostgreSQL database just restored with pg_restore. The restored
    /// database starts a new epoch: devices re-download from it and send again whatever it
    /// lacks, so nothing written since the backup is lost.
    Restore(RestoreArgs),
    /// Remove attachments' bytes that no attachment refers to any more, once unreferenced for
    /// longer than the grace, and uploads abandoned for longer than it: one sweep, as a serving
    /// server runs every hour, printing what it removed. Safe while the server runs.
    CollectBlobs(CollectArgs),
}

#[derive(Debug, clap::Args)]
struct CollectArgs {
    #[command(flatten)]
    db: DatabaseArgs,

    /// The server's --blob-dir [default: `blobs` in the data directory].
    #[arg(long, value_name = "DIR", env = "OUTPOST_BLOB_DIR")]
    blob_dir: Option<PathBuf>,

    /// The server's --blob-grace-days: how long a blob stays after its last attachment was
    /// removed (0: found unreferenced by one sweep, removed by the next).
    #[arg(
        long,
        value_name = "DAYS",
        env = "OUTPOST_BLOB_GRACE_DAYS",
        default_value_t = DEFAULT_GRACE_DAYS
    )]
    grace_days: u32,

    /// Print what was removed as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct BackupArgs {
    /// The server's --data-dir.
    #[arg(long, value_name = "DIR", env = "OUTPOST_SERVER_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// The file to write (must not exist).
    #[arg(long, value_name = "FILE")]
    to: PathBuf,
}

#[derive(Debug, clap::Args)]
struct RestoreArgs {
    #[command(flatten)]
    db: DatabaseArgs,
    /// A file written by `outpost-server backup` (or any copy of the database file).
    #[arg(
        long,
        value_name = "FILE",
        required_unless_present = "database_url",
        conflicts_with = "database_url"
    )]
    from: Option<PathBuf>,
}

fn data_dir_or_default(dir: &Option<PathBuf>) -> Result<PathBuf> {
    match dir {
        Some(dir) => Ok(dir.clone()),
        None => dirs_default().context("no --data-dir given and no home directory to default to"),
    }
}

/// Where the server's database is: one definition for `serve` and `audit`.
#[derive(Debug, clap::Args)]
struct DatabaseArgs {
    /// Directory of the embedded SQLite database (`serve` creates it if missing).
    #[arg(
        long,
        value_name = "DIR",
        env = "OUTPOST_SERVER_DATA_DIR",
        conflicts_with = "database_url"
    )]
    data_dir: Option<PathBuf>,

    /// PostgreSQL connection URL, for several instances on one database (for `restore`: a
    /// database just restored with pg_restore, to start its new epoch).
    #[arg(long, value_name = "URL", env = "OUTPOST_DATABASE_URL")]
    database_url: Option<String>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    #[command(flatten)]
    db: DatabaseArgs,

    /// Address to listen on. Port 0 picks a free port (printed at start-up).
    #[arg(long, default_value = "127.0.0.1:8787", env = "OUTPOST_LISTEN")]
    listen: SocketAddr,

    /// Log as JSON lines (for log collectors).
    #[arg(long)]
    log_json: bool,

    #[command(flatten)]
    blobs: BlobArgs,
}

/// Attachments' bytes: where they go and how much the server takes.
#[derive(Debug, clap::Args)]
struct BlobArgs {
    /// Directory of attachments' bytes, created if missing [default: `blobs` in the data
    /// directory (also with --database-url: the default data directory)]. Instances on one
    /// PostgreSQL database must share it.
    #[arg(long, value_name = "DIR", env = "OUTPOST_BLOB_DIR")]
    blob_dir: Option<PathBuf>,

    /// How long an attachment's bytes stay after the last attachment naming them was removed
    /// (and how long an upload nobody continues is kept), in days. The server sweeps a minute
    /// after it starts and then every hour.
    #[arg(
        long,
        value_name = "DAYS",
        env = "OUTPOST_BLOB_GRACE_DAYS",
        default_value_t = DEFAULT_GRACE_DAYS
    )]
    blob_grace_days: u32,

    /// The largest attachment a device may upload, in bytes.
    #[arg(
        long,
        value_name = "BYTES",
        env = "OUTPOST_MAX_BLOB_BYTES",
        default_value_t = DEFAULT_MAX_BLOB_BYTES,
        value_parser = clap::value_parser!(u64).range(0..=outpost_protocol::fields::MAX_BLOB_BYTES),
    )]
    max_blob_bytes: u64,

    /// The bytes of attachments each account may keep (uploads in progress count at their
    /// full size) [default: no limit].
    #[arg(long, value_name = "BYTES", env = "OUTPOST_BLOB_QUOTA_BYTES")]
    blob_quota_bytes: Option<u64>,

    /// The chunk size devices are asked to upload in, in bytes.
    #[arg(
        long,
        value_name = "BYTES",
        env = "OUTPOST_BLOB_CHUNK_BYTES",
        default_value_t = DEFAULT_CHUNK_BYTES,
        value_parser = clap::value_parser!(u64).range(1..=MAX_CHUNK_BYTES as u64),
    )]
    blob_chunk_bytes: u64,
}

/// Where attachments' bytes are: the one definition for `serve` and `collect-blobs`.
fn blob_dir(blob_dir: &Option<PathBuf>, db: &DatabaseArgs) -> Result<PathBuf> {
    match blob_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(data_dir_or_default(&db.data_dir)?.join("blobs")),
    }
}

impl BlobArgs {
    fn open(&self, db: &DatabaseArgs) -> Result<Blobs> {
        let dir = blob_dir(&self.blob_dir, db)?;
        // Made now so a wrong path shows at start-up; a read-only disk still serves the rest.
        if let Err(e) = std::fs::create_dir_all(&dir) {
            tracing::warn!(dir = %dir.display(), error = %e, "cannot create the blob directory: uploads will fail");
        }
        tracing::info!(dir = %dir.display(), max_blob_bytes = self.max_blob_bytes, quota_bytes = ?self.blob_quota_bytes, grace_days = self.blob_grace_days, "blobs: files");
        Ok(Blobs::in_dir(
            dir,
            BlobConfig {
                max_blob_bytes: self.max_blob_bytes,
                chunk_bytes: self.blob_chunk_bytes,
                quota_bytes: self.blob_quota_bytes,
            },
        ))
    }
}

#[derive(Debug, clap::Args)]
struct AuditArgs {
    #[command(flatten)]
    db: DatabaseArgs,

    /// Print the audit as JSON.
    #[arg(long)]
    json: bool,
}

/// Exit code of an audit that found something doubled.
const EXIT_DOUBLED: i32 = 3;

async fn audit(args: &AuditArgs) -> Result<()> {
    let audit = match (&args.db.database_url, &args.db.data_dir) {
        (Some(url), _) => {
            let audited = async {
                let storage = PgStorage::connect(url).await?;
                Audit::of(&storage).await
            };
            audited.await.context("auditing the PostgreSQL database")?
        }
        (None, dir) => {
            let dir = data_dir_or_default(dir)?;
            // Not through `SqliteStorage::open`, which would create and migrate a database:
            // the audit only reads, beside a running server or none.
            outpost_server::storage::sqlite::audit_rows(&dir)
                .and_then(Audit::from_rows)
                .context("auditing the SQLite database")?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&audit)?);
    } else {
        print!("{}", audit.to_text());
    }
    if !audit.clean {
        std::process::exit(EXIT_DOUBLED);
    }
    Ok(())
}

/// `outpost-server collect-blobs`: one collection, beside a running server or none. It opens
/// the server's database as the server does (never creating one) and its blob directory.
async fn collect_blobs(args: &CollectArgs) -> Result<()> {
    // Warnings (a blob whose bytes could not be removed) on stderr; the report on stdout.
    let filter = tracing_subscriber::EnvFilter::try_from_env("OUTPOST_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let dir = blob_dir(&args.blob_dir, &args.db)?;
    if !dir.is_dir() {
        anyhow::bail!(
            "{} is not a directory: is it the server's --blob-dir?",
            dir.display()
        );
    }
    let storage: Arc<dyn Storage> = match (&args.db.database_url, &args.db.data_dir) {
        (Some(url), _) => Arc::new(
            PgStorage::connect(url)
                .await
                .context("connecting to PostgreSQL")?,
        ),
        (None, data_dir) => {
            let data_dir = data_dir_or_default(data_dir)?;
            let db = data_dir.join(outpost_server::storage::sqlite::DB_FILE);
            if !db.exists() {
                anyhow::bail!(
                    "{} does not exist: is {} the server's --data-dir?",
                    db.display(),
                    data_dir.display()
                );
            }
            Arc::new(SqliteStorage::open(&data_dir).context("opening the SQLite database")?)
        }
    };
    let blobs = Blobs::in_dir(&dir, BlobConfig::default());
    let report = blobs
        .collect(
            storage.as_ref(),
            outpost_server::clock::now_i64(),
            grace_ms(args.grace_days),
        )
        .await
        .context("collecting blobs")?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "collected {} (grace {} days): {report}",
            dir.display(),
            args.grace_days
        );
    }
    Ok(())
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

async fn open_storage(args: &ServeArgs) -> Result<Arc<dyn Storage>> {
    if let Some(url) = &args.db.database_url {
        let storage = PgStorage::connect(url)
            .await
            .context("connecting to PostgreSQL")?;
        tracing::info!("storage: PostgreSQL");
        return Ok(Arc::new(storage));
    }
    let dir = data_dir_or_default(&args.db.data_dir)?;
    let storage = SqliteStorage::open(&dir).context("opening the SQLite database")?;
    tracing::info!(db = %storage.path().display(), "storage: embedded SQLite");
    Ok(Arc::new(storage))
}

fn dirs_default() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share/outpost-server"))
}

#[tokio::main]
async fn main() -> Result<()> {
    let Args {
        command,
        serve: args,
    } = Args::parse();
    match command {
        Some(Command::Audit(audit_args)) => return audit(&audit_args).await,
        Some(Command::CollectBlobs(collect_args)) => return collect_blobs(&collect_args).await,
        Some(Command::Backup(b)) => {
            let dir = data_dir_or_default(&b.data_dir)?;
            outpost_server::storage::sqlite::backup(&dir, &b.to).context("backing up")?;
            println!("backed up {} to {}", dir.display(), b.to.display());
            return Ok(());
        }
        Some(Command::Restore(r)) => {
            let (what, history) = match (&r.db.database_url, &r.from) {
                (Some(url), _) => {
                    let storage = PgStorage::connect(url)
                        .await
                        .context("connecting to PostgreSQL")?;
                    let history = storage.new_epoch().await.context("starting a new epoch")?;
                    ("the PostgreSQL database".to_owned(), history)
                }
                (None, Some(from)) => {
                    let dir = data_dir_or_default(&r.db.data_dir)?;
                    let history = outpost_server::storage::sqlite::restore(&dir, from)
                        .context("restoring")?;
                    (
                        format!("{} from {}", dir.display(), from.display()),
                        history,
                    )
                }
                (None, None) => anyhow::bail!("restore needs --from FILE or --database-url URL"),
            };
            println!("restored {what}: history {history}; devices reconcile on their next sync");
            return Ok(());
        }
        None => {}
    }
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
    let blobs = args.blobs.open(&args.db)?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("listening on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Scripts and tests read this line to learn the port.
    println!("outpost-server listening on http://{addr}");
    tracing::info!(%addr, storage = storage.kind(), "listening");
    let state = AppState::new(storage).with_blobs(blobs);
    let collector = state.blobs.clone().map(|blobs| {
        tokio::spawn(collect_every(
            blobs,
            state.storage.clone(),
            grace_ms(args.blobs.blob_grace_days),
            state.shutdown.clone(),
        ))
    });
    serve(listener, state, shutdown_signal()).await?;
    if let Some(collector) = collector {
        // A sweep under way finishes (its bytes removed, not left without a row); the next
        // never starts.
        let _ = tokio::time::timeout(Duration::from_secs(60), collector).await;
    }
    tracing::info!("stopped");
    Ok(())
}
