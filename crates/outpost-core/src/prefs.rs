//! Preferences: a fixed registry of keys, each with its limits, its default and whether it syncs
//! to the user's other devices (`synced`) or stays on this one (`device`). Synced keys go
//! through the outbox and merge last-writer-wins by stamp. Each [`Pref`] carries its limits, so
//! the window offers what [`Store::set_pref`] accepts without a copy of them of its own.

use crate::error::SqlContext;
use crate::error::{Error, Result};
use crate::store::Store;
use outpost_protocol::mutation::names;
use outpost_protocol::{Entity, FieldChange, Fields};
use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum PrefScope {
    /// Follows the account to every device.
    Synced,
    /// Belongs to this device only.
    Device,
}

/// The values a preference takes: what [`Store::set_pref`] checks, and what the window's control
/// for it offers (the bounds of a number field, the choices of a list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub enum PrefLimits {
    /// One of these strings, in the order to offer them.
    OneOf { options: &'static [&'static str] },
    /// A whole number from `min` to `max`, both included.
    Int { min: i64, max: i64 },
    /// `true` or `false`.
    Bool,
}

#[derive(Debug, Clone, Copy)]
struct Spec {
    key: &'static str,
    scope: PrefScope,
    limits: PrefLimits,
    default: fn() -> Value,
    help: &'static str,
}

/// "Work offline": syncing paused on this device.
pub const WORK_OFFLINE: &str = "sync.work_offline";
/// Seconds between background syncs when nothing else triggers one.
pub const SYNC_INTERVAL_SECS: &str = "sync.interval_secs";
/// Fetch every attachment in the background, not only those of the notes opened here. Per
/// device: a laptop on a desk wants them all, the same account on a metered link may not.
pub const DOWNLOAD_ALL_ATTACHMENTS: &str = "sync.download_all_attachments";

const REGISTRY: &[Spec] = &[
    Spec {
        key: "theme",
        scope: PrefScope::Synced,
        limits: PrefLimits::OneOf {
            options: &["system", "light", "dark"],
        },
        default: || Value::from("system"),
        help: "colour theme",
    },
    Spec {
        key: "editor.font_size",
        scope: PrefScope::Synced,
        limits: PrefLimits::Int { min: 8, max: 40 },
        default: || Value::from(15),
        help: "editor font size in points",
    },
    Spec {
        key: "editor.spellcheck",
        scope: PrefScope::Synced,
        limits: PrefLimits::Bool,
        default: || Value::from(true),
        help: "check spelling while typing",
    },
    Spec {
        key: SYNC_INTERVAL_SECS,
        scope: PrefScope::Device,
        limits: PrefLimits::Int {
            min: 15,
            max: 86_400,
        },
        default: || Value::from(300),
        help: "seconds between background syncs when nothing else triggers one",
    },
    Spec {
        key: DOWNLOAD_ALL_ATTACHMENTS,
        scope: PrefScope::Device,
        limits: PrefLimits::Bool,
        default: || Value::from(false),
        help: "download every attachment in the background, not only those of notes opened",
    },
    Spec {
        key: WORK_OFFLINE,
        scope: PrefScope::Device,
        limits: PrefLimits::Bool,
        default: || Value::from(false),
        help: "pause syncing on this device",
    },
];

fn spec(key: &str) -> Result<&'static Spec> {
    REGISTRY.iter().find(|s| s.key == key).ok_or_else(|| {
        let known: Vec<&str> = REGISTRY.iter().map(|s| s.key).collect();
        Error::Invalid(format!(
            "unknown preference {key:?}; known: {}",
            known.join(", ")
        ))
    })
}

fn check(spec: &Spec, value: &Value) -> Result<()> {
    let ok = match spec.limits {
        PrefLimits::OneOf { options } => value.as_str().is_some_and(|s| options.contains(&s)),
        PrefLimits::Int { min, max } => value.as_i64().is_some_and(|n| (min..=max).contains(&n)),
        PrefLimits::Bool => value.is_boolean(),
    };
    if ok {
        return Ok(());
    }
    let expected = match spec.limits {
        PrefLimits::OneOf { options } => format!("one of {}", options.join(", ")),
        PrefLimits::Int { min, max } => format!("a whole number from {min} to {max}"),
        PrefLimits::Bool => "true or false".to_owned(),
    };
    Err(Error::Invalid(format!(
        "{} must be {expected}, got {value}",
        spec.key
    )))
}

/// The preference keys that follow the account.
pub(crate) fn synced_keys() -> impl Iterator<Item = &'static str> {
    REGISTRY
        .iter()
        .filter(|s| s.scope == PrefScope::Synced)
        .map(|s| s.key)
}

/// Whether `key` is a preference that follows the account (others are ignored when pulled).
pub(crate) fn is_synced_key(key: &str) -> bool {
    REGISTRY
        .iter()
        .any(|s| s.key == key && s.scope == PrefScope::Synced)
}

/// A preference with its current value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "ts", derive(ts_rs::TS))]
pub struct Pref {
    pub key: &'static str,
    pub value: Value,
    pub scope: PrefScope,
    /// Still the default (never set on this device or synced to it).
    pub is_default: bool,
    pub help: &'static str,
    /// The values it takes: the window's control for it reads its bounds or choices here.
    pub limits: PrefLimits,
}

impl Store {
    pub fn get_pref(&self, key: &str) -> Result<Pref> {
        let spec = spec(key)?;
        let stored: Option<String> = self.read(|conn, path| {
            conn.prepare_cached("SELECT value FROM prefs WHERE key = ?1")
                .and_then(|mut s| s.query_row([key], |r| r.get(0)).optional())
                .at(path)
        })?;
        // A stored value that no longer fits (an older build wrote it) falls back to the
        // default rather than breaking the app.
        let parsed = stored
            .and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .filter(|v| check(spec, v).is_ok());
        Ok(Pref {
            key: spec.key,
            is_default: parsed.is_none(),
            value: parsed.unwrap_or_else(spec.default),
            scope: spec.scope,
            help: spec.help,
            limits: spec.limits,
        })
    }

    pub fn list_prefs(&self) -> Result<Vec<Pref>> {
        REGISTRY.iter().map(|s| self.get_pref(s.key)).collect()
    }

    /// Sets a preference; a synced one is queued for the user's other devices.
    pub fn set_pref(&self, key: &str, value: Value) -> Result<Pref> {
        let spec = spec(key)?;
        check(spec, &value)?;
        self.write(|tx| {
            let stamp = tx.stamp();
            let now_ms = i64::try_from(stamp.physical_ms).unwrap_or(i64::MAX);
            tx.tx
                .prepare_cached(
                    "INSERT INTO prefs (key, value, stamp, updated_ms) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (key) DO UPDATE SET value = excluded.value,
                         stamp = excluded.stamp, updated_ms = excluded.updated_ms",
                )
                .and_then(|mut s| {
                    s.execute(params![key, value.to_string(), stamp.to_string(), now_ms])
                })
                .at(tx.path)?;
            if spec.scope == PrefScope::Synced {
                let fields = Fields::from([(
                    "value".to_owned(),
                    FieldChange {
                        value: value.clone(),
                        stamp,
                    },
                )]);
                tx.enqueue(Entity::Pref, key, names::PREF_PUT, fields, None, now_ms)?;
            }
            tx.change.prefs.push(key.to_owned());
            Ok(())
        })?;
        self.get_pref(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::temp_store;

    #[test]
    fn defaults_then_set_values_and_validation() {
        let (_dir, store) = temp_store();
        let theme = store.get_pref("theme").expect("get");
        assert_eq!(
            (theme.value.as_str(), theme.is_default),
            (Some("system"), true)
        );
        let set = store.set_pref("theme", Value::from("dark")).expect("set");
        assert_eq!((set.value.as_str(), set.is_default), (Some("dark"), false));

        let err = store
            .set_pref("theme", Value::from("purple"))
            .expect_err("bad");
        assert_eq!(
            err.to_string(),
            "theme must be one of system, light, dark, got \"purple\""
        );
        let err = store
            .set_pref("editor.font_size", Value::from(400))
            .expect_err("bad");
        assert!(err.to_string().contains("from 8 to 40"), "{err}");
        let err = store.get_pref("nope").expect_err("unknown");
        assert!(err.to_string().contains("known: theme"), "{err}");
        assert_eq!(
            store.get_pref("theme").expect("get").value,
            Value::from("dark")
        );
    }

    /// The limits each preference is sent with, read as the window receives them (JSON), are
    /// the ones `set_pref` enforces: the bounds and every choice are taken, one step past them
    /// (or a value of another type) is refused.
    #[test]
    fn each_pref_is_sent_with_the_limits_set_pref_enforces() {
        let (_dir, store) = temp_store();
        let sent = serde_json::to_value(store.list_prefs().expect("list")).expect("json");
        let sent = sent.as_array().expect("a list");
        assert_eq!(sent.len(), REGISTRY.len());
        for pref in sent {
            let key = pref["key"].as_str().expect("key");
            let limits = &pref["limits"];
            let (mut takes, refuses): (Vec<Value>, Vec<Value>) = match limits["kind"].as_str() {
                Some("int") => {
                    let min = limits["min"].as_i64().expect("min");
                    let max = limits["max"].as_i64().expect("max");
                    assert!(min < max, "{key}: {limits}");
                    (
                        vec![min.into(), max.into()],
                        vec![(min - 1).into(), (max + 1).into(), min.to_string().into()],
                    )
                }
                Some("one_of") => {
                    let options = limits["options"].as_array().expect("options").clone();
                    assert!(!options.is_empty(), "{key}: {limits}");
                    (options, vec!["none of them".into(), 1.into()])
                }
                Some("bool") => (
                    vec![true.into(), false.into()],
                    vec!["true".into(), 1.into()],
                ),
                other => panic!("{key}: limits of an unknown kind {other:?}"),
            };
            // The default it is sent with is within them too.
            takes.push(pref["value"].clone());
            for value in takes {
                if let Err(e) = store.set_pref(key, value.clone()) {
                    panic!("{key} refused {value}, within its limits {limits}: {e}");
                }
            }
            for value in refuses {
                assert!(
                    store.set_pref(key, value.clone()).is_err(),
                    "{key} took {value}, outside its limits {limits}"
                );
            }
        }
    }

    #[test]
    fn synced_keys_are_queued_and_device_keys_are_not() {
        let (_dir, store) = temp_store();
        store.set_pref("theme", Value::from("dark")).expect("set");
        store.set_pref("theme", Value::from("light")).expect("set");
        store
            .set_pref("sync.interval_secs", Value::from(60))
            .expect("set");
        let outbox = store.outbox(10).expect("outbox");
        assert_eq!(
            outbox.len(),
            1,
            "two theme changes coalesce; device keys stay local"
        );
        assert_eq!(outbox[0].entity_id, "theme");
        assert_eq!(outbox[0].fields["value"].value, Value::from("light"));
    }
}
