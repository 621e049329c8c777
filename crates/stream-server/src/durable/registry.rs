//! The streams of `/v1/stream/*` and every rule that changes them: create
//! (and fork), append (with `Stream-Seq` and idempotent producers), close,
//! delete (soft while forks hold a stream), and expiry. Each change is in the
//! log before anything answers or any reader sees it.
//!
//! Structural changes (create, delete, expiry) take one lock for the whole
//! catalog; appends take only their stream's, which also serialises each
//! producer's validation with its append, as the protocol requires.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use tokio::sync::{Mutex, watch};

use super::read::{Page, Source, Tail};
use super::wire::{ContentType, WireError, json_messages};
use crate::store::{Chunk, Closer, ForkOrigin, ProducerStamp, Store, StoreError, StreamOp, StreamRow};

/// Why a stream operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// A malformed request.
    #[error("{0}")]
    Bad(#[from] WireError),
    /// No such stream.
    #[error("no stream at this path")]
    NotFound,
    /// The stream was deleted while forks still hold it.
    #[error("this stream was deleted; its forks still hold its data")]
    Gone,
    /// The request conflicts with the stream's state or configuration.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: &'static str,
    },
    /// The stream is closed: nothing more can be appended.
    #[error("the stream is closed")]
    Closed {
        /// Its final tail.
        tail: u64,
    },
    /// A producer's epoch older than the one the stream knows (a zombie).
    #[error("producer epoch {current} has replaced this one")]
    StaleEpoch {
        /// The epoch the stream knows.
        current: u64,
    },
    /// A producer skipped a seq.
    #[error("expected producer seq {expected}, got {received}")]
    SeqGap {
        /// The seq that comes next.
        expected: u64,
        /// The seq sent.
        received: u64,
    },
    /// The log failed; nothing changed.
    #[error("storage is unavailable")]
    Storage(#[from] StoreError),
}

impl StreamError {
    fn conflict(code: &'static str, message: &'static str) -> Self {
        Self::Conflict { code, message }
    }
}

/// A PUT: a new stream, or a fork of one.
#[derive(Debug, Default)]
pub struct CreateRequest {
    /// `Content-Type`, if given.
    pub content_type: Option<ContentType>,
    /// `Stream-TTL`.
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`, ms since the epoch.
    pub expires_at_ms: Option<u64>,
    /// `Stream-Closed: true`.
    pub closed: bool,
    /// `Stream-Forked-From` and its offsets.
    pub fork: Option<ForkRequest>,
    /// The initial content.
    pub body: Vec<u8>,
}

/// Where a fork is taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForkRequest {
    /// The source's path.
    pub source: String,
    /// `Stream-Fork-Offset`; the source's tail when absent.
    pub offset: Option<u64>,
    /// `Stream-Fork-Sub-Offset`: how much of the append at `offset` to keep.
    pub sub_offset: u64,
}

/// A POST.
#[derive(Debug, Default)]
pub struct AppendRequest {
    /// `Content-Type`, if given.
    pub content_type: Option<ContentType>,
    /// The bytes; empty for a close alone.
    pub body: Vec<u8>,
    /// `Stream-Closed: true`.
    pub close: bool,
    /// `Stream-Seq`.
    pub stream_seq: Option<String>,
    /// The producer headers.
    pub producer: Option<ProducerStamp>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// The tail after it.
    pub tail: u64,
    /// Whether the stream is closed now.
    pub closed: bool,
    /// Whether it stored anything new (a producer's new data answers 200).
    pub stored: bool,
    /// The producer's epoch and highest accepted seq.
    pub producer: Option<(u64, u64)>,
}

/// The rules of a stream that never change after its creation.
#[derive(Debug)]
pub struct Stream {
    id: i64,
    /// Its path.
    pub path: String,
    /// Its content type.
    pub content_type: ContentType,
    /// `Stream-TTL`.
    pub ttl_seconds: Option<u64>,
    /// `Stream-Expires-At`.
    pub expires_at_ms: Option<u64>,
    fork: Option<ForkOrigin>,
    writer: Mutex<Writer>,
    live: watch::Sender<Tail>,
    last_access_ms: AtomicU64,
    forks: AtomicUsize,
    soft_deleted: AtomicBool,
}

#[derive(Debug, Default)]
struct Writer {
    stream_seq: Option<String>,
    producers: HashMap<String, (u64, u64)>,
}

impl Stream {
    fn from_row(row: StreamRow, now_ms: u64) -> Self {
        let content_type = ContentType::parse(&row.content_type).unwrap_or_else(|_| ContentType::octet_stream());
        let tail = Tail { position: row.tail, closed: row.closed_by.is_some(), gone: false };
        Self {
            id: row.id,
            path: row.path,
            content_type,
            ttl_seconds: row.ttl_seconds,
            expires_at_ms: row.expires_at_ms,
            fork: row.fork,
            writer: Mutex::new(Writer { stream_seq: row.stream_seq, producers: HashMap::new() }),
            live: watch::Sender::new(tail),
            last_access_ms: AtomicU64::new(now_ms),
            forks: AtomicUsize::new(0),
            soft_deleted: AtomicBool::new(row.soft_deleted),
        }
    }

    /// Whether its TTL or expiry time has passed at `now_ms`.
    fn expired(&self, now_ms: u64) -> bool {
        let idle_until = self
            .ttl_seconds
            .map(|ttl| self.last_access_ms.load(Ordering::Relaxed).saturating_add(ttl.saturating_mul(1_000)));
        [idle_until, self.expires_at_ms].into_iter().flatten().any(|until| until <= now_ms)
    }

    /// A read or write renews a TTL (a HEAD does not).
    pub fn touch(&self, now_ms: u64) {
        self.last_access_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Whether this stream, existing, answers a repeated PUT with 200.
    fn same_config(&self, request: &CreateRequest) -> bool {
        let content_type = match &request.content_type {
            Some(given) => given.matches(&self.content_type),
            None => request.fork.is_some() || self.content_type.matches(&ContentType::octet_stream()),
        };
        let given_expiry = request.ttl_seconds.is_some() || request.expires_at_ms.is_some();
        let expiry = if given_expiry || request.fork.is_none() {
            request.ttl_seconds == self.ttl_seconds && request.expires_at_ms == self.expires_at_ms
        } else {
            true
        };
        let fork = match (&request.fork, &self.fork) {
            (None, None) => true,
            (Some(asked), Some(origin)) => {
                asked.source == origin.source_path
                    && asked.offset.is_none_or(|offset| offset == origin.offset)
                    && asked.sub_offset == origin.sub_offset
            }
            _ => false,
        };
        content_type && expiry && fork
    }
}

impl Source for Stream {
    fn tail(&self) -> watch::Receiver<Tail> {
        self.live.subscribe()
    }

    fn content_type(&self) -> &ContentType {
        &self.content_type
    }

    fn etag_id(&self) -> String {
        format!("s{}", self.id)
    }

    async fn page(&self, store: &Store, from: u64, until: u64, max_bytes: usize) -> Result<Page, StoreError> {
        let chunks = store.stream_chunks(self.id, from, until, max_bytes).await?;
        let next = chunks.last().map_or(from, |chunk| chunk.pos + chunk.len);
        if self.content_type.is_json() {
            return Ok(Page::json(chunks.into_iter().map(|chunk| chunk.data), next));
        }
        let mut body = Vec::with_capacity(chunks.iter().map(|chunk| chunk.data.len()).sum());
        for chunk in chunks {
            let skip = from.saturating_sub(chunk.pos) as usize;
            body.extend_from_slice(chunk.data.get(skip..).unwrap_or_default());
        }
        Ok(Page { body, next, messages: None })
    }
}

/// What a lookup found.
enum Found {
    Live(Arc<Stream>),
    SoftDeleted,
    Missing,
}

/// Every stream, by path.
pub struct Streams {
    store: Store,
    index: RwLock<HashMap<String, Arc<Stream>>>,
    structure: Mutex<()>,
}

impl Streams {
    /// The streams in the log.
    pub async fn load(store: Store, now_ms: u64) -> Result<Self, StoreError> {
        let (rows, producers) = store.streams().await?;
        let mut by_id: HashMap<i64, Stream> = HashMap::new();
        for row in rows {
            by_id.insert(row.id, Stream::from_row(row, now_ms));
        }
        for producer in producers {
            if let Some(stream) = by_id.get_mut(&producer.stream_id) {
                stream.writer.get_mut().producers.insert(producer.stamp.id, (producer.stamp.epoch, producer.stamp.seq));
            }
        }
        let sources: Vec<i64> = by_id.values().filter_map(|stream| stream.fork.as_ref().map(|f| f.source_id)).collect();
        for source in sources {
            if let Some(stream) = by_id.get(&source) {
                stream.forks.fetch_add(1, Ordering::Relaxed);
            }
        }
        let index = by_id.into_values().map(|stream| (stream.path.clone(), Arc::new(stream))).collect();
        Ok(Self { store, index: RwLock::new(index), structure: Mutex::new(()) })
    }

    /// The log the streams live in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    fn indexed(&self, path: &str) -> Option<Arc<Stream>> {
        self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner()).get(path).cloned()
    }

    /// The live stream at `path`: 404 when there is none, 410 when it was deleted under its forks.
    pub async fn open(&self, path: &str, now_ms: u64) -> Result<Arc<Stream>, StreamError> {
        let Some(stream) = self.indexed(path) else { return Err(StreamError::NotFound) };
        if !stream.expired(now_ms) {
            return if stream.soft_deleted.load(Ordering::Relaxed) { Err(StreamError::Gone) } else { Ok(stream) };
        }
        let _structure = self.structure.lock().await;
        match self.find_locked(path, now_ms).await? {
            Found::Live(stream) => Ok(stream),
            Found::SoftDeleted => Err(StreamError::Gone),
            Found::Missing => Err(StreamError::NotFound),
        }
    }

    /// The stream at `path`, expiring it first if its time has passed. Call with the structure lock.
    async fn find_locked(&self, path: &str, now_ms: u64) -> Result<Found, StoreError> {
        let Some(stream) = self.indexed(path) else { return Ok(Found::Missing) };
        if stream.expired(now_ms) {
            self.delete_locked(&stream).await?;
            return Ok(if self.indexed(path).is_some() { Found::SoftDeleted } else { Found::Missing });
        }
        Ok(if stream.soft_deleted.load(Ordering::Relaxed) { Found::SoftDeleted } else { Found::Live(stream) })
    }

    /// Creates the stream at `path`, or finds it there with the same configuration.
    /// Returns the stream and whether it is new.
    pub async fn create(
        &self,
        path: &str,
        request: CreateRequest,
        now_ms: u64,
    ) -> Result<(Arc<Stream>, bool), StreamError> {
        let _structure = self.structure.lock().await;
        match self.find_locked(path, now_ms).await? {
            Found::Live(existing) if existing.same_config(&request) => return Ok((existing, false)),
            Found::Live(_) => {
                return Err(StreamError::conflict(
                    "stream_exists",
                    "a stream with another configuration is at this path",
                ));
            }
            Found::SoftDeleted => {
                return Err(StreamError::conflict(
                    "stream_gone",
                    "a deleted stream whose forks live on holds this path",
                ));
            }
            Found::Missing => {}
        }
        let mut content_type = request.content_type.clone();
        let (mut ttl_seconds, mut expires_at_ms) = (request.ttl_seconds, request.expires_at_ms);
        let mut fork = None;
        let mut base = 0;
        if let Some(asked) = &request.fork {
            let source = match self.find_locked(&asked.source, now_ms).await? {
                Found::Live(source) => source,
                Found::SoftDeleted => {
                    return Err(StreamError::conflict("source_gone", "the source stream was deleted"));
                }
                Found::Missing => return Err(StreamError::NotFound),
            };
            match &content_type {
                Some(given) if !given.matches(&source.content_type) => {
                    return Err(StreamError::conflict(
                        "content_type_mismatch",
                        "a fork keeps its source's content type",
                    ));
                }
                Some(_) => {}
                None => content_type = Some(source.content_type.clone()),
            }
            let source_tail = source.live.borrow().position;
            let offset = asked.offset.unwrap_or(source_tail);
            if offset > source_tail {
                return Err(WireError("Stream-Fork-Offset is beyond the source's tail").into());
            }
            if asked.sub_offset > 0 {
                let room = match self.store.stream_chunk_at(source.id, offset).await? {
                    Some(chunk) => chunk.batch_end - offset,
                    None => 0,
                };
                if asked.sub_offset > room {
                    return Err(WireError("Stream-Fork-Sub-Offset is beyond the append at Stream-Fork-Offset").into());
                }
            }
            if ttl_seconds.is_none() && expires_at_ms.is_none() {
                (ttl_seconds, expires_at_ms) = (source.ttl_seconds, source.expires_at_ms);
            }
            base = offset + asked.sub_offset;
            fork = Some((source, offset, asked.sub_offset));
        }
        let content_type = content_type.unwrap_or_else(ContentType::octet_stream);
        let chunks = initial_chunks(&content_type, &request.body, base)?;
        let tail = chunks.last().map_or(base, |chunk| chunk.batch_end);
        let row = StreamRow {
            id: fastrand::i64(1..i64::MAX),
            path: path.to_owned(),
            content_type: content_type.full.clone(),
            ttl_seconds,
            expires_at_ms,
            created_at_ms: now_ms,
            tail,
            closed_by: request.closed.then_some(Closer::Anonymous),
            stream_seq: None,
            fork: fork.as_ref().map(|(source, offset, sub_offset)| ForkOrigin {
                source_id: source.id,
                source_path: source.path.clone(),
                offset: *offset,
                sub_offset: *sub_offset,
            }),
            soft_deleted: false,
        };
        let copy_until = fork.as_ref().map(|(source, _, _)| (source.id, base));
        self.store.write_stream(StreamOp::Create { row: row.clone(), copy_until, chunks }).await?;
        if let Some((source, _, _)) = &fork {
            source.forks.fetch_add(1, Ordering::Relaxed);
        }
        let stream = Arc::new(Stream::from_row(row, now_ms));
        self.index
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .insert(path.to_owned(), Arc::clone(&stream));
        Ok((stream, true))
    }

    /// Appends to (or closes) the stream at `path`.
    pub async fn append(&self, path: &str, request: AppendRequest, now_ms: u64) -> Result<Appended, StreamError> {
        let stream = self.open(path, now_ms).await?;
        if request.body.is_empty() && !request.close {
            return Err(WireError("an append needs a body (or Stream-Closed: true)").into());
        }
        let messages = if request.body.is_empty() {
            Vec::new()
        } else {
            let Some(given) = &request.content_type else {
                return Err(WireError("an append needs a Content-Type").into());
            };
            if !given.matches(&stream.content_type) {
                return Err(StreamError::conflict("content_type_mismatch", "the stream has another content type"));
            }
            if stream.content_type.is_json() { json_messages(&request.body, false)? } else { vec![request.body] }
        };
        let mut writer = stream.writer.lock().await;
        let tail = *stream.live.borrow();
        if tail.gone {
            return Err(StreamError::NotFound);
        }
        let unchanged = |producer| Appended { tail: tail.position, closed: tail.closed, stored: false, producer };
        if let Some(stamp) = &request.producer
            && let Some(highest) = check_producer(writer.producers.get(&stamp.id).copied(), stamp)?
        {
            return Ok(unchanged(Some((stamp.epoch, highest))));
        }
        if tail.closed {
            // A plain close of a closed stream is a no-op; anything else would add to it.
            return if messages.is_empty() && request.producer.is_none() {
                Ok(unchanged(None))
            } else {
                Err(StreamError::Closed { tail: tail.position })
            };
        }
        if let (Some(given), Some(last)) = (&request.stream_seq, &writer.stream_seq)
            && given <= last
        {
            return Err(StreamError::conflict("stream_seq_regression", "Stream-Seq must grow"));
        }
        let mut chunks = Vec::with_capacity(messages.len());
        let unit = stream.content_type.is_json();
        let mut position = tail.position;
        for data in messages {
            let len = if unit { 1 } else { data.len() as u64 };
            chunks.push(Chunk { pos: position, len, batch_end: 0, data });
            position += len;
        }
        for chunk in &mut chunks {
            chunk.batch_end = position;
        }
        let stored = !chunks.is_empty();
        let closed_by = request.close.then(|| request.producer.clone().map_or(Closer::Anonymous, Closer::Producer));
        let stream_seq = request.stream_seq.clone().or_else(|| writer.stream_seq.clone());
        let op = StreamOp::Append {
            id: stream.id,
            chunks,
            tail: position,
            closed_by,
            stream_seq: stream_seq.clone(),
            producer: request.producer.clone(),
        };
        self.store.write_stream(op).await?;
        writer.stream_seq = stream_seq;
        if let Some(stamp) = &request.producer {
            writer.producers.insert(stamp.id.clone(), (stamp.epoch, stamp.seq));
        }
        let closed = request.close;
        stream.live.send_replace(Tail { position, closed, gone: false });
        stream.touch(now_ms);
        Ok(Appended {
            tail: position,
            closed,
            stored,
            producer: request.producer.map(|stamp| (stamp.epoch, stamp.seq)),
        })
    }

    /// Deletes the stream at `path`: at once, or softly while forks hold it.
    pub async fn delete(&self, path: &str, now_ms: u64) -> Result<(), StreamError> {
        let _structure = self.structure.lock().await;
        match self.find_locked(path, now_ms).await? {
            Found::Live(stream) => Ok(self.delete_locked(&stream).await?),
            Found::SoftDeleted => Err(StreamError::Gone),
            Found::Missing => Err(StreamError::NotFound),
        }
    }

    /// Deletes a stream; a source left soft-deleted with no fork goes too,
    /// up the chain. Call with the structure lock.
    async fn delete_locked(&self, stream: &Arc<Stream>) -> Result<(), StoreError> {
        if stream.forks.load(Ordering::Relaxed) > 0 {
            if !stream.soft_deleted.load(Ordering::Relaxed) {
                self.store.write_stream(StreamOp::SoftDelete { id: stream.id }).await?;
                stream.soft_deleted.store(true, Ordering::Relaxed);
                stream.live.send_modify(|tail| tail.gone = true);
            }
            return Ok(());
        }
        let mut next = Some(Arc::clone(stream));
        while let Some(stream) = next.take() {
            self.store.write_stream(StreamOp::Delete { id: stream.id }).await?;
            {
                let mut index = self.index.write().unwrap_or_else(|poisoned| poisoned.into_inner());
                if index.get(&stream.path).is_some_and(|indexed| Arc::ptr_eq(indexed, &stream)) {
                    index.remove(&stream.path);
                }
            }
            stream.live.send_modify(|tail| tail.gone = true);
            let Some(origin) = &stream.fork else { continue };
            let Some(source) = self.indexed(&origin.source_path).filter(|source| source.id == origin.source_id) else {
                continue;
            };
            let left = source.forks.fetch_sub(1, Ordering::Relaxed) - 1;
            if left == 0 && source.soft_deleted.load(Ordering::Relaxed) {
                next = Some(source);
            }
        }
        Ok(())
    }

    /// Deletes every stream whose time has passed; returns how many.
    pub async fn expire(&self, now_ms: u64) -> Result<usize, StoreError> {
        let due: Vec<Arc<Stream>> = {
            let index = self.index.read().unwrap_or_else(|poisoned| poisoned.into_inner());
            index.values().filter(|stream| stream.expired(now_ms)).cloned().collect()
        };
        let _structure = self.structure.lock().await;
        for stream in &due {
            self.find_locked(&stream.path, now_ms).await?;
        }
        Ok(due.len())
    }
}

/// A producer request against its last accepted one: `Ok(None)` to append,
/// `Ok(Some(highest))` for a duplicate, or why it is refused.
pub fn check_producer(known: Option<(u64, u64)>, stamp: &ProducerStamp) -> Result<Option<u64>, StreamError> {
    let Some((epoch, last)) = known else {
        return if stamp.seq == 0 { Ok(None) } else { Err(StreamError::SeqGap { expected: 0, received: stamp.seq }) };
    };
    if stamp.epoch < epoch {
        return Err(StreamError::StaleEpoch { current: epoch });
    }
    if stamp.epoch > epoch {
        return if stamp.seq == 0 { Ok(None) } else { Err(WireError("a new producer epoch starts at seq 0").into()) };
    }
    match stamp.seq {
        seq if seq <= last => Ok(Some(last)),
        seq if seq == last + 1 => Ok(None),
        received => Err(StreamError::SeqGap { expected: last + 1, received }),
    }
}

fn initial_chunks(content_type: &ContentType, body: &[u8], base: u64) -> Result<Vec<Chunk>, WireError> {
    let (messages, unit) = if content_type.is_json() {
        if body.is_empty() { (Vec::new(), true) } else { (json_messages(body, true)?, true) }
    } else if body.is_empty() {
        (Vec::new(), false)
    } else {
        (vec![body.to_vec()], false)
    };
    let total: u64 = if unit { messages.len() as u64 } else { body.len() as u64 };
    let mut position = base;
    Ok(messages
        .into_iter()
        .map(|data| {
            let len = if unit { 1 } else { data.len() as u64 };
            let chunk = Chunk { pos: position, len, batch_end: base + total, data };
            position += len;
            chunk
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A log in a fresh directory, and the streams on it.
    async fn streams(name: &str) -> (Streams, std::path::PathBuf) {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stream-registry-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("log.db"), None, Arc::new(|_, _| {})).await.unwrap();
        (Streams::load(store, 0).await.unwrap(), dir)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        /// A producer's batches, sent in any order with any repeats (retries,
        /// reordering in flight), are stored each once, in seq order: the
        /// stream holds exactly the batches up to the first never accepted.
        #[test]
        fn any_schedule_of_producer_retries_stores_each_batch_once_in_order(
            schedule in prop::collection::vec(0..6u64, 1..40)
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let (content, accepted, dir) = runtime.block_on(async {
                let (streams, dir) = streams("producer").await;
                let text = ContentType::parse("text/plain").unwrap();
                let request = CreateRequest { content_type: Some(text.clone()), ..CreateRequest::default() };
                streams.create("p", request, 1).await.unwrap();
                let mut accepted = 0u64;
                for seq in schedule {
                    let append = AppendRequest {
                        content_type: Some(text.clone()),
                        body: format!("<{seq}>").into_bytes(),
                        producer: Some(ProducerStamp { id: "p".into(), epoch: 0, seq }),
                        ..AppendRequest::default()
                    };
                    match streams.append("p", append, 2).await {
                        Ok(appended) => {
                            // A new batch is the next seq; a duplicate reports the highest so far.
                            if appended.stored {
                                assert_eq!(seq, accepted);
                                accepted += 1;
                            } else {
                                assert_eq!(appended.producer, Some((0, accepted - 1)));
                            }
                        }
                        Err(StreamError::SeqGap { expected, received }) => {
                            assert_eq!((expected, received), (accepted, seq));
                        }
                        Err(other) => panic!("{other}"),
                    }
                }
                let stream = streams.open("p", 3).await.unwrap();
                let tail = stream.live.borrow().position;
                let page = stream.page(streams.store(), 0, tail, usize::MAX).await.unwrap();
                (String::from_utf8(page.body).unwrap(), accepted, dir)
            });
            let _ = std::fs::remove_dir_all(dir);
            let expected: String = (0..accepted).map(|seq| format!("<{seq}>")).collect();
            prop_assert_eq!(content, expected);
        }

        /// A fork at any append boundary, with any sub-offset into the next
        /// append, holds exactly the source's bytes up to that point, and
        /// reads the same from any offset inside it.
        #[test]
        fn a_fork_anywhere_holds_the_sources_prefix(
            appends in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..20), 1..8),
            at in any::<prop::sample::Index>(),
            sub in any::<prop::sample::Index>(),
            read_from in any::<prop::sample::Index>(),
        ) {
            let runtime = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let all: Vec<u8> = appends.concat();
            let boundaries: Vec<u64> = appends.iter().scan(0u64, |end, append| {
                let start = *end;
                *end += append.len() as u64;
                Some(start)
            }).collect();
            let index = at.index(appends.len());
            let offset = boundaries[index];
            let sub_offset = sub.index(appends[index].len() + 1) as u64;
            let (forked, read, cut, dir) = runtime.block_on(async {
                let (streams, dir) = streams("fork").await;
                let bytes = ContentType::octet_stream();
                streams.create("src", CreateRequest::default(), 1).await.unwrap();
                for append in &appends {
                    let request = AppendRequest {
                        content_type: Some(bytes.clone()),
                        body: append.clone(),
                        ..AppendRequest::default()
                    };
                    streams.append("src", request, 2).await.unwrap();
                }
                let fork = ForkRequest { source: "src".into(), offset: Some(offset), sub_offset };
                let request = CreateRequest { fork: Some(fork), ..CreateRequest::default() };
                let (fork, _) = streams.create("fork", request, 3).await.unwrap();
                let tail = fork.live.borrow().position;
                let whole = fork.page(streams.store(), 0, tail, usize::MAX).await.unwrap().body;
                let cut = read_from.index(tail as usize + 1) as u64;
                let rest = fork.page(streams.store(), cut, tail, usize::MAX).await.unwrap().body;
                (whole, rest, cut, dir)
            });
            let _ = std::fs::remove_dir_all(dir);
            let end = (offset + sub_offset) as usize;
            prop_assert_eq!(&forked, &all[..end]);
            prop_assert_eq!(&read, &all[cut as usize..end]);
        }
    }

    fn stamp(epoch: u64, seq: u64) -> ProducerStamp {
        ProducerStamp { id: "p".into(), epoch, seq }
    }

    #[test]
    fn producer_requests_follow_the_epoch_and_seq_rules() {
        assert!(matches!(check_producer(None, &stamp(0, 0)), Ok(None)));
        assert!(matches!(check_producer(None, &stamp(3, 0)), Ok(None)));
        assert!(matches!(check_producer(None, &stamp(0, 1)), Err(StreamError::SeqGap { expected: 0, received: 1 })));
        assert!(matches!(check_producer(Some((0, 2)), &stamp(0, 1)), Ok(Some(2))));
        assert!(matches!(check_producer(Some((0, 2)), &stamp(0, 3)), Ok(None)));
        assert!(matches!(
            check_producer(Some((0, 2)), &stamp(0, 5)),
            Err(StreamError::SeqGap { expected: 3, received: 5 })
        ));
        assert!(matches!(check_producer(Some((1, 0)), &stamp(0, 9)), Err(StreamError::StaleEpoch { current: 1 })));
        assert!(matches!(check_producer(Some((1, 4)), &stamp(2, 0)), Ok(None)));
        assert!(matches!(check_producer(Some((1, 4)), &stamp(2, 1)), Err(StreamError::Bad(_))));
    }

    #[test]
    fn a_json_batch_is_one_chunk_per_message_sharing_its_end() {
        let json = ContentType::parse("application/json").unwrap();
        let chunks = initial_chunks(&json, br#"[{"a":1},{"b":2}]"#, 5).unwrap();
        let shape: Vec<_> = chunks.iter().map(|chunk| (chunk.pos, chunk.len, chunk.batch_end)).collect();
        assert_eq!(shape, vec![(5, 1, 7), (6, 1, 7)]);
        let bytes = initial_chunks(&ContentType::octet_stream(), b"hello", 0).unwrap();
        assert_eq!(
            bytes.iter().map(|chunk| (chunk.pos, chunk.len, chunk.batch_end)).collect::<Vec<_>>(),
            vec![(0, 5, 5)]
        );
        assert!(initial_chunks(&json, b"[]", 0).unwrap().is_empty());
    }
}
