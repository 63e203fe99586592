//! Admission control: at most `limits.max_concurrent_requests` requests in
//! flight, each with room in the instance pool; one more is refused with 503.

use super::error::Error;
use crate::prepared::Prepared;
use std::ops::Deref;
use std::sync::Arc;

/// A request admitted to a prepared app: the app, with the request counted
/// in flight until this is dropped.
pub(crate) struct Admitted(Arc<Prepared>);

impl Admitted {
    /// Admit one more request to `prepared`, or refuse it (503) when
    /// `limits.max_concurrent_requests` are in flight.
    pub(crate) fn new(prepared: Arc<Prepared>) -> Result<Self, Error> {
        if !prepared.in_flight.try_enter() {
            return Err(Error::Overloaded(prepared.in_flight.limit()));
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
        self.0.in_flight.leave();
    }
}
