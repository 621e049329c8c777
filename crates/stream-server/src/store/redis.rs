//! The session log in Redis, which several server nodes share
//! (`--redis-url`).
//!
//! Each session is a handful of keys, all with the session id as their hash
//! tag (so a Redis Cluster would keep them on one shard):
//!
//! | key | type | holds |
//! |---|---|---|
//! | `as:{id}:meta` | hash | the [`SessionRow`] fields |
//! | `as:{id}:log` | stream | its frames, entry id `{seq}-0`, field `f` |
//! | `as:{id}:sends` | hash | `client_message_id` → the [`SendAnswer`] JSON |
//! | `as:{id}:runs` | hash | run id → the seq of its `run_started` |
//! | `as:{id}:continuations` | hash | provider → its id of the conversation |
//! | `as:{id}:base` | hash | `seq`, `snapshot`: the base after a compaction |
//! | `as:{id}:lease` | string | the node that drives its run, until it expires |
//!
//! with `as:sessions` (a sorted set of ids by `updated_at`),
//! `as:open-runs` (the ids whose last commit left a run open) and
//! `as:events` (a stream of [`ClusterEvent`]s, the last 10,000 or so) beside them.
//! Session ids cannot hold `{` or `}`, so no id reaches into another's keys.
//!
//! A request's writes are one Lua script (`write.lua`): Redis runs it alone,
//! and it checks every op before it writes any, so a request lands whole or
//! not at all, and frames land only where they follow the session's head.
//! A write is acknowledged once Redis has applied it; what survives a crash
//! of Redis then depends on its persistence settings (docs/protocol.md).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig, MultiplexedConnection};
use redis::{AsyncCommands, Script};

use super::{ClusterEvent, CommitObserver, LeaseAction, NotAtHead, SendAnswer, SessionRow, StoreError, WriteOp};

/// How long a command may wait for its answer before it fails (and the
/// request gets 503): a Redis that is down must not hang requests.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a (re)connection may take.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);

const SESSIONS: &str = "as:sessions";
/// The stream of [`ClusterEvent`]s every node reads.
const EVENTS: &str = "as:events";

fn key(session: &str, part: &str) -> String {
    format!("as:{{{session}}}:{part}")
}

/// Handle to the session log in Redis.
#[derive(Clone)]
pub(super) struct RedisLog {
    client: redis::Client,
    connection: ConnectionManager,
    write: Arc<Script>,
    candidates: Arc<Script>,
    orphaned: Arc<Script>,
    on_commit: CommitObserver,
}

impl RedisLog {
    /// Connects to the Redis at `url`; the connection comes back by itself
    /// after Redis was down.
    pub(super) async fn connect(url: &str, on_commit: CommitObserver) -> Result<Self, StoreError> {
        // Reconnects soon after Redis is back: a request meanwhile gets 503.
        let config = ConnectionManagerConfig::new()
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_connection_timeout(Some(CONNECTION_TIMEOUT))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(500));
        let client = redis::Client::open(url)?;
        let connection = client.get_connection_manager_with_config(config).await?;
        Ok(Self {
            client,
            connection,
            write: Arc::new(Script::new(include_str!("write.lua"))),
            candidates: Arc::new(Script::new(include_str!("candidates.lua"))),
            orphaned: Arc::new(Script::new(include_str!("orphaned.lua"))),
            on_commit,
        })
    }

    pub(super) async fn follower(&self) -> Result<LogFollower, StoreError> {
        let last: Vec<(String, Vec<String>)> = redis::cmd("XREVRANGE")
            .arg(EVENTS)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(1)
            .query_async(&mut self.connection.clone())
            .await?;
        let events_after = last.into_iter().next().map_or_else(|| "0-0".to_owned(), |(id, _)| id);
        Ok(LogFollower { client: self.client.clone(), connection: None, events_after })
    }

    pub(super) async fn open_runs(&self) -> Result<Vec<String>, StoreError> {
        Ok(self.connection.clone().smembers("as:open-runs").await?)
    }

    pub(super) async fn write(&self, ops: &[WriteOp]) -> Result<(), StoreError> {
        let mut invocation = self.write.prepare_invoke();
        for op in ops {
            encode(op, &mut |field| {
                invocation.arg(field);
            });
        }
        let started = Instant::now();
        let written: Result<usize, redis::RedisError> = invocation.invoke_async(&mut self.connection.clone()).await;
        (self.on_commit)(ops.len(), started.elapsed().as_secs_f64());
        match written {
            Ok(_) => Ok(()),
            Err(error) => Err(match (error.code(), error.detail()) {
                (Some("NOTATHEAD"), Some(detail)) => refusal(detail).map_or_else(|| error.into(), Into::into),
                (Some("EXISTS"), Some(session)) => StoreError::SessionExists(session.to_owned()),
                (Some("LEASED"), Some(session)) => StoreError::Leased(session.to_owned()),
                (Some("EPOCHMOVED"), Some(session)) => StoreError::EpochMoved(session.to_owned()),
                (Some("BADOP"), detail) => StoreError::Commit(detail.unwrap_or("").into()),
                _ => error.into(),
            }),
        }
    }

    pub(super) async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let fields: HashMap<String, String> = self.connection.clone().hgetall(key(id, "meta")).await?;
        Ok(session_row(fields))
    }

    pub(super) async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        let mut connection = self.connection.clone();
        let ids: Vec<String> = connection.zrevrange(SESSIONS, 0, -1).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipeline = redis::pipe();
        for id in &ids {
            pipeline.hgetall(key(id, "meta"));
        }
        let rows: Vec<HashMap<String, String>> = pipeline.query_async(&mut connection).await?;
        Ok(rows.into_iter().filter_map(session_row).collect())
    }

    pub(super) async fn orphaned_runs(&self, own_lease: Option<&str>) -> Result<Vec<String>, StoreError> {
        Ok(self
            .orphaned
            .prepare_invoke()
            .arg(own_lease.unwrap_or(""))
            .invoke_async(&mut self.connection.clone())
            .await?)
    }

    pub(super) async fn frames_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Arc<str>)>, StoreError> {
        let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
            .arg(key(session_id, "log"))
            .arg(format!("({after_seq}-0"))
            .arg("+")
            .arg("COUNT")
            .arg(limit)
            .query_async(&mut self.connection.clone())
            .await?;
        Ok(entries.into_iter().filter_map(entry_frame).collect())
    }

    pub(super) async fn run_start_seq(&self, session_id: &str, run_id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self.connection.clone().hget(key(session_id, "runs"), run_id).await?)
    }

    pub(super) async fn base(&self, session_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let (seq, snapshot): (Option<u64>, Option<String>) =
            self.connection.clone().hmget(key(session_id, "base"), &["seq", "snapshot"]).await?;
        Ok(seq.zip(snapshot))
    }

    pub(super) async fn compaction_candidates(
        &self,
        max_frames: Option<u64>,
        idle_before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let absent_or = |value: Option<u64>| value.map_or_else(String::new, |value| value.to_string());
        Ok(self
            .candidates
            .prepare_invoke()
            .arg(absent_or(max_frames))
            .arg(absent_or(idle_before))
            .arg(limit)
            .invoke_async(&mut self.connection.clone())
            .await?)
    }

    pub(super) async fn continuation(&self, session_id: &str, provider: &str) -> Result<Option<String>, StoreError> {
        Ok(self.connection.clone().hget(key(session_id, "continuations"), provider).await?)
    }

    pub(super) async fn send_answer(
        &self,
        session_id: &str,
        client_message_id: &str,
    ) -> Result<Option<SendAnswer>, StoreError> {
        let answer: Option<String> = self.connection.clone().hget(key(session_id, "sends"), client_message_id).await?;
        Ok(answer.and_then(|text| serde_json::from_str(&text).ok()))
    }
}

/// A node's own connection for following logs and the other nodes'
/// events, since its reads block.
pub struct LogFollower {
    client: redis::Client,
    /// Made at the first read, and again after a failure.
    connection: Option<MultiplexedConnection>,
    /// The id of the last event read.
    events_after: String,
}

/// Frames with their seqs, in order.
pub type Frames = Vec<(u64, Arc<str>)>;

/// What one follower read brings.
#[derive(Debug, Default)]
pub struct Followed {
    /// The frames after each position given, per session that has some.
    pub frames: Vec<(String, Frames)>,
    /// The events since the last read, each with the node that told it.
    pub events: Vec<(String, ClusterEvent)>,
}

/// An XREAD answer: per stream, its entries with their fields.
type StreamEntries = Vec<(String, Vec<(String, Vec<String>)>)>;

impl LogFollower {
    /// The frames committed after each `(session, seq)`, and the events
    /// since the last read; waits up to `block` for the first of them.
    pub async fn read(&mut self, after: &[(String, u64)], block: Duration) -> Result<Followed, StoreError> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => self.connection.insert(follow_connection(&self.client, block).await?),
        };
        let mut command = redis::cmd("XREAD");
        command.arg("COUNT").arg(FOLLOW_PAGE_FRAMES).arg("BLOCK").arg(block.as_millis() as u64).arg("STREAMS");
        command.arg(EVENTS);
        for (session, _) in after {
            command.arg(key(session, "log"));
        }
        command.arg(&self.events_after);
        for (_, seq) in after {
            command.arg(format!("{seq}-0"));
        }
        let read: Result<Option<StreamEntries>, _> = command.query_async(connection).await;
        let streams = read.inspect_err(|_| self.connection = None)?.unwrap_or_default();
        let mut followed = Followed::default();
        for (stream, entries) in streams {
            if stream == EVENTS {
                if let Some((last, _)) = entries.last() {
                    self.events_after.clone_from(last);
                }
                followed.events.extend(entries.into_iter().filter_map(|(_, fields)| cluster_event(fields)));
            } else if let Some(session) = stream.strip_prefix("as:{").and_then(|rest| rest.strip_suffix("}:log")) {
                followed.frames.push((session.to_owned(), entries.into_iter().filter_map(entry_frame).collect()));
            }
        }
        Ok(followed)
    }
}

async fn follow_connection(client: &redis::Client, block: Duration) -> Result<MultiplexedConnection, StoreError> {
    let config = redis::AsyncConnectionConfig::new()
        .set_response_timeout(Some(block + RESPONSE_TIMEOUT))
        .set_connection_timeout(Some(CONNECTION_TIMEOUT));
    Ok(client.get_multiplexed_async_connection_with_config(&config).await?)
}

/// An event from its entry's fields (`node`, `session`, `kind`, `data`, `head`).
fn cluster_event(fields: Vec<String>) -> Option<(String, ClusterEvent)> {
    let mut fields: HashMap<String, String> =
        fields.chunks_exact(2).map(|pair| (pair[0].clone(), pair[1].clone())).collect();
    let session_id = fields.remove("session")?;
    let data = fields.remove("data").unwrap_or_default();
    let event = match fields.get("kind")?.as_str() {
        "running" => ClusterEvent::Running {
            session_id,
            run: if data.is_empty() { None } else { Some(serde_json::from_str(&data).ok()?) },
            head: fields.get("head")?.parse().ok()?,
        },
        "compacted" => ClusterEvent::Compacted { session_id },
        "deleted" => ClusterEvent::Deleted { session_id },
        "abort" => ClusterEvent::Abort { session_id, run_id: data },
        _ => return None,
    };
    Some((fields.remove("node")?, event))
}

/// Most frames one follower read takes from each stream.
const FOLLOW_PAGE_FRAMES: usize = 1_024;

/// A log entry's seq and frame.
fn entry_frame((id, mut fields): (String, Vec<String>)) -> Option<(u64, Arc<str>)> {
    let seq = id.split_once('-')?.0.parse().ok()?;
    Some((seq, Arc::from(fields.pop()?)))
}

/// Lays one op out as `write.lua` reads it: its name, its session, its
/// fields; `""` for an absent field. An append without frames writes nothing.
fn encode(op: &WriteOp, push: &mut impl FnMut(&str)) {
    let text_or_absent = |value: &Option<String>| value.clone().unwrap_or_default();
    match op {
        WriteOp::CreateSession { id, epoch, provider, now } => {
            for field in ["create", id, epoch, &text_or_absent(provider), &now.to_string()] {
                push(field);
            }
        }
        WriteOp::Append { session_id, epoch, frames, name, open_run, cost_usd, started_run, now } => {
            if frames.is_empty() {
                return;
            }
            for field in ["append", session_id, epoch, &frames.len().to_string()] {
                push(field);
            }
            for (seq, body) in frames {
                push(&seq.to_string());
                push(body);
            }
            let (cost_mode, cost) = match cost_usd {
                None => ("keep", String::new()),
                Some(cost) => ("set", cost.map(|cost| cost.to_string()).unwrap_or_default()),
            };
            let (run, run_seq) =
                started_run.as_ref().map_or_else(Default::default, |(run, seq)| (run.clone(), seq.to_string()));
            for field in
                [&text_or_absent(name), &text_or_absent(open_run), cost_mode, &cost, &run, &run_seq, &now.to_string()]
            {
                push(field);
            }
        }
        WriteOp::RecordSend { session_id, client_message_id, answer } => {
            let answer = serde_json::to_string(answer).unwrap_or_default();
            for field in ["send", session_id, client_message_id, &answer] {
                push(field);
            }
        }
        WriteOp::SetContinuation { session_id, provider, id } => {
            for field in ["continuation", session_id, provider, id] {
                push(field);
            }
        }
        WriteOp::ClearContinuation { session_id, provider } => {
            for field in ["continuation", session_id, provider, ""] {
                push(field);
            }
        }
        WriteOp::Compact { session_id, epoch, seq, snapshot } => {
            for field in ["compact", session_id, epoch, &seq.to_string(), snapshot] {
                push(field);
            }
        }
        WriteOp::DeleteSession { id } => {
            push("delete");
            push(id);
        }
        WriteOp::Announce { node, event } => {
            let (session_id, kind, data, head) = match event {
                ClusterEvent::Running { session_id, run, head } => {
                    let run = run.as_ref().map(|run| serde_json::to_string(run).unwrap_or_default());
                    (session_id, "running", run.unwrap_or_default(), *head)
                }
                ClusterEvent::Compacted { session_id } => (session_id, "compacted", String::new(), 0),
                ClusterEvent::Deleted { session_id } => (session_id, "deleted", String::new(), 0),
                ClusterEvent::Abort { session_id, run_id } => (session_id, "abort", run_id.clone(), 0),
            };
            for field in ["announce", session_id, node, kind, &data, &head.to_string()] {
                push(field);
            }
        }
        WriteOp::Lease { session_id, holder, action, ttl_ms } => {
            let action = match action {
                LeaseAction::Take => "take",
                LeaseAction::Keep => "keep",
                LeaseAction::Release => "release",
            };
            for field in ["lease", session_id, action, holder, &ttl_ms.to_string()] {
                push(field);
            }
        }
    }
}

/// The refusal `write.lua` answers with `NOTATHEAD <session> <first seq>`.
fn refusal(detail: &str) -> Option<NotAtHead> {
    let (session, first) = detail.rsplit_once(' ')?;
    Some(NotAtHead { session: session.to_owned(), first: first.parse().ok()? })
}

fn session_row(mut fields: HashMap<String, String>) -> Option<SessionRow> {
    let number = |name: &str| fields.get(name).and_then(|value| value.parse::<u64>().ok()).unwrap_or(0);
    let (created_at, updated_at, head, base_seq) =
        (number("created_at"), number("updated_at"), number("head"), number("base_seq"));
    Some(SessionRow {
        id: fields.remove("id")?,
        epoch: fields.remove("epoch")?,
        name: fields.remove("name"),
        created_at,
        updated_at,
        head,
        open_run: fields.remove("open_run"),
        provider: fields.remove("provider"),
        cost_usd: fields.get("cost_usd").and_then(|cost| cost.parse().ok()),
        base_seq,
    })
}
