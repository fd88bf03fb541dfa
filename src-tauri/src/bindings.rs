//! The TypeScript declarations of every type that crosses IPC, generated from the Rust types
//! (ts-rs) into `ui/src/bindings/`, so the window and the core cannot drift apart.
//!
//! `cargo test -p outpost-app bindings` fails when the committed files are stale;
//! `OUTPOST_UPDATE_BINDINGS=1 cargo test -p outpost-app bindings` rewrites them.

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::path::{Path, PathBuf};

    use outpost_core::sync::{Conflict, Resolution, SyncErrorEntry, SyncStatus};
    use outpost_core::{
        ExternalEvent, ListQuery, LocalStatus, MarkdownExport, MarkdownImport, Note, NoteDraft,
        NotePage, NotePatch, Notebook, OutboxEntry, Pref, SearchHit,
    };
    use ts_rs::{Config, TS};

    use crate::commands::{
        AccountInfo, AppPaths, DoctorReport, EditorFile, OpenOutcome, TransferQueue,
    };
    use crate::error::CommandError;
    use crate::events::NotesChanged;
    use outpost_core::attachments::Attachment;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn export_all(dir: &Path) -> Result<(), ts_rs::ExportError> {
        // Tauri sends i64 as a JSON number; millisecond times and counts fit in a double.
        let cfg = Config::new().with_large_int("number").with_out_dir(dir);
        NotePage::export_all(&cfg)?;
        Note::export_all(&cfg)?;
        NoteDraft::export_all(&cfg)?;
        NotePatch::export_all(&cfg)?;
        ListQuery::export_all(&cfg)?;
        SearchHit::export_all(&cfg)?;
        Notebook::export_all(&cfg)?;
        OutboxEntry::export_all(&cfg)?;
        LocalStatus::export_all(&cfg)?;
        Pref::export_all(&cfg)?;
        SyncStatus::export_all(&cfg)?;
        SyncErrorEntry::export_all(&cfg)?;
        Conflict::export_all(&cfg)?;
        Resolution::export_all(&cfg)?;
        DoctorReport::export_all(&cfg)?;
        AccountInfo::export_all(&cfg)?;
        AppPaths::export_all(&cfg)?;
        EditorFile::export_all(&cfg)?;
        NotesChanged::export_all(&cfg)?;
        CommandError::export_all(&cfg)?;
        MarkdownExport::export_all(&cfg)?;
        MarkdownImport::export_all(&cfg)?;
        ExternalEvent::export_all(&cfg)?;
        Attachment::export_all(&cfg)?;
        OpenOutcome::export_all(&cfg)?;
        TransferQueue::export_all(&cfg)?;
        Ok(())
    }

    /// Every `.ts` file under `dir`, by path relative to it (ts-rs puts `serde_json::Value` in
    /// a subdirectory).
    fn read_dir(dir: &Path) -> std::io::Result<BTreeMap<PathBuf, String>> {
        fn walk(
            root: &Path,
            dir: &Path,
            out: &mut BTreeMap<PathBuf, String>,
        ) -> std::io::Result<()> {
            for entry in std::fs::read_dir(dir)? {
                let path = entry?.path();
                if path.is_dir() {
                    walk(root, &path, out)?;
                } else if path.extension().is_some_and(|e| e == "ts") {
                    let name = path.strip_prefix(root).unwrap_or(&path).to_path_buf();
                    out.insert(name, std::fs::read_to_string(&path)?);
                }
            }
            Ok(())
        }
        let mut files = BTreeMap::new();
        if dir.exists() {
            walk(dir, dir, &mut files)?;
        }
        Ok(files)
    }

    #[test]
    fn bindings_match_the_rust_types() -> TestResult {
        let committed_dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../ui/src/bindings");
        let fresh_dir = tempfile::tempdir()?;
        export_all(fresh_dir.path())?;
        let fresh = read_dir(fresh_dir.path())?;
        assert!(
            fresh.contains_key(Path::new("Note.ts"))
                && fresh.contains_key(Path::new("SyncStatus.ts"))
        );
        if std::env::var_os("OUTPOST_UPDATE_BINDINGS").is_some() {
            if committed_dir.exists() {
                std::fs::remove_dir_all(&committed_dir)?;
            }
            std::fs::create_dir_all(&committed_dir)?;
            for (name, text) in &fresh {
                let path = committed_dir.join(name);
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(path, text)?;
            }
            return Ok(());
        }
        let committed = read_dir(&committed_dir)?;
        let stale: Vec<&PathBuf> = fresh
            .keys()
            .chain(committed.keys())
            .filter(|name| fresh.get(*name) != committed.get(*name))
            .collect();
        assert!(
            stale.is_empty(),
            "ui/src/bindings is stale ({stale:?}); run `OUTPOST_UPDATE_BINDINGS=1 cargo test -p outpost-app bindings`"
        );
        Ok(())
    }
}
