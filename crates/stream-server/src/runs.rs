//! Runs: a send starts one (idempotent on `client_message_id`, one at a time
//! per session), a task drives the provider and turns its events into
//! frames, and every run ends with exactly one `run_finished`, whether it
//! completes, fails, is aborted, is cut by a shutdown, or was cut by a crash
//! (closed at the next start).

use std::sync::Arc;

use stream_core::frame::{
    Delta, ErrorFrame, FrameBody, MessageComplete, MessageStarted, RunFinished, RunStarted, StatusFrame, ToolCallFrame,
    ToolCallSpec, ToolResultFrame,
};
use stream_core::message::{Outcome, Role, Usage};

use crate::AppState;
use crate::error::AppError;
use crate::hub::{ActiveRun, IfMissing, Locked, Session, new_id, now_ms};
use crate::provider::{ProviderEvent, ProviderRun, RunRequest};
use crate::store::{SendAnswer, WriteOp};

/// Provider events taken per append; they share one commit.
const EVENTS_PER_BATCH: usize = 512;

/// Most frames one append publishes at once (an event opens at most one
/// message besides its own frame, and the run's end adds a few). A
/// connection's queue holds at least this many, or every batch would evict.
pub const MAX_FRAMES_PER_APPEND: usize = EVENTS_PER_BATCH * 2 + 4;

/// Said in the frame that closes a run cut short by a restart.
pub const INTERRUPTED_BY_RESTART: &str = "the server restarted while this run was going";
/// Said when a shutdown ends a run.
pub const INTERRUPTED_BY_SHUTDOWN: &str = "the server shut down while this run was going";

/// A send, as `POST /v1/sessions/{id}/messages` takes it.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The client's id for the message; a retry reuses it.
    pub client_message_id: String,
    /// The user's text.
    pub content: String,
    /// The provider; the server's default when absent.
    #[serde(default)]
    pub provider: Option<String>,
}

/// Largest accepted `content` of a send.
pub const MAX_CONTENT_BYTES: usize = 256 * 1024;

/// Starts a run for a send, or returns the answer an earlier send with the
/// same `client_message_id` got.
pub async fn send(app: &Arc<AppState>, session_id: &str, request: SendRequest) -> Result<SendAnswer, AppError> {
    if !stream_core::frame::is_valid_session_id(&request.client_message_id) {
        return Err(AppError::bad_request(
            "invalid_client_message_id",
            "client_message_id must match [A-Za-z0-9._:-]{1,128}",
        ));
    }
    if request.content.len() > MAX_CONTENT_BYTES {
        return Err(AppError::PayloadTooLarge(MAX_CONTENT_BYTES));
    }
    let Some((provider_name, provider)) = app.providers.get(request.provider.as_deref()) else {
        let known: Vec<&str> = app.providers.names().collect();
        return Err(AppError::bad_request(
            "unknown_provider",
            format!("unknown provider; this server offers {}", known.join(", ")),
        ));
    };
    if app.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    let mut locked = app.hub.lock(session_id, IfMissing::Create).await?.expect("a created session exists");
    // Looked up under the lock, so a concurrent duplicate sees the first answer.
    if let Some(answer) = app.hub.store().send_answer(session_id, &request.client_message_id).await? {
        return Ok(answer);
    }
    if let Some(run) = &locked.producer.run {
        return Err(AppError::Conflict {
            code: "run_in_progress",
            message: format!("run {} is still running in this session; abort it or wait", run.run_id),
        });
    }
    let now = now_ms();
    let answer = SendAnswer { run_id: new_id("run"), message_id: new_id("msg") };
    let bodies = vec![
        FrameBody::MessageStarted(MessageStarted {
            message_id: answer.message_id.clone(),
            role: Role::User,
            created_at: now,
            client_message_id: Some(request.client_message_id.clone()),
            content: Some(request.content.clone()),
        }),
        FrameBody::RunStarted(RunStarted {
            run_id: answer.run_id.clone(),
            provider: provider_name.to_owned(),
            started_at: now,
        }),
    ];
    let record = WriteOp::RecordSend {
        session_id: session_id.to_owned(),
        client_message_id: request.client_message_id,
        answer: answer.clone(),
    };
    locked.append(&app.hub, bodies, vec![record]).await?;
    let provider_run = provider.start(RunRequest {
        session_id: session_id.to_owned(),
        run_id: answer.run_id.clone(),
        prompt: request.content,
    });
    let abort = tokio_util::sync::CancellationToken::new();
    locked.producer.run = Some(ActiveRun { run_id: answer.run_id.clone(), abort: abort.clone() });
    let Locked { session, producer } = locked;
    drop(producer);
    let driver = drive(Arc::clone(app), session, answer.run_id.clone(), provider_run, abort);
    app.tasks.spawn(driver);
    Ok(answer)
}

/// Aborts the session's running run; returns its id.
pub async fn abort(app: &AppState, session_id: &str) -> Result<String, AppError> {
    let locked = app.hub.lock(session_id, IfMissing::Absent).await?;
    let locked = locked.ok_or_else(|| AppError::NotFound("no such session".into()))?;
    match &locked.producer.run {
        Some(run) => {
            run.abort.cancel();
            Ok(run.run_id.clone())
        }
        None => Err(AppError::NotFound("nothing is running in this session".into())),
    }
}

/// How a run ended, as the driver saw it.
struct Ending {
    status: Outcome,
    aborted: bool,
    exit_code: Option<i32>,
    error: Option<&'static str>,
}

/// Drives one run to its single `run_finished`.
async fn drive(
    app: Arc<AppState>,
    session: Arc<Session>,
    run_id: String,
    mut run: ProviderRun,
    abort: tokio_util::sync::CancellationToken,
) {
    let mut translator = Translator::new(&run_id);
    let mut events = Vec::with_capacity(EVENTS_PER_BATCH);
    let ending = loop {
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                break Ending { status: Outcome::Cancelled, aborted: true, exit_code: None, error: None };
            }
            _ = app.shutdown.cancelled() => {
                break Ending { status: Outcome::Failed, aborted: false, exit_code: None, error: Some(INTERRUPTED_BY_SHUTDOWN) };
            }
            received = run.events.recv_many(&mut events, EVENTS_PER_BATCH) => {
                if received == 0 {
                    break Ending {
                        status: Outcome::Failed,
                        aborted: false,
                        exit_code: None,
                        error: Some("the provider stopped without saying how it ended"),
                    };
                }
                let mut bodies = Vec::with_capacity(events.len() + 2);
                let mut exit = None;
                for event in events.drain(..) {
                    match event {
                        ProviderEvent::Exit { status, exit_code } => {
                            exit = Some(Ending { status, aborted: false, exit_code, error: None });
                            break;
                        }
                        event => translator.push(event, &mut bodies),
                    }
                }
                let mut producer = session.producer().await;
                if let Err(error) = session.append(&app.hub, &mut producer, bodies, Vec::new()).await {
                    tracing::error!(%error, run = %run_id, "could not append provider events; failing the run");
                    break Ending { status: Outcome::Failed, aborted: false, exit_code: None, error: Some("storage failed") };
                }
                if let Some(exit) = exit {
                    break exit;
                }
            }
        }
    };
    run.cancel.cancel();
    let mut bodies = Vec::new();
    if let Some(error) = ending.error {
        bodies.push(FrameBody::Error(ErrorFrame {
            message_id: None,
            error: error.to_owned(),
            reason: Some("run_interrupted".into()),
        }));
    }
    translator.close(ending.status, &mut bodies);
    bodies.push(FrameBody::RunFinished(RunFinished {
        run_id: run_id.clone(),
        status: ending.status,
        aborted: ending.aborted,
        exit_code: ending.exit_code,
        state_hash: None,
    }));
    let mut producer = session.producer().await;
    if let Err(error) = session.append(&app.hub, &mut producer, bodies, Vec::new()).await {
        // The log still shows the run open; the next start closes it.
        tracing::error!(%error, run = %run_id, "could not append run_finished");
    }
    if producer.run.as_ref().is_some_and(|active| active.run_id == run_id) {
        producer.run = None;
    }
}

/// Closes every run a crash left open in the log: exactly one failed
/// `run_finished` each.
pub async fn close_interrupted_runs(app: &AppState) -> Result<usize, AppError> {
    let mut closed = 0;
    for session_id in app.hub.store().sessions_with_open_runs().await? {
        let Some(mut locked) = app.hub.lock(&session_id, IfMissing::Absent).await? else { continue };
        let Some(run) = locked.producer.sequencer.running().cloned() else { continue };
        let bodies = vec![
            FrameBody::Error(ErrorFrame {
                message_id: None,
                error: INTERRUPTED_BY_RESTART.to_owned(),
                reason: Some("run_interrupted".into()),
            }),
            FrameBody::RunFinished(RunFinished {
                run_id: run.run_id,
                status: Outcome::Failed,
                aborted: false,
                exit_code: None,
                state_hash: None,
            }),
        ];
        locked.append(&app.hub, bodies, Vec::new()).await?;
        closed += 1;
    }
    Ok(closed)
}

/// Turns provider events into frame bodies: it opens an assistant message
/// when text, a tool call or usage needs one, gives each tool result a tool
/// message of its own, and closes what is open at the end.
struct Translator {
    run_id: String,
    next_message: u32,
    assistant: Option<String>,
}

impl Translator {
    fn new(run_id: &str) -> Self {
        Self { run_id: run_id.to_owned(), next_message: 0, assistant: None }
    }

    fn start_message(&mut self, role: Role, bodies: &mut Vec<FrameBody>) -> String {
        self.next_message += 1;
        let message_id = format!("{}.{}", self.run_id, self.next_message);
        bodies.push(FrameBody::MessageStarted(MessageStarted {
            message_id: message_id.clone(),
            role,
            created_at: now_ms(),
            client_message_id: None,
            content: None,
        }));
        message_id
    }

    fn assistant(&mut self, bodies: &mut Vec<FrameBody>) -> String {
        match &self.assistant {
            Some(id) => id.clone(),
            None => {
                let id = self.start_message(Role::Assistant, bodies);
                self.assistant = Some(id.clone());
                id
            }
        }
    }

    fn complete_assistant(&mut self, status: Outcome, bodies: &mut Vec<FrameBody>) {
        if let Some(message_id) = self.assistant.take() {
            bodies.push(FrameBody::MessageComplete(MessageComplete {
                message_id,
                status,
                finished_at: now_ms(),
                usage: Usage::default(),
            }));
        }
    }

    fn push(&mut self, event: ProviderEvent, bodies: &mut Vec<FrameBody>) {
        match event {
            ProviderEvent::Text { content } => {
                let message_id = self.assistant(bodies);
                bodies.push(FrameBody::Delta(Delta { message_id, content }));
            }
            ProviderEvent::ToolCall { id, name, input } => {
                let message_id = self.assistant(bodies);
                bodies.push(FrameBody::ToolCall(ToolCallFrame {
                    message_id,
                    tool_call: ToolCallSpec { id, name, input, started_at: Some(now_ms()) },
                }));
            }
            ProviderEvent::ToolResult { tool_call_id, output, truncated, error } => {
                // The reply after a tool result is a new assistant message.
                self.complete_assistant(Outcome::Complete, bodies);
                let message_id = self.start_message(Role::Tool, bodies);
                bodies.push(FrameBody::ToolResult(ToolResultFrame {
                    message_id,
                    tool_call_id,
                    output,
                    truncated,
                    error,
                }));
            }
            ProviderEvent::Usage(usage) => {
                let message_id = self.assistant(bodies);
                bodies.push(FrameBody::Status(StatusFrame { message_id, usage }));
            }
            ProviderEvent::Error { error } => {
                bodies.push(FrameBody::Error(ErrorFrame { message_id: self.assistant.clone(), error, reason: None }));
            }
            ProviderEvent::Exit { .. } => {}
        }
    }

    fn close(&mut self, status: Outcome, bodies: &mut Vec<FrameBody>) {
        self.complete_assistant(status, bodies);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_translator_opens_and_closes_messages_around_tools() {
        let mut translator = Translator::new("r");
        let mut bodies = Vec::new();
        for event in [
            ProviderEvent::Text { content: "a".into() },
            ProviderEvent::ToolCall { id: "t".into(), name: "n".into(), input: serde_json::Value::Null },
            ProviderEvent::ToolResult {
                tool_call_id: "t".into(),
                output: serde_json::json!(1),
                truncated: false,
                error: None,
            },
            ProviderEvent::Text { content: "b".into() },
        ] {
            translator.push(event, &mut bodies);
        }
        translator.close(Outcome::Complete, &mut bodies);
        let kinds: Vec<String> = bodies
            .iter()
            .map(|body| match body {
                FrameBody::MessageStarted(started) => format!("start {} {:?}", started.message_id, started.role),
                FrameBody::Delta(delta) => format!("delta {}", delta.message_id),
                FrameBody::ToolCall(call) => format!("call {}", call.message_id),
                FrameBody::ToolResult(result) => format!("result {}", result.message_id),
                FrameBody::MessageComplete(complete) => format!("complete {}", complete.message_id),
                other => format!("{other:?}"),
            })
            .collect();
        assert_eq!(
            kinds,
            vec![
                "start r.1 Assistant",
                "delta r.1",
                "call r.1",
                "complete r.1",
                "start r.2 Tool",
                "result r.2",
                "start r.3 Assistant",
                "delta r.3",
                "complete r.3",
            ]
        );
    }
}
