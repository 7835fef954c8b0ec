//! A node whose disk is full (here: its file-size limit, which the WAL meets the way it meets a
//! full disk) refuses the writes it cannot store with a clear error and stays up: QUORUM writes
//! go on through the other replicas, ALL fails naming the node and the cause, reads go on, and
//! once there is room the node takes writes again without a restart. Its WAL, grown in part
//! when it ran out of room, replays after a restart. Nothing acknowledged is lost.

mod common;

use common::Cluster;

/// Sets (or lifts, with `None`) the soft file-size limit of a running process; the hard limit
/// stays as it is.
fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let mut old = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `old` is a valid rlimit to fill in; no new limit is passed.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            std::ptr::null(),
            &mut old,
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
    let limit = libc::rlimit {
        rlim_cur: bytes.map_or(old.rlim_max, |b| b.min(old.rlim_max)),
        rlim_max: old.rlim_max,
    };
    // SAFETY: `limit` is a valid rlimit and the old limit is not asked for.
    let rc = unsafe {
        libc::prlimit(
            pid as libc::pid_t,
            libc::RLIMIT_FSIZE,
            &limit,
            std::ptr::null_mut(),
        )
    };
    assert_eq!(rc, 0, "prlimit: {}", std::io::Error::last_os_error());
}

fn newest_wal_segment_len(cluster: &Cluster, node: usize) -> u64 {
    let dir = cluster.home().join(format!("nodes/node-{node}/data/wal"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    segments.sort();
    std::fs::metadata(segments.last().expect("a WAL segment"))
        .unwrap()
        .len()
}

#[test]
fn full_disk_refuses_writes_clearly_and_the_node_stays_up() {
    let cluster = Cluster::up(3, 0);
    let mut acked = Vec::new();
    for i in 0..5 {
        let key = format!("small-{i}");
        cluster.must(&["put", &key, "v", "--consistency", "all"]);
        acked.push((key, b"v".to_vec(), true));
    }
    // node-1's WAL may grow a little past the space it has reserved already, not by a whole
    // reservation chunk.
    let pid = cluster.pid(1);
    set_file_size_limit(pid, Some(newest_wal_segment_len(&cluster, 1) + (300 << 10)));
    let big = |i: usize| vec![b'a' + (i % 26) as u8; 256 << 10];

    // ALL needs node-1: it fails once node-1's WAL is out of room, saying why.
    let via = cluster.addr(2);
    let mut refused = None;
    for i in 0..12 {
        let key = format!("big-{i}");
        let out = cluster.run_with_stdin(
            &["put", &key, "-", "--consistency", "all", "--node", &via],
            &big(i),
        );
        if out.status.success() {
            acked.push((key, big(i), true));
        } else {
            refused = Some(String::from_utf8_lossy(&out.stderr).into_owned());
            break;
        }
    }
    let refused = refused.expect("node-1's WAL never ran out of room");
    assert!(
        refused.contains("needs 3 of 3") && refused.contains("node-1"),
        "{refused}"
    );
    assert!(
        refused.contains("no room to grow the write-ahead log") && refused.contains("too large"),
        "{refused}"
    );

    // QUORUM goes on through the other two; node-1 stays up and serves reads.
    for i in 20..23 {
        let key = format!("big-{i}");
        let out = cluster.run_with_stdin(
            &["put", &key, "-", "--consistency", "quorum", "--node", &via],
            &big(i),
        );
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        acked.push((key, big(i), false));
    }
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    let small = cluster.must_json(&[
        "get",
        "small-0",
        "--node",
        &cluster.addr(1),
        "--consistency",
        "one",
    ]);
    assert_eq!(small["values"][0], "v", "{small}");

    // Room again: node-1 takes writes at ALL without a restart.
    set_file_size_limit(pid, None);
    let out = cluster.run_with_stdin(
        &["put", "after", "-", "--consistency", "all", "--node", &via],
        &big(30),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    acked.push(("after".to_string(), big(30), true));
    assert_eq!(cluster.pid(1), pid, "node-1 was restarted");

    // node-1's WAL, grown in part when it ran out of room, replays after a restart.
    cluster.must(&["cluster", "down"]);
    cluster.must(&["cluster", "up", "--detach"]);
    // Every write acknowledged at ALL is on node-1 itself (ONE through node-1 reads only it),
    // and every acknowledged write reads back at QUORUM.
    for (key, value, at_all) in &acked {
        let expected = String::from_utf8(value.clone()).unwrap();
        if *at_all {
            let got = cluster.must_json(&[
                "get",
                key,
                "--node",
                &cluster.addr(1),
                "--consistency",
                "one",
            ]);
            assert_eq!(
                got["values"][0].as_str(),
                Some(expected.as_str()),
                "{key} on node-1"
            );
        }
        let got = cluster.must_json(&["get", key, "--consistency", "quorum"]);
        assert_eq!(got["values"][0].as_str(), Some(expected.as_str()), "{key}");
    }
}
