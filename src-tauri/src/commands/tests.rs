//! Checks of the commands against the other places that name them: commands.list, main.rs,
//! the capability and the wrappers in ui/src/api.ts.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use outpost_core::sync::Resolution;
use outpost_core::{NoteDraft, NotePatch, Store};

use super::COMMANDS;
use super::sync::doctor_on;
use crate::state::{AppState, Outpost};

type TestResult = Result<(), Box<dyn std::error::Error>>;

/// The source of every file of src/commands/, this one included (its strings are not
/// attributes: see `command_args`), so a command in a new file is checked too.
fn commands_source() -> std::io::Result<String> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/commands");
    let mut files: Vec<_> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    files.retain(|p| p.extension().is_some_and(|e| e == "rs"));
    files.sort();
    let mut source = String::new();
    for file in files {
        source.push_str(&std::fs::read_to_string(file)?);
        source.push('\n');
    }
    Ok(source)
}

/// The arguments each command reads (`name: Arg<..>`), and whether it may be left out.
fn command_args(source: &str) -> BTreeMap<String, BTreeMap<String, bool>> {
    let mut commands = BTreeMap::new();
    let blocks = source.split("#[tauri::command").skip(1);
    // (Only attributes: the string in this very function is followed by a quote.)
    for block in blocks.filter(|b| b.starts_with('(')) {
        let Some(start) = block.find("pub async fn ") else {
            continue;
        };
        let rest = &block[start + "pub async fn ".len()..];
        let name: String = rest.chars().take_while(|c| *c != '(').collect();
        let params = rest.split(") -> ").next().unwrap_or_default();
        let mut args = BTreeMap::new();
        for (i, _) in params.match_indices(": Arg<") {
            let arg: String = params[..i]
                .chars()
                .rev()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            let optional = params[i..].starts_with(": Arg<Option<");
            args.insert(arg, optional);
        }
        commands.insert(name, args);
    }
    commands
}

/// The argument keys each wrapper in api.ts sends (`invoke<T>('name', { a, b })`).
fn wrapper_args(api: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut wrappers = BTreeMap::new();
    for call in api.split("invoke<").skip(1) {
        let Some(open) = call.find(">('") else {
            continue;
        };
        let after = &call[open + 3..];
        let name: String = after.chars().take_while(|c| *c != '\'').collect();
        let tail = &after[name.len() + 1..];
        let keys = match tail.strip_prefix(", {") {
            Some(object) => object
                .split('}')
                .next()
                .unwrap_or_default()
                .split(',')
                .map(|k| k.split(':').next().unwrap_or_default().trim().to_owned())
                .filter(|k| !k.is_empty())
                .collect(),
            None => BTreeSet::new(),
        };
        wrappers.insert(name, keys);
    }
    wrappers
}

/// Argument names are strings on the JavaScript side: a renamed or added argument must be
/// renamed or added in api.ts too, or the window would send what no command reads.
#[test]
fn each_wrapper_sends_the_arguments_its_command_reads() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let api = std::fs::read_to_string(root.join("../ui/src/api.ts"))?;
    let commands = command_args(&commands_source()?);
    let wrappers = wrapper_args(&api);
    assert_eq!(commands.len(), COMMANDS.len(), "{:?}", commands.keys());
    for (name, args) in &commands {
        let sent = wrappers
            .get(name)
            .ok_or_else(|| format!("{name} has no wrapper in ui/src/api.ts"))?;
        let read: BTreeSet<String> = args.keys().cloned().collect();
        let unread: Vec<_> = sent.difference(&read).collect();
        assert!(
            unread.is_empty(),
            "api.ts sends {unread:?} to {name}, which reads {read:?}"
        );
        let missing: Vec<_> = args
            .iter()
            .filter(|(arg, optional)| !**optional && !sent.contains(*arg))
            .map(|(arg, _)| arg)
            .collect();
        assert!(
            missing.is_empty(),
            "api.ts does not send {missing:?} to {name}"
        );
    }
    Ok(())
}

#[test]
fn every_command_is_granted_and_wrapped() -> TestResult {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let capability = std::fs::read_to_string(root.join("capabilities/main-window.json"))?;
    let main = std::fs::read_to_string(root.join("src/main.rs"))?;
    let api = std::fs::read_to_string(root.join("../ui/src/api.ts"))?;
    for name in COMMANDS {
        let permission = format!("\"allow-{}\"", name.replace('_', "-"));
        assert!(
            capability.contains(&permission),
            "{permission} missing in the capability"
        );
        assert!(
            main.contains(&format!("commands::{name},"))
                || main.contains(&format!("commands::{name}\n")),
            "{name} not registered in main.rs"
        );
        assert!(
            api.contains(&format!("'{name}'")),
            "{name} has no wrapper in ui/src/api.ts"
        );
    }
    Ok(())
}

#[test]
fn drafts_and_patches_refuse_unknown_fields() {
    let parsed = serde_json::from_str::<NoteDraft>(r#"{"title": "a", "colour": "red"}"#);
    assert!(parsed.is_err());
    let patch = serde_json::from_str::<NotePatch>(r#"{"body": "b", "colour": "red"}"#);
    assert!(patch.is_err());
}

#[test]
fn resolutions_parse_as_the_merge_view_sends_them() -> TestResult {
    let mine: Resolution = serde_json::from_str(r#"{"kind": "mine"}"#)?;
    assert_eq!(mine, Resolution::Mine);
    let text: Resolution = serde_json::from_str(r#"{"kind": "text", "text": "merged"}"#)?;
    assert_eq!(text, Resolution::Text("merged".into()));
    assert!(serde_json::from_str::<Resolution>(r#"{"kind": "both"}"#).is_err());
    Ok(())
}

#[test]
fn an_unavailable_store_answers_with_its_code() {
    let state = AppState::Unavailable {
        code: "data_dir_in_use",
        message: "in use".into(),
    };
    let err = state
        .app()
        .err()
        .map(|e| (e.code().to_owned(), e.to_string()));
    assert_eq!(
        err,
        Some(("data_dir_in_use".to_owned(), "in use".to_string()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_doctor_needs_an_account_and_says_so() -> TestResult {
    let dir = tempfile::tempdir()?;
    let store = Arc::new(Store::open(dir.path())?);
    let app = Outpost::start(store);
    let err = doctor_on(&app, false).await.err().ok_or("signed out")?;
    assert_eq!(err.code(), "not_signed_in");
    app.shutdown(Duration::from_secs(5)).await;
    Ok(())
}
