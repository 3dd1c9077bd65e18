//! Native TLS (issue 27): `mcpauth-server` serves HTTPS itself with rustls when
//! `tls_certificate` and `tls_private_key` name PEM files, for deployments without a reverse
//! proxy in front. The files are read again every [`RELOAD_INTERVAL`] and the new certificate
//! is used for every connection after, without a restart (a renewal by certbot or
//! cert-manager needs nothing else); a pair that does not load is logged and the one in use
//! kept.
//!
//! Handshakes run in tasks of their own, at most [`MAX_HANDSHAKES`] at once, at most
//! [`MAX_HANDSHAKES_PER_ADDRESS`] from one address (an IPv6 /64), and each for at most
//! [`HANDSHAKE_TIMEOUT`], so a client that opens connections and never completes one holds
//! up no other. A connection that moves no byte either way for [`IDLE_TIMEOUT`] is closed,
//! so idle ones cannot pile up.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::StartError;

/// How often the certificate and key files are read again.
pub(crate) const RELOAD_INTERVAL: Duration = Duration::from_secs(30);

/// How long a client may take to complete its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress at once; further connections wait to be accepted.
const MAX_HANDSHAKES: usize = 1024;

/// Handshakes in progress at once from one address; more are closed at once.
const MAX_HANDSHAKES_PER_ADDRESS: usize = 16;

/// How long a connection may move no byte, either way, before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The certificate chain and key in use, and the files they come from. Clones share them.
#[derive(Clone)]
pub struct TlsCertificates(Arc<Files>);

struct Files {
    certificate: PathBuf,
    private_key: PathBuf,
    current: RwLock<Arc<CertifiedKey>>,
    /// The two files' bytes as last loaded: a reload that finds the same changes nothing.
    loaded: Mutex<(Vec<u8>, Vec<u8>)>,
}

impl std::fmt::Debug for TlsCertificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificates")
            .field("certificate", &self.0.certificate)
            .field("private_key", &self.0.private_key)
            .finish_non_exhaustive()
    }
}

fn tls_error(what: &Path, why: impl std::fmt::Display) -> StartError {
    StartError::config(format!("TLS: {}: {why}", what.display()))
}

/// Reads and checks the pair: a chain of one certificate or more, a private key of a type
/// rustls signs with, and the key the first certificate's.
fn read_pair(
    certificate: &Path,
    private_key: &Path,
) -> Result<(CertifiedKey, Vec<u8>, Vec<u8>), StartError> {
    let chain_pem = std::fs::read(certificate).map_err(|e| tls_error(certificate, e))?;
    let key_pem = std::fs::read(private_key).map_err(|e| tls_error(private_key, e))?;
    let chain = CertificateDer::pem_slice_iter(&chain_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_error(certificate, format!("not a PEM certificate chain ({e})")))?;
    if chain.is_empty() {
        return Err(tls_error(
            certificate,
            "no certificate in it (expected -----BEGIN CERTIFICATE-----)",
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
        tls_error(
            private_key,
            format!("not a PEM private key (PKCS#8, PKCS#1 or SEC1): {e}"),
        )
    })?;
    let signing_key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| tls_error(private_key, format!("a key rustls cannot sign with: {e}")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    certified.keys_match().map_err(|e| {
        tls_error(
            private_key,
            format!(
                "not the key of the first certificate in {} ({e})",
                certificate.display()
            ),
        )
    })?;
    Ok((certified, chain_pem, key_pem))
}

impl TlsCertificates {
    /// Loads the PEM certificate chain at `certificate` (the server's certificate first) and
    /// the PEM private key at `private_key`.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] naming the file and what is wrong with it.
    pub fn load(certificate: &Path, private_key: &Path) -> Result<Self, StartError> {
        let (certified, chain, key) = read_pair(certificate, private_key)?;
        Ok(Self(Arc::new(Files {
            certificate: certificate.to_owned(),
            private_key: private_key.to_owned(),
            current: RwLock::new(Arc::new(certified)),
            loaded: Mutex::new((chain, key)),
        })))
    }

    /// Reads the files again; when they changed and load, new connections use them. Returns
    /// whether the certificate in use changed.
    ///
    /// # Errors
    ///
    /// [`StartError::Config`] when the new files do not load; the pair in use is kept.
    pub fn reload(&self) -> Result<bool, StartError> {
        let files = &self.0;
        let chain =
            std::fs::read(&files.certificate).map_err(|e| tls_error(&files.certificate, e))?;
        let key =
            std::fs::read(&files.private_key).map_err(|e| tls_error(&files.private_key, e))?;
        {
            let loaded = files.loaded.lock().unwrap_or_else(PoisonError::into_inner);
            if loaded.0 == chain && loaded.1 == key {
                return Ok(false);
            }
        }
        let (certified, chain, key) = read_pair(&files.certificate, &files.private_key)?;
        *files
            .current
            .write()
            .unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        *files.loaded.lock().unwrap_or_else(PoisonError::into_inner) = (chain, key);
        Ok(true)
    }

    /// The rustls configuration: HTTP/1.1, the certificate in use at each handshake.
    fn acceptor(&self) -> TlsAcceptor {
        let mut config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(self.clone()));
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        TlsAcceptor::from(Arc::new(config))
    }
}

impl rustls::server::ResolvesServerCert for TlsCertificates {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.0
                .current
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}

/// A connection closed after [`IDLE_TIMEOUT`] without progress.
pub(crate) type Connection = Idle<tokio_rustls::server::TlsStream<TcpStream>>;

/// A stream that fails with `TimedOut` once it has moved no byte for [`IDLE_TIMEOUT`] while
/// someone waits on it (hyper always does, between requests too).
pub(crate) struct Idle<S> {
    inner: S,
    deadline: std::pin::Pin<Box<tokio::time::Sleep>>,
}

impl<S> Idle<S> {
    fn new(inner: S) -> Self {
        Self {
            inner,
            deadline: Box::pin(tokio::time::sleep(IDLE_TIMEOUT)),
        }
    }

    fn moved(&mut self) {
        self.deadline
            .as_mut()
            .reset(tokio::time::Instant::now() + IDLE_TIMEOUT);
    }

    /// Pending, unless the connection has been idle too long.
    fn expired(&mut self, cx: &mut std::task::Context<'_>) -> std::task::Poll<std::io::Error> {
        self.deadline
            .as_mut()
            .poll(cx)
            .map(|()| std::io::Error::new(std::io::ErrorKind::TimedOut, "idle connection closed"))
    }
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for Idle<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        use std::task::Poll;
        let before = buf.filled().len();
        match std::pin::Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(result) => {
                if buf.filled().len() > before {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for Idle<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        match std::pin::Pin::new(&mut self.inner).poll_write(cx, buf) {
            Poll::Ready(result) => {
                if matches!(result, Ok(written) if written > 0) {
                    self.moved();
                }
                Poll::Ready(result)
            }
            Poll::Pending => self.expired(cx).map(Err),
        }
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// Handshakes in progress per address (an IPv6 /64), released when each ends.
#[derive(Default)]
struct PerAddress(Mutex<std::collections::HashMap<String, usize>>);

impl PerAddress {
    /// One more from `address`, unless it has [`MAX_HANDSHAKES_PER_ADDRESS`] already.
    fn admit(self: &Arc<Self>, address: std::net::IpAddr) -> Option<AddressSlot> {
        let key = mcpauth_http::caller_key(address);
        let mut counts = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let count = counts.entry(key.clone()).or_insert(0);
        if *count >= MAX_HANDSHAKES_PER_ADDRESS {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            counts: self.clone(),
            key,
        })
    }
}

/// A handshake's place in its address's count, given back when dropped.
struct AddressSlot {
    counts: Arc<PerAddress>,
    key: String,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut counts = self.counts.0.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(count) = counts.get_mut(&self.key) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                counts.remove(&self.key);
            }
        }
    }
}

/// Connections whose TLS handshake completed, as `axum::serve` takes them.
pub(crate) struct TlsListener {
    handshaken: mpsc::Receiver<(Connection, SocketAddr)>,
    local: SocketAddr,
    accepting: tokio::task::JoinHandle<()>,
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl TlsListener {
    /// Accepts on `tcp` and completes handshakes with `certificates`' pair in use.
    pub(crate) fn new(tcp: TcpListener, certificates: &TlsCertificates) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = certificates.acceptor();
        let (sender, handshaken) = mpsc::channel(64);
        let limit = Arc::new(tokio::sync::Semaphore::new(MAX_HANDSHAKES));
        let per_address = Arc::new(PerAddress::default());
        let accepting = tokio::spawn(async move {
            loop {
                let Ok(permit) = limit.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, mostly: wait rather than spin.
                        tracing::warn!(error = %e, "accepting a connection failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if sender.is_closed() {
                    return;
                }
                // One address may not hold every handshake slot.
                let Some(slot) = per_address.admit(peer.ip()) else {
                    tracing::debug!(%peer, "too many TLS handshakes from this address");
                    continue;
                };
                // Small responses go out at once (see serve_on).
                let _ = stream.set_nodelay(true);
                let (acceptor, sender) = (acceptor.clone(), sender.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                    // The slots go back with the handshake, not with the connection.
                    drop((permit, slot));
                    match handshake {
                        Ok(Ok(tls)) => {
                            let _ = sender.send((Idle::new(tls), peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            handshaken,
            local,
            accepting,
        })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = Connection;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(connection) => connection,
            // The accepting task is gone only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The peer address of a TLS connection, as `axum::serve` hands it over; [`peer_address`]
/// turns it into the `ConnectInfo<SocketAddr>` every layer reads.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TlsPeer(SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>>
    for TlsPeer
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// The outermost layer over TLS: the peer's address as plain TCP connections carry it.
pub(crate) async fn peer_address(
    mut request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::extract::ConnectInfo;
    if let Some(ConnectInfo(TlsPeer(peer))) =
        request.extensions().get::<ConnectInfo<TlsPeer>>().copied()
    {
        request.extensions_mut().insert(ConnectInfo(peer));
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_connection_that_moves_nothing_for_the_idle_timeout_is_closed() {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let (client, server) = tokio::io::duplex(64);
        let mut server = Idle::new(server);
        let mut client = client;
        // A byte resets the clock.
        tokio::time::advance(IDLE_TIMEOUT - Duration::from_secs(1)).await;
        client.write_all(b"x").await.unwrap_or_default();
        let mut byte = [0u8; 1];
        assert_eq!(server.read(&mut byte).await.ok(), Some(1));
        // Then nothing for the whole timeout: the read fails, TimedOut.
        let reading = tokio::spawn(async move { server.read(&mut byte).await });
        tokio::time::advance(IDLE_TIMEOUT + Duration::from_secs(1)).await;
        let failed = reading.await.ok().and_then(Result::err);
        assert_eq!(failed.map(|e| e.kind()), Some(std::io::ErrorKind::TimedOut));
        drop(client);
    }

    #[test]
    fn one_address_holds_at_most_its_share_of_handshakes() {
        let counts = Arc::new(PerAddress::default());
        let address: std::net::IpAddr = [192, 0, 2, 1].into();
        let held: Vec<_> = (0..MAX_HANDSHAKES_PER_ADDRESS)
            .filter_map(|_| counts.admit(address))
            .collect();
        assert_eq!(held.len(), MAX_HANDSHAKES_PER_ADDRESS);
        assert!(counts.admit(address).is_none(), "over its share");
        assert!(
            counts.admit([192, 0, 2, 2].into()).is_some(),
            "others unaffected"
        );
        drop(held);
        assert!(
            counts.admit(address).is_some(),
            "given back when the handshakes end"
        );
    }
}
