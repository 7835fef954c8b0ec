//! The request service: gets and puts from clients, coordinated on this node (the I/O-free
//! coordinators of [`crate::logic::coordinator`] decide; [`get`] and [`put`] carry out what
//! they ask) or forwarded to a replica of the key ([`forward`]); read repair after a get; the
//! hints a put leaves for replicas that missed it.

mod forward;
mod get;
mod put;

use std::sync::Arc;

use kvctl::model::context::ClusterSecret;

pub use put::Put;

use crate::service::gossip::Gossip;
use crate::service::hints::HintService;
use crate::service::replica::ReplicaService;
use crate::service::Common;

const EMPTY_RING: &str = "the ring is empty: no node owns any token yet";

/// Fault injection for tests: a file path. The first node (of those started with it) to
/// coordinate a put to success creates that file, writes its id in it, and kills itself
/// (SIGKILL) just before the reply leaves, as a crash at the worst moment for the client
/// would: the write is applied, the client never hears. Nodes that find the file there go on.
pub const CRASH_BEFORE_PUT_REPLY_ENV: &str = "KVCTL_FAILPOINT_CRASH_BEFORE_PUT_REPLY";

pub struct Requests {
    common: Arc<Common>,
    gossip: Arc<Gossip>,
    replica: Arc<ReplicaService>,
    hints: Arc<HintService>,
    /// The key causal contexts are sealed with.
    secret: ClusterSecret,
    /// The name this node's dots carry: its id and its lease's incarnation.
    actor: String,
    /// Fault injection for tests ([`CRASH_BEFORE_PUT_REPLY_ENV`]).
    crash_before_put_reply: Option<std::path::PathBuf>,
}

impl Requests {
    pub fn new(
        common: Arc<Common>,
        gossip: Arc<Gossip>,
        replica: Arc<ReplicaService>,
        hints: Arc<HintService>,
        secret: ClusterSecret,
        actor: String,
    ) -> Requests {
        Requests {
            common,
            gossip,
            replica,
            hints,
            secret,
            actor,
            crash_before_put_reply: std::env::var_os(CRASH_BEFORE_PUT_REPLY_ENV).map(Into::into),
        }
    }
}

/// Kills this process with SIGKILL if it is the first to create `marker` (see
/// [`CRASH_BEFORE_PUT_REPLY_ENV`]).
fn crash_first(marker: &std::path::Path, id: &str) {
    use std::io::Write;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(marker)
        .and_then(|mut f| f.write_all(id.as_bytes()));
    if created.is_err() {
        return;
    }
    eprintln!("{CRASH_BEFORE_PUT_REPLY_ENV}: killing this node before the put's reply");
    // SAFETY: sending a signal to this process; nothing else is touched.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}
