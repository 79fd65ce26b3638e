//! Trackers refused because nobody registered them, remembered so an
//! operator can see them and register the real ones.
//!
//! In memory only and bounded: anyone can connect and claim any id, so this
//! list must not grow with what strangers send, and it must not outlive the
//! process as if it were configuration.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};

use serde::Serialize;

/// Ids remembered at most; past it the one seen longest ago is forgotten.
const CAPACITY: usize = 10_000;

/// A refused tracker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UnknownDevice {
    pub id: String,
    pub protocol: &'static str,
    /// The address of its last attempt.
    pub peer: String,
    pub first_seen_ms: i64,
    pub last_seen_ms: i64,
    pub attempts: u64,
}

#[derive(Default)]
pub struct UnknownDevices {
    seen: Mutex<HashMap<String, UnknownDevice>>,
}

impl UnknownDevices {
    /// Notes that `id` was refused now.
    pub fn refused(&self, id: &str, protocol: &'static str, peer: SocketAddr, now_ms: i64) {
        let mut seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(known) = seen.get_mut(id) {
            known.protocol = protocol;
            known.peer = peer.to_string();
            known.last_seen_ms = now_ms;
            known.attempts += 1;
            return;
        }
        if seen.len() >= CAPACITY
            && let Some(oldest) = seen
                .values()
                .min_by_key(|d| d.last_seen_ms)
                .map(|d| d.id.clone())
        {
            seen.remove(&oldest);
        }
        seen.insert(
            id.to_owned(),
            UnknownDevice {
                id: id.to_owned(),
                protocol,
                peer: peer.to_string(),
                first_seen_ms: now_ms,
                last_seen_ms: now_ms,
                attempts: 1,
            },
        );
    }

    /// Forgets `id` (it was registered).
    pub fn forget(&self, id: &str) {
        self.seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
    }

    /// Every refused tracker, most recent first.
    pub fn list(&self) -> Vec<UnknownDevice> {
        let seen = self.seen.lock().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<UnknownDevice> = seen.values().cloned().collect();
        all.sort_by(|a, b| b.last_seen_ms.cmp(&a.last_seen_ms).then(a.id.cmp(&b.id)));
        all
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_accumulate_per_id_and_the_list_stays_bounded() {
        let unknown = UnknownDevices::default();
        let peer: SocketAddr = "127.0.0.1:4000".parse().unwrap();
        unknown.refused("a", "gt06", peer, 1);
        unknown.refused("a", "teltonika", peer, 5);
        let a = &unknown.list()[0];
        assert_eq!((a.attempts, a.first_seen_ms, a.last_seen_ms), (2, 1, 5));
        assert_eq!(a.protocol, "teltonika");
        for n in 0..CAPACITY as i64 {
            unknown.refused(&format!("x{n}"), "gt06", peer, 10 + n);
        }
        let list = unknown.list();
        assert_eq!(list.len(), CAPACITY);
        assert!(list.iter().all(|d| d.id != "a"), "the oldest went first");
        unknown.forget("x5");
        assert_eq!(unknown.list().len(), CAPACITY - 1);
    }
}
