use super::*;
use crate::store::test_support::temp_store;
use crate::{ListQuery, Note, NoteView};
use std::collections::BTreeSet;

/// Every note not in the Trash as (notebook name, title, body, tags, pinned, archived).
type Seen = (Option<String>, String, String, Vec<String>, bool, bool);

fn everything(store: &Store) -> BTreeSet<Seen> {
    let names: HashMap<NotebookId, String> = store
        .list_notebooks()
        .expect("notebooks")
        .into_iter()
        .map(|nb| (nb.id, nb.name))
        .collect();
    let mut out = BTreeSet::new();
    for view in [NoteView::Active, NoteView::Archived] {
        let page = store
            .list_notes(&ListQuery {
                view,
                limit: 1000,
                ..Default::default()
            })
            .expect("list");
        for summary in page.items {
            let n = store.get_note(summary.id).expect("note");
            out.insert((
                n.notebook_id.map(|nb| names[&nb].clone()),
                n.title,
                n.body,
                n.tags,
                n.pinned,
                n.archived,
            ));
        }
    }
    out
}

fn add(store: &Store, notebook: Option<NotebookId>, title: &str, body: &str) -> Note {
    store
        .create_note(NoteDraft {
            notebook_id: notebook,
            title: title.into(),
            body: body.into(),
            ..Default::default()
        })
        .expect("create")
}

/// The files under `dir` (relative, `/`-separated), hidden ones left out.
fn files(dir: &Path) -> BTreeSet<String> {
    let mut skipped = Vec::new();
    walk(dir, &mut skipped)
        .expect("walk")
        .into_iter()
        .map(|f| {
            f.path
                .strip_prefix(dir)
                .expect("under dir")
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect()
}

#[test]
fn an_export_imported_into_a_fresh_store_gives_the_same_notes_and_again_into_the_first_nothing() {
    let (_a_dir, a) = temp_store();
    let visits = a.create_notebook("Site visits").expect("notebook").id;
    let odd = a.create_notebook("Plans/2025: Q1").expect("notebook").id;
    let pump = a
        .create_note(NoteDraft {
            notebook_id: Some(visits),
            title: "Pump \"4\"".into(),
            body: "# Pump 4\r\n\r\nSeal leaking.\r\n".into(),
            tags: vec!["pumps".into(), "urgent".into()],
            pinned: true,
        })
        .expect("create");
    let archived = add(
        &a,
        Some(odd),
        "Budget",
        "---\nnot: front matter\n---\nnumbers",
    );
    a.update_note(
        archived.id,
        NotePatch {
            archived: Some(true),
            ..Default::default()
        },
    )
    .expect("archive");
    add(&a, None, "", "no title, ünïcödé ✓");
    add(&a, None, "Groceries", "");
    let trashed = add(&a, None, "Old", "gone");
    a.trash_note(trashed.id).expect("trash");

    let out_dir = tempfile::tempdir().expect("dir");
    let export_dir = out_dir.path().join("export");
    let export = a.export_markdown(&export_dir).expect("export");
    assert_eq!((export.notes, export.notebooks), (4, 2));
    assert_eq!(
        files(&export_dir),
        BTreeSet::from([
            "Groceries.md".to_owned(),
            "Untitled.md".to_owned(),
            "Plans_2025_ Q1/Budget.md".to_owned(),
            "Site visits/Pump _4_.md".to_owned(),
        ])
    );
    let text = std::fs::read_to_string(export_dir.join("Site visits/Pump _4_.md")).expect("read");
    assert!(
        text.starts_with(&format!(
            "---\nid: \"{}\"\ntitle: \"Pump \\\"4\\\"\"\nnotebook: \"Site visits\"\n\
             tags: [\"pumps\",\"urgent\"]\npinned: true\narchived: false\ncreated: \"",
            pump.id
        )),
        "{text}"
    );
    assert!(
        text.ends_with("---\n# Pump 4\r\n\r\nSeal leaking.\r\n"),
        "{text}"
    );

    let (_b_dir, b) = temp_store();
    let import = b.import_markdown(&export_dir).expect("import");
    assert_eq!(import.skipped, []);
    assert_eq!(import.imported, 4);
    assert_eq!(everything(&b), everything(&a));
    assert_eq!(
        b.outbox(100)
            .expect("outbox")
            .iter()
            .filter(|e| e.name == "note.put")
            .count(),
        4,
        "each imported note is queued to sync, archived ones in the same entry"
    );

    let again = a.import_markdown(&export_dir).expect("re-import");
    assert_eq!(again.imported, 0);
    assert_eq!(again.skipped.len(), 4);
    assert!(again.skipped[0].reason.contains("already in Outpost"));
    assert_eq!(a.count_notes(&ListQuery::default()).expect("count"), 3);
}

/// A name any of Windows, macOS and Linux would refuse, hide or mangle.
fn portable(name: &str) -> bool {
    let stem = name.strip_suffix(".md").unwrap_or(name);
    let base = stem.split('.').next().unwrap_or_default().trim_end();
    !name
        .chars()
        .any(|c| c.is_control() || "/\\:*?\"<>|".contains(c))
        && !name.starts_with('.')
        && !stem.ends_with(['.', ' '])
        && !["CON", "PRN", "AUX", "NUL", "COM1", "LPT1"]
            .iter()
            .any(|r| r.eq_ignore_ascii_case(base))
        && stem.chars().count() <= 110
        && name.len() < 255
}

#[test]
fn awkward_titles_make_valid_unique_file_names() {
    let (_dir, store) = temp_store();
    let titles = [
        "Pump 4",
        "pump 4",
        "Pump 4",
        "a/b",
        "a:b",
        "CON",
        "con.txt",
        "",
        "   ",
        "..",
        ".env",
        "trailing. ",
        "tab\there\nnewline",
        "why?",
        "why*",
        &"long ".repeat(100),
        &"ü".repeat(300),
        "Untitled",
    ];
    for t in titles {
        add(&store, None, t, t);
    }
    let dir = tempfile::tempdir().expect("dir");
    let export = store.export_markdown(dir.path()).expect("export");
    assert_eq!(export.notes, titles.len());
    let names = files(dir.path());
    assert_eq!(names.len(), titles.len(), "one file per note: {names:?}");
    let lower: BTreeSet<String> = names.iter().map(|n| n.to_lowercase()).collect();
    assert_eq!(lower.len(), names.len(), "unique ignoring case: {names:?}");
    for name in &names {
        assert!(portable(name), "{name:?}");
    }
    for want in [
        "Pump 4.md",
        "pump 4 (2).md",
        "Pump 4 (3).md",
        "CON_.md",
        "con_.txt.md",
        "Untitled.md",
        "Untitled (2).md",
        "a_b.md",
        "a_b (2).md",
    ] {
        assert!(names.contains(want), "{want} in {names:?}");
    }
    // Every one of them reads back (a dot-file would have been skipped as hidden).
    let (_d2, fresh) = temp_store();
    assert_eq!(
        fresh.import_markdown(dir.path()).expect("import").imported,
        titles.len()
    );
}

#[test]
fn a_too_large_or_binary_file_is_skipped_with_its_reason_and_the_rest_imported() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::write(d.join("ok.md"), "fine").expect("write");
    std::fs::write(d.join("notes.TXT"), "plain text").expect("write");
    std::fs::write(d.join("huge.md"), vec![b'x'; 11 * 1024 * 1024]).expect("write");
    std::fs::write(d.join("latin1.md"), b"caf\xe9 cr\xe8me").expect("write");
    std::fs::write(d.join("photo.png"), [0x89, b'P', b'N', b'G']).expect("write");
    std::fs::write(d.join(".hidden.md"), "secret").expect("write");
    std::fs::create_dir(d.join(".obsidian")).expect("mkdir");
    std::fs::write(d.join(".obsidian/app.md"), "settings").expect("write");

    let (_s, store) = temp_store();
    let import = store.import_markdown(d).expect("import");
    assert_eq!(import.imported, 2);
    let reasons: HashMap<String, String> = import
        .skipped
        .iter()
        .map(|s| {
            let name = Path::new(&s.path).file_name().expect("name");
            (name.to_string_lossy().into_owned(), s.reason.clone())
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(
        reasons["huge.md"].starts_with("too large: 11534336 bytes"),
        "{reasons:?}"
    );
    assert_eq!(reasons["latin1.md"], "not UTF-8 text");
    let titles: BTreeSet<Seen> = everything(&store);
    assert_eq!(
        titles.iter().map(|s| s.1.as_str()).collect::<Vec<_>>(),
        ["notes", "ok"],
        "titles from the file names"
    );
}

#[test]
fn obsidian_style_front_matter_headings_and_folders() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::create_dir_all(d.join("Projects/Pumps/2025")).expect("mkdir");
    std::fs::write(
        d.join("Projects/Pumps/2025/north.md"),
        "---\ntitle: North station\ntags:\n  - pumps\n  - \"#field\"\naliases: [N]\n\
         pinned: yes\narchived: true\ncreated: 2024-01-02\n---\nCheck the seal.\n",
    )
    .expect("write");
    std::fs::write(
        d.join("Projects/ideas.markdown"),
        "---\ntags: [idea, 'long term']\n---\n\nSome intro\n# The Big Idea\nbody\n",
    )
    .expect("write");
    std::fs::write(d.join("loose.md"), "just text").expect("write");

    let (_s, store) = temp_store();
    let existing = store.create_notebook("projects").expect("notebook");
    let import = store.import_markdown(d).expect("import");
    assert_eq!((import.imported, import.skipped.len()), (3, 0));
    let projects = Some("projects".to_owned());
    assert_eq!(
        everything(&store),
        BTreeSet::from([
            (
                projects.clone(),
                "North station".to_owned(),
                "Check the seal.\n".to_owned(),
                vec!["pumps".to_owned(), "field".to_owned()],
                true,
                true,
            ),
            (
                projects,
                "The Big Idea".to_owned(),
                "\nSome intro\n# The Big Idea\nbody\n".to_owned(),
                vec!["idea".to_owned(), "long term".to_owned()],
                false,
                false,
            ),
            (
                None,
                "loose".to_owned(),
                "just text".to_owned(),
                vec![],
                false,
                false
            ),
        ])
    );
    assert_eq!(
        store.list_notebooks().expect("notebooks"),
        [crate::Notebook {
            note_count: 2,
            ..existing
        }],
        "a subfolder of a notebook folder is the same notebook, found by name ignoring case"
    );
}

#[test]
fn a_missing_folder_is_a_clear_error() {
    let (_s, store) = temp_store();
    let dir = tempfile::tempdir().expect("dir");
    let missing = dir.path().join("no such folder");
    let err = store.import_markdown(&missing).expect_err("missing");
    assert_eq!(err.code(), "not_found");
    assert_eq!(
        err.to_string(),
        format!("folder not found: {}", missing.display())
    );
    let file = dir.path().join("file.md");
    std::fs::write(&file, "x").expect("write");
    let err = store.import_markdown(&file).expect_err("a file");
    assert_eq!(err.code(), "invalid_input");
    assert!(err.to_string().contains("is a file, not a folder"), "{err}");
}

#[test]
fn an_export_never_overwrites_files_it_did_not_write() {
    let (_s, store) = temp_store();
    let pump = add(&store, None, "Pump 4", "v1");

    let foreign = tempfile::tempdir().expect("dir");
    std::fs::write(foreign.path().join("Pump 4.md"), "my own file").expect("write");
    let err = store.export_markdown(foreign.path()).expect_err("refused");
    assert_eq!(err.code(), "folder_not_empty");
    assert!(
        err.to_string()
            .contains(&foreign.path().display().to_string()),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(foreign.path().join("Pump 4.md")).expect("read"),
        "my own file"
    );

    // An empty folder (but for what the OS leaves) is fine, and so is a later export into it.
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::write(d.join(".DS_Store"), "").expect("write");
    store.export_markdown(d).expect("first export");
    std::fs::write(d.join("Pump 5.md"), "dropped in by the user").expect("write");
    store
        .update_note(
            pump.id,
            NotePatch {
                body: Some("v2".into()),
                ..Default::default()
            },
        )
        .expect("edit");
    add(&store, None, "Pump 5", "a note");
    let again = store.export_markdown(d).expect("second export");
    assert_eq!(again.notes, 2);
    assert!(
        std::fs::read_to_string(d.join("Pump 4.md"))
            .expect("read")
            .ends_with("---\nv2"),
        "its own earlier file is replaced"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("Pump 5.md")).expect("read"),
        "dropped in by the user"
    );
    assert!(d.join("Pump 5 (2).md").is_file());
}

#[cfg(unix)]
#[test]
fn a_link_loop_is_not_followed_forever() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    std::fs::create_dir(d.join("Work")).expect("mkdir");
    std::fs::write(d.join("Work/a.md"), "a").expect("write");
    std::os::unix::fs::symlink(d, d.join("Work/loop")).expect("symlink");
    let (_s, store) = temp_store();
    let import = store.import_markdown(d).expect("import");
    assert_eq!(import.imported, 1);
    assert_eq!(import.skipped.len(), 1);
    assert!(
        import.skipped[0].reason.contains("not followed"),
        "{import:?}"
    );
}
