//! QUIC transport: one endpoint per process, one connection per peer (reused), one
//! bidirectional stream per request, a timeout on every request.
//!
//! What a peer can make a node hold is bounded: at most [`STREAMS_PER_CONNECTION_MAX`]
//! requests at once per connection (QUIC's stream limit; unidirectional streams are not
//! allowed), QUIC's flow-control windows per connection ([`CONNECTION_RECEIVE_WINDOW_BYTES`],
//! [`CONNECTION_SEND_WINDOW_BYTES`]), and the bytes a request's [`RequestBudget`] lets it take
//! as they arrive; a reply that the peer does not take within [`RESPONSE_WRITE_TIMEOUT`] is
//! reset.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;

use crate::wire::budget::{Refused, RequestBudget};
use crate::wire::certs::NODE_SERVER_NAME;
use crate::wire::deadline::Deadline;
use crate::wire::proto::{self, ProtoError, Request, Response, MESSAGE_BYTES_MAX};
use crate::wire::tls::{self, Identity, TlsError};

/// How long a node waits for a request to arrive completely on a stream it accepted.
pub const STREAM_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// How long a node waits for a peer to take its reply before it resets the stream (a client
/// that never reads its replies must not pin them).
pub const RESPONSE_WRITE_TIMEOUT: Duration = Duration::from_secs(10);

/// The most requests (bidirectional streams) a peer may have open on one connection; more
/// wait for one to end (QUIC flow control).
pub const STREAMS_PER_CONNECTION_MAX: u32 = 128;
/// The most bytes a peer may send on one stream before the receiver has read them.
pub const STREAM_RECEIVE_WINDOW_BYTES: u32 = 2 << 20;
/// The most bytes a peer may send on one connection, over all its streams, before the
/// receiver has read them.
pub const CONNECTION_RECEIVE_WINDOW_BYTES: u32 = 4 << 20;
/// The most bytes of replies written to one connection and not yet acknowledged by the peer.
pub const CONNECTION_SEND_WINDOW_BYTES: u64 = 4 << 20;

/// The stream error code of a request refused by admission control (its reply says why).
const REFUSED_CODE: u32 = 1;
/// The stream error code of a reply the peer did not take in time.
const WRITE_TIMEOUT_CODE: u32 = 2;

/// Default time a request may take, connection included.
/// Connections idle longer than this are closed (keep-alives are sent more often).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
const KEEP_ALIVE: Duration = Duration::from_secs(2);

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
    /// The request was never sent: no connection, or no stream on it.
    #[error("cannot reach {addr}: {reason}")]
    Connect { addr: SocketAddr, reason: String },
    /// The connection closed after the request went out (in part or whole): the peer may have
    /// taken it.
    #[error("lost the connection to {addr}: {reason}")]
    ConnectionLost { addr: SocketAddr, reason: String },
    #[error("{addr} did not answer within {} ms", timeout.as_millis())]
    Timeout { addr: SocketAddr, timeout: Duration },
    #[error("stream to {addr} failed: {reason}")]
    Stream { addr: SocketAddr, reason: String },
    #[error("bad reply from {addr}: {reason}")]
    BadReply { addr: SocketAddr, reason: String },
    #[error("the reply from {addr} was not taken: {reason}")]
    Refused { addr: SocketAddr, reason: Refused },
    /// The node that answered at `addr` is not the one dialled (its address was reused by
    /// another node, say): nothing was sent.
    #[error(
        "{addr} answered as node {found}, not as node {expected}; the address belongs to \
         another node now"
    )]
    WrongNode {
        addr: SocketAddr,
        expected: String,
        found: String,
    },
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

/// The connection error code of a connection closed because the wrong node answered.
const WRONG_NODE_CODE: u32 = 3;

pub struct Transport {
    endpoint: quinn::Endpoint,
    connections: Mutex<HashMap<SocketAddr, quinn::Connection>>,
    /// One dial at a time per address: requests made at once while there is no connection
    /// share the one that the first dials (a node admits few connections per peer).
    dials: Mutex<HashMap<SocketAddr, Arc<tokio::sync::Mutex<()>>>>,
    /// The node each address is expected to be (set by a node from its members): a connection
    /// to one of them is used only if the certificate that answers names that node.
    expected: Mutex<HashMap<SocketAddr, String>>,
    timeout: Duration,
}

impl Transport {
    /// A node's endpoint: serves on `listen` and calls other nodes with the same identity.
    pub fn server(listen: SocketAddr, id: &Identity) -> Result<Transport, TransportError> {
        let mut endpoint = quinn::Endpoint::server(tls::server_config(id, quic_config())?, listen)
            .map_err(|e| TransportError::Setup(format!("cannot listen on {listen}: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(id, quic_config())?);
        Ok(Transport::with_endpoint(endpoint))
    }

    /// A client's endpoint.
    pub fn client(id: &Identity) -> Result<Transport, TransportError> {
        let any: SocketAddr = "0.0.0.0:0".parse().expect("a valid address");
        let mut endpoint = quinn::Endpoint::client(any)
            .map_err(|e| TransportError::Setup(format!("cannot open a UDP socket: {e}")))?;
        endpoint.set_default_client_config(tls::client_config(id, quic_config())?);
        Ok(Transport::with_endpoint(endpoint))
    }

    fn with_endpoint(endpoint: quinn::Endpoint) -> Transport {
        Transport {
            endpoint,
            connections: Mutex::new(HashMap::new()),
            dials: Mutex::new(HashMap::new()),
            expected: Mutex::new(HashMap::new()),
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

    fn cached(&self, addr: SocketAddr) -> Option<quinn::Connection> {
        self.connections
            .lock()
            .get(&addr)
            .filter(|conn| conn.close_reason().is_none())
            .cloned()
    }

    async fn connection(&self, addr: SocketAddr) -> Result<quinn::Connection, TransportError> {
        if let Some(conn) = self.cached(addr) {
            return Ok(conn);
        }
        let dial = self.dials.lock().entry(addr).or_default().clone();
        let _dialing = dial.lock().await;
        // Another request may have dialed while this one waited.
        if let Some(conn) = self.cached(addr) {
            return Ok(conn);
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
        let expected = self.expected.lock().get(&addr).cloned();
        if let Some(expected) = expected {
            let peer = tls::peer(&conn);
            if peer.node_id() != Some(expected.as_str()) {
                conn.close(WRONG_NODE_CODE.into(), b"not the node dialled");
                return Err(TransportError::WrongNode {
                    addr,
                    expected,
                    found: peer.node_id().unwrap_or("(a client)").to_string(),
                });
            }
        }
        self.connections.lock().insert(addr, conn.clone());
        Ok(conn)
    }

    /// Says which node each address is (a node's members): connections made to those
    /// addresses from now on are used only if the node id of the certificate that answers is
    /// the one given; a cached connection to an address whose node changed is dropped.
    /// Addresses not given (seeds, clients' nodes) are taken as any node of the cluster.
    pub fn expect_nodes(&self, nodes: impl IntoIterator<Item = (SocketAddr, String)>) {
        let nodes: HashMap<SocketAddr, String> = nodes.into_iter().collect();
        let changed: Vec<SocketAddr> = {
            let mut expected = self.expected.lock();
            let changed = nodes
                .iter()
                .filter(|(addr, id)| expected.get(*addr).is_some_and(|old| old != *id))
                .map(|(addr, _)| *addr)
                .collect();
            *expected = nodes;
            changed
        };
        for addr in changed {
            self.forget(addr);
        }
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
        self.send_encoded(
            addr,
            &proto::encode_request(request, Some(timeout)),
            timeout,
            None,
        )
        .await
    }

    /// Sends a request already encoded (one encoding sent to several peers) and waits for the
    /// reply within `timeout`; the reply's bytes are taken from `budget` as they arrive.
    pub async fn send_encoded(
        &self,
        addr: SocketAddr,
        request: &[u8],
        timeout: Duration,
        budget: Option<&RequestBudget>,
    ) -> Result<Response, TransportError> {
        let inner = self.request_inner(addr, request, budget);
        let result = match tokio::time::timeout(timeout, inner).await {
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
            if dead
                || matches!(
                    result,
                    Err(TransportError::Connect { .. } | TransportError::ConnectionLost { .. })
                )
            {
                self.forget(addr);
            }
        }
        result
    }

    /// Starts a bulk transfer: sends `request` (one answered with chunks, such as
    /// [`Request::ReplicaScan`]) and returns its chunks to read.
    pub async fn chunks(
        &self,
        addr: SocketAddr,
        request: &Request,
    ) -> Result<Chunks, TransportError> {
        let open = async {
            let conn = self.connection(addr).await?;
            let (mut send, recv) = conn.open_bi().await.map_err(|e| TransportError::Connect {
                addr,
                reason: connect_reason(&e),
            })?;
            let message = proto::encode_request(request, Some(CHUNK_TIMEOUT));
            send.write_all(&message)
                .await
                .map_err(|e| TransportError::Stream {
                    addr,
                    reason: e.to_string(),
                })?;
            let _ = send.finish();
            Ok(Chunks {
                addr,
                recv,
                ended: false,
                first: true,
            })
        };
        match tokio::time::timeout(self.timeout, open).await {
            Ok(result) => result,
            Err(_) => Err(TransportError::Timeout {
                addr,
                timeout: self.timeout,
            }),
        }
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
        request: &[u8],
        budget: Option<&RequestBudget>,
    ) -> Result<Response, TransportError> {
        let conn = self.connection(addr).await?;
        // When the peer closed the whole connection (it refused our certificate, say), its
        // reason says more than the stream's "connection lost".
        let stream_err = |e: &dyn std::fmt::Display| match conn.close_reason() {
            Some(closed) => TransportError::ConnectionLost {
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
        // A peer that refuses the request (admission control) stops reading it and says why
        // in its reply: read the reply even when the write was stopped.
        match send.write_all(request).await {
            Ok(()) => send.finish().map_err(|e| stream_err(&e))?,
            Err(quinn::WriteError::Stopped(_)) => {}
            Err(e) => return Err(stream_err(&e)),
        }
        let bytes = match read_message(&mut recv, budget).await {
            Ok(bytes) => bytes,
            Err(ReadError::Refused(reason)) => {
                let _ = recv.stop(REFUSED_CODE.into());
                return Err(TransportError::Refused { addr, reason });
            }
            Err(ReadError::TooLong) => {
                return Err(TransportError::BadReply {
                    addr,
                    reason: format!("over the limit of {MESSAGE_BYTES_MAX} bytes"),
                })
            }
            Err(ReadError::Stream(e)) => return Err(stream_err(&e)),
        };
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

/// Why a message could not be read.
enum ReadError {
    TooLong,
    Refused(Refused),
    Stream(quinn::ReadError),
}

/// Reads one message (the rest of the stream), at most [`MESSAGE_BYTES_MAX`] bytes, taking
/// every chunk from `budget` before it is kept.
async fn read_message(
    recv: &mut quinn::RecvStream,
    budget: Option<&RequestBudget>,
) -> Result<Vec<u8>, ReadError> {
    let mut message = Vec::new();
    loop {
        let room = MESSAGE_BYTES_MAX + 1 - message.len();
        match recv.read_chunk(room, true).await {
            Ok(Some(chunk)) => {
                if message.len() + chunk.bytes.len() > MESSAGE_BYTES_MAX {
                    return Err(ReadError::TooLong);
                }
                if let Some(budget) = budget {
                    // What the vector may grow to, not just what it holds.
                    let grown = (message.len() + chunk.bytes.len())
                        .next_power_of_two()
                        .min(MESSAGE_BYTES_MAX);
                    budget
                        .take(grown.saturating_sub(message.capacity()))
                        .map_err(ReadError::Refused)?;
                    message.reserve_exact(grown - message.len());
                }
                message.extend_from_slice(&chunk.bytes);
            }
            Ok(None) => return Ok(message),
            Err(e) => return Err(ReadError::Stream(e)),
        }
    }
}

/// Serves one request stream: reads the request (bounded, its bytes taken from `budget` as
/// they arrive), calls `handle` with the request's [`Deadline`] (from the time budget its
/// sender gave, counted from when the stream was accepted), writes the reply (taken from `budget` too, and reset if the
/// peer does not take it within [`RESPONSE_WRITE_TIMEOUT`]). A malformed, oversized or
/// refused request gets an error reply; it never takes the node down. What the request held
/// returns to the budget when the stream ends.
pub async fn serve_stream<F, Fut>(
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
    budget: Arc<RequestBudget>,
    handle: F,
) where
    F: FnOnce(Request, Arc<RequestBudget>, Deadline) -> Fut,
    Fut: std::future::Future<Output = Reply>,
{
    let start = std::time::Instant::now();
    let error = |kind, message: String| Response::Error { kind, message };
    // A peer that opens a stream and never finishes it must not hold the task forever.
    let read = tokio::time::timeout(STREAM_READ_TIMEOUT, read_message(&mut recv, Some(&budget)));
    let Ok(read) = read.await else {
        let _ = recv.stop(REFUSED_CODE.into());
        return;
    };
    let response = match read {
        Ok(bytes) => match proto::decode_request(&bytes) {
            Ok((request, asked)) => {
                drop(bytes);
                let deadline = Deadline::received(start, asked);
                match handle(request, budget.clone(), deadline).await {
                    Reply::One(response) => response,
                    Reply::Chunks(chunks) => return write_chunks(&mut send, chunks).await,
                }
            }
            Err(e @ ProtoError::UnknownRequest { .. }) => {
                error(proto::ErrorKind::Unsupported, e.to_string())
            }
            Err(e) => error(proto::ErrorKind::BadRequest, e.to_string()),
        },
        Err(ReadError::TooLong) => {
            // The rest is not wanted: the peer's write stops instead of waiting on the window.
            let _ = recv.stop(REFUSED_CODE.into());
            error(
                proto::ErrorKind::BadRequest,
                format!("request is over the limit of {MESSAGE_BYTES_MAX} bytes"),
            )
        }
        Err(ReadError::Refused(reason)) => {
            let _ = recv.stop(REFUSED_CODE.into());
            error(proto::ErrorKind::Unavailable, reason.to_string())
        }
        Err(ReadError::Stream(_)) => return,
    };
    let mut reply = proto::encode(&response);
    drop(response);
    if let Err(reason) = budget.take(reply.len()) {
        reply = proto::encode(&error(proto::ErrorKind::Unavailable, reason.to_string()));
    }
    match tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, send.write_all(&reply)).await {
        Ok(Ok(())) => {
            drop(reply);
            let _ = send.finish();
            // Give the peer time to read the reply before the stream is dropped.
            let _ = tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, send.stopped()).await;
        }
        Ok(Err(_)) => {}
        Err(_) => {
            let _ = send.reset(WRITE_TIMEOUT_CODE.into());
        }
    }
}

/// What a request's handler answers: one response, or the chunks of a bulk transfer (written
/// as they come, each a length-prefixed frame; see [`Chunks`] for the reading side).
pub enum Reply {
    One(Response),
    Chunks(tokio::sync::mpsc::Receiver<Response>),
}

impl From<Response> for Reply {
    fn from(response: Response) -> Reply {
        Reply::One(response)
    }
}

/// The most bytes of entries a chunk of a bulk transfer carries (a chunk holds at least one
/// entry, so one large entry makes a larger chunk, within [`MESSAGE_BYTES_MAX`]).
pub const CHUNK_BYTES: usize = 1 << 20;
/// How long the reader of a bulk transfer waits for its next chunk, and its writer for the
/// reader to take one.
pub const CHUNK_TIMEOUT: Duration = Duration::from_secs(10);

/// Writes the chunks of a bulk transfer as frames, each within [`CHUNK_TIMEOUT`]; a reader that
/// stops taking them gets its stream reset.
async fn write_chunks(
    send: &mut quinn::SendStream,
    mut chunks: tokio::sync::mpsc::Receiver<Response>,
) {
    while let Some(chunk) = chunks.recv().await {
        let message = proto::encode(&chunk);
        drop(chunk);
        let mut frame = Vec::with_capacity(4 + message.len());
        frame.extend_from_slice(&(message.len() as u32).to_be_bytes());
        frame.extend_from_slice(&message);
        drop(message);
        match tokio::time::timeout(CHUNK_TIMEOUT, send.write_all(&frame)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return,
            Err(_) => {
                let _ = send.reset(WRITE_TIMEOUT_CODE.into());
                return;
            }
        }
    }
    let _ = send.finish();
    let _ = tokio::time::timeout(RESPONSE_WRITE_TIMEOUT, send.stopped()).await;
}

/// The reading side of a bulk transfer: its chunks in order, each within [`CHUNK_TIMEOUT`].
pub struct Chunks {
    addr: SocketAddr,
    recv: quinn::RecvStream,
    /// The last chunk (or an error) was read.
    ended: bool,
    /// Nothing was read yet.
    first: bool,
}

impl Chunks {
    /// The next chunk, `None` after the last. A transfer that ends without its last chunk, a
    /// frame over [`MESSAGE_BYTES_MAX`] or a slow writer is an error.
    pub async fn next(&mut self) -> Option<Result<Response, TransportError>> {
        if self.ended {
            return None;
        }
        let addr = self.addr;
        let first = std::mem::replace(&mut self.first, false);
        let read = tokio::time::timeout(CHUNK_TIMEOUT, read_frame(&mut self.recv, first)).await;
        let frame = match read {
            Err(_) => Err(TransportError::Timeout {
                addr,
                timeout: CHUNK_TIMEOUT,
            }),
            Ok(Err(reason)) => Err(TransportError::Stream { addr, reason }),
            Ok(Ok(bytes)) => {
                proto::decode(&bytes).map_err(|e: ProtoError| TransportError::BadReply {
                    addr,
                    reason: e.to_string(),
                })
            }
        };
        self.ended = match &frame {
            Ok(Response::Chunk { last, .. }) => *last,
            _ => true,
        };
        Some(frame)
    }
}

/// Reads one length-prefixed frame. The first reply of a transfer may instead be one whole
/// message, not framed (a node that refused the transfer, or does not know the request,
/// answers as to any request): a message starts with a CBOR map, whose first byte is 0xa0 or
/// above, while a frame's length (at most [`MESSAGE_BYTES_MAX`]) starts with 0x00 or 0x01.
async fn read_frame(recv: &mut quinn::RecvStream, first: bool) -> Result<Vec<u8>, String> {
    let mut len = [0u8; 4];
    recv.read_exact(&mut len).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => {
            "the transfer ended before its last chunk".to_string()
        }
        e => e.to_string(),
    })?;
    if first && len[0] >= 0x80 {
        let rest = recv
            .read_to_end(MESSAGE_BYTES_MAX - len.len())
            .await
            .map_err(|e| e.to_string())?;
        return Ok([&len[..], &rest].concat());
    }
    let len = u32::from_be_bytes(len) as usize;
    if len > MESSAGE_BYTES_MAX {
        return Err(format!(
            "a chunk of {len} bytes is over the limit of {MESSAGE_BYTES_MAX} bytes"
        ));
    }
    // Grown as the bytes arrive, not reserved at the declared length: a peer that declares a
    // large frame and sends little holds little here.
    let mut frame = Vec::new();
    while frame.len() < len {
        let start = frame.len();
        frame.resize(start + (len - start).min(FRAME_PIECE_BYTES), 0);
        recv.read_exact(&mut frame[start..])
            .await
            .map_err(|e| format!("a chunk was cut short: {e}"))?;
    }
    Ok(frame)
}

/// How much of a frame is read at a time.
const FRAME_PIECE_BYTES: usize = 64 << 10;

/// Shares one transport among tasks.
pub type SharedTransport = Arc<Transport>;

/// QUIC's settings for every connection (streams, windows, idle timeout, keep-alives).
fn quic_config() -> Arc<quinn::TransportConfig> {
    let mut t = quinn::TransportConfig::default();
    t.max_idle_timeout(Some(
        IDLE_TIMEOUT
            .try_into()
            .expect("IDLE_TIMEOUT is within QUIC's idle timeout range"),
    ));
    t.keep_alive_interval(Some(KEEP_ALIVE));
    t.max_concurrent_bidi_streams(STREAMS_PER_CONNECTION_MAX.into());
    t.max_concurrent_uni_streams(0u32.into());
    t.stream_receive_window(STREAM_RECEIVE_WINDOW_BYTES.into());
    t.receive_window(CONNECTION_RECEIVE_WINDOW_BYTES.into());
    t.send_window(CONNECTION_SEND_WINDOW_BYTES);
    Arc::new(t)
}
