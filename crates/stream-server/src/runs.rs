//! Runs: a send starts one (idempotent on `client_message_id`, one at a time
//! per session), a task drives the provider and turns its events into
//! frames, and every run ends with exactly one `run_finished`, whether it
//! completes, fails, is aborted, is cut by a shutdown, or was cut by a crash
//! (closed at the next start).

use std::sync::Arc;

use std::time::Duration;

use serde_json::json;
use stream_core::agent::{AgentEvent, AgentItem, Translator};
use stream_core::frame::{ErrorFrame, FrameBody, MessageStarted, RunFinished, RunStarted};
use stream_core::message::{Outcome, Role, Usage};
use tokio::time::Instant;

use crate::AppState;
use crate::error::AppError;
use crate::hub::{ActiveRun, CONFLICT_RETRIES, IfMissing, Locked, Session, is_head_conflict, new_id, now_ms};
use crate::inputs::SendRequest;
use crate::provider::{Committed, ProviderEvent, ProviderRun, RunRequest, Turn};
use crate::store::{ClusterEvent, LeaseAction, SendAnswer, StoreError, WriteOp};

/// Provider events taken per append; they share one commit.
const EVENTS_PER_BATCH: usize = 256;

/// Most frames one append publishes at once: an event closes at most two
/// messages and opens one besides its own frame (a tool result after
/// thinking), plus the stall notice's. A connection's queue holds at least
/// this many, or every batch would evict.
pub const MAX_FRAMES_PER_APPEND: usize = (EVENTS_PER_BATCH + 1) * 4 + 4;

/// Said in the frame that closes a run cut short by a restart.
pub const INTERRUPTED_BY_RESTART: &str = "the server restarted while this run was going";
/// Said in the frame that closes a run whose node stopped (its lease expired).
pub const DRIVER_LOST: &str = "the server node driving this run stopped";
/// Said when a shutdown ends a run.
pub const INTERRUPTED_BY_SHUTDOWN: &str = "the server shut down while this run was going";

/// Starts a run for a send, or returns the answer an earlier send with the
/// same `client_message_id` got.
pub async fn send(app: &Arc<AppState>, session_id: &str, request: SendRequest) -> Result<SendAnswer, AppError> {
    request.check()?;
    if let Some(name) = &request.provider {
        known_provider(app, name)?;
    }
    if app.shutdown.is_cancelled() {
        return Err(AppError::ShuttingDown);
    }
    // Another node may write first; then the checks are made again on what it wrote.
    let mut conflicts = 0;
    loop {
        match start_run(app, session_id, &request).await {
            Err(error) if is_head_conflict(&error) && conflicts < CONFLICT_RETRIES => conflicts += 1,
            result => return result,
        }
    }
}

/// The 409 of a send while `run` is running in the session.
fn run_in_progress(run: &str) -> AppError {
    AppError::Conflict {
        code: "run_in_progress",
        message: format!("{run} is still running in this session; abort it or wait"),
    }
}

/// The send's checks, its frames, and its run's driver: once.
async fn start_run(app: &Arc<AppState>, session_id: &str, request: &SendRequest) -> Result<SendAnswer, AppError> {
    let mut locked = app.hub.lock(session_id, IfMissing::Create).await?.expect("a created session exists");
    // A session keeps the provider it was created with (or first sent to).
    if locked.producer.provider.is_none() && locked.producer.sequencer.head() == 0 {
        locked.producer.provider.clone_from(&request.provider);
    }
    let chosen = request.provider.as_deref().or(locked.producer.provider.as_deref());
    let (provider_name, provider) = known_provider(app, chosen.unwrap_or(&app.config.default_provider))?;
    // Looked up under the lock, so a concurrent duplicate sees the first answer.
    if let Some(answer) = app.hub.store().send_answer(session_id, &request.client_message_id).await? {
        return Ok(answer);
    }
    // The log's view, which holds runs driven by other nodes too.
    if let Some(run) = locked.producer.sequencer.running() {
        return Err(run_in_progress(&format!("run {}", run.run_id)));
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
            parent_tool_call_id: None,
        }),
        FrameBody::RunStarted(RunStarted {
            run_id: answer.run_id.clone(),
            provider: provider_name.to_owned(),
            started_at: now,
        }),
    ];
    let record = WriteOp::RecordSend {
        session_id: session_id.to_owned(),
        client_message_id: request.client_message_id.clone(),
        answer: answer.clone(),
    };
    let history =
        if provider.wants_history() { history(locked.producer.sequencer.state().messages()) } else { Vec::new() };
    let continuation = app.hub.store().continuation(session_id, provider_name).await?;
    let resumed = continuation.is_some();
    let mut extra = vec![record];
    extra.extend(app.lease.ops(session_id, &answer.run_id, &[LeaseAction::Take]));
    match locked.try_append(&app.hub, bodies, extra).await {
        // Another node's run holds the session, though its frames are not read yet.
        Err(AppError::Storage(StoreError::Leased(_))) => return Err(run_in_progress("a run")),
        result => result?,
    }
    // Started here, so a run is registered (an external run's events URL
    // answers) once the send is answered, but inside the drivers' runtime:
    // the tasks the provider spawns hand their events to the driver on the
    // same threads, not across runtimes (a parked thread woken on a busy
    // machine waits for a core; it was the paced median's largest share).
    let provider_run = {
        let _drivers = app.drivers.handle().enter();
        provider.start(RunRequest {
            session_id: session_id.to_owned(),
            run_id: answer.run_id.clone(),
            prompt: request.content.clone(),
            continuation,
            history,
        })
    };
    let abort = tokio_util::sync::CancellationToken::new();
    locked.producer.run = Some(ActiveRun { run_id: answer.run_id.clone(), abort: abort.clone() });
    let Locked { session, producer } = locked;
    drop(producer);
    let run =
        RunContext { run_id: answer.run_id.clone(), provider: provider_name.to_owned(), continuation: None, resumed };
    let driver = drive(Arc::clone(app), session, run, provider_run, abort);
    app.tasks.spawn_on(driver, app.drivers.handle());
    Ok(answer)
}

/// The provider `name`, or the 400 that lists the ones offered.
pub fn known_provider<'a>(
    app: &'a AppState,
    name: &str,
) -> Result<(&'a str, &'a Arc<dyn crate::provider::Provider>), AppError> {
    app.providers.get(Some(name)).ok_or_else(|| {
        let known: Vec<&str> = app.providers.names().collect();
        AppError::bad_request("unknown_provider", format!("unknown provider; this server offers {}", known.join(", ")))
    })
}

/// Aborts the session's running run; returns its id.
pub async fn abort(app: &AppState, session_id: &str) -> Result<String, AppError> {
    let locked = app.hub.lock(session_id, IfMissing::Absent).await?;
    let locked = locked.ok_or_else(|| AppError::NotFound("no such session".into()))?;
    let running = locked.producer.sequencer.running();
    // The log's run is the one to abort: this node's only while the log has it
    // running (its end may be published, and seen, before its driver lets go).
    let local = locked.producer.run.as_ref().filter(|run| running.is_some_and(|running| running.run_id == run.run_id));
    match (local, running) {
        (Some(run), _) => {
            run.abort.cancel();
            Ok(run.run_id.clone())
        }
        // Driven by another node, which is told.
        (None, Some(running)) if app.lease.is_shared() => {
            let run_id = running.run_id.clone();
            let event = ClusterEvent::Abort { session_id: session_id.to_owned(), run_id: run_id.clone() };
            app.hub.store().write(app.hub.announce(event).into_iter().collect()).await?;
            Ok(run_id)
        }
        _ => Err(AppError::NotFound("nothing is running in this session".into())),
    }
}

/// An abort another node was asked for, of run `run_id`, if this node drives it.
pub async fn abort_driven(app: &AppState, session_id: &str, run_id: &str) {
    // A run driven here keeps its session in memory.
    let Some(session) = app.hub.live_session(session_id).await else { return };
    let producer = session.producer().await;
    if let Some(run) = producer.run.as_ref().filter(|run| run.run_id == run_id) {
        run.abort.cancel();
    }
}

/// The conversation so far, for providers that are sent it: the user's
/// messages and the main thread's replies, with text.
fn history(messages: &[stream_core::Message]) -> Vec<Turn> {
    messages
        .iter()
        .filter(|message| message.parent_tool_call_id.is_none() && !message.content.is_empty())
        .filter_map(|message| {
            let role = match message.role {
                Role::User => "user",
                Role::Assistant => "assistant",
                Role::Tool | Role::System | Role::Reasoning => return None,
            };
            Some(Turn { role, content: message.content.clone() })
        })
        .collect()
}

/// How a run ended, as the driver saw it.
struct Ending {
    status: Outcome,
    aborted: bool,
    exit_code: Option<i32>,
    error: Option<String>,
    /// This node lost the run's lease: another node ended the run, and
    /// nothing more of it is written here.
    fenced: bool,
}

impl Ending {
    fn new(status: Outcome, aborted: bool, exit_code: Option<i32>, error: Option<String>) -> Self {
        Self { status, aborted, exit_code, error, fenced: false }
    }

    fn failed(error: impl Into<String>) -> Self {
        Self::new(Outcome::Failed, false, None, Some(error.into()))
    }

    fn fenced() -> Self {
        Self { fenced: true, ..Self::failed("this node lost the run's lease") }
    }

    /// The ending a failed write of the run's frames leads to.
    fn after_failed_write(error: &AppError) -> Self {
        if matches!(error, AppError::Storage(StoreError::Leased(_))) {
            tracing::warn!("this node lost a run's lease; another node ends the run");
            return Self::fenced();
        }
        tracing::error!(%error, "could not append provider events; failing the run");
        Self::failed("storage failed")
    }
}

/// What the driver knows of its run.
struct RunContext {
    run_id: String,
    provider: String,
    /// The provider's conversation id this run stored last.
    continuation: Option<String>,
    /// Whether the run continued a stored conversation.
    resumed: bool,
}

impl RunContext {
    /// The write that stores a new conversation id from `items`, if one came.
    fn continuation_write(&mut self, session_id: &str, items: &[AgentItem]) -> Option<WriteOp> {
        let id = items.iter().rev().find_map(|item| match &item.event {
            AgentEvent::Continuation { id } => Some(id.clone()),
            _ => None,
        })?;
        if self.continuation.as_ref() == Some(&id) {
            return None;
        }
        self.continuation = Some(id.clone());
        Some(WriteOp::SetContinuation { session_id: session_id.to_owned(), provider: self.provider.clone(), id })
    }

    /// A run that resumed a conversation and failed before naming one failed
    /// to resume it (the CLI no longer has it): the stored id is let go, so
    /// the next run starts a new conversation rather than failing the same way.
    fn stale_continuation(&self, session_id: &str, status: Outcome) -> Option<WriteOp> {
        (status == Outcome::Failed && self.resumed && self.continuation.is_none())
            .then(|| WriteOp::ClearContinuation { session_id: session_id.to_owned(), provider: self.provider.clone() })
    }
}

/// Drives one run to its single `run_finished`. A provider silent for the
/// stall period gets a notice on its message; silent for the timeout, it fails.
async fn drive(
    app: Arc<AppState>,
    session: Arc<Session>,
    mut run: RunContext,
    mut provider: ProviderRun,
    abort: tokio_util::sync::CancellationToken,
) {
    let _driving = session.driving();
    let stall = Duration::from_millis(app.config.provider_stall_ms.max(1));
    let timeout = Duration::from_millis(app.config.provider_timeout_ms.max(1));
    let mut translator = Translator::new(&run.run_id);
    let mut events = Vec::with_capacity(EVENTS_PER_BATCH);
    let mut heard = Instant::now();
    let mut noticed = false;
    let mut committed = Vec::new();
    // Each batch renews the lease; this keeps it while the provider is silent.
    let mut renew = tokio::time::interval(app.lease.renew_every());
    let ending = loop {
        let silence = tokio::time::sleep_until(heard + if noticed { timeout } else { stall });
        tokio::select! {
            biased;
            _ = abort.cancelled() => {
                break Ending::new(Outcome::Cancelled, true, None, None);
            }
            _ = app.shutdown.cancelled() => break Ending::failed(INTERRUPTED_BY_SHUTDOWN),
            _ = renew.tick(), if app.lease.is_shared() => {
                let keep = app.lease.ops(session.id(), &run.run_id, &[LeaseAction::Keep]);
                match app.hub.store().write(keep).await {
                    Err(StoreError::Leased(_)) => break Ending::fenced(),
                    // Redis unreachable: the lease may last until it is back.
                    Err(error) => tracing::warn!(%error, "could not renew a run's lease"),
                    Ok(()) => {}
                }
            }
            _ = silence => {
                if noticed {
                    break Ending::failed(format!("the provider sent nothing for {}", spoken(timeout)));
                }
                noticed = true;
                let notice = format!("no output from the provider for {}", spoken(stall));
                app.hub.running_notice(session.id(), Some(notice.clone()));
                if let Err(ending) = append_items(&app, &session, &run.run_id, &mut translator, vec![notice_item(Some(notice))], None).await {
                    break ending;
                }
            }
            received = provider.events.recv_many(&mut events, EVENTS_PER_BATCH) => {
                if received == 0 {
                    break Ending::failed("the provider stopped without saying how it ended");
                }
                heard = Instant::now();
                let mut items = Vec::with_capacity(events.len() + 1);
                if std::mem::take(&mut noticed) {
                    app.hub.running_notice(session.id(), None);
                    items.push(notice_item(None));
                }
                let mut taken = Taken { items, exit: None, committed: &mut committed };
                events.drain(..).for_each(|event| taken.take(event));
                let Taken { items, exit, .. } = taken;
                let stored = run.continuation_write(session.id(), &items);
                if let Err(ending) = append_items(&app, &session, &run.run_id, &mut translator, items, stored).await {
                    break ending;
                }
                if let Some(exit) = exit {
                    break exit;
                }
                committed.drain(..).for_each(Committed::stored);
            }
        }
    };
    provider.cancel.cancel();
    if !ending.fenced {
        finish(&app, &session, &run, ending, translator, committed).await;
    }
    let mut producer = session.producer().await;
    if producer.run.as_ref().is_some_and(|active| active.run_id == run.run_id) {
        producer.run = None;
    }
}

/// What a driver took from its provider's events at once.
struct Taken<'a> {
    items: Vec<AgentItem>,
    exit: Option<Ending>,
    /// The batches to answer once their events are stored.
    committed: &'a mut Vec<Committed>,
}

impl Taken<'_> {
    fn take(&mut self, event: ProviderEvent) {
        match event {
            // Nothing after the exit counts but the wish to hear it is stored.
            ProviderEvent::Exit { status, exit_code, error } if self.exit.is_none() => {
                self.exit = Some(Ending::new(status, false, exit_code, error));
            }
            ProviderEvent::Item(item) if self.exit.is_none() => self.items.push(item),
            ProviderEvent::Exit { .. } | ProviderEvent::Item(_) => {}
            ProviderEvent::Batch(events, committed) => {
                events.into_iter().for_each(|event| self.take(event));
                self.committed.push(committed);
            }
        }
    }
}

/// Appends the run's end: its error, if any, the translator's last frames,
/// and its one `run_finished`, letting the lease go.
async fn finish(
    app: &AppState,
    session: &Session,
    run: &RunContext,
    ending: Ending,
    mut translator: Translator,
    committed: Vec<Committed>,
) {
    let now = now_ms();
    let mut bodies = Vec::new();
    if let Some(error) = ending.error {
        let reason = if ending.status == Outcome::Failed { "run_failed" } else { "run_interrupted" };
        bodies.push(FrameBody::Error(ErrorFrame { message_id: None, error, reason: Some(reason.into()) }));
    }
    translator.finish(ending.status, now, &mut bodies);
    bodies.push(FrameBody::RunFinished(RunFinished {
        run_id: run.run_id.clone(),
        status: ending.status,
        aborted: ending.aborted,
        exit_code: ending.exit_code,
        state_hash: None,
    }));
    let mut extra: Vec<WriteOp> = run.stale_continuation(session.id(), ending.status).into_iter().collect();
    extra.extend(app.lease.ops(session.id(), &run.run_id, &[LeaseAction::Keep, LeaseAction::Release]));
    // Any storage failure but a lost lease (another node ended the run) is tried again.
    let finished = append_run_frames(app, session, bodies, extra, &FINISH_RETRIES, |error| {
        !matches!(error, StoreError::Leased(_))
    })
    .await;
    match finished {
        Ok(()) => committed.into_iter().for_each(Committed::stored),
        // The log may still show the run open: sends get 409 rather than a
        // run the sequencer would refuse; the next start closes it.
        Err(error) => tracing::error!(%error, run = %run.run_id, "could not append run_finished"),
    }
}

/// Appends a run's frames. While storage fails in a way `retry` allows and a
/// pause is left, waits (the producer lock let go meanwhile: the session
/// stays readable) and tries again, unless the last write landed after all
/// (its answer lost): then it is not written twice.
async fn append_run_frames(
    app: &AppState,
    session: &Session,
    bodies: Vec<FrameBody>,
    extra: Vec<WriteOp>,
    pauses: &[Duration],
    retry: impl Fn(&StoreError) -> bool,
) -> Result<(), AppError> {
    if pauses.is_empty() {
        return session.append(&app.hub, &mut *session.producer().await, bodies, extra).await;
    }
    let mut pauses = pauses.iter();
    let mut waited = false;
    let result = 'attempts: loop {
        let result = session.append(&app.hub, &mut *session.producer().await, bodies.clone(), extra.clone()).await;
        let error = match &result {
            Err(AppError::Storage(error)) if retry(error) => error,
            _ => break result,
        };
        tracing::warn!(%error, "could not store a run's frames; trying again");
        if !std::mem::replace(&mut waited, true) {
            app.hub.running_notice(session.id(), Some(STORAGE_WAIT.to_owned()));
        }
        // Until the log can say whether the last write landed.
        loop {
            let Some(pause) = pauses.next() else { break 'attempts result };
            tokio::time::sleep(*pause).await;
            match session.landed(&app.hub, &mut *session.producer().await).await {
                Ok(true) => break 'attempts Ok(()),
                Ok(false) => continue 'attempts,
                Err(_) => {}
            }
        }
    };
    if waited {
        app.hub.running_notice(session.id(), None);
    }
    result
}

/// Pauses between the attempts to commit a run's end (a storage blip passes).
const FINISH_RETRIES: [Duration; 3] = [Duration::from_millis(200), Duration::from_secs(1), Duration::from_secs(5)];

/// A duration as a person reads it: `120 s`, or `200 ms` under a second.
fn spoken(duration: Duration) -> String {
    if duration < Duration::from_secs(1) {
        format!("{} ms", duration.as_millis())
    } else {
        format!("{} s", duration.as_secs())
    }
}

/// The stall notice on the run's message, or its removal (`None`).
fn notice_item(notice: Option<String>) -> AgentItem {
    AgentEvent::Usage(Usage { metadata: Some(json!({ "notice": notice })), ..Usage::default() }).into()
}

/// Translates `items` and appends their frames, with `stored` in the same
/// commit. With a shared log, Redis restarting is a pause, not the end of
/// the run; watchers of the running list are told meanwhile.
async fn append_items(
    app: &AppState,
    session: &Session,
    run_id: &str,
    translator: &mut Translator,
    items: Vec<AgentItem>,
    stored: Option<WriteOp>,
) -> Result<(), Ending> {
    let now = now_ms();
    let mut bodies = Vec::with_capacity(items.len() + 2);
    for item in items {
        translator.push(item, now, &mut bodies);
    }
    let mut extra: Vec<WriteOp> = stored.into_iter().collect();
    extra.extend(app.lease.ops(session.id(), run_id, &[LeaseAction::Keep]));
    let pauses: &[Duration] = if app.lease.is_shared() { &REDIS_RETRIES } else { &[] };
    append_run_frames(app, session, bodies, extra, pauses, |error| matches!(error, StoreError::Redis(_)))
        .await
        .map_err(|error| Ending::after_failed_write(&error))
}

/// The running list's notice on a run whose batches wait for Redis.
const STORAGE_WAIT: &str = "the log (Redis) cannot be reached; waiting for it";

/// Pauses between the attempts to store a batch of a run while Redis cannot be reached.
const REDIS_RETRIES: [Duration; 4] =
    [Duration::from_millis(100), Duration::from_millis(300), Duration::from_secs(1), Duration::from_secs(3)];

/// Closes every run that no node drives any more, with exactly one failed
/// `run_finished` each: at start, those a crash or a stop of this node left
/// open (alone, every open run); later, with a shared log, those of nodes
/// that died (their lease expired). The close takes the lease, so of two
/// nodes that try, one closes the run.
pub async fn close_orphaned_runs(app: &AppState, at_start: bool) -> Result<usize, AppError> {
    let mut closed = 0;
    let own = at_start.then_some(app.lease.node.as_str());
    for session_id in app.hub.store().orphaned_runs(own).await? {
        for _ in 0..=CONFLICT_RETRIES {
            match close_orphaned_run(app, &session_id, at_start).await {
                // Another node wrote first: looked at again.
                Err(error) if is_head_conflict(&error) => continue,
                // Another node took it over first.
                Err(AppError::Storage(StoreError::Leased(_))) => break,
                Err(error) => return Err(error),
                Ok(done) => {
                    closed += usize::from(done);
                    break;
                }
            }
        }
    }
    Ok(closed)
}

/// Closes the session's run if it is still open and driven by no node here;
/// returns whether it did.
async fn close_orphaned_run(app: &AppState, session_id: &str, at_start: bool) -> Result<bool, AppError> {
    {
        let Some(mut locked) = app.hub.lock(session_id, IfMissing::Absent).await? else { return Ok(false) };
        // Driven here after all (started since the lookup).
        if locked.producer.run.is_some() {
            return Ok(false);
        }
        let Some(run) = locked.producer.sequencer.running().cloned() else { return Ok(false) };
        let error = if at_start { INTERRUPTED_BY_RESTART } else { DRIVER_LOST };
        let bodies = vec![
            FrameBody::Error(ErrorFrame {
                message_id: None,
                error: error.to_owned(),
                reason: Some("run_interrupted".into()),
            }),
            FrameBody::RunFinished(RunFinished {
                run_id: run.run_id.clone(),
                status: Outcome::Failed,
                aborted: false,
                exit_code: None,
                state_hash: None,
            }),
        ];
        let lease = app.lease.ops(session_id, &run.run_id, &[LeaseAction::Take, LeaseAction::Release]);
        // Once: after a conflict, the run is looked at again (it may be closed).
        locked.try_append(&app.hub, bodies, lease).await?;
        Ok(true)
    }
}

/// With a shared log: looks for runs whose node died, every third of the
/// lease, and closes them.
pub async fn close_orphaned_runs_loop(app: Arc<AppState>) {
    if !app.lease.is_shared() {
        return;
    }
    let mut ticks = tokio::time::interval(app.lease.renew_every());
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = app.shutdown.cancelled() => return,
        }
        match close_orphaned_runs(&app, false).await {
            Ok(0) => {}
            Ok(closed) => tracing::warn!(closed, "closed runs whose node stopped"),
            Err(error) => tracing::warn!(%error, "could not look for runs whose node stopped"),
        }
    }
}
