//! Keep-alive connections for the guests' outgoing HTTP, reused per
//! destination: the scheme, the host name (the TLS server name) and the
//! address the grants checked. A request is checked and resolved first,
//! every time; only then may it take an idle connection, and only one to
//! an address it was allowed. hyper-util's pooled client keys its pool by
//! the URI and resolves in its connector, so it cannot say "a connection
//! to this checked address only": this is the little it takes here.
//!
//! A connection goes back to the pool when hyper says it can take the next
//! request (its response was read to the end); one whose response was
//! dropped half read is closed. Idle connections are kept for
//! [`IDLE_TIMEOUT`], [`MAX_IDLE_PER_DESTINATION`] per destination and
//! [`MAX_IDLE`] in all at most; those past their time are closed whenever
//! a connection comes back.

use hyper::client::conn::http1::SendRequest;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;

/// How long an idle connection is kept (servers close theirs after 5 s
/// to 75 s; a connection closed meanwhile is noticed before use, and a
/// request it could not take is sent on a new one).
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Idle connections kept per destination.
const MAX_IDLE_PER_DESTINATION: usize = 32;
/// Idle connections kept in all.
const MAX_IDLE: usize = 256;

/// Where a connection goes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Destination {
    pub(crate) https: bool,
    /// The host name the request named (the TLS server name).
    pub(crate) name: String,
    /// The address the connection is to, which the grants allowed.
    pub(crate) address: SocketAddr,
}

/// A connection's sending half, as the pool hands it out.
pub(crate) type Sender = SendRequest<HyperOutgoingBody>;

struct Idle {
    sender: Sender,
    since: Instant,
}

/// The idle connections of one build's guests.
#[derive(Default)]
pub(crate) struct ConnectionPool {
    idle: Mutex<HashMap<Destination, Vec<Idle>>>,
}

impl ConnectionPool {
    /// An open idle connection for `https` and `name` to one of
    /// `addresses` (tried in order), if there is one.
    pub(crate) fn checkout(
        &self,
        https: bool,
        name: &str,
        addresses: &[SocketAddr],
    ) -> Option<(Destination, Sender)> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        for &address in addresses {
            let destination = Destination {
                https,
                name: name.to_string(),
                address,
            };
            let Some(senders) = idle.get_mut(&destination) else {
                continue;
            };
            let mut found = None;
            while let Some(candidate) = senders.pop() {
                if candidate.since.elapsed() < IDLE_TIMEOUT
                    && candidate.sender.is_ready()
                    && !candidate.sender.is_closed()
                {
                    found = Some(candidate.sender);
                    break;
                }
            }
            if senders.is_empty() {
                idle.remove(&destination);
            }
            if let Some(sender) = found {
                return Some((destination, sender));
            }
        }
        None
    }

    /// Keep `sender` for reuse once it can take another request.
    pub(crate) fn checkin_when_ready(
        self: &Arc<Self>,
        destination: Destination,
        mut sender: Sender,
    ) {
        let pool = Arc::downgrade(self);
        tokio::spawn(async move {
            if sender.ready().await.is_err() {
                return;
            }
            let Some(pool) = pool.upgrade() else {
                return;
            };
            let mut idle = pool.idle.lock().unwrap_or_else(|e| e.into_inner());
            // Close what is past its time (at most MAX_IDLE to look at).
            idle.retain(|_, senders| {
                senders.retain(|s| s.since.elapsed() < IDLE_TIMEOUT && !s.sender.is_closed());
                !senders.is_empty()
            });
            let total: usize = idle.values().map(Vec::len).sum();
            if total >= MAX_IDLE {
                return;
            }
            let senders = idle.entry(destination).or_default();
            if senders.len() < MAX_IDLE_PER_DESTINATION {
                senders.push(Idle {
                    sender,
                    since: Instant::now(),
                });
            }
        });
    }
}
