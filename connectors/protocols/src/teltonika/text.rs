//! Device bytes shown as text the way Traccar shows them, so attribute values
//! match for integrations written against it: printable ASCII as is, anything
//! else as lowercase hex.

/// Traccar's test: no control bytes except CR and LF, and no bytes above 0x7f
/// (Java's signed bytes make those negative).
pub(crate) fn is_printable(bytes: &[u8]) -> bool {
    bytes
        .iter()
        .all(|&b| (0x20..0x80).contains(&b) || b == b'\r' || b == b'\n')
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        s.push(nibble(b >> 4));
        s.push(nibble(b & 0x0f));
    }
    s
}

fn nibble(n: u8) -> char {
    char::from_digit(u32::from(n), 16).unwrap_or('0')
}

/// US-ASCII decoding as Java does it: bytes above 0x7f become U+FFFD.
pub(crate) fn ascii(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| {
            if b.is_ascii() {
                char::from(b)
            } else {
                '\u{fffd}'
            }
        })
        .collect()
}

/// Java's `String.trim`: strips every char up to and including the space.
pub(crate) fn trim(s: &str) -> &str {
    s.trim_matches(|c: char| c <= ' ')
}

/// Printable bytes as trimmed text, others as hex: Traccar's `result`.
pub(crate) fn printable_or_hex(bytes: &[u8]) -> String {
    if is_printable(bytes) {
        trim(&ascii(bytes)).to_owned()
    } else {
        hex(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_is_trimmed_and_binary_is_hex() {
        assert_eq!(printable_or_hex(b" getinfo\r\n"), "getinfo");
        assert_eq!(printable_or_hex(&[0x0a, 0x81, 0xc3]), "0a81c3");
        assert_eq!(hex(&[0x00, 0xff]), "00ff");
    }
}
