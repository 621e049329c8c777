//! The `external` provider: a run that a process outside the server drives
//! over HTTP, in any language. It appends batches of the `command`
//! provider's events (docs/providers.md) to
//! `POST /v1/sessions/{id}/runs/{run_id}/events` with idempotent-producer
//! headers, ending with a `finish` event. The batches go through the same
//! run driver and translator as every provider's events; an append is
//! answered once its events are committed.
//!
//! A run holds a lease: silent past `--external-run-timeout-ms`, it fails.
//! A run that ended (finished, aborted, timed out) answers its producer's
//! next append with 409 and the reason.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use stream_core::agent::AgentItem;
use stream_core::message::Outcome;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::{Committed, Provider, ProviderEvent, ProviderRun, RunRequest};
use crate::durable::registry::{StreamError, check_producer};
use crate::store::ProducerStamp;

/// Most events one append may carry.
pub const MAX_EVENTS_PER_APPEND: usize = 1_024;
/// How long an ended run still answers its producer with why it ended.
const ENDED_KEPT: Duration = Duration::from_secs(600);

/// One line of an append: an event of the `command` vocabulary, or the end.
#[derive(Debug)]
pub enum Line {
    /// The run's end.
    Finish(Finish),
    /// An event.
    Item(AgentItem),
}

/// `{"type":"finish","status":"complete"|"failed","error"?,"exit_code"?}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Finish {
    #[serde(rename = "type")]
    _type: String,
    status: FinishStatus,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    exit_code: Option<i32>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "snake_case")]
enum FinishStatus {
    /// It did what it was asked.
    Complete,
    /// It did not.
    Failed,
}

/// Why an append was refused.
#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    /// No run of that id is open in the session.
    #[error("no run {0} is open in this session")]
    NoSuchRun(String),
    /// The run ended; the producer should stop.
    #[error("the run has ended: {0}")]
    Ended(String),
    /// A malformed body: nothing of it was written.
    #[error("{0}")]
    Bad(String),
    /// The producer headers' verdict: a stale epoch, a gap, bad headers.
    #[error(transparent)]
    Producer(StreamError),
    /// The run's driver stopped before committing the events.
    #[error("the run stopped before the events were stored")]
    NotStored,
}

/// What an accepted append answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accepted {
    /// Whether it was new (200) or a duplicate (204).
    pub stored: bool,
    /// The producer's epoch and highest accepted seq.
    pub epoch: u64,
    /// See `epoch`.
    pub seq: u64,
}

struct Open {
    session_id: String,
    /// Held by one append at a time, so each producer's check and delivery are one step.
    turn: Arc<tokio::sync::Mutex<()>>,
    events: mpsc::Sender<ProviderEvent>,
    producers: HashMap<String, (u64, u64)>,
    heard: Instant,
    ended: Option<(String, Instant)>,
}

/// The external runs in progress, by run id.
#[derive(Default)]
pub struct ExternalRuns {
    runs: Mutex<HashMap<String, Open>>,
}

impl ExternalRuns {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Open>> {
        self.runs.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn end(&self, run_id: &str, reason: &str) {
        if let Some(open) = self.lock().get_mut(run_id) {
            open.ended.get_or_insert_with(|| (reason.to_owned(), Instant::now()));
        }
    }

    /// Appends a batch (JSON array text) of a producer to its run.
    pub async fn append(
        &self,
        session_id: &str,
        run_id: &str,
        stamp: ProducerStamp,
        body: &[u8],
    ) -> Result<Accepted, ExternalError> {
        let lines = parse_batch(body)?;
        let no_such_run = || ExternalError::NoSuchRun(run_id.to_owned());
        let turn =
            self.lock().get(run_id).filter(|open| open.session_id == session_id).map(|open| Arc::clone(&open.turn));
        let _turn = turn.ok_or_else(no_such_run)?.lock_owned().await;
        let (events, ack) = {
            let mut runs = self.lock();
            let open = runs.get_mut(run_id).ok_or_else(no_such_run)?;
            let known = open.producers.get(&stamp.id).copied();
            if let Some(highest) = check_producer(known, &stamp).map_err(ExternalError::Producer)? {
                return Ok(Accepted { stored: false, epoch: stamp.epoch, seq: highest });
            }
            if let Some((reason, _)) = &open.ended {
                return Err(ExternalError::Ended(reason.clone()));
            }
            open.producers.insert(stamp.id.clone(), (stamp.epoch, stamp.seq));
            open.heard = Instant::now();
            if lines.iter().any(|line| matches!(line, Line::Finish(_))) {
                open.ended = Some(("the producer finished it".into(), Instant::now()));
            }
            let (ack, acked) = oneshot::channel();
            let batch = ProviderEvent::Batch(lines.into_iter().map(ProviderEvent::from).collect(), Committed(ack));
            (open.events.clone(), (acked, batch))
        };
        let (acked, batch) = ack;
        if events.send(batch).await.is_err() {
            return Err(ExternalError::NotStored);
        }
        acked.await.map_err(|_| ExternalError::NotStored)?;
        Ok(Accepted { stored: true, epoch: stamp.epoch, seq: stamp.seq })
    }
}

impl From<Line> for ProviderEvent {
    fn from(line: Line) -> Self {
        match line {
            Line::Item(item) => ProviderEvent::Item(item),
            Line::Finish(Finish { status, error, exit_code, .. }) => ProviderEvent::Exit {
                status: match status {
                    FinishStatus::Complete => Outcome::Complete,
                    FinishStatus::Failed => Outcome::Failed,
                },
                exit_code,
                error,
            },
        }
    }
}

/// A batch: a JSON array of events, at most one `finish`, and that one last.
pub fn parse_batch(body: &[u8]) -> Result<Vec<Line>, ExternalError> {
    let bad = |message: String| ExternalError::Bad(message);
    let values: Vec<serde_json::Value> =
        serde_json::from_slice(body).map_err(|error| bad(format!("the body is a JSON array of events: {error}")))?;
    if values.is_empty() || values.len() > MAX_EVENTS_PER_APPEND {
        return Err(bad(format!("an append carries 1 to {MAX_EVENTS_PER_APPEND} events")));
    }
    let count = values.len();
    let mut lines = Vec::with_capacity(count);
    for (index, value) in values.into_iter().enumerate() {
        let line = if value.get("type").and_then(serde_json::Value::as_str) == Some("finish") {
            serde_json::from_value(value).map(Line::Finish)
        } else {
            serde_json::from_value(value).map(Line::Item)
        }
        .map_err(|error| bad(format!("event {index} is not one of the command provider's events: {error}")))?;
        if matches!(line, Line::Finish(_)) && index + 1 != count {
            return Err(bad("finish is the last event of its append".into()));
        }
        lines.push(line);
    }
    Ok(lines)
}

/// The provider: each run waits for its producer.
pub struct ExternalProvider {
    runs: Arc<ExternalRuns>,
    lease: Duration,
}

impl ExternalProvider {
    /// Runs registered in `runs`, failed after `lease` of silence.
    pub fn new(runs: Arc<ExternalRuns>, lease: Duration) -> Self {
        Self { runs, lease }
    }
}

impl Provider for ExternalProvider {
    fn start(&self, request: RunRequest) -> ProviderRun {
        // One append in flight (each run's turn lock) and the watchdog's exit.
        let (events, received) = mpsc::channel(2);
        let cancel = CancellationToken::new();
        {
            let mut runs = self.runs.lock();
            runs.retain(|_, open| open.ended.as_ref().is_none_or(|(_, at)| at.elapsed() < ENDED_KEPT));
            runs.insert(
                request.run_id.clone(),
                Open {
                    session_id: request.session_id,
                    turn: Arc::default(),
                    events: events.clone(),
                    producers: HashMap::new(),
                    heard: Instant::now(),
                    ended: None,
                },
            );
        }
        let (runs, lease, run_id, stopped) = (Arc::clone(&self.runs), self.lease, request.run_id, cancel.clone());
        tokio::spawn(async move {
            loop {
                let heard = runs.lock().get(&run_id).map(|open| open.heard);
                let Some(heard) = heard else { return };
                tokio::select! {
                    _ = stopped.cancelled() => {
                        runs.end(&run_id, "it was aborted or the server stopped it");
                        return;
                    }
                    _ = tokio::time::sleep_until(heard + lease) => {
                        let silent = runs.lock().get(&run_id).is_some_and(|open| open.heard == heard);
                        if silent {
                            let error = format!("the producer sent nothing for {} ms", lease.as_millis());
                            runs.end(&run_id, &error);
                            let exit = ProviderEvent::Exit { status: Outcome::Failed, exit_code: None, error: Some(error) };
                            let _ = events.send(exit).await;
                            return;
                        }
                    }
                }
            }
        });
        ProviderRun { events: received, cancel }
    }

    fn kind(&self) -> &'static str {
        "external"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The driver takes what is queued when it looks: an append sent event
    /// by event could be split, its `finish` ending the run with its
    /// answer still queued behind it (a 503 for a stored append).
    #[tokio::test]
    async fn an_append_reaches_its_driver_as_one_batch_with_its_answer() {
        let runs = Arc::new(ExternalRuns::default());
        let provider = ExternalProvider::new(Arc::clone(&runs), Duration::from_secs(60));
        let request = RunRequest {
            session_id: "s".into(),
            run_id: "run-1".into(),
            prompt: "hi".into(),
            continuation: None,
            history: Vec::new(),
        };
        let mut run = provider.start(request);
        let stamp = ProducerStamp { id: "agent".into(), epoch: 0, seq: 0 };
        let body =
            br#"[{"type":"text","content":"a"},{"type":"text","content":"b"},{"type":"finish","status":"complete"}]"#;
        let append = tokio::spawn(async move { runs.append("s", "run-1", stamp, body).await });
        let Some(ProviderEvent::Batch(events, answer)) = run.events.recv().await else {
            panic!("the append came in pieces");
        };
        assert!(matches!(
            events.as_slice(),
            [ProviderEvent::Item(_), ProviderEvent::Item(_), ProviderEvent::Exit { .. }]
        ));
        answer.stored();
        assert_eq!(append.await.expect("append").expect("stored"), Accepted { stored: true, epoch: 0, seq: 0 });
    }

    #[test]
    fn a_batch_is_events_with_at_most_a_final_finish() {
        let lines = parse_batch(br#"[{"type":"text","content":"hi"},{"type":"finish","status":"complete"}]"#).unwrap();
        assert!(matches!(lines.as_slice(), [Line::Item(_), Line::Finish(_)]));
        for bad in [
            &br#"[]"#[..],
            br#"{"type":"text","content":"hi"}"#,
            br#"[{"type":"finish","status":"complete"},{"type":"text","content":"late"}]"#,
            br#"[{"type":"telepathy"}]"#,
            br#"[{"type":"finish","status":"maybe"}]"#,
        ] {
            assert!(matches!(parse_batch(bad), Err(ExternalError::Bad(_))), "{}", String::from_utf8_lossy(bad));
        }
    }
}
