//! The three ways to read anything the server exposes as a Durable Stream
//! (a stream of `/v1/stream/*`, or a session's frames): catch-up, long-poll
//! and SSE, with their offsets, ETags, cursors and closing. What is read
//! comes from a [`Source`]; this module decides only how it is answered.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use tokio::sync::watch;
use tokio::time::Instant;

use super::wire::{ContentType, Live, Offset, ReadQuery, Start, WireError, cursor, sse_data_lines};
use crate::hub::now_ms;
use crate::store::{Store, StoreError};

/// Most bytes one catch-up response (or SSE event) carries.
const PAGE_BYTES: usize = 256 * 1024;
/// How long an SSE response stays open before the client reconnects (so a
/// CDN can collapse readers onto fresh requests).
const SSE_LIFETIME: Duration = Duration::from_secs(60);

/// Where a source stands: what readers wait on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tail {
    /// The position after the last byte or message.
    pub position: u64,
    /// Nothing will be appended any more.
    pub closed: bool,
    /// It was deleted.
    pub gone: bool,
}

/// What a read returns: the body and the position after it.
#[derive(Debug)]
pub struct Page {
    /// The bytes, or a JSON array of the messages.
    pub body: Vec<u8>,
    /// The position after the last byte or message.
    pub next: u64,
    /// For JSON sources: how many messages the array holds.
    pub messages: Option<usize>,
}

impl Page {
    /// A JSON array of messages, each kept as its exact text.
    pub fn json(messages: impl IntoIterator<Item = impl AsRef<[u8]>>, next: u64) -> Self {
        let mut body = vec![b'['];
        let mut count = 0;
        for message in messages {
            if count > 0 {
                body.push(b',');
            }
            body.extend_from_slice(message.as_ref());
            count += 1;
        }
        body.push(b']');
        Self { body, next, messages: Some(count) }
    }

    fn is_empty(&self) -> bool {
        self.messages.map_or(self.body.is_empty(), |count| count == 0)
    }
}

/// Something readable as a Durable Stream.
pub trait Source: Send + Sync + 'static {
    /// Its tail, and every later change of it.
    fn tail(&self) -> watch::Receiver<Tail>;
    /// What its reads carry.
    fn content_type(&self) -> &ContentType;
    /// Names this source in ETags (another source, or the same path made anew, differs).
    fn etag_id(&self) -> String;
    /// The first position a read may start from (retention dropped what was before).
    fn first_position(&self) -> u64 {
        0
    }
    /// What lies from `from` up to `until`, about `max_bytes` at most.
    fn page(
        &self,
        store: &Store,
        from: u64,
        until: u64,
        max_bytes: usize,
    ) -> impl Future<Output = Result<Page, StoreError>> + Send;
}

/// Why a read failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// A malformed offset or mode.
    #[error("{0}")]
    Bad(#[from] WireError),
    /// The source was deleted.
    #[error("no stream at this path")]
    Gone,
    /// Retention dropped the data at the offset; a snapshot (REST) has what it held.
    #[error("the data at this offset is no longer kept; read the snapshot and follow from its seq")]
    Compacted,
    /// The log failed.
    #[error("storage is unavailable")]
    Storage(#[from] StoreError),
}

/// How a read is answered, beyond the source.
#[derive(Debug, Clone, Copy)]
pub struct ReadSettings {
    /// How long a long-poll waits for data.
    pub long_poll: Duration,
    /// `private` when a token guards the server, so no shared cache keeps its answers.
    pub private: bool,
}

/// Answers a GET of `source` in the mode its query asks for.
pub async fn read<S: Source>(
    source: Arc<S>,
    store: Store,
    query: ReadQuery,
    request: &HeaderMap,
    settings: ReadSettings,
) -> Result<Response, ReadError> {
    let mut tail_changes = source.tail();
    let tail = *tail_changes.borrow_and_update();
    if tail.gone {
        return Err(ReadError::Gone);
    }
    let position = match query.start.unwrap_or(Start::Beginning) {
        Start::Beginning => source.first_position(),
        Start::Now => tail.position,
        Start::At(Offset(position)) if position > tail.position => {
            return Err(WireError("the offset is beyond the stream's tail").into());
        }
        Start::At(Offset(position)) if position < source.first_position() => return Err(ReadError::Compacted),
        Start::At(Offset(position)) => position,
    };
    let now = query.start == Some(Start::Now);
    match query.live {
        Live::No if now => Ok(tail_answer(&*source, tail, StatusCode::OK, None)),
        Live::No => catch_up(&*source, &store, position, tail, request, settings, None).await,
        Live::LongPoll => long_poll(&*source, &store, position, tail_changes, request, settings, query.cursor).await,
        Live::Sse => Ok(sse(source, store, position, tail_changes, query.cursor)),
    }
}

/// The answer at the tail: no data, where the tail is, and whether it is closed.
fn tail_answer<S: Source>(source: &S, tail: Tail, status: StatusCode, live_cursor: Option<u64>) -> Response {
    let body = if status == StatusCode::OK && source.content_type().is_json() { "[]" } else { "" };
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if status == StatusCode::OK {
        insert(headers, header::CONTENT_TYPE, &source.content_type().full);
    }
    position_headers(headers, tail.position, true, tail.closed);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(cursor) = live_cursor {
        insert(headers, "stream-cursor", &cursor.to_string());
    }
    response
}

async fn catch_up<S: Source>(
    source: &S,
    store: &Store,
    position: u64,
    tail: Tail,
    request: &HeaderMap,
    settings: ReadSettings,
    live_cursor: Option<u64>,
) -> Result<Response, ReadError> {
    let page = source.page(store, position, tail.position, PAGE_BYTES).await?;
    let up_to_date = page.next >= tail.position;
    let closed = up_to_date && tail.closed;
    let etag = format!("\"{}:{}:{}{}\"", source.etag_id(), position, page.next, if closed { ":c" } else { "" });
    let matches = request
        .get(header::IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|given| given.split(',').any(|tag| tag.trim() == etag));
    let mut response =
        if matches { StatusCode::NOT_MODIFIED.into_response() } else { (StatusCode::OK, page.body).into_response() };
    let headers = response.headers_mut();
    insert(headers, header::CONTENT_TYPE, &source.content_type().full);
    insert(headers, header::ETAG, &etag);
    position_headers(headers, page.next, up_to_date, closed);
    // A page before the tail never changes; one at the tail revalidates (its ETag makes that cheap).
    let cache = match (up_to_date, settings.private) {
        (true, _) => "no-cache",
        (false, true) => "private, max-age=60, stale-while-revalidate=300",
        (false, false) => "public, max-age=60, stale-while-revalidate=300",
    };
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if let Some(cursor) = live_cursor {
        insert(headers, "stream-cursor", &cursor.to_string());
    }
    Ok(response)
}

async fn long_poll<S: Source>(
    source: &S,
    store: &Store,
    position: u64,
    mut tail_changes: watch::Receiver<Tail>,
    request: &HeaderMap,
    settings: ReadSettings,
    client_cursor: Option<u64>,
) -> Result<Response, ReadError> {
    let deadline = Instant::now() + settings.long_poll;
    loop {
        let tail = *tail_changes.borrow_and_update();
        if tail.gone {
            return Err(ReadError::Gone);
        }
        let live_cursor = Some(cursor(now_ms(), client_cursor));
        if position < tail.position {
            return catch_up(source, store, position, tail, request, settings, live_cursor).await;
        }
        if tail.closed {
            return Ok(tail_answer(source, tail, StatusCode::NO_CONTENT, live_cursor));
        }
        match tokio::time::timeout_at(deadline, tail_changes.changed()).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(ReadError::Gone),
            Err(_) => return Ok(tail_answer(source, tail, StatusCode::NO_CONTENT, live_cursor)),
        }
    }
}

/// An SSE response: a `data` event per page, each followed by a `control`
/// event with the offset after it, until the source closes (a last control
/// with `streamClosed`) or the response's lifetime ends.
fn sse<S: Source>(
    source: Arc<S>,
    store: Store,
    position: u64,
    tail_changes: watch::Receiver<Tail>,
    client_cursor: Option<u64>,
) -> Response {
    let as_text = source.content_type().is_text();
    let state = SseState {
        source,
        store,
        position,
        tail_changes,
        client_cursor,
        as_text,
        announced: false,
        done: false,
        deadline: Instant::now() + SSE_LIFETIME,
    };
    let mut response = event_stream(state);
    if !as_text {
        response.headers_mut().insert("stream-sse-data-encoding", HeaderValue::from_static("base64"));
    }
    response
}

/// Writes an event stream a piece at a time.
pub trait Events: Send + 'static {
    /// The next bytes of the stream; `None` ends it.
    fn next_event(&mut self) -> impl Future<Output = Option<Vec<u8>>> + Send;
}

/// A `text/event-stream` response (not cached) of `events`.
pub fn event_stream(events: impl Events) -> Response {
    let body = futures_util::stream::unfold(events, |mut events| async move {
        let bytes = events.next_event().await?;
        Some((Ok::<_, Infallible>(Bytes::from(bytes)), events))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

struct SseState<S> {
    source: Arc<S>,
    store: Store,
    position: u64,
    tail_changes: watch::Receiver<Tail>,
    client_cursor: Option<u64>,
    as_text: bool,
    /// A control event was sent at the tail (readers learn they are caught up).
    announced: bool,
    done: bool,
    deadline: Instant,
}

impl<S: Source> Events for SseState<S> {
    async fn next_event(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        loop {
            let tail = *self.tail_changes.borrow_and_update();
            if tail.gone {
                return None;
            }
            if self.position < tail.position {
                let page = match self.source.page(&self.store, self.position, tail.position, PAGE_BYTES).await {
                    Ok(page) => page,
                    Err(error) => {
                        tracing::warn!(%error, "an SSE read failed; the client resumes from its last offset");
                        return None;
                    }
                };
                if page.is_empty() {
                    return None;
                }
                self.position = page.next;
                let mut event = b"event: data\n".to_vec();
                sse_data_lines(&mut event, &page.body, self.as_text);
                event.push(b'\n');
                event.extend_from_slice(&self.control(tail));
                return Some(event);
            }
            if tail.closed || !self.announced {
                return Some(self.control(tail));
            }
            match tokio::time::timeout_at(self.deadline, self.tail_changes.changed()).await {
                Ok(Ok(())) => {}
                _ => return None,
            }
        }
    }
}

impl<S: Source> SseState<S> {
    /// A control event for where the reader now stands.
    fn control(&mut self, tail: Tail) -> Vec<u8> {
        let caught_up = self.position >= tail.position;
        let mut control = serde_json::Map::new();
        control.insert("streamNextOffset".into(), Offset(self.position).text().into());
        if caught_up && tail.closed {
            control.insert("streamClosed".into(), true.into());
            self.done = true;
        } else {
            control.insert("streamCursor".into(), cursor(now_ms(), self.client_cursor).to_string().into());
        }
        if caught_up {
            control.insert("upToDate".into(), true.into());
            self.announced = true;
        }
        let mut event = b"event: control\ndata:".to_vec();
        event.extend_from_slice(serde_json::Value::Object(control).to_string().as_bytes());
        event.extend_from_slice(b"\n\n");
        event
    }
}

/// `Stream-Next-Offset`, `Stream-Up-To-Date` and `Stream-Closed`.
pub fn position_headers(headers: &mut HeaderMap, position: u64, up_to_date: bool, closed: bool) {
    insert(headers, "stream-next-offset", &Offset(position).text());
    if up_to_date {
        headers.insert("stream-up-to-date", HeaderValue::from_static("true"));
    }
    if closed {
        headers.insert("stream-closed", HeaderValue::from_static("true"));
    }
}

/// Inserts a header whose value this server made (always valid ASCII).
pub fn insert(headers: &mut HeaderMap, name: impl header::IntoHeaderName, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        headers.insert(name, value);
    }
}
