//! Benchmarks of the local store (see BENCHMARKS.md, "Local store (outpost-core)").
//!
//! `cargo bench -p outpost-core --bench store` runs, in one process:
//!
//! - `write`: create and update of one note with its outbox entry, one transaction each, with
//!   `synchronous = NORMAL` (the default) and `FULL`, through the store and through a bare
//!   rusqlite connection on the same schema and pragmas (the baseline). Per-op latencies come
//!   from criterion; the store/bare throughput ratios from interleaved rounds measured here, so
//!   that noise from other processes hits both sides alike.
//! - `scale`: `OUTPOST_BENCH_NOTES` (default 100,000) notes of about 1 KB imported one by one
//!   through `create_note`, then the first page of `list_notes` and a mix of `search_notes`
//!   queries (rare word, medium word, two words, prefixes as the user types).
//! - Investigations, printed with the summary: what the store's statements around the two
//!   inserts cost, what FTS prefix indexes would cost writes, and the store's search SQL against
//!   variants of it on a raw connection to the 100,000-note database (timings, query plans, and
//!   whether each variant returns the same notes in the same order).
//!
//! A filter argument (`cargo bench ... -- write`, `-- scale`) runs only the matching part.
//! `OUTPOST_BENCH_DIR=<empty dir>` keeps the scale database there. Under
//! `cargo test --all-targets` the bench runs once, on a few hundred notes, as a smoke test.

use anyhow::{Context, Result, ensure};
use criterion::{Criterion, SamplingMode};
use outpost_core::{
    ListQuery, MutationId, NoteDraft, NoteId, NotePatch, NotebookId, Store, StoreOptions,
    Synchronous,
};
use rusqlite::{Connection, TransactionBehavior, params};
use serde_json::json;
use std::collections::HashSet;
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

const DEFAULT_NOTES: usize = 100_000;
/// Notes already in each database before the write benchmarks start.
const WRITE_SEED_NOTES: usize = 1_000;
/// Results a search asks for (one screen of hits).
const SEARCH_LIMIT: u32 = 50;

// ---------------------------------------------------------------------------------------------
// Deterministic text: a seeded RNG, a pseudo-word vocabulary with a Zipf-like distribution.
// ---------------------------------------------------------------------------------------------

/// SplitMix64: small, fast, good enough for test data, and the same on every machine.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }
}

const ONSETS: [&str; 26] = [
    "b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br",
    "cr", "dr", "st", "tr", "pl", "gr", "sh", "th",
];
const VOWELS: [&str; 9] = ["a", "e", "i", "o", "u", "ai", "ea", "ou", "io"];
const CODAS: [&str; 12] = ["", "", "", "", "n", "r", "s", "t", "l", "m", "nd", "st"];

/// Words of the main vocabulary (Zipf-distributed) and of the name list (uniform: sites,
/// people, part names; these are the rare words).
const VOCABULARY: usize = 6_000;
const ZIPF_EXPONENT: f64 = 1.05;
const NAMES: usize = 3_000;
/// Names per note on average: with 100,000 notes each name is in ~15 notes.
const NAMES_PER_NOTE: f64 = 0.45;

struct Corpus {
    words: Vec<String>,
    names: Vec<String>,
    /// Cumulative Zipf weights over `words`, rank 0 most frequent.
    cdf: Vec<f64>,
}

fn pseudo_word(rng: &mut Rng, syllables: usize) -> String {
    let mut w = String::new();
    for _ in 0..syllables {
        w.push_str(ONSETS[rng.below(ONSETS.len())]);
        w.push_str(VOWELS[rng.below(VOWELS.len())]);
        w.push_str(CODAS[rng.below(CODAS.len())]);
    }
    w
}

impl Corpus {
    fn new(seed: u64) -> Corpus {
        let mut rng = Rng(seed);
        let mut seen = HashSet::new();
        let mut words = Vec::with_capacity(VOCABULARY);
        while words.len() < VOCABULARY {
            // Frequent words are short, as in natural language.
            let rank = words.len();
            let syllables = match rank {
                0..=49 => 1,
                50..=499 => 1 + rng.below(2),
                500..=1999 => 2 + rng.below(2),
                _ => 2 + rng.below(3),
            };
            let w = pseudo_word(&mut rng, syllables);
            if seen.insert(w.clone()) {
                words.push(w);
            }
        }
        let mut names = Vec::with_capacity(NAMES);
        while names.len() < NAMES {
            let w = pseudo_word(&mut rng, 3);
            if seen.insert(w.clone()) {
                let mut c = w.chars();
                let cap: String = c
                    .next()
                    .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                    .unwrap_or_default();
                names.push(cap);
            }
        }
        let mut cdf = Vec::with_capacity(VOCABULARY);
        let mut total = 0.0;
        for rank in 1..=VOCABULARY {
            total += 1.0 / (rank as f64).powf(ZIPF_EXPONENT);
            cdf.push(total);
        }
        for c in &mut cdf {
            *c /= total;
        }
        Corpus { words, names, cdf }
    }

    fn zipf(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cdf.partition_point(|&c| c < u).min(VOCABULARY - 1)
    }
}

/// Generates note texts and counts, per word, in how many notes it occurs (title or body).
struct NoteGen<'a> {
    corpus: &'a Corpus,
    rng: Rng,
    notes_made: u32,
    /// Last note each word / name was seen in (1-based), and its document frequency.
    word_last: Vec<u32>,
    word_df: Vec<u32>,
    name_last: Vec<u32>,
    name_df: Vec<u32>,
}

impl<'a> NoteGen<'a> {
    fn new(corpus: &'a Corpus, seed: u64) -> Self {
        NoteGen {
            corpus,
            rng: Rng(seed),
            notes_made: 0,
            word_last: vec![0; VOCABULARY],
            word_df: vec![0; VOCABULARY],
            name_last: vec![0; NAMES],
            name_df: vec![0; NAMES],
        }
    }

    fn word(&mut self) -> &'a str {
        let i = self.corpus.zipf(&mut self.rng);
        if self.word_last[i] != self.notes_made {
            self.word_last[i] = self.notes_made;
            self.word_df[i] += 1;
        }
        &self.corpus.words[i]
    }

    fn name(&mut self) -> &'a str {
        let i = self.rng.below(NAMES);
        if self.name_last[i] != self.notes_made {
            self.name_last[i] = self.notes_made;
            self.name_df[i] += 1;
        }
        &self.corpus.names[i]
    }

    fn sentence(&mut self, out: &mut String) {
        let len = 6 + self.rng.below(14);
        for i in 0..len {
            if i > 0 {
                out.push(' ');
            }
            if self.rng.chance(NAMES_PER_NOTE / 150.0) {
                out.push_str(self.name());
            } else if i == 0 {
                let w = self.word();
                let mut c = w.chars();
                if let Some(f) = c.next() {
                    out.push(f.to_ascii_uppercase());
                    out.push_str(c.as_str());
                }
            } else {
                out.push_str(self.word());
            }
            if i + 1 < len && self.rng.chance(0.06) {
                out.push(',');
            }
        }
        out.push('.');
    }

    /// A note of about `body_bytes` bytes of Markdown-ish text.
    fn draft(&mut self, body_bytes: usize, notebooks: &[NotebookId]) -> NoteDraft {
        self.notes_made += 1;
        let mut title = String::new();
        for i in 0..2 + self.rng.below(5) {
            if i > 0 {
                title.push(' ');
            }
            title.push_str(self.word());
        }
        let mut body = String::with_capacity(body_bytes + 200);
        while body.len() < body_bytes {
            if !body.is_empty() {
                body.push_str(if self.rng.chance(0.25) { "\n\n" } else { " " });
            }
            match self.rng.below(12) {
                0 => {
                    body.push_str("## ");
                    body.push_str(self.word());
                    body.push(' ');
                    body.push_str(self.word());
                    body.push('\n');
                }
                1 => body.push_str("- "),
                _ => {}
            }
            self.sentence(&mut body);
        }
        // Cut at a word boundary so every note is about the same size.
        if body.len() > body_bytes
            && let Some(cut) = body[..body_bytes].rfind(' ')
        {
            body.truncate(cut);
        }
        let tags = match self.rng.below(10) {
            0..=5 => Vec::new(),
            _ => (0..1 + self.rng.below(3))
                .map(|_| self.corpus.words[10 + self.rng.below(40)].clone())
                .collect(),
        };
        let notebook_id = if notebooks.is_empty() || self.rng.chance(0.3) {
            None
        } else {
            Some(notebooks[self.rng.below(notebooks.len())])
        };
        NoteDraft {
            notebook_id,
            title,
            body,
            tags,
            pinned: self.rng.chance(0.005),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Run configuration.
// ---------------------------------------------------------------------------------------------

struct Config {
    /// `cargo bench` (not `cargo test --benches`, not `--list`).
    full: bool,
    notes: usize,
    filter: Option<String>,
}

impl Config {
    fn from_env() -> Result<Config> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let has = |flag: &str| args.iter().any(|a| a == flag);
        let full = has("--bench") && !has("--test") && !has("--list");
        let notes = match std::env::var("OUTPOST_BENCH_NOTES") {
            Ok(v) => v
                .trim()
                .replace('_', "")
                .parse()
                .with_context(|| format!("OUTPOST_BENCH_NOTES={v:?} is not a number"))?,
            Err(_) if full => DEFAULT_NOTES,
            Err(_) => 300,
        };
        ensure!(notes >= 100, "OUTPOST_BENCH_NOTES must be at least 100");
        // Criterion's filter is the first free argument; options taking a value are skipped.
        let mut filter = None;
        let mut it = args.iter();
        while let Some(a) = it.next() {
            match a.as_str() {
                "--save-baseline"
                | "--baseline"
                | "--baseline-lenient"
                | "--load-baseline"
                | "--color"
                | "--format"
                | "--profile-time"
                | "--sample-size"
                | "--warm-up-time"
                | "--measurement-time"
                | "--nresamples"
                | "--noise-threshold"
                | "--confidence-level"
                | "--significance-level"
                | "--plotting-backend"
                | "--output-format" => {
                    it.next();
                }
                s if s.starts_with('-') => {}
                s => filter = Some(s.to_owned()),
            }
        }
        Ok(Config {
            full,
            notes,
            filter,
        })
    }

    /// Whether the part named `section` runs under the filter given (if any).
    fn runs(&self, section: &str) -> bool {
        self.filter
            .as_deref()
            .is_none_or(|f| f.contains(section) || section.contains(f))
    }
}

fn sync_name(sync: Synchronous) -> &'static str {
    match sync {
        Synchronous::Normal => "normal",
        Synchronous::Full => "full",
    }
}

fn open_store(dir: &Path, sync: Synchronous) -> Result<Store> {
    Store::open_with(
        dir,
        StoreOptions {
            synchronous: sync,
            ..StoreOptions::default()
        },
    )
    .with_context(|| format!("open store in {}", dir.display()))
}

// ---------------------------------------------------------------------------------------------
// The bare baseline: one rusqlite connection, same file layout, same pragmas, same schema.
// ---------------------------------------------------------------------------------------------

struct Bare {
    conn: Connection,
    node: String,
    counter: u32,
    mutation_number: i64,
}

/// The note columns the store reads back after a write (through the `note_state` view).
const NOTE_COLUMNS: &str = "id, notebook_id, title, body, tags, pinned, archived, deleted,
    created_ms, updated_ms, server_version, sync_state";

impl Bare {
    /// Opens the database a (now closed) store created, with the store's pragmas.
    fn open(db: &Path, sync: Synchronous) -> Result<Bare> {
        let conn = Connection::open(db).context("open bare connection")?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.execute_batch(&format!(
            "PRAGMA journal_mode = WAL;
             PRAGMA synchronous = {};
             PRAGMA foreign_keys = ON;
             PRAGMA temp_store = MEMORY;
             PRAGMA cache_size = -16000;",
            sync_name(sync).to_uppercase()
        ))?;
        conn.set_prepared_statement_cache_capacity(64);
        let next: i64 = conn.query_row(
            "SELECT coalesce(max(mutation_number), 0) + 1 FROM outbox",
            [],
            |r| r.get(0),
        )?;
        Ok(Bare {
            conn,
            node: NoteId::new().to_string().replace('-', ""),
            counter: 0,
            mutation_number: next,
        })
    }

    /// A stamp of the same shape and length as the store's (`physical-counter-node`).
    fn stamp(&mut self) -> (i64, String) {
        self.counter += 1;
        let ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        (ms, format!("{ms:012x}-{:08x}-{}", self.counter, self.node))
    }

    fn insert_outbox(
        tx: &Connection,
        number: i64,
        entity_id: &str,
        fields: &str,
        now: i64,
    ) -> rusqlite::Result<usize> {
        tx.prepare_cached(
            "INSERT INTO outbox (mutation_id, mutation_number, name, schema_version,
                 entity, entity_id, fields, base_version, created_ms, updated_ms)
             VALUES (?1, ?2, 'note.put', 1, 'note', ?3, ?4, NULL, ?5, ?5)",
        )?
        .execute(params![
            MutationId::new().to_string(),
            number,
            entity_id,
            fields,
            now
        ])
    }

    /// The statements a store write runs besides the row and the outbox insert: the look-up of
    /// the note's newest outbox entry (for coalescing) ...
    fn newest_entry(tx: &Connection, id: &str) -> rusqlite::Result<()> {
        let mut st = tx.prepare_cached(
            "SELECT seq, name, fields, state, sent FROM outbox
             WHERE entity_id = ?1 AND entity = ?2 ORDER BY seq DESC LIMIT 1",
        )?;
        let mut rows = st.query(params![id, "note"])?;
        while let Some(r) = rows.next()? {
            black_box((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, bool>(4)?,
            ));
        }
        Ok(())
    }

    /// ... reading the note back through the `note_state` view ...
    fn load(tx: &Connection, id: &str) -> rusqlite::Result<()> {
        let sql = format!("SELECT {NOTE_COLUMNS} FROM note_state WHERE id = ?1");
        let mut st = tx.prepare_cached(&sql)?;
        let mut rows = st.query([id])?;
        while let Some(r) = rows.next()? {
            for i in 0..12 {
                black_box(r.get::<_, rusqlite::types::Value>(i)?);
            }
        }
        Ok(())
    }

    /// ... and saving the clock and the mutation counter.
    fn save_counters(tx: &Connection, stamp: &str, next: i64) -> rusqlite::Result<()> {
        let mut st = tx.prepare_cached(
            "INSERT INTO sync_meta (key, value) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )?;
        st.execute(params!["clock_last", stamp])?;
        st.execute(params!["next_mutation_number", next.to_string()])?;
        Ok(())
    }

    /// One transaction: the note row (every column the store writes; indexed for search as the
    /// store does) and its outbox entry with every field. `extras`: also the store's other statements.
    fn create(&mut self, d: &NoteDraft, extras: bool) -> rusqlite::Result<()> {
        let (now, s) = self.stamp();
        let id = NoteId::new().to_string();
        let number = self.mutation_number;
        self.mutation_number += 1;
        let preview: String = d.body.chars().take(160).collect();
        let tags = serde_json::Value::from(d.tags.clone());
        let nb = d.notebook_id.map(|n| n.to_string());
        let fields = json!({
            "archived": {"value": false, "stamp": s},
            "body": {"value": d.body, "stamp": s},
            "deleted": {"value": false, "stamp": s},
            "notebook_id": {"value": nb, "stamp": s},
            "pinned": {"value": d.pinned, "stamp": s},
            "tags": {"value": tags, "stamp": s},
            "title": {"value": d.title, "stamp": s},
        })
        .to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "INSERT INTO notes (id, notebook_id, title, body, preview, tags, pinned,
                 created_ms, updated_ms, notebook_stamp, title_stamp, body_stamp,
                 tags_stamp, pinned_stamp, archived_stamp, deleted_stamp)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?8, ?9, ?9, ?9, ?9, ?9, ?9, ?9)",
        )?
        .execute(params![
            id,
            nb,
            d.title,
            d.body,
            preview,
            tags.to_string(),
            d.pinned,
            now,
            s
        ])?;
        if extras {
            Self::newest_entry(&tx, &id)?;
        }
        Self::insert_outbox(&tx, number, &id, &fields, now)?;
        if extras {
            Self::load(&tx, &id)?;
            Self::save_counters(&tx, &s, number + 1)?;
        }
        Self::index(&tx)?;
        tx.commit()
    }

    /// One transaction: the body (and preview, stamp, time) of one note (re-indexed for search)
    /// and an outbox entry with that field.
    fn update_body(&mut self, id: &str, body: &str) -> rusqlite::Result<()> {
        let (now, s) = self.stamp();
        let number = self.mutation_number;
        self.mutation_number += 1;
        let preview: String = body.chars().take(160).collect();
        let fields = json!({ "body": {"value": body, "stamp": s} }).to_string();
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.prepare_cached(
            "UPDATE notes SET body = ?1, body_stamp = ?2, preview = ?3, updated_ms = ?4
             WHERE id = ?5",
        )?
        .execute(params![body, s, preview, now, id])?;
        Self::insert_outbox(&tx, number, id, &fields, now)?;
        Self::index(&tx)?;
        tx.commit()
    }

    /// The search index brought up to date before the commit, as the store does (schema V9:
    /// the triggers on `notes` only mark the rows; where a lane swapped in an index with
    /// triggers of its own, nothing is marked and this does nothing).
    fn index(tx: &Connection) -> rusqlite::Result<()> {
        tx.execute_batch(
            "INSERT INTO notes_fts (notes_fts, rowid, title, body)
                 SELECT 'delete', seq, title, body FROM fts_pending WHERE indexed;
             INSERT INTO notes_fts (rowid, title, body)
                 SELECT n.seq, n.title, n.body FROM fts_pending p JOIN notes n ON n.seq = p.seq;
             DELETE FROM fts_pending;",
        )
    }
}

// ---------------------------------------------------------------------------------------------
// Write benchmarks: store vs bare, NORMAL vs FULL.
// ---------------------------------------------------------------------------------------------

/// The full-text table and its triggers as schema version 2 creates them, under another name
/// and optionally with prefix indexes (`prefix = '2 3'`): the variant the investigation tries.
fn fts_schema(table: &str, prefix: bool) -> String {
    let prefix = if prefix { ", prefix = '2 3'" } else { "" };
    format!(
        "CREATE VIRTUAL TABLE {table} USING fts5(
             title, body,
             content = 'notes', content_rowid = 'seq',
             tokenize = 'unicode61 remove_diacritics 2'{prefix}
         );
         CREATE TRIGGER {table}_insert AFTER INSERT ON notes BEGIN
             INSERT INTO {table} (rowid, title, body) VALUES (new.seq, new.title, new.body);
         END;
         CREATE TRIGGER {table}_delete AFTER DELETE ON notes BEGIN
             INSERT INTO {table} ({table}, rowid, title, body)
             VALUES ('delete', old.seq, old.title, old.body);
         END;
         CREATE TRIGGER {table}_update AFTER UPDATE OF title, body ON notes BEGIN
             INSERT INTO {table} ({table}, rowid, title, body)
             VALUES ('delete', old.seq, old.title, old.body);
             INSERT INTO {table} (rowid, title, body) VALUES (new.seq, new.title, new.body);
         END;
         INSERT INTO {table} ({table}) VALUES ('rebuild');"
    )
}

/// A bare connection on its own seeded database.
struct Lane {
    _dir: tempfile::TempDir,
    bare: Bare,
    ids: Vec<String>,
    ops: usize,
}

impl Lane {
    /// `prefix_fts`: replace the full-text table by one with prefix indexes.
    fn new(
        corpus: &Corpus,
        sync: Synchronous,
        seed_notes: usize,
        prefix_fts: bool,
    ) -> Result<Lane> {
        let dir = tempfile::tempdir()?;
        // Seeding is not measured: NORMAL keeps it quick; the bare connection sets `sync`.
        let seeding = open_store(dir.path(), Synchronous::Normal)?;
        let ids = seed(&seeding, corpus, seed_notes)?
            .iter()
            .map(ToString::to_string)
            .collect();
        let db = seeding.db_path().to_path_buf();
        drop(seeding);
        let bare = Bare::open(&db, sync)?;
        if prefix_fts {
            bare.conn
                .execute_batch(&format!(
                    "BEGIN;
                     DROP TRIGGER notes_fts_insert;
                     DROP TRIGGER notes_fts_delete;
                     DROP TRIGGER notes_fts_update;
                     DROP TABLE notes_fts;
                     {}
                     COMMIT;",
                    fts_schema("notes_fts", true)
                ))
                .context("swap in the prefix-indexed FTS table")?;
        }
        Ok(Lane {
            _dir: dir,
            bare,
            ids,
            ops: 0,
        })
    }
}

/// A store and bare connections on databases seeded alike, plus what the loops need.
struct WritePair {
    _store_dir: tempfile::TempDir,
    store: Store,
    store_ids: Vec<NoteId>,
    /// Operations done so far (keeps every update a real change).
    store_ops: usize,
    plain: Lane,
    prefix: Lane,
    drafts: Vec<NoteDraft>,
    bodies: Vec<String>,
}

/// Notes the update loops cycle through, and distinct bodies they write (coprime counts, so a
/// note never gets the body it has).
const UPDATE_TARGETS: usize = 64;
const UPDATE_BODIES: usize = 61;

fn seed(store: &Store, corpus: &Corpus, notes: usize) -> Result<Vec<NoteId>> {
    let mut g = NoteGen::new(corpus, 7);
    let mut ids = Vec::with_capacity(notes);
    for _ in 0..notes {
        ids.push(store.create_note(g.draft(1024, &[]))?.id);
    }
    Ok(ids)
}

impl WritePair {
    fn new(corpus: &Corpus, sync: Synchronous, seed_notes: usize) -> Result<WritePair> {
        let store_dir = tempfile::tempdir()?;
        let store_ids = seed(
            &open_store(store_dir.path(), Synchronous::Normal)?,
            corpus,
            seed_notes,
        )?;
        let store = open_store(store_dir.path(), sync)?;
        let plain = Lane::new(corpus, sync, seed_notes, false)?;
        let prefix = Lane::new(corpus, sync, seed_notes, true)?;
        let mut g = NoteGen::new(corpus, 11);
        let drafts = (0..256).map(|_| g.draft(1024, &[])).collect();
        let bodies = (0..UPDATE_BODIES)
            .map(|_| g.draft(1024, &[]).body)
            .collect();
        Ok(WritePair {
            _store_dir: store_dir,
            store,
            store_ids,
            store_ops: 0,
            plain,
            prefix,
            drafts,
            bodies,
        })
    }

    fn body(&self, i: usize) -> String {
        // The counter makes each write unique even when the same body comes round again.
        format!("{} {i}", self.bodies[i % UPDATE_BODIES])
    }

    fn create(&mut self, side: Side) {
        let lane = match side {
            Side::Store => {
                let i = self.store_ops;
                self.store_ops += 1;
                let d = self.drafts[i % self.drafts.len()].clone();
                black_box(self.store.create_note(d).expect("store create"));
                return;
            }
            Side::Bare | Side::BarePlus => &mut self.plain,
            Side::BarePrefix => &mut self.prefix,
        };
        let d = &self.drafts[lane.ops % self.drafts.len()];
        lane.ops += 1;
        lane.bare
            .create(d, side == Side::BarePlus)
            .expect("bare create");
    }

    /// (`Side::BarePlus` is for creates only: here it is the plain bare update.)
    fn update(&mut self, side: Side) {
        let (i, lane) = match side {
            Side::Store => {
                let i = self.store_ops;
                self.store_ops += 1;
                let id = self.store_ids[i % UPDATE_TARGETS];
                let patch = NotePatch {
                    body: Some(self.body(i)),
                    ..NotePatch::default()
                };
                black_box(self.store.update_note(id, patch).expect("store update"));
                return;
            }
            Side::Bare | Side::BarePlus => (self.plain.ops, &mut self.plain),
            Side::BarePrefix => (self.prefix.ops, &mut self.prefix),
        };
        lane.ops += 1;
        let body = format!("{} {i}", self.bodies[i % UPDATE_BODIES]);
        let id = &lane.ids[i % UPDATE_TARGETS];
        lane.bare.update_body(id, &body).expect("bare update");
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Create,
    Update,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::Create => "create",
            Op::Update => "update",
        }
    }
}

/// Which implementation a timed round drives.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Side {
    Store,
    Bare,
    /// The bare create plus the statements the store adds around it (see `Bare::create`).
    BarePlus,
    /// The bare loop on a schema whose full-text table has prefix indexes.
    BarePrefix,
}

/// Two sides measured in alternating rounds. Ratios are A's ops/s over B's, per round.
struct Paired {
    a_per_s: f64,
    b_per_s: f64,
    /// Median of the per-round wall-clock ratios, and their quartiles.
    ratio: f64,
    ratio_q1: f64,
    ratio_q3: f64,
    /// Ratio of the best (fastest) round of each side.
    ratio_best: f64,
    /// Median on-CPU time per op (this thread, from /proc/thread-self/schedstat) and its ratio:
    /// immune to other processes taking the CPU, blind to waiting for the disk.
    a_cpu_us: f64,
    b_cpu_us: f64,
    ratio_cpu: f64,
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// Nanoseconds this thread has run on a CPU (Linux); `None` elsewhere.
fn thread_cpu_ns() -> Option<u64> {
    std::fs::read_to_string("/proc/thread-self/schedstat")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Runs `n` ops of side `a`, then `n` of side `b` (the order alternates per round), `rounds`
/// times, after one warm-up round each.
fn paired(rounds: usize, n: usize, a: Side, b: Side, mut op: impl FnMut(Side)) -> Paired {
    let mut run = |side: Side| {
        let cpu = thread_cpu_ns();
        let t = Instant::now();
        for _ in 0..n {
            op(side);
        }
        let wall = t.elapsed().as_secs_f64();
        let cpu = match (cpu, thread_cpu_ns()) {
            (Some(x), Some(y)) => (y.saturating_sub(x)) as f64 / 1e3 / n as f64,
            _ => f64::NAN,
        };
        (wall, cpu)
    };
    run(a);
    run(b);
    let (mut ratios, mut a_t, mut b_t, mut a_cpu, mut b_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for r in 0..rounds {
        let ((ta, ca), (tb, cb)) = if r % 2 == 0 {
            let x = run(a);
            (x, run(b))
        } else {
            let y = run(b);
            (run(a), y)
        };
        ratios.push(tb / ta);
        a_t.push(ta);
        b_t.push(tb);
        a_cpu.push(ca);
        b_cpu.push(cb);
    }
    let ratio = median(&mut ratios);
    let (a_med, b_med) = (median(&mut a_t), median(&mut b_t));
    let (a_cpu_us, b_cpu_us) = (median(&mut a_cpu), median(&mut b_cpu));
    Paired {
        a_per_s: n as f64 / a_med,
        b_per_s: n as f64 / b_med,
        ratio,
        ratio_q1: percentile(&ratios, 0.25),
        ratio_q3: percentile(&ratios, 0.75),
        ratio_best: b_t[0] / a_t[0],
        a_cpu_us,
        b_cpu_us,
        ratio_cpu: b_cpu_us / a_cpu_us,
    }
}

struct RatioRow {
    sync: Synchronous,
    op: Op,
    /// `None`: the store against the bare loop. `Some(what)`: an investigation row, A and B
    /// named by `what`.
    what: Option<&'static str>,
    p: Paired,
}

fn write_benches(c: &mut Criterion, cfg: &Config, corpus: &Corpus) -> Result<Vec<RatioRow>> {
    let mut rows = Vec::new();
    for sync in [Synchronous::Normal, Synchronous::Full] {
        let seed_notes = if cfg.full { WRITE_SEED_NOTES } else { 100 };
        let mut pair = WritePair::new(corpus, sync, seed_notes)?;
        let mut group = c.benchmark_group(format!("write_{}", sync_name(sync)));
        match sync {
            Synchronous::Normal => {
                group
                    .sample_size(30)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(3));
            }
            Synchronous::Full => {
                // Each commit waits for the disk: fewer, flat samples.
                group
                    .sampling_mode(SamplingMode::Flat)
                    .sample_size(15)
                    .warm_up_time(Duration::from_secs(1))
                    .measurement_time(Duration::from_secs(4));
            }
        }
        group.bench_function("store_create", |b| b.iter(|| pair.create(Side::Store)));
        group.bench_function("bare_create", |b| b.iter(|| pair.create(Side::Bare)));
        group.bench_function("store_update", |b| b.iter(|| pair.update(Side::Store)));
        group.bench_function("bare_update", |b| b.iter(|| pair.update(Side::Bare)));
        group.finish();

        let (rounds, n) = match (cfg.full, sync) {
            (false, _) => (2, 5),
            (true, Synchronous::Normal) => (31, 100),
            (true, Synchronous::Full) => (21, 20),
        };
        for op in [Op::Create, Op::Update] {
            let p = paired(rounds, n, Side::Store, Side::Bare, |side| match op {
                Op::Create => pair.create(side),
                Op::Update => pair.update(side),
            });
            rows.push(RatioRow {
                sync,
                op,
                what: None,
                p,
            });
        }
        if sync == Synchronous::Normal {
            // What the store's statements around the two inserts cost (newest outbox entry,
            // read-back through note_state, clock and counter upserts).
            let p = paired(rounds, n, Side::BarePlus, Side::Bare, |side| {
                pair.create(side)
            });
            rows.push(RatioRow {
                sync,
                op: Op::Create,
                what: Some("bare + the store's other statements / bare"),
                p,
            });
            // What FTS prefix indexes (the search fix proposed) would cost writes.
            for op in [Op::Create, Op::Update] {
                let p = paired(rounds, n, Side::BarePrefix, Side::Bare, |side| match op {
                    Op::Create => pair.create(side),
                    Op::Update => pair.update(side),
                });
                rows.push(RatioRow {
                    sync,
                    op,
                    what: Some("bare with FTS prefix = '2 3' / bare"),
                    p,
                });
            }
        }
    }
    Ok(rows)
}

// ---------------------------------------------------------------------------------------------
// Scale: import, list, search.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Rare,
    Medium,
    TwoWords,
    Prefix,
    /// Not part of the goal's mix: a word in most notes, the worst case.
    Common,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rare => "rare word",
            Kind::Medium => "medium word",
            Kind::TwoWords => "two words",
            Kind::Prefix => "prefix (typing)",
            Kind::Common => "very common word",
        }
    }

    const MIX: [Kind; 4] = [Kind::Rare, Kind::Medium, Kind::TwoWords, Kind::Prefix];
}

struct Query {
    kind: Kind,
    text: String,
    /// Notes containing the word(s), from the generator (for the report).
    df: u32,
}

/// Picks `count` items spread evenly over `candidates` (deterministic).
fn spread<T: Clone>(candidates: &[T], count: usize) -> Vec<T> {
    if candidates.is_empty() {
        return Vec::new();
    }
    (0..count.min(candidates.len()))
        .map(|i| candidates[i * candidates.len() / count.min(candidates.len())].clone())
        .collect()
}

fn build_queries(corpus: &Corpus, g: &NoteGen<'_>, notes: usize) -> Vec<Query> {
    let n = notes as f64;
    let by_df = |lo: f64, hi: f64| -> Vec<usize> {
        (0..VOCABULARY)
            .filter(|&i| {
                let df = f64::from(g.word_df[i]);
                df >= lo && df <= hi
            })
            .collect()
    };
    let mut out = Vec::new();
    // Rare: a name in a handful of notes (5 to 50 of 100,000).
    let rare: Vec<usize> = (0..NAMES)
        .filter(|&i| {
            let df = f64::from(g.name_df[i]);
            df >= (n / 20_000.0).max(1.0) && df <= (n / 2_000.0).max(3.0)
        })
        .collect();
    for i in spread(&rare, 8) {
        out.push(Query {
            kind: Kind::Rare,
            text: corpus.names[i].to_lowercase(),
            df: g.name_df[i],
        });
    }
    // Medium: a word in 0.5% to 3% of the notes.
    let medium = by_df(n * 0.005, n * 0.03);
    for &i in &spread(&medium, 8) {
        out.push(Query {
            kind: Kind::Medium,
            text: corpus.words[i].clone(),
            df: g.word_df[i],
        });
    }
    // Two words: medium + medium, and common (5% to 20%) + medium. The df shown is the
    // rarer word's.
    let common = by_df(n * 0.05, n * 0.2);
    let m = spread(&medium, 16);
    let cm = spread(&common, 4);
    for k in 0..4 {
        if let (Some(&a), Some(&b)) = (m.get(2 * k), m.get(2 * k + 1)) {
            out.push(Query {
                kind: Kind::TwoWords,
                text: format!("{} {}", corpus.words[a], corpus.words[b]),
                df: g.word_df[a].min(g.word_df[b]),
            });
        }
        if let (Some(&a), Some(&b)) = (cm.get(k), m.get(8 + k)) {
            out.push(Query {
                kind: Kind::TwoWords,
                text: format!("{} {}", corpus.words[a], corpus.words[b]),
                df: g.word_df[a].min(g.word_df[b]),
            });
        }
    }
    // Prefixes as the user types a medium word of 6+ letters: 2 letters, 3, ..., the word.
    let long: Vec<usize> = medium
        .iter()
        .copied()
        .filter(|&i| corpus.words[i].len() >= 6)
        .collect();
    for i in spread(&long, 4) {
        let w = &corpus.words[i];
        for len in 2..=w.len() {
            out.push(Query {
                kind: Kind::Prefix,
                text: w[..len].to_owned(),
                df: g.word_df[i],
            });
        }
    }
    // The worst case, reported apart: a word in more than half the notes.
    for i in spread(&by_df(n * 0.5, n), 2) {
        out.push(Query {
            kind: Kind::Common,
            text: corpus.words[i].clone(),
            df: g.word_df[i],
        });
    }
    out
}

struct SearchRow {
    kind: Kind,
    queries: usize,
    median_ms: f64,
    p90_ms: f64,
    max_ms: f64,
}

struct ScaleReport {
    notes: usize,
    import_s: f64,
    import_per_s: f64,
    first_tenth_per_s: f64,
    last_tenth_per_s: f64,
    db_bytes: u64,
    list_first_ms: f64,
    list_median_ms: f64,
    /// A page of 200 (the window's page) at the top, the middle and the end of the list, as
    /// the note list asks when the scrollbar is dragged there: median ms each.
    list_pages_ms: Vec<(u32, f64)>,
    search: Vec<SearchRow>,
    mix_median_ms: f64,
    mix_p90_ms: f64,
    slowest: Vec<(String, Kind, u32, usize, f64)>,
    variants: Option<VariantReport>,
}

fn dir_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn time_ms(f: impl FnOnce()) -> f64 {
    let t = Instant::now();
    f();
    t.elapsed().as_secs_f64() * 1e3
}

fn scale_benches(c: &mut Criterion, cfg: &Config, corpus: &Corpus) -> Result<ScaleReport> {
    let notes = cfg.notes;
    // OUTPOST_BENCH_DIR keeps the database for a look afterwards (it must not hold one yet).
    let (_temp, dir) = match std::env::var_os("OUTPOST_BENCH_DIR") {
        Some(d) => (None, std::path::PathBuf::from(d)),
        None => {
            let t = tempfile::tempdir()?;
            let p = t.path().to_path_buf();
            (Some(t), p)
        }
    };
    ensure!(
        !dir.join("outpost.db").exists(),
        "{} already holds a database",
        dir.display()
    );
    let store = open_store(&dir, Synchronous::Normal)?;
    let notebooks: Vec<NotebookId> = (0..8)
        .map(|i| store.create_notebook(&format!("Site {i}")).map(|n| n.id))
        .collect::<outpost_core::Result<_>>()?;

    eprintln!("scale: generating {notes} notes of ~1 KB…");
    let mut g = NoteGen::new(corpus, 42);
    let drafts: Vec<NoteDraft> = (0..notes).map(|_| g.draft(1024, &notebooks)).collect();
    let avg_body = drafts.iter().map(|d| d.body.len()).sum::<usize>() / notes;
    eprintln!("scale: importing (average body {avg_body} bytes)…");

    let tenth = notes / 10;
    let mut tenth_rates = Vec::new();
    let start = Instant::now();
    let mut lap = Instant::now();
    let mut ids = Vec::with_capacity(notes);
    for (i, d) in drafts.into_iter().enumerate() {
        ids.push(store.create_note(d)?.id);
        if (i + 1) % tenth == 0 {
            tenth_rates.push(tenth as f64 / lap.elapsed().as_secs_f64());
            lap = Instant::now();
        }
    }
    let import_s = start.elapsed().as_secs_f64();
    let import_per_s = notes as f64 / import_s;
    eprintln!("scale: imported {notes} notes in {import_s:.1} s ({import_per_s:.0} notes/s)");
    // 1% of the notes in the Trash, as in real use: lists and searches must skip them.
    for id in ids.iter().step_by(100) {
        store.trash_note(*id)?;
    }
    let db_bytes = dir_bytes(&dir);

    // The first page, once cold-ish (first call after the import), then warm.
    let q = ListQuery::default();
    let list_first_ms = time_ms(|| {
        black_box(store.list_notes(&q).expect("list"));
    });
    let mut list_times: Vec<f64> = (0..if cfg.full { 50 } else { 3 })
        .map(|_| {
            time_ms(|| {
                let page = store.list_notes(&q).expect("list");
                assert_eq!(page.items.len(), 100.min(notes));
                black_box(page);
            })
        })
        .collect();
    let list_median_ms = median(&mut list_times);

    // The window's virtual list reads pages of 200 by offset: the deeper, the more index
    // entries SQLite steps over first.
    let live = store.count_notes(&q)?.max(1) as u32;
    let list_pages_ms: Vec<(u32, f64)> = [0, live / 2, live.saturating_sub(200)]
        .into_iter()
        .map(|offset| {
            let page = ListQuery {
                limit: 200,
                offset,
                ..ListQuery::default()
            };
            let mut times: Vec<f64> = (0..if cfg.full { 20 } else { 2 })
                .map(|_| {
                    time_ms(|| {
                        let got = store.list_notes(&page).expect("list");
                        assert!(!got.items.is_empty() || notes == 0);
                        black_box(got);
                    })
                })
                .collect();
            (offset, median(&mut times))
        })
        .collect();

    // The search mix: one pass to warm, then `passes` timed passes over every query.
    let queries = build_queries(corpus, &g, notes);
    for qy in &queries {
        black_box(store.search_notes(&qy.text, SEARCH_LIMIT)?);
    }
    let passes = if cfg.full { 5 } else { 1 };
    let mut per_query: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    let mut hits = vec![0usize; queries.len()];
    for _ in 0..passes {
        for (k, qy) in queries.iter().enumerate() {
            let t = Instant::now();
            let found = store.search_notes(&qy.text, SEARCH_LIMIT)?;
            per_query[k].push(t.elapsed().as_secs_f64() * 1e3);
            hits[k] = found.len();
            black_box(found);
        }
    }
    let (search, mix_median_ms, mix_p90_ms) = summarize(&queries, &per_query);
    let mut slowest: Vec<(String, Kind, u32, usize, f64)> = queries
        .iter()
        .zip(per_query.iter_mut())
        .zip(&hits)
        .map(|((qy, t), &h)| (qy.text.clone(), qy.kind, qy.df, h, median(t)))
        .collect();
    slowest.sort_by(|a, b| b.4.total_cmp(&a.4));
    slowest.truncate(if cfg.full { 12 } else { 3 });

    // Criterion's per-op latencies on the same database.
    let mut group = c.benchmark_group(format!("scale_{notes}"));
    group
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    group.bench_function("list_first_page", |b| {
        b.iter(|| black_box(store.list_notes(&q).expect("list")))
    });
    for kind in Kind::MIX {
        // The category's median query, as a representative.
        let mut of_kind: Vec<(f64, &str)> = queries
            .iter()
            .zip(&slowest_all(&per_query))
            .filter(|(qy, _)| qy.kind == kind)
            .map(|(qy, &t)| (t, qy.text.as_str()))
            .collect();
        of_kind.sort_by(|a, b| a.0.total_cmp(&b.0));
        if let Some(&(_, text)) = of_kind.get(of_kind.len() / 2) {
            let name = format!("search_{}", kind.name().replace([' ', '(', ')'], "_"));
            group.bench_function(name.trim_end_matches('_'), |b| {
                b.iter(|| black_box(store.search_notes(text, SEARCH_LIMIT).expect("search")))
            });
        }
    }
    group.finish();
    let db = store.db_path().to_path_buf();
    drop(store);
    let variants = if cfg.runs("search_variants") || cfg.full {
        Some(search_variants(
            &db,
            &queries,
            if cfg.full { 2 } else { 1 },
        )?)
    } else {
        None
    };

    Ok(ScaleReport {
        notes,
        import_s,
        import_per_s,
        first_tenth_per_s: tenth_rates.first().copied().unwrap_or(f64::NAN),
        last_tenth_per_s: tenth_rates.last().copied().unwrap_or(f64::NAN),
        db_bytes,
        list_first_ms,
        list_median_ms,
        list_pages_ms,
        search,
        mix_median_ms,
        mix_p90_ms,
        slowest,
        variants,
    })
}

/// Median time of each query (the per-query vectors are already sorted by `median`).
fn slowest_all(per_query: &[Vec<f64>]) -> Vec<f64> {
    per_query
        .iter()
        .map(|t| t.get(t.len() / 2).copied().unwrap_or(f64::NAN))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Search investigation: the store's query and variants of it, on the scale database.
// ---------------------------------------------------------------------------------------------

/// What `search_notes` sends to FTS5 for `text` (a copy of the core's private `fts_query`):
/// every word quoted, the last one a prefix.
fn fts_query(text: &str) -> Option<String> {
    let words: Vec<&str> = text
        .split_whitespace()
        .filter(|w| w.chars().any(char::is_alphanumeric))
        .collect();
    let (last, rest) = words.split_last()?;
    let quote = |w: &str| format!("\"{}\"", w.replace('"', "\"\""));
    let mut parts: Vec<String> = rest.iter().map(|w| quote(w)).collect();
    parts.push(format!("{}*", quote(last)));
    Some(parts.join(" "))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    /// `ORDER BY bm25(t, 4.0, 1.0)`: what the store ships.
    Bm25,
    /// `ORDER BY rank` with `rank MATCH 'bm25(4.0, 1.0)'`: FTS5 sorts inside the virtual table,
    /// so snippets and the sync state are computed for the rows returned only.
    Rank,
    /// `ORDER BY rowid DESC`: newest first, no relevance.
    Recent,
}

fn search_sql(table: &str, order: Order) -> String {
    let t = table;
    let (rank, order) = match order {
        Order::Bm25 => (String::new(), format!("bm25({t}, 4.0, 1.0)")),
        Order::Rank => (
            format!(" AND {t}.rank MATCH 'bm25(4.0, 1.0)'"),
            format!("{t}.rank"),
        ),
        Order::Recent => (String::new(), format!("{t}.rowid DESC")),
    };
    format!(
        "SELECT n.id, n.notebook_id, n.title, n.preview, n.tags, n.pinned, n.archived, n.deleted,
                n.created_ms, n.updated_ms, n.sync_state,
                highlight({t}, 0, char(57344), char(57345)),
                snippet({t}, 1, char(57344), char(57345), '…', 24)
         FROM {t} JOIN note_state n ON n.seq = {t}.rowid
         WHERE {t} MATCH ?1{rank} AND n.deleted = 0
         ORDER BY {order} LIMIT ?2"
    )
}

struct VariantRow {
    name: &'static str,
    search: Vec<SearchRow>,
    mix_median_ms: f64,
    mix_p90_ms: f64,
    /// Queries whose hits are the same notes in the same order as the shipped query's, and the
    /// same notes in any order.
    same_order: usize,
    same_set: usize,
    queries: usize,
    plan: Vec<String>,
    /// Median over the mix's queries of (shipped time / this variant's time).
    speedup: f64,
    slowest: Vec<(String, f64)>,
}

struct VariantReport {
    prefix_build_s: f64,
    fts_bytes: u64,
    prefix_fts_bytes: u64,
    rows: Vec<VariantRow>,
}

/// Per-kind statistics of per-query timings, and the median and p90 of the goal's mix.
fn summarize(queries: &[Query], per_query: &[Vec<f64>]) -> (Vec<SearchRow>, f64, f64) {
    let mut rows = Vec::new();
    let mut mix = Vec::new();
    for kind in Kind::MIX.iter().copied().chain([Kind::Common]) {
        let mut times: Vec<f64> = queries
            .iter()
            .zip(per_query)
            .filter(|(qy, _)| qy.kind == kind)
            .flat_map(|(_, t)| t.iter().copied())
            .collect();
        if times.is_empty() {
            continue;
        }
        if kind != Kind::Common {
            mix.extend(times.iter().copied());
        }
        let med = median(&mut times);
        rows.push(SearchRow {
            kind,
            queries: queries.iter().filter(|qy| qy.kind == kind).count(),
            median_ms: med,
            p90_ms: percentile(&times, 0.9),
            max_ms: times[times.len() - 1],
        });
    }
    let mix_median = median(&mut mix);
    (rows, mix_median, percentile(&mix, 0.9))
}

fn fts_bytes(conn: &Connection, table: &str) -> Result<u64> {
    // The index proper (`_data`) plus its b-tree index (`_idx`); docsize is the same for both.
    let mut total = 0u64;
    for suffix in ["data", "idx"] {
        let name = format!("{table}_{suffix}");
        let bytes: i64 = conn.query_row(
            "SELECT coalesce(sum(pgsize), 0) FROM dbstat WHERE name = ?1",
            [&name],
            |r| r.get(0),
        )?;
        total += u64::try_from(bytes).unwrap_or(0);
    }
    Ok(total)
}

fn run_search(conn: &Connection, sql: &str, text: &str) -> Result<Vec<String>> {
    let Some(q) = fts_query(text) else {
        return Ok(Vec::new());
    };
    let mut st = conn.prepare_cached(sql)?;
    let mut rows = st.query(params![q, SEARCH_LIMIT])?;
    let mut ids = Vec::new();
    while let Some(r) = rows.next()? {
        ids.push(r.get::<_, String>(0)?);
        for i in 1..13 {
            black_box(r.get::<_, rusqlite::types::Value>(i)?);
        }
    }
    Ok(ids)
}

fn search_variants(db: &Path, queries: &[Query], passes: usize) -> Result<VariantReport> {
    let conn = Bare::open(db, Synchronous::Normal)?.conn;
    eprintln!("search variants: building a prefix-indexed copy of the full-text index…");
    let t = Instant::now();
    conn.execute_batch(&format!(
        "BEGIN; {} COMMIT;",
        fts_schema("notes_fts_prefix", true)
    ))
    .context("build notes_fts_prefix")?;
    let prefix_build_s = t.elapsed().as_secs_f64();
    let fts = fts_bytes(&conn, "notes_fts")?;
    let prefix_fts = fts_bytes(&conn, "notes_fts_prefix")?;

    // (name, table, order, newest first while the last word is under 3 letters)
    let variants: [(&'static str, &str, Order, bool); 5] = [
        ("shipped: ORDER BY bm25()", "notes_fts", Order::Bm25, false),
        ("ORDER BY rank", "notes_fts", Order::Rank, false),
        (
            "ORDER BY rank; newest first for a last word under 3 letters",
            "notes_fts",
            Order::Rank,
            true,
        ),
        (
            "ORDER BY rank + prefix='2 3'",
            "notes_fts_prefix",
            Order::Rank,
            false,
        ),
        (
            "ORDER BY rank; newest first under 3 letters; + prefix='2 3'",
            "notes_fts_prefix",
            Order::Rank,
            true,
        ),
    ];
    let short = |text: &str| {
        text.split_whitespace()
            .last()
            .is_some_and(|w| w.chars().count() < 3)
    };
    struct Prepared {
        name: &'static str,
        main: String,
        recent: Option<String>,
        plan: Vec<String>,
    }
    let mut prepared = Vec::new();
    for (name, table, order, short_recent) in variants {
        let main = search_sql(table, order);
        let recent = short_recent.then(|| search_sql(table, Order::Recent));
        let mut plan: Vec<String> = Vec::new();
        for sql in std::iter::once(&main).chain(recent.as_ref()) {
            plan.push(format!(
                "-- {}",
                sql.lines().last().unwrap_or_default().trim()
            ));
            plan.extend(
                conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}"))?
                    .query_map(params!["\"x\"*", SEARCH_LIMIT], |r| r.get::<_, String>(3))?
                    .collect::<rusqlite::Result<Vec<_>>>()?,
            );
        }
        prepared.push(Prepared {
            name,
            main,
            recent,
            plan,
        });
    }
    let sql_for = |v: &'_ Prepared, text: &str| -> String {
        match &v.recent {
            Some(recent) if short(text) => recent.clone(),
            _ => v.main.clone(),
        }
    };
    // A warm-up pass gives the hits to compare; then every query runs under every variant in
    // turn, so that a busy moment of the machine hits all variants alike.
    let mut hits: Vec<Vec<Vec<String>>> = Vec::new();
    for v in &prepared {
        hits.push(
            queries
                .iter()
                .map(|q| run_search(&conn, &sql_for(v, &q.text), &q.text))
                .collect::<Result<_>>()?,
        );
    }
    let mut times: Vec<Vec<Vec<f64>>> = vec![vec![Vec::new(); queries.len()]; prepared.len()];
    for _ in 0..passes {
        for (k, q) in queries.iter().enumerate() {
            for (vi, v) in prepared.iter().enumerate() {
                let sql = sql_for(v, &q.text);
                let t = Instant::now();
                black_box(run_search(&conn, &sql, &q.text)?);
                times[vi][k].push(t.elapsed().as_secs_f64() * 1e3);
            }
        }
    }
    let per_query_median =
        |vi: usize| -> Vec<f64> { times[vi].iter().map(|t| median(&mut t.clone())).collect() };
    let shipped = per_query_median(0);
    let mut rows = Vec::new();
    for (vi, v) in prepared.into_iter().enumerate() {
        let same_order = hits[vi]
            .iter()
            .zip(&hits[0])
            .filter(|(a, b)| a == b)
            .count();
        let same_set = hits[vi]
            .iter()
            .zip(&hits[0])
            .filter(|(a, b)| {
                let (mut a, mut b) = ((*a).clone(), (*b).clone());
                a.sort();
                b.sort();
                a == b
            })
            .count();
        let (search, mix_median_ms, mix_p90_ms) = summarize(queries, &times[vi]);
        let medians = per_query_median(vi);
        let mut speedups: Vec<f64> = shipped
            .iter()
            .zip(&medians)
            .zip(queries)
            .filter(|(_, q)| q.kind != Kind::Common)
            .map(|((a, b), _)| a / b)
            .collect();
        let mut slowest: Vec<(String, f64)> = queries
            .iter()
            .zip(&medians)
            .map(|(q, &t)| (q.text.clone(), t))
            .collect();
        slowest.sort_by(|a, b| b.1.total_cmp(&a.1));
        slowest.truncate(4);
        rows.push(VariantRow {
            name: v.name,
            search,
            mix_median_ms,
            mix_p90_ms,
            speedup: median(&mut speedups),
            same_order,
            same_set,
            queries: queries.len(),
            plan: v.plan,
            slowest,
        });
    }
    Ok(VariantReport {
        prefix_build_s,
        fts_bytes: fts,
        prefix_fts_bytes: prefix_fts,
        rows,
    })
}

// ---------------------------------------------------------------------------------------------

fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

fn main() -> Result<()> {
    let cfg = Config::from_env()?;
    let mut c = Criterion::default().configure_from_args();
    let corpus = Corpus::new(0x0075_7470_6f73_7400);

    let writes = if cfg.runs("write") {
        write_benches(&mut c, &cfg, &corpus)?
    } else {
        Vec::new()
    };
    let scale = if cfg.runs("scale") {
        Some(scale_benches(&mut c, &cfg, &corpus)?)
    } else {
        None
    };
    c.final_summary();

    println!("\n=== outpost-core store benchmarks: summary ===");
    if !writes.is_empty() {
        println!(
            "\nwrites, one transaction each: store vs bare rusqlite, interleaved rounds (goal: store/bare >= 0.80)"
        );
        println!(
            "| synchronous | op | store ops/s | bare ops/s | store/bare (median) | quartiles | best rounds | CPU µs/op store / bare | CPU ratio | goal |"
        );
        println!("|---|---|---:|---:|---:|---|---:|---:|---:|---|");
        for r in writes.iter().filter(|r| r.what.is_none()) {
            let p = &r.p;
            println!(
                "| {} | {} | {:.0} | {:.0} | {:.2} | {:.2}–{:.2} | {:.2} | {:.0} / {:.0} | {:.2} | {} |",
                sync_name(r.sync).to_uppercase(),
                r.op.name(),
                p.a_per_s,
                p.b_per_s,
                p.ratio,
                p.ratio_q1,
                p.ratio_q3,
                p.ratio_best,
                p.a_cpu_us,
                p.b_cpu_us,
                p.ratio_cpu,
                pass(p.ratio >= 0.8)
            );
        }
        for r in writes.iter().filter(|r| r.what.is_some()) {
            let p = &r.p;
            println!(
                "investigation, {} {}: {}: {:.2} (quartiles {:.2}–{:.2}), CPU {:.0} / {:.0} µs/op = {:.2}",
                sync_name(r.sync).to_uppercase(),
                r.op.name(),
                r.what.unwrap_or_default(),
                p.ratio,
                p.ratio_q1,
                p.ratio_q3,
                p.a_cpu_us,
                p.b_cpu_us,
                p.ratio_cpu
            );
        }
    }
    if let Some(s) = scale {
        println!("\nscale: {} notes of ~1 KB", s.notes);
        println!(
            "import (create_note one by one, NORMAL): {:.1} s, {:.0} notes/s (first tenth {:.0}/s, last tenth {:.0}/s); database {:.0} MB",
            s.import_s,
            s.import_per_s,
            s.first_tenth_per_s,
            s.last_tenth_per_s,
            s.db_bytes as f64 / 1e6
        );
        println!(
            "list_notes first page (limit 100): first call {:.2} ms, median {:.2} ms",
            s.list_first_ms, s.list_median_ms
        );
        for (offset, ms) in &s.list_pages_ms {
            println!("list_notes page of 200 at offset {offset}: median {ms:.2} ms");
        }
        println!(
            "search_notes (limit {SEARCH_LIMIT}) mix median {:.2} ms, p90 {:.2} ms; goal median <= 10 ms: {}",
            s.mix_median_ms,
            s.mix_p90_ms,
            pass(s.mix_median_ms <= 10.0)
        );
        println!("| query kind | queries | median ms | p90 ms | max ms |");
        println!("|---|---:|---:|---:|---:|");
        for r in &s.search {
            println!(
                "| {} | {} | {:.2} | {:.2} | {:.2} |",
                r.kind.name(),
                r.queries,
                r.median_ms,
                r.p90_ms,
                r.max_ms
            );
        }
        println!("slowest queries (text, kind, notes with the word, hits returned, median ms):");
        for (text, kind, df, hits, ms) in &s.slowest {
            println!(
                "  {text:<24} {:<18} df={df:<6} hits={hits:<3} {ms:.2} ms",
                kind.name()
            );
        }
        if let Some(v) = &s.variants {
            println!(
                "\nsearch investigation (raw connection, same database and queries; median ms per kind):"
            );
            println!(
                "prefix='2 3' index: built in {:.1} s; FTS index {:.0} MB -> {:.0} MB",
                v.prefix_build_s,
                v.fts_bytes as f64 / 1e6,
                v.prefix_fts_bytes as f64 / 1e6
            );
            let kinds: Vec<Kind> = Kind::MIX.iter().copied().chain([Kind::Common]).collect();
            let header: Vec<&str> = kinds.iter().map(|k| k.name()).collect();
            println!(
                "| variant | mix median | mix p90 | per-query speed-up | {} | same hits, same order | slowest queries (ms) |",
                header.join(" | ")
            );
            println!(
                "|---|---:|---:|---:|{}---|---|",
                "---:|".repeat(kinds.len())
            );
            for r in &v.rows {
                let cells: Vec<String> = kinds
                    .iter()
                    .map(|k| {
                        r.search
                            .iter()
                            .find(|x| x.kind == *k)
                            .map_or("-".into(), |x| format!("{:.2}", x.median_ms))
                    })
                    .collect();
                let slow: Vec<String> = r
                    .slowest
                    .iter()
                    .map(|(q, t)| format!("{q} {t:.0}"))
                    .collect();
                println!(
                    "| {} | {:.2} | {:.2} | {:.2}x | {} | {}/{} ({} same set) | {} |",
                    r.name,
                    r.mix_median_ms,
                    r.mix_p90_ms,
                    r.speedup,
                    cells.join(" | "),
                    r.same_order,
                    r.queries,
                    r.same_set,
                    slow.join(", ")
                );
            }
            // The prefix-indexed table plans like the plain one: show the first three.
            for r in v.rows.iter().take(3) {
                println!("plan, {}:", r.name);
                for line in &r.plan {
                    println!("    {line}");
                }
            }
        }
    }
    Ok(())
}
