//! The network conditions the proxy can play, and how they are written on the command line.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Round-trip flavour of a 2G link (EDGE in a field): several hundred ms each way.
pub const TWO_G_LATENCY_MS: u64 = 400;
/// About what a 2G data link carries.
pub const TWO_G_KBIT_PER_S: u64 = 50;

/// What the proxy does to the connections between the device and the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "kebab-case")]
pub enum Mode {
    /// Bytes pass through unchanged.
    Online,
    /// New connections are refused and the open ones are cut, as an airplane switch does.
    Offline,
    /// Every chunk arrives `latency_ms` late and each direction carries at most `kbit_per_s`.
    #[serde(rename = "2g")]
    TwoG { latency_ms: u64, kbit_per_s: u64 },
    /// A share of new connections is reset at once; which ones follows the seed.
    Flaky { drop_percent: u8 },
    /// The next `next` HTTP requests reach the server, but their replies are cut before the
    /// first byte reaches the device; then the proxy goes back online by itself.
    CutReply { next: usize },
    /// New connections are accepted and never answered; open ones stop moving bytes.
    Stall,
}

impl Mode {
    /// 2G with the default latency and rate.
    pub fn two_g() -> Mode {
        Mode::TwoG {
            latency_ms: TWO_G_LATENCY_MS,
            kbit_per_s: TWO_G_KBIT_PER_S,
        }
    }

    /// Values a proxy cannot play (a rate of 0 would stall, not slow down).
    pub(crate) fn validate(&self) -> Result<(), String> {
        match *self {
            Mode::TwoG { kbit_per_s: 0, .. } => Err("2g needs a rate of at least 1 kbit/s".into()),
            Mode::Flaky { drop_percent } if drop_percent > 100 => Err(format!(
                "flaky drops a percentage of connections (0..=100), not {drop_percent}"
            )),
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Mode {
    /// One line a tester reads in the proxy's output.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mode::Online => write!(f, "online (bytes pass unchanged)"),
            Mode::Offline => write!(f, "offline (new connections refused, open ones cut)"),
            Mode::TwoG {
                latency_ms,
                kbit_per_s,
            } => write!(
                f,
                "2g ({latency_ms} ms latency, {kbit_per_s} kbit/s each way)"
            ),
            Mode::Flaky { drop_percent } => {
                write!(f, "flaky ({drop_percent}% of new connections dropped)")
            }
            Mode::CutReply { next } => write!(
                f,
                "cut-reply (the replies to the next {next} request(s) are cut, then online)"
            ),
            Mode::Stall => write!(f, "stall (connections accepted, never answered)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_round_trip_through_json_with_short_names() {
        let json = serde_json::to_string(&Mode::two_g()).expect("serialise");
        assert_eq!(json, r#"{"mode":"2g","latency_ms":400,"kbit_per_s":50}"#);
        let back: Mode = serde_json::from_str(r#"{"mode":"cut-reply","next":2}"#).expect("parse");
        assert_eq!(back, Mode::CutReply { next: 2 });
    }

    #[test]
    fn impossible_modes_are_refused() {
        assert!(Mode::Flaky { drop_percent: 101 }.validate().is_err());
        assert!(
            Mode::TwoG {
                latency_ms: 1,
                kbit_per_s: 0
            }
            .validate()
            .is_err()
        );
        assert!(Mode::Flaky { drop_percent: 100 }.validate().is_ok());
    }
}
