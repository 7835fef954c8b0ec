//! Every fuzz target over its corpus, over random and mutated inputs, and over huge inputs
//! built to make a decoder allocate its most: what CI runs instead of a fuzzer, counting each
//! decode's heap against its allowance (`kvctl_fuzz::allowance`).

use std::fs;
use std::net::SocketAddr;
use std::path::Path;

use kvctl::model::version::VClock;
use kvctl::wire::proto::{
    CHUNK_ENTRIES_MAX, MEMBERS_MAX, TOKENS_PER_MEMBER_MAX, TREE_LEAVES_MAX, VALUES_MAX,
};
use kvctl_fuzz::alloc_counter::{self, CountingAllocator};
use kvctl_fuzz::allowance::{self, Measurement};
use kvctl_fuzz::cbor::{self, ARRAY, BYTES, MAP, UNSIGNED};
use kvctl_fuzz::{context, seeds, target, TARGETS};
use proptest::prelude::*;

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Random inputs per target, and mutated seeds per target.
const RANDOM_CASES: u32 = 256;

/// The inputs kept for the target `name`: its seeds and every file of its corpus directory
/// (the inputs fuzzers found, kept as regressions).
fn must_read_corpus(name: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(name);
    let mut inputs = seeds::seeds(name);
    let mut files: Vec<_> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .collect();
    files.sort();
    for path in files {
        inputs.push(fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())));
    }
    inputs
}

/// The counting allocator is what this binary allocates with, so the allowance is checked.
#[test]
fn the_counting_allocator_counts() {
    assert!(alloc_counter::installed());
}

/// The context target seals tokens around a clock's CBOR exactly as the cluster secret does,
/// so its valid tags follow `kvctl::model::context` (a change there fails here, not silently).
#[test]
fn the_context_target_seals_as_the_cluster_secret_does() {
    let mut clock = VClock::new();
    clock.increment("node-1", 1_700_000_000_000);
    let key = b"key-1";
    assert_eq!(
        context::seal_body(key, &clock.encode()),
        context::secret().seal(key, &clock)
    );
}

/// Every target takes every input of its corpus (seeds and the fuzzers' finds) without
/// breaking a promise, and every target has seeds.
#[test]
fn every_target_passes_its_corpus() {
    for (name, run) in TARGETS {
        let inputs = must_read_corpus(name);
        assert!(!seeds::seeds(name).is_empty(), "{name} has no seeds");
        for (i, input) in inputs.iter().enumerate() {
            eprintln!("{name}: input {i} of {}", inputs.len());
            run(input);
        }
    }
}

/// The inputs of `fuzz/findings/<target>/`: what the fuzzers found in code this crate does
/// not own, reported to its owners and kept failing here until fixed (then moved to the
/// target's corpus).
fn must_read_findings() -> Vec<(String, String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("findings");
    let mut findings = Vec::new();
    for (name, _) in TARGETS {
        let Ok(entries) = fs::read_dir(dir.join(name)) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("a directory entry").path();
            let input = fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let file = path
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            findings.push((name.to_string(), file, input));
        }
    }
    findings
}

/// The open findings (see `fuzz/findings/README.md`) are fixed: every one passes its target.
/// Ignored while they are open: `cargo test -p kvctl-fuzz -- --ignored` runs it.
#[test]
#[ignore = "open findings, reported to the owners of the code they break"]
fn open_findings_are_fixed() {
    let open: Vec<String> = must_read_findings()
        .into_iter()
        .filter(|(name, _, input)| {
            let run = target(name).expect("a target");
            std::panic::catch_unwind(|| run(input)).is_err()
        })
        .map(|(name, file, _)| format!("{name}/{file}"))
        .collect();
    assert!(open.is_empty(), "open findings: {open:?}");
}

/// An edit of a seed: bytes overwritten, a cut, bytes spliced in.
#[derive(Debug, Clone)]
struct Mutation {
    seed: usize,
    writes: Vec<(usize, u8)>,
    cut: Option<usize>,
    insert: Option<(usize, Vec<u8>)>,
}

fn mutation() -> impl Strategy<Value = Mutation> {
    (
        any::<usize>(),
        prop::collection::vec((any::<usize>(), any::<u8>()), 0..6),
        prop::option::of(any::<usize>()),
        prop::option::of((any::<usize>(), prop::collection::vec(any::<u8>(), 1..9))),
    )
        .prop_map(|(seed, writes, cut, insert)| Mutation {
            seed,
            writes,
            cut,
            insert,
        })
}

fn mutate(seeds: &[Vec<u8>], m: &Mutation) -> Vec<u8> {
    let mut input = seeds[m.seed % seeds.len()].clone();
    if input.is_empty() {
        return input;
    }
    for &(at, byte) in &m.writes {
        let len = input.len();
        input[at % len] = byte;
    }
    if let Some((at, bytes)) = &m.insert {
        let at = at % (input.len() + 1);
        input.splice(at..at, bytes.iter().copied());
    }
    if let Some(cut) = m.cut {
        input.truncate(cut % (input.len() + 1));
    }
    input
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(RANDOM_CASES))]

    /// Random bytes break no promise of any target.
    #[test]
    fn every_target_takes_random_bytes(input in prop::collection::vec(any::<u8>(), 0..512)) {
        for (_, run) in TARGETS {
            run(&input);
        }
    }

    /// Seeds with a few bytes changed, cut short or spliced into break no promise of their
    /// target (random bytes rarely get past a checksum or a map's keys; these do).
    #[test]
    fn every_target_takes_mutated_seeds(m in mutation()) {
        for (name, run) in TARGETS {
            run(&mutate(&seeds::seeds(name), &m));
        }
    }
}

/// Runs the target `name` on `input` (which checks the allowance) and returns what its last
/// decode held.
fn must_measure(name: &str, input: &[u8]) -> Measurement {
    let run = target(name).unwrap_or_else(|| panic!("no target {name}"));
    run(input);
    let m = allowance::last_measurement().expect("the target measured a decode");
    eprintln!(
        "{name}: {} bytes in, {} bytes of heap at the peak ({:.1} per byte)",
        m.input_bytes,
        m.peak_bytes,
        m.peak_bytes as f64 / m.input_bytes.max(1) as f64
    );
    m
}

/// The length of the huge lists below: large enough that the allowance's fixed part is small
/// beside its part per byte.
const HUGE: u64 = 1 << 22;

fn repeated(head: &[u8], item: &[u8], count: u64) -> Vec<u8> {
    let mut out = head.to_vec();
    out.reserve(item.len() * count as usize + 16);
    for _ in 0..count {
        out.extend_from_slice(item);
    }
    out
}

/// A request whose body is a huge list of zeros (issue 23: it was decoded a second time as a
/// generic CBOR tree to find the request's name, at about 50 heap bytes per input byte) is
/// refused within the allowance.
#[test]
fn a_request_of_a_huge_list_of_zeros_stays_within_the_allowance() {
    let mut head = Vec::new();
    cbor::head(&mut head, MAP, 3);
    cbor::text(&mut head, "v");
    cbor::head(&mut head, UNSIGNED, 2);
    cbor::text(&mut head, "timeout_ms");
    cbor::head(&mut head, UNSIGNED, 60_000);
    cbor::text(&mut head, "body");
    cbor::head(&mut head, ARRAY, 16 << 20);
    must_measure("proto_request", &repeated(&head, &[0], 16 << 20));
}

/// A gossip member with no list in it, as a CBOR map, its tokens to follow.
fn member_head(out: &mut Vec<u8>) {
    cbor::head(out, MAP, 6);
    for (field, value) in [("id", ""), ("state", "Normal")] {
        cbor::text(out, field);
        cbor::text(out, value);
    }
    cbor::text(out, "addr");
    let addr = SocketAddr::from(([0, 0, 0, 0], 0));
    ciborium::into_writer(&addr, &mut *out).expect("encoding to a Vec cannot fail");
    for field in ["generation", "heartbeat"] {
        cbor::text(out, field);
        cbor::head(out, UNSIGNED, 0);
    }
    cbor::text(out, "tokens");
}

/// The largest gossip a node reads (the most members, each with the most tokens, each token
/// one byte), and gossip over those bounds, stay within the allowance.
#[test]
fn huge_gossip_stays_within_the_allowance() {
    for (members, tokens) in [
        (MEMBERS_MAX, TOKENS_PER_MEMBER_MAX),
        (MEMBERS_MAX + 1, 1),
        (1, HUGE as usize),
    ] {
        let mut member = Vec::new();
        member_head(&mut member);
        cbor::head(&mut member, ARRAY, tokens as u64);
        member.resize(member.len() + tokens, 0);
        let mut head = vec![0u8];
        cbor::head(&mut head, ARRAY, members as u64);
        must_measure("proto_members", &repeated(&head, &member, members as u64));
    }
}

/// Responses holding the longest lists a node reads of the smallest items (empty byte
/// strings, empty scan entries), and lists over those bounds, stay within the allowance.
#[test]
fn huge_responses_stay_within_the_allowance() {
    let empty_bytes = vec![BYTES << 5];
    let mut empty_entry = Vec::new();
    cbor::head(&mut empty_entry, MAP, 2);
    cbor::text(&mut empty_entry, "key");
    empty_entry.push(BYTES << 5);
    cbor::text(&mut empty_entry, "siblings");
    empty_entry.push(BYTES << 5);
    let (zero, yes) = ([UNSIGNED << 5], [0xf5]);
    for (variant, other, value, field, item, max) in [
        (
            "Tree",
            "keys",
            &zero,
            "leaves",
            &empty_bytes,
            TREE_LEAVES_MAX,
        ),
        ("Value", "found", &yes, "values", &empty_bytes, VALUES_MAX),
        (
            "Chunk",
            "last",
            &yes,
            "entries",
            &empty_entry,
            CHUNK_ENTRIES_MAX,
        ),
    ] {
        for count in [max as u64, max as u64 + 1, HUGE] {
            let mut head = cbor::message_head(variant, &[(other, value)], field);
            cbor::head(&mut head, ARRAY, count);
            must_measure("proto_response", &repeated(&head, item, count));
        }
    }
}

/// Siblings of a huge number of the smallest versions that hold a clock entry, and a vector
/// clock of many entries, stay within the allowance.
#[test]
fn huge_versions_stay_within_the_allowance() {
    let count = HUGE / 64;
    let mut version = Vec::new();
    version.extend_from_slice(&1u32.to_le_bytes()); // one clock entry
    version.extend_from_slice(&0u32.to_le_bytes()); // its node: ""
    version.extend_from_slice(&[0; 16]); // its counter and timestamp
    version.extend_from_slice(&0u32.to_le_bytes()); // the dot's node: ""
    version.extend_from_slice(&[0; 24]); // the dot's counter and seen, the timestamp
    version.push(0); // a tombstone
    let head = [&[2u8][..], &(count as u32).to_le_bytes()].concat();
    must_measure("siblings", &repeated(&head, &version, count));

    // Distinct two-letter node names, each with the clock entry {counter: 1, timestamp_ms: 0}.
    let names: Vec<String> = (b'a'..=b'z')
        .flat_map(|a| (b'a'..=b'z').map(move |b| String::from_utf8(vec![a, b]).expect("ASCII")))
        .collect();
    let mut clock = Vec::new();
    cbor::head(&mut clock, MAP, names.len() as u64);
    for name in &names {
        cbor::text(&mut clock, name);
        cbor::head(&mut clock, MAP, 2);
        cbor::text(&mut clock, "counter");
        cbor::head(&mut clock, UNSIGNED, 1);
        cbor::text(&mut clock, "timestamp_ms");
        cbor::head(&mut clock, UNSIGNED, 0);
    }
    must_measure("vclock", &clock);
}

/// A write batch of a huge number of the smallest operations, and a block of a huge number of
/// entries, stay within the allowance.
#[test]
fn huge_engine_records_stay_within_the_allowance() {
    let count = HUGE / 8;
    let head = [&[8u8][..], &(count as u32).to_le_bytes()].concat();
    // A delete of the empty key: kind 2, key length 0.
    must_measure("wal", &repeated(&head, &[2, 0, 0, 0, 0], count));

    let mut block = Vec::new();
    let entry = [0u8, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    for _ in 0..count {
        block.extend_from_slice(&entry);
    }
    for i in 0..count as u32 {
        block.extend_from_slice(&(i * entry.len() as u32).to_le_bytes());
    }
    block.extend_from_slice(&0u32.to_le_bytes());
    block.extend_from_slice(&(count as u32).to_le_bytes());
    block.extend_from_slice(&[0; 4]);
    must_measure("table_block", &[&[1u8][..], &block].concat());
}
