//! A minimal blocking HTTP client for the harnesses' own requests (readiness
//! probes, setup and assertions), so the testkit needs no async runtime and
//! can be used from sync and async tests alike.
//!
//! It speaks HTTP/1.0: the server then closes the connection after the answer
//! and never uses chunked encoding, so the body is simply everything after the
//! headers.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A status code and the body as text.
pub(crate) struct Response {
    pub status: u16,
    pub body: String,
}

/// Sends `method path_and_query` (no body) to 127.0.0.1:`port`.
pub(crate) fn request(
    port: u16,
    method: &str,
    path_and_query: &str,
    timeout: Duration,
) -> io::Result<Response> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    write!(
        stream,
        "{method} {path_and_query} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

fn parse(raw: &[u8]) -> io::Result<Response> {
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| invalid("HTTP answer without end of headers"))?;
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("HTTP answer without a status code"))?;
    Ok(Response {
        status,
        body: body.to_owned(),
    })
}

/// Percent-encodes a query-string component (everything but RFC 3986's
/// unreserved characters).
pub(crate) fn encode_component(value: &str) -> String {
    let mut out = String::with_capacity(value.len() * 3);
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_everything_but_unreserved() {
        assert_eq!(
            encode_component("SELECT * FROM \"a\" WHERE d='x y'"),
            "SELECT%20%2A%20FROM%20%22a%22%20WHERE%20d%3D%27x%20y%27"
        );
        assert_eq!(encode_component("é-_.~"), "%C3%A9-_.~");
    }

    #[test]
    fn parses_status_and_body() {
        let r = parse(b"HTTP/1.1 204 No Content\r\nX-A: b\r\n\r\n").unwrap();
        assert_eq!((r.status, r.body.as_str()), (204, ""));
        let r = parse(b"HTTP/1.0 200 OK\r\n\r\n{\"a\":1}").unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "{\"a\":1}"));
        assert!(parse(b"garbage").is_err());
    }
}
