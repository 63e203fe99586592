//! The slots a connection holds while it is open: one of `max_connections`,
//! and one of its client address's `max_connections_per_ip` when that is
//! set. A connection that finds either full is refused at once. The slots
//! also keep the app's connection metrics, when the server has them.

use crate::metrics::{Metrics, OpenConnection, Refusal};
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
    metrics: Option<Arc<Metrics>>,
}

/// The slots one connection holds, given back when it is dropped.
pub(super) struct Slot {
    _total: OwnedSemaphorePermit,
    per_ip: Option<(IpAddr, OpenByAddress)>,
    _counted: Option<OpenConnection>,
}

impl Slots {
    pub(super) fn new(
        max: usize,
        max_per_ip: Option<usize>,
        metrics: Option<Arc<Metrics>>,
    ) -> Self {
        Self {
            total: Arc::new(Semaphore::new(max.max(1))),
            per_ip: max_per_ip.map(|max| (max.max(1), Arc::default())),
            metrics,
        }
    }

    /// Slots for a connection from `peer`, unless one is full.
    pub(super) fn take(&self, peer: IpAddr) -> Result<Slot, Refusal> {
        let refused = |refusal| {
            if let Some(metrics) = &self.metrics {
                metrics.connection_refused(refusal);
            }
            refusal
        };
        let total = (self.total.clone().try_acquire_owned())
            .map_err(|_| refused(Refusal::MaxConnections))?;
        let per_ip = match &self.per_ip {
            None => None,
            Some((max, open)) => {
                let mut counts = open.lock().unwrap_or_else(|e| e.into_inner());
                let count = counts.entry(peer).or_insert(0);
                if *count >= *max {
                    return Err(refused(Refusal::MaxConnectionsPerIp));
                }
                *count += 1;
                Some((peer, open.clone()))
            }
        };
        Ok(Slot {
            _total: total,
            per_ip,
            _counted: self.metrics.as_ref().map(|m| m.connection_opened()),
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
        let slots = Slots::new(10, Some(2), None);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let first = slots.take(a).unwrap();
        let _second = slots.take(a).unwrap();
        assert!(
            matches!(slots.take(a), Err(Refusal::MaxConnectionsPerIp)),
            "a third from one address"
        );
        assert!(slots.take(b).is_ok(), "another address");
        drop(first);
        assert!(slots.take(a).is_ok(), "a slot back");
        let total = Slots::new(1, None, None);
        let _only = total.take(a).unwrap();
        assert!(
            matches!(total.take(b), Err(Refusal::MaxConnections)),
            "max_connections"
        );
    }
}
