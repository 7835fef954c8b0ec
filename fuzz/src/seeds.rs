//! The seed corpus: for each target, a few inputs made from real encodings, so that a fuzzer
//! starts from messages and files that decode. `examples/write_corpus.rs` writes them under
//! `fuzz/corpus/<target>/`.

use std::net::SocketAddr;
use std::time::Duration;

use kvctl::model::version::{new_version, Siblings, VClock, CLOCK_ENTRIES_MAX};
use kvctl::storage::engine::fuzzing::{
    append_record, encode_manifest_entry, key_hash, BlockBuilder, Bloom, Footer, TableMeta,
};
use kvctl::storage::engine::WriteBatch;
use kvctl::wire::proto::{
    self, Consistency, ErrorKind, Member, MemberState, MemberView, Request, Response, ScanEntry,
};
use serde_bytes::ByteBuf;

use crate::context;

/// The seeds of the target `name` (none for a name that is not a target).
pub fn seeds(name: &str) -> Vec<Vec<u8>> {
    match name {
        "proto_request" => requests()
            .iter()
            .map(|r| proto::encode_request(r, Some(Duration::from_millis(1500))))
            .collect(),
        "proto_response" => responses().iter().map(proto::encode).collect(),
        "proto_members" => vec![
            [&[0u8][..], &cbor_of(&vec![member(1), member(2)])].concat(),
            [&[1u8][..], &cbor_of(&vec![view(1), view(2)])].concat(),
        ],
        "proto_chunks" => vec![
            framed(&[chunk(false), chunk(true)]),
            proto::encode(&Response::Error {
                kind: ErrorKind::Unsupported,
                message: "older".into(),
            }),
        ],
        "siblings" => vec![siblings(false).encode(), siblings(true).encode()],
        "vclock" => vec![clock().encode(), VClock::new().encode()],
        "context_token" => {
            let key = b"key-1";
            let token = context::secret().seal(key, &clock());
            vec![
                [&[key.len() as u8][..], key, token.as_bytes()].concat(),
                [&[0x80 | key.len() as u8][..], key, &clock().encode()].concat(),
            ]
        }
        "wal" => {
            let mut segment = Vec::new();
            append_record(&mut segment, 1, 0, &batch(0));
            append_record(&mut segment, 3, 1, &batch(1));
            let mut encoded = Vec::new();
            batch(2).encode_into(&mut encoded);
            vec![
                [&[1u8][..], &segment].concat(),
                [&[3u8][..], &segment, &[0u8; 40]].concat(),
                [&[8u8][..], &encoded].concat(),
            ]
        }
        "table_block" => vec![
            [&[0u8][..], &block(3)].concat(),
            [&[1u8][..], &block(40)].concat(),
        ],
        "table_tail" => vec![[&[0u8][..], &table_file()].concat()],
        "manifest" => {
            let handles: Vec<u8> = [(0u64, 4096u32), (4096, 3000)]
                .iter()
                .flat_map(|(offset, len)| [&offset.to_le_bytes()[..], &len.to_le_bytes()].concat())
                .collect();
            vec![
                [&[0u8][..], &encode_manifest_entry(&table_meta())].concat(),
                [&[1u8][..], &handles].concat(),
            ]
        }
        _ => Vec::new(),
    }
}

fn cbor_of<T: serde::Serialize>(value: &T) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(value, &mut out).expect("encoding to a Vec cannot fail");
    out
}

fn bytes(b: &[u8]) -> ByteBuf {
    ByteBuf::from(b.to_vec())
}

fn requests() -> Vec<Request> {
    vec![
        Request::Get {
            key: bytes(b"k"),
            consistency: Consistency::Quorum,
        },
        Request::Put {
            key: bytes(b"k"),
            value: Some(bytes(b"value")),
            context: Some(context::secret().seal(b"k", &clock())),
            consistency: Consistency::All,
            lww: false,
            forwarded: true,
            write_id: Some(77),
        },
        Request::ReplicaWrite {
            key: bytes(b"k"),
            siblings: ByteBuf::from(siblings(true).encode()),
        },
        Request::Gossip {
            members: vec![member(1)],
        },
        Request::ReplicaScan { after: 5, upto: 5 },
        Request::Repair {
            after: 1,
            upto: u128::MAX,
            rate_bytes_per_sec: 1 << 20,
        },
    ]
}

fn responses() -> Vec<Response> {
    vec![
        Response::Value {
            found: true,
            values: vec![bytes(b"a"), bytes(b"b")],
            context: "00ff".into(),
        },
        Response::Replica {
            siblings: Some(ByteBuf::from(siblings(false).encode())),
        },
        Response::Members {
            node: "node-1".into(),
            members: vec![view(1)],
            replication: 3,
        },
        Response::Error {
            kind: ErrorKind::Unavailable,
            message: "2 of 3".into(),
        },
        chunk(true),
        from_fields(&TreeFields::Tree {
            root: bytes(&[1; 16]),
            leaves: vec![bytes(&[2; 16]), bytes(&[3; 16])],
            keys: 9,
        }),
    ]
}

/// The value that the CBOR of `fields` decodes to.
fn from_fields<T: serde::de::DeserializeOwned>(fields: &impl serde::Serialize) -> T {
    ciborium::from_reader(&cbor_of(fields)[..]).expect("the fields decode")
}

/// A tree's fields as a replica of this release sends them, without those added with a
/// default.
#[derive(serde::Serialize)]
enum TreeFields {
    Tree {
        root: ByteBuf,
        leaves: Vec<ByteBuf>,
        keys: u64,
    },
}

/// A member's fields as a node of this release sends them, without those added with a
/// default (so the seeds do not change with every field gossip gains).
#[derive(serde::Serialize)]
struct MemberFields {
    id: String,
    addr: SocketAddr,
    tokens: Vec<u128>,
    state: MemberState,
    generation: u64,
    heartbeat: u64,
    incarnation: u64,
    hints_pending: u64,
    siblings_format_max: u8,
}

fn member(i: u8) -> Member {
    let fields = MemberFields {
        id: format!("node-{i}"),
        addr: SocketAddr::from(([127, 0, 0, i], 7700 + u16::from(i))),
        tokens: vec![u128::from(i) << 100, 12345],
        state: MemberState::Normal,
        generation: 1_700_000_000_000,
        heartbeat: 42,
        incarnation: 0x1234_5678,
        hints_pending: 3,
        siblings_format_max: 3,
    };
    from_fields(&fields)
}

fn view(i: u8) -> MemberView {
    MemberView {
        member: member(i),
        heartbeat_age_ms: 250,
        up: true,
        phi: 0.5,
    }
}

fn chunk(last: bool) -> Response {
    Response::Chunk {
        entries: vec![ScanEntry {
            key: bytes(b"k"),
            siblings: ByteBuf::from(siblings(false).encode()),
        }],
        last,
    }
}

/// Responses as a bulk transfer writes them: each a 4-byte big-endian length and a message.
fn framed(responses: &[Response]) -> Vec<u8> {
    let mut out = Vec::new();
    for response in responses {
        let message = proto::encode(response);
        out.extend_from_slice(&(message.len() as u32).to_be_bytes());
        out.extend_from_slice(&message);
    }
    out
}

fn clock() -> VClock {
    let mut clock = VClock::new();
    clock.increment("node-1#00000000000000aa", 1_700_000_000_000);
    clock.increment("node-2#00000000000000bb", 1_700_000_000_001);
    clock
}

fn siblings(write_ids: bool) -> Siblings {
    let mut a = new_version(
        &clock(),
        "node-1#00000000000000aa",
        5,
        Some(b"one".to_vec()),
        4,
    );
    let b = new_version(
        &VClock::new(),
        "node-3#00000000000000cc",
        6,
        None,
        CLOCK_ENTRIES_MAX,
    );
    if write_ids {
        a.write_id = Some(u128::MAX - 1);
    }
    Siblings::from_versions([a, b])
}

fn batch(i: u8) -> WriteBatch {
    let mut batch = WriteBatch::new();
    batch.put(vec![b'k', i], vec![i; 3]).delete(vec![b'd', i]);
    batch
}

fn block(entries: u16) -> Vec<u8> {
    let mut builder = BlockBuilder::default();
    for i in 0..entries {
        let key = format!("key-{i:04}");
        let value = (i % 3 != 0).then(|| vec![i as u8; usize::from(i % 5)]);
        builder.add(
            key.as_bytes(),
            key_hash(key.as_bytes()),
            u64::from(i),
            value.as_deref(),
        );
    }
    let mut out = Vec::new();
    builder.finish_into(&mut out);
    out
}

/// A small table's file: one block, its bloom filter, its footer.
fn table_file() -> Vec<u8> {
    let mut file = block(3);
    let hashes: Vec<u64> = (0..3)
        .map(|i| key_hash(format!("key-{i:04}").as_bytes()))
        .collect();
    let bloom = Bloom::build(&hashes, 10).encode();
    let footer = Footer {
        bloom_offset: file.len() as u64,
        bloom_len: bloom.len() as u32,
        bloom_crc: crc32c::crc32c(&bloom),
        block_count: 1,
        entries: 3,
    };
    file.extend_from_slice(&bloom);
    file.extend_from_slice(&footer.encode());
    file
}

fn table_meta() -> TableMeta {
    TableMeta {
        id: 42,
        level: 1,
        min_key: b"a".to_vec(),
        max_key: b"zz".to_vec(),
        min_seq: 3,
        max_seq: 900,
        entries: 120,
        file_bytes: 8192,
        block_count: 2,
    }
}
