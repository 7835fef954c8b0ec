//! The router: checks who may ask (see [`crate::access`]), hands each request to the service
//! that answers it, and counts it in the metrics.

use std::sync::Arc;
use std::time::Instant;

use kvctl::wire::budget::RequestBudget;
use kvctl::wire::deadline::Deadline;
use kvctl::wire::proto::{Request, Response};
use kvctl::wire::tls::Peer;
use kvctl::wire::transport::Reply;
use serde_bytes::ByteBuf;

use crate::access;
use crate::metrics::Operation;
use crate::node::Node;
use crate::service::requests::Put;

impl Node {
    pub(crate) async fn handle(
        self: Arc<Self>,
        request: Request,
        peer: &Peer,
        budget: Arc<RequestBudget>,
        deadline: Deadline,
    ) -> Reply {
        if let Err(refusal) = access::check(&request, peer) {
            return refusal.into();
        }
        let metrics = &self.common.metrics;
        let started = Instant::now();
        let response = match request {
            Request::Get { key, consistency } => {
                let response = self
                    .requests
                    .clone()
                    .get(key.into_vec(), consistency, budget, deadline)
                    .await;
                let failed = matches!(response, Response::Error { .. });
                metrics.request(Operation::Get, consistency, started.elapsed(), failed);
                response
            }
            Request::Put {
                key,
                value,
                context,
                consistency,
                lww,
                forwarded,
                write_id,
            } => {
                let op = if value.is_some() {
                    Operation::Put
                } else {
                    Operation::Delete
                };
                let put = Put {
                    key: key.into_vec(),
                    value: value.map(ByteBuf::into_vec),
                    context,
                    level: consistency,
                    lww,
                    forwarded,
                    write_id,
                };
                let response = self.requests.clone().put(put, budget, deadline).await;
                if !forwarded {
                    let failed = matches!(response, Response::Error { .. });
                    metrics.request(op, consistency, started.elapsed(), failed);
                }
                response
            }
            Request::ReplicaRead { key } => {
                metrics.replica_reads.inc();
                self.replica.replica_read(key.into_vec(), budget).await
            }
            Request::ReplicaWrite { key, siblings } => {
                metrics.replica_writes.inc();
                self.replica
                    .replica_write(key.into_vec(), siblings.into_vec(), deadline)
                    .await
            }
            Request::Gossip { members } => {
                self.gossip.take(members, peer.node_id());
                self.gossip.members_response()
            }
            Request::Status => self.gossip.members_response(),
            Request::NodeInfo => self.info(),
            Request::ReplicaScan { after, upto } => {
                return self.repair.replica_scan(after, upto, &budget)
            }
            Request::MerkleTree {
                after,
                upto,
                leaves,
            } => self.repair.merkle_tree(after, upto, leaves).await,
            Request::Repair {
                after,
                upto,
                rate_bytes_per_sec,
            } => self.repair.repair(after, upto, rate_bytes_per_sec).await,
            Request::RangeSynced {
                after,
                upto,
                since_ms,
            } => {
                self.repair
                    .range_synced(peer.node_id(), after, upto, since_ms)
                    .await
            }
            Request::LayoutGet => self.layout.layouts(),
            Request::LayoutPrepare { slot, ballot } => self.layout.vote(slot, ballot, None),
            Request::LayoutAccept {
                slot,
                ballot,
                layout,
            } => self.layout.vote(slot, ballot, Some(layout)),
            Request::LayoutCommit { layout, synced } => self.layout.learn(vec![layout], synced),
        };
        response.into()
    }
}
