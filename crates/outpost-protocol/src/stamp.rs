//! Hybrid-logical-clock stamps: the order used for field-level last-writer-wins.
//!
//! A stamp is (physical milliseconds, counter, node). Order is lexicographic on those three,
//! so it is total and the same on every replica. The text form is fixed-width lowercase hex,
//! so comparing two stamps as strings (in SQL, say) gives the same answer as comparing them here.

use crate::ClientId;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

/// The largest physical time a stamp can carry: 48 bits of milliseconds (year 10889).
pub const MAX_PHYSICAL_MS: u64 = (1 << 48) - 1;

/// The text form of a stamp as a regular expression: exactly what `Stamp`'s `FromStr` accepts
/// (12 lowercase hex digits of milliseconds, 8 of counter, 32 of node). The OpenAPI schema uses
/// it, and a test holds the two to the same answers.
pub const STAMP_PATTERN: &str = "^[0-9a-f]{12}-[0-9a-f]{8}-[0-9a-f]{32}$";

/// A hybrid-logical-clock stamp.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Stamp {
    /// Milliseconds since the Unix epoch, as the issuing clock saw it (never decreasing).
    pub physical_ms: u64,
    /// Orders stamps issued within the same millisecond.
    pub counter: u32,
    /// The device that issued it; breaks ties so that order is total.
    pub node: ClientId,
}

/// A string that is not a stamp.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("not a clock stamp: {0:?} (expected 12 hex digits, '-', 8 hex digits, '-', 32 hex digits)")]
pub struct StampError(pub String);

impl Stamp {
    /// The smallest stamp: older than anything a clock issues.
    pub const ZERO: Stamp = Stamp {
        physical_ms: 0,
        counter: 0,
        node: ClientId::from_uuid(Uuid::nil()),
    };
}

/// The length of a stamp's text form.
pub const STAMP_LEN: usize = 12 + 1 + 8 + 1 + 32;

impl Stamp {
    /// The text form as bytes, without the formatting machinery: every synced field's stamp is
    /// written to SQLite and hashed into the digests, so this runs per field of every record.
    pub fn to_text(&self) -> [u8; STAMP_LEN] {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut out = [0u8; STAMP_LEN];
        let ms = self.physical_ms.min(MAX_PHYSICAL_MS);
        for (i, b) in out[..12].iter_mut().enumerate() {
            *b = HEX[((ms >> (4 * (11 - i))) & 0xf) as usize];
        }
        out[12] = b'-';
        for (i, b) in out[13..21].iter_mut().enumerate() {
            *b = HEX[((self.counter >> (4 * (7 - i))) & 0xf) as usize];
        }
        out[21] = b'-';
        for (i, byte) in self.node.as_uuid().as_bytes().iter().enumerate() {
            out[22 + 2 * i] = HEX[usize::from(byte >> 4)];
            out[23 + 2 * i] = HEX[usize::from(byte & 0xf)];
        }
        out
    }
}

impl fmt::Display for Stamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let text = self.to_text();
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

impl FromStr for Stamp {
    type Err = StampError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || StampError(s.chars().take(80).collect());
        let mut parts = s.split('-');
        let (Some(ms), Some(counter), Some(node), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        if ms.len() != 12 || counter.len() != 8 || node.len() != 32 {
            return Err(bad());
        }
        let lower_hex = |p: &str| p.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
        if !(lower_hex(ms) && lower_hex(counter) && lower_hex(node)) {
            return Err(bad());
        }
        Ok(Stamp {
            physical_ms: u64::from_str_radix(ms, 16).map_err(|_| bad())?,
            counter: u32::from_str_radix(counter, 16).map_err(|_| bad())?,
            node: ClientId::from_uuid(Uuid::parse_str(node).map_err(|_| bad())?),
        })
    }
}

impl Serialize for Stamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(ms: u64, counter: u32, node: u128) -> Stamp {
        Stamp {
            physical_ms: ms,
            counter,
            node: ClientId::from_uuid(Uuid::from_u128(node)),
        }
    }

    #[test]
    fn text_order_equals_stamp_order() {
        let stamps = [
            stamp(0, 0, 0),
            stamp(1, 0, 0),
            stamp(1, 1, 0),
            stamp(1, 1, 7),
            stamp(1, 2, 0),
            stamp(0xff, 0, 0),
            stamp(0x100, 0, 0),
            stamp(1_732_000_000_000, u32::MAX, u128::MAX),
            stamp(MAX_PHYSICAL_MS, 0, 0),
        ];
        for a in &stamps {
            for b in &stamps {
                assert_eq!(a.cmp(b), a.to_string().cmp(&b.to_string()), "{a} vs {b}");
            }
        }
    }

    #[test]
    fn the_text_form_is_fixed_width_lowercase_hex() {
        for (s, text) in [
            (
                stamp(0, 0, 0),
                "000000000000-00000000-00000000000000000000000000000000",
            ),
            (
                stamp(1_732_000_000_123, 42, 0xabcdef),
                "0193433ea87b-0000002a-00000000000000000000000000abcdef",
            ),
            (
                stamp(u64::MAX, u32::MAX, u128::MAX),
                "ffffffffffff-ffffffff-ffffffffffffffffffffffffffffffff",
            ),
        ] {
            assert_eq!(s.to_string(), text);
            assert_eq!(s.to_text().len(), STAMP_LEN);
            // The formatting machinery's spelling, which databases already hold.
            assert_eq!(
                format!(
                    "{:012x}-{:08x}-{}",
                    s.physical_ms.min(MAX_PHYSICAL_MS),
                    s.counter,
                    s.node.as_uuid().simple()
                ),
                text
            );
        }
    }

    #[test]
    fn round_trips_through_text_and_json() {
        let s = stamp(1_732_000_000_123, 42, 0xabcdef);
        assert_eq!(s.to_string().parse::<Stamp>(), Ok(s));
        let json = serde_json::to_string(&s).expect("serialise");
        assert_eq!(serde_json::from_str::<Stamp>(&json).expect("parse"), s);
    }

    #[test]
    fn rejects_malformed_text() {
        for bad in crate::test_util::MALFORMED_STAMPS {
            assert!(bad.parse::<Stamp>().is_err(), "{bad:?} must be refused");
        }
    }
}
