//! The Durable Streams protocol (<https://github.com/durable-streams/durable-streams>)
//! at `/v1/stream/{path}`: streams any HTTP client can create, append to
//! (with idempotent producers), fork, close and read from an offset, by
//! catch-up, long-poll or SSE, stored in the server's log.
//!
//! | module | owns |
//! |---|---|
//! | [`wire`] | offsets, headers and bodies: parsing and formatting |
//! | [`registry`] | the streams and every rule that changes them |
//! | [`read`] | catch-up, long-poll and SSE over any readable source |
//! | [`http`] | the handlers: headers in, status and headers out |
//! | [`sessions`] | every session, read as a stream of its frames |

pub mod http;
pub mod read;
pub mod registry;
pub mod sessions;
pub mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use axum::routing::get;

pub use registry::Streams;

use crate::AppState;

/// The routes of the protocol.
pub fn routes() -> Router<Arc<AppState>> {
    Router::new().route("/v1/sessions/{id}/stream", get(sessions::read)).route(
        "/v1/stream/{*path}",
        get(http::get)
            .head(http::head)
            .put(http::create)
            .post(http::append)
            .delete(http::delete)
            .options(http::preflight)
            .layer(DefaultBodyLimit::max(crate::config::MAX_STREAM_BODY_BYTES)),
    )
}

/// Headers every answer carries: no MIME sniffing (a stream's bytes never
/// run as a script or page), and no embedding by other sites.
pub async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert("cross-origin-resource-policy", HeaderValue::from_static("same-origin"));
    response
}

/// Deletes expired streams once a second, so that space comes back even
/// from streams nobody asks for again (a request finds expiry by itself).
pub async fn expire_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if let Err(error) = state.streams.expire(crate::hub::now_ms()).await {
            tracing::warn!(%error, "expiring streams failed; they are tried again");
        }
    }
}
