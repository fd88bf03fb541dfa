//! The sync engine: one per data directory. A cycle pushes the outbox in bounded batches, then
//! pulls pages until the server has no more, each page with its cursor in one transaction.
//! The background loop runs one cycle at a time; triggers (start-up, a local change (throttled),
//! a server poke, the timer, "sync now", connectivity regained) that arrive during a cycle queue
//! exactly one more. Network errors back off exponentially with jitter; status is always
//! published. SQLite and the keychain are called through [`blocking`], so a slow disk or a
//! keychain prompt never holds up the runtime's other tasks (the app's commands, the event
//! stream).

use super::account;
use super::apply::Applied;
use super::blocking;
use super::client::{SyncClient, SyncError};
use super::verify::{self, Verdict};
use crate::model::OutboxEntry;
use crate::prefs::{SYNC_INTERVAL_SECS, WORK_OFFLINE};
use crate::store::Store;
use outpost_protocol::api::{Cursor, Mutation, MutationNumber, Outcome, Version};
use serde::Serialize;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::{Notify, watch};
use tracing::Instrument as _;

/// Bounds of one cycle's requests.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The bounds of a cycle's first push (mutations, bytes of their fields).
    pub push_batch_count: usize,
    pub push_batch_bytes: usize,
    /// The most mutations a push grows to while the link answers quickly (see [`BatchSize`]);
    /// at most the protocol's `MAX_PUSH_MUTATIONS`.
    pub push_batch_max: usize,
    pub pull_limit: u32,
    /// During a burst of local edits, the shortest gap between two syncs they trigger (the
    /// first edit after a quiet spell syncs at once).
    pub debounce: Duration,
    pub min_backoff: Duration,
    pub max_backoff: Duration,
    /// The sync client's read timeout; `None` keeps the product's `client::READ_TIMEOUT`
    /// (30 s). Tests of a stalled link set a short one so they finish in seconds.
    pub read_timeout: Option<Duration>,
    /// Check the digests at the end of the cycle even if it moved nothing and the cursor was
    /// proven already: "Sync now" and `outpost sync`, where the user asks.
    pub always_check: bool,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            push_batch_count: 200,
            push_batch_bytes: 1024 * 1024,
            push_batch_max: outpost_protocol::api::MAX_PUSH_MUTATIONS,
            pull_limit: 1000,
            debounce: Duration::from_millis(300),
            min_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(300),
            read_timeout: None,
            always_check: false,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum EngineState {
    SignedOut,
    Paused,
    Syncing,
    UpToDate,
    Offline,
    Error,
}

/// Progress of a long pull: records applied of those announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Progress {
    pub done: u64,
    pub total: u64,
}

/// What the status bar shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct SyncStatus {
    pub state: EngineState,
    pub pending: i64,
    pub failed: i64,
    pub conflicts: i64,
    pub last_success_ms: Option<i64>,
    pub last_error: Option<String>,
    /// How far this device's clock is from the server's (server minus device), when notable.
    pub clock_skew_ms: Option<i64>,
    pub progress: Option<Progress>,
    /// When the next automatic retry is due (after a failure).
    pub next_retry_ms: Option<i64>,
    /// Notes that came back from the Trash because an edit won over a delete (last cycle).
    pub restored: Vec<outpost_protocol::NoteId>,
}

impl SyncStatus {
    fn new(state: EngineState) -> Self {
        Self {
            state,
            pending: 0,
            failed: 0,
            conflicts: 0,
            last_success_ms: None,
            last_error: None,
            clock_skew_ms: None,
            progress: None,
            next_retry_ms: None,
            restored: Vec::new(),
        }
    }
}

/// What one cycle did.
#[derive(Debug, Default, Clone, PartialEq, Serialize)]
pub struct CycleReport {
    pub pushed: usize,
    pub pulled: usize,
    pub applied: Applied,
    /// The cycle reconciled with the server from cursor 0 (see `Store::begin_reset`).
    pub reset: bool,
    /// What that found the server lacked and queued again.
    pub resent: super::Resent,
    /// The device's digest agreed with the server's at the cursor the cycle ended at.
    pub verified: bool,
    /// What a check that disagreed found and repaired.
    pub repaired: Option<super::doctor::Repair>,
}

impl CycleReport {
    /// The cycle sent or received anything, or reconciled.
    pub fn moved(&self) -> bool {
        self.pushed > 0 || self.pulled > 0 || self.reset
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn to_mutation(e: &OutboxEntry) -> Mutation {
    Mutation {
        id: e.mutation_id,
        number: MutationNumber(e.mutation_number),
        name: e.name.clone(),
        schema_version: e.schema_version,
        entity: e.entity,
        entity_id: e.entity_id.clone(),
        fields: e.fields.clone(),
        base_version: e.base_version.map(Version),
    }
}

fn merge_applied(into: &mut Applied, more: Applied) {
    // A note merged, conflicted or brought back twice in one cycle (its push met a conflict,
    // then the pull brought the same record) is still one note to tell the user about.
    fn add_new(into: &mut Vec<outpost_protocol::NoteId>, more: Vec<outpost_protocol::NoteId>) {
        for id in more {
            if !into.contains(&id) {
                into.push(id);
            }
        }
    }
    into.changed.extend(more.changed);
    add_new(&mut into.merged, more.merged);
    add_new(&mut into.conflicts, more.conflicts);
    add_new(&mut into.restored, more.restored);
    add_new(&mut into.returned, more.returned);
    into.rejected += more.rejected;
    into.duplicates.extend(more.duplicates);
    if let Some(s) = more.skew_ms {
        into.skew_ms = Some(into.skew_ms.unwrap_or(0).max(s));
    }
}

/// Learns the server's clock from a reply, so stamps follow server time on a device whose
/// clock is off. Measured against the store's wall clock (the one its stamps read), with
/// `sent_at_ms` read from it before the request.
fn observe_server_time(
    store: &Store,
    server_time_ms: u64,
    sent_at_ms: u64,
) -> Result<(), SyncError> {
    let as_i64 = |ms: u64| i64::try_from(ms).unwrap_or(i64::MAX);
    let (sent, received) = (as_i64(sent_at_ms), as_i64(store.wall_clock_ms()));
    let midpoint = sent + (received - sent) / 2;
    let offset = as_i64(server_time_ms) - midpoint;
    // Below a couple of seconds it is round-trip noise, not a wrong clock.
    let offset = if offset.abs() > 2_000 { offset } else { 0 };
    // A clock found ahead rewrites stamps (see `skew`): a write, off the runtime.
    blocking(|| store.set_clock_offset(offset))?;
    Ok(())
}

/// Measures the clock against the server's before this process sends anything: stamps a fast
/// clock made offline are brought back first (see `skew`), or the server would stamp them with
/// the moment they arrive. One small request per start, and only with something to send.
async fn check_clock(store: &Store, client: &SyncClient) -> Result<(), SyncError> {
    if store.clock_checked() || blocking(|| store.sendable_count())? == 0 {
        return Ok(());
    }
    let sent_at = store.wall_clock_ms();
    match client.server_time().await? {
        Some(server_time) => observe_server_time(store, server_time, sent_at),
        // A server that does not say: its push replies will.
        None => Ok(()),
    }
}

/// The bounds of the next push. A long backlog on a fast link goes in few, large requests (each
/// costs the server a commit and a disk sync); on a slow link a request stays small enough to
/// finish between two cuts. It doubles after a request answered within [`BatchSize::GROW_BELOW`],
/// up to `push_batch_max`, and is back at the start after one that took longer than
/// [`BatchSize::SHRINK_ABOVE`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchSize {
    count: usize,
    bytes: usize,
}

impl BatchSize {
    const GROW_BELOW: Duration = Duration::from_millis(500);
    const SHRINK_ABOVE: Duration = Duration::from_secs(3);

    fn start(cfg: &EngineConfig) -> BatchSize {
        BatchSize {
            count: cfg.push_batch_count.max(1),
            bytes: cfg.push_batch_bytes,
        }
    }

    fn after(self, request: Duration, cfg: &EngineConfig) -> BatchSize {
        let start = BatchSize::start(cfg);
        let max = cfg.push_batch_max.clamp(
            start.count,
            outpost_protocol::api::MAX_PUSH_MUTATIONS.max(start.count),
        );
        if request > Self::SHRINK_ABOVE {
            start
        } else if request < Self::GROW_BELOW && self.count < max {
            let count = (self.count * 2).min(max);
            BatchSize {
                count,
                // The bytes grow with the count: a batch of large notes stays as many seconds
                // of the link as a batch of small ones.
                bytes: start.bytes.saturating_mul(count) / start.count,
            }
        } else {
            self
        }
    }
}

/// A batch the server answered, waiting for its replies to be applied.
type Answered = (Vec<OutboxEntry>, Vec<outpost_protocol::api::MutationResult>);

fn apply_answered(
    store: &Store,
    answered: Option<Answered>,
    report: &mut CycleReport,
) -> Result<(), SyncError> {
    if let Some((sent, results)) = answered {
        let applied = blocking(|| store.apply_push_results(&sent, &results))?;
        report.pushed += sent.len();
        merge_applied(&mut report.applied, applied);
    }
    Ok(())
}

/// Pushes the outbox, one request at a time (the server must see mutation numbers in order),
/// with the device's own work done while the server answers: as batch N is in flight, the
/// replies to batch N-1 are applied and batch N+1 is taken. Batch N+1 stops before the first
/// entry of an entity still in flight, so an entry is never taken before the replies about its
/// entity's earlier entries are applied (its base version comes from them).
async fn push_all(
    store: &Store,
    client: &SyncClient,
    cfg: &EngineConfig,
    report: &mut CycleReport,
) -> Result<(), SyncError> {
    // Everything about to leave the device must survive a power cut first (see db::Synchronous).
    blocking(|| store.durable_barrier())?;
    let mut size = BatchSize::start(cfg);
    let mut batch = Vec::new();
    let mut answered: Option<Answered> = None;
    let mut conflicted = false;
    loop {
        if batch.is_empty() {
            // Nothing taken ahead (the queue's next entry was in flight, or this is the start):
            // settle what was answered, then take with nothing in flight.
            apply_answered(store, answered.take(), report)?;
            if conflicted {
                return Ok(());
            }
            let BatchSize { count, bytes } = size;
            batch = blocking(|| store.take_batch(count, bytes))?;
            if batch.is_empty() {
                return Ok(());
            }
        }
        let started = std::time::Instant::now();
        let sent_at = store.wall_clock_ms();
        // The request runs as a task of its own, so it is on its way while this task works in
        // the store (which holds this task's thread).
        let mutations: Vec<Mutation> = batch.iter().map(to_mutation).collect();
        let request = tokio::spawn({
            let client = client.clone();
            async move { client.push(mutations).await }
        });
        // Replies already received are applied even if this request fails.
        let settled = apply_answered(store, answered.take(), report);
        let following = match (&settled, conflicted) {
            (Ok(()), false) => {
                let BatchSize { count, bytes } = size;
                blocking(|| store.take_batch_behind(count, bytes, &batch))
            }
            _ => Ok(Vec::new()),
        };
        let reply = request
            .await
            .map_err(|e| SyncError::Offline(format!("the push did not finish: {e}")))?;
        let request = started.elapsed();
        settled?;
        let following = following?;
        let reply = reply?;
        size = size.after(request, cfg);
        crate::testhook::pause_at(crate::testhook::PUSH_SENT);
        observe_server_time(store, reply.server_time_ms, sent_at)?;
        if reply.results.len() != batch.len() {
            return Err(SyncError::Garbage(format!(
                "{} results for {} mutations",
                reply.results.len(),
                batch.len()
            )));
        }
        // A conflict queues the edit again, rebased on the server's record. Pull before sending
        // it: if the server's history moved under this device (a restore to an older copy),
        // only the pull finds that out, and pushing the requeued edit at once would meet the
        // same conflict again, and again (found by the simulation, seed 5016: a device pushed
        // one edit 386,000 times against a restored server). A batch already taken still goes
        // first: a pull must find no entry marked sent.
        conflicted |= reply.results.iter().any(|r| match &r.outcome {
            Outcome::Conflict { .. } => true,
            Outcome::Duplicate { first } => {
                matches!(first.as_deref(), Some(Outcome::Conflict { .. }))
            }
            _ => false,
        });
        tracing::debug!(
            mutations = batch.len(),
            request_ms = request.as_millis() as u64,
            "pushed a batch"
        );
        answered = Some((std::mem::replace(&mut batch, following), reply.results));
    }
}

async fn pull_all(
    store: &Store,
    client: &SyncClient,
    cfg: &EngineConfig,
    report: &mut CycleReport,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<(), SyncError> {
    // A re-download cut short (crash, network) goes on from its saved cursor: what it confirmed
    // so far is kept in the store with that cursor.
    let reconciling = blocking(|| store.reset_in_progress())?;
    report.reset |= reconciling;
    let cursor = blocking(|| store.cursor())?;
    let chain = blocking(|| store.cursor_chain())?;
    let mut done = 0u64;
    let mut total = None;
    // The next page is fetched while this one is applied: on a long first sync the network and
    // the disk work at the same time.
    let fetch = |cursor: Cursor, chain: Option<String>| {
        let client = client.clone();
        let limit = cfg.pull_limit;
        let sent_at = store.wall_clock_ms();
        AbortOnDrop(tokio::spawn(async move {
            let started = std::time::Instant::now();
            let page = client.pull(cursor, chain.as_deref(), limit).await;
            (sent_at, started.elapsed(), page)
        }))
    };
    let mut next = fetch(cursor, chain);
    loop {
        let (sent_at, fetched_in, page) = (&mut next.0)
            .await
            .map_err(|e| SyncError::Garbage(format!("the pull was cut short: {e}")))?;
        let page = page?;
        if page.has_more {
            next = fetch(page.next_cursor, page.next_chain.clone());
        }
        observe_server_time(store, page.server_time_ms, sent_at)?;
        let n = page.records.len() as u64;
        let total_now = *total.get_or_insert(n + page.remaining);
        done += n;
        if total_now > 0 {
            progress(Progress {
                done,
                total: total_now.max(done),
            });
        }
        let apply_started = std::time::Instant::now();
        let applied = blocking(|| {
            store.apply_pull(&page.records, page.next_cursor, page.next_chain.as_deref())
        })?;
        tracing::debug!(
            records = n,
            cursor = %page.next_cursor,
            fetch_ms = fetched_in.as_millis() as u64,
            apply_ms = apply_started.elapsed().as_millis() as u64,
            "pulled a page"
        );
        report.pulled += page.records.len();
        merge_applied(&mut report.applied, applied);
        if !page.has_more {
            return pulled_to_the_end(store, reconciling, report);
        }
    }
}

/// A pull read to the server's newest change: what the server should have and does not, and,
/// reconciling, what it lacks and is sent again.
fn pulled_to_the_end(
    store: &Store,
    reconciling: bool,
    report: &mut CycleReport,
) -> Result<(), SyncError> {
    let lost = blocking(|| store.lost_acknowledged())?;
    if lost > 0 && !reconciling {
        // Read to the server's newest change, and still not back: the server lost them (and,
        // with them, maybe more that other devices sent).
        return Err(SyncError::HistoryChanged {
            now: None,
            why: format!(
                "the server no longer has {lost} changes it had acknowledged (restored from a backup?); reconciling"
            ),
        });
    }
    if reconciling {
        let resent = blocking(|| store.finish_reset())?;
        if resent.total() > 0 {
            tracing::warn!(
                notes = resent.notes,
                notebooks = resent.notebooks,
                prefs = resent.prefs,
                "the server lacked records this device holds: sending them again"
            );
        }
        report.resent.notes += resent.notes;
        report.resent.notebooks += resent.notebooks;
        report.resent.prefs += resent.prefs;
    }
    Ok(())
}

/// A background fetch that stops when the cycle stops (an error, shutdown) instead of
/// finishing a download nobody will apply.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Compares this device's digest with the server's at the same cursor (see `verify`).
async fn check(store: &Store, client: &SyncClient) -> Result<Verdict, SyncError> {
    // The request goes out first (`join!` polls in order), so the server sums up its side while
    // this device brings its own up to date.
    let (server, local) =
        tokio::join!(client.digest(), async { blocking(|| store.local_digest()) });
    let (local, server) = (local?, server?);
    let verdict = verify::compare(&local, &server).map_err(SyncError::Garbage)?;
    tracing::debug!(?verdict, cursor = %local.cursor, pending = local.pending.len(), "checked the device's digest against the server's");
    Ok(verdict)
}

/// For the sync log: notes deleted for good here that are back.
fn describe_returned(n: usize) -> Option<String> {
    (n > 0).then(|| {
        format!(
            "{n} {} you deleted for good {} back: edited on another device meanwhile, or the server was restored from a backup older than the delete; delete {} again if you want {} gone",
            if n == 1 { "note" } else { "notes" },
            if n == 1 { "is" } else { "are" },
            if n == 1 { "it" } else { "them" },
            if n == 1 { "it" } else { "them" },
        )
    })
}

/// For the sync log: what a check that disagreed repaired, in the user's words.
fn describe_repair(diagnosis: &super::Diagnosis, done: &super::Repair) -> Option<String> {
    use super::Problem;
    let mut resent = super::Resent::default();
    for d in &diagnosis.differences {
        if d.problem == Problem::MissingOnServer {
            match d.entity {
                outpost_protocol::Entity::Note => resent.notes += 1,
                outpost_protocol::Entity::Notebook => resent.notebooks += 1,
                outpost_protocol::Entity::Pref => resent.prefs += 1,
                outpost_protocol::Entity::Attachment => resent.attachments += 1,
            }
        }
    }
    let fetched = diagnosis.differences.len() - resent.total();
    let mut parts: Vec<String> = resent.describe().into_iter().collect();
    if fetched > 0 {
        parts.push(format!(
            "Took {fetched} {} from the server that differed on this device",
            if fetched == 1 { "record" } else { "records" }
        ));
    }
    if done.skipped > 0 {
        parts.push(format!(
            "{} changed here meanwhile and will sync as usual",
            done.skipped
        ));
    }
    (!parts.is_empty()).then(|| format!("Checked against the server: {}", parts.join("; ")))
}

/// What the server's answer says about this device's cursor: it must reconcile from cursor 0,
/// and against which history.
fn needs_reconcile(e: &SyncError) -> Option<Option<outpost_protocol::api::History>> {
    match e {
        SyncError::ResetRequired(_) => Some(None),
        SyncError::HistoryChanged { now, .. } => Some(*now),
        _ => None,
    }
}

/// One whole cycle: push, pull, and push again what the pull merged (bounded).
pub async fn run_cycle(
    store: &Store,
    client: &SyncClient,
    cfg: &EngineConfig,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<CycleReport, SyncError> {
    let span = tracing::info_span!("sync_cycle", client = %store.client_id());
    cycle(store, client, cfg, progress).instrument(span).await
}

async fn cycle(
    store: &Store,
    client: &SyncClient,
    cfg: &EngineConfig,
    progress: &(dyn Fn(Progress) + Send + Sync),
) -> Result<CycleReport, SyncError> {
    let known = blocking(|| store.server_history())?;
    // A stored history that does not parse is treated as none: the first reply sets it, and
    // the cursor is still checked by its chain.
    client.expect_history(known.as_deref().and_then(|h| h.parse().ok()));
    let mut report = CycleReport::default();
    let mut reconciles = 0;
    let mut rounds = 0;
    // A check is skipped only by an idle cycle at a cursor already proven, and not for long:
    // an idle device still checks now and then (a server that lost data tells nobody).
    let check_due = cfg.always_check
        || blocking(|| store.verification_due(now_ms()))?
        || !blocking(|| store.verified_at_cursor())?;
    let mut repaired = false;
    while rounds < 4 {
        let round = async {
            check_clock(store, client).await?;
            push_all(store, client, cfg, &mut report).await?;
            pull_all(store, client, cfg, &mut report, progress).await?;
            if blocking(|| store.sendable_count())? > 0 {
                // A merge queued something: send it before checking.
                return Ok(None);
            }
            if !(check_due || report.moved() || repaired) {
                return Ok(None);
            }
            check(store, client).await.map(Some)
        }
        .await;
        let verdict = match round {
            Ok(verdict) => verdict,
            Err(e) => {
                reconciles += 1;
                reconcile_after(e, reconciles, store, client)?;
                report.reset = true;
                continue;
            }
        };
        rounds += 1;
        match verdict {
            // Something to send again, or a check not wanted (idle, checked recently).
            None if blocking(|| store.sendable_count())? > 0 => continue,
            None => break,
            Some(Verdict::Agrees) => {
                blocking(|| store.set_verified(store.cursor()?, now_ms()))?;
                report.verified = true;
                break;
            }
            Some(Verdict::OtherCursor { server, device }) => {
                // Another device committed since this one pulled: pull again, check again.
                tracing::debug!(%server, %device, "the server's digest is of another cursor");
            }
            Some(Verdict::Differs { buckets }) => {
                if repaired {
                    // Not a loop of repairs: the next cycle (with backoff) looks again.
                    return Err(SyncError::Unverified(format!(
                        "this device and the server still differ after a repair ({} of 256 buckets); nothing was removed, syncing tries again",
                        buckets.len()
                    )));
                }
                repaired = true;
                if repair_differences(store, client, buckets.len(), &mut report).await? {
                    break;
                }
            }
        }
    }
    finish_cycle(store, client, known.is_none(), &report)?;
    Ok(report)
}

/// After a round failed with `e`: begins a reconcile when the server's history changed (a
/// restore, another database), or gives `e` back. `reconciles` counts this one.
fn reconcile_after(
    e: SyncError,
    reconciles: u32,
    store: &Store,
    client: &SyncClient,
) -> Result<(), SyncError> {
    let Some(history) = needs_reconcile(&e) else {
        return Err(e);
    };
    if reconciles > 2 {
        // The history changed again while reconciling: replies from two databases (instances
        // behind one address on different data). Stop rather than mix them; nothing was
        // removed, the next cycle tries again.
        return Err(SyncError::HistoryChanged {
            now: history,
            why: format!(
                "the server keeps answering from different copies of its data ({e}); syncing waits until it answers from one"
            ),
        });
    }
    tracing::warn!(error = %e, "reconciling with the server from the start; keeping everything on this device");
    let history = history.or_else(|| client.history());
    blocking(|| store.begin_reset(history.map(|h| h.to_string()).as_deref()))?;
    client.expect_history(history);
    Ok(())
}

/// The digests differ in `buckets` buckets: the doctor compares record by record and repairs.
/// `true` when every record agreed after all (the sums are rebuilt, the device is verified).
async fn repair_differences(
    store: &Store,
    client: &SyncClient,
    buckets: usize,
    report: &mut CycleReport,
) -> Result<bool, SyncError> {
    tracing::warn!(buckets, "this device and the server differ: repairing");
    let diagnosis = super::doctor::diagnose(store, client).await?;
    if diagnosis.differences.is_empty() {
        // Record by record, device and server agree: the sums differ by what this version of
        // the app does not sync (a newer device's preference), or one side's sums drifted. The
        // full pass is what counts; the device sums its records up again from scratch at the
        // next check.
        tracing::warn!(
            buckets,
            "the digests differ but every record agrees; summing up again"
        );
        blocking(|| store.rebuild_local_digest())?;
        blocking(|| store.set_verified(Cursor(diagnosis.device_cursor), now_ms()))?;
        report.verified = true;
        return Ok(true);
    }
    let done = super::doctor::repair(store, client, &diagnosis).await?;
    if let Some(notice) = describe_repair(&diagnosis, &done) {
        blocking(|| store.record_sync_error(&notice, now_ms()))?;
    }
    report.repaired = Some(done);
    Ok(false)
}

/// A cycle that got through: its history, its success, and what the user should read in the
/// sync log.
fn finish_cycle(
    store: &Store,
    client: &SyncClient,
    history_unknown: bool,
    report: &CycleReport,
) -> Result<(), SyncError> {
    if history_unknown && let Some(history) = client.history() {
        blocking(|| store.set_server_history(&history.to_string()))?;
    }
    blocking(|| store.record_sync_success(now_ms()))?;
    if let Some(notice) = report.resent.describe() {
        // In the sync log, so the user can see why their notes went up again.
        blocking(|| store.record_sync_error(&notice, now_ms()))?;
    }
    if let Some(notice) = describe_returned(report.applied.returned.len()) {
        blocking(|| store.record_sync_error(&notice, now_ms()))?;
    }
    tracing::info!(
        pushed = report.pushed,
        pulled = report.pulled,
        conflicts = report.applied.conflicts.len(),
        resent = report.resent.total(),
        "sync cycle done"
    );
    Ok(())
}

struct Inner {
    store: Arc<Store>,
    vault: super::vault::TokenVault,
    cfg: EngineConfig,
    wake: Notify,
    /// Something for the attachments' transfers: a cycle ended, "Sync now", "Retry".
    transfer_wake: Notify,
    /// "Sync now" was pressed: the next cycle checks the digests whatever it moves.
    check_next: AtomicBool,
    paused: AtomicBool,
    status: watch::Sender<SyncStatus>,
    stop: watch::Sender<bool>,
}

impl Inner {
    fn publish(&self, f: impl FnOnce(&mut SyncStatus)) {
        let counts = blocking(|| self.store.local_status()).ok();
        let last_success = blocking(|| self.store.last_sync_success()).ok().flatten();
        let skew = self.store.clock_offset_ms();
        self.status.send_modify(|s| {
            f(s);
            if let Some(c) = &counts {
                s.pending = c.pending;
                s.failed = c.failed;
                s.conflicts = c.conflicts;
            }
            s.last_success_ms = last_success;
            s.clock_skew_ms = (skew != 0).then_some(skew);
        });
    }
}

/// The running engine. Dropping it stops the background tasks.
pub struct SyncEngine {
    inner: Arc<Inner>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl SyncEngine {
    /// Starts the engine on the current tokio runtime and triggers a first sync.
    pub fn start(
        store: Arc<Store>,
        vault: super::vault::TokenVault,
        cfg: EngineConfig,
    ) -> SyncEngine {
        // "Work offline" that cannot be read is taken as set: the user may have asked for it
        // (on a metered link, say), and syncing against that wish cannot be undone. The status
        // says why; "Resume" clears it.
        let (paused, unreadable) = match store.get_pref(WORK_OFFLINE) {
            Ok(p) => (p.value.as_bool().unwrap_or(false), None),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the Work offline setting: staying offline until resumed");
                (
                    true,
                    Some(format!(
                        "Cannot read the Work offline setting ({e}): staying offline until you resume"
                    )),
                )
            }
        };
        let inner = Arc::new(Inner {
            store,
            vault,
            cfg,
            wake: Notify::new(),
            transfer_wake: Notify::new(),
            check_next: AtomicBool::new(false),
            paused: AtomicBool::new(paused),
            status: watch::channel(SyncStatus::new(EngineState::SignedOut)).0,
            stop: watch::channel(false).0,
        });
        if let Some(why) = unreadable {
            inner.status.send_modify(|s| s.last_error = Some(why));
        }
        inner.wake.notify_one();
        let tasks = vec![
            tokio::spawn(run_loop(inner.clone())),
            tokio::spawn(watch_local_changes(inner.clone())),
            tokio::spawn(listen_for_pokes(inner.clone())),
            tokio::spawn(transfer_loop(inner.clone())),
        ];
        SyncEngine { inner, tasks }
    }

    /// "Sync now": at once, also while backing off after a failure, and checked against the
    /// server's digest whatever it moves.
    pub fn sync_now(&self) {
        self.inner.check_next.store(true, Ordering::SeqCst);
        self.inner.wake.notify_one();
        self.inner.transfer_wake.notify_one();
    }

    /// Tries the attachments' transfers again now (after "Retry", or an attachment added).
    pub fn transfer_now(&self) {
        self.inner.transfer_wake.notify_one();
    }

    /// "Work offline": pauses syncing (remembered across restarts); resuming syncs at once.
    pub fn set_paused(&self, paused: bool) -> crate::Result<()> {
        self.inner
            .store
            .set_pref(WORK_OFFLINE, serde_json::Value::Bool(paused))?;
        self.inner.paused.store(paused, Ordering::SeqCst);
        self.inner.wake.notify_one();
        Ok(())
    }

    pub fn status(&self) -> watch::Receiver<SyncStatus> {
        self.inner.status.subscribe()
    }

    /// Stops after the cycle in progress, if any; what is pending stays in the outbox.
    pub async fn shutdown(mut self) {
        let _ = self.inner.stop.send(true);
        self.inner.wake.notify_one();
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }
}

impl Drop for SyncEngine {
    fn drop(&mut self) {
        let _ = self.inner.stop.send(true);
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Resolves once the engine is told to stop, also when that was before this task first looked
/// (a `changed()` would wait for a later change that never comes: a shutdown right after
/// start-up hung on it).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// How soon a cycle that ended without proving "Up to date" is followed by another.
const UNPROVEN_RETRY: Duration = Duration::from_secs(2);
/// The longest wait between such cycles.
const UNPROVEN_RETRY_MAX: Duration = Duration::from_secs(60);

fn jitter(d: Duration) -> Duration {
    // Up to ±25 %: devices that lost the network together do not come back in lockstep.
    let r = (uuid::Uuid::new_v4().as_u128() % 1000) as f64 / 1000.0;
    d.mul_f64(0.75 + r * 0.5)
}

async fn run_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut pacing = Pacing::new(&inner.cfg);
    let mut retry_in: Option<Duration> = None;
    loop {
        let wait = retry_in.unwrap_or_else(|| sync_interval(&inner.store));
        tokio::select! {
            () = inner.wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut stop) => {}
        }
        if *stop.borrow() {
            return;
        }
        if inner.paused.load(Ordering::SeqCst) {
            retry_in = None;
            inner.publish(|s| {
                s.state = EngineState::Paused;
                s.next_retry_ms = None;
            });
            continue;
        }
        // A sign-in that cannot be read (a locked keychain, a damaged token file) is an error
        // to show and retry, not "Signed out": the user did not sign out.
        let session = match blocking(|| account::signed_in(&inner.store, &inner.vault)) {
            Ok(None) => {
                retry_in = None;
                inner.publish(|s| s.state = EngineState::SignedOut);
                continue;
            }
            Ok(Some(session)) => Ok(session),
            Err(e) => Err(e),
        };
        inner.publish(|s| {
            s.state = EngineState::Syncing;
            s.progress = None;
        });
        let cycle = async {
            let client = match inner.cfg.read_timeout {
                Some(read) => session?
                    .client
                    .with_timeouts(super::client::CONNECT_TIMEOUT, read)?,
                None => session?.client,
            };
            let progress = {
                let inner = inner.clone();
                move |p: Progress| inner.status.send_modify(|s| s.progress = Some(p))
            };
            let cfg = EngineConfig {
                always_check: inner.check_next.swap(false, Ordering::SeqCst),
                ..inner.cfg.clone()
            };
            run_cycle(&inner.store, &client, &cfg, &progress).await
        }
        .await;
        retry_in = match cycle {
            Ok(report) => cycle_done(&inner, &report, &mut pacing),
            Err(e) => cycle_failed(&inner, &e, &mut pacing),
        };
        // The records went (or could not): the bytes follow on their own loop, so a long
        // upload never holds the next edit back.
        inner.transfer_wake.notify_one();
    }
}

/// How often the transfers look again while nothing wakes them (a retry whose time came).
const TRANSFER_IDLE: Duration = Duration::from_secs(30);
/// The longest wait after transfers failed in a row.
const TRANSFER_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Moves the attachments' bytes ([`super::transfer`]) beside the sync loop: woken after each
/// cycle, and now and then for retries. A failure (the network went) backs off; what the
/// server acknowledged stays acknowledged.
async fn transfer_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut failures: u32 = 0;
    loop {
        let wait = match failures {
            0 => TRANSFER_IDLE,
            n => {
                jitter(Duration::from_secs(2u64.saturating_pow(n.min(8))).min(TRANSFER_BACKOFF_MAX))
            }
        };
        tokio::select! {
            () = inner.transfer_wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
            () = stopped(&mut stop) => {}
        }
        if *stop.borrow() {
            return;
        }
        if inner.paused.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(Some(session)) = blocking(|| account::signed_in(&inner.store, &inner.vault)) else {
            continue;
        };
        let client = match inner.cfg.read_timeout {
            Some(read) => match session
                .client
                .with_timeouts(super::client::CONNECT_TIMEOUT, read)
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "cannot set up the transfers' client");
                    continue;
                }
            },
            None => session.client,
        };
        match super::transfer::run_transfers(&inner.store, &client).await {
            Ok(report) => {
                failures = 0;
                if report != super::transfer::TransferReport::default() {
                    inner.publish(|_| {});
                }
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                tracing::info!(error = %e, failures, "attachment transfers paused");
            }
        }
    }
}

/// The interval between cycles the user chose (Settings), five minutes by default.
fn sync_interval(store: &Store) -> Duration {
    Duration::from_secs(
        blocking(|| store.get_pref(SYNC_INTERVAL_SECS))
            .ok()
            .and_then(|p| p.value.as_u64())
            .unwrap_or(300),
    )
}

/// How long the engine waits before it tries again: after failures (backing off), and while
/// "Up to date" is not proven.
struct Pacing {
    min_backoff: Duration,
    max_backoff: Duration,
    backoff: Duration,
    unproven_wait: Duration,
}

impl Pacing {
    fn new(cfg: &EngineConfig) -> Self {
        Self {
            min_backoff: cfg.min_backoff,
            max_backoff: cfg.max_backoff,
            backoff: cfg.min_backoff,
            unproven_wait: UNPROVEN_RETRY,
        }
    }

    fn succeeded(&mut self, proven: bool) -> Option<Duration> {
        self.backoff = self.min_backoff;
        if proven {
            self.unproven_wait = UNPROVEN_RETRY;
            return None;
        }
        // Backs off while it stays unproven (an account busy with other devices).
        let wait = jitter(self.unproven_wait);
        self.unproven_wait = (self.unproven_wait * 2).min(UNPROVEN_RETRY_MAX);
        Some(wait)
    }

    fn failed(&mut self) -> Duration {
        let delay = jitter(self.backoff);
        self.backoff = (self.backoff * 2).min(self.max_backoff);
        delay
    }
}

/// Publishes a cycle that got through; returns when to look again.
fn cycle_done(inner: &Inner, report: &CycleReport, pacing: &mut Pacing) -> Option<Duration> {
    // "Up to date" is proven: the digests agreed at this cursor and nothing waits. Otherwise
    // (another device kept committing while this one checked, or an edit came in meanwhile)
    // the engine looks again shortly.
    let proven = (report.verified
        || blocking(|| inner.store.verified_at_cursor()).unwrap_or(false))
        && blocking(|| inner.store.sendable_count()).is_ok_and(|n| n == 0);
    let retry_in = pacing.succeeded(proven);
    inner.publish(|s| {
        s.state = if proven {
            EngineState::UpToDate
        } else {
            EngineState::Syncing
        };
        s.last_error = None;
        s.progress = None;
        s.next_retry_ms = None;
        s.restored = report.applied.restored.clone();
    });
    retry_in
}

/// Publishes and logs a failed cycle; returns when to try again (never by itself once signed
/// out).
fn cycle_failed(inner: &Inner, e: &SyncError, pacing: &mut Pacing) -> Option<Duration> {
    let delay = pacing.failed();
    let state = match e {
        SyncError::Offline(_) => EngineState::Offline,
        SyncError::SignedOut(_) | SyncError::NotSignedIn => EngineState::SignedOut,
        _ => EngineState::Error,
    };
    let retry_in = (state != EngineState::SignedOut).then_some(delay);
    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, "sync cycle failed");
    let message = e.to_string();
    if let Err(log_error) = blocking(|| inner.store.record_sync_error(&message, now_ms())) {
        tracing::warn!(error = %log_error, "cannot keep the sync error in the sync log");
    }
    inner.publish(|s| {
        s.state = state;
        s.last_error = Some(message);
        s.progress = None;
        s.next_retry_ms = retry_in.map(|d| now_ms() + d.as_millis() as i64);
    });
    retry_in
}

/// A local change queues a sync: at once after a quiet spell, so a single edit reaches the other
/// devices within a round trip; during a burst at most once per `debounce`, so a long typing
/// session still syncs as it goes (a pure debounce would wait for the user to stop) without a
/// cycle per keystroke. Changes made while waiting ride along: the cycle reads the whole outbox.
async fn watch_local_changes(inner: Arc<Inner>) {
    use tokio::sync::broadcast::error::{RecvError, TryRecvError};
    let mut changes = inner.store.subscribe();
    let mut stop = inner.stop.subscribe();
    let mut last_trigger: Option<tokio::time::Instant> = None;
    loop {
        let change = tokio::select! {
            c = changes.recv() => c,
            () = stopped(&mut stop) => return,
        };
        match change {
            Ok(c) if !c.queued => continue,
            Ok(_) | Err(RecvError::Lagged(_)) => {}
            Err(RecvError::Closed) => return,
        }
        if let Some(next) = last_trigger.map(|t| t + inner.cfg.debounce) {
            tokio::select! {
                () = tokio::time::sleep_until(next) => {}
                () = stopped(&mut stop) => return,
            }
        }
        loop {
            match changes.try_recv() {
                Ok(_) | Err(TryRecvError::Lagged(_)) => {}
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => return,
            }
        }
        last_trigger = Some(tokio::time::Instant::now());
        tracing::debug!("local change: sync");
        inner.wake.notify_one();
    }
}

/// Keeps the server's event stream open while signed in; a poke past our cursor, or the stream
/// coming back after the network was gone, triggers a sync.
async fn listen_for_pokes(inner: Arc<Inner>) {
    use futures_util::StreamExt;
    let mut stop = inner.stop.subscribe();
    let mut backoff = Duration::from_secs(1);
    loop {
        if *stop.borrow() {
            return;
        }
        let session = if inner.paused.load(Ordering::SeqCst) {
            None
        } else {
            // A sign-in that cannot be read means no event stream; the sync loop reports it.
            blocking(|| account::signed_in(&inner.store, &inner.vault))
                .ok()
                .flatten()
        };
        if let Some(session) = session {
            match session.client.events().await {
                Ok(stream) => {
                    backoff = Duration::from_secs(1);
                    let mut stream = std::pin::pin!(stream);
                    loop {
                        let next = tokio::select! {
                            n = stream.next() => n,
                            () = stopped(&mut stop) => return,
                        };
                        match next {
                            Some(Ok(cursor)) => {
                                let behind = blocking(|| inner.store.cursor())
                                    .map(|c| cursor > c)
                                    .unwrap_or(true);
                                let offline = inner.status.borrow().state == EngineState::Offline;
                                tracing::debug!(cursor = %cursor, behind, "poke from the server");
                                if behind || offline {
                                    inner.wake.notify_one();
                                }
                            }
                            Some(Err(_)) | None => break,
                        }
                    }
                }
                Err(e) => tracing::debug!(error = %e, "event stream unavailable"),
            }
        }
        tokio::select! {
            () = tokio::time::sleep(jitter(backoff)) => {}
            () = stopped(&mut stop) => return,
        }
        backoff = (backoff * 2).min(Duration::from_secs(60));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::StoreOptions;
    use crate::clock::WallClock;
    use crate::error::SqlContext;

    /// A device clock standing still at a given time.
    struct Stopped(u64);
    impl WallClock for Stopped {
        fn now_ms(&self) -> u64 {
            self.0
        }
    }

    #[test]
    fn a_push_grows_while_the_link_is_fast_and_starts_again_when_it_is_slow() {
        let cfg = EngineConfig::default();
        let fast = Duration::from_millis(40);
        let mut size = BatchSize::start(&cfg);
        assert_eq!((size.count, size.bytes), (200, 1024 * 1024));
        size = size.after(fast, &cfg);
        assert_eq!((size.count, size.bytes), (400, 2 * 1024 * 1024));
        size = size.after(fast, &cfg).after(fast, &cfg);
        assert_eq!(
            size.count,
            outpost_protocol::api::MAX_PUSH_MUTATIONS,
            "never past the protocol's limit"
        );
        assert_eq!(
            size.after(Duration::from_secs(1), &cfg),
            size,
            "neither fast nor slow: kept"
        );
        assert_eq!(
            size.after(Duration::from_secs(8), &cfg),
            BatchSize::start(&cfg),
            "slow: back to the start"
        );
        let fixed = EngineConfig {
            push_batch_count: 7,
            push_batch_max: 7,
            ..EngineConfig::default()
        };
        assert_eq!(
            BatchSize::start(&fixed).after(fast, &fixed).count,
            7,
            "a fixed size stays fixed"
        );
    }

    #[test]
    fn the_clock_correction_is_measured_against_the_clock_the_stamps_read() {
        const DAY_MS: u64 = 24 * 3600 * 1000;
        let dir = tempfile::tempdir().expect("dir");
        // A device a day ahead of the server (and of the test machine's clock).
        let device_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("time")
            .as_millis() as u64
            + DAY_MS;
        let options = StoreOptions {
            wall_clock: Arc::new(Stopped(device_ms)),
            ..Default::default()
        };
        let store = Store::open_with(dir.path(), options).expect("store");
        observe_server_time(&store, device_ms - DAY_MS, store.wall_clock_ms()).expect("observe");
        assert_eq!(store.clock_offset_ms(), -(DAY_MS as i64));
    }

    /// Waits (with a deadline) for the engine's status to satisfy `done`.
    async fn wait_for(engine: &SyncEngine, done: impl Fn(&SyncStatus) -> bool) -> SyncStatus {
        let mut status = engine.status();
        let waited = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let now = status.borrow_and_update().clone();
                if done(&now) {
                    return now;
                }
                status.changed().await.expect("the engine is running");
            }
        })
        .await;
        waited.unwrap_or_else(|_| panic!("status never came: {:?}", engine.status().borrow()))
    }

    /// Issue 12: a sign-in whose token cannot be read (a damaged credentials file, a locked
    /// keychain) shows as an error saying so, and is retried; "Signed out" would tell the user
    /// something they did not do.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_sign_in_that_cannot_be_read_shows_as_an_error_not_as_signed_out() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        store
            .write(|tx| {
                crate::meta::set(
                    &tx.tx,
                    tx.path,
                    crate::meta::SERVER_URL,
                    "http://127.0.0.1:9",
                )?;
                crate::meta::set(&tx.tx, tx.path, crate::meta::ACCOUNT_ID, "acct-1")
            })
            .expect("signed in once");
        let vault = super::super::vault::TokenVault::file_only(dir.path());
        std::fs::write(vault.file_path(), "not the credentials file").expect("damage it");
        let engine = SyncEngine::start(store, vault, EngineConfig::default());
        // The engine starts as "Signed out" until it has looked: wait for what it says after.
        let status = wait_for(&engine, |s| {
            s.last_error.is_some() || s.state == EngineState::UpToDate
        })
        .await;
        assert_eq!(status.state, EngineState::Error, "{status:?}");
        let message = status.last_error.unwrap_or_default();
        assert!(
            message.contains("token store failed"),
            "what the status shows: {message}"
        );
        assert!(status.next_retry_ms.is_some(), "retried later");
        engine.shutdown().await;
    }

    /// Issue 12: "Work offline" that cannot be read is honoured as set (syncing against the
    /// user's wish cannot be undone), and the status says why it is offline.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn work_offline_that_cannot_be_read_keeps_the_device_offline_and_says_why() {
        let dir = tempfile::tempdir().expect("dir");
        let store = Arc::new(Store::open(dir.path()).expect("store"));
        store
            .write(|tx| tx.tx.execute_batch("DROP TABLE prefs").at(tx.path))
            .expect("damage the preferences");
        let vault = super::super::vault::TokenVault::file_only(dir.path());
        let engine = SyncEngine::start(store, vault, EngineConfig::default());
        let status = wait_for(&engine, |s| s.state == EngineState::Paused).await;
        let message = status.last_error.unwrap_or_default();
        assert!(
            message.contains("Cannot read the Work offline setting"),
            "what the status shows: {message}"
        );
        engine.shutdown().await;
    }
}
