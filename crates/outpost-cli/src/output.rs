//! Printing: a short human form, or JSON with `--json`; errors and exit codes.

use anyhow::Result;
use outpost_core::attachments::{Attachment, AttachmentState, human_bytes};
use outpost_core::dates::to_the_minute;
use outpost_core::{
    LocalStatus, MarkdownExport, MarkdownImport, Note, NotePage, Notebook, OutboxEntry, Pref,
    SearchHit, SyncState,
};
use serde::Serialize;
use std::io::Write;

pub struct Printer {
    pub json: bool,
}

fn json_line(value: &impl Serialize) -> Result<()> {
    let mut stdout = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut stdout, value)?;
    writeln!(stdout)?;
    Ok(())
}

fn badge(state: SyncState) -> &'static str {
    match state {
        SyncState::Synced => "synced",
        SyncState::Pending => "pending",
        SyncState::Failed => "FAILED",
        SyncState::Conflict => "CONFLICT",
    }
}

/// How far this device's clock is off, from the correction `ms` (server minus device): stamps
/// follow the server's time, but the user should set the clock right.
pub fn describe_skew(ms: i64) -> String {
    let off = ms.unsigned_abs() / 1000;
    let amount = match off {
        0..60 => format!("{off} s"),
        60..3600 => format!("{} min {} s", off / 60, off % 60),
        _ => format!("{} h {} min", off / 3600, off % 3600 / 60),
    };
    let side = if ms > 0 { "behind" } else { "ahead of" };
    format!(
        "this device's clock is {amount} {side} the server's (edits are stamped in server time)"
    )
}

/// The random last group of a UUIDv7 (its first digits are a timestamp that notes made
/// together share); `outpost` commands accept it in place of the whole id.
fn short(id: &impl ToString) -> String {
    let id = id.to_string();
    id.rsplit('-').next().unwrap_or(&id).to_owned()
}

impl Printer {
    pub fn created(&self, note: &Note) -> Result<()> {
        if self.json {
            return json_line(note);
        }
        println!("{}", note.id);
        Ok(())
    }

    pub fn note(&self, note: &Note) -> Result<()> {
        if self.json {
            return json_line(note);
        }
        println!("id:       {}", note.id);
        println!("title:    {}", note.title);
        println!("state:    {}", badge(note.sync_state));
        if let Some(nb) = note.notebook_id {
            println!("notebook: {nb}");
        }
        if !note.tags.is_empty() {
            println!("tags:     {}", note.tags.join(", "));
        }
        let mut flags = Vec::new();
        if note.pinned {
            flags.push("pinned");
        }
        if note.archived {
            flags.push("archived");
        }
        if note.deleted {
            flags.push("in Trash");
        }
        if !flags.is_empty() {
            println!("flags:    {}", flags.join(", "));
        }
        println!("changed:  {} UTC", to_the_minute(note.updated_ms));
        println!();
        println!("{}", note.body);
        Ok(())
    }

    pub fn page(&self, page: &NotePage) -> Result<()> {
        if self.json {
            return json_line(page);
        }
        if page.items.is_empty() {
            println!("no notes");
        }
        for n in &page.items {
            let pin = if n.pinned { "*" } else { " " };
            let title = if n.title.is_empty() {
                "(untitled)"
            } else {
                &n.title
            };
            println!(
                "{} {pin} {:<8} {}  {}",
                short(&n.id),
                badge(n.sync_state),
                to_the_minute(n.updated_ms),
                title
            );
        }
        if let Some(next) = &page.next {
            println!("more: --after {next}");
        }
        Ok(())
    }

    pub fn hits(&self, hits: &[SearchHit]) -> Result<()> {
        if self.json {
            return json_line(&hits);
        }
        if hits.is_empty() {
            println!("no matches");
        }
        for hit in hits {
            let mark = |parts: &[outpost_core::SnippetPart]| -> String {
                parts
                    .iter()
                    .map(|p| {
                        if p.hit {
                            format!("[{}]", p.text)
                        } else {
                            p.text.clone()
                        }
                    })
                    .collect()
            };
            println!("{}  {}", short(&hit.note.id), mark(&hit.title));
            println!("          {}", mark(&hit.snippet).replace('\n', " "));
        }
        Ok(())
    }

    pub fn notebook(&self, nb: &Notebook) -> Result<()> {
        if self.json {
            return json_line(nb);
        }
        println!("{}  {}", nb.id, nb.name);
        Ok(())
    }

    pub fn notebooks(&self, nbs: &[Notebook]) -> Result<()> {
        if self.json {
            return json_line(&nbs);
        }
        if nbs.is_empty() {
            println!("no notebooks");
        }
        for nb in nbs {
            println!("{}  {:>5} notes  {}", short(&nb.id), nb.note_count, nb.name);
        }
        Ok(())
    }

    pub fn pref(&self, pref: &Pref) -> Result<()> {
        if self.json {
            return json_line(pref);
        }
        println!("{} = {}", pref.key, pref.value);
        Ok(())
    }

    pub fn prefs(&self, prefs: &[Pref]) -> Result<()> {
        if self.json {
            return json_line(&prefs);
        }
        for p in prefs {
            let scope = match p.scope {
                outpost_core::PrefScope::Synced => "synced",
                outpost_core::PrefScope::Device => "device",
            };
            let default = if p.is_default { " (default)" } else { "" };
            println!(
                "{:<20} {:<10} [{scope}]{default}  {}",
                p.key,
                p.value.to_string(),
                p.help
            );
        }
        Ok(())
    }

    pub fn outbox(&self, entries: &[OutboxEntry]) -> Result<()> {
        if self.json {
            return json_line(&entries);
        }
        if entries.is_empty() {
            println!("outbox empty: nothing waiting to be sent");
        }
        for e in entries {
            let fields: Vec<&str> = e.fields.keys().map(String::as_str).collect();
            let error = e
                .last_error
                .as_deref()
                .map(|m| format!("  error: {m}"))
                .unwrap_or_default();
            println!(
                "#{:<6} {:<13} {} {:<8} since {}  tries {}  [{}]{error}",
                e.mutation_number,
                e.name,
                short(&e.entity_id),
                e.state,
                to_the_minute(e.created_ms),
                e.attempts,
                fields.join(",")
            );
        }
        Ok(())
    }

    pub fn status(&self, s: &LocalStatus) -> Result<()> {
        if self.json {
            return json_line(s);
        }
        println!("data dir:  {}", s.data_dir);
        println!("device:    {}", s.client_id);
        println!("notes:     {} ({} in Trash)", s.notes, s.in_trash);
        println!("notebooks: {}", s.notebooks);
        let since = s
            .oldest_pending_ms
            .map(|ms| format!(", oldest since {} UTC", to_the_minute(ms)))
            .unwrap_or_default();
        println!("pending:   {}{since}", s.pending);
        println!("failed:    {}", s.failed);
        println!("conflicts: {}", s.conflicts);
        Ok(())
    }

    pub fn exported(&self, export: &MarkdownExport) -> Result<()> {
        if self.json {
            return json_line(export);
        }
        println!(
            "exported {} notes ({} notebook folders) to {}",
            export.notes, export.notebooks, export.dir
        );
        Ok(())
    }

    pub fn imported(&self, import: &MarkdownImport) -> Result<()> {
        if self.json {
            return json_line(import);
        }
        println!(
            "imported {} notes; skipped {} files",
            import.imported,
            import.skipped.len()
        );
        for file in &import.skipped {
            println!("  {}: {}", file.path, file.reason);
        }
        Ok(())
    }

    pub fn attachment(&self, a: &Attachment) -> Result<()> {
        if self.json {
            return json_line(a);
        }
        println!("{}", a.id);
        Ok(())
    }

    pub fn attachments(&self, list: &[Attachment]) -> Result<()> {
        if self.json {
            return json_line(&list);
        }
        for a in list {
            let state = match &a.state {
                AttachmentState::LocalOnly => "on this device only".to_owned(),
                AttachmentState::Uploading { sent } => format!(
                    "uploading {}%",
                    (sent.saturating_mul(100) / a.size.max(1)).min(100)
                ),
                AttachmentState::Synced => "synced".to_owned(),
                AttachmentState::NotDownloaded { wanted: true } => "downloading".to_owned(),
                AttachmentState::NotDownloaded { wanted: false } => "not downloaded".to_owned(),
                AttachmentState::Failed { reason } => format!("FAILED: {reason}"),
            };
            println!(
                "{}  {}  {}  {}  note {}  {state}",
                short(&a.id),
                a.name,
                a.media_type,
                human_bytes(a.size),
                short(&a.note_id)
            );
        }
        Ok(())
    }

    /// A one-line outcome for commands that change something but return nothing to show.
    pub fn message(&self, text: &str, json: serde_json::Value) -> Result<()> {
        if self.json {
            return json_line(&json);
        }
        println!("{text}");
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_which_way_the_clock_is_off() {
        assert!(describe_skew(86_400_000).starts_with("this device's clock is 24 h 0 min behind"));
        assert!(describe_skew(-90_500).starts_with("this device's clock is 1 min 30 s ahead of"));
    }
}
