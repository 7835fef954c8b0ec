//! The client SDK: talks to any node of a cluster over QUIC with mutual TLS.
//!
//! A request goes to the node asked for, or to the cluster's nodes in turn until one answers
//! (so a down node costs a retry, not a failure). Any node coordinates any key.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use crate::certs;
use crate::home::{self, HomeError};
use crate::proto::{Consistency, ErrorKind, MemberView, Request, Response};
use crate::tls::{Identity, TlsError};
use crate::transport::{size_allowance, Transport, TransportError, REQUEST_TIMEOUT};

/// How long a client waits for a reply, and the time budget its requests carry (see
/// [`crate::deadline`]): the coordinator works to it less a margin, so that its "not enough
/// replicas" answer arrives before the client gives up. Puts add time for a large value.
pub const CLIENT_TIMEOUT: Duration =
    Duration::from_millis(2 * REQUEST_TIMEOUT.as_millis() as u64 + 1000);

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    #[error(transparent)]
    Home(#[from] HomeError),
    #[error(transparent)]
    Certs(#[from] certs::CertError),
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("no node answered: {0}")]
    NoNode(String),
    #[error("{message}")]
    Refused { kind: ErrorKind, message: String },
    #[error("unexpected reply from {addr}: {reply}")]
    Unexpected { addr: SocketAddr, reply: String },
}

/// What a get returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GetResult {
    pub found: bool,
    /// The live values, one per sibling.
    pub values: Vec<Vec<u8>>,
    /// The causal context to pass to the next put of this key.
    pub context: String,
}

pub struct Client {
    transport: Transport,
    nodes: Vec<SocketAddr>,
    next: AtomicUsize,
    /// Nodes that failed a request lately, and when: tried after the others for
    /// [`FAILED_NODE_BACKOFF`], so a dead node does not cost every request its timeout.
    failed: parking_lot::Mutex<std::collections::HashMap<SocketAddr, Instant>>,
}

/// How long a node that failed a request is tried only after the others.
pub const FAILED_NODE_BACKOFF: Duration = Duration::from_secs(5);

impl Client {
    pub fn new(identity: &Identity, nodes: Vec<SocketAddr>) -> Result<Client, ClientError> {
        Ok(Client {
            transport: Transport::client(identity)?.with_timeout(CLIENT_TIMEOUT),
            nodes,
            next: AtomicUsize::new(0),
            failed: parking_lot::Mutex::new(std::collections::HashMap::new()),
        })
    }

    /// A client of the cluster described in `home`, with the home's client certificate.
    pub fn from_home(home: &Path) -> Result<Client, ClientError> {
        let cluster = home::read(home)?;
        let dir = home::certs_dir(home);
        let own = certs::read(&dir, "client")?;
        let ca = certs::read_cert(&dir, "ca")?;
        let identity = Identity::new(&own, &ca)?;
        identity.check_valid_now(&certs::paths(&dir, "client").0)?;
        Client::new(&identity, cluster.nodes.iter().map(|n| n.addr).collect())
    }

    /// Closes the client's connections, telling the nodes (so they free their places at once
    /// instead of at the idle timeout).
    pub async fn close(&self) {
        self.transport.close().await;
    }

    pub fn nodes(&self) -> &[SocketAddr] {
        &self.nodes
    }

    /// Sends to `node`, or to the nodes in turn (starting with the next in rotation) until one
    /// answers. Returns the address that answered and its response.
    pub async fn request(
        &self,
        node: Option<SocketAddr>,
        request: &Request,
    ) -> Result<(SocketAddr, Response), ClientError> {
        self.request_longer(node, request, Duration::ZERO).await
    }

    /// [`Client::request`], waiting `extra` longer than the client timeout for each node.
    async fn request_longer(
        &self,
        node: Option<SocketAddr>,
        request: &Request,
        extra: Duration,
    ) -> Result<(SocketAddr, Response), ClientError> {
        let timeout = CLIENT_TIMEOUT + extra;
        if let Some(addr) = node {
            return Ok((
                addr,
                self.transport
                    .request_with_timeout(addr, request, timeout)
                    .await?,
            ));
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let mut order: Vec<SocketAddr> = (0..self.nodes.len())
            .map(|i| self.nodes[(start + i) % self.nodes.len()])
            .collect();
        {
            // Nodes that failed lately go last (the sort is stable: rotation breaks ties).
            let mut failed = self.failed.lock();
            failed.retain(|_, at| at.elapsed() < FAILED_NODE_BACKOFF);
            order.sort_by_key(|addr| failed.contains_key(addr));
        }
        let mut failures = Vec::new();
        for addr in order {
            match self
                .transport
                .request_with_timeout(addr, request, timeout)
                .await
            {
                Ok(response) => {
                    self.failed.lock().remove(&addr);
                    return Ok((addr, response));
                }
                Err(e) => {
                    self.failed.lock().insert(addr, Instant::now());
                    failures.push(e.to_string());
                }
            }
        }
        Err(ClientError::NoNode(if failures.is_empty() {
            "the cluster has no nodes".into()
        } else {
            failures.join("; ")
        }))
    }

    fn refused(response: Response, addr: SocketAddr) -> ClientError {
        match response {
            Response::Error { kind, message } => ClientError::Refused { kind, message },
            other => ClientError::Unexpected {
                addr,
                reply: format!("{other:?}"),
            },
        }
    }

    pub async fn get(
        &self,
        key: &[u8],
        consistency: Consistency,
        node: Option<SocketAddr>,
    ) -> Result<GetResult, ClientError> {
        let request = Request::Get {
            key: ByteBuf::from(key.to_vec()),
            consistency,
        };
        match self.request(node, &request).await? {
            (
                _,
                Response::Value {
                    found,
                    values,
                    context,
                },
            ) => Ok(GetResult {
                found,
                values: values.into_iter().map(ByteBuf::into_vec).collect(),
                context,
            }),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// Writes `value` (or deletes, with `None`); returns the new causal context.
    pub async fn put(
        &self,
        key: &[u8],
        value: Option<&[u8]>,
        context: Option<&str>,
        consistency: Consistency,
        lww: bool,
        node: Option<SocketAddr>,
    ) -> Result<String, ClientError> {
        let request = Request::Put {
            key: ByteBuf::from(key.to_vec()),
            value: value.map(|v| ByteBuf::from(v.to_vec())),
            context: context.map(str::to_string),
            consistency,
            lww,
            forwarded: false,
        };
        // The value may be handed on twice (to a replica, then to the others) before the reply.
        let extra = size_allowance(value.map_or(0, <[u8]>::len)) * 3;
        match self.request_longer(node, &request, extra).await? {
            (_, Response::Written { context }) => Ok(context),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// A node's view of the cluster: (the node's id, the members it knows).
    pub async fn status(
        &self,
        node: Option<SocketAddr>,
    ) -> Result<(String, Vec<MemberView>), ClientError> {
        match self.request(node, &Request::Status).await? {
            (_, Response::Members { node, members }) => Ok((node, members)),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }

    /// Has `node` repair the token range (after, upto] across its replicas (it must be one),
    /// sending at most `rate_bytes_per_sec` (0: unthrottled); waits up to the longest request
    /// budget ([`crate::deadline::REQUEST_BUDGET_MAX`]).
    pub async fn repair(
        &self,
        node: SocketAddr,
        after: u128,
        upto: u128,
        rate_bytes_per_sec: u64,
    ) -> Result<RangeRepaired, ClientError> {
        let request = Request::Repair {
            after,
            upto,
            rate_bytes_per_sec,
        };
        let extra = crate::deadline::REQUEST_BUDGET_MAX.saturating_sub(CLIENT_TIMEOUT);
        match self.request_longer(Some(node), &request, extra).await? {
            (
                _,
                Response::Repaired {
                    in_sync_before,
                    keys,
                    leaves_differing,
                    keys_sent,
                    bytes_sent,
                },
            ) => Ok(RangeRepaired {
                in_sync_before,
                keys,
                leaves_differing,
                keys_sent,
                bytes_sent,
            }),
            (addr, other) => Err(Self::refused(other, addr)),
        }
    }
}

/// What the repair of one token range did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RangeRepaired {
    /// Every replica held the same already.
    pub in_sync_before: bool,
    /// Keys in the range (on the replica with the most).
    pub keys: u64,
    /// Merkle leaves that differed.
    pub leaves_differing: u64,
    /// Replica writes sent (a key to a replica that lacked some of its versions).
    pub keys_sent: u64,
    pub bytes_sent: u64,
}
