//! The Durable Streams part of the log: each stream's record, its bytes (or
//! JSON messages) as positioned chunks, and its producers' state. A chunk,
//! its stream's new tail and its producer's new seq commit in one
//! transaction, so a retry after a crash is still recognised as one.

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::{Store, StoreError};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ds_streams (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL UNIQUE,
    content_type TEXT NOT NULL,
    ttl_seconds INTEGER,
    expires_at_ms INTEGER,
    created_at_ms INTEGER NOT NULL,
    tail INTEGER NOT NULL,
    closed_by TEXT,
    stream_seq TEXT,
    fork TEXT,
    soft_deleted INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS ds_chunks (
    stream_id INTEGER NOT NULL,
    pos INTEGER NOT NULL,
    len INTEGER NOT NULL,
    batch_end INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (stream_id, pos)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ds_producers (
    stream_id INTEGER NOT NULL,
    producer_id TEXT NOT NULL,
    epoch INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    PRIMARY KEY (stream_id, producer_id)
) WITHOUT ROWID;
";

/// Who closed a stream: a close is closed once, so only a retry of the same
/// producer request may see it again as a success.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Closer {
    /// A plain close, without producer headers.
    Anonymous,
    /// An idempotent producer's request.
    Producer(ProducerStamp),
}

/// One idempotent producer request: `(id, epoch, seq)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ProducerStamp {
    /// `Producer-Id`.
    pub id: String,
    /// `Producer-Epoch`.
    pub epoch: u64,
    /// `Producer-Seq`.
    pub seq: u64,
}

/// Where a fork came from, fixed at its creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkOrigin {
    /// The source stream's id.
    pub source_id: i64,
    /// The source's path.
    pub source_path: String,
    /// The position in the source the fork was taken at.
    pub offset: u64,
    /// Bytes (or messages) of the append at `offset` the fork kept too.
    pub sub_offset: u64,
}

/// A stream's durable record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamRow {
    /// Internal id, never reused, so a stream made again at the same path is another stream.
    pub id: i64,
    /// The URL path.
    pub path: String,
    /// Its content type, as created.
    pub content_type: String,
    /// `Stream-TTL`: seconds of idleness after which it expires.
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`, ms since the Unix epoch.
    pub expires_at_ms: Option<u64>,
    /// Creation time, ms since the Unix epoch.
    pub created_at_ms: u64,
    /// The position after its last byte (or message).
    pub tail: u64,
    /// Set once it is closed.
    pub closed_by: Option<Closer>,
    /// The last `Stream-Seq` accepted.
    pub stream_seq: Option<String>,
    /// Set when it was forked from another stream.
    pub fork: Option<ForkOrigin>,
    /// Deleted while forks still hold it: it answers 410 until they go.
    pub soft_deleted: bool,
}

/// A run of bytes, or one JSON message, at a position of a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Its position.
    pub pos: u64,
    /// Its length in positions: bytes, or 1 for a JSON message.
    pub len: u64,
    /// The position after the append it came in (a JSON batch spans several chunks).
    pub batch_end: u64,
    /// Its bytes (a JSON message's text).
    pub data: Vec<u8>,
}

/// A producer's state on a stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerRow {
    /// The stream.
    pub stream_id: i64,
    /// The producer's last accepted request.
    pub stamp: ProducerStamp,
}

/// One change to the Durable Streams part of the log.
#[derive(Debug, Clone)]
pub enum StreamOp {
    /// A stream comes into being: the record, the source's chunks before
    /// `copy_until` when it is a fork, then `chunks`.
    Create {
        /// Its record (with the tail after everything below).
        row: StreamRow,
        /// For a fork: the source's id and the position its copy ends at.
        copy_until: Option<(i64, u64)>,
        /// Its initial content.
        chunks: Vec<Chunk>,
    },
    /// Chunks appended, the stream's new state, and the producer's new seq.
    Append {
        /// The stream.
        id: i64,
        /// The new chunks.
        chunks: Vec<Chunk>,
        /// The tail after them.
        tail: u64,
        /// Set when this append closes the stream.
        closed_by: Option<Closer>,
        /// The `Stream-Seq` after it.
        stream_seq: Option<String>,
        /// The producer request it answers.
        producer: Option<ProducerStamp>,
    },
    /// The stream answers 410 from now on; its forks keep reading their copies.
    SoftDelete {
        /// The stream.
        id: i64,
    },
    /// The stream and everything in it goes.
    Delete {
        /// The stream.
        id: i64,
    },
}

pub(super) fn apply(transaction: &Connection, op: &StreamOp) -> rusqlite::Result<()> {
    match op {
        StreamOp::Create { row, copy_until, chunks } => {
            transaction.execute(
                "INSERT INTO ds_streams (id, path, content_type, ttl_seconds, expires_at_ms, created_at_ms, tail,
                 closed_by, stream_seq, fork, soft_deleted) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 0)",
                params![
                    row.id,
                    row.path,
                    row.content_type,
                    row.ttl_seconds.map(|ttl| ttl as i64),
                    row.expires_at_ms.map(|at| at as i64),
                    row.created_at_ms as i64,
                    row.tail as i64,
                    to_json(&row.closed_by),
                    row.stream_seq,
                    to_json(&row.fork),
                ],
            )?;
            if let Some((source, until)) = copy_until {
                // Whole chunks before the cut, then the part of the one it splits.
                transaction.execute(
                    "INSERT INTO ds_chunks (stream_id, pos, len, batch_end, data)
                     SELECT ?1, pos, len, MIN(batch_end, ?3), data FROM ds_chunks
                     WHERE stream_id = ?2 AND pos + len <= ?3",
                    params![row.id, source, *until as i64],
                )?;
                transaction.execute(
                    "INSERT INTO ds_chunks (stream_id, pos, len, batch_end, data)
                     SELECT ?1, pos, ?3 - pos, ?3, substr(data, 1, ?3 - pos) FROM ds_chunks
                     WHERE stream_id = ?2 AND pos < ?3 AND pos + len > ?3",
                    params![row.id, source, *until as i64],
                )?;
            }
            insert_chunks(transaction, row.id, chunks)
        }
        StreamOp::Append { id, chunks, tail, closed_by, stream_seq, producer } => {
            insert_chunks(transaction, *id, chunks)?;
            transaction.execute(
                "UPDATE ds_streams SET tail = ?2, closed_by = COALESCE(?3, closed_by), stream_seq = ?4 WHERE id = ?1",
                params![id, *tail as i64, closed_by.as_ref().map(|closer| to_json(&Some(closer))), stream_seq],
            )?;
            if let Some(stamp) = producer {
                transaction.execute(
                    "INSERT OR REPLACE INTO ds_producers (stream_id, producer_id, epoch, seq) VALUES (?1, ?2, ?3, ?4)",
                    params![id, stamp.id, stamp.epoch as i64, stamp.seq as i64],
                )?;
            }
            Ok(())
        }
        StreamOp::SoftDelete { id } => {
            transaction.execute("UPDATE ds_streams SET soft_deleted = 1 WHERE id = ?1", [id])?;
            Ok(())
        }
        StreamOp::Delete { id } => {
            transaction.execute("DELETE FROM ds_chunks WHERE stream_id = ?1", [id])?;
            transaction.execute("DELETE FROM ds_producers WHERE stream_id = ?1", [id])?;
            transaction.execute("DELETE FROM ds_streams WHERE id = ?1", [id])?;
            Ok(())
        }
    }
}

fn insert_chunks(transaction: &Connection, stream_id: i64, chunks: &[Chunk]) -> rusqlite::Result<()> {
    let mut insert = transaction
        .prepare_cached("INSERT INTO ds_chunks (stream_id, pos, len, batch_end, data) VALUES (?1, ?2, ?3, ?4, ?5)")?;
    for chunk in chunks {
        insert.execute(params![stream_id, chunk.pos as i64, chunk.len as i64, chunk.batch_end as i64, chunk.data])?;
    }
    Ok(())
}

fn to_json<T: Serialize>(value: &Option<T>) -> Option<String> {
    value.as_ref().and_then(|value| serde_json::to_string(value).ok())
}

fn from_json<T: for<'de> Deserialize<'de>>(text: Option<String>) -> Option<T> {
    text.and_then(|text| serde_json::from_str(&text).ok())
}

impl Store {
    /// Every stream and every producer's state, for the registry at start.
    pub async fn streams(&self) -> Result<(Vec<StreamRow>, Vec<ProducerRow>), StoreError> {
        self.sqlite
            .read(|connection| {
                let mut statement = connection.prepare(
                    "SELECT id, path, content_type, ttl_seconds, expires_at_ms, created_at_ms, tail, closed_by,
                 stream_seq, fork, soft_deleted FROM ds_streams",
                )?;
                let streams = statement
                    .query_map([], |row| {
                        Ok(StreamRow {
                            id: row.get(0)?,
                            path: row.get(1)?,
                            content_type: row.get(2)?,
                            ttl_seconds: row.get::<_, Option<i64>>(3)?.map(|ttl| ttl as u64),
                            expires_at_ms: row.get::<_, Option<i64>>(4)?.map(|at| at as u64),
                            created_at_ms: row.get::<_, i64>(5)? as u64,
                            tail: row.get::<_, i64>(6)? as u64,
                            closed_by: from_json(row.get(7)?),
                            stream_seq: row.get(8)?,
                            fork: from_json(row.get(9)?),
                            soft_deleted: row.get(10)?,
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let mut statement =
                    connection.prepare("SELECT stream_id, producer_id, epoch, seq FROM ds_producers")?;
                let producers = statement
                    .query_map([], |row| {
                        Ok(ProducerRow {
                            stream_id: row.get(0)?,
                            stamp: ProducerStamp {
                                id: row.get(1)?,
                                epoch: row.get::<_, i64>(2)? as u64,
                                seq: row.get::<_, i64>(3)? as u64,
                            },
                        })
                    })?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                Ok((streams, producers))
            })
            .await
    }

    /// The chunks of a stream from position `from` up to `until`, whole
    /// chunks of at most about `max_bytes` in all (always at least one); the
    /// first may begin before `from`.
    pub async fn stream_chunks(
        &self,
        id: i64,
        from: u64,
        until: u64,
        max_bytes: usize,
    ) -> Result<Vec<Chunk>, StoreError> {
        self.sqlite
            .read(move |connection| {
                let start: u64 = connection
                    .query_row(
                        "SELECT pos FROM ds_chunks WHERE stream_id = ?1 AND pos <= ?2 ORDER BY pos DESC LIMIT 1",
                        params![id, from as i64],
                        |row| row.get::<_, i64>(0),
                    )
                    .optional()?
                    .map_or(from, |pos| pos as u64);
                let mut statement = connection.prepare_cached(
                    "SELECT pos, len, batch_end, data FROM ds_chunks WHERE stream_id = ?1 AND pos >= ?2 AND pos < ?3
                 ORDER BY pos",
                )?;
                let mut rows = statement.query(params![id, start as i64, until as i64])?;
                let (mut chunks, mut bytes) = (Vec::new(), 0);
                while let Some(row) = rows.next()? {
                    let chunk = Chunk {
                        pos: row.get::<_, i64>(0)? as u64,
                        len: row.get::<_, i64>(1)? as u64,
                        batch_end: row.get::<_, i64>(2)? as u64,
                        data: row.get(3)?,
                    };
                    if chunk.pos + chunk.len <= from {
                        continue;
                    }
                    bytes += chunk.data.len();
                    chunks.push(chunk);
                    if bytes >= max_bytes {
                        break;
                    }
                }
                Ok(chunks)
            })
            .await
    }

    /// The chunk of a stream that holds position `pos`, without its data.
    pub async fn stream_chunk_at(&self, id: i64, pos: u64) -> Result<Option<Chunk>, StoreError> {
        self.sqlite
            .read(move |connection| {
                connection
                    .query_row(
                        "SELECT pos, len, batch_end FROM ds_chunks WHERE stream_id = ?1 AND pos <= ?2
                     ORDER BY pos DESC LIMIT 1",
                        params![id, pos as i64],
                        |row| {
                            Ok(Chunk {
                                pos: row.get::<_, i64>(0)? as u64,
                                len: row.get::<_, i64>(1)? as u64,
                                batch_end: row.get::<_, i64>(2)? as u64,
                                data: Vec::new(),
                            })
                        },
                    )
                    .optional()
                    .map(|chunk| chunk.filter(|chunk| chunk.pos + chunk.len > pos))
            })
            .await
    }
}
