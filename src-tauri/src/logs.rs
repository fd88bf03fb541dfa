//! Logs: to standard error and to daily files in the platform's log directory
//! (`~/.local/share/app.outpost.notes/logs` on Linux, `~/Library/Logs/app.outpost.notes` on
//! macOS, `%LOCALAPPDATA%\app.outpost.notes\logs` on Windows), the last [`KEEP_FILES`] kept.
//! `RUST_LOG` sets the level (default `info`). Nothing secret is logged: the core never logs
//! tokens or passwords, and note text is not logged either.

use std::path::Path;

use tauri::{AppHandle, Manager};
use tracing_appender::rolling::{RollingFileAppender, Rotation};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, fmt};

/// Daily files kept; older ones are deleted as new days start.
pub const KEEP_FILES: usize = 7;

pub fn init(app: &AppHandle) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let file = app
        .path()
        .app_log_dir()
        .map_err(|e| e.to_string())
        .and_then(|dir| appender(&dir));
    let (file_layer, file_error) = match file {
        Ok(appender) => (
            Some(fmt::layer().with_ansi(false).with_writer(appender)),
            None,
        ),
        Err(err) => (None, Some(err)),
    };
    // A second subscriber (e.g. in tests) is not an error worth stopping for.
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt::layer().with_writer(std::io::stderr))
        .with(file_layer)
        .try_init();
    if let Some(err) = file_error {
        tracing::warn!(error = %err, "logging to standard error only");
    }
}

/// A daily-rotated `outpost.YYYY-MM-DD.log` in `dir`, which is created if missing.
pub fn appender(dir: &Path) -> Result<RollingFileAppender, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    RollingFileAppender::builder()
        .rotation(Rotation::DAILY)
        .filename_prefix("outpost")
        .filename_suffix("log")
        .max_log_files(KEEP_FILES)
        .build(dir)
        .map_err(|e| format!("cannot log to {}: {e}", dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn logs_go_to_a_dated_file_in_the_log_dir() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let logs = dir.path().join("logs");
        let mut appender = appender(&logs)?;
        appender.write_all(b"sync cycle done\n")?;
        appender.flush()?;
        let files: Vec<String> = std::fs::read_dir(&logs)?
            .filter_map(|e| e.ok())
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(files.len(), 1, "{files:?}");
        assert!(
            files[0].starts_with("outpost.") && files[0].ends_with(".log"),
            "{files:?}"
        );
        let text = std::fs::read_to_string(logs.join(&files[0]))?;
        assert!(text.contains("sync cycle done"));
        Ok(())
    }

    #[test]
    fn an_unwritable_log_dir_is_a_clear_error() {
        let err = appender(Path::new("/proc/outpost-logs"))
            .err()
            .unwrap_or_default();
        assert!(err.contains("/proc/outpost-logs"), "{err}");
    }
}
