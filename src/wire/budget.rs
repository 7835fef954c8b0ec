//! Admission control: the bytes a node holds for requests in flight, bounded per node and per
//! connection.
//!
//! Every byte a node takes in or makes for a request (the request as it arrives, the versions
//! it reads for a get, a put's encoded versions, the reply waiting for a slow reader) is taken
//! from the request's [`RequestBudget`] before it is held: from its connection's share
//! ([`Limits::connection_bytes_in_flight_max`]) and from the node's pool
//! ([`Limits::request_bytes_in_flight_max`]). When either is spent, the request is refused
//! with a reason ([`Refused`], answered as `Unavailable`) instead of the node growing; the
//! bytes return to both when the request's stream ends. So a client that floods a node, or
//! never reads its replies, holds at most its connections' shares, and other clients keep
//! the rest.

use std::sync::Arc;

use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Default bytes a node holds for requests in flight, over all connections.
pub const REQUEST_BYTES_IN_FLIGHT_MAX: usize = 1 << 30;
/// Default bytes one connection's requests may hold: room for one request on a value of the
/// largest size and what it makes (a get at ALL of a 16 MiB value holds its copy, two
/// replicas' replies, a read repair and the reply: about 100 MiB).
pub const CONNECTION_BYTES_IN_FLIGHT_MAX: usize = 128 << 20;

/// The share of [`Limits::request_bytes_in_flight_max`] kept for requests from other nodes
/// (replica reads and writes, gossip, repair), in percent: clients together hold at most the
/// rest, so however many client connections a node holds, replication is never refused for
/// want of bytes they took.
pub const NODE_RESERVE_PERCENT: usize = 25;

/// A node's budgets, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub request_bytes_in_flight_max: usize,
    pub connection_bytes_in_flight_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            request_bytes_in_flight_max: REQUEST_BYTES_IN_FLIGHT_MAX,
            connection_bytes_in_flight_max: CONNECTION_BYTES_IN_FLIGHT_MAX,
        }
    }
}

/// A request was refused because a budget is spent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Refused {
    #[error(
        "the node holds its limit of {max} bytes for requests in flight \
         (request_bytes_in_flight_max); retry later"
    )]
    Node { max: usize },
    #[error(
        "this connection holds its limit of {max} bytes for requests in flight \
         (connection_bytes_in_flight_max); wait for replies before sending more"
    )]
    Connection { max: usize },
    #[error(
        "clients hold their limit of {max} bytes for requests in flight (the part of \
         request_bytes_in_flight_max not kept for other nodes); retry later"
    )]
    Clients { max: usize },
}

/// Tokio semaphores count permits in `u32` per acquisition and `usize` in all; a budget counts
/// bytes in units of this many, so a pool of gigabytes fits.
const UNIT_BYTES: usize = 1024;

fn units(bytes: usize) -> u32 {
    bytes.div_ceil(UNIT_BYTES).min(u32::MAX as usize) as u32
}

/// The bytes clients may hold together.
fn clients_bytes_max(limits: Limits) -> usize {
    limits.request_bytes_in_flight_max / 100 * (100 - NODE_RESERVE_PERCENT)
}

/// The node's pool.
#[derive(Debug, Clone)]
pub struct NodeBudget {
    limits: Limits,
    pool: Arc<Semaphore>,
    /// The part of the pool clients may hold (all but [`NODE_RESERVE_PERCENT`]).
    clients: Arc<Semaphore>,
}

impl NodeBudget {
    pub fn new(limits: Limits) -> NodeBudget {
        NodeBudget {
            limits,
            pool: Arc::new(Semaphore::new(
                units(limits.request_bytes_in_flight_max) as usize
            )),
            clients: Arc::new(Semaphore::new(units(clients_bytes_max(limits)) as usize)),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Bytes held now, over all connections.
    pub fn held_bytes(&self) -> usize {
        let free = self.pool.available_permits();
        (units(self.limits.request_bytes_in_flight_max) as usize).saturating_sub(free) * UNIT_BYTES
    }

    /// The share of a new connection from a client.
    pub fn connection(&self) -> ConnectionBudget {
        ConnectionBudget {
            node: self.clone(),
            share: Some(Arc::new(Semaphore::new(
                units(self.limits.connection_bytes_in_flight_max) as usize,
            ))),
        }
    }

    /// The share of a new connection from another node: one connection carries the requests
    /// that node coordinates for all its clients, so it is bounded by the pool alone (each
    /// client's part was bounded by its own connection's share at the coordinator).
    pub fn node_connection(&self) -> ConnectionBudget {
        ConnectionBudget {
            node: self.clone(),
            share: None,
        }
    }
}

/// One connection's share of its node's pool.
#[derive(Debug, Clone)]
pub struct ConnectionBudget {
    node: NodeBudget,
    /// None for another node's connection.
    share: Option<Arc<Semaphore>>,
}

impl ConnectionBudget {
    /// The budget of a new request on this connection (it holds nothing yet).
    pub fn request(&self) -> RequestBudget {
        RequestBudget {
            connection: self.clone(),
            held: Mutex::new(Vec::new()),
        }
    }
}

/// What one request holds; everything returns when it is dropped.
#[derive(Debug)]
pub struct RequestBudget {
    connection: ConnectionBudget,
    held: Mutex<Vec<OwnedSemaphorePermit>>,
}

impl RequestBudget {
    /// Takes `bytes` more, or refuses (taking nothing) when the connection's share or the
    /// node's pool cannot cover them.
    pub fn take(&self, bytes: usize) -> Result<(), Refused> {
        if bytes == 0 {
            return Ok(());
        }
        let n = units(bytes);
        let limits = self.connection.node.limits;
        let share =
            match &self.connection.share {
                Some(share) => Some(share.clone().try_acquire_many_owned(n).map_err(|_| {
                    Refused::Connection {
                        max: limits.connection_bytes_in_flight_max,
                    }
                })?),
                None => None,
            };
        let clients = match share {
            Some(_) => Some(
                self.connection
                    .node
                    .clients
                    .clone()
                    .try_acquire_many_owned(n)
                    .map_err(|_| Refused::Clients {
                        max: clients_bytes_max(limits),
                    })?,
            ),
            None => None,
        };
        let pool = self
            .connection
            .node
            .pool
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| Refused::Node {
                max: limits.request_bytes_in_flight_max,
            })?;
        let mut held = self.held.lock();
        held.extend(share);
        held.extend(clients);
        held.push(pool);
        Ok(())
    }

    /// Bytes this request holds.
    pub fn held_bytes(&self) -> usize {
        let units: usize = self
            .held
            .lock()
            .iter()
            .map(OwnedSemaphorePermit::num_permits)
            .sum();
        // A client's bytes are held three times: its share, the clients' part, the pool.
        let copies = if self.connection.share.is_some() {
            3
        } else {
            1
        };
        units / copies * UNIT_BYTES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A connection's requests hold at most its share, the node's at most the pool; what a
    /// request held returns when it ends, and a refusal takes nothing.
    #[test]
    fn budget_bounds_connections_and_the_node() {
        let node = NodeBudget::new(Limits {
            request_bytes_in_flight_max: 10 << 20,
            connection_bytes_in_flight_max: 4 << 20,
        });
        let (a, b, c) = (node.connection(), node.connection(), node.connection());
        let a1 = a.request();
        a1.take(3 << 20).unwrap();
        let a2 = a.request();
        assert!(matches!(a2.take(2 << 20), Err(Refused::Connection { .. })));
        assert_eq!(a2.held_bytes(), 0);
        a2.take(1 << 20).unwrap();
        let b1 = b.request();
        b1.take(3 << 20).unwrap();
        // Another node's requests take 3 MiB more: 10 MiB held, the pool is spent, though c
        // has room in its share and the clients' part has some left.
        let n1 = node.node_connection().request();
        n1.take(3 << 20).unwrap();
        assert_eq!(node.held_bytes(), 10 << 20);
        let c1 = c.request();
        let err = c1.take(1).unwrap_err();
        assert!(matches!(err, Refused::Node { .. }));
        assert!(
            err.to_string().contains("request_bytes_in_flight_max"),
            "{err}"
        );
        drop(a1);
        assert_eq!(node.held_bytes(), 7 << 20);
        c1.take(1).unwrap();
        drop((a2, b1, c1, n1));
        assert_eq!(node.held_bytes(), 0);
        // Another node's connection may use the whole pool.
        let n1 = node.node_connection().request();
        n1.take(10 << 20).unwrap();
        assert!(matches!(n1.take(1), Err(Refused::Node { .. })));
    }

    /// However many client connections a node holds, they hold at most the pool less its
    /// reserve for other nodes: a replica write still finds room.
    #[test]
    fn clients_cannot_take_the_nodes_reserve() {
        let total = 100 << 20;
        let node = NodeBudget::new(Limits {
            request_bytes_in_flight_max: total,
            connection_bytes_in_flight_max: 8 << 20,
        });
        let clients: Vec<_> = (0..20).map(|_| node.connection().request()).collect();
        let mut refused = None;
        for c in &clients {
            if let Err(e) = c.take(8 << 20) {
                refused = Some(e);
                break;
            }
        }
        let refused = refused.expect("clients were refused past their part");
        assert!(matches!(refused, Refused::Clients { .. }), "{refused}");
        assert!(node.held_bytes() <= total / 100 * (100 - NODE_RESERVE_PERCENT));
        let replica_write = node.node_connection().request();
        replica_write
            .take(total / 100 * NODE_RESERVE_PERCENT)
            .unwrap();
    }
}
