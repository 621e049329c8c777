//! The embedded default log: SQLite in WAL mode, in the server's data
//! directory.
//!
//! Writes queue for one writer thread that commits whatever has queued up
//! as one transaction (group commit), so durability does not cap
//! throughput: under load many appends share one commit. A light write that
//! finds the writer idle and nothing queued commits at once on its caller's
//! thread instead, so a lone frame does not wait for two thread hand-offs.
//! Each request gets a savepoint of its own, so a bad one fails alone. Reads
//! use their own connection, which WAL lets run beside the writer.

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rusqlite::{Connection, OptionalExtension, params};
use tokio::sync::{mpsc, oneshot};

use super::{CommitObserver, NotAtHead, SendAnswer, SessionRow, StoreError, StreamOp, WriteOp, streams};

/// What one request commits: session writes, or one Durable Streams change.
pub(super) enum Ops {
    /// Writes to the session log.
    Sessions(Vec<WriteOp>),
    /// A change to a stream.
    Stream(Box<StreamOp>),
}

impl Ops {
    fn len(&self) -> usize {
        match self {
            Self::Sessions(ops) => ops.len(),
            Self::Stream(_) => 1,
        }
    }

    /// Whether these commit quickly enough to hold up an async caller's
    /// thread (a few frames: ~0.1-0.2 ms, less than the hand-offs to the
    /// writer thread and back). Compactions, deletions and stream changes
    /// rewrite or insert without such a bound, so they always queue.
    fn is_light(&self) -> bool {
        let Self::Sessions(ops) = self else { return false };
        ops.iter().all(|op| match op {
            WriteOp::Append { frames, .. } => {
                frames.len() <= LIGHT_FRAMES && frames.iter().map(|(_, body)| body.len()).sum::<usize>() <= LIGHT_BYTES
            }
            WriteOp::Compact { .. } | WriteOp::DeleteSession { .. } => false,
            _ => true,
        })
    }
}

/// Most frames, and most bytes of them, an append may have to be light.
const LIGHT_FRAMES: usize = 32;
const LIGHT_BYTES: usize = 64 * 1024;

struct WriteRequest {
    ops: Ops,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// Handle to the SQLite log.
#[derive(Clone)]
pub(super) struct Sqlite {
    writer: mpsc::UnboundedSender<WriteRequest>,
    committer: Arc<Committer>,
    reader: Arc<Mutex<Connection>>,
}

/// The write connection, held by whoever commits: the writer thread, or a
/// caller that found it idle.
struct Committer {
    connection: Mutex<Connection>,
    /// Requests sent to the writer thread and not yet committed. A caller
    /// commits on its own thread only when none are, so it never overtakes them.
    queued: AtomicUsize,
    on_commit: CommitObserver,
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

/// Where each run's frames begin, and its backfill for logs written before
/// the table: the seq of each `run_started`.
const RUN_STARTS: &str = "
CREATE TABLE run_starts (
    session_id TEXT NOT NULL,
    run_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (session_id, run_id)
) WITHOUT ROWID;
INSERT OR IGNORE INTO run_starts (session_id, run_id, seq)
    SELECT session_id, json_extract(body, '$.run_id'), seq FROM frames
    WHERE json_extract(body, '$.type') = 'run_started';
";

/// The WAL's size after a checkpoint.
const WAL_SIZE_LIMIT_BYTES: i64 = 8 * 1024 * 1024;

/// Most writes one commit takes; the rest wait for the next.
const MAX_OPS_PER_COMMIT: usize = 4_096;

impl Sqlite {
    /// Opens (or creates) the database at `path` and starts the writer thread.
    pub(super) fn open(path: &Path, on_commit: CommitObserver) -> Result<Self, StoreError> {
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
        let has_run_starts: bool = writer_connection.query_row(
            "SELECT COUNT(*) > 0 FROM sqlite_schema WHERE type = 'table' AND name = 'run_starts'",
            [],
            |row| row.get(0),
        )?;
        if !has_run_starts {
            writer_connection.execute_batch(&format!("BEGIN; {RUN_STARTS} COMMIT;"))?;
        }
        let reader = Connection::open(path)?;
        reader.pragma_update(None, "query_only", true)?;
        let committer =
            Arc::new(Committer { connection: Mutex::new(writer_connection), queued: AtomicUsize::new(0), on_commit });
        let (writer, requests) = mpsc::unbounded_channel();
        let thread_committer = Arc::clone(&committer);
        std::thread::Builder::new()
            .name(WRITER_THREAD.into())
            .spawn(move || write_loop(&thread_committer, requests))
            .map_err(|_| StoreError::WriterGone)?;
        Ok(Self { writer, committer, reader: Arc::new(Mutex::new(reader)) })
    }

    /// Commits the writes (with whatever else is queued); returns once durable.
    pub(super) async fn write(&self, ops: Ops) -> Result<(), StoreError> {
        if ops.is_light()
            && let Some(result) = self.committer.commit_if_idle(&ops)
        {
            return result;
        }
        let (done, committed) = oneshot::channel();
        self.committer.queued.fetch_add(1, Ordering::AcqRel);
        if self.writer.send(WriteRequest { ops, done }).is_err() {
            self.committer.queued.fetch_sub(1, Ordering::AcqRel);
            return Err(StoreError::WriterGone);
        }
        committed.await.unwrap_or(Err(StoreError::WriterGone))
    }

    pub(super) async fn read<T: Send + 'static>(
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

    pub(super) async fn session(&self, id: &str) -> Result<Option<SessionRow>, StoreError> {
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

    pub(super) async fn sessions(&self) -> Result<Vec<SessionRow>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare(
                "SELECT id, epoch, name, created_at, updated_at, head, open_run, provider, cost_usd, base_seq FROM sessions ORDER BY updated_at DESC",
            )?;
            statement.query_map([], session_row)?.collect()
        })
        .await
    }

    pub(super) async fn open_runs(&self) -> Result<Vec<String>, StoreError> {
        self.read(|connection| {
            let mut statement = connection.prepare("SELECT id FROM sessions WHERE open_run IS NOT NULL")?;
            statement.query_map([], |row| row.get(0))?.collect()
        })
        .await
    }

    pub(super) async fn frames_after(
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

    pub(super) async fn run_start_seq(&self, session_id: &str, run_id: &str) -> Result<Option<u64>, StoreError> {
        let (session_id, run_id) = (session_id.to_owned(), run_id.to_owned());
        self.read(move |connection| {
            connection
                .query_row(
                    "SELECT seq FROM run_starts WHERE session_id = ?1 AND run_id = ?2",
                    [&session_id, &run_id],
                    |row| row.get::<_, i64>(0),
                )
                .optional()
                .map(|seq| seq.map(|seq| seq as u64))
        })
        .await
    }

    pub(super) async fn base(&self, session_id: &str) -> Result<Option<(u64, String)>, StoreError> {
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

    pub(super) async fn compaction_candidates(
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

    pub(super) async fn continuation(&self, session_id: &str, provider: &str) -> Result<Option<String>, StoreError> {
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

    pub(super) async fn send_answer(
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

/// The writer thread's name.
const WRITER_THREAD: &str = "log-writer";

impl Committer {
    /// Commits `ops` alone on this thread, unless another commit is under
    /// way or requests wait for the writer thread (`None`: queue them).
    fn commit_if_idle(&self, ops: &Ops) -> Option<Result<(), StoreError>> {
        let mut connection = self.connection.try_lock().ok()?;
        if self.queued.load(Ordering::Acquire) > 0 {
            return None;
        }
        self.commit(&mut connection, std::iter::once(ops)).pop()
    }

    /// Commits `batch` in one transaction: one answer per request.
    fn commit<'a>(
        &self,
        connection: &mut Connection,
        batch: impl ExactSizeIterator<Item = &'a Ops> + Clone,
    ) -> Vec<Result<(), StoreError>> {
        let started = Instant::now();
        let results = match transact(connection, batch.clone()) {
            Ok(results) => results,
            Err(error) => batch.clone().map(|_| Err(StoreError::Commit(error.to_string()))).collect(),
        };
        (self.on_commit)(batch.map(Ops::len).sum(), started.elapsed().as_secs_f64());
        for error in results.iter().filter_map(|result| result.as_ref().err()) {
            tracing::error!(%error, "commit failed");
        }
        results
    }
}

/// The writer thread: takes every request queued, commits them together,
/// answers each.
fn write_loop(committer: &Committer, mut requests: mpsc::UnboundedReceiver<WriteRequest>) {
    let mut batch = Vec::new();
    while let Some(first) = requests.blocking_recv() {
        let mut connection = committer.connection.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let results = committer.commit(&mut connection, batch.iter().map(|request| &request.ops));
        committer.queued.fetch_sub(batch.len(), Ordering::AcqRel);
        drop(connection);
        for (request, result) in batch.drain(..).zip(results) {
            let _ = request.done.send(result);
        }
    }
}

/// Commits a batch in one transaction, each request in its own savepoint.
fn transact<'a>(
    connection: &mut Connection,
    batch: impl ExactSizeIterator<Item = &'a Ops>,
) -> rusqlite::Result<Vec<Result<(), StoreError>>> {
    let mut transaction = connection.transaction()?;
    let mut results = Vec::with_capacity(batch.len());
    for ops in batch {
        let savepoint = transaction.savepoint()?;
        let applied = match ops {
            Ops::Sessions(ops) => apply(&savepoint, ops),
            Ops::Stream(op) => streams::apply(&savepoint, op).map_err(StoreError::from),
        };
        match applied {
            Ok(()) => {
                savepoint.commit()?;
                results.push(Ok(()));
            }
            // Dropping the savepoint rolls its writes back.
            Err(error) => results.push(Err(error)),
        }
    }
    transaction.commit()?;
    Ok(results)
}

fn apply(transaction: &Connection, ops: &[WriteOp]) -> Result<(), StoreError> {
    for op in ops {
        match op {
            WriteOp::CreateSession { id, epoch, provider, now } => {
                let created = transaction.execute(
                    "INSERT OR IGNORE INTO sessions (id, epoch, provider, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                    params![id, epoch, provider, *now as i64],
                )?;
                if created == 0 {
                    return Err(StoreError::SessionExists(id.clone()));
                }
            }
            WriteOp::Append { session_id, epoch, frames, name, open_run, cost_usd, started_run, now } => {
                let (Some((first, _)), Some((head, _))) = (frames.first(), frames.last()) else { continue };
                let moved = transaction.execute(
                    "UPDATE sessions SET head = ?2, name = ?3, open_run = ?4, updated_at = ?5,
                     cost_usd = CASE WHEN ?7 THEN ?6 ELSE cost_usd END WHERE id = ?1 AND head = ?8 AND epoch = ?9",
                    params![
                        session_id,
                        *head as i64,
                        name,
                        open_run,
                        *now as i64,
                        cost_usd.flatten(),
                        cost_usd.is_some(),
                        (*first - 1) as i64,
                        epoch,
                    ],
                )?;
                if moved == 0 {
                    return Err(refusal(transaction, session_id, epoch, *first)?);
                }
                let mut insert =
                    transaction.prepare_cached("INSERT INTO frames (session_id, seq, body) VALUES (?1, ?2, ?3)")?;
                for (seq, body) in frames {
                    insert.execute(params![session_id, *seq as i64, &**body])?;
                }
                if let Some((run_id, seq)) = started_run {
                    transaction.execute(
                        "INSERT OR REPLACE INTO run_starts (session_id, run_id, seq) VALUES (?1, ?2, ?3)",
                        params![session_id, run_id, *seq as i64],
                    )?;
                }
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
                // Only at the head (frames after it would keep the old
                // epoch), and once there (another node may have compacted it first).
                let moved = transaction.execute(
                    "UPDATE sessions SET epoch = ?2, base_seq = ?3 WHERE id = ?1 AND head = ?3 AND base_seq < ?3",
                    params![session_id, epoch, *seq as i64],
                )?;
                if moved == 0 {
                    return Err(NotAtHead { session: session_id.clone(), first: seq + 1 }.into());
                }
                transaction.execute(
                    "INSERT OR REPLACE INTO bases (session_id, seq, snapshot) VALUES (?1, ?2, ?3)",
                    params![session_id, *seq as i64, snapshot],
                )?;
                transaction.execute(
                    "DELETE FROM frames WHERE session_id = ?1 AND seq <= ?2",
                    params![session_id, *seq as i64],
                )?;
                transaction.execute(
                    "DELETE FROM run_starts WHERE session_id = ?1 AND seq <= ?2",
                    params![session_id, *seq as i64],
                )?;
            }
            // One node alone: nothing to fence, nobody to tell.
            WriteOp::Lease { .. } | WriteOp::Announce { .. } => {}
            WriteOp::DeleteSession { id } => {
                transaction.execute("DELETE FROM bases WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM continuations WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM frames WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM run_starts WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM sends WHERE session_id = ?1", [id])?;
                transaction.execute("DELETE FROM sessions WHERE id = ?1", [id])?;
            }
        }
    }
    Ok(())
}

/// Why an append changed no session row: the session is gone or its head
/// moved (frames that do not follow it), or it is in another epoch.
fn refusal(transaction: &Connection, session_id: &str, epoch: &str, first: u64) -> rusqlite::Result<StoreError> {
    let current: Option<String> =
        transaction.query_row("SELECT epoch FROM sessions WHERE id = ?1", [session_id], |row| row.get(0)).optional()?;
    Ok(match current {
        Some(current) if current != epoch => StoreError::EpochMoved(session_id.to_owned()),
        _ => StoreError::NotAtHead(NotAtHead { session: session_id.to_owned(), first }),
    })
}
