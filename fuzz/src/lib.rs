//! What every fuzz target checks, whatever the protocol.
//!
//! [`churn`] does with arbitrary bytes what the device server does with a
//! socket's: ask [`Session::check`] what starts the buffer, drop garbage,
//! decode whole frames, stop when the rest is incomplete. Besides "no panic",
//! it asserts the contracts of `drover_protocols`' [`Session`] trait:
//!
//! - `Frame(n)`: 1 ≤ n ≤ buffer length (never a frame longer than what
//!   arrived, and never an empty one, which would stall the loop);
//! - `Garbage(n)`: 1 ≤ n ≤ buffer length;
//! - `Incomplete(Some(n))`: n > buffer length (otherwise it is no more
//!   incomplete);
//! - a decode error appends nothing to the output and leaves the session's
//!   identity as it was; a successful login sets the session's identity to
//!   the one it reports.

use drover_protocols::{Check, Decoded, Session};

/// Splits `data` into frames with `session` and decodes each, asserting the
/// invariants above; then decodes the whole of `data` as one frame, as a
/// caller that trusts a datagram boundary would.
pub fn churn(mut session: impl Session, data: &[u8]) {
    let mut out = Decoded::default();
    let mut at = 0;
    while at < data.len() {
        let rest = &data[at..];
        match session.check(rest) {
            Check::Frame(n) => {
                assert!(
                    (1..=rest.len()).contains(&n),
                    "Frame({n}) of a {}-byte buffer",
                    rest.len()
                );
                decode(&mut session, &rest[..n], &mut out);
                at += n;
            }
            Check::Garbage(n) => {
                assert!(
                    (1..=rest.len()).contains(&n),
                    "Garbage({n}) of a {}-byte buffer",
                    rest.len()
                );
                at += n;
            }
            Check::Incomplete(declared) => {
                if let Some(n) = declared {
                    assert!(
                        n > rest.len(),
                        "Incomplete(Some({n})) of a {}-byte buffer",
                        rest.len()
                    );
                }
                break;
            }
        }
    }
    decode(&mut session, data, &mut out);
}

/// One decode into a cleared output, with the error and login contracts.
fn decode(session: &mut impl Session, frame: &[u8], out: &mut Decoded) {
    out.clear();
    let before = session.device().cloned();
    match session.decode(frame, out) {
        Ok(()) => {
            if let Some(id) = &out.identified {
                assert_eq!(session.device(), Some(id), "login not kept by the session");
            }
        }
        Err(error) => {
            assert!(
                out.records.is_empty() && out.reply.is_empty() && out.identified.is_none(),
                "{error} left output behind: {out:?}"
            );
            assert_eq!(
                session.device(),
                before.as_ref(),
                "{error} changed the session's device"
            );
        }
    }
}
