//! The durable log in SQLite (WAL mode): sessions, their sequenced frames,
//! the answers to sends (for idempotency), and each provider's own id of a
//! session's conversation (for continuing it; never sent to a client).
//!
//! All writes go through one writer thread that commits whatever has queued
//! up as one transaction (group commit), so durability does not cap
//! throughput: under load many appends share one commit. Each request gets a
//! savepoint of its own, so a bad one fails alone. Reads use their own
//! connection, which WAL lets run beside the writer.
//!
//! [`streams`] holds the tables of the Durable Streams endpoints, committed
//! by the same writer.

mod streams;

pub use streams::{Chunk, Closer, ForkOrigin, ProducerRow, ProducerStamp, StreamOp, StreamRow};

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

/// A failure of the durable log.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The writer thread is gone (the server is shutting down).
    #[error("the log writer has stopped")]
    WriterGone,
    /// The commit of these writes failed; nothing of them was stored.
    #[error("commit failed: {0}")]
    Commit(String),
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
        /// `(seq, JSON text)`, contiguous.
        frames: Vec<(u64, Arc<str>)>,
        /// The name after them.
        name: Option<String>,
        /// The running run after them.
        open_run: Option<String>,
        /// The session's cost after them, in US dollars, when they can change
        /// it (`None`: they leave it as it is).
        cost_usd: Option<Option<f64>>,
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
    /// A change to a Durable Streams stream.
    Stream(StreamOp),
}

struct WriteRequest {
    ops: Vec<WriteOp>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Observes commit batches (for metrics).
pub type CommitObserver = Arc<dyn Fn(usize, f64) + Send + Sync>;

/// Handle to the durable log.
#[derive(Clone)]
pub struct Store {
    writer: mpsc::UnboundedSender<WriteRequest>,
    reader: Arc<Mutex<Connection>>,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS sessions (
    id TEXT PRIMARY KEY,
    epoch TEXT NOT NULL,
    name TEXT,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    head INTEGER NOT NULL DEFAULT 0,
    open_run TEXT,
    provider TEXT,
    cost_usd REAL,
    base_seq INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS frames (
    session_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (session_id, seq)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS sends (
    session_id TEXT NOT NULL,
    client_message_id TEXT NOT NULL,
    answer TEXT NOT NULL,
    PRIMARY KEY (session_id, client_message_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS bases (
    session_id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    snapshot TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS continuations (
    session_id TEXT NOT NULL,
    provider TEXT NOT NULL,
    id TEXT NOT NULL,
    PRIMARY KEY (session_id, provider)
) WITHOUT ROWID;
";

/// The WAL's size after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 8 * 1024 * 1024;

/// Most writes one commit takes; the rest wait for the next.
const MAX_OPS_PER_COMMIT: usize = 4_096;

impl Store {
    /// Opens (or creates) the database at `path` and starts the writer thread.
    pub fn open(path: &Path, on_commit: CommitObserver) -> Result<Self, StoreError> {
        let writer_connection = Connection::open(path)?;
        // WAL: readers beside the writer, and a commit survives the process
        // being killed once it returns. NORMAL sync: no fsync per commit
        // (a power cut, not a crash, can lose the last commits).
        writer_connection.pragma_update(None, "journal_mode", "WAL")?;
        writer_connection.pragma_update(None, "synchronous", "NORMAL")?;
        // After a checkpoint the WAL is cut back to this, so it does not keep its peak size.
        writer_connection.pragma_update(None, "journal_size_limit", WAL_SIZE_LIMIT_BYTES)?;
        writer_connection.execute_batch(SCHEMA)?;
        writer_connection.execute_batch(streams::SCHEMA)?;
        add_missing_columns(&writer_connection)?;
        let reader = Connection::open(path)?;
        reader.pragma_update(None, "query_only", true)?;
        let (writer, requests) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("log-writer".into())
            .spawn(move || write_loop(writer_connection, requests, on_commit))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Self { writer, reader: Arc::new(Mutex::new(reader)) })
    }

    /// Commits the writes (with whatever else is queued); returns once durable.
    pub async fn write(&self, ops: Vec<WriteOp>) -> Result<(), StoreError> {
        let (done, committed) = oneshot::channel();
        self.writer.send(WriteRequest { ops, done }).map_err(|_| StoreError::WriterGone)?;
        match committed.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(message)) => Err(StoreError::Commit(message)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    async fn read<T: Send + 'static>(
        &self,
        query: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = Arc::clone(&self.reader);
        tokio::task::spawn_blocking(move || {
            let connection = reader.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            query(&connection)
        })
        .await
        .map_err(|_| StoreError::ReadInterrupted)?
        .map_err(StoreError::from)
    }

    /// The session's row.
    pub async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT id, epoch, name, created_at, updated_at, head, open_run, provider, cost_usd, base_seq FROM sessions WHERE id = ?1",
                    [&id],
                    session_row,
                )
                .optional()
        })
        .await
    }

    /// Every session, most recently updated first.
    pub async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, epoch, name, created_at, updated_at, head, open_run, provider, cost_usd, base_seq FROM sessions ORDER BY updated_at DESC",
            )?;
            statement.query_map([], session_row)?.collect()
        })
        .await
    }

    /// Sessions whose last commit left a run running (interrupted by a crash).
    pub async fn sessions_with_open_runs(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare("SELECT id FROM sessions WHERE open_run IS NOT NULL")?;
            statement.query_map([], |row| row.get(0))?.collect()
        })
        .await
    }

    /// Up to `limit` frames of the session after `after_seq`, in order.
    pub async fn frames_after(
        &self,
        session_id: &str,
        after_seq: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Arc<str>)>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT seq, body FROM frames WHERE session_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            statement
                .query_map(params![session_id, after_seq as i64, limit as i64], |row| {
                    Ok((row.get::<_, i64>(0)? as u64, Arc::<str>::from(row.get::<_, String>(1)?)))
                })?
                .collect()
        })
        .await
    }

    /// The seq of the `run_started` of run `run_id`: the first frame that
    /// names the run (run ids are unique), if the log still holds it.
    pub async fn run_start_seq(&self, session_id: &str, run_id: &str) -> Result<Option<u64>, StoreError> {
        let session_id = session_id.to_owned();
        let needle = format!("\"run_id\":{}", serde_json::Value::from(run_id));
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT MIN(seq) FROM frames WHERE session_id = ?1 AND instr(body, ?2) > 0",
                    params![session_id, needle],
                    |row| row.get::<_, Option<i64>>(0),
                )
                .map(|seq| seq.map(|seq| seq as u64))
        })
        .await
    }

    /// The session's base snapshot (JSON) and its seq, once it was compacted.
    pub async fn base(&self, session_id: &str) -> Result<Option<(u64, String)>, StoreError> {
        let session_id = session_id.to_owned();
        self.read(move |connection| {
            connection
                .query_row("SELECT seq, snapshot FROM bases WHERE session_id = ?1", [&session_id], |row| {
                    Ok((row.get::<_, i64>(0)? as u64, row.get(1)?))
                })
                .optional()
        })
        .await
    }

    /// Up to `limit` sessions with no run open that retention says to
    /// compact: more than `max_frames` frames since their base, or untouched
    /// since `idle_before` (ms since the epoch) with frames since their base.
    pub async fn compaction_candidates(
        &self,
        max_frames: Option<u64>,
        idle_before: Option<u64>,
        limit: usize,
    ) -> Result<Vec<String>, StoreError> {
        let (max_frames, idle_before) = (max_frames.map(|n| n as i64), idle_before.map(|at| at as i64));
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT id FROM sessions WHERE open_run IS NULL AND head > base_seq
                 AND ((?1 IS NOT NULL AND head - base_seq > ?1) OR (?2 IS NOT NULL AND updated_at < ?2))
                 ORDER BY updated_at LIMIT ?3",
            )?;
            statement.query_map(params![max_frames, idle_before, limit as i64], |row| row.get(0))?.collect()
        })
        .await
    }

    /// The provider's own id of the session's conversation, if a run stored one.
    pub async fn continuation(&self, session_id: &str, provider: &str) -> Result<Option<String>, StoreError> {
        let (session_id, provider) = (session_id.to_owned(), provider.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT id FROM continuations WHERE session_id = ?1 AND provider = ?2",
                    [&session_id, &provider],
                    |row| row.get(0),
                )
                .optional()
        })
        .await
    }

    /// The answer given to an earlier send with this id.
    pub async fn send_answer(
        &self,
        session_id: &str,
        client_message_id: &str,
    ) -> Result<Option<SendAnswer>, StoreError> {
        let (session_id, client_message_id) = (session_id.to_owned(), client_message_id.to_owned());
        let answer: Option<String> = self
            .read(move |connection| {
                connection
                    .query_row(
                        "SELECT answer FROM sends WHERE session_id = ?1 AND client_message_id = ?2",
                        [&session_id, &client_message_id],
                        |row| row.get(0),
                    )
                    .optional()
            })
            .await?;
        Ok(answer.and_then(|text| serde_json::from_str(&text).ok()))
    }
}

/// Columns added to `sessions` since the first schema, for logs written before them.
const ADDED_COLUMNS: [(&str, &str); 3] =
    [("provider", "TEXT"), ("cost_usd", "REAL"), ("base_seq", "INTEGER NOT NULL DEFAULT 0")];

fn add_missing_columns(connection: &Connection) -> rusqlite::Result<()> {
    for (column, kind) in ADDED_COLUMNS {
        let present: bool = connection.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('sessions') WHERE name = ?1",
            [column],
            |row| row.get(0),
        )?;
        if !present {
            connection.execute_batch(&format!("ALTER TABLE sessions ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        epoch: row.get(1)?,
        name: row.get(2)?,
        created_at: row.get::<_, i64>(3)? as u64,
        updated_at: row.get::<_, i64>(4)? as u64,
        head: row.get::<_, i64>(5)? as u64,
        open_run: row.get(6)?,
        provider: row.get(7)?,
        cost_usd: row.get(8)?,
        base_seq: row.get::<_, i64>(9)? as u64,
    })
}

/// The writer thread: takes every request queued, commits them together,
/// answers each.
fn write_loop(
    mut connection: Connection,
    mut requests: mpsc::UnboundedReceiver<WriteRequest>,
    on_commit: CommitObserver,
) {
    let mut batch = Vec::new();
    while let Some(first) = requests.blocking_recv() {
        let mut ops = first.ops.len();
        batch.push(first);
        while ops < MAX_OPS_PER_COMMIT {
            match requests.try_recv() {
                Ok(next) => {
                    ops += next.ops.len();
                    batch.push(next);
                }
                Err(_) => break,
            }
        }
        let started = Instant::now();
        let results = match commit(&mut connection, &batch) {
            Ok(results) => results,
            Err(error) => vec![Err(error.to_string()); batch.len()],
        };
        on_commit(ops, started.elapsed().as_secs_f64());
        for (request, result) in batch.drain(..).zip(results) {
            if let Err(error) = &result {
                tracing::error!(%error, "commit failed");
            }
            let _ = request.done.send(result);
        }
    }
}

/// Commits a batch in one transaction, each request in its own savepoint.
fn commit(connection: &mut Connection, batch: &[WriteRequest]) -> rusqlite::Result<Vec<Result<(), String>>> {
    let mut transaction = connection.transaction()?;
    let mut results = Vec::with_capacity(batch.len());
    for request in batch {
        let savepoint = transaction.savepoint()?;
        match apply(&savepoint, &request.ops) {
            Ok(()) => {
                savepoint.commit()?;
                results.push(Ok(()));
            }
            // Dropping the savepoint rolls its writes back.
            Err(error) => results.push(Err(error.to_string())),
        }
    }
    transaction.commit()?;
    Ok(results)
}

fn apply(transaction: &Connection, ops: &[WriteOp]) -> rusqlite::Result<()> {
    for op in ops {
        match op {
            WriteOp::CreateSession { id, epoch, provider, now } => {
                transaction.execute(
                    "INSERT INTO sessions (id, epoch, provider, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![id, epoch, provider, *now as i64],
                )?;
            }
            WriteOp::Append { session_id, frames, name, open_run, cost_usd, now } => {
                let mut insert =
                    transaction.prepare_cached("INSERT INTO frames (session_id, seq, body) VALUES (?1, ?2, ?3)")?;
                for (seq, body) in frames {
                    insert.execute(params![session_id, *seq as i64, &**body])?;
                }
                let head = frames.last().map_or(0, |(seq, _)| *seq);
                transaction.execute(
                    "UPDATE sessions SET head = ?2, name = ?3, open_run = ?4, updated_at = ?5,
                     cost_usd = CASE WHEN ?7 THEN ?6 ELSE cost_usd END WHERE id = ?1",
                    params![
                        session_id,
                        head as i64,
                        name,
                        open_run,
                        *now as i64,
                        cost_usd.flatten(),
                        cost_usd.is_some()
                    ],
                )?;
            }
            WriteOp::RecordSend { session_id, client_message_id, answer } => {
                let answer = serde_json::to_string(answer).unwrap_or_default();
                transaction.execute(
                    "INSERT OR IGNORE INTO sends (session_id, client_message_id, answer) VALUES (?1, ?2, ?3)",
                    params![session_id, client_message_id, answer],
                )?;
            }
            WriteOp::SetContinuation { session_id, provider, id } => {
                transaction.execute(
                    "INSERT OR REPLACE INTO continuations (session_id, provider, id) VALUES (?1, ?2, ?3)",
                    params![session_id, provider, id],
                )?;
            }
            WriteOp::ClearContinuation { session_id, provider } => {
                transaction.execute(
                    "DELETE FROM continuations WHERE session_id = ?1 AND provider = ?2",
                    params![session_id, provider],
                )?;
            }
            WriteOp::Compact { session_id, epoch, seq, snapshot } => {
                transaction.execute(
                    "INSERT OR REPLACE INTO bases (session_id, seq, snapshot) VALUES (?1, ?2, ?3)",
                    params![session_id, *seq as i64, snapshot],
                )?;
                transaction.execute(
                    "DELETE FROM frames WHERE session_id = ?1 AND seq <= ?2",
                    params![session_id, *seq as i64],
                )?;
                transaction.execute(
                    "UPDATE sessions SET epoch = ?2, base_seq = ?3 WHERE id = ?1",
                    params![session_id, epoch, *seq as i64],
                )?;
            }
            WriteOp::DeleteSession { id } => {
                transaction.execute("DELETE FROM bases WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM continuations WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM frames WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM sends WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
            }
            WriteOp::Stream(op) => streams::apply(transaction, op)?,
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path) -> Store {
        Store::open(&dir.join("log.db"), Arc::new(|_, _| {})).unwrap()
    }

    fn temp_dir(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("stream-store-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[tokio::test]
    async fn a_log_from_before_the_provider_column_gains_it_and_keeps_its_rows() {
        let dir = temp_dir("migrate");
        let old = Connection::open(dir.join("log.db")).unwrap();
        old.execute_batch(
            "CREATE TABLE sessions (id TEXT PRIMARY KEY, epoch TEXT NOT NULL, name TEXT, created_at INTEGER NOT NULL,
             updated_at INTEGER NOT NULL, head INTEGER NOT NULL DEFAULT 0, open_run TEXT) WITHOUT ROWID;
             INSERT INTO sessions (id, epoch, created_at, updated_at) VALUES ('old', 'e0', 1, 1);",
        )
        .unwrap();
        drop(old);
        let store = store(&dir);
        let old = store.session("old").await.unwrap().unwrap();
        assert_eq!((old.epoch.as_str(), old.provider, old.cost_usd), ("e0", None, None));
        let create =
            WriteOp::CreateSession { id: "new".into(), epoch: "e1".into(), provider: Some("codex".into()), now: 2 };
        store.write(vec![create]).await.unwrap();
        assert_eq!(store.session("new").await.unwrap().and_then(|row| row.provider).as_deref(), Some("codex"));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn appends_read_back_in_pages_and_survive_reopen() {
        let dir = temp_dir("pages");
        {
            let store = store(&dir);
            store
                .write(vec![WriteOp::CreateSession { id: "s".into(), epoch: "e1".into(), provider: None, now: 1 }])
                .await
                .unwrap();
            let frames: Vec<(u64, Arc<str>)> = (1..=5).map(|seq| (seq, Arc::from(format!("f{seq}")))).collect();
            store
                .write(vec![WriteOp::Append {
                    session_id: "s".into(),
                    frames,
                    name: Some("chat".into()),
                    open_run: Some("r1".into()),
                    cost_usd: None,
                    now: 2,
                }])
                .await
                .unwrap();
        }
        let store = store(&dir);
        let row = store.session("s").await.unwrap().unwrap();
        assert_eq!((row.epoch.as_str(), row.head, row.open_run.as_deref()), ("e1", 5, Some("r1")));
        let page = store.frames_after("s", 1, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|(seq, body)| (*seq, body.to_string())).collect::<Vec<_>>(),
            vec![(2, "f2".to_string()), (3, "f3".to_string())]
        );
        assert_eq!(store.sessions_with_open_runs().await.unwrap(), vec!["s".to_string()]);
    }

    #[tokio::test]
    async fn a_failed_write_commits_nothing_of_itself_and_spares_the_others() {
        let dir = temp_dir("atomic");
        let store = store(&dir);
        store
            .write(vec![WriteOp::CreateSession { id: "s".into(), epoch: "e1".into(), provider: None, now: 1 }])
            .await
            .unwrap();
        // The second create of the same id violates the primary key.
        let result = store
            .write(vec![
                WriteOp::Append {
                    session_id: "s".into(),
                    frames: vec![(1, "x".into())],
                    name: None,
                    open_run: None,
                    cost_usd: None,
                    now: 2,
                },
                WriteOp::CreateSession { id: "s".into(), epoch: "e2".into(), provider: None, now: 2 },
            ])
            .await;
        assert!(matches!(result, Err(StoreError::Commit(_))), "{result:?}");
        assert!(store.frames_after("s", 0, 10).await.unwrap().is_empty());
        // Two writers in flight together: the bad one fails, the good one lands.
        let good = store.write(vec![WriteOp::Append {
            session_id: "s".into(),
            frames: vec![(1, "y".into())],
            name: None,
            open_run: None,
            cost_usd: None,
            now: 3,
        }]);
        let bad =
            store.write(vec![WriteOp::CreateSession { id: "s".into(), epoch: "e3".into(), provider: None, now: 3 }]);
        let (good, bad) = tokio::join!(good, bad);
        assert!(good.is_ok() && bad.is_err());
        assert_eq!(store.frames_after("s", 0, 10).await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn send_answers_are_kept_and_deleted_with_the_session() {
        let dir = temp_dir("sends");
        let store = store(&dir);
        let answer = SendAnswer { run_id: "r".into(), message_id: "m".into() };
        store
            .write(vec![
                WriteOp::CreateSession { id: "s".into(), epoch: "e".into(), provider: None, now: 1 },
                WriteOp::RecordSend { session_id: "s".into(), client_message_id: "c".into(), answer: answer.clone() },
            ])
            .await
            .unwrap();
        assert_eq!(store.send_answer("s", "c").await.unwrap(), Some(answer));
        store.write(vec![WriteOp::DeleteSession { id: "s".into() }]).await.unwrap();
        assert_eq!(store.send_answer("s", "c").await.unwrap(), None);
        assert!(store.session("s").await.unwrap().is_none());
    }
}
