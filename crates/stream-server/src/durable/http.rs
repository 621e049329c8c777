//! The handlers of `/v1/stream/{path}`: each reads its headers into a
//! request of [`super::registry`], or a read of [`super::read`], and writes
//! the protocol's status and headers back.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::read::{self, ReadError, ReadSettings, insert, position_headers};
use super::registry::{AppendRequest, CreateRequest, ForkRequest, StreamError};
use super::wire::{
    ContentType, WireError, format_time, parse_closed, parse_count, parse_expires_at, parse_offset, parse_read_query,
    parse_ttl,
};
use crate::AppState;
use crate::hub::now_ms;
use crate::store::ProducerStamp;

/// Where the streams live, under the server's root.
pub const PREFIX: &str = "/v1/stream/";

/// The request headers a browser may send across origins (CORS).
pub const REQUEST_HEADERS: [&str; 13] = [
    "content-type",
    "authorization",
    "if-none-match",
    "stream-seq",
    "stream-ttl",
    "stream-expires-at",
    "stream-closed",
    "producer-id",
    "producer-epoch",
    "producer-seq",
    "stream-forked-from",
    "stream-fork-offset",
    "stream-fork-sub-offset",
];

/// The response headers a browser page may read (CORS).
pub const RESPONSE_HEADERS: [&str; 13] = [
    "stream-next-offset",
    "stream-cursor",
    "stream-up-to-date",
    "stream-closed",
    "stream-ttl",
    "stream-expires-at",
    "stream-sse-data-encoding",
    "producer-epoch",
    "producer-seq",
    "producer-expected-seq",
    "producer-received-seq",
    "etag",
    "location",
];

type Answer = Result<Response, Failure>;

/// A refusal, answered in the project's error shape with the protocol's status and headers.
pub struct Failure(Box<Response>);

impl Failure {
    /// A refusal with this status and code, counted in `rejected_inputs`.
    pub fn new(state: &AppState, status: StatusCode, code: &'static str, message: &str) -> Self {
        if status != StatusCode::SERVICE_UNAVAILABLE {
            state.metrics.reject(code);
        }
        Self(Box::new((status, axum::Json(json!({ "error": { "code": code, "message": message } }))).into_response()))
    }

    fn with_header(mut self, name: &'static str, value: &str) -> Self {
        insert(self.0.headers_mut(), name, value);
        self
    }

    /// A refused stream request.
    pub fn stream(state: &AppState, error: StreamError) -> Self {
        let message = error.to_string();
        match error {
            StreamError::Bad(_) => Self::new(state, StatusCode::BAD_REQUEST, "bad_stream_request", &message),
            StreamError::NotFound => Self::new(state, StatusCode::NOT_FOUND, "stream_not_found", &message),
            StreamError::Gone => Self::new(state, StatusCode::GONE, "stream_gone", &message),
            StreamError::Conflict { code, .. } => Self::new(state, StatusCode::CONFLICT, code, &message),
            StreamError::Closed { tail } => {
                let mut failure = Self::new(state, StatusCode::CONFLICT, "stream_closed", &message);
                position_headers(failure.0.headers_mut(), tail, false, true);
                failure
            }
            StreamError::StaleEpoch { current } => {
                Self::new(state, StatusCode::FORBIDDEN, "stale_producer_epoch", &message)
                    .with_header("producer-epoch", &current.to_string())
            }
            StreamError::SeqGap { expected, received } => {
                Self::new(state, StatusCode::CONFLICT, "producer_seq_gap", &message)
                    .with_header("producer-expected-seq", &expected.to_string())
                    .with_header("producer-received-seq", &received.to_string())
            }
            StreamError::Storage(error) => {
                tracing::error!(%error, "a stream request failed on storage");
                Self::new(state, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "storage is unavailable")
            }
        }
    }

    /// A failed read.
    pub fn read(state: &AppState, error: ReadError) -> Self {
        match error {
            ReadError::Bad(bad) => Self::stream(state, StreamError::Bad(bad)),
            ReadError::Gone => Self::stream(state, StreamError::NotFound),
            ReadError::Compacted => Self::new(state, StatusCode::GONE, "offset_compacted", &error.to_string()),
            ReadError::Storage(error) => Self::stream(state, StreamError::Storage(error)),
        }
    }

    /// A malformed request.
    pub fn bad(state: &AppState, error: WireError) -> Self {
        Self::stream(state, StreamError::Bad(error))
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        *self.0
    }
}

/// The stream's name: the path after [`PREFIX`], as sent.
fn stream_path(state: &AppState, uri: &Uri) -> Result<String, Failure> {
    let path = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let valid =
        !path.is_empty() && path.len() <= 1_024 && path.split('/').all(|segment| !matches!(segment, "" | "." | ".."));
    if valid {
        Ok(path.to_owned())
    } else {
        Err(Failure::bad(state, WireError("a stream path is 1 to 1024 bytes of non-empty segments, without . or ..")))
    }
}

/// A header's text, if present; a value that is not text is refused.
fn text<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, WireError> {
    headers
        .get(name)
        .map(|value| value.to_str().map_err(|_| WireError("a header value is not visible ASCII")))
        .transpose()
}

fn content_type(headers: &HeaderMap) -> Result<Option<ContentType>, WireError> {
    text(headers, "content-type")?.filter(|value| !value.trim().is_empty()).map(ContentType::parse).transpose()
}

/// A PUT's headers and body, as the handler reads them.
pub fn create_request(headers: &HeaderMap, body: Bytes) -> Result<CreateRequest, WireError> {
    let ttl_seconds = text(headers, "stream-ttl")?.map(parse_ttl).transpose()?;
    let expires_at_ms = text(headers, "stream-expires-at")?.map(parse_expires_at).transpose()?;
    if ttl_seconds.is_some() && expires_at_ms.is_some() {
        return Err(WireError("give Stream-TTL or Stream-Expires-At, not both"));
    }
    let offset = text(headers, "stream-fork-offset")?.map(parse_offset).transpose()?;
    let sub_offset = text(headers, "stream-fork-sub-offset")?.map(|value| parse_count(value, false)).transpose()?;
    let fork = match text(headers, "stream-forked-from")? {
        Some(source) => {
            if sub_offset.is_some_and(|sub| sub > 0) && offset.is_none() {
                return Err(WireError("Stream-Fork-Sub-Offset needs Stream-Fork-Offset"));
            }
            let source = source.find(PREFIX).map(|at| &source[at + PREFIX.len()..]).unwrap_or(source);
            Some(ForkRequest {
                source: source.to_owned(),
                offset: offset.map(|offset| offset.0),
                sub_offset: sub_offset.unwrap_or(0),
            })
        }
        None if offset.is_some() || sub_offset.is_some() => {
            return Err(WireError("fork offsets need Stream-Forked-From"));
        }
        None => None,
    };
    Ok(CreateRequest {
        content_type: content_type(headers)?,
        ttl_seconds,
        expires_at_ms,
        closed: parse_closed(text(headers, "stream-closed")?)?,
        fork,
        body: body.to_vec(),
    })
}

/// The idempotent-producer headers: all three, or none.
pub fn producer_stamp(headers: &HeaderMap) -> Result<Option<ProducerStamp>, WireError> {
    match (text(headers, "producer-id")?, text(headers, "producer-epoch")?, text(headers, "producer-seq")?) {
        (None, None, None) => Ok(None),
        (Some(id), Some(epoch), Some(seq)) if !id.is_empty() => Ok(Some(ProducerStamp {
            id: id.to_owned(),
            epoch: parse_count(epoch, false)?,
            seq: parse_count(seq, false)?,
        })),
        _ => Err(WireError("Producer-Id (not empty), Producer-Epoch and Producer-Seq go together")),
    }
}

/// A POST's headers and body, as the handler reads them.
pub fn append_request(headers: &HeaderMap, body: Bytes) -> Result<AppendRequest, WireError> {
    let producer = producer_stamp(headers)?;
    Ok(AppendRequest {
        content_type: content_type(headers)?,
        body: body.to_vec(),
        close: parse_closed(text(headers, "stream-closed")?)?,
        stream_seq: text(headers, "stream-seq")?.filter(|seq| !seq.is_empty()).map(str::to_owned),
        producer,
    })
}

/// `PUT`: create, or fork.
pub async fn create(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    let path = stream_path(&state, &uri)?;
    let request = create_request(&headers, body).map_err(|error| Failure::bad(&state, error))?;
    let (stream, created) =
        state.streams.create(&path, request, now_ms()).await.map_err(|error| Failure::stream(&state, error))?;
    let tail = *read::Source::tail(&*stream).borrow();
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    let mut response = status.into_response();
    let response_headers = response.headers_mut();
    insert(response_headers, header::CONTENT_TYPE, &stream.content_type.full);
    position_headers(response_headers, tail.position, false, tail.closed);
    if created {
        let host = headers.get(header::HOST).and_then(|host| host.to_str().ok()).unwrap_or("localhost");
        insert(response_headers, header::LOCATION, &format!("http://{host}{}", uri.path()));
    }
    Ok(response)
}

/// `POST`: append, close, or both.
pub async fn append(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap, body: Bytes) -> Answer {
    let path = stream_path(&state, &uri)?;
    let request = append_request(&headers, body).map_err(|error| Failure::bad(&state, error))?;
    let appended =
        state.streams.append(&path, request, now_ms()).await.map_err(|error| Failure::stream(&state, error))?;
    let status = if appended.stored && appended.producer.is_some() { StatusCode::OK } else { StatusCode::NO_CONTENT };
    let mut response = status.into_response();
    let response_headers = response.headers_mut();
    position_headers(response_headers, appended.tail, false, appended.closed);
    if let Some((epoch, seq)) = appended.producer {
        insert(response_headers, "producer-epoch", &epoch.to_string());
        insert(response_headers, "producer-seq", &seq.to_string());
    }
    Ok(response)
}

/// `GET`: catch-up, long-poll or SSE.
pub async fn get(State(state): State<Arc<AppState>>, uri: Uri, headers: HeaderMap) -> Answer {
    let path = stream_path(&state, &uri)?;
    let query = parse_read_query(uri.query()).map_err(|error| Failure::bad(&state, error))?;
    let now = now_ms();
    let stream = state.streams.open(&path, now).await.map_err(|error| Failure::stream(&state, error))?;
    stream.touch(now);
    let settings = read_settings(&state);
    read::read(stream, state.streams.store().clone(), query, &headers, settings)
        .await
        .map_err(|error| Failure::read(&state, error))
}

/// How reads are answered, from the settings.
pub fn read_settings(state: &AppState) -> ReadSettings {
    ReadSettings {
        long_poll: std::time::Duration::from_millis(state.config.long_poll_ms),
        private: state.config.auth_token.is_some(),
    }
}

/// `HEAD`: the metadata, without renewing a TTL.
pub async fn head(State(state): State<Arc<AppState>>, uri: Uri) -> Answer {
    let path = stream_path(&state, &uri)?;
    let stream = state.streams.open(&path, now_ms()).await.map_err(|error| Failure::stream(&state, error))?;
    let tail = *read::Source::tail(&*stream).borrow();
    let mut response = StatusCode::OK.into_response();
    let headers = response.headers_mut();
    insert(headers, header::CONTENT_TYPE, &stream.content_type.full);
    position_headers(headers, tail.position, false, tail.closed);
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    if let Some(ttl) = stream.ttl_seconds {
        insert(headers, "stream-ttl", &ttl.to_string());
    }
    if let Some(at) = stream.expires_at_ms {
        insert(headers, "stream-expires-at", &format_time(at));
    }
    Ok(response)
}

/// `DELETE`.
pub async fn delete(State(state): State<Arc<AppState>>, uri: Uri) -> Answer {
    let path = stream_path(&state, &uri)?;
    state.streams.delete(&path, now_ms()).await.map_err(|error| Failure::stream(&state, error))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `OPTIONS`: a preflight. It names what the protocol's clients send; a
/// page may use them only if the CORS settings also allow its origin.
pub async fn preflight() -> Response {
    let mut response = StatusCode::NO_CONTENT.into_response();
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE"));
    insert(headers, header::ACCESS_CONTROL_ALLOW_HEADERS, &REQUEST_HEADERS.join(", "));
    headers.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
    response
}
