//! Device bytes as text the way Traccar's Java decodes and shows them, so
//! attribute values match for integrations written against it.

use std::fmt::Write;

/// Bytes as US-ASCII, each non-ASCII byte becoming U+FFFD.
pub(crate) fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                char::REPLACEMENT_CHARACTER
            }
        })
        .collect()
}

/// Lowercase hex, two digits a byte.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// Java's `String.trim()`: strips every char up to U+0020, not only whitespace.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Traccar's "printable" test: no control bytes but CR and LF, and no byte
/// with the high bit set (Java bytes are signed).
pub(crate) fn printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) || b == b'\r' || b == b'\n')
}

/// Printable bytes as trimmed text, others as hex: Traccar's `result`.
pub(crate) fn printable_or_hex(bytes: &[u8]) -> String {
    if printable(bytes) {
        trim(&ascii(bytes)).to_owned()
    } else {
        hex(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_decoding_rules() {
        assert_eq!(ascii(b"ok\xff"), "ok\u{fffd}");
        assert_eq!(trim("\u{1}\r\nRFID:1\r\n"), "RFID:1");
        assert!(printable(b"D7520A62\r\n"));
        assert!(!printable(b"\x02AB") && !printable(b"28.3\xa1"));
        assert_eq!(hex(&[0x0a, 0xff]), "0aff");
        assert_eq!(hex(&[0x00, 0xff]), "00ff");
        assert_eq!(printable_or_hex(b" getinfo\r\n"), "getinfo");
        assert_eq!(printable_or_hex(&[0x0a, 0x81, 0xc3]), "0a81c3");
    }
}
