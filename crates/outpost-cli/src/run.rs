//! Runs a parsed command against the store: parse, call the core, print.

use crate::cli::{
    Args, AttachmentCmd, BodyArgs, Command, NoteCmd, NotebookCmd, OutboxCmd, PrefCmd,
};
use crate::output::Printer;
use crate::sync;
use anyhow::{Context, Result, anyhow};
use outpost_core::{ListQuery, NoteDraft, NoteId, NotePatch, NoteView, NotebookId, Store};
use std::io::Read;

pub fn run(args: &Args) -> Result<()> {
    let dir = match &args.data_dir {
        Some(dir) => dir.clone(),
        None => outpost_core::default_data_dir()
            .ok_or_else(|| anyhow!("no data directory: pass --data-dir or set OUTPOST_DATA_DIR"))?,
    };
    let store = Store::open(&dir)?;
    let out = Printer { json: args.json };
    match &args.command {
        Command::Note(cmd) => note(&store, &out, cmd),
        Command::Notebook(cmd) => notebook(&store, &out, cmd),
        Command::Pref(cmd) => pref(&store, &out, cmd),
        Command::Outbox(OutboxCmd::Ls { limit }) => out.outbox(&store.outbox(*limit)?),
        Command::Status => status(&store, &out),
        Command::Export { dir } => out.exported(&store.export_markdown(dir)?),
        Command::Import { dir } => out.imported(&store.import_markdown(dir)?),
        Command::Seed(seed_args) => crate::seed::seed(&store, &out, seed_args),
        Command::Register(auth) => sync::sign_in(&store, &out, auth, true),
        Command::Login(auth) => sync::sign_in(&store, &out, auth, false),
        Command::Logout => sync::sign_out(&store, &out),
        Command::Sync { watch } => sync::sync(store, &out, *watch),
        Command::Attach { note, file } => {
            let note = store.resolve_note_id(note)?;
            out.attachment(&store.attach_file(note, file)?)
        }
        Command::Attachments { note } => {
            let note = note
                .as_deref()
                .map(|n| store.resolve_note_id(n))
                .transpose()?;
            out.attachments(&store.list_attachments(note)?)
        }
        Command::Attachment(AttachmentCmd::Get { id, dest }) => {
            sync::get_attachment(&store, &out, id, dest)
        }
        Command::Attachment(AttachmentCmd::Rm { id }) => {
            let id = store.resolve_attachment_id(id)?;
            store.remove_attachment(id)?;
            out.message(
                "removed from its note; the removal syncs",
                serde_json::json!({ "removed": id }),
            )
        }
        Command::Conflicts => sync::conflicts(&store, &out),
        Command::Resolve {
            id,
            mine,
            theirs,
            file,
        } => sync::resolve(&store, &out, id, *mine, *theirs, file.as_deref()),
        Command::Failed => sync::failed(&store, &out),
        Command::Retry { id } => sync::retry(&store, &out, id),
        Command::Discard { id } => sync::discard(&store, &out, id),
        Command::Doctor { repair, no_sync } => sync::doctor(&store, &out, *repair, *no_sync),
    }
}

/// Local counts plus the sync side: server, account, last success and error, cursor, and how far
/// this device's clock is off (server minus device, as measured by the last successful sync).
fn status(store: &Store, out: &Printer) -> Result<()> {
    let local = store.local_status()?;
    let skew = store.clock_offset_ms();
    let skew = (skew != 0).then_some(skew);
    let session = outpost_core::sync::account::signed_in(store, &sync::vault(store))
        .ok()
        .flatten();
    let sync_info = serde_json::json!({
        "signed_in": session.is_some(),
        "server": session.as_ref().map(|s| s.server_url.clone()),
        "email": session.as_ref().map(|s| s.email.clone()),
        "cursor": store.cursor()?.0,
        "last_success_ms": store.last_sync_success()?,
        "last_error": store.last_sync_error()?,
        "clock_skew_ms": skew,
    });
    if out.json {
        let mut value = serde_json::to_value(&local)?;
        value["sync"] = sync_info;
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    out.status(&local)?;
    match &session {
        Some(s) => println!("sync:      {} as {}", s.server_url, s.email),
        None => println!("sync:      not signed in"),
    }
    if let Some(ms) = store.last_sync_success()? {
        println!("last sync: {} UTC", outpost_core::dates::to_the_minute(ms));
    }
    if let Some(e) = store.last_sync_error()? {
        println!("last error: {e}");
    }
    if let Some(ms) = skew {
        println!("clock:     {}", crate::output::describe_skew(ms));
    }
    Ok(())
}

fn read_body(body: &BodyArgs) -> Result<Option<String>> {
    if let Some(text) = &body.body {
        return Ok(Some(text.clone()));
    }
    let Some(path) = &body.body_file else {
        return Ok(None);
    };
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("reading the body from standard input (is it UTF-8 text?)")?;
    } else {
        text = std::fs::read_to_string(path)
            .with_context(|| format!("reading the body from {}", path.display()))?;
    }
    Ok(Some(text))
}

fn notebook_id(store: &Store, name_or_id: &str) -> Result<NotebookId> {
    Ok(store.find_notebook(name_or_id)?.id)
}

fn note_id(store: &Store, id: &str) -> Result<NoteId> {
    Ok(store.resolve_note_id(id)?)
}

fn split_tags(tags: &str) -> Vec<String> {
    tags.split(',').map(str::to_owned).collect()
}

fn note(store: &Store, out: &Printer, cmd: &NoteCmd) -> Result<()> {
    match cmd {
        NoteCmd::Add {
            title,
            body,
            notebook,
            tags,
            pin,
        } => {
            let notebook_id = notebook
                .as_deref()
                .map(|n| notebook_id(store, n))
                .transpose()?;
            let note = store.create_note(NoteDraft {
                notebook_id,
                title: title.clone(),
                body: read_body(body)?.unwrap_or_default(),
                tags: tags.iter().flat_map(|t| split_tags(t)).collect(),
                pinned: *pin,
            })?;
            out.created(&note)
        }
        NoteCmd::Edit {
            id,
            title,
            body,
            notebook,
            no_notebook,
            tags,
            pin,
            unpin,
            archive,
            unarchive,
        } => {
            let id = note_id(store, id)?;
            let notebook_id = match (notebook, no_notebook) {
                (Some(n), _) => Some(Some(notebook_id(store, n)?)),
                (None, true) => Some(None),
                (None, false) => None,
            };
            let flag = |on: bool, off: bool| (on || off).then_some(on);
            let patch = NotePatch {
                notebook_id,
                title: title.clone(),
                body: read_body(body)?,
                tags: tags.as_deref().map(split_tags),
                pinned: flag(*pin, *unpin),
                archived: flag(*archive, *unarchive),
            };
            if patch.is_empty() {
                return Err(anyhow!(
                    "nothing to change: give --title, --body, --tags, --notebook, --pin, --archive..."
                ));
            }
            out.note(&store.update_note(id, patch)?)
        }
        NoteCmd::Rm { id } => out.note(&store.trash_note(note_id(store, id)?)?),
        NoteCmd::Restore { id } => out.note(&store.restore_note(note_id(store, id)?)?),
        NoteCmd::Purge { id } => {
            let id = note_id(store, id)?;
            store.purge_note(id)?;
            out.message(
                &format!("deleted {id} for good"),
                serde_json::json!({ "purged": id }),
            )
        }
        NoteCmd::EmptyTrash => {
            let n = store.empty_trash()?;
            out.message(
                &format!("deleted {n} notes for good"),
                serde_json::json!({ "purged": n }),
            )
        }
        NoteCmd::Ls {
            notebook,
            tag,
            archived,
            trash,
            limit,
            after,
            all,
        } => {
            let view = if *trash {
                NoteView::Trash
            } else if *archived {
                NoteView::Archived
            } else {
                NoteView::Active
            };
            let mut query = ListQuery {
                view,
                notebook_id: notebook
                    .as_deref()
                    .map(|n| notebook_id(store, n))
                    .transpose()?,
                tag: tag.clone(),
                limit: *limit,
                after: after.clone(),
                offset: 0,
            };
            let mut page = store.list_notes(&query)?;
            if *all {
                while let Some(next) = page.next.take() {
                    query.after = Some(next);
                    let more = store.list_notes(&query)?;
                    page.items.extend(more.items);
                    page.next = more.next;
                }
            }
            out.page(&page)
        }
        NoteCmd::Show { id } => out.note(&store.get_note(note_id(store, id)?)?),
        NoteCmd::Search { query, limit } => out.hits(&store.search_notes(query, *limit)?),
    }
}

fn notebook(store: &Store, out: &Printer, cmd: &NotebookCmd) -> Result<()> {
    match cmd {
        NotebookCmd::Add { name } => out.notebook(&store.create_notebook(name)?),
        NotebookCmd::Ls => out.notebooks(&store.list_notebooks()?),
        NotebookCmd::Rename { notebook, name } => {
            let id = notebook_id(store, notebook)?;
            out.notebook(&store.rename_notebook(id, name)?)
        }
        NotebookCmd::Rm { notebook } => {
            let nb = store.find_notebook(notebook)?;
            store.delete_notebook(nb.id)?;
            out.message(
                &format!(
                    "deleted notebook {:?}; its {} notes are kept, unfiled",
                    nb.name, nb.note_count
                ),
                serde_json::json!({ "deleted": nb.id, "notes_kept": nb.note_count }),
            )
        }
    }
}

fn pref(store: &Store, out: &Printer, cmd: &PrefCmd) -> Result<()> {
    match cmd {
        PrefCmd::Get { key } => out.pref(&store.get_pref(key)?),
        PrefCmd::Set { key, value } => {
            // `dark` and `"dark"` both mean the text dark; `14` and `true` are JSON.
            let value = serde_json::from_str(value)
                .unwrap_or_else(|_| serde_json::Value::String(value.clone()));
            out.pref(&store.set_pref(key, value)?)
        }
        PrefCmd::Ls => out.prefs(&store.list_prefs()?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_split_on_commas() {
        assert_eq!(split_tags("a,b"), vec!["a", "b"]);
    }
}
