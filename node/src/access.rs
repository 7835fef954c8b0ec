//! Access: who may send which request. Node-to-node requests need a node certificate; every
//! other request needs a client certificate of at least some [`Role`] (a node may send them
//! all). [`needs`] is the one place that says which: it matches every request without a
//! wildcard, so a request added later (membership, maintenance) must say who may send it.

use kvctl::wire::proto::{ErrorKind, Request, Response};
use kvctl::wire::role::Role;
use kvctl::wire::tls::Peer;

/// What a request needs of the certificate that sent it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Needs {
    /// A node certificate: a node-to-node request.
    Node,
    /// A node certificate, or a client certificate of this role or a stronger one.
    Role(Role),
}

/// What `request` needs of its sender, and the name a refusal calls it by.
pub fn needs(request: &Request) -> (Needs, &'static str) {
    match request {
        Request::Get { .. } => (Needs::Role(Role::App), "get"),
        // A put handed on by its coordinator is never handed on again: only nodes may say so.
        Request::Put {
            forwarded: true, ..
        } => (Needs::Node, "forwarded put"),
        Request::Put { value: None, .. } => (Needs::Role(Role::App), "delete"),
        Request::Put { .. } => (Needs::Role(Role::App), "put"),
        Request::Status => (Needs::Role(Role::App), "status"),
        Request::Repair { .. } => (Needs::Role(Role::Admin), "repair"),
        Request::NodeInfo => (Needs::Role(Role::Admin), "node info (workers)"),
        Request::ReplicaRead { .. } => (Needs::Node, "replica read"),
        Request::ReplicaWrite { .. } => (Needs::Node, "replica write"),
        Request::Gossip { .. } => (Needs::Node, "gossip"),
        Request::ReplicaScan { .. } => (Needs::Node, "replica scan"),
        Request::MerkleTree { .. } => (Needs::Node, "Merkle tree"),
        Request::RangeSynced { .. } => (Needs::Node, "range synced"),
        Request::LayoutGet => (Needs::Role(Role::App), "layout"),
        Request::LayoutPrepare { .. } => (Needs::Node, "layout prepare"),
        Request::LayoutAccept { .. } => (Needs::Node, "layout accept"),
        Request::LayoutCommit { .. } => (Needs::Node, "layout commit"),
    }
}

/// Whether `peer` may send `request`; if not, the error to answer with. A client whose role is
/// too weak gets [`ErrorKind::Forbidden`] naming its role, the role needed and how to get a
/// certificate of it. A client sending a node-to-node request gets
/// [`ErrorKind::BadRequest`], as since the first release (whose clients read no other kind).
pub fn check(request: &Request, peer: &Peer) -> Result<(), Response> {
    let role = match peer {
        Peer::Node { .. } => return Ok(()),
        Peer::Client { role } => *role,
    };
    match needs(request) {
        (Needs::Role(needed), _) if role.allows(needed) => Ok(()),
        (Needs::Role(needed), name) => Err(Response::Error {
            kind: ErrorKind::Forbidden,
            message: format!(
                "this request ({name}) needs the {needed} role; this client certificate has \
                 the role {role} (certificates made with `kvctl cert client --role {needed}` \
                 have it)"
            ),
        }),
        (Needs::Node, _) => Err(Response::Error {
            kind: ErrorKind::BadRequest,
            message: "node-to-node requests need a node certificate; this is a client \
                      certificate"
                .into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use serde_bytes::ByteBuf;

    use super::*;

    fn repair() -> Request {
        Request::Repair {
            after: 0,
            upto: 0,
            rate_bytes_per_sec: 0,
        }
    }

    fn put(forwarded: bool) -> Request {
        Request::Put {
            key: ByteBuf::from(b"k".to_vec()),
            value: Some(ByteBuf::from(b"v".to_vec())),
            context: None,
            consistency: kvctl::wire::proto::Consistency::Quorum,
            lww: false,
            forwarded,
            write_id: None,
        }
    }

    fn must_refusal(request: &Request, peer: &Peer) -> (ErrorKind, String) {
        match check(request, peer) {
            Err(Response::Error { kind, message }) => (kind, message),
            other => panic!("{request:?} from {peer:?} was not refused: {other:?}"),
        }
    }

    /// An app certificate may read, write and ask for status, and is refused repair with
    /// `Forbidden` naming its role and the one needed; an admin certificate and a node may
    /// repair.
    #[test]
    fn repair_needs_the_admin_role() {
        let app = Peer::Client { role: Role::App };
        let admin = Peer::Client { role: Role::Admin };
        let node = Peer::Node { id: "n1".into() };
        for request in [put(false), Request::Status] {
            assert_eq!(check(&request, &app), Ok(()));
        }
        let (kind, message) = must_refusal(&repair(), &app);
        assert_eq!(kind, ErrorKind::Forbidden);
        assert!(
            message.contains("(repair) needs the admin role"),
            "{message}"
        );
        assert!(message.contains("has the role app"), "{message}");
        assert_eq!(check(&repair(), &admin), Ok(()));
        assert_eq!(check(&repair(), &node), Ok(()));
    }

    /// Node-to-node requests are refused to clients of every role, as `BadRequest`.
    #[test]
    fn node_requests_need_a_node_certificate() {
        for role in Role::ALL {
            let (kind, _) = must_refusal(&put(true), &Peer::Client { role });
            assert_eq!(kind, ErrorKind::BadRequest);
        }
        assert_eq!(check(&put(true), &Peer::Node { id: "n1".into() }), Ok(()));
    }
}
