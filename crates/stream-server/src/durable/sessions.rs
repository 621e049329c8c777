//! Every session, read as a Durable Stream at `GET /v1/sessions/{id}/stream`
//! (JSON mode, read only): each message is one frame of docs/protocol.md, and
//! offset `n` stands after the frame of seq `n`. Appends are refused (405):
//! sessions are written only through runs.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Uri};
use stream_core::frame::is_valid_session_id;

use super::http::{Failure, read_settings};
use super::read::{self, Page, Source, Tail};
use super::wire::{ContentType, WireError, parse_read_query};
use crate::AppState;
use crate::hub::Session;
use crate::store::{Store, StoreError};

/// Most frames one page reads from the log.
const PAGE_FRAMES: usize = 1_024;

/// A live session as a readable source: pages are JSON arrays of its frames.
pub struct SessionStream {
    session: Arc<Session>,
    content_type: ContentType,
}

impl SessionStream {
    /// The session's frames as a source.
    pub fn new(session: Arc<Session>) -> Self {
        Self { session, content_type: ContentType::parse("application/json").expect("a valid content type") }
    }
}

impl Source for SessionStream {
    fn tail(&self) -> tokio::sync::watch::Receiver<Tail> {
        self.session.watch_tail()
    }

    fn content_type(&self) -> &ContentType {
        &self.content_type
    }

    fn etag_id(&self) -> String {
        format!("{}:{}", self.session.id(), self.session.epoch())
    }

    fn first_position(&self) -> u64 {
        self.session.retained_from() - 1
    }

    async fn page(&self, store: &Store, from: u64, until: u64, max_bytes: usize) -> Result<Page, StoreError> {
        let frames = store.frames_after(self.session.id(), from, PAGE_FRAMES).await?;
        let mut bytes = 0;
        let mut next = from;
        let mut texts = Vec::with_capacity(frames.len());
        for (seq, text) in frames {
            if seq > until || (bytes >= max_bytes && !texts.is_empty()) {
                break;
            }
            bytes += text.len();
            next = seq;
            texts.push(text);
        }
        Ok(Page::json(texts.iter().map(|text| text.as_bytes()), next))
    }
}

/// `GET /v1/sessions/{id}/stream`: catch-up, long-poll or SSE of a session's frames.
pub async fn read(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    uri: Uri,
    headers: HeaderMap,
) -> Result<axum::response::Response, Failure> {
    if !is_valid_session_id(&id) {
        return Err(Failure::read(&state, WireError("a session id matches [A-Za-z0-9._:-]{1,128}").into()));
    }
    let query = parse_read_query(uri.query()).map_err(|error| Failure::read(&state, error.into()))?;
    let session = match state.hub.open(&id).await {
        Ok(Some(session)) => session,
        Ok(None) => return Err(Failure::read(&state, read::ReadError::Gone)),
        Err(error) => return Err(Failure::read(&state, error.into())),
    };
    let source = Arc::new(SessionStream::new(session));
    read::read(source, state.hub.store().clone(), query, &headers, read_settings(&state))
        .await
        .map_err(|error| Failure::read(&state, error))
}
