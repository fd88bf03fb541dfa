//! Tauri's build step: reads the app config and generates the permissions of our own commands,
//! so the capability file must grant each command by name (`allow-list-notes`).
//!
//! The config is read as `src-tauri/tauri.conf.json`, a symlink to the file at the repository
//! root, so that relative paths in it (`../ui/dist`, `icons/…`) mean the same here, in
//! `generate_context!` and in the Tauri CLI (`TAURI_APP_PATH=src-tauri`). Reading it as
//! `../tauri.conf.json` would make them relative to the root for cargo but not for the CLI.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::path::Path;

/// A hash of the names, sizes and modification times of the files under `dir`.
fn ui_stamp(dir: &Path) -> u64 {
    fn walk(dir: &Path, hasher: &mut DefaultHasher) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            path.hash(hasher);
            if let Ok(meta) = entry.metadata() {
                meta.len().hash(hasher);
                meta.modified().ok().hash(hasher);
                if meta.is_dir() {
                    walk(&path, hasher);
                }
            }
        }
    }
    let mut hasher = DefaultHasher::new();
    walk(dir, &mut hasher);
    hasher.finish()
}

/// The app's commands, from the one list the code and its tests also read.
const COMMANDS: &[&str] = &include!("commands.list");

fn main() {
    println!("cargo:rerun-if-changed=commands.list");
    // The window's files are embedded at compile time by `generate_context!`, which cargo does
    // not track. Watching the folder reruns this script; a stamp of its files in the crate's
    // environment then makes cargo recompile the crate (see also the non-incremental profile of
    // this crate in the workspace Cargo.toml).
    println!("cargo:rerun-if-changed=../ui/dist");
    println!(
        "cargo:rustc-env=OUTPOST_UI_STAMP={}",
        ui_stamp(Path::new("../ui/dist"))
    );
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    let attributes = tauri_build::Attributes::new().app_manifest(manifest);
    if let Err(err) = tauri_build::try_build(attributes) {
        // Build scripts report by panicking; print the whole chain so the cause is visible.
        panic!("tauri build step failed: {err:#}");
    }
}
