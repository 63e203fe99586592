//! How many requests are in flight, against `limits.max_concurrent_requests`.
//!
//! A lock-free counter: admitting a request is one atomic add, its end one
//! atomic subtract (a semaphore's permit costs a compare-and-swap and a
//! mutex on the way back, on a cache line every worker thread shares).

use std::sync::atomic::{AtomicU32, Ordering};

/// The requests in flight, and the most there may be.
pub(crate) struct InFlight {
    count: AtomicU32,
    limit: u32,
}

impl InFlight {
    pub(crate) fn new(limit: u32) -> Self {
        Self {
            count: AtomicU32::new(0),
            limit,
        }
    }

    /// Count one more request in, unless `limit` are in flight already.
    pub(crate) fn try_enter(&self) -> bool {
        if self.count.fetch_add(1, Ordering::Acquire) >= self.limit {
            self.count.fetch_sub(1, Ordering::Release);
            return false;
        }
        true
    }

    /// Count a request out: it ended.
    pub(crate) fn leave(&self) {
        self.count.fetch_sub(1, Ordering::Release);
    }

    /// The most requests there may be in flight.
    pub(crate) fn limit(&self) -> u32 {
        self.limit
    }
}
