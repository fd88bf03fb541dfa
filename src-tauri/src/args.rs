//! Command arguments, parsed by the command itself.
//!
//! Tauri deserializes each argument before the command runs, and answers one it cannot read (a
//! malformed id, a patch with an unknown field, a missing key) with a bare string, outside the
//! `{code, message}` every other failure has. An argument taken as [`Arg`] always reaches the
//! command; the command's first step, [`Arg::parse`], turns a bad one into
//! [`AppError::BadArgument`] naming it, so the window can say what was wrong like any other error.

use serde::de::{Deserialize, DeserializeOwned, Deserializer};

use crate::error::AppError;

/// An argument as the window sent it: the value, or why it could not be read. (No `Debug`: a
/// password comes as one.)
pub struct Arg<T>(Result<T, String>);

impl<T> Arg<T> {
    /// The value, or `invalid_input` naming the argument (`name` as the window spells it).
    pub fn parse(self, name: &'static str) -> Result<T, AppError> {
        self.0
            .map_err(|reason| AppError::BadArgument { name, reason })
    }

    /// As [`Arg::parse`], but the reason does not quote what was sent (serde's messages do:
    /// ``invalid type: integer `1234` ``), for a password.
    pub fn parse_secret(self, name: &'static str) -> Result<T, AppError> {
        self.0.map_err(|_| AppError::BadArgument {
            name,
            reason: "it is missing or not text".to_owned(),
        })
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Arg<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Asked for as an option, Tauri hands over a missing key as `None` instead of failing.
        // Missing and `null` are the same here; an optional argument reads `null` as `None`.
        let value = Option::<serde_json::Value>::deserialize(deserializer)?;
        let missing = value.is_none();
        let parsed = T::deserialize(value.unwrap_or(serde_json::Value::Null)).map_err(|e| {
            if missing {
                "it is missing".to_owned()
            } else {
                e.to_string()
            }
        });
        Ok(Arg(parsed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use outpost_core::{ListQuery, NoteId, NotePatch};
    use serde_json::json;

    type TestResult = Result<(), Box<dyn std::error::Error>>;

    fn error_of<T: DeserializeOwned + std::fmt::Debug>(
        value: serde_json::Value,
        name: &'static str,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error>> {
        let arg: Arg<T> = serde_json::from_value(value)?;
        match arg.parse(name) {
            Ok(v) => Err(format!("{name} was taken as {v:?}").into()),
            Err(e) => Ok(serde_json::to_value(&e)?),
        }
    }

    #[test]
    fn a_malformed_id_is_refused_naming_the_argument() -> TestResult {
        let error = error_of::<NoteId>(json!("not-a-uuid"), "id")?;
        assert_eq!(error["code"], "invalid_input");
        let message = error["message"].as_str().unwrap_or_default();
        assert!(message.starts_with("`id` is not valid: "), "{message}");
        Ok(())
    }

    #[test]
    fn a_patch_with_an_unknown_field_is_refused() -> TestResult {
        let error = error_of::<NotePatch>(json!({"titel": "typo"}), "patch")?;
        assert_eq!(error["code"], "invalid_input");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("titel")),
            "{error}"
        );
        Ok(())
    }

    #[test]
    fn a_missing_argument_says_so() -> TestResult {
        let error = error_of::<NoteId>(serde_json::Value::Null, "id")?;
        assert_eq!(error["message"], "`id` is not valid: it is missing");
        Ok(())
    }

    #[test]
    fn a_secret_is_not_quoted_back() -> TestResult {
        let arg: Arg<String> = serde_json::from_value(json!(12345678))?;
        let error = serde_json::to_value(arg.parse_secret("password").err())?;
        assert_eq!(
            error["message"],
            "`password` is not valid: it is missing or not text"
        );
        Ok(())
    }

    #[test]
    fn good_and_optional_arguments_pass() -> TestResult {
        let id = NoteId::new();
        let arg: Arg<NoteId> = serde_json::from_value(json!(id.to_string()))?;
        assert_eq!(arg.parse("id")?, id);
        let none: Arg<Option<ListQuery>> = serde_json::from_value(serde_json::Value::Null)?;
        assert!(none.parse("query")?.is_none());
        Ok(())
    }
}
