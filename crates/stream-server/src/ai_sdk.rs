//! A durable backend for the Vercel AI SDK's `useChat` (`DefaultChatTransport`
//! with `api: "/v1/ai-sdk/chat"`):
//!
//! - `POST /v1/ai-sdk/chat` starts a run on session `id` with the last user
//!   message (its id is the `client_message_id`, so a retry starts no second
//!   run) and answers with that run's UI message stream;
//! - `GET /v1/ai-sdk/chat/{id}/stream` (`resume: true`) replays the active
//!   run from its `start` and follows it live, or answers 204 when nothing runs;
//! - `DELETE /v1/ai-sdk/chat/{id}/stream` aborts the active run (`useChat`'s
//!   `stop()` only drops the request, which a reload does too).
//!
//! The stream is read from the log, from the run's first frame, so it is the
//! same after a reload, on any connection; stream-core's
//! [`UiMessageStream`] decides every chunk.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use stream_core::frame::{DEFAULT_MAX_MESSAGE_BYTES, ServerFrame, is_valid_session_id, parse_server_message};
use stream_core::server::{UiChunk, UiMessageStream};
use tokio::sync::watch;

use crate::AppState;
use crate::durable::read::{Events, Source, Tail, event_stream};
use crate::durable::sessions::SessionStream;
use crate::error::{AppError, AppJson};
use crate::hub::IfMissing;
use crate::inputs::{MAX_CONTENT_BYTES, SendRequest};
use crate::rest::counted;
use crate::runs;
use crate::store::Store;

/// About the most bytes of frames read from the log per step of a stream.
const PAGE_BYTES: usize = 256 * 1024;
/// An SSE comment this often keeps proxies from closing a quiet stream.
const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// What `DefaultChatTransport` posts; fields it adds that are not ours are ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatRequest {
    /// The chat's id: the session.
    pub id: String,
    /// The whole conversation as the client holds it.
    #[serde(default)]
    pub messages: Vec<ChatMessage>,
    /// `submit-message` (the default) or `regenerate-message` (refused).
    #[serde(default)]
    pub trigger: Option<String>,
    /// The provider, as an extra body field (`sendMessage(m, { body: { provider } })`).
    #[serde(default)]
    pub provider: Option<String>,
}

/// A `UIMessage` as the client sends it; only its id, role and text parts are read.
#[derive(Debug, Deserialize)]
pub struct ChatMessage {
    /// Its id.
    pub id: String,
    /// `user`, `assistant` or `system`.
    pub role: String,
    /// Its parts; the `text` ones make the send's content.
    #[serde(default)]
    pub parts: Vec<Value>,
}

impl ChatRequest {
    /// The send this request makes, or the 400 that says why it makes none.
    pub fn send(&self) -> Result<SendRequest, AppError> {
        let bad = |code, message: &str| AppError::bad_request(code, message);
        if !is_valid_session_id(&self.id) {
            return Err(bad("invalid_session_id", "the chat id is the session id: [A-Za-z0-9._:-]{1,128}"));
        }
        match self.trigger.as_deref() {
            None | Some("submit-message") => {}
            Some("regenerate-message") => {
                return Err(bad("regenerate_unsupported", "regenerating a reply is not supported: send a new message"));
            }
            Some(_) => return Err(bad("unknown_trigger", "trigger is submit-message")),
        }
        let Some(last) = self.messages.last() else {
            return Err(bad("no_messages", "messages is empty: send the conversation with its new user message last"));
        };
        if last.role != "user" {
            return Err(bad("last_message_not_user", "the last message must be the user's new message"));
        }
        let content: String = last
            .parts
            .iter()
            .filter(|part| part.get("type").and_then(Value::as_str) == Some("text"))
            .filter_map(|part| part.get("text").and_then(Value::as_str))
            .collect();
        if content.is_empty() {
            return Err(bad("no_text", "the last message has no text part"));
        }
        if content.len() > MAX_CONTENT_BYTES {
            return Err(bad("message_too_large", &format!("the message's text is over {MAX_CONTENT_BYTES} bytes")));
        }
        let request = SendRequest { client_message_id: last.id.clone(), content, provider: self.provider.clone() };
        request.check()?;
        Ok(request)
    }
}

/// `POST /v1/ai-sdk/chat`.
pub async fn chat(
    State(state): State<Arc<AppState>>,
    body: Result<AppJson<ChatRequest>, AppError>,
) -> Result<Response, AppError> {
    let request = counted(&state, body.map(|AppJson(request)| request))?;
    let send = counted(&state, request.send())?;
    let answer = counted(&state, runs::send(&state, &request.id, send).await)?;
    run_stream(&state, &request.id, &answer.run_id).await
}

/// `GET /v1/ai-sdk/chat/{id}/stream`: the active run's stream, or 204.
pub async fn resume(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Response, AppError> {
    if !is_valid_session_id(&id) {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let running = match state.hub.lock(&id, IfMissing::Absent).await? {
        Some(locked) => locked.producer.sequencer.running().map(|run| run.run_id.clone()),
        None => None,
    };
    match running {
        Some(run_id) => run_stream(&state, &id, &run_id).await,
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// `DELETE /v1/ai-sdk/chat/{id}/stream`: stops the active run.
pub async fn stop(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> Result<StatusCode, AppError> {
    match runs::abort(&state, &id).await {
        Ok(_) | Err(AppError::NotFound(_)) => Ok(StatusCode::NO_CONTENT),
        Err(error) => Err(error),
    }
}

/// The UI message stream of run `run_id` of the session, from its start.
async fn run_stream(state: &AppState, session_id: &str, run_id: &str) -> Result<Response, AppError> {
    let session = state.hub.open(session_id).await?.ok_or_else(|| AppError::NotFound("no such session".into()))?;
    let store = state.hub.store().clone();
    let start = store
        .run_start_seq(session_id, run_id)
        .await?
        .ok_or_else(|| AppError::NotFound("the log no longer holds this run".into()))?;
    let source = SessionStream::new(session);
    let follower = Follower {
        tail: source.tail(),
        source,
        store,
        stream: UiMessageStream::new(run_id),
        position: start - 1,
        done: false,
    };
    let mut response = event_stream(follower);
    let headers = response.headers_mut();
    headers.insert("x-vercel-ai-ui-message-stream", HeaderValue::from_static("v1"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// Reads a session's log from a run's start and writes its chunks as SSE.
struct Follower {
    source: SessionStream,
    store: Store,
    tail: watch::Receiver<Tail>,
    stream: UiMessageStream,
    position: u64,
    done: bool,
}

impl Events for Follower {
    async fn next_event(&mut self) -> Option<Vec<u8>> {
        if self.done {
            return None;
        }
        loop {
            let tail = *self.tail.borrow_and_update();
            if tail.gone {
                self.done = true;
                return Some(sse(&[UiChunk::Error { error_text: "the session was deleted".into() }], true));
            }
            if self.position < tail.position {
                let page = match self.source.page(&self.store, self.position, tail.position, PAGE_BYTES).await {
                    Ok(page) if page.next > self.position => page,
                    Ok(_) => return None,
                    Err(error) => {
                        tracing::warn!(%error, "an AI SDK stream could not read the log");
                        return None;
                    }
                };
                self.position = page.next;
                let batch = String::from_utf8_lossy(&page.body);
                let mut chunks = Vec::new();
                for parsed in parse_server_message(&batch, None, DEFAULT_MAX_MESSAGE_BYTES).frames {
                    if let ServerFrame::Sequenced(frame) = parsed.frame {
                        self.stream.push(&frame.body, &mut chunks);
                    }
                }
                self.done = self.stream.is_finished();
                if !chunks.is_empty() || self.done {
                    return Some(sse(&chunks, self.done));
                }
                continue;
            }
            match tokio::time::timeout(KEEP_ALIVE, self.tail.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return None,
                Err(_) => return Some(b": keep-alive\n\n".to_vec()),
            }
        }
    }
}

/// Chunks as SSE events, `data: [DONE]` after the last when `end`.
fn sse(chunks: &[UiChunk], end: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for chunk in chunks {
        out.extend_from_slice(b"data: ");
        out.extend_from_slice(serde_json::to_string(chunk).expect("chunks encode").as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    if end {
        out.extend_from_slice(b"data: [DONE]\n\n");
    }
    out
}
