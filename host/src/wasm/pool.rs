//! Opt-in instance reuse (`[performance] instance_reuse = N`, like Spin's
//! `--max-instance-reuse-count`): an instance serves up to N requests, one
//! after the other, for apps that declare they keep no state between
//! requests. An instance that traps, times out or fails is never reused.
//! Fresh instances (N = 1) are the default.

use super::store::Host;
use std::sync::Mutex;
use wasmtime::Store;

/// The most idle instances kept per kind (render, handler); each holds a
/// slot of the pooling allocator.
pub(crate) const MAX_IDLE: u32 = 64;

/// Idle instances of one kind, ready for their next request.
pub(crate) struct Pool<I> {
    max_uses: u32,
    idle: Mutex<Vec<Reusable<I>>>,
}

/// A store, its instance once made, and the requests it has served.
pub(crate) struct Reusable<I> {
    pub(crate) store: Store<Host>,
    /// `None` in a fresh store, until the caller instantiates.
    pub(crate) instance: Option<I>,
    uses: u32,
}

impl<I> Pool<I> {
    /// Reuse instances for up to `max_uses` requests (1: never).
    pub(crate) fn new(max_uses: u32) -> Self {
        Self {
            max_uses,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle instance (its deadline re-armed), else a fresh store from
    /// `new`, with no instance yet.
    pub(crate) fn take_or(
        &self,
        new: impl FnOnce() -> wasmtime::Result<Store<Host>>,
    ) -> wasmtime::Result<Reusable<I>> {
        if self.max_uses > 1
            && let Some(mut reusable) = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop()
        {
            reusable.store.set_epoch_deadline(1);
            return Ok(reusable);
        }
        Ok(Reusable {
            store: new()?,
            instance: None,
            uses: 0,
        })
    }

    /// Keep `reusable`, which has just served a request without failing,
    /// for another, unless it has served its share.
    pub(crate) fn give_back(&self, mut reusable: Reusable<I>) {
        reusable.uses += 1;
        if reusable.uses >= self.max_uses {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE as usize {
            idle.push(reusable);
        }
    }
}
