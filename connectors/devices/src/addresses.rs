//! Open connections per remote IP address, across every listener of the
//! process, for `max_connections_per_ip`.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// Address → connections it holds open. An address leaves the map when its
/// last connection closes, so the map never outgrows the open connections.
///
/// One mutex rather than shards: it is taken twice per connection (accept
/// and close), far less often than a connection's packets are handled.
#[derive(Debug, Clone, Default)]
pub(crate) struct Addresses {
    open: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

impl Addresses {
    /// Counts one more connection from `ip`, or `None` if it already holds
    /// `limit`. The count drops again when the returned slot is dropped.
    pub fn admit(&self, ip: IpAddr, limit: NonZeroU32) -> Option<AddressSlot> {
        let mut open = self.lock();
        let count = open.entry(ip).or_insert(0);
        if *count >= limit.get() {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            addresses: self.clone(),
            ip,
        })
    }

    #[cfg(test)]
    fn holding(&self) -> usize {
        self.lock().len()
    }

    fn release(&self, ip: IpAddr) {
        let mut open = self.lock();
        if let Some(count) = open.get_mut(&ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&ip);
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<IpAddr, u32>> {
        // Every holder leaves the map consistent: one entry changed at a time.
        self.open.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One connection's place in its address's count.
#[derive(Debug)]
pub(crate) struct AddressSlot {
    addresses: Addresses,
    ip: IpAddr,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.addresses.release(self.ip);
    }
}

// invariant: test code (cfg(test) only): no unwrap or expect sees outside input.
#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;

    const HOME: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
    const AWAY: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const TWO: NonZeroU32 = NonZeroU32::new(2).unwrap();

    #[test]
    fn an_address_holds_at_most_the_limit_and_gets_a_place_back_on_close() {
        let addresses = Addresses::default();
        let first = addresses.admit(HOME, TWO);
        let second = addresses.admit(HOME, TWO);
        assert!(first.is_some() && second.is_some());
        assert!(addresses.admit(HOME, TWO).is_none());
        assert!(
            addresses.admit(AWAY, TWO).is_some(),
            "other addresses are not affected"
        );
        drop(first);
        assert!(addresses.admit(HOME, TWO).is_some());
    }

    #[test]
    fn an_address_without_connections_takes_no_memory() {
        let addresses = Addresses::default();
        let slots: Vec<_> = (0..2).filter_map(|_| addresses.admit(HOME, TWO)).collect();
        assert!(addresses.admit(HOME, TWO).is_none());
        assert_eq!(addresses.holding(), 1);
        drop(slots);
        assert_eq!(addresses.holding(), 0);
    }
}
