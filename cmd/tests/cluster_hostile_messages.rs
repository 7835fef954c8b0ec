//! A message built to cost its reader far more than its size does not: a client with the
//! cluster's own certificate sends node 1 four 16 MB messages whose body is a CBOR array of
//! 16 million zero bytes (two at once on each of two connections). Each is refused as
//! malformed, the node's memory grows by less than 200 MiB, and another client's gets
//! through that node keep succeeding meanwhile.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use common::Cluster;
use kvctl::wire::proto::{ErrorKind, Response};

const MIB: u64 = 1 << 20;
/// Elements of the array each message carries.
const ZEROS: usize = 16_000_000;

/// `{"v": 2, "timeout_ms": 60000, "body": [0, 0, …]}` with [`ZEROS`] zeros, as raw CBOR.
fn zeros_message() -> Vec<u8> {
    let mut out = vec![0xa3];
    out.extend_from_slice(&[0x61, b'v', 0x02]);
    out.extend_from_slice(&[0x6a]);
    out.extend_from_slice(b"timeout_ms");
    out.extend_from_slice(&[0x19, 0xea, 0x60]);
    out.extend_from_slice(&[0x64]);
    out.extend_from_slice(b"body");
    // An array with a 32-bit length, then its elements: each 0x00, the integer 0.
    out.push(0x9a);
    out.extend_from_slice(&(ZEROS as u32).to_be_bytes());
    out.resize(out.len() + ZEROS, 0);
    out
}

#[test]
fn cluster_hostile_message_costs_no_more_than_its_size() {
    let c = Cluster::up(3, 0);
    c.must(&["put", "steady", "v", "--consistency", "all"]);
    let addr: SocketAddr = c.addr(1).parse().unwrap();
    let message = zeros_message();
    assert!(message.len() < kvctl::wire::proto::MESSAGE_BYTES_MAX);
    let before = c.peak_memory(1);

    let done = AtomicBool::new(false);
    let (gets, replies) = std::thread::scope(|s| {
        let gets = s.spawn(|| {
            let mut outcomes = Vec::new();
            while !done.load(Ordering::Relaxed) || outcomes.len() < 3 {
                let out = c.run(&["get", "steady", "--node", &c.addr(1)]);
                outcomes.push(if out.status.success() {
                    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
                } else {
                    Err(String::from_utf8_lossy(&out.stderr).into_owned())
                });
                if outcomes.len() >= 200 {
                    break;
                }
            }
            outcomes
        });
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        // Two clients (two endpoints, so two connections), two messages at once on each.
        let message = Arc::new(message);
        let mut sends = tokio::task::JoinSet::new();
        for _ in 0..2 {
            let transport = Arc::new(c.client_transport(&rt));
            for _ in 0..2 {
                let (transport, message) = (transport.clone(), message.clone());
                sends.spawn_on(
                    async move {
                        transport
                            .send_encoded(addr, &message, Duration::from_secs(60), None)
                            .await
                    },
                    rt.handle(),
                );
            }
        }
        let replies = rt.block_on(sends.join_all());
        done.store(true, Ordering::Relaxed);
        (gets.join().unwrap(), replies)
    });

    for reply in &replies {
        match reply {
            Ok(Response::Error {
                kind: ErrorKind::BadRequest,
                message,
            }) => assert!(message.contains("undecodable"), "{message}"),
            other => panic!("the hostile message got {other:?}"),
        }
    }
    let grown = c.peak_memory(1).saturating_sub(before);
    eprintln!("node 1's peak memory grew by {} MiB", grown / MIB);
    assert!(
        grown < 200 * MIB,
        "node 1's peak memory grew by {} MiB for four 16 MB messages",
        grown / MIB
    );
    let failed: Vec<_> = gets.iter().filter_map(|g| g.as_ref().err()).collect();
    assert!(failed.is_empty(), "gets through node 1 failed: {failed:?}");
    assert!(gets.iter().all(|g| g.as_deref() == Ok("v")), "{gets:?}");
    // The node is still there and serves.
    assert_eq!(c.must(&["get", "steady", "--node", &c.addr(1)]).trim(), "v");
}
