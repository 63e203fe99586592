//! Outgoing HTTP from a guest: refused unless `[grants] outgoing_http`
//! grants the destination, and then sent to the address that was checked.
//!
//! A grant is `*` (any host), a host name (`api.example.com`, compared
//! without regard to case) or an IP address, each with an optional port
//! (`api.example.com:8443`, `127.0.0.1:8080`, `[::1]:8080`); without a port
//! only 80 and 443 are allowed. The destination is resolved once, here:
//! under `*`, an address that is loopback, private, link-local, shared,
//! unspecified or multicast is refused (so neither a name that resolves to
//! one, nor DNS rebinding, reaches the host's own network); reaching one
//! takes a grant of that address. The connection goes to the address that
//! was checked, never to a second resolution of the name.
//!
//! `self` grants the app's own addresses: `localhost` or an IP address, at
//! a port the app is served on (so a page can fetch the app's own JSON API,
//! whatever port the server was given), and never another app's in the
//! same process.
//!
//! HTTPS is checked against the usual web roots, with one TLS client
//! configuration per build. Connections are kept alive and reused per
//! destination (`connection_pool`), only after the checks above.

use super::connection_pool::{ConnectionPool, Destination, Sender};
use arc_swap::ArcSwap;
use http::uri::Scheme;
use http::{Method, Request, Response};
use http_body::Body as _;
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpStream;
use wasmtime_wasi_http::p2::body::HyperOutgoingBody;
use wasmtime_wasi_http::{Error, RequestOptions};

/// How long connecting (and the TLS and HTTP handshakes) may take, unless
/// the guest asks for less.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// How long the first byte of the answer may take, unless the guest asks for less.
const FIRST_BYTE_TIMEOUT: Duration = Duration::from_secs(60);

/// One entry of `[grants] outgoing_http`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Grant {
    /// `*`: any host on a public address.
    Any { port: Option<u16> },
    /// A host name, lower case.
    Host { name: String, port: Option<u16> },
    /// An IP address, granted whatever kind of address it is.
    Address { ip: IpAddr, port: Option<u16> },
    /// `self`: the addresses this server listens on.
    Own,
}

/// The addresses one app is served on, for its `self` grant: each
/// listener's address is recorded when a request first comes through it.
/// Shared by the app's builds, and by no other app.
#[derive(Debug, Clone, Default)]
pub(crate) struct OwnAddresses(Arc<ArcSwap<Vec<SocketAddr>>>);

impl OwnAddresses {
    /// Count `address` (a listener's) as the app's own.
    pub(crate) fn record(&self, address: SocketAddr) {
        if !self.0.load().contains(&address) {
            self.0.rcu(|own| {
                let mut own = Vec::clone(own);
                if !own.contains(&address) {
                    own.push(address);
                }
                own
            });
        }
    }

    /// Whether a connection to `address` reaches the app.
    fn reach(&self, address: SocketAddr) -> bool {
        self.0.load().iter().any(|own| {
            own.port() == address.port()
                && (own.ip() == address.ip()
                    || (own.ip().is_unspecified() && address.ip().is_loopback()))
        })
    }
}

impl Grant {
    /// Parse `text`; `Err` says why it is not a grant.
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text == "self" {
            return Ok(Grant::Own);
        }
        let (host, port) = split_port(text)?;
        if host == "*" {
            return Ok(Grant::Any { port });
        }
        if let Ok(ip) = host.trim_start_matches('[').trim_end_matches(']').parse() {
            return Ok(Grant::Address { ip, port });
        }
        let valid = !host.is_empty()
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.');
        if !valid {
            return Err(format!(
                "`{text}` is not a host name, an IP address or `*` (with an optional `:PORT`), nor `self`"
            ));
        }
        Ok(Grant::Host {
            name: host.to_ascii_lowercase(),
            port,
        })
    }

    fn allows_port(&self, port: u16) -> bool {
        let granted = match self {
            Grant::Any { port } | Grant::Host { port, .. } | Grant::Address { port, .. } => *port,
            // Checked against the addresses themselves.
            Grant::Own => return true,
        };
        match granted {
            Some(granted) => granted == port,
            None => port == 80 || port == 443,
        }
    }
}

/// `host` and `:port` apart; IPv6 addresses come in brackets.
fn split_port(text: &str) -> Result<(&str, Option<u16>), String> {
    let (host, port) = match text.rsplit_once(':') {
        Some((host, port)) if !host.is_empty() && (!host.contains(':') || host.ends_with(']')) => {
            (host, Some(port))
        }
        _ => (text, None),
    };
    let port = port
        .map(|port| {
            port.parse::<u16>()
                .map_err(|_| format!("`{text}`: `{port}` is not a port"))
        })
        .transpose()?;
    Ok((host, port))
}

/// Whether `ip` is an address of the internet at large.
fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => {
            let [a, b, ..] = ip.octets();
            !(ip.is_loopback()
                || ip.is_private()
                || ip.is_link_local()
                || ip.is_unspecified()
                || ip.is_broadcast()
                || ip.is_multicast()
                || ip.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // shared address space
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(ip) => {
            let embedded = embedded_ipv4(ip);
            if !embedded.is_empty() {
                return embedded.into_iter().all(|v4| is_public(IpAddr::V4(v4)));
            }
            let first = ip.segments()[0];
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || (first & 0xffc0) == 0xfec0 // site local
                || first == 0x2001 && ip.segments()[1] == 0x0db8) // documentation
        }
    }
}

/// The IPv4 addresses an IPv6 address stands for, by every form that
/// embeds one: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`), IPv4-translated (`::ffff:0:a.b.c.d`), NAT64 (the
/// well-known `64:ff9b::/96` and the local-use `64:ff9b:1::/48`, RFC 6052
/// and 8215), 6to4 (`2002::/16`) and Teredo (`2001::/32`: its server and
/// its client). A connection to such an address reaches the IPv4 one, so
/// that one is judged.
fn embedded_ipv4(ip: std::net::Ipv6Addr) -> Vec<std::net::Ipv4Addr> {
    use std::net::Ipv4Addr;
    let s = ip.segments();
    let octets = ip.octets();
    let last = Ipv4Addr::new(octets[12], octets[13], octets[14], octets[15]);
    if s[..5] == [0; 5] && (s[5] == 0xffff || s[5] == 0) {
        // Mapped, or compatible (`::` and `::1` are themselves judged).
        return if s[5] == 0 && s[6] == 0 {
            Vec::new()
        } else {
            vec![last]
        };
    }
    if s[..4] == [0; 4] && s[4] == 0xffff && s[5] == 0 {
        return vec![last];
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return vec![last];
    }
    if s[..3] == [0x64, 0xff9b, 1] {
        // A /48 prefix: the address in bits 48-63 and 72-87, around `u`.
        return vec![Ipv4Addr::new(octets[6], octets[7], octets[9], octets[10])];
    }
    if s[0] == 0x2002 {
        return vec![Ipv4Addr::new(octets[2], octets[3], octets[4], octets[5])];
    }
    if s[0] == 0x2001 && s[1] == 0 {
        let server = Ipv4Addr::new(octets[4], octets[5], octets[6], octets[7]);
        let client = Ipv4Addr::from(!u32::from(last));
        return vec![server, client];
    }
    Vec::new()
}

/// The guest's outgoing requests under the grants.
#[derive(Clone)]
pub(crate) struct Outgoing {
    grants: Arc<[Grant]>,
    own: OwnAddresses,
    tls: tokio_rustls::TlsConnector,
    /// Keep-alive connections, shared by the build's instances.
    pool: Arc<ConnectionPool>,
}

type Sent = (
    Response<HyperOutgoingBody>,
    Box<dyn Future<Output = Result<(), Error>> + Send>,
);

impl std::fmt::Debug for Outgoing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outgoing")
            .field("grants", &self.grants)
            .field("own", &self.own)
            .finish_non_exhaustive()
    }
}

impl Outgoing {
    pub(crate) fn new(grants: Arc<[Grant]>, own: OwnAddresses) -> Self {
        let roots = rustls::RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.into(),
        };
        let config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        Self {
            grants,
            own,
            tls: tokio_rustls::TlsConnector::from(Arc::new(config)),
            pool: Arc::default(),
        }
    }

    /// Where `request` may go: the addresses to try, or why not.
    async fn destination(&self, uri: &http::Uri) -> Result<Vec<SocketAddr>, Error> {
        let authority = uri.authority().ok_or(Error::HttpRequestUriInvalid)?;
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let host = host.to_ascii_lowercase();
        let https = uri.scheme() == Some(&Scheme::HTTPS);
        let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
        let literal: Option<IpAddr> = host.parse().ok();
        let grant = self
            .grants
            .iter()
            .find(|grant| {
                grant.allows_port(port)
                    && match grant {
                        Grant::Any { .. } => true,
                        Grant::Host { name, .. } => *name == host,
                        Grant::Address { ip, .. } => literal == Some(*ip),
                        Grant::Own => literal.is_some() || host == "localhost",
                    }
            })
            .ok_or(Error::HttpRequestDenied)?;
        let addresses: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host.as_str(), port))
                .await
                .map_err(|_| Error::DnsError {
                    rcode: None,
                    info_code: None,
                })?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = match grant {
            Grant::Any { .. } => addresses
                .into_iter()
                .filter(|address| is_public(address.ip()))
                .collect(),
            Grant::Own => addresses
                .into_iter()
                .filter(|a| self.own.reach(*a))
                .collect(),
            Grant::Host { .. } | Grant::Address { .. } => addresses,
        };
        if allowed.is_empty() {
            return Err(Error::HttpRequestDenied);
        }
        Ok(allowed)
    }

    /// Send `request` if the grants allow it, on an idle keep-alive
    /// connection to an allowed address when there is one.
    pub(crate) async fn send(
        &self,
        mut request: Request<HyperOutgoingBody>,
        options: Option<RequestOptions>,
    ) -> Result<Sent, Error> {
        let addresses = self.destination(request.uri()).await?;
        let connect_timeout = options
            .and_then(|o| o.connect_timeout)
            .map_or(CONNECT_TIMEOUT, |t| t.min(CONNECT_TIMEOUT));
        let first_byte_timeout = options
            .and_then(|o| o.first_byte_timeout)
            .map_or(FIRST_BYTE_TIMEOUT, |t| t.min(FIRST_BYTE_TIMEOUT));
        let https = request.uri().scheme() == Some(&Scheme::HTTPS);
        let host = request
            .uri()
            .host()
            .unwrap_or_default()
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        // Origin-form on the wire: the authority is in `Host`.
        let path = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_string();
        *request.uri_mut() = path.parse().map_err(|_| Error::HttpRequestUriInvalid)?;
        let connect = || {
            let connecting = self.connect(https, &host, &addresses);
            async move {
                tokio::time::timeout(connect_timeout, connecting)
                    .await
                    .map_err(|_| Error::ConnectionTimeout)?
            }
        };
        let (destination, mut sender, reused) = match self.pool.checkout(https, &host, &addresses) {
            Some((destination, sender)) => (destination, sender, true),
            None => {
                let (destination, sender) = connect().await?;
                (destination, sender, false)
            }
        };
        // A request that may be sent twice (idempotent, with no body), in
        // case a reused connection turns out closed once it was written.
        let again = (reused
            && matches!(
                request.method(),
                &Method::GET | &Method::HEAD | &Method::OPTIONS
            )
            && request.body().is_end_stream())
        .then(|| {
            let mut copy = Request::new(
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            *copy.method_mut() = request.method().clone();
            *copy.uri_mut() = request.uri().clone();
            *copy.headers_mut() = request.headers().clone();
            copy
        });
        let sent = tokio::time::timeout(first_byte_timeout, async {
            match sender.try_send_request(request).await {
                Ok(response) => Ok((destination, sender, response)),
                // A reused connection the server had closed: the request,
                // if it was not sent or may be sent again, goes on a new one.
                Err(mut error)
                    if reused
                        && (error.message().is_some()
                            || (again.is_some() && error.error().is_incomplete_message())) =>
                {
                    let request = match error.take_message() {
                        Some(request) => request,
                        None => again.expect("checked"),
                    };
                    let (destination, mut sender) = connect().await?;
                    let response = sender.send_request(request).await.map_err(Error::from)?;
                    Ok((destination, sender, response))
                }
                Err(error) => Err(Error::from(error.into_error())),
            }
        });
        let (destination, sender, response) =
            sent.await.map_err(|_| Error::ConnectionReadTimeout)??;
        self.pool.checkin_when_ready(destination, sender);
        // The connection is driven by its own task; its failures reach the
        // guest through the body.
        let io: Box<dyn Future<Output = Result<(), Error>> + Send> = Box::new(async { Ok(()) });
        let response = response.map(|body| body.map_err(Error::from).boxed_unsync());
        Ok((response, io))
    }

    /// A new connection to the first of `addresses` that answers (TLS with
    /// `host` as the server name when `https`), driven by a task of its own.
    async fn connect(
        &self,
        https: bool,
        host: &str,
        addresses: &[SocketAddr],
    ) -> Result<(Destination, Sender), Error> {
        let stream = TcpStream::connect(addresses)
            .await
            .map_err(Error::Connect)?;
        let address = stream.peer_addr().map_err(Error::Connect)?;
        let _ = stream.set_nodelay(true);
        let stream: Box<dyn Stream> = if https {
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .map_err(|_| Error::HttpRequestUriInvalid)?;
            Box::new(self.tls.connect(name, stream).await.map_err(Error::Tls)?)
        } else {
            Box::new(stream)
        };
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(Error::from)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!("outgoing connection to {address}: {error}");
            }
        });
        let destination = Destination {
            https,
            name: host.to_string(),
            address,
        };
        Ok((destination, sender))
    }
}

/// What a connection is, plain or encrypted.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

#[cfg(test)]
mod tests {
    use super::*;

    fn outgoing(grants: &[&str]) -> Outgoing {
        let grants: Vec<Grant> = grants.iter().map(|g| Grant::parse(g).unwrap()).collect();
        Outgoing::new(Arc::from(grants), OwnAddresses::default())
    }

    async fn allowed(outgoing: &Outgoing, url: &str) -> bool {
        outgoing.destination(&url.parse().unwrap()).await.is_ok()
    }

    #[tokio::test]
    async fn any_host_is_never_a_private_address() {
        let any = outgoing(&["*"]);
        for url in [
            "http://127.0.0.1/",
            "http://localhost/",
            "http://169.254.169.254/latest/meta-data",
            "http://10.0.0.1/",
            "http://[::1]/",
            "http://0.0.0.0/",
            "http://[::ffff:127.0.0.1]/",
            // IPv6 forms that embed a private IPv4 address.
            "http://[::127.0.0.1]/",
            "http://[::10.0.0.1]/",
            "http://[::ffff:0:127.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[64:ff9b:1:7f00:0:100::]/",
            "http://[2002:7f00:1::]/",
            "http://[2002:c0a8:101::1]/",
            "http://[2001:0:7f00:1::]/",
            "http://[2001:0:5db8:d70e::80ff:fffe]/",
        ] {
            assert!(!allowed(&any, url).await, "{url}");
        }
        assert!(allowed(&any, "http://93.184.215.14/").await);
        for public in [
            "http://[64:ff9b::5db8:d70e]/",
            "http://[2002:5db8:d70e::1]/",
            "http://[2606:4700::1111]/",
        ] {
            assert!(allowed(&any, public).await, "{public}");
        }
        assert!(
            !allowed(&any, "http://93.184.215.14:8080/").await,
            "80 and 443 only"
        );
    }

    #[tokio::test]
    async fn self_grants_only_this_apps_own_addresses() {
        let own = outgoing(&["self"]);
        let other = outgoing(&["self"]);
        assert!(!allowed(&own, "http://127.0.0.1:47001/").await);
        own.own.record("127.0.0.1:47001".parse().unwrap());
        other.own.record("0.0.0.0:47003".parse().unwrap());
        assert!(allowed(&own, "http://127.0.0.1:47001/").await);
        assert!(allowed(&own, "http://localhost:47001/").await);
        assert!(!allowed(&own, "http://127.0.0.1:47002/").await);
        assert!(!allowed(&own, "http://example.com:47001/").await);
        assert!(
            !allowed(&own, "http://127.0.0.1:47003/").await,
            "another app's"
        );
        assert!(
            allowed(&other, "http://127.0.0.1:47003/").await,
            "all interfaces"
        );
        assert!(!allowed(&other, "http://127.0.0.1:47001/").await);
    }

    #[tokio::test]
    async fn grants_name_hosts_ports_and_addresses() {
        let granted = outgoing(&["API.example.com:8443", "127.0.0.1:8080", "93.184.215.14"]);
        assert!(
            allowed(&granted, "http://127.0.0.1:8080/").await,
            "granted by address"
        );
        assert!(!allowed(&granted, "http://127.0.0.1:8081/").await);
        assert!(!allowed(&granted, "http://93.184.215.14:22/").await);
        assert!(allowed(&granted, "https://93.184.215.14/").await);
        let denied = granted
            .destination(&"https://api.example.com:9999/".parse().unwrap())
            .await;
        assert!(matches!(denied, Err(Error::HttpRequestDenied)));
    }

    #[test]
    fn grants_parse_or_say_why_not() {
        assert_eq!(
            Grant::parse("[::1]:80"),
            Ok(Grant::Address {
                ip: "::1".parse().unwrap(),
                port: Some(80)
            })
        );
        assert_eq!(
            Grant::parse("Api.Example:8443"),
            Ok(Grant::Host {
                name: "api.example".into(),
                port: Some(8443)
            })
        );
        assert!(Grant::parse("http://x").is_err());
        assert!(Grant::parse("x:http").is_err());
    }
}
