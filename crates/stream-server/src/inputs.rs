//! Every piece of client input the server parses, each through the one
//! function its handler uses: WebSocket frames, REST bodies, names, and the
//! host, origin and token of a request; the Durable Streams handlers' offsets,
//! headers and bodies, and external runs' batches, parse in their own
//! modules. [`fuzz`] drives them all from raw bytes, for the fuzz target and
//! for the replay of its finds in `just test`.

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, Uri, header};
use stream_core::frame::{ClientFrame, FrameError, is_valid_session_id, parse_client_frame};

use crate::access::Access;
use crate::config::MAX_CLIENT_FRAME_BYTES;
use crate::error::AppError;

/// Longest accepted `content` of a send.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;
/// Longest session name.
pub const MAX_NAME_CHARS: usize = 200;

/// A send, as `POST /v1/sessions/{id}/messages` takes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The client's id for the message; a retry reuses it.
    pub client_message_id: String,
    /// The user's text.
    pub content: String,
    /// The provider; the session's, else the server's default, when absent.
    #[serde(default)]
    pub provider: Option<String>,
}

impl SendRequest {
    /// The checks a send passes before anything is stored.
    pub fn check(&self) -> Result<(), AppError> {
        if !is_valid_session_id(&self.client_message_id) {
            return Err(AppError::bad_request(
                "invalid_client_message_id",
                "client_message_id must match [A-Za-z0-9._:-]{1,128}",
            ));
        }
        if self.content.len() > MAX_CONTENT_BYTES {
            return Err(AppError::PayloadTooLarge(MAX_CONTENT_BYTES));
        }
        Ok(())
    }
}

/// `POST /v1/sessions`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// Its name; "New session" when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// The provider its sends use when they name none.
    #[serde(default)]
    pub provider: Option<String>,
}

/// `PATCH /v1/sessions/{id}`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameRequest {
    /// The new name.
    pub name: String,
}

/// A name trimmed, if it has 1 to [`MAX_NAME_CHARS`] characters.
pub fn valid_name(name: &str) -> Result<&str, AppError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(AppError::bad_request("invalid_name", format!("a name has 1 to {MAX_NAME_CHARS} characters")));
    }
    Ok(name)
}

/// A client's WebSocket text, as the socket loop reads it.
pub fn client_frame(text: &str) -> Result<ClientFrame, FrameError> {
    parse_client_frame(text, MAX_CLIENT_FRAME_BYTES)
}

/// The access checks the fuzz target runs: loopback, a listed origin, a token.
pub fn fuzz_access() -> Access {
    let mut config = crate::Config::for_data_dir("unused");
    config.cors_origins = vec!["http://app.example:3000".into()];
    config.allowed_hosts = vec![".lan".into()];
    config.auth_token = Some("a+b".parse().expect("a token parses"));
    Access::new(&config)
}

/// Drives the parser that the first byte picks with the rest of `data`.
/// Returns normally for any input; a panic is a bug.
pub fn fuzz(data: &[u8], access: &Access) {
    let Some((&pick, rest)) = data.split_first() else { return };
    let text = String::from_utf8_lossy(rest);
    match pick % 9 {
        0 => {
            if let Ok(ClientFrame::Subscribe { channel, .. }) = client_frame(&text) {
                is_valid_session_id(&channel);
            }
        }
        1 => {
            if let Ok(request) = serde_json::from_slice::<SendRequest>(rest) {
                let _ = request.check();
            }
        }
        2 => {
            if let Ok(request) = serde_json::from_slice::<CreateRequest>(rest) {
                let _ = request.name.as_deref().map(valid_name);
            }
        }
        3 => {
            if let Ok(request) = serde_json::from_slice::<RenameRequest>(rest) {
                let _ = valid_name(&request.name);
            }
        }
        4 => {
            is_valid_session_id(&text);
        }
        6 => {
            use crate::durable::wire;
            let _ = wire::parse_read_query(Some(&text));
            let _ = wire::ContentType::parse(&text).map(|content_type| content_type.is_text());
            let _ = (wire::parse_ttl(&text), wire::parse_expires_at(&text), wire::parse_count(&text, false));
            let _ = wire::json_messages(rest, false);
            wire::sse_data_lines(&mut Vec::new(), rest, true);
        }
        7 => {
            // A Durable Streams request's headers, split at NUL bytes, then its body.
            let mut parts = rest.split(|&byte| byte == 0);
            let mut headers = HeaderMap::new();
            for name in crate::durable::http::REQUEST_HEADERS {
                if let Some(value) = parts.next().and_then(|part| HeaderValue::from_bytes(part).ok()) {
                    headers.insert(HeaderName::from_static(name), value);
                }
            }
            let body = axum::body::Bytes::copy_from_slice(parts.next().unwrap_or_default());
            let _ = crate::durable::http::create_request(&headers, body.clone());
            let _ = crate::durable::http::append_request(&headers, body);
        }
        8 => {
            let _ = crate::provider::external::parse_batch(rest).map(|lines| lines.len());
        }
        _ => {
            // Host, origin, bearer and query, split at NUL bytes.
            let mut parts = rest.split(|&byte| byte == 0);
            let mut headers = HeaderMap::new();
            for name in [header::HOST, header::ORIGIN, header::AUTHORIZATION, HeaderName::from_static("upgrade")] {
                if let Some(value) = parts.next().and_then(|part| HeaderValue::from_bytes(part).ok()) {
                    headers.insert(name, value);
                }
            }
            let query = parts.next().map(String::from_utf8_lossy).unwrap_or_default();
            let uri = format!("/v1/ws?{query}").parse::<Uri>().unwrap_or_else(|_| Uri::from_static("/v1/ws"));
            let _ = access.check_host_and_origin(&Method::POST, &uri, &headers);
            let _ = access.check_token(&uri, &headers);
        }
    }
}
