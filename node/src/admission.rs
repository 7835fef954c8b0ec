//! Admission of connections, in two steps. A new connection's handshake takes one of
//! [`Limits::handshakes_max`] places while it runs (a peer that starts handshakes and never
//! finishes them holds only those, and the node validates addresses with QUIC Retry first, so
//! made-up source addresses get nowhere). Once the handshake is done and the certificate says
//! who it is, the connection counts among [`Limits::connections_max`] per node, of which
//! clients may hold all but [`NODE_CONNECTIONS_RESERVED`] (kept for other nodes), and
//! [`Limits::connections_per_peer_max`] per peer; each has its share of the node's budget for
//! requests in flight ([`kvctl::wire::budget`]).
//!
//! A peer is a remote UDP address: one QUIC endpoint, which is one client process or one node.
//! Counting by IP address alone would lump together every client behind one NAT, or every
//! process of a machine (all of a local cluster's nodes and clients share 127.0.0.1).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use parking_lot::Mutex;

/// Default most connections a node holds.
pub const CONNECTIONS_MAX: usize = 256;
/// Default most connections one peer (a remote UDP address) may hold at a node.
pub const CONNECTIONS_PER_PEER_MAX: usize = 4;

/// Default most handshakes a node runs at once.
pub const HANDSHAKES_MAX: usize = 64;
/// The most handshakes from one IP address a node runs at once: a peer that starts
/// handshakes from many ports of one address and never finishes them takes only these
/// (the addresses are real: QUIC Retry validated them).
pub const HANDSHAKES_PER_IP_MAX: usize = 16;
/// Connections of [`Limits::connections_max`] clients may not take: kept for other nodes
/// (at most half the limit).
pub const NODE_CONNECTIONS_RESERVED: usize = 32;

/// The most engine reads a node runs at once, off the runtime's threads. A read holds the
/// stored bytes before the request's budget is charged for them (their size is known only
/// once read), so this bounds that memory: at most this many times the largest stored value.
pub const ENGINE_READS_MAX: usize = 8;

/// The most bulk transfers (token range scans for repair and streaming) a node serves at
/// once; more are refused as unavailable.
pub const BULK_TRANSFERS_MAX: usize = 4;

/// A node's admission limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub connections_max: usize,
    pub handshakes_max: usize,
    pub connections_per_peer_max: usize,
    /// Bytes of requests in flight, per node and per connection.
    pub budget: kvctl::wire::budget::Limits,
    /// Bytes of writes waiting for the replica's writer.
    pub write_queue_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            connections_max: CONNECTIONS_MAX,
            handshakes_max: HANDSHAKES_MAX,
            connections_per_peer_max: CONNECTIONS_PER_PEER_MAX,
            budget: kvctl::wire::budget::Limits::default(),
            write_queue_bytes_max: crate::store::replica::WRITE_QUEUE_BYTES_MAX,
        }
    }
}

#[derive(Default)]
struct Counts {
    total: usize,
    clients: usize,
    handshakes: usize,
    handshakes_by_ip: HashMap<IpAddr, usize>,
    by_peer: HashMap<SocketAddr, usize>,
}

/// The connections a node holds.
pub struct Connections {
    limits: Limits,
    counts: Mutex<Counts>,
}

/// A connection's place among the node's; it is given back when dropped.
pub struct Slot {
    connections: Arc<Connections>,
    peer: SocketAddr,
    client: bool,
}

/// A handshake's place among those running; given back when dropped.
pub struct Handshake {
    connections: Arc<Connections>,
    ip: IpAddr,
}

impl Drop for Handshake {
    fn drop(&mut self) {
        let mut counts = self.connections.counts.lock();
        counts.handshakes -= 1;
        if let Some(n) = counts.handshakes_by_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.handshakes_by_ip.remove(&self.ip);
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut counts = self.connections.counts.lock();
        counts.total -= 1;
        counts.clients -= usize::from(self.client);
        if let Some(n) = counts.by_peer.get_mut(&self.peer) {
            *n -= 1;
            if *n == 0 {
                counts.by_peer.remove(&self.peer);
            }
        }
    }
}

impl Connections {
    pub fn new(limits: Limits) -> Arc<Connections> {
        Arc::new(Connections {
            limits,
            counts: Mutex::new(Counts::default()),
        })
    }

    /// Connections held now.
    pub fn count(&self) -> usize {
        self.counts.lock().total
    }

    /// A place for a handshake from `ip`, or the reason there is none.
    pub fn handshake(self: &Arc<Self>, ip: IpAddr) -> Result<Handshake, String> {
        let mut counts = self.counts.lock();
        let max = self.limits.handshakes_max;
        if counts.handshakes >= max {
            return Err(format!(
                "{max} handshakes are running, the most a node runs at once (handshakes_max)"
            ));
        }
        let from_ip = counts.handshakes_by_ip.get(&ip).copied().unwrap_or(0);
        if from_ip >= HANDSHAKES_PER_IP_MAX {
            return Err(format!(
                "{ip} has {HANDSHAKES_PER_IP_MAX} handshakes running, the most one address may \
                 (handshakes_per_ip_max)"
            ));
        }
        counts.handshakes += 1;
        *counts.handshakes_by_ip.entry(ip).or_default() += 1;
        Ok(Handshake {
            connections: self.clone(),
            ip,
        })
    }

    /// The most connections clients may hold together.
    fn clients_max(&self) -> usize {
        let max = self.limits.connections_max;
        max - NODE_CONNECTIONS_RESERVED.min(max / 2)
    }

    /// A place for a new connection from `peer` (another node, or a client), its handshake
    /// done, or the reason there is none.
    pub fn admit(self: &Arc<Self>, peer: SocketAddr, node: bool) -> Result<Slot, String> {
        let mut counts = self.counts.lock();
        let max = self.limits.connections_max;
        if counts.total >= max {
            return Err(format!(
                "the node holds its limit of {max} connections (connections_max); retry later"
            ));
        }
        let clients_max = self.clients_max();
        if !node && counts.clients >= clients_max {
            return Err(format!(
                "the node holds {clients_max} client connections, its limit (connections_max \
                 less {} kept for other nodes); retry later",
                max - clients_max
            ));
        }
        let per_peer = self.limits.connections_per_peer_max;
        let from_peer = counts.by_peer.get(&peer).copied().unwrap_or(0);
        if from_peer >= per_peer {
            return Err(format!(
                "{peer} holds its limit of {per_peer} connections to this node \
                 (connections_per_peer_max); reuse one"
            ));
        }
        counts.total += 1;
        counts.clients += usize::from(!node);
        *counts.by_peer.entry(peer).or_default() += 1;
        Ok(Slot {
            connections: self.clone(),
            peer,
            client: !node,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admission_bounds_connections_per_peer_and_per_node() {
        let connections = Connections::new(Limits {
            connections_max: 3,
            connections_per_peer_max: 2,
            ..Limits::default()
        });
        let (a, b, c): (SocketAddr, SocketAddr, SocketAddr) = (
            "10.0.0.1:1".parse().unwrap(),
            "10.0.0.1:2".parse().unwrap(),
            "10.0.0.2:1".parse().unwrap(),
        );
        let a1 = connections.admit(a, true).unwrap();
        let _a2 = connections.admit(a, true).unwrap();
        let err = connections.admit(a, true).err().unwrap();
        assert!(err.contains("connections_per_peer_max"), "{err}");
        let _b1 = connections.admit(b, true).unwrap();
        let err = connections.admit(c, true).err().unwrap();
        assert!(err.contains("connections_max"), "{err}");
        drop(a1);
        assert_eq!(connections.count(), 2);
        let _c1 = connections.admit(c, true).unwrap();
        let _ = connections.admit(a, true).err().unwrap();
    }

    /// Clients hold at most the limit less the nodes' reserve; nodes may use it all; and the
    /// handshakes running are bounded apart from the connections.
    #[test]
    fn admission_keeps_room_for_nodes_and_bounds_handshakes() {
        let connections = Connections::new(Limits {
            connections_max: 80,
            connections_per_peer_max: 1,
            handshakes_max: 2,
            ..Limits::default()
        });
        let peer = |i: u16| SocketAddr::from(([10, 0, 0, 1], i));
        let clients: Vec<_> = (0..48)
            .map(|i| connections.admit(peer(i), false).unwrap())
            .collect();
        let err = connections.admit(peer(100), false).err().unwrap();
        assert!(err.contains("kept for other nodes"), "{err}");
        let nodes: Vec<_> = (200..232)
            .map(|i| connections.admit(peer(i), true).unwrap())
            .collect();
        assert_eq!(connections.count(), 80);
        drop((clients, nodes));
        let ip = |i: u8| IpAddr::from([10, 0, 0, i]);
        let h1 = connections.handshake(ip(1)).unwrap();
        let _h2 = connections.handshake(ip(2)).unwrap();
        let err = connections.handshake(ip(3)).err().unwrap();
        assert!(err.contains("handshakes_max"), "{err}");
        drop(h1);
        connections.handshake(ip(3)).unwrap();
    }

    /// One address runs at most HANDSHAKES_PER_IP_MAX handshakes; others still get theirs.
    #[test]
    fn admission_bounds_handshakes_per_address() {
        let connections = Connections::new(Limits::default());
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        let held: Vec<_> = (0..HANDSHAKES_PER_IP_MAX)
            .map(|_| connections.handshake(a).unwrap())
            .collect();
        let err = connections.handshake(a).err().unwrap();
        assert!(err.contains("handshakes_per_ip_max"), "{err}");
        let _other = connections.handshake(b).unwrap();
        drop(held);
        connections.handshake(a).unwrap();
    }
}
