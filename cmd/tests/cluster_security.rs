//! Nodes refuse clients without a certificate, with one from another CA, or with an expired or
//! not yet valid one from their own CA; answer garbage from a trusted client with an error; and
//! keep serving.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use common::Cluster;
use kvctl::client::Client;
use kvctl::wire::certs::{self, Validity, NODE_SERVER_NAME};
use kvctl::wire::proto::{self, ErrorKind, Response};
use kvctl::wire::role::Role;
use kvctl::wire::tls::Identity;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn cluster_refuses_untrusted_clients_and_survives_garbage() {
    let c = Cluster::up(3, 4);
    let addr: SocketAddr = c.addr(1).parse().unwrap();
    let certs_dir = c.home().join("certs");
    let ca_pem = certs::read_cert(&certs_dir, "ca").unwrap();
    let rt = runtime();

    // No client certificate: the TLS handshake is refused and no reply ever comes.
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        for cert in rustls::pki_types::pem::PemObject::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.unwrap()).unwrap();
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut tls = rustls::ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13])
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        tls.alpn_protocols = vec![kvctl::wire::tls::ALPN.to_vec()];
        let quic = quinn::crypto::rustls::QuicClientConfig::try_from(tls).unwrap();
        let mut endpoint = quinn::Endpoint::client("0.0.0.0:0".parse().unwrap()).unwrap();
        endpoint.set_default_client_config(quinn::ClientConfig::new(Arc::new(quic)));
        let attempt = async {
            let conn = endpoint.connect(addr, NODE_SERVER_NAME).unwrap().await?;
            let (mut send, mut recv) = conn.open_bi().await?;
            send.write_all(&proto::encode(&kvctl::wire::proto::Request::Status))
                .await?;
            send.finish()?;
            Ok::<_, Box<dyn std::error::Error>>(recv.read_to_end(1 << 20).await?)
        };
        let result = tokio::time::timeout(std::time::Duration::from_secs(5), attempt).await;
        assert!(
            !matches!(result, Ok(Ok(_))),
            "a client without a certificate got a reply"
        );
    });

    // `kvctl status` against node 1 with a given client certificate.
    let status_as = |own: &certs::Pem| {
        let identity = Identity::new(own, &ca_pem).unwrap();
        rt.block_on(async {
            let client = Client::new(&identity, vec![addr]).unwrap();
            client.status(Some(addr)).await
        })
    };
    // A certificate from another CA: refused.
    let other_ca = certs::new_ca(Validity::days(1)).unwrap();
    let other = certs::new_client(&other_ca, "intruder", Role::Admin, Validity::days(1)).unwrap();
    let err = status_as(&other).unwrap_err().to_string();
    assert!(
        err.contains("TLS") || err.contains("handshake") || err.contains("closed"),
        "{err}"
    );

    // Certificates from the cluster's own CA that have expired, or are not valid yet: refused.
    // The same CA's current certificate is accepted (so the refusals are about the dates).
    let ca = certs::read(&certs_dir, "ca").unwrap();
    let day = std::time::Duration::from_secs(86_400);
    let now = std::time::SystemTime::now();
    let expired = Validity {
        not_before: now - 3 * day,
        not_after: now - day,
    };
    let not_yet = Validity {
        not_before: now + day,
        not_after: now + 3 * day,
    };
    for (what, validity, says) in [
        ("expired", expired, "certificate expired"),
        ("not yet valid", not_yet, "certificate not valid yet"),
    ] {
        let own = certs::new_client(&ca, what, Role::Admin, validity).unwrap();
        let err = status_as(&own).unwrap_err().to_string();
        assert!(
            err.contains("TLS handshake failed") && err.contains(says),
            "{what}: {err}"
        );
    }
    let current = certs::new_client(&ca, "current", Role::Admin, Validity::days(1)).unwrap();
    status_as(&current).expect("a current certificate is accepted");

    // A trusted client sending garbage gets an error reply, and the node keeps serving.
    rt.block_on(async {
        let own = certs::read(&certs_dir, "client").unwrap();
        let identity = Identity::new(&own, &ca_pem).unwrap();
        let transport = kvctl::wire::transport::Transport::client(&identity).unwrap();
        let conn = transport
            .endpoint()
            .connect(addr, NODE_SERVER_NAME)
            .unwrap()
            .await
            .unwrap();
        for garbage in [
            &b"\xff\xfe\xfd not cbor at all"[..],
            &[0x82, 0x01][..],
            &[][..],
        ] {
            let (mut send, mut recv) = conn.open_bi().await.unwrap();
            send.write_all(garbage).await.unwrap();
            send.finish().unwrap();
            let reply = recv.read_to_end(1 << 20).await.unwrap();
            match proto::decode::<Response>(&reply).unwrap() {
                Response::Error {
                    kind: ErrorKind::BadRequest,
                    message,
                } => {
                    assert!(message.contains("undecodable"), "{message}")
                }
                other => panic!("garbage got {other:?}"),
            }
        }
        // A client certificate may not speak for a node.
        for request in [
            kvctl::wire::proto::Request::Gossip { members: vec![] },
            kvctl::wire::proto::Request::ReplicaWrite {
                key: serde_bytes::ByteBuf::from(b"k".to_vec()),
                siblings: serde_bytes::ByteBuf::from(vec![2, 0, 0, 0, 0]),
            },
        ] {
            match transport.request(addr, &request).await.unwrap() {
                Response::Error {
                    kind: ErrorKind::BadRequest,
                    message,
                } => {
                    assert!(message.contains("node certificate"), "{message}")
                }
                other => panic!("a client certificate got {other:?}"),
            }
        }
        let client = Client::new(&identity, vec![addr]).unwrap();
        let (_, members) = client.status(Some(addr)).await.unwrap();
        assert_eq!(members.len(), 3);
    });
    c.must(&["put", "still", "serving", "--node", &c.addr(1)]);
    assert_eq!(c.must(&["get", "still"]).trim(), "serving");
}
