//! The sync commands: sign-in, one cycle or a watching engine, conflicts and dead letters.

use crate::cli::AuthArgs;
use crate::failure::{Attention, Disagreement};
use crate::output::Printer;
use anyhow::{Context, Result, anyhow};
use outpost_core::attachments::human_bytes;
use outpost_core::dates::to_the_minute;
use outpost_core::sync::vault::TokenVault;
use outpost_core::sync::{
    Diagnosis, EngineConfig, EngineState, Resolution, SyncEngine, SyncError, TransferReport,
    account, doctor, run_cycle, run_transfers,
};
use outpost_core::{APP_IDENTIFIER, Store};
use serde_json::json;
use std::io::Read;
use std::path::Path;
use std::sync::Arc;

/// The sync commands are async; the rest of the CLI is not, so each gets a small runtime.
fn runtime() -> Result<tokio::runtime::Runtime> {
    // Two workers: a long pull fetches the next page while this one is written to disk.
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the async runtime")
}

pub fn vault(store: &Store) -> TokenVault {
    TokenVault::new(APP_IDENTIFIER, store.data_dir())
}

fn password(args: &AuthArgs) -> Result<String> {
    if args.password_stdin {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the password from standard input")?;
        return Ok(text.trim_end_matches(['\r', '\n']).to_owned());
    }
    std::env::var("OUTPOST_PASSWORD").map_err(|_| {
        anyhow!("give the password on standard input with --password-stdin, or in OUTPOST_PASSWORD")
    })
}

pub fn sign_in(store: &Store, out: &Printer, args: &AuthArgs, new_account: bool) -> Result<()> {
    let password = password(args)?;
    let vault = vault(store);
    let which = account::Account::new_if(new_account);
    let session = runtime()?.block_on(account::sign_in(
        store,
        &vault,
        &args.server,
        &args.email,
        &password,
        which,
    ))?;
    out.message(
        &format!("signed in to {} as {}", session.server_url, session.email),
        json!({ "server": session.server_url, "account_id": session.account_id, "email": session.email }),
    )
}

pub fn sign_out(store: &Store, out: &Printer) -> Result<()> {
    runtime()?.block_on(account::logout(store, &vault(store)))?;
    out.message(
        "signed out; notes and pending changes stay on this device",
        json!({ "signed_out": true }),
    )
}

pub fn sync(store: Store, out: &Printer, watch: bool) -> Result<()> {
    let store = Arc::new(store);
    let vault = vault(&store);
    if watch {
        return runtime()?.block_on(watch_loop(store, vault, out));
    }
    let session = account::signed_in(&store, &vault)?.ok_or(SyncError::NotSignedIn)?;
    let json = out.json;
    // Asked for by hand: checked against the server whatever the cycle moves.
    let cfg = EngineConfig {
        always_check: true,
        ..EngineConfig::default()
    };
    let report = runtime()?.block_on(run_cycle(&store, &session.client, &cfg, &|p| {
        if !json {
            eprint!("\rpulled {}/{}", p.done, p.total);
        }
    }))?;
    let transfers = runtime()?.block_on(run_transfers(&store, &session.client));
    let status = store.local_status()?;
    let transfers = match transfers {
        Ok(t) => t,
        Err(e) => {
            // The notes synced; the bytes wait for the next sync.
            if !json {
                eprintln!("attachments not transferred this time: {e}");
            }
            TransferReport::default()
        }
    };
    // A server that lost data: say what went up again, and why (JSON has it in the report).
    let resent = report
        .resent
        .describe()
        .filter(|_| !json)
        .map_or(String::new(), |notice| format!("{notice}\n"));
    // "Up to date" is proven by the digests (see `outpost_core::sync::verify`), or not yet.
    let proof = if store.verified_at_cursor()? {
        "checked: the server holds the same"
    } else {
        "not yet checked against the server"
    };
    out.message(
        &format!(
            "{}{resent}synced: sent {}, received {}, merged {}, {} conflicts, {} failed, {} pending; {proof}",
            if report.pulled > 0 && !json { "\n" } else { "" },
            report.pushed,
            report.pulled,
            report.applied.merged.len(),
            status.conflicts,
            status.failed,
            status.pending
        ),
        json!({ "report": report, "status": status, "transfers": {
            "uploaded": transfers.uploaded, "downloaded": transfers.downloaded,
            "bytes_up": transfers.bytes_up, "bytes_down": transfers.bytes_down,
            "failed": transfers.failed, "not_yet_on_server": transfers.not_yet_on_server,
        } }),
    )?;
    if !json && transfers != TransferReport::default() {
        eprintln!(
            "attachments: {} uploaded ({}), {} downloaded ({}){}{}",
            transfers.uploaded,
            human_bytes(transfers.bytes_up),
            transfers.downloaded,
            human_bytes(transfers.bytes_down),
            if transfers.failed > 0 {
                format!(", {} failed", transfers.failed)
            } else {
                String::new()
            },
            if transfers.not_yet_on_server > 0 {
                format!(", {} not on the server yet", transfers.not_yet_on_server)
            } else {
                String::new()
            },
        );
    }
    if status.conflicts > 0 || status.failed > 0 {
        return Err(anyhow::Error::new(Attention {
            conflicts: status.conflicts,
            failed: status.failed,
        }));
    }
    Ok(())
}

async fn watch_loop(store: Arc<Store>, vault: TokenVault, out: &Printer) -> Result<()> {
    let engine = SyncEngine::start(store, vault, EngineConfig::default());
    let mut status = engine.status();
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() {
                    break;
                }
                let s = status.borrow_and_update().clone();
                if out.json {
                    println!("{}", serde_json::to_string(&s)?);
                } else {
                    let state = match s.state {
                        EngineState::SignedOut => "signed out",
                        EngineState::Paused => "paused (working offline)",
                        EngineState::Syncing => "syncing",
                        EngineState::UpToDate => "up to date",
                        EngineState::Offline => "offline",
                        EngineState::Error => "error",
                    };
                    let progress = s.progress.map(|p| format!(" {}/{}", p.done, p.total)).unwrap_or_default();
                    let error = s.last_error.as_deref().map(|e| format!(" ({e})")).unwrap_or_default();
                    println!("{state}{progress}: {} pending, {} failed, {} conflicts{error}", s.pending, s.failed, s.conflicts);
                }
            }
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    engine.shutdown().await;
    Ok(())
}

/// `outpost attachment get`: the file from this device, or fetched from the server first.
pub fn get_attachment(store: &Store, out: &Printer, id: &str, dest: &Path) -> Result<()> {
    let id = store.resolve_attachment_id(id)?;
    let attachment = store.get_attachment(id)?;
    let files = store.blob_files();
    let mut downloaded_now = 0;
    if !files.has(&attachment.sha256) {
        store.want_attachment(id)?;
        let session = account::signed_in(store, &vault(store))?.ok_or_else(|| {
            anyhow!(
                "{} is not on this device yet and this device is not signed in to fetch it",
                attachment.name
            )
        })?;
        let report = runtime()?.block_on(run_transfers(store, &session.client))?;
        downloaded_now = report.bytes_down;
        if !files.has(&attachment.sha256) {
            let why = if report.not_yet_on_server > 0 {
                "the device that added it has not uploaded it yet".to_owned()
            } else {
                match store.get_attachment(id)?.state {
                    outpost_core::attachments::AttachmentState::Failed { reason } => reason,
                    _ => "the download did not finish; try again".to_owned(),
                }
            };
            return Err(anyhow!("{} is not on this device: {why}", attachment.name));
        }
    }
    let size = match files.copy_verified(&attachment.sha256, dest) {
        Err(outpost_core::Error::Data(why)) => {
            // Damaged here (a bad disk, a tool that wrote into the data folder): fetched again.
            store.refetch_damaged(&attachment.sha256)?;
            let session = account::signed_in(store, &vault(store))?
                .ok_or_else(|| anyhow!("{why}; sign in to fetch it again"))?;
            runtime()?.block_on(run_transfers(store, &session.client))?;
            files.copy_verified(&attachment.sha256, dest)?
        }
        other => other?,
    };
    out.message(
        &format!(
            "wrote {} ({}) to {}",
            attachment.name,
            human_bytes(size),
            dest.display()
        ),
        json!({ "id": id, "name": attachment.name, "size": size, "path": dest,
                "downloaded_bytes": downloaded_now }),
    )
}

pub fn conflicts(store: &Store, out: &Printer) -> Result<()> {
    let conflicts = store.conflicts()?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&conflicts)?);
        return Ok(());
    }
    if conflicts.is_empty() {
        println!("no conflicts");
    }
    for c in conflicts {
        println!(
            "{}  {}  (since {} UTC)",
            c.note_id,
            c.title,
            to_the_minute(c.created_ms)
        );
        println!(
            "--- mine\n{}\n--- theirs\n{}\n",
            c.mine.trim_end(),
            c.theirs.trim_end()
        );
    }
    Ok(())
}

pub fn resolve(
    store: &Store,
    out: &Printer,
    id: &str,
    mine: bool,
    theirs: bool,
    file: Option<&Path>,
) -> Result<()> {
    let id = store.resolve_note_id(id)?;
    let resolution = match (mine, theirs, file) {
        (true, _, _) => Resolution::Mine,
        (_, true, _) => Resolution::Theirs,
        (_, _, Some(path)) => {
            let mut text = String::new();
            if path.as_os_str() == "-" {
                std::io::stdin()
                    .read_to_string(&mut text)
                    .context("reading the merged text")?;
            } else {
                text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
            }
            Resolution::Text(text)
        }
        _ => return Err(anyhow!("say how: --mine, --theirs or --file PATH")),
    };
    let note = store.resolve_conflict(id, resolution)?;
    out.message(
        &format!("resolved {}; it syncs with the next sync", note.id),
        json!({ "resolved": note.id }),
    )
}

pub fn failed(store: &Store, out: &Printer) -> Result<()> {
    let dead = store.dead_letters()?;
    if out.json {
        println!("{}", serde_json::to_string_pretty(&dead)?);
        return Ok(());
    }
    if dead.is_empty() {
        println!("no failed changes");
    }
    for e in dead {
        println!(
            "{}  {} {}  {}",
            e.mutation_id,
            e.name,
            e.entity_id,
            e.last_error.as_deref().unwrap_or("refused")
        );
    }
    Ok(())
}

pub fn retry(store: &Store, out: &Printer, id: &str) -> Result<()> {
    let mutation = store.resolve_dead_letter(id)?;
    store.retry_dead_letter(mutation)?;
    out.message(
        "queued again; it is sent with the next sync",
        json!({ "retried": mutation }),
    )
}

pub fn discard(store: &Store, out: &Printer, id: &str) -> Result<()> {
    let mutation = store.resolve_dead_letter(id)?;
    store.discard_dead_letter(mutation)?;
    out.message(
        "discarded; the note is back to the server's version of those fields",
        json!({ "discarded": mutation }),
    )
}

fn print_diagnosis(d: &Diagnosis, heading: &str) {
    println!("{heading}");
    println!(
        "  server: {} notes, {} in Trash, {} notebooks, {} preferences (cursor {})",
        d.server.notes,
        d.server.notes_in_trash,
        d.server.notebooks,
        d.server.prefs,
        d.server_cursor
    );
    println!(
        "  device: {} notes, {} in Trash, {} notebooks, {} preferences (cursor {})",
        d.device.notes,
        d.device.notes_in_trash,
        d.device.notebooks,
        d.device.prefs,
        d.device_cursor
    );
    if d.pending > 0 {
        println!(
            "  {} with changes not yet synced (left out of the check)",
            d.pending
        );
    }
    if d.agrees() {
        println!("  device and server agree");
        return;
    }
    println!("  {} differ:", d.differences.len());
    for diff in &d.differences {
        let name = diff
            .title
            .as_deref()
            .filter(|t| !t.is_empty())
            .unwrap_or("(untitled)");
        let versions = match (diff.device_version, diff.server_version) {
            (Some(a), Some(b)) => format!(" (version {a} here, {b} on the server)"),
            _ => String::new(),
        };
        println!(
            "    {} {}  {name}: {}{versions}",
            diff.entity.as_str(),
            diff.id,
            diff.problem.describe()
        );
    }
}

/// `outpost doctor`: sync (unless told not to), compare with the server, and optionally repair
/// and compare again.
pub fn doctor(store: &Store, out: &Printer, repair: bool, no_sync: bool) -> Result<()> {
    let session = account::signed_in(store, &vault(store))?.ok_or(SyncError::NotSignedIn)?;
    let cfg = EngineConfig::default();
    let rt = runtime()?;
    let quiet = |_: outpost_core::sync::Progress| {};
    if !no_sync {
        rt.block_on(run_cycle(store, &session.client, &cfg, &quiet))?;
    }
    let before = rt.block_on(doctor::diagnose(store, &session.client))?;
    let mut result = json!({ "diagnosis": before });
    if !out.json {
        print_diagnosis(&before, "checked this device against the server:");
    }
    let mut remaining = before.differences.len();
    if repair && !before.agrees() {
        let done = rt.block_on(doctor::repair(store, &session.client, &before))?;
        // Send what the repair queued again, then check that it worked.
        rt.block_on(run_cycle(store, &session.client, &cfg, &quiet))?;
        let after = rt.block_on(doctor::diagnose(store, &session.client))?;
        if !out.json {
            println!(
                "repaired: {} rewritten from the server, {} removed, {} sent again, {} skipped (changed meanwhile)",
                done.rewritten, done.removed, done.requeued, done.skipped
            );
            print_diagnosis(&after, "checked again:");
        }
        remaining = after.differences.len();
        result = json!({ "diagnosis": before, "repair": done, "after": after });
    }
    if out.json {
        json_out(&result)?;
    }
    if remaining > 0 {
        return Err(anyhow::Error::new(Disagreement { count: remaining }));
    }
    Ok(())
}

fn json_out(value: &serde_json::Value) -> Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}
