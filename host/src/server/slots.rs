//! The slots a connection holds while it is open: one of `max_connections`,
//! and one of its client address's `max_connections_per_ip` when that is
//! set. A connection that finds either full is refused at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How many connections each client address has open.
type OpenByAddress = Arc<Mutex<HashMap<IpAddr, usize>>>;

/// The server's slots.
pub(super) struct Slots {
    total: Arc<Semaphore>,
    per_ip: Option<(usize, OpenByAddress)>,
}

/// The slots one connection holds, given back when it is dropped.
pub(super) struct Slot {
    _total: OwnedSemaphorePermit,
    per_ip: Option<(IpAddr, OpenByAddress)>,
}

impl Slots {
    pub(super) fn new(max: usize, max_per_ip: Option<usize>) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max.max(1))),
            per_ip: max_per_ip.map(|max| (max.max(1), Arc::default())),
        }
    }

    /// Slots for a connection from `peer`, unless one is full.
    pub(super) fn take(&self, peer: IpAddr) -> Option<Slot> {
        let total = self.total.clone().try_acquire_owned().ok()?;
        let per_ip = match &self.per_ip {
            None => None,
            Some((max, open)) => {
                let mut counts = open.lock().unwrap_or_else(|e| e.into_inner());
                let count = counts.entry(peer).or_insert(0);
                if *count >= *max {
                    return None;
                }
                *count += 1;
                Some((peer, open.clone()))
            }
        };
        Some(Slot {
            _total: total,
            per_ip,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some((peer, open)) = &self.per_ip {
            let mut counts = open.lock().unwrap_or_else(|e| e.into_inner());
            if let Some(count) = counts.get_mut(peer) {
                *count -= 1;
                if *count == 0 {
                    counts.remove(peer);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_gets_its_share_and_no_more() {
        let slots = Slots::new(10, Some(2));
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(slots.take(a).is_none(), "a third from one address");
        assert!(slots.take(b).is_some(), "another address");
        drop(first);
        assert!(slots.take(a).is_some(), "a slot back");
        let total = Slots::new(1, None);
        let _only = total.take(a).unwrap();
        assert!(total.take(b).is_none(), "max_connections");
    }
}
