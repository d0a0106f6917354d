//! The gRPC listener's TLS accept loop: each TCP connection is handshaken with the server config
//! live when it arrived (swapped by `tls_reload`), each in its own task so a slow or silent client
//! cannot hold up the others. The streams it yields are `tokio_rustls` server streams, whose
//! tonic `Connected` impl carries the peer's certificates to `Request::peer_certs()` — what the
//! `PeerGate` admits streams by.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use rustls::server::ServerConfig;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::wrappers::ReceiverStream;
use tokio_stream::{Stream, StreamExt};

/// How long a client may take to finish its TLS handshake before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshaken connections waiting for the server to take them.
const READY_BACKLOG: usize = 64;

/// The TLS connections of `tcp`, each handshaken with `live`'s config at its arrival. Dropping
/// the returned stream (the server stopping) stops accepting and drops `tcp`.
pub fn incoming(
    tcp: impl Stream<Item = std::io::Result<TcpStream>> + Send + Unpin + 'static,
    live: Arc<ArcSwap<ServerConfig>>,
) -> impl Stream<Item = std::io::Result<TlsStream<TcpStream>>> {
    let (ready, taken) = mpsc::channel(READY_BACKLOG);
    tokio::spawn(accept(tcp, live, ready));
    ReceiverStream::new(taken).map(Ok)
}

async fn accept(
    mut tcp: impl Stream<Item = std::io::Result<TcpStream>> + Unpin,
    live: Arc<ArcSwap<ServerConfig>>,
    ready: mpsc::Sender<TlsStream<TcpStream>>,
) {
    loop {
        let conn = tokio::select! {
            _ = ready.closed() => return,
            conn = tcp.next() => conn,
        };
        let conn = match conn {
            Some(Ok(conn)) => conn,
            Some(Err(e)) => {
                tracing::debug!(error = %e, "accepting a gRPC connection failed");
                continue;
            }
            None => return,
        };
        let peer = conn.peer_addr().ok();
        let acceptor = TlsAcceptor::from(live.load_full());
        let ready = ready.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(conn)).await {
                Ok(Ok(tls)) => {
                    let _ = ready.send(tls).await;
                }
                Ok(Err(e)) => tracing::debug!(?peer, error = %e, "gRPC TLS handshake failed"),
                Err(_) => tracing::debug!(?peer, "gRPC TLS handshake timed out"),
            }
        });
    }
}
