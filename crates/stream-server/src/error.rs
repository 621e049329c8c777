//! The errors REST answers with: `{"error": {"code", "message"}}` and a
//! fitting status. Internals (SQL text, paths) never reach the client.

use axum::Json;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::json;

use crate::store::StoreError;

/// An error a request ends with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The input is invalid.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code.
        code: &'static str,
        /// What was wrong.
        message: String,
    },
    /// No such thing.
    #[error("{0}")]
    NotFound(String),
    /// The request conflicts with the session's state.
    #[error("{message}")]
    Conflict {
        /// Machine-readable code.
        code: &'static str,
        /// What conflicts.
        message: String,
    },
    /// The body is over the bound.
    #[error("the request body is over {0} bytes")]
    PayloadTooLarge(usize),
    /// Refused before any handler ran: a foreign origin or an unknown host.
    #[error("{message}")]
    Forbidden {
        /// Machine-readable code.
        code: &'static str,
        /// What was refused.
        message: String,
    },
    /// A token is needed and was missing or wrong.
    #[error("a valid bearer token is required")]
    Unauthorized,
    /// The durable log failed; the request changed nothing a client can see.
    #[error("storage is unavailable")]
    Storage(#[from] StoreError),
    /// The server is shutting down.
    #[error("the server is shutting down")]
    ShuttingDown,
}

impl AppError {
    /// A bad-request error.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest { code, message: message.into() }
    }

    fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest { code, .. } => (StatusCode::BAD_REQUEST, code),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict { code, .. } => (StatusCode::CONFLICT, code),
            Self::PayloadTooLarge(_) => (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, code),
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Storage(_) => (StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable"),
            Self::ShuttingDown => (StatusCode::SERVICE_UNAVAILABLE, "shutting_down"),
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        self.status_and_code().1
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_and_code();
        if let Self::Storage(error) = &self {
            tracing::error!(%error, "request failed on storage");
        }
        (status, Json(json!({ "error": { "code": code, "message": self.to_string() } }))).into_response()
    }
}

/// `Json<T>` whose rejections are [`AppError`]s in the project's error shape.
pub struct AppJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for AppJson<T> {
    type Rejection = AppError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(request, state).await {
            Ok(Json(value)) => Ok(Self(value)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> AppError {
    match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge(crate::config::MAX_BODY_BYTES),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => {
            AppError::bad_request("bad_content_type", "send the body as JSON with Content-Type: application/json")
        }
        _ => AppError::bad_request("bad_json", rejection.body_text()),
    }
}
