//! `outpost seed N`: test notes for QA. By default N realistic notes (a field worker's: a
//! title, a Markdown body with a checklist and readings, a few tags, now and then pinned),
//! imported a thousand per transaction, so ten thousand take a second or two. With
//! `--one-by-one` each note is its own transaction with filler text, as a typing user would
//! write them (the crash tests kill that mid-burst).

use crate::cli::SeedArgs;
use crate::output::Printer;
use anyhow::Result;
use outpost_core::{NoteDraft, NotePatch, NotebookId, Store};
use std::time::Instant;

/// Notes per import transaction: a batch holds the writer for its whole length.
const BATCH: usize = 1000;

/// A small deterministic generator (xorshift64*): the same seed gives the same notes.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[self.below(from.len())]
    }
}

const ASSETS: &[&str] = &[
    "Pump",
    "Valve",
    "Transformer",
    "Generator",
    "Tank",
    "Compressor",
    "Mast",
    "Gate",
    "Meter",
    "Filter bank",
];
const SITES: &[&str] = &[
    "North yard",
    "River station",
    "Hill top relay",
    "Depot 3",
    "East substation",
    "Old quarry",
    "Harbour shed",
    "Water works",
];
const READINGS: &[(&str, &str)] = &[
    ("inlet pressure", "bar"),
    ("outlet pressure", "bar"),
    ("temperature", "C"),
    ("vibration", "mm/s"),
    ("voltage", "V"),
    ("flow", "l/min"),
    ("level", "%"),
];
const STATUS: &[&str] = &[
    "ok",
    "ok",
    "ok",
    "worn, replace next visit",
    "leaking slightly",
    "replaced today",
    "needs a second look",
];
const REMARKS: &[&str] = &[
    "Access road muddy after the rain; bring the long boots.",
    "Gate code changed, ask the site office.",
    "No signal on site, notes typed offline.",
    "Spare parts ordered, delivery expected next week.",
    "Customer asked for a written report by Friday.",
    "Photos of the seal are on the shared drive.",
];
const TAGS: &[&str] = &[
    "pumps",
    "valves",
    "electrical",
    "safety",
    "follow-up",
    "urgent",
    "done",
    "north",
    "south",
];

/// One realistic note; `reference` makes its text unique.
fn realistic(rng: &mut Rng, reference: &str) -> NoteDraft {
    let asset = rng.pick(ASSETS);
    let unit = 1 + rng.below(12);
    let site = rng.pick(SITES);
    let title = format!("{asset} {unit} - {site} ({reference})");
    let month = 1 + rng.below(12);
    let day = 1 + rng.below(28);
    let mut body = format!("# {asset} {unit}\n\nVisited {site} on 2026-{month:02}-{day:02}.\n\n");
    for _ in 0..2 + rng.below(5) {
        let (what, unit_of) = READINGS[rng.below(READINGS.len())];
        let value = 10 + rng.below(990);
        body.push_str(&format!(
            "- [{}] {what}: {}.{} {unit_of}, {}\n",
            if rng.below(3) == 0 { " " } else { "x" },
            value / 10,
            value % 10,
            rng.pick(STATUS)
        ));
    }
    body.push_str(&format!("\n{}\n\nRef. {reference}\n", rng.pick(REMARKS)));
    let tags = (0..rng.below(4))
        .map(|_| rng.pick(TAGS).to_owned())
        .collect();
    NoteDraft {
        title,
        body,
        tags,
        pinned: rng.below(20) == 0,
        notebook_id: None,
    }
}

/// Filler text of `bytes` bytes (ASCII), different for each `seed`.
fn filler(seed: u64, bytes: usize) -> String {
    const WORDS: &[&str] = &[
        "pump",
        "valve",
        "seal",
        "pressure",
        "inspection",
        "north",
        "site",
        "meter",
        "replaced",
        "leak",
        "cable",
        "panel",
        "reading",
        "checked",
        "tower",
        "signal",
        "battery",
        "filter",
        "gauge",
        "report",
        "tank",
        "motor",
        "bearing",
        "access",
        "road",
        "gate",
        "sample",
        "field",
    ];
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(bytes + 16);
    while out.len() < bytes {
        out.push_str(rng.pick(WORDS));
        out.push(' ');
    }
    out.truncate(bytes);
    out
}

/// A body of exactly `bytes` bytes: the realistic one cut short or padded with filler.
fn sized(mut body: String, bytes: usize, seed: u64) -> String {
    if body.len() >= bytes {
        // The generated text is ASCII, so any byte is a character boundary.
        body.truncate(bytes);
    } else {
        let pad = filler(seed, bytes - body.len());
        body.push_str(&pad);
    }
    body
}

fn notebook(store: &Store, name: &str) -> Result<NotebookId> {
    match store.find_notebook(name) {
        Ok(nb) => Ok(nb.id),
        Err(e) if e.code() == "not_found" => Ok(store.create_notebook(name)?.id),
        Err(e) => Err(e.into()),
    }
}

pub fn seed(store: &Store, out: &Printer, args: &SeedArgs) -> Result<()> {
    let started = Instant::now();
    let notebook_id = args
        .notebook
        .as_deref()
        .map(|name| notebook(store, name))
        .transpose()?;
    let seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64)
    });
    if args.one_by_one {
        one_by_one(store, args, notebook_id, seed)?;
    } else {
        let mut rng = Rng::new(seed);
        // A reference unique to this run and note, so two runs never make the same text.
        let run = (Rng::new(seed ^ 0x5EED).next() >> 32) as u32;
        let mut drafts = Vec::with_capacity(BATCH);
        for i in 0..args.count {
            let mut draft = realistic(&mut rng, &format!("{run:08x}-{i:06}"));
            draft.notebook_id = notebook_id;
            if let Some(bytes) = args.body_bytes {
                draft.body = sized(draft.body, bytes, seed ^ u64::from(i));
            }
            drafts.push(draft);
            if drafts.len() == BATCH {
                store.import_notes(std::mem::take(&mut drafts))?;
            }
        }
        if !drafts.is_empty() {
            store.import_notes(drafts)?;
        }
    }
    let took = started.elapsed();
    let per_second = f64::from(args.count) / took.as_secs_f64().max(1e-6);
    let into = args
        .notebook
        .as_deref()
        .map(|n| format!(" in notebook {n:?}"))
        .unwrap_or_default();
    out.message(
        &format!(
            "created {} notes{into} in {:.2} s ({per_second:.0} notes/s)",
            args.count,
            took.as_secs_f64()
        ),
        serde_json::json!({
            "created": args.count,
            "ms": took.as_millis() as u64,
            "notebook": notebook_id,
        }),
    )
}

/// Each note in its own transaction, with filler text; now and then an edit of an earlier one.
fn one_by_one(
    store: &Store,
    args: &SeedArgs,
    notebook_id: Option<NotebookId>,
    seed: u64,
) -> Result<()> {
    let bytes = args.body_bytes.unwrap_or(1024);
    let mut ids = Vec::with_capacity(args.count as usize);
    for i in 0..args.count {
        let note = store.create_note(NoteDraft {
            notebook_id,
            title: format!("Seed note {i}"),
            body: filler(seed ^ u64::from(i), bytes),
            ..Default::default()
        })?;
        ids.push(note.id);
        if args.edit_every > 0 && (i + 1) % args.edit_every == 0 {
            let target = ids[(i as usize * 7) % ids.len()];
            store.update_note(
                target,
                NotePatch {
                    title: Some(format!("Seed note {i} (edited)")),
                    body: Some(filler(seed ^ u64::from(i + 1), bytes)),
                    ..Default::default()
                },
            )?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filler_is_deterministic_and_sized() {
        assert_eq!(filler(3, 100), filler(3, 100));
        assert_eq!(filler(3, 100).len(), 100);
        assert_ne!(filler(3, 100), filler(4, 100));
    }

    #[test]
    fn realistic_notes_follow_the_seed_and_carry_their_reference() {
        let make = |seed| {
            let mut rng = Rng::new(seed);
            (0..20)
                .map(|i| realistic(&mut rng, &format!("r-{i}")))
                .collect::<Vec<_>>()
        };
        assert_eq!(make(7), make(7));
        assert_ne!(make(7), make(8));
        for (i, note) in make(7).iter().enumerate() {
            assert!(note.title.ends_with(&format!("(r-{i})")), "{}", note.title);
            assert!(note.body.contains(&format!("Ref. r-{i}")));
            assert!(note.body.is_ascii(), "so a body can be cut at any byte");
            assert!(note.tags.len() <= 3);
        }
    }

    #[test]
    fn a_body_is_cut_or_padded_to_the_size_asked() {
        assert_eq!(sized("abc".into(), 100, 1).len(), 100);
        assert_eq!(sized("x".repeat(500), 64, 1), "x".repeat(64));
    }
}
