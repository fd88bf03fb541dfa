//! Tauri's build step: reads the app config and generates the permissions of our own commands,
//! so the capability file must grant each command by name (`allow-list-notes`).
//!
//! The config is read as `src-tauri/tauri.conf.json`, a symlink to the file at the repository
//! root, so that relative paths in it (`../ui/dist`, `icons/…`) mean the same here, in
//! `generate_context!` and in the Tauri CLI (`TAURI_APP_PATH=src-tauri`). Reading it as
//! `../tauri.conf.json` would make them relative to the root for cargo but not for the CLI.

/// The app's commands, from the one list the code and its tests also read.
const COMMANDS: &[&str] = &include!("commands.list");

fn main() {
    println!("cargo:rerun-if-changed=commands.list");
    // The window's files are embedded at compile time by `generate_context!`, which cargo does
    // not track: rebuild when they change (and see the non-incremental profile of this crate in
    // the workspace Cargo.toml).
    println!("cargo:rerun-if-changed=../ui/dist");
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    let attributes = tauri_build::Attributes::new().app_manifest(manifest);
    if let Err(err) = tauri_build::try_build(attributes) {
        // Build scripts report by panicking; print the whole chain so the cause is visible.
        panic!("tauri build step failed: {err:#}");
    }
}
