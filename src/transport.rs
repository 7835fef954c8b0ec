//! QUIC transport: one endpoint per process, one connection per peer (reused), one
//! bidirectional stream per request, a timeout on every request.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::certs::NODE_SERVER_NAME;
use crate::proto::{self, ProtoError, Request, Response, MESSAGE_BYTES_MAX};
use crate::tls::{self, Identity, TlsError};

/// How long a node waits for a request to arrive completely on a stream it accepted.
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// Default time a request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// Extra time a request carrying a large value may take, per MiB of the value: replicas must
/// move it, merge it and fsync it.
pub const TIMEOUT_PER_MIB: Duration = Duration::from_millis(250);

/// How much longer than its timeout a request carrying `bytes` of value may take.
pub fn size_allowance(bytes: usize) -> Duration {
    TIMEOUT_PER_MIB * (bytes >> 20) as u32
}

#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum TransportError {
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    #[error("{addr} did not answer within {} ms", timeout.as_millis())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("stream to {addr} failed: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("bad reply from {addr}: {reason}")]
    BadReply { addr: SocketAddr, reason: String },
    #[error("{0}")]
    Setup(String),
}

impl From<TlsError> for TransportError {
    fn from(e: TlsError) -> Self {
        TransportError::Setup(e.to_string())
    }
}

/// Describes a failed handshake in words a person can act on.
fn connect_reason(e: &quinn::ConnectionError) -> String {
    let text = e.to_string();
    if text.contains("certificate") || text.contains("handshake") || text.contains("crypto") {
        format!("the TLS handshake failed ({text}); are both sides using certificates from the same cluster CA?")
    } else {
        text
    }
}

pub struct Transport {
    endpoint: quinn::Endpoint,
    connections: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    timeout: Duration,
}

impl Transport {
    /// A node's endpoint: serves on `listen` and calls other nodes with the same identity.
    pub fn server(listen: SocketAddr, id: &Identity) -> Result<Transport, TransportError> {
        let mut endpoint = quinn::Endpoint::server(tls::server_config(id)?, listen)
            .map_err(|e| TransportError::Setup(format!("cannot listen on {listen}: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(id)?);
        Ok(Transport::with_endpoint(endpoint))
    }

    /// A client's endpoint.
    pub fn client(id: &Identity) -> Result<Transport, TransportError> {
        let any: SocketAddr = "0.0.0.0:0".parse().expect("a valid address");
        let mut endpoint = quinn::Endpoint::client(any)
            .map_err(|e| TransportError::Setup(format!("cannot open a UDP socket: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(id)?);
        Ok(Transport::with_endpoint(endpoint))
    }

    fn with_endpoint(endpoint: quinn::Endpoint) -> Transport {
        Transport {
            endpoint,
            connections: Mutex::new(HashMap::new()),
            timeout: REQUEST_TIMEOUT,
        }
    }

    pub fn with_timeout(mut self, timeout: Duration) -> Transport {
        self.timeout = timeout;
        self
    }

    pub fn endpoint(&self) -> &quinn::Endpoint {
        &self.endpoint
    }

    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.endpoint.local_addr().ok()
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, TransportError> {
        if let Some(conn) = self.connections.lock().get(&addr) {
            if conn.close_reason().is_none() {
                return Ok(conn.clone());
            }
        }
        let connecting =
            self.endpoint
                .connect(addr, NODE_SERVER_NAME)
                .map_err(|e| TransportError::Connect {
                    addr,
                    reason: e.to_string(),
                })?;
        let conn = connecting.await.map_err(|e| TransportError::Connect {
            addr,
            reason: connect_reason(&e),
        })?;
        self.connections.lock().insert(addr, conn.clone());
        Ok(conn)
    }

    /// Sends `request` to `addr` and waits for the response, within the request timeout.
    pub async fn request(
        &self,
        addr: SocketAddr,
        request: &Request,
    ) -> Result<Response, TransportError> {
        self.request_with_timeout(addr, request, self.timeout).await
    }

    /// Like [`Transport::request`] with another timeout.
    pub async fn request_with_timeout(
        &self,
        addr: SocketAddr,
        request: &Request,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let result = match tokio::time::timeout(timeout, self.request_inner(addr, request)).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout { addr, timeout }),
        };
        // A dead connection is dropped so the next request dials afresh (the peer may have
        // restarted); a slow request alone does not close a connection others are using.
        if result.is_err() {
            let dead = self
                .connections
                .lock()
                .get(&addr)
                .is_some_and(|c| c.close_reason().is_some());
            if dead || matches!(result, Err(TransportError::Connect { .. })) {
                self.forget(addr);
            }
        }
        result
    }

    /// Who answered at `addr` on the cached connection, as its certificate says.
    pub fn peer_of(&self, addr: SocketAddr) -> Option<tls::Peer> {
        self.connections.lock().get(&addr).map(tls::peer)
    }

    /// Drops the cached connection to `addr` (for instance because the peer restarted).
    pub fn forget(&self, addr: SocketAddr) {
        if let Some(conn) = self.connections.lock().remove(&addr) {
            conn.close(0u32.into(), b"reconnecting");
        }
    }

    async fn request_inner(
        &self,
        addr: SocketAddr,
        request: &Request,
    ) -> Result<Response, TransportError> {
        let conn = self.connection(addr).await?;
        // When the peer closed the whole connection (it refused our certificate, say), its
        // reason says more than the stream's "connection lost".
        let stream_err = |e: &dyn std::fmt::Display| match conn.close_reason() {
            Some(closed) => TransportError::Connect {
                addr,
                reason: connect_reason(&closed),
            },
            None => TransportError::Stream {
                addr,
                reason: e.to_string(),
            },
        };
        let (mut send, mut recv) = match conn.open_bi().await {
            Ok(pair) => pair,
            Err(e) => {
                // The cached connection died; forget it so the next request reconnects.
                self.connections.lock().remove(&addr);
                return Err(TransportError::Connect {
                    addr,
                    reason: connect_reason(&e),
                });
            }
        };
        send.write_all(&proto::encode(request))
            .await
            .map_err(|e| stream_err(&e))?;
        send.finish().map_err(|e| stream_err(&e))?;
        let bytes = recv
            .read_to_end(MESSAGE_BYTES_MAX)
            .await
            .map_err(|e| stream_err(&e))?;
        proto::decode(&bytes).map_err(|e: ProtoError| TransportError::BadReply {
            addr,
            reason: e.to_string(),
        })
    }

    /// Closes every connection and waits (briefly) for peers to be told.
    pub async fn close(&self) {
        self.endpoint.close(0u32.into(), b"closing");
        let _ = tokio::time::timeout(Duration::from_millis(500), self.endpoint.wait_idle()).await;
    }
}

/// Serves one request stream: reads the request (bounded), calls `handle`, writes the reply.
/// A malformed or oversized request gets an error reply; it never takes the node down.
pub async fn serve_stream<F, Fut>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    handle: F,
) where
    F: FnOnce(Request) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    // A peer that opens a stream and never finishes it must not hold the task forever.
    let read = tokio::time::timeout(STREAM_READ_TIMEOUT, recv.read_to_end(MESSAGE_BYTES_MAX));
    let Ok(read) = read.await else { return };
    let response = match read {
        Ok(bytes) => match proto::decode::<Request>(&bytes) {
            Ok(request) => handle(request).await,
            Err(e) => Response::Error {
                kind: proto::ErrorKind::BadRequest,
                message: e.to_string(),
            },
        },
        Err(quinn::ReadToEndError::TooLong) => Response::Error {
            kind: proto::ErrorKind::BadRequest,
            message: format!("request is over the limit of {MESSAGE_BYTES_MAX} bytes"),
        },
        Err(_) => return,
    };
    if send.write_all(&proto::encode(&response)).await.is_ok() {
        let _ = send.finish();
        // Give the peer time to read the reply before the stream is dropped.
        let _ = tokio::time::timeout(Duration::from_secs(5), send.stopped()).await;
    }
}

/// Shares one transport among tasks.
pub type SharedTransport = Arc<Transport>;
