//! Every field a record of each entity has: its name, how it merges, the value a record without
//! it counts as, and the rule a value must meet. Defined once, here: the devices (the store, the
//! merge, the running digest, the doctor) and the server (its checks, its digest) read it. A new
//! field is one entry in [`NOTE`], [`NOTEBOOK`] or [`PREF`] (and a column in the device's
//! schema). The order of each list is the order the digest hashes them in: append, never reorder.

use crate::mutation::Entity;
use crate::{MAX_BODY_BYTES, MAX_TITLE_BYTES};
use serde_json::Value;

/// The most tags a note has.
pub const MAX_TAGS: usize = 64;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 64;
/// The longest notebook name, in characters.
pub const MAX_NOTEBOOK_NAME_CHARS: usize = 200;
/// The largest preference value, in bytes of JSON.
pub const MAX_PREF_VALUE_BYTES: usize = 4096;
/// The longest attachment file name, in bytes.
pub const MAX_FILE_NAME_BYTES: usize = 255;
/// The longest media type (`image/jpeg`), in bytes.
pub const MAX_MEDIA_TYPE_BYTES: usize = 127;
/// The largest thumbnail, as the `data:` URL the record carries (a small JPEG or PNG).
pub const MAX_THUMBNAIL_BYTES: usize = 48 * 1024;
/// The widest or tallest image, in pixels, a record may name.
pub const MAX_PIXELS: u64 = 1 << 20;
/// The largest blob any record may name (a server sets its own, lower limit:
/// [`crate::blobs::Limits`]).
pub const MAX_BLOB_BYTES: u64 = 1 << 40;
/// The `data:` URL prefixes a thumbnail may have: images a web view shows and cannot run.
pub const THUMBNAIL_PREFIXES: &[&str] = &["data:image/jpeg;base64,", "data:image/png;base64,"];

/// What a value must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// Text of at most `max_bytes` bytes.
    Text { max_bytes: usize },
    /// `true` or `false`.
    Flag,
    /// A notebook's id (a UUID) or `null`.
    NotebookRef,
    /// At most [`MAX_TAGS`] tags of 1 to [`MAX_TAG_CHARS`] characters.
    Tags,
    /// A notebook name: 1 to [`MAX_NOTEBOOK_NAME_CHARS`] characters, not only spaces.
    Name,
    /// Any JSON of at most [`MAX_PREF_VALUE_BYTES`] bytes.
    Json,
    /// A note's id (a UUID).
    NoteRef,
    /// A file name: 1 to [`MAX_FILE_NAME_BYTES`] bytes, no path separator or control character.
    FileName,
    /// A media type, `type/subtype`, of at most [`MAX_MEDIA_TYPE_BYTES`] bytes.
    MediaType,
    /// A size in bytes, 0 to [`MAX_BLOB_BYTES`].
    Bytes,
    /// A blob's name: 64 lowercase hex digits (SHA-256).
    Sha256,
    /// An image's width or height in pixels (1 to [`MAX_PIXELS`]), or `null`.
    Pixels,
    /// Empty, or a `data:` URL of a JPEG or PNG of at most [`MAX_THUMBNAIL_BYTES`] bytes.
    Thumbnail,
}

/// How edits of a field made on two devices come together (DESIGN.md, "Conflicts").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Merge {
    /// The newer stamp wins.
    LastWriterWins,
    /// Three-way against the last version both sides had; overlapping edits are a conflict.
    ThreeWay,
}

/// One field of an entity.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub name: &'static str,
    pub rule: Rule,
    pub merge: Merge,
}

impl FieldSpec {
    const fn lww(name: &'static str, rule: Rule) -> Self {
        Self {
            name,
            rule,
            merge: Merge::LastWriterWins,
        }
    }

    /// The value a record without this field counts as.
    pub fn default_value(&self) -> Value {
        match self.rule {
            Rule::Text { .. }
            | Rule::Name
            | Rule::FileName
            | Rule::MediaType
            | Rule::Sha256
            | Rule::Thumbnail => Value::String(String::new()),
            Rule::Flag => Value::Bool(false),
            Rule::NotebookRef | Rule::Json | Rule::NoteRef | Rule::Pixels => Value::Null,
            Rule::Tags => Value::Array(Vec::new()),
            Rule::Bytes => Value::from(0u64),
        }
    }
}

/// A note's fields.
pub const NOTE: &[FieldSpec] = &[
    FieldSpec::lww("notebook_id", Rule::NotebookRef),
    FieldSpec::lww(
        "title",
        Rule::Text {
            max_bytes: MAX_TITLE_BYTES,
        },
    ),
    FieldSpec {
        name: "body",
        rule: Rule::Text {
            max_bytes: MAX_BODY_BYTES,
        },
        merge: Merge::ThreeWay,
    },
    FieldSpec::lww("tags", Rule::Tags),
    FieldSpec::lww("pinned", Rule::Flag),
    FieldSpec::lww("archived", Rule::Flag),
    FieldSpec::lww("deleted", Rule::Flag),
];

/// A notebook's fields.
pub const NOTEBOOK: &[FieldSpec] = &[
    FieldSpec::lww("name", Rule::Name),
    FieldSpec::lww("deleted", Rule::Flag),
];

/// A preference's one field.
pub const PREF: &[FieldSpec] = &[FieldSpec::lww("value", Rule::Json)];

/// An attachment's fields. Only `name`, `note_id` and `deleted` change after it is made; the
/// rest describe its blob.
pub const ATTACHMENT: &[FieldSpec] = &[
    FieldSpec::lww("note_id", Rule::NoteRef),
    FieldSpec::lww("name", Rule::FileName),
    FieldSpec::lww("media_type", Rule::MediaType),
    FieldSpec::lww("size", Rule::Bytes),
    FieldSpec::lww("sha256", Rule::Sha256),
    FieldSpec::lww("width", Rule::Pixels),
    FieldSpec::lww("height", Rule::Pixels),
    FieldSpec::lww("thumbnail", Rule::Thumbnail),
    FieldSpec::lww("deleted", Rule::Flag),
];

/// The fields of `entity`, in digest order.
pub fn of(entity: Entity) -> &'static [FieldSpec] {
    match entity {
        Entity::Note => NOTE,
        Entity::Notebook => NOTEBOOK,
        Entity::Pref => PREF,
        Entity::Attachment => ATTACHMENT,
    }
}

/// The field `name` of `entity`, if it has one.
pub fn spec(entity: Entity, name: &str) -> Option<&'static FieldSpec> {
    of(entity).iter().find(|f| f.name == name)
}

/// Why a value does not meet its field's rule: a wrong kind of value, or one over its limit.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Problem {
    Invalid(String),
    TooLarge(String),
}

/// Whether `value` may be written to field `name` of `entity`.
pub fn check(entity: Entity, name: &str, value: &Value) -> Result<(), Problem> {
    let Some(spec) = spec(entity, name) else {
        return Err(Problem::Invalid(format!(
            "{} has no field {:?}",
            entity.as_str(),
            name.chars().take(80).collect::<String>()
        )));
    };
    let bad = |expected: &str| {
        Err(Problem::Invalid(format!(
            "{}.{name} must be {expected}",
            entity.as_str()
        )))
    };
    match spec.rule {
        Rule::Text { max_bytes } => match value.as_str() {
            Some(s) if s.len() <= max_bytes => Ok(()),
            Some(s) => Err(Problem::TooLarge(format!(
                "{name} is {} bytes; the limit is {max_bytes} bytes",
                s.len()
            ))),
            None => bad("text"),
        },
        Rule::Flag if value.is_boolean() => Ok(()),
        Rule::Flag => bad("true or false"),
        Rule::NotebookRef => match value {
            Value::Null => Ok(()),
            Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => Ok(()),
            _ => bad("a notebook id (UUID) or null"),
        },
        Rule::Tags => match value.as_array() {
            Some(tags)
                if tags.len() <= MAX_TAGS
                    && tags.iter().all(|t| {
                        t.as_str()
                            .is_some_and(|s| !s.is_empty() && s.chars().count() <= MAX_TAG_CHARS)
                    }) =>
            {
                Ok(())
            }
            _ => bad(&format!(
                "a list of at most {MAX_TAGS} tags of 1 to {MAX_TAG_CHARS} characters"
            )),
        },
        Rule::Name => match value.as_str() {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= MAX_NOTEBOOK_NAME_CHARS => {
                Ok(())
            }
            _ => bad(&format!(
                "a name of 1 to {MAX_NOTEBOOK_NAME_CHARS} characters"
            )),
        },
        Rule::Json if value.to_string().len() <= MAX_PREF_VALUE_BYTES => Ok(()),
        Rule::Json => bad(&format!("at most {MAX_PREF_VALUE_BYTES} bytes of JSON")),
        Rule::NoteRef => match value {
            Value::String(s) if uuid::Uuid::parse_str(s).is_ok() => Ok(()),
            _ => bad("a note id (UUID)"),
        },
        Rule::FileName => match value.as_str() {
            Some(s) if is_file_name(s) => Ok(()),
            _ => bad(&format!(
                "a file name of 1 to {MAX_FILE_NAME_BYTES} bytes without / \\ or control characters"
            )),
        },
        Rule::MediaType => match value.as_str() {
            Some(s) if is_media_type(s) => Ok(()),
            _ => bad("a media type such as image/jpeg"),
        },
        Rule::Bytes => match value.as_u64() {
            Some(n) if n <= MAX_BLOB_BYTES => Ok(()),
            _ => bad(&format!("a size from 0 to {MAX_BLOB_BYTES} bytes")),
        },
        Rule::Sha256 => match value.as_str() {
            Some(s) if crate::blobs::BlobHash::parse(s).is_ok() => Ok(()),
            _ => bad("a SHA-256 in 64 lowercase hex digits"),
        },
        Rule::Pixels => match value {
            Value::Null => Ok(()),
            v if v.as_u64().is_some_and(|n| (1..=MAX_PIXELS).contains(&n)) => Ok(()),
            _ => bad(&format!("null or 1 to {MAX_PIXELS} pixels")),
        },
        Rule::Thumbnail => match value.as_str() {
            Some("") => Ok(()),
            Some(s) if s.len() > MAX_THUMBNAIL_BYTES => Err(Problem::TooLarge(format!(
                "{name} is {} bytes; the limit is {MAX_THUMBNAIL_BYTES} bytes",
                s.len()
            ))),
            Some(s) if is_thumbnail(s) => Ok(()),
            _ => bad("empty or a data: URL of a JPEG or PNG"),
        },
    }
}

fn is_file_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_FILE_NAME_BYTES
        && s != "."
        && s != ".."
        && !s.chars().any(|c| c == '/' || c == '\\' || c.is_control())
}

fn is_media_type(s: &str) -> bool {
    let token = |t: &str| {
        !t.is_empty()
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
    };
    s.len() <= MAX_MEDIA_TYPE_BYTES
        && s.split_once('/')
            .is_some_and(|(kind, sub)| token(kind) && token(sub))
}

fn is_thumbnail(s: &str) -> bool {
    THUMBNAIL_PREFIXES.iter().any(|p| {
        s.strip_prefix(p).is_some_and(|data| {
            !data.is_empty()
                && data
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=')
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn each_rule_takes_what_it_should_and_says_why_it_refuses_the_rest() {
        let ok = |e, n, v: Value| check(e, n, &v).is_ok();
        assert!(ok(Entity::Note, "title", json!("Pump 4")));
        assert!(matches!(
            check(Entity::Note, "title", &json!("x".repeat(MAX_TITLE_BYTES + 1))),
            Err(Problem::TooLarge(m)) if m.contains("the limit is 4096 bytes")
        ));
        assert!(!ok(Entity::Note, "title", json!(5)));
        assert!(ok(Entity::Note, "notebook_id", Value::Null));
        assert!(!ok(Entity::Note, "notebook_id", json!("not a uuid")));
        assert!(ok(Entity::Note, "tags", json!(["pump", "site"])));
        assert!(!ok(Entity::Note, "tags", json!([""])));
        assert!(!ok(Entity::Note, "tags", json!(vec!["t"; MAX_TAGS + 1])));
        assert!(ok(Entity::Notebook, "name", json!("Sites")));
        assert!(!ok(Entity::Notebook, "name", json!("   ")));
        assert!(ok(Entity::Pref, "value", json!({"px": 14})));
        assert!(!ok(
            Entity::Pref,
            "value",
            json!("x".repeat(MAX_PREF_VALUE_BYTES))
        ));
        let hash = "ab".repeat(32);
        assert!(ok(Entity::Attachment, "sha256", json!(hash)));
        assert!(!ok(Entity::Attachment, "sha256", json!("AB".repeat(32))));
        assert!(ok(Entity::Attachment, "name", json!("pump 4.jpg")));
        assert!(!ok(Entity::Attachment, "name", json!("../etc/passwd")));
        assert!(!ok(Entity::Attachment, "name", json!("")));
        assert!(ok(Entity::Attachment, "media_type", json!("image/svg+xml")));
        assert!(!ok(Entity::Attachment, "media_type", json!("image")));
        assert!(ok(Entity::Attachment, "width", Value::Null));
        assert!(!ok(Entity::Attachment, "width", json!(0)));
        assert!(ok(Entity::Attachment, "size", json!(20_000_000)));
        assert!(!ok(Entity::Attachment, "size", json!(-1)));
        assert!(ok(
            Entity::Attachment,
            "thumbnail",
            json!("data:image/jpeg;base64,/9j/4A==")
        ));
        assert!(!ok(
            Entity::Attachment,
            "thumbnail",
            json!("data:text/html;base64,PHNjcmlwdD4=")
        ));
        assert!(!ok(
            Entity::Attachment,
            "thumbnail",
            json!("data:image/png;base64,\"><script>")
        ));
        assert_eq!(
            check(Entity::Note, "colour", &json!("red")),
            Err(Problem::Invalid("note has no field \"colour\"".into()))
        );
    }

    #[test]
    fn only_a_note_body_merges_three_way_and_defaults_are_empty() {
        let three_way: Vec<_> = [
            Entity::Note,
            Entity::Notebook,
            Entity::Pref,
            Entity::Attachment,
        ]
        .into_iter()
        .flat_map(|e| of(e).iter())
        .filter(|f| f.merge == Merge::ThreeWay)
        .map(|f| f.name)
        .collect();
        assert_eq!(three_way, ["body"]);
        assert_eq!(
            spec(Entity::Note, "tags").map(FieldSpec::default_value),
            Some(json!([]))
        );
        assert_eq!(
            spec(Entity::Note, "notebook_id").map(FieldSpec::default_value),
            Some(Value::Null)
        );
    }
}
