use super::*;
use crate::NoteDraft;
use crate::store::test_support::{ack_all, temp_store};
use outpost_protocol::api::{Cursor, Record, Version};

fn note(store: &Store, body: &str) -> NoteId {
    store
        .create_note(NoteDraft {
            title: "Pump 4".into(),
            body: body.into(),
            ..NoteDraft::default()
        })
        .expect("note")
        .id
}

/// A real 640x480 JPEG.
fn tiny_jpeg() -> Vec<u8> {
    let img = image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let mut out = Vec::new();
    img.write_with_encoder(image::codecs::jpeg::JpegEncoder::new_with_quality(
        &mut out, 80,
    ))
    .expect("jpeg");
    out
}

#[test]
fn attaching_keeps_the_bytes_here_links_them_in_the_note_and_queues_both_in_one_write() {
    let (_dir, store) = temp_store();
    let id = note(&store, "Leak at the seal.");
    ack_all(&store);
    let photo = tiny_jpeg();
    let a = store
        .attach_bytes(id, "pump 4 [seal].jpg", &photo)
        .expect("attach");

    // What the user sees: the photo in the note, its size, "on this device only".
    assert_eq!(a.media_type, "image/jpeg");
    assert_eq!((a.width, a.height), (Some(640), Some(480)));
    assert!(
        a.thumbnail
            .as_deref()
            .is_some_and(|t| t.starts_with("data:image/jpeg;base64,")),
        "a thumbnail rides in the record"
    );
    assert_eq!(a.size, photo.len() as u64);
    assert_eq!(a.state, AttachmentState::LocalOnly);
    let body = store.get_note(id).expect("note").body;
    assert_eq!(
        body,
        format!(
            "Leak at the seal.\n![pump 4 \\[seal\\].jpg](attachment:{})\n",
            a.id
        )
    );
    assert_eq!(
        std::fs::read(store.blob_files().path(&a.sha256)).expect("blob"),
        photo
    );

    // Both changes wait to go: the record and the note's new body.
    let queued: Vec<(Entity, String)> = store
        .outbox(100)
        .expect("outbox")
        .into_iter()
        .map(|e| (e.entity, e.entity_id))
        .collect();
    assert!(queued.contains(&(Entity::Attachment, a.id.to_string())));
    assert!(queued.contains(&(Entity::Note, id.to_string())));
    let q = store.blob_queue().expect("queue");
    assert_eq!((q.uploads, q.bytes_to_upload), (1, photo.len() as u64));

    // The same photo again, on another note: one file, one upload.
    let other = note(&store, "");
    let again = store
        .attach_bytes(other, "copy.jpg", &photo)
        .expect("again");
    assert_eq!(again.sha256, a.sha256);
    assert_eq!(store.blob_queue().expect("queue").uploads, 1);
    assert_eq!(store.list_attachments(None).expect("all").len(), 2);
    assert_eq!(store.list_attachments(Some(other)).expect("one").len(), 1);
}

#[test]
fn a_missing_note_or_a_file_over_the_servers_limit_is_refused_before_anything_is_copied() {
    let (_dir, store) = temp_store();
    let err = store
        .attach_bytes(NoteId::new(), "x.txt", b"x")
        .expect_err("no note");
    assert_eq!(err.code(), "not_found");
    let id = note(&store, "");
    store
        .set_blob_limits(&Limits {
            max_blob_bytes: 10,
            chunk_bytes: 1024,
            quota_bytes: None,
            used_bytes: 0,
        })
        .expect("limits");
    let err = store
        .attach_bytes(id, "big.bin", &[0u8; 11])
        .expect_err("too big");
    assert!(
        err.to_string()
            .contains("big.bin is 11 bytes; the sync server takes files up to 10 bytes"),
        "{err}"
    );
    assert!(store.list_attachments(None).expect("list").is_empty());
    assert!(
        store.outbox(10).expect("outbox").len() == 1,
        "only the note"
    );
}

#[test]
fn removing_an_attachment_takes_its_link_out_and_syncs_the_removal() {
    let (_dir, store) = temp_store();
    let id = note(&store, "Before");
    let a = store
        .attach_bytes(id, "report.pdf", b"%PDF-1.4")
        .expect("a");
    assert_eq!(a.markdown(), format!("[report.pdf](attachment:{})", a.id));
    ack_all(&store);
    store.remove_attachment(a.id).expect("remove");
    assert_eq!(store.get_note(id).expect("note").body, "Before\n");
    assert!(store.list_attachments(Some(id)).expect("list").is_empty());
    let entries = store.outbox_for(&a.id.to_string()).expect("outbox");
    assert_eq!(entries.len(), 1);
    assert_eq!(
        entries[0].fields.get("deleted").map(|c| &c.value),
        Some(&Value::Bool(true))
    );
    // Removed, it is not sent: nothing refers to it any more.
    assert!(store.next_upload(i64::MAX).expect("next").is_none());
}

fn record_of(a: &Attachment, version: i64, extra: &[(&str, Value)]) -> Record {
    let stamp = outpost_protocol::Stamp {
        physical_ms: 1_733_382_405_123,
        counter: 0,
        node: outpost_protocol::ClientId::new(),
    };
    let mut fields = Fields::new();
    let mut put = |k: &str, v: Value| {
        fields.insert(k.to_owned(), FieldChange { value: v, stamp });
    };
    put("note_id", Value::from(a.note_id.to_string()));
    put("name", Value::from(a.name.clone()));
    put("media_type", Value::from(a.media_type.clone()));
    put("size", Value::from(a.size));
    put("sha256", Value::from(a.sha256.to_string()));
    put("width", Value::Null);
    put("height", Value::Null);
    put("thumbnail", Value::from(""));
    put("deleted", Value::Bool(false));
    for (k, v) in extra {
        put(k, v.clone());
    }
    Record {
        entity: Entity::Attachment,
        id: a.id.to_string(),
        version: Version(version),
        cursor: Cursor(version),
        purged: false,
        fields,
    }
}

#[test]
fn an_attachment_from_another_device_is_listed_as_not_downloaded_until_asked_for() {
    let (_a_dir, a_store) = temp_store();
    let id = note(&a_store, "");
    let a = a_store
        .attach_bytes(id, "seal.jpg", &tiny_jpeg())
        .expect("a");

    let (_b_dir, b) = temp_store();
    b.apply_pull_page(&[record_of(&a, 3, &[])], Cursor(3))
        .expect("apply");
    let got = b.get_attachment(a.id).expect("on b");
    assert_eq!(got.state, AttachmentState::NotDownloaded { wanted: false });
    assert_eq!(got.name, "seal.jpg");
    assert!(!b.blob_files().has(&a.sha256));
    assert!(b.want_attachment(a.id).expect("want"));
    assert_eq!(
        b.get_attachment(a.id).expect("on b").state,
        AttachmentState::NotDownloaded { wanted: true }
    );
    assert_eq!(
        b.next_download(i64::MAX).expect("next").map(|(h, _)| h),
        Some(a.sha256.clone())
    );

    // A device that wants every attachment asks for the next one at once.
    let (_c_dir, c) = temp_store();
    c.set_pref(crate::prefs::DOWNLOAD_ALL_ATTACHMENTS, Value::Bool(true))
        .expect("pref");
    c.apply_pull_page(&[record_of(&a, 3, &[])], Cursor(3))
        .expect("apply");
    assert_eq!(
        c.get_attachment(a.id).expect("on c").state,
        AttachmentState::NotDownloaded { wanted: true }
    );
}

#[test]
fn a_rename_here_and_one_from_the_server_meet_by_last_writer_wins_and_the_digest_keeps_up() {
    let (_dir, store) = temp_store();
    let id = note(&store, "");
    let a = store.attach_bytes(id, "a.txt", b"text").expect("a");
    ack_all(&store);
    // Nothing of it waits here: the server's copy is the one that counts.
    let theirs = record_of(&a, 2, &[("name", Value::from("renamed.txt"))]);
    store.apply_pull_page(&[theirs], Cursor(2)).expect("apply");
    assert_eq!(store.get_attachment(a.id).expect("a").name, "renamed.txt");
    let running = store.local_digest().expect("running").buckets;
    let full = store.full_digest_buckets().expect("full");
    assert_eq!(running, full);
}

#[test]
fn a_link_in_running_text_goes_alone_and_a_line_of_its_own_goes_whole() {
    let id: AttachmentId = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b".parse().expect("id");
    let body = format!(
        "Seal: see [report.pdf](attachment:{id}) for details.\n![pump.jpg](attachment:{id})\nEnd"
    );
    assert_eq!(
        without_reference(&body, &id),
        "Seal: see  for details.\nEnd"
    );
    assert_eq!(without_reference("no links", &id), "no links");
    let spaced = format!("Para one.\n\n![p.jpg](attachment:{id})\n\nPara two.");
    assert_eq!(without_reference(&spaced, &id), "Para one.\n\n\nPara two.");
}

#[test]
fn a_damaged_copy_here_is_refused_dropped_and_asked_for_again() {
    let (_dir, store) = temp_store();
    let id = note(&store, "");
    let a = store
        .attach_bytes(id, "log.txt", b"pressure 3 bar")
        .expect("a");
    std::fs::write(store.blob_files().path(&a.sha256), b"pressure 9 bar").expect("damage");
    let out = _dir.path().join("out.txt");
    let err = store
        .blob_files()
        .copy_verified(&a.sha256, &out)
        .expect_err("damaged");
    assert!(err.to_string().contains("is damaged"), "{err}");
    assert!(!out.exists(), "nothing half-written where the user looks");
    store.refetch_damaged(&a.sha256).expect("refetch");
    assert_eq!(
        store.get_attachment(a.id).expect("a").state,
        AttachmentState::NotDownloaded { wanted: true }
    );
}

#[test]
fn a_note_deleted_for_good_takes_its_attachments_with_it() {
    let (_dir, store) = temp_store();
    let id = note(&store, "");
    let a = store.attach_bytes(id, "log.txt", b"pressure").expect("a");
    ack_all(&store);
    store.trash_note(id).expect("trash");
    store.purge_note(id).expect("purge");
    assert!(store.list_attachments(None).expect("list").is_empty());
    let entries = store.outbox_for(&a.id.to_string()).expect("outbox");
    assert_eq!(
        entries
            .first()
            .and_then(|e| e.fields.get("deleted"))
            .map(|c| &c.value),
        Some(&Value::Bool(true)),
        "the removal goes to the server, so it can collect the file"
    );
}
