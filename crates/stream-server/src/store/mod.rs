//! The durable log: sessions, their sequenced frames, the answers to sends
//! (for idempotency), where each run begins, and each provider's own id of
//! a session's conversation (for continuing it; never sent to a client).
//!
//! It lives in one of two backends, behind one [`Store`]: [`sqlite`], the
//! embedded default (a file in the data directory, group-committed), or
//! [`redis`] with `--redis-url`, which several server nodes share. Both keep
//! the same rules: a request's writes land whole or not at all, and frames
//! are stored only where they follow the session's head, so two writers can
//! never give one seq to two frames.
//!
//! [`streams`] holds the tables of the Durable Streams endpoints, which stay
//! in SQLite (node-local) with either backend.

mod redis;
mod sqlite;
mod streams;

pub use self::redis::{Followed, LogFollower};
pub use streams::{Chunk, Closer, ForkOrigin, ProducerRow, ProducerStamp, StreamOp, StreamRow};

use std::path::Path;
use std::sync::Arc;

use stream_core::frame::RunInfo;

use self::redis::RedisLog;
use self::sqlite::{Ops, Sqlite};

/// A failure of the durable log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread is gone (the server is shutting down).
    #[error("the log writer has stopped")]
    WriterGone,
    /// Redis failed, or could not be reached.
    #[error("redis error: {0}")]
    Redis(#[from] ::redis::RedisError),
    /// The commit of these writes failed; nothing of them was stored.
    #[error("commit failed: {0}")]
    Commit(String),
    /// The writes were refused, and nothing of them stored: their frames do
    /// not follow the session's head.
    #[error(transparent)]
    NotAtHead(#[from] NotAtHead),
    /// Frames of an epoch the session has left (another node compacted it):
    /// the request stored nothing.
    #[error("session {0} has moved to another epoch")]
    EpochMoved(String),
    /// A session created again: the request stored nothing.
    #[error("session {0} exists already")]
    SessionExists(String),
    /// The run lease of the session is another node's (or, to renew, nobody's):
    /// the request stored nothing.
    #[error("another node drives the run of session {0}")]
    Leased(String),
    /// A blocking read task failed.
    #[error("a database read was interrupted")]
    ReadInterrupted,
    /// A session's base snapshot does not parse.
    #[error("the base snapshot of session {session} at seq {seq} does not parse: {error}")]
    CorruptBase {
        /// The session.
        session: String,
        /// The base's seq.
        seq: u64,
        /// Why.
        error: String,
    },
    /// The log lacks frames the session's head says exist.
    #[error("the log holds no frames after seq {after} of session {session}, whose head is {head}")]
    MissingFrames {
        /// The session.
        session: String,
        /// The last seq read.
        after: u64,
        /// The session's head.
        head: u64,
    },
}

/// Frames that do not follow their session's head: another writer moved it,
/// or the session is gone.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("frames from seq {first} do not follow the head of session {session}")]
pub struct NotAtHead {
    /// The session.
    pub session: String,
    /// The first seq of the refused frames.
    pub first: u64,
}

/// A session's row.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    /// Its id.
    pub id: String,
    /// Its epoch.
    pub epoch: String,
    /// Its name.
    pub name: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_at: u64,
    /// The last seq committed.
    pub head: u64,
    /// The run that was running at the last commit.
    pub open_run: Option<String>,
    /// The provider the session was created with.
    pub provider: Option<String>,
    /// What the session has cost, in US dollars, when a provider said.
    pub cost_usd: Option<f64>,
    /// The seq of its base snapshot (0: never compacted); its log keeps the frames after it.
    pub base_seq: u64,
}

/// The answer given to a send, replayed when the same `client_message_id` comes again.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SendAnswer {
    /// The run the send started.
    pub run_id: String,
    /// The user message it created.
    pub message_id: String,
}

/// One write, committed with the others of its batch.
#[derive(Debug, Clone)]
pub enum WriteOp {
    /// A session comes into being.
    CreateSession {
        /// Its id.
        id: String,
        /// Its epoch.
        epoch: String,
        /// The provider it was created with, if it named one.
        provider: Option<String>,
        /// Now.
        now: u64,
    },
    /// Frames appended to a session, with the session's new summary.
    Append {
        /// The session.
        session_id: String,
        /// The epoch the frames carry: refused unless it is the session's.
        epoch: String,
        /// `(seq, JSON text)`, contiguous.
        frames: Vec<(u64, Arc<str>)>,
        /// The name after them.
        name: Option<String>,
        /// The running run after them.
        open_run: Option<String>,
        /// The session's cost after them, in US dollars, when they can change
        /// it (`None`: they leave it as it is).
        cost_usd: Option<Option<f64>>,
        /// The run whose `run_started` is among them, and its seq.
        started_run: Option<(String, u64)>,
        /// Now.
        now: u64,
    },
    /// The answer to a send.
    RecordSend {
        /// The session.
        session_id: String,
        /// The client's id for the message.
        client_message_id: String,
        /// The answer.
        answer: SendAnswer,
    },
    /// The provider's own id of the session's conversation, replacing the last.
    SetContinuation {
        /// The session.
        session_id: String,
        /// The provider.
        provider: String,
        /// Its id (Claude Code's session, Codex's thread).
        id: String,
    },
    /// The provider's id of the session's conversation is let go.
    ClearContinuation {
        /// The session.
        session_id: String,
        /// The provider.
        provider: String,
    },
    /// The session's frames up to `seq` are replaced by its snapshot there,
    /// and it moves to `epoch`: cursors of the old one get a snapshot.
    Compact {
        /// The session.
        session_id: String,
        /// Its new epoch.
        epoch: String,
        /// The seq the base stands at (the head when compacted).
        seq: u64,
        /// The snapshot JSON at `seq`.
        snapshot: String,
    },
    /// A session and everything in it goes.
    DeleteSession {
        /// The session.
        id: String,
    },
    /// With a shared log, an event for the other nodes (one node alone
    /// has nobody to tell: SQLite stores nothing).
    Announce {
        /// The node that tells.
        node: String,
        /// What it tells.
        event: ClusterEvent,
    },
    /// With a shared log, the lease on driving the session's run, which
    /// fences the writes of a node that lost it (a single node holds every
    /// run: SQLite stores nothing).
    Lease {
        /// The session.
        session_id: String,
        /// The node.
        holder: String,
        /// What happens to the lease.
        action: LeaseAction,
        /// How long it lasts unless renewed, in ms.
        ttl_ms: u64,
    },
}

/// What a node tells the others, in the same write as the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// The session's running run changed (`None`: it ended), at `head`.
    Running {
        /// The session.
        session_id: String,
        /// Its run now.
        run: Option<RunInfo>,
        /// Its head.
        head: u64,
    },
    /// The session was compacted into a new epoch.
    Compacted {
        /// The session.
        session_id: String,
    },
    /// The session was deleted.
    Deleted {
        /// The session.
        session_id: String,
    },
    /// An abort of the run, for the node that drives it.
    Abort {
        /// The session.
        session_id: String,
        /// The run.
        run_id: String,
    },
}

/// What a [`WriteOp::Lease`] does; the whole request is refused
/// ([`StoreError::Leased`]) when its condition fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseAction {
    /// Takes it, unless another node holds it.
    Take,
    /// Renews it, if this node holds it: the fence of a run's writes.
    Keep,
    /// Lets it go, if this node holds it.
    Release,
}

/// Observes commit batches (for metrics).
pub type CommitObserver = Arc<dyn Fn(usize, f64) + Send + Sync>;

/// Handle to the durable log.
#[derive(Clone)]
pub struct Store {
    sqlite: Sqlite,
    /// With `--redis-url`, the session log lives there.
    redis: Option<RedisLog>,
}

/// Calls the session log's `method` on whichever backend holds it.
macro_rules! session_log {
    ($store:expr, $method:ident($($arg:expr),*)) => {
        match &$store.redis {
            Some(redis) => redis.$method($($arg),*).await,
            None => $store.sqlite.$method($($arg),*).await,
        }
    };
}

impl Store {
    /// Opens (or creates) the SQLite database at `path`; with `redis_url`,
    /// connects to Redis for the session log.
    pub async fn open(path: &Path, redis_url: Option<&str>, on_commit: CommitObserver) -> Result<Self, StoreError> {
        let redis = match redis_url {
            Some(url) => Some(RedisLog::connect(url, Arc::clone(&on_commit)).await?),
            None => None,
        };
        Ok(Self { sqlite: Sqlite::open(path, on_commit)?, redis })
    }

    /// Whether other nodes write to this log too (Redis): a session's head
    /// can move under this node, and appends must expect to be refused.
    pub fn is_shared(&self) -> bool {
        self.redis.is_some()
    }

    /// A connection that follows sessions' logs and the other nodes'
    /// events from now on, when other nodes write to the log.
    pub async fn follower(&self) -> Result<Option<LogFollower>, StoreError> {
        match &self.redis {
            Some(redis) => Ok(Some(redis.follower().await?)),
            None => Ok(None),
        }
    }

    /// Sessions whose last commit left a run open.
    pub async fn open_runs(&self) -> Result<Vec<String>, StoreError> {
        session_log!(self, open_runs())
    }

    /// Commits the writes together; returns once they are durable.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        match &self.redis {
            Some(redis) => redis.write(&ops).await,
            None => self.sqlite.write(Ops::Sessions(ops)).await,
        }
    }

    /// Commits a change to a Durable Streams stream.
    pub async fn write_stream(&self, op: StreamOp) -> Result<(), StoreError> {
        self.sqlite.write(Ops::Stream(Box::new(op))).await
    }

    /// The session's row.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        session_log!(self, session(id))
    }

    /// Every session, most recently updated first.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        session_log!(self, sessions())
    }

    /// Sessions whose last commit left a run running that no node drives:
    /// with a shared log, those whose lease has expired or is held by node
    /// `own_lease` (this node, before a restart); alone, all of them (a
    /// crash or a stop interrupted them).
    pub async fn orphaned_runs(&self, own_lease: Option<&str>) -> Result<Vec<String>, StoreError> {
        match &self.redis {
            Some(redis) => redis.orphaned_runs(own_lease).await,
            None => self.sqlite.open_runs().await,
        }
    }

    /// Up to `limit` frames of the session after `after_seq`, in order.
    pub async fn frames_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Arc<str>)>, StoreError> {
        session_log!(self, frames_after(session_id, after_seq, limit))
    }

    /// The seq of the `run_started` of run `run_id`, where the run's frames
    /// begin, if the log still holds it.
    pub async fn run_start_seq(&self, session_id: &str, run_id: &str) -> Result<Option<u64>, StoreError> {
        session_log!(self, run_start_seq(session_id, run_id))
    }

    /// The session's base snapshot (JSON) and its seq, once it was compacted.
    pub async fn base(&self, session_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        session_log!(self, base(session_id))
    }

    /// Up to `limit` sessions with no run open that retention says to
    /// compact, least recently updated first: more than `max_frames` frames
    /// since their base, or untouched since `idle_before` (ms since the
    /// epoch) with frames since their base.
    pub async fn compaction_candidates(
        &self,
        max_frames: Option<u64>,
        idle_before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        session_log!(self, compaction_candidates(max_frames, idle_before, limit))
    }

    /// The provider's own id of the session's conversation, if a run stored one.
    pub async fn continuation(&self, session_id: &str, provider: &str) -> Result<Option<String>, StoreError> {
        session_log!(self, continuation(session_id, provider))
    }

    /// The answer given to an earlier send with this id.
    pub async fn send_answer(
        &self,
        session_id: &str,
        client_message_id: &str,
    ) -> Result<Option<SendAnswer>, StoreError> {
        session_log!(self, send_answer(session_id, client_message_id))
    }
}

#[cfg(test)]
mod tests;
