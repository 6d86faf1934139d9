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
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let m =
            std::fs::metadata(key).map_err(|e| format!("server.tls_key {}: {e}", key.display()))?;
        if m.permissions().mode() & 0o077 != 0 {
            return Err(format!(
                "server.tls_key {}: mode {:o} lets others read the private key (chmod 600 it)",
                key.display(),
                m.permissions().mode() & 0o777
            ));
        }
    }
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
