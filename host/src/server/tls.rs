//! HTTPS: a certificate chain and its key from PEM files (rustls, with
//! ALPN `h2` and `http/1.1`), reloaded when the files change. A reload
//! applies to new connections; open ones keep the certificate they began
//! with. A bad certificate or key is an error naming the file at start,
//! and a logged error (the old pair kept) on reload.
//!
//! Reloads poll the files' metadata every [`POLL`] rather than watching
//! them: Kubernetes replaces a mounted Secret by swapping a symlink, which a
//! watch on the files themselves misses, and a `stat` a second costs
//! nothing.

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio_rustls::TlsAcceptor;
use wasmtime::{Result, bail, format_err};

/// How often the files are checked for a change.
const POLL: Duration = Duration::from_secs(1);

/// The certificate and key files, and the TLS settings they make.
pub struct Tls {
    cert: PathBuf,
    key: PathBuf,
    config: ArcSwap<ServerConfig>,
    /// The files' stamps when the pair in use was read.
    loaded: [Option<Stamp>; 2],
}

/// What tells that a file changed: its inode, modification and change
/// times, and length (following symlinks), so that a copy that keeps the
/// modification time and the length is still seen.
type Stamp = (u64, SystemTime, i64, i64, u64);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tls")
            .field("cert", &self.cert)
            .field("key", &self.key)
            .finish_non_exhaustive()
    }
}

impl Tls {
    /// Load the certificate chain at `cert` and the private key at `key`
    /// (PEM), with a clear error naming the file that is wrong.
    pub fn load(cert: &Path, key: &Path) -> Result<Self> {
        // Stamped before reading: a change made while the app compiles,
        // before `watch` starts, is still seen.
        let loaded = [stamp(cert), stamp(key)];
        let config = server_config(cert, key)?;
        Ok(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            config: ArcSwap::from_pointee(config),
            loaded,
        })
    }

    /// An acceptor with the pair in use now.
    pub(super) fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(self.config.load_full())
    }

    /// Reload the pair whenever either file changes, until dropped.
    pub(super) async fn watch(self: Arc<Self>) {
        let mut seen = self.loaded;
        loop {
            tokio::time::sleep(POLL).await;
            let now = self.stamps();
            if now == seen {
                continue;
            }
            seen = now;
            match server_config(&self.cert, &self.key) {
                Ok(config) => {
                    self.config.store(Arc::new(config));
                    tracing::info!("reloaded the TLS certificate `{}`", self.cert.display());
                }
                // A pair caught half-written is read again at the next change.
                Err(error) => tracing::error!("{error:#}; keeping the certificate in use"),
            }
        }
    }

    fn stamps(&self) -> [Option<Stamp>; 2] {
        [stamp(&self.cert), stamp(&self.key)]
    }
}

fn stamp(path: &Path) -> Option<Stamp> {
    use std::os::unix::fs::MetadataExt as _;
    let metadata = std::fs::metadata(path).ok()?;
    Some((
        metadata.ino(),
        metadata.modified().ok()?,
        metadata.ctime(),
        metadata.ctime_nsec(),
        metadata.len(),
    ))
}

fn server_config(cert: &Path, key: &Path) -> Result<ServerConfig> {
    let read = |path: &Path, what: &str| {
        std::fs::read(path).map_err(|error| {
            format_err!(
                "failed to read the TLS {what} `{}`: {error}",
                path.display()
            )
        })
    };
    let cert_pem = read(cert, "certificate")?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|error| {
            format_err!(
                "the TLS certificate `{}` is not valid PEM: {error}",
                cert.display()
            )
        })?;
    if chain.is_empty() {
        bail!(
            "the TLS certificate `{}` holds no certificate (a PEM `BEGIN CERTIFICATE` block)",
            cert.display()
        );
    }
    let key_pem = read(key, "key")?;
    let private_key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|error| {
        format_err!(
            "the TLS key `{}` holds no private key (PEM PKCS#8, PKCS#1 or SEC1): {error}",
            key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|error| format_err!("failed to set up TLS: {error}"))?
        .with_no_client_auth()
        .with_single_cert(chain, private_key)
        .map_err(|error| {
            format_err!(
                "the TLS key `{}` does not fit the certificate `{}`: {error}",
                key.display(),
                cert.display()
            )
        })?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
