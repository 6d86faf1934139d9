//! HTTPS for the API and the dashboard (rustls with the *ring* provider).
//!
//! [`TlsListener`] hands axum connections whose handshake is done: handshakes run in tasks of
//! their own (at most [`HANDSHAKE_TIMEOUT`] each), so a client that stalls in its handshake
//! delays nobody else.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Reads the certificate chain and the private key; refuses a key file that others may read.
///
/// # Errors
/// A file that cannot be read or parsed, a key open to others, or a key that does not fit.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    key_file_is_closed("server.tls_key", key)?;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("server.tls_cert {}: {e}", cert.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("server.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "server.tls_cert {}: no certificate in the file",
            cert.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("server.tls_key {}: {e}", key.display()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS: {e}"))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| format!("server.tls_cert/tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Refuses a private key file that others than its owner may read (`setting` names it).
///
/// # Errors
/// A file that cannot be read, or one with group or other permissions.
pub fn key_file_is_closed(setting: &str, key: &Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(key).map_err(|e| format!("{setting} {}: {e}", key.display()))?;
        if m.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "{setting} {}: mode {:o} lets others read the private key (chmod 600 it)",
                key.display(),
                m.permissions().mode() & 0o777
            ));
        }
    }
    Ok(())
}

/// The PEM files of a TLS link to the broker, read and checked.
#[derive(Clone)]
pub struct BrokerTls {
    /// CA certificate(s), PEM.
    pub ca: Vec<u8>,
    /// Client certificate and key, PEM.
    pub client: Option<(Vec<u8>, protocol::Secret)>,
}

impl std::fmt::Debug for BrokerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerTls")
            .field("ca_bytes", &self.ca.len())
            .field(
                "client",
                &self.client.as_ref().map(|_| "certificate and key"),
            )
            .finish()
    }
}

/// Reads the broker link's CA and, for client authentication, certificate and key.
///
/// # Errors
/// A file that cannot be read, holds no certificate or key, or a key others can read.
pub fn broker_tls(ca: &Path, client: Option<(&Path, &Path)>) -> Result<BrokerTls, String> {
    // Each file is read once; what was read is what is checked and what is used.
    let certs_in = |setting: &str, p: &Path| -> Result<Vec<u8>, String> {
        let pem = std::fs::read(p).map_err(|e| format!("{setting} {}: {e}", p.display()))?;
        let n = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("{setting} {}: {e}", p.display()))?
            .len();
        if n == 0 {
            return Err(format!(
                "{setting} {}: no certificate in the file",
                p.display()
            ));
        }
        Ok(pem)
    };
    let ca_pem = certs_in("server.broker_tls_ca", ca)?;
    let client = match client {
        None => None,
        Some((cert, key)) => {
            let cert_pem = certs_in("server.broker_tls_cert", cert)?;
            key_file_is_closed("server.broker_tls_key", key)?;
            let key_pem = protocol::Secret::new(
                std::fs::read_to_string(key)
                    .map_err(|e| format!("server.broker_tls_key {}: {e}", key.display()))?,
            );
            PrivateKeyDer::from_pem_slice(key_pem.expose().as_bytes())
                .map_err(|e| format!("server.broker_tls_key {}: {e}", key.display()))?;
            Some((cert_pem, key_pem))
        }
    };
    Ok(BrokerTls { ca: ca_pem, client })
}

/// A listener of TLS connections for `axum::serve`.
#[derive(Debug)]
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Accepts on `tcp` and does each handshake in a task of its own. Failed handshakes are
    /// counted as bad requests.
    ///
    /// # Errors
    /// The socket has no local address.
    pub fn new(
        tcp: TcpListener,
        acceptor: TlsAcceptor,
        metrics: crate::metrics::Metrics,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = tcp.accept() => a,
                    () = tx.closed() => break,
                };
                let (sock, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!("HTTPS accept: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                let metrics = metrics.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(sock)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            metrics.bad_request();
                            tracing::debug!("TLS handshake with {peer}: {e}");
                        }
                        Err(_) => {
                            metrics.bad_request();
                            tracing::debug!("TLS handshake with {peer}: timed out");
                        }
                    }
                });
            }
        });
        Ok(Self { ready, local })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accepting task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn a_broker_client_key_others_can_read_is_refused() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().expect("dir");
        let key = dir.path().join("client.key");
        std::fs::write(
            &key,
            "-----BEGIN PRIVATE KEY-----\n-----END PRIVATE KEY-----\n",
        )
        .expect("write");
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        let e = key_file_is_closed("server.broker_tls_key", &key).expect_err("open key");
        assert!(
            e.contains("server.broker_tls_key") && e.contains("640"),
            "{e}"
        );
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert!(key_file_is_closed("server.broker_tls_key", &key).is_ok());
        // A CA file with no certificate in it is named, not trusted as empty.
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "not a certificate\n").expect("write");
        let e = broker_tls(&ca, None).expect_err("no certificate");
        assert!(e.contains("server.broker_tls_ca"), "{e}");
    }
}
