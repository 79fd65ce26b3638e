//! Command ids: unique, sortable by creation, printable in a URL.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Crockford's base 32: no I, L, O or U, and in ASCII order, so the text
/// form sorts like the number.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const TEXT_LEN: usize = 26;
const TIME_BITS: u32 = 48;
const SEQUENCE_BITS: u32 = 80;
const MAX_TIME_MS: i64 = (1 << TIME_BITS) - 1;

/// A command's id, in ULID's layout: 26 characters of Crockford base 32
/// spelling a 48-bit creation time in ms and an 80-bit sequence. The
/// sequence replaces ULID's randomness: ids only need to be unique within
/// one queue, which hands them out in order (see [`CommandId::next_after`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CommandId(u128);

impl CommandId {
    /// The id after `last` for a command created at `now_ms`: later than
    /// `last` even when the clock went back (a restart on a machine whose
    /// clock was corrected), so ids never repeat.
    pub(crate) fn next_after(last: Option<CommandId>, now_ms: i64) -> CommandId {
        let now = CommandId(u128::from(now_ms.clamp(0, MAX_TIME_MS) as u64) << SEQUENCE_BITS);
        match last {
            Some(last) if last >= now => CommandId(last.0.saturating_add(1)),
            _ => now,
        }
    }

    /// When the command was created (ms since the Unix epoch).
    pub fn created_ms(&self) -> i64 {
        i64::try_from(self.0 >> SEQUENCE_BITS).unwrap_or(MAX_TIME_MS)
    }

    /// The storage key: 16 bytes big-endian, sorting like the id.
    pub(crate) fn to_key(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    pub(crate) fn from_key(key: &[u8]) -> Option<CommandId> {
        <[u8; 16]>::try_from(key)
            .ok()
            .map(|bytes| CommandId(u128::from_be_bytes(bytes)))
    }
}

impl fmt::Display for CommandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; TEXT_LEN];
        for (i, slot) in text.iter_mut().enumerate() {
            let shift = 5 * (TEXT_LEN - 1 - i);
            *slot = ALPHABET[((self.0 >> shift) & 0x1f) as usize];
        }
        // Every byte comes from the ASCII alphabet.
        f.write_str(std::str::from_utf8(&text).map_err(|_| fmt::Error)?)
    }
}

/// Why a string is not a command id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not a command id (26 characters of Crockford base 32)")]
pub struct BadCommandId(pub String);

impl FromStr for CommandId {
    type Err = BadCommandId;

    /// Reads the text form, either case.
    fn from_str(text: &str) -> Result<CommandId, BadCommandId> {
        let bad = || BadCommandId(text.to_owned());
        if text.len() != TEXT_LEN {
            return Err(bad());
        }
        let mut value: u128 = 0;
        for (i, byte) in text.bytes().enumerate() {
            let digit = ALPHABET
                .iter()
                .position(|&c| c == byte.to_ascii_uppercase())
                .ok_or_else(bad)?;
            // 26 digits hold 130 bits: the first may use only 3 of its 5.
            if i == 0 && digit > 7 {
                return Err(bad());
            }
            value = (value << 5) | digit as u128;
        }
        Ok(CommandId(value))
    }
}

impl Serialize for CommandId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for CommandId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<CommandId, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

// invariant: test code (cfg(test) only): the unwraps and expects below never see outside input.
#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_764_133_200_000;

    #[test]
    fn ids_increase_even_when_the_clock_goes_back() {
        let a = CommandId::next_after(None, T);
        let b = CommandId::next_after(Some(a), T);
        let c = CommandId::next_after(Some(b), T - 60_000);
        let d = CommandId::next_after(Some(c), T + 1);
        assert!(a < b && b < c && c < d);
        assert_eq!(
            (a.created_ms(), c.created_ms(), d.created_ms()),
            (T, T, T + 1)
        );
        assert!(a.to_string() < b.to_string() && c.to_string() < d.to_string());
    }

    #[test]
    fn text_and_key_forms_round_trip() {
        let id = CommandId::next_after(Some(CommandId::next_after(None, T)), T);
        let text = id.to_string();
        assert_eq!(text.len(), 26);
        assert_eq!(text.parse(), Ok(id));
        assert_eq!(text.to_lowercase().parse(), Ok(id));
        assert_eq!(CommandId::from_key(&id.to_key()), Some(id));
        assert_eq!(CommandId::from_key(&[0; 15]), None);
        let json = serde_json::to_string(&id).unwrap();
        assert_eq!(serde_json::from_str::<CommandId>(&json).unwrap(), id);
    }

    #[test]
    fn malformed_text_is_refused() {
        let max = "7ZZZZZZZZZZZZZZZZZZZZZZZZZ";
        assert!(max.parse::<CommandId>().is_ok());
        for bad in [
            "",
            "8ZZZZZZZZZZZZZZZZZZZZZZZZZ",
            "01J0000000000000000000000I",
            "0123",
        ] {
            assert!(bad.parse::<CommandId>().is_err(), "{bad}");
        }
    }
}
