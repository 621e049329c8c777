//! Which node drives a run, when several share the log. The node that
//! starts a run takes the session's lease in the same write as its
//! `run_started`, renews it with every batch of the run (and on a timer in
//! between), and lets it go with the `run_finished`. Every write of the run
//! carries the lease, so a node that lost it (stalled past the lease, then
//! woke up) has its writes refused: another node has already ended the run
//! with one failed `run_finished`, and it must not add frames after it.

use std::path::Path;
use std::time::Duration;

use crate::hub::new_id;
use crate::store::{LeaseAction, WriteOp};

/// This node's hold on the runs it drives.
#[derive(Debug, Clone)]
pub struct RunLease {
    /// This node's id: the lease's value.
    pub node: String,
    ttl_ms: u64,
    /// Whether other nodes share the log; alone, a node needs no lease.
    shared: bool,
}

impl RunLease {
    /// The lease of the node whose data directory is `data_dir`: its id is
    /// kept there, so after a restart it knows the runs it drove before.
    pub fn new(data_dir: &Path, ttl_ms: u64, shared: bool) -> std::io::Result<Self> {
        let path = data_dir.join("node-id");
        let node = match std::fs::read_to_string(&path) {
            Ok(node) if !node.trim().is_empty() => node.trim().to_owned(),
            _ => {
                let node = new_id("node");
                std::fs::write(&path, &node)?;
                node
            }
        };
        Ok(Self { node, ttl_ms: ttl_ms.max(1), shared })
    }

    /// The writes that take, keep or let go of the session's lease for run
    /// `run_id`, in order; none alone. The lease is the run's on this node
    /// (`<node>/<run>`), so a late writer of an ended run of this node cannot
    /// pass for the node's next run.
    pub fn ops(&self, session_id: &str, run_id: &str, actions: &[LeaseAction]) -> Vec<WriteOp> {
        if !self.shared {
            return Vec::new();
        }
        let holder = format!("{}/{run_id}", self.node);
        let lease = |&action| WriteOp::Lease {
            session_id: session_id.to_owned(),
            holder: holder.clone(),
            action,
            ttl_ms: self.ttl_ms,
        };
        actions.iter().map(lease).collect()
    }

    /// How often a run renews its lease while its provider is silent, and
    /// how often orphaned runs are looked for: a third of the lease.
    pub fn renew_every(&self) -> Duration {
        Duration::from_millis((self.ttl_ms / 3).max(1))
    }

    /// Whether the lease matters (other nodes share the log).
    pub fn is_shared(&self) -> bool {
        self.shared
    }
}
