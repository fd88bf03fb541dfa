//! Helpers shared by the end-to-end scenarios: finding the workspace's binaries.

use std::path::PathBuf;

/// The path of a binary of this workspace (`outpost`, later `outpost-server`), built in the same
/// profile as the running test. `scripts/test-all` builds every binary before the tests run.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile> directory");
    let path = profile_dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --workspace --bins` first (scripts/test-all does)",
        path.display()
    );
    path
}
