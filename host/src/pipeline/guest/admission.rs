//! Admission control: at most `limits.max_concurrent_requests` requests in
//! flight, each with room in the instance pool; one more is refused with 503.

use crate::build::Build;
use crate::pipeline::error::Error;
use std::ops::Deref;
use std::sync::Arc;

/// A request admitted to a build: the build, with the request counted
/// in flight until this is dropped.
pub(crate) struct Admitted(Arc<Build>);

impl Admitted {
    /// Admit one more request to `build`, or refuse it (503) when
    /// `limits.max_concurrent_requests` are in flight.
    pub(crate) fn new(build: Arc<Build>) -> Result<Self, Error> {
        if !build.in_flight.try_enter() {
            build.metrics.admission_rejected();
            return Err(Error::Overloaded(build.in_flight.limit()));
        }
        Ok(Self(build))
    }
}

impl Deref for Admitted {
    type Target = Arc<Build>;

    fn deref(&self) -> &Arc<Build> {
        &self.0
    }
}

impl Drop for Admitted {
    fn drop(&mut self) {
        self.0.in_flight.leave();
    }
}
