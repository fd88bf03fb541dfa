//! The front matter block at the top of a Markdown file: written by an export, read by an
//! import, which also takes the simple YAML that other apps write (Obsidian and the like).
//!
//! Written values are JSON scalars and arrays (`title: "Pump \"4\""`, `tags: ["a","b"]`), which
//! are valid YAML, so any YAML reader takes them, and reading them back needs no YAML library.
//! Reading understands the subset of YAML such files use in practice: `key: value` lines with
//! plain, single- or double-quoted scalars, `[a, b]` lists and `- a` item lists. A block with
//! any other line is not taken as front matter at all: the file's text then stays in the body
//! whole, rather than part of a note vanishing into a block the reader half understood.

use crate::model::Note;
use serde_json::Value as JsonValue;
use std::collections::HashMap;

/// What an import takes from a front matter block; each field is `None` when absent.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FrontMatter {
    pub id: Option<String>,
    pub title: Option<String>,
    pub notebook: Option<String>,
    pub tags: Option<Vec<String>>,
    pub pinned: Option<bool>,
    pub archived: Option<bool>,
}

/// The front matter an export writes for `note`, ending with its closing `---` line; the body
/// follows it verbatim. Times are RFC 3339 in UTC with milliseconds.
pub(crate) fn render(note: &Note, notebook: Option<&str>) -> String {
    let json = |s: &str| JsonValue::from(s).to_string();
    let mut out = String::with_capacity(256);
    out.push_str("---\n");
    out.push_str(&format!("id: {}\n", json(&note.id.to_string())));
    out.push_str(&format!("title: {}\n", json(&note.title)));
    if let Some(name) = notebook {
        out.push_str(&format!("notebook: {}\n", json(name)));
    }
    out.push_str(&format!("tags: {}\n", JsonValue::from(note.tags.clone())));
    out.push_str(&format!("pinned: {}\n", note.pinned));
    out.push_str(&format!("archived: {}\n", note.archived));
    out.push_str(&format!(
        "created: {}\n",
        json(&crate::dates::rfc3339(note.created_ms))
    ));
    out.push_str(&format!(
        "updated: {}\n",
        json(&crate::dates::rfc3339(note.updated_ms))
    ));
    out.push_str("---\n");
    out
}

/// A raw value: one scalar (still quoted as written) or the items of a `- a` list.
#[derive(Debug)]
enum Raw {
    Scalar(String),
    Items(Vec<String>),
}

/// Splits `text` into its front matter and the body after it. Text without a front matter
/// block, or with one this reader does not understand, is all body.
pub(crate) fn split(text: &str) -> (FrontMatter, &str) {
    let none = (FrontMatter::default(), text);
    let Some(first) = text.split_inclusive('\n').next() else {
        return none;
    };
    if first.trim_end() != "---" {
        return none;
    }
    let mut offset = first.len();
    let mut block = Vec::new();
    let mut body_start = None;
    for line in text[offset..].split_inclusive('\n') {
        offset += line.len();
        let bare = line.trim_end_matches(['\n', '\r']);
        if bare.trim_end() == "---" || bare.trim_end() == "..." {
            body_start = Some(offset);
            break;
        }
        block.push(bare);
    }
    let Some(body_start) = body_start else {
        return none;
    };
    match parse_block(&block) {
        Some(fields) => (interpret(&fields), &text[body_start..]),
        None => none,
    }
}

fn is_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | '.' | ' '))
}

/// The block's `key: value` lines, keys lowercased; `None` if a line is not of this subset.
fn parse_block(lines: &[&str]) -> Option<HashMap<String, Raw>> {
    let mut fields: HashMap<String, Raw> = HashMap::new();
    let mut current: Option<String> = None;
    for line in lines {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indented = line.starts_with([' ', '\t']);
        if indented || trimmed.starts_with('-') {
            // A list item or a nested value: it belongs to the key above it.
            let key = current.as_ref()?;
            if let Some(item) = trimmed.strip_prefix('-')
                && (item.is_empty() || item.starts_with([' ', '\t']))
            {
                let item = unquote(item.trim());
                match fields.get_mut(key) {
                    Some(Raw::Items(items)) => items.push(item),
                    Some(Raw::Scalar(s)) if s.is_empty() => {
                        fields.insert(key.clone(), Raw::Items(vec![item]));
                    }
                    // Nested structures under a scalar: not ours to read; ignored.
                    _ => {}
                }
            }
            continue;
        }
        let (key, value) = trimmed.split_once(':')?;
        let key = key.trim();
        if !is_key(key) {
            return None;
        }
        let key = key.to_lowercase();
        fields.insert(key.clone(), Raw::Scalar(value.trim().to_owned()));
        current = Some(key);
    }
    Some(fields)
}

/// A scalar without its quotes: JSON/YAML double quotes (with escapes) or YAML single quotes.
fn unquote(s: &str) -> String {
    if s.len() >= 2 && s.starts_with('"') && s.ends_with('"') {
        if let Ok(text) = serde_json::from_str::<String>(s) {
            return text;
        }
        return s[1..s.len() - 1].to_owned();
    }
    if s.len() >= 2 && s.starts_with('\'') && s.ends_with('\'') {
        return s[1..s.len() - 1].replace("''", "'");
    }
    s.to_owned()
}

/// `["a","b"]` (JSON), `[a, 'b c']` (YAML flow) or a plain `a, b` / `a b`.
fn list(raw: &Raw) -> Vec<String> {
    let s = match raw {
        Raw::Items(items) => return items.clone(),
        Raw::Scalar(s) => s.trim(),
    };
    if let Ok(items) = serde_json::from_str::<Vec<String>>(s) {
        return items;
    }
    let inner = s
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .unwrap_or(s);
    let parts: Vec<&str> = if inner.contains(',') || s.starts_with('[') {
        inner.split(',').collect()
    } else {
        inner.split_whitespace().collect()
    };
    parts
        .into_iter()
        .map(|p| unquote(p.trim()))
        .filter(|p| !p.is_empty())
        .collect()
}

fn scalar(raw: &Raw) -> Option<String> {
    match raw {
        Raw::Scalar(s) if !s.is_empty() && s != "~" && s != "null" => Some(unquote(s)),
        _ => None,
    }
}

fn flag(raw: &Raw) -> Option<bool> {
    match scalar(raw)?.to_ascii_lowercase().as_str() {
        "true" | "yes" | "on" => Some(true),
        "false" | "no" | "off" => Some(false),
        _ => None,
    }
}

fn interpret(fields: &HashMap<String, Raw>) -> FrontMatter {
    FrontMatter {
        id: fields.get("id").and_then(scalar),
        title: fields.get("title").and_then(scalar),
        notebook: fields.get("notebook").and_then(scalar),
        tags: fields.get("tags").or_else(|| fields.get("tag")).map(list),
        pinned: fields.get("pinned").and_then(flag),
        archived: fields.get("archived").and_then(flag),
    }
}

/// The text of the first `# Heading` line outside code fences, if any.
pub(crate) fn first_heading(body: &str) -> Option<String> {
    let mut fenced = false;
    for line in body.lines() {
        let t = line.trim_start();
        if t.starts_with("```") || t.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || line.len() - t.len() > 3 {
            continue;
        }
        if let Some(rest) = t.strip_prefix("# ") {
            let title = rest.trim().trim_end_matches('#').trim();
            if !title.is_empty() {
                return Some(title.to_owned());
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_back_what_it_writes_and_the_body_is_verbatim() {
        let text = "---\nid: \"x\"\ntitle: \"Pump \\\"4\\\": a\\nb\"\ntags: [\"a\",\"b c\"]\n\
                    pinned: true\narchived: false\n---\n---\nnot: front matter\n---\n";
        let (fm, body) = split(text);
        assert_eq!(fm.title.as_deref(), Some("Pump \"4\": a\nb"));
        assert_eq!(fm.tags, Some(vec!["a".to_owned(), "b c".to_owned()]));
        assert_eq!((fm.pinned, fm.archived), (Some(true), Some(false)));
        assert_eq!(body, "---\nnot: front matter\n---\n");
    }

    #[test]
    fn takes_obsidian_style_yaml() {
        let text = "---\r\ntitle: Site visit: north\r\ntags:\r\n  - pumps\r\n  - '#urgent'\r\n\
                    aliases: [a, b]\r\ncssclasses:\r\n  - wide\r\npinned: yes\r\n---\r\nBody\r\n";
        let (fm, body) = split(text);
        assert_eq!(fm.title.as_deref(), Some("Site visit: north"));
        assert_eq!(
            fm.tags,
            Some(vec!["pumps".to_owned(), "#urgent".to_owned()])
        );
        assert_eq!(fm.pinned, Some(true));
        assert_eq!(body, "Body\r\n");
        let (fm, _) = split("---\ntags: [a, 'b c']\n---\n");
        assert_eq!(fm.tags, Some(vec!["a".to_owned(), "b c".to_owned()]));
        let (fm, _) = split("---\ntags: a, b\n---\n");
        assert_eq!(fm.tags, Some(vec!["a".to_owned(), "b".to_owned()]));
    }

    #[test]
    fn text_that_only_looks_like_front_matter_stays_in_the_body() {
        for text in [
            "---\nJust a rule and a paragraph.\n---\nmore",
            "---\nno closing line: here\n",
            "--- \n",
            "plain text\n---\n",
        ] {
            let (fm, body) = split(text);
            assert_eq!((fm, body), (FrontMatter::default(), text));
        }
    }

    #[test]
    fn the_first_h1_outside_code_is_the_heading() {
        assert_eq!(
            first_heading("```\n# not this\n```\n## nor this\n# Pump 4 #\n# later").as_deref(),
            Some("Pump 4")
        );
        assert_eq!(first_heading("#hashtag\ntext"), None);
    }
}
