//! Admission control: at most `limits.max_concurrent_requests` requests in
//! flight, each with room in the instance pool; one more is refused with 503.
//!
//! A lock-free counter: admitting a request is one atomic add, its end one
//! atomic subtract (a semaphore's permit costs a compare-and-swap and a
//! mutex on the way back, on a cache line every worker thread shares).

use crate::error::Error;
use crate::prepared::Prepared;
use std::ops::Deref;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

/// How many requests are in flight, against the limit.
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
}

/// A request admitted to a prepared app: the app, with the request counted
/// in flight until this is dropped.
pub(crate) struct Admitted(Arc<Prepared>);

impl Admitted {
    /// Admit one more request to `prepared`, or refuse it (503) when
    /// `limits.max_concurrent_requests` are in flight.
    pub(crate) fn new(prepared: Arc<Prepared>) -> Result<Self, Error> {
        let in_flight = &prepared.in_flight;
        if in_flight.count.fetch_add(1, Ordering::Acquire) >= in_flight.limit {
            in_flight.count.fetch_sub(1, Ordering::Release);
            return Err(Error::Overloaded(in_flight.limit));
        }
        Ok(Self(prepared))
    }
}

impl Deref for Admitted {
    type Target = Arc<Prepared>;

    fn deref(&self) -> &Arc<Prepared> {
        &self.0
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.count.fetch_sub(1, Ordering::Release);
    }
}
