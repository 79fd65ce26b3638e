//! Page cursors: where the next page of a device's history starts.

use std::fmt;
use std::str::FromStr;

use super::HistoryError;
use super::keys::Position;

/// Format of the cursor's bytes; a new layout gets a new version.
const VERSION: u8 = 1;
/// `version, time_ms (i64 BE), kind, hash (u32 BE)`.
const LEN: usize = 1 + 8 + 1 + 4;

/// Where the next page of a history query starts: just after the last record
/// of the page that returned it.
///
/// Opaque to clients. [`Display`](fmt::Display) gives a URL-safe string (hex)
/// for an API response and [`FromStr`] parses it back. A cursor names a place
/// in time, not a stored key, so it stays valid when records before it are
/// expired and when newer records arrive.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PageCursor(pub(crate) Position);

impl PageCursor {
    fn to_bytes(self) -> [u8; LEN] {
        let mut bytes = [0; LEN];
        bytes[0] = VERSION;
        bytes[1..9].copy_from_slice(&self.0.time_ms.to_be_bytes());
        bytes[9] = self.0.kind;
        bytes[10..].copy_from_slice(&self.0.hash.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Result<Self, &'static str> {
        let bytes: [u8; LEN] = bytes.try_into().map_err(|_| "wrong length")?;
        if bytes[0] != VERSION {
            return Err("unknown version");
        }
        let mut time = [0; 8];
        time.copy_from_slice(&bytes[1..9]);
        let mut hash = [0; 4];
        hash.copy_from_slice(&bytes[10..]);
        Ok(PageCursor(Position {
            time_ms: i64::from_be_bytes(time),
            kind: bytes[9],
            hash: u32::from_be_bytes(hash),
        }))
    }
}

impl fmt::Display for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for PageCursor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PageCursor({self})")
    }
}

impl FromStr for PageCursor {
    type Err = HistoryError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: &'static str| HistoryError::InvalidCursor {
            cursor: text.chars().take(64).collect(),
            reason,
        };
        let bytes = hex::decode(text).map_err(|_| invalid("not hexadecimal"))?;
        PageCursor::from_bytes(&bytes).map_err(invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_survives_its_text_form() {
        let cursor = PageCursor(Position {
            time_ms: -5,
            kind: 4,
            hash: 0x0102_0304,
        });
        let text = cursor.to_string();
        assert!(text.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_eq!(text.parse::<PageCursor>().unwrap(), cursor);
    }

    #[test]
    fn bad_cursors_are_errors_that_say_why() {
        for (text, reason) in [
            ("", "wrong length"),
            ("zz", "not hexadecimal"),
            ("0100", "wrong length"),
            ("0200000000000000000000000000", "unknown version"),
        ] {
            match text.parse::<PageCursor>() {
                Err(HistoryError::InvalidCursor { reason: got, .. }) => {
                    assert_eq!(got, reason, "{text:?}")
                }
                other => panic!("{text:?}: {other:?}"),
            }
        }
    }
}
