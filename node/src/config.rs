//! A node's configuration: one [`NodeConfig`] with a part per service, checked in one place
//! ([`NodeConfig::validate`]) before anything starts.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use kvctl::model::context::ClusterSecret;
use kvctl::storage::engine::Limits;

use crate::admission;
use crate::store::hints::HintLimits;

/// How often a node gossips.
pub const GOSSIP_INTERVAL: Duration = Duration::from_millis(500);

#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: String,
    pub listen: SocketAddr,
    /// Replicas per key (N), the same on every node.
    pub replication: usize,
    /// Connections, bytes in flight, the write queue.
    pub admission: admission::Limits,
    pub requests: RequestsConfig,
    pub replica: ReplicaConfig,
    pub gossip: GossipConfig,
    pub hints: HintsConfig,
    pub repair: RepairConfig,
    pub tombstones: TombstonesConfig,
    pub layout: LayoutConfig,
    /// Where to serve Prometheus metrics (`/metrics`), if anywhere.
    pub metrics_listen: Option<SocketAddr>,
}

/// The request service's part: what a client may send, and how contexts are sealed.
#[derive(Debug, Clone)]
pub struct RequestsConfig {
    /// Key and value sizes.
    pub limits: Limits,
    /// The key causal contexts are sealed with, the same on every node of the cluster.
    pub secret: ClusterSecret,
}

/// The replica's part.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// Most durable rounds (one fsync each) a second the replica's writer starts, on average;
    /// 0 for no limit.
    pub sync_rate_max: u32,
}

/// Gossip and membership's part: this node's entry and how it joins.
#[derive(Debug, Clone)]
pub struct GossipConfig {
    pub seeds: Vec<SocketAddr>,
    pub tokens: Vec<u128>,
    /// This start's gossip generation: higher than every earlier start's, so other nodes take
    /// the restarted node's state over what they remember (see
    /// [`crate::bootstrap::next_generation`]).
    pub generation: u64,
    /// The failure detector's conviction threshold.
    pub phi_convict_threshold: f64,
}

/// Hinted handoff's part.
#[derive(Debug, Clone)]
pub struct HintsConfig {
    /// Hints kept for replicas that miss writes: bytes per target, the window.
    pub limits: HintLimits,
    /// Bytes a second of hints replayed to one node.
    pub replay_bytes_per_sec: u64,
}

/// Repair and anti-entropy's part.
#[derive(Debug, Clone)]
pub struct RepairConfig {
    /// How often the node repairs the ranges it is the first replica of; zero: never.
    pub aae_interval: Duration,
}

/// The tombstone sweep's part.
#[derive(Debug, Clone)]
pub struct TombstonesConfig {
    /// How long a tombstone is kept at least (and until a repair covering it completed).
    pub grace: Duration,
}

/// The layout service's part.
#[derive(Debug, Clone)]
pub struct LayoutConfig {
    /// The node's directory, where its layout state is kept.
    pub dir: PathBuf,
}

/// A configuration that would make the node unsafe or unable to work.
#[derive(Debug, thiserror::Error, PartialEq)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("replication {0}: a key needs at least one replica")]
    Replication(usize),
    #[error("the node has no tokens: it would own no keys")]
    NoTokens,
    #[error(
        "--tombstone-grace ({grace}) is shorter than --max-hint-window ({window}): a hint made \
         before a delete could be delivered after its tombstone is gone and bring the value \
         back; make the grace at least the hint window",
        grace = humantime::format_duration(*grace),
        window = humantime::format_duration(*window)
    )]
    GraceBelowHintWindow { grace: Duration, window: Duration },
    #[error("--phi-convict-threshold {0}: must be a positive number")]
    Phi(f64),
}

impl NodeConfig {
    /// Checks the parts against each other: the one place a node's configuration is judged.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.replication == 0 {
            return Err(ConfigError::Replication(self.replication));
        }
        if self.gossip.tokens.is_empty() {
            return Err(ConfigError::NoTokens);
        }
        let phi = self.gossip.phi_convict_threshold;
        if !(phi.is_finite() && phi > 0.0) {
            return Err(ConfigError::Phi(phi));
        }
        let (grace, window) = (self.tombstones.grace, self.hints.limits.window);
        if grace < window {
            return Err(ConfigError::GraceBelowHintWindow { grace, window });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NodeConfig {
        NodeConfig {
            id: "node-1".into(),
            listen: "127.0.0.1:7000".parse().unwrap(),
            replication: 3,
            admission: admission::Limits::default(),
            requests: RequestsConfig {
                limits: Limits::default(),
                secret: ClusterSecret::from_bytes(&[7; kvctl::model::context::SECRET_BYTES]),
            },
            replica: ReplicaConfig { sync_rate_max: 0 },
            gossip: GossipConfig {
                seeds: Vec::new(),
                tokens: vec![1, 2],
                generation: 1,
                phi_convict_threshold: 8.0,
            },
            hints: HintsConfig {
                limits: HintLimits::default(),
                replay_bytes_per_sec: 1 << 20,
            },
            repair: RepairConfig {
                aae_interval: Duration::ZERO,
            },
            tombstones: TombstonesConfig {
                grace: Duration::from_secs(10 * 86_400),
            },
            layout: LayoutConfig {
                dir: PathBuf::from("/nonexistent"),
            },
            metrics_listen: None,
        }
    }

    #[test]
    fn a_sound_configuration_passes_and_each_unsafe_part_is_named() {
        assert_eq!(config().validate(), Ok(()));
        let mut c = config();
        c.replication = 0;
        assert_eq!(c.validate(), Err(ConfigError::Replication(0)));
        let mut c = config();
        c.gossip.tokens.clear();
        assert_eq!(c.validate(), Err(ConfigError::NoTokens));
        let mut c = config();
        c.gossip.phi_convict_threshold = f64::NAN;
        assert!(matches!(c.validate(), Err(ConfigError::Phi(_))));
        let mut c = config();
        c.tombstones.grace = c.hints.limits.window / 2;
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("--tombstone-grace"), "{e}");
    }
}
