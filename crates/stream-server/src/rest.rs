//! The REST API of protocol §6, the health and metrics endpoints, CORS, and
//! the static web app, behind the checks of [`crate::access`].

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use stream_core::frame::{FrameBody, Renamed, is_valid_session_id};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::services::{ServeDir, ServeFile};

use crate::config::MAX_BODY_BYTES;
use crate::durable::http::{Failure, producer_stamp};
use crate::durable::wire::WireError;
use crate::error::{AppError, AppJson};
use crate::hub::{IfMissing, Locked};
use crate::inputs::{self, CreateRequest, RenameRequest, SendRequest};
use crate::runs;
use crate::{AppState, access};

type AppResult<T> = Result<T, AppError>;

/// Every route, with auth, CORS and the body limit.
pub fn router(state: Arc<AppState>) -> Router {
    let mut api = Router::new()
        .route("/v1/sessions", get(list_sessions).post(create_session))
        .route("/v1/sessions/running", get(running_sessions))
        .route("/v1/providers", get(list_providers))
        .route("/v1/sessions/{id}", get(get_session).patch(rename_session).delete(delete_session))
        .route("/v1/sessions/{id}/messages", post(send_message))
        .route("/v1/sessions/{id}/abort", post(abort_run))
        .route("/v1/sessions/{id}/runs", post(open_run))
        .route("/v1/sessions/{id}/runs/{run_id}/events", post(append_run_events))
        .route("/v1/ai-sdk/chat", post(crate::ai_sdk::chat))
        .route("/v1/ai-sdk/chat/{id}/stream", get(crate::ai_sdk::resume).delete(crate::ai_sdk::stop))
        .route("/v1/ws", get(crate::ws::upgrade))
        .route("/metrics", get(metrics))
        .merge(crate::durable::routes());
    if state.config.test_hooks {
        api = api.route("/v1/test/drop-connections", post(drop_connections));
    }
    let api = api
        .route_layer(middleware::from_fn_with_state(Arc::clone(&state), access::require_token))
        .route("/healthz", get(|| async { "ok" }))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES));
    let mut app = api.with_state(Arc::clone(&state));
    if let Some(root) = state.config.web_root() {
        let index = root.join("index.html");
        app = app.fallback_service(ServeDir::new(root).fallback(ServeFile::new(index)));
    }
    // Inside CORS, so a refused request still gets CORS headers its page can read.
    app = app.layer(middleware::from_fn_with_state(Arc::clone(&state), access::guard_host_and_origin));
    app = app.layer(middleware::map_response(crate::durable::security_headers));
    if let Some(allow_origin) = cors_allow_origin(&state.config.cors_origins) {
        app = app.layer(
            CorsLayer::new()
                .allow_origin(allow_origin)
                .allow_methods([Method::GET, Method::HEAD, Method::POST, Method::PUT, Method::PATCH, Method::DELETE])
                .allow_headers(crate::durable::http::REQUEST_HEADERS.map(header::HeaderName::from_static))
                .expose_headers(crate::durable::http::RESPONSE_HEADERS.map(header::HeaderName::from_static)),
        );
    }
    app
}

/// The CORS origins: none, every one (`*`), or the listed ones.
fn cors_allow_origin(origins: &[String]) -> Option<AllowOrigin> {
    if origins.is_empty() {
        return None;
    }
    if origins.iter().any(|origin| origin.trim() == "*") {
        return Some(AllowOrigin::any());
    }
    let listed: Vec<HeaderValue> =
        origins.iter().filter_map(|origin| HeaderValue::from_str(origin.trim()).ok()).collect();
    Some(AllowOrigin::list(listed))
}

fn session_id(state: &AppState, id: &str) -> AppResult<()> {
    if is_valid_session_id(id) {
        Ok(())
    } else {
        state.metrics.reject("invalid_session_id");
        Err(AppError::bad_request("invalid_session_id", "a session id matches [A-Za-z0-9._:-]{1,128}"))
    }
}

/// Counts a refused input in `rejected_inputs` by its code.
pub(crate) fn counted<T>(state: &AppState, result: AppResult<T>) -> AppResult<T> {
    if let Err(error) = &result
        && matches!(error, AppError::BadRequest { .. } | AppError::PayloadTooLarge(_))
    {
        state.metrics.reject(error.code());
    }
    result
}

/// One entry of `GET /v1/sessions` (the package's `SessionSummary`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SessionSummary {
    /// The session.
    pub session_id: String,
    /// Its name, once it has one.
    pub name: Option<String>,
    /// Creation time, ms since the Unix epoch.
    pub created_at: u64,
    /// Last change, ms since the Unix epoch.
    pub updated_at: u64,
    /// The provider it was created with; its sends use it.
    pub provider: Option<String>,
    /// What it has cost in US dollars, when its provider said.
    pub cost_usd: Option<f64>,
    /// Whether a run is going.
    pub running: bool,
}

/// The answer to `POST /v1/sessions` (the package's `CreatedSession`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CreatedSession {
    /// The id the server chose.
    pub session_id: String,
    /// Its name.
    pub name: String,
    /// The provider its sends use, when one was named.
    pub provider: Option<String>,
}

/// The answer to a send (`202`): the run it started and the user message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SendAccepted {
    /// The run.
    pub run_id: String,
    /// The user message's id.
    pub message_id: String,
}

/// The answer to `POST /v1/sessions/{id}/runs` (`202`): the run, and where its producer appends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunOpened {
    /// The run.
    pub run_id: String,
    /// The user message's id.
    pub message_id: String,
    /// The path its events go to.
    pub events: String,
}

/// The answer to an abort (`202`): the run being stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AbortAccepted {
    /// The run.
    pub run_id: String,
}

async fn list_sessions(State(state): State<Arc<AppState>>) -> AppResult<Json<Vec<SessionSummary>>> {
    let rows = state.hub.store().sessions().await?;
    Ok(Json(
        rows.into_iter()
            .map(|row| SessionSummary {
                running: state.hub.is_running(&row.id),
                session_id: row.id,
                name: row.name,
                created_at: row.created_at,
                updated_at: row.updated_at,
                provider: row.provider,
                cost_usd: row.cost_usd,
            })
            .collect(),
    ))
}

/// `GET /v1/providers` (an extension, protocol §9): the providers a send may name.
async fn list_providers(State(state): State<Arc<AppState>>) -> Json<Vec<crate::provider::ProviderInfo>> {
    Json(state.providers.list())
}

async fn running_sessions(State(state): State<Arc<AppState>>) -> Response {
    json_text(&state.hub.running_frame())
}

async fn get_session(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> AppResult<Response> {
    session_id(&state, &id)?;
    let locked = existing(&state, &id).await?;
    let snapshot = stream_core::ControlFrame::Snapshot(locked.producer.sequencer.snapshot());
    Ok(json_text(&serde_json::to_string(&snapshot).expect("snapshots encode")))
}

/// `POST /v1/sessions` (an extension, protocol §9): a new session with a
/// server-chosen id, its name given as its first frame.
async fn create_session(
    State(state): State<Arc<AppState>>,
    body: Result<AppJson<CreateRequest>, AppError>,
) -> AppResult<(StatusCode, Json<CreatedSession>)> {
    let AppJson(request) = counted(&state, body)?;
    let name = valid_name(&state, request.name.as_deref().unwrap_or(DEFAULT_NAME))?;
    if let Some(provider) = &request.provider {
        counted(&state, runs::known_provider(&state, provider))?;
    }
    let id = crate::hub::new_id("s");
    let mut locked = state.hub.lock(&id, IfMissing::Create).await?.expect("a created session exists");
    locked.producer.provider.clone_from(&request.provider);
    append_renamed(&state, locked, name).await?;
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession { session_id: id, name: name.to_owned(), provider: request.provider }),
    ))
}

/// Name of a session created without one.
const DEFAULT_NAME: &str = "New session";

async fn rename_session(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<AppJson<RenameRequest>, AppError>,
) -> AppResult<StatusCode> {
    session_id(&state, &id)?;
    let AppJson(request) = counted(&state, body)?;
    let name = valid_name(&state, &request.name)?;
    append_renamed(&state, existing(&state, &id).await?, name).await?;
    Ok(StatusCode::OK)
}

fn valid_name<'a>(state: &AppState, name: &'a str) -> AppResult<&'a str> {
    counted(state, inputs::valid_name(name))
}

async fn append_renamed(state: &AppState, mut locked: Locked, name: &str) -> AppResult<()> {
    locked.append(&state.hub, vec![FrameBody::Renamed(Renamed { name: name.to_owned() })], Vec::new()).await
}

/// The session `id` with its producer locked, or 404.
async fn existing(state: &AppState, id: &str) -> AppResult<Locked> {
    state.hub.lock(id, IfMissing::Absent).await?.ok_or_else(|| AppError::NotFound(format!("no session {id}")))
}

async fn delete_session(State(state): State<Arc<AppState>>, Path(id): Path<String>) -> AppResult<StatusCode> {
    session_id(&state, &id)?;
    if state.hub.delete(&id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(AppError::NotFound(format!("no session {id}")))
    }
}

/// A send to session `id`, by either route that takes one.
async fn start_run(
    state: &Arc<AppState>,
    id: &str,
    body: Result<AppJson<SendRequest>, AppError>,
) -> AppResult<crate::store::SendAnswer> {
    session_id(state, id)?;
    let AppJson(request) = counted(state, body)?;
    counted(state, runs::send(state, id, request).await)
}

async fn send_message(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<AppJson<SendRequest>, AppError>,
) -> AppResult<(StatusCode, Json<SendAccepted>)> {
    let answer = start_run(&state, &id, body).await?;
    Ok((StatusCode::ACCEPTED, Json(SendAccepted { run_id: answer.run_id, message_id: answer.message_id })))
}

/// `POST /v1/sessions/{id}/runs`: a send that answers where its run's
/// events go; with `provider: "external"` an outside process drives it.
async fn open_run(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    body: Result<AppJson<SendRequest>, AppError>,
) -> AppResult<(StatusCode, Json<RunOpened>)> {
    let answer = start_run(&state, &id, body).await?;
    let events = format!("/v1/sessions/{id}/runs/{}/events", answer.run_id);
    Ok((StatusCode::ACCEPTED, Json(RunOpened { run_id: answer.run_id, message_id: answer.message_id, events })))
}

/// `POST /v1/sessions/{id}/runs/{run_id}/events`: an external run's
/// producer appends a batch of events (see [`crate::provider::external`]).
async fn append_run_events(
    State(state): State<Arc<AppState>>,
    Path((id, run_id)): Path<(String, String)>,
    headers: axum::http::HeaderMap,
    body: axum::body::Bytes,
) -> Result<Response, Failure> {
    use crate::provider::external::ExternalError;
    let stamp = match producer_stamp(&headers) {
        Ok(Some(stamp)) => stamp,
        Ok(None) => return Err(Failure::bad(&state, WireError("an external run's append needs producer headers"))),
        Err(error) => return Err(Failure::bad(&state, error)),
    };
    let accepted = state.external.append(&id, &run_id, stamp, &body).await.map_err(|error| {
        let message = error.to_string();
        match error {
            ExternalError::NoSuchRun(_) => Failure::new(&state, StatusCode::NOT_FOUND, "run_not_open", &message),
            ExternalError::Ended(_) => Failure::new(&state, StatusCode::CONFLICT, "run_ended", &message),
            ExternalError::Bad(_) => Failure::new(&state, StatusCode::BAD_REQUEST, "bad_run_events", &message),
            ExternalError::Producer(error) => Failure::stream(&state, error),
            ExternalError::NotStored => {
                Failure::new(&state, StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", &message)
            }
        }
    })?;
    let status = if accepted.stored { StatusCode::OK } else { StatusCode::NO_CONTENT };
    let mut response = status.into_response();
    let headers = response.headers_mut();
    headers.insert("producer-epoch", HeaderValue::from(accepted.epoch));
    headers.insert("producer-seq", HeaderValue::from(accepted.seq));
    Ok(response)
}

async fn abort_run(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> AppResult<(StatusCode, Json<AbortAccepted>)> {
    session_id(&state, &id)?;
    let run_id = runs::abort(&state, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(AbortAccepted { run_id })))
}

/// The test hook: closes every WebSocket; runs go on.
async fn drop_connections(State(state): State<Arc<AppState>>) -> StatusCode {
    state.drop_connections.send_modify(|generation| *generation += 1);
    StatusCode::NO_CONTENT
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.encode())
}

fn json_text(text: &str) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], text.to_owned()).into_response()
}
