//! The `demo` provider: a deterministic scripted agent. For a prompt it
//! streams a short preamble, calls a `search` tool and gets its result, then
//! streams a reply word by word and reports usage. The same prompt always
//! gives the same events, which the demo, the tests and the benchmarks use.

use std::time::Duration;

use serde_json::json;
use stream_core::message::{Outcome, Usage};

use stream_core::agent::AgentEvent;

use super::{Provider, ProviderEvent, ProviderRun, RunRequest, channel};
use crate::probe::unix_micros;

/// The model name the demo reports.
const DEMO_MODEL: &str = "demo-1";

/// Text beats the demo's tool call takes.
const TOOL_BEATS: u32 = 10;

const WORDS: [&str; 16] = [
    "streaming",
    "frames",
    "arrive",
    "in",
    "order,",
    "each",
    "one",
    "applied",
    "once;",
    "a",
    "reconnect",
    "resumes",
    "from",
    "the",
    "cursor",
    "cleanly.",
];

/// How the demo agent behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoConfig {
    /// Pause between text deltas; zero streams at full speed.
    pub delta_interval: Duration,
    /// Words in the reply after the tool call.
    pub reply_words: usize,
    /// Every this many events, a `status` frame whose metadata carries the
    /// time it was sent (`probe_us`, µs since the Unix epoch) and the time
    /// the pacing meant it to go (`due_us`): the benchmark's in-band probe
    /// of publish→receive latency. 0: none.
    pub probe_every: usize,
}

impl Default for DemoConfig {
    fn default() -> Self {
        Self { delta_interval: Duration::from_millis(30), reply_words: 60, probe_every: 0 }
    }
}

/// A usage event whose metadata is the time now and the time it was due,
/// for the latency probe.
fn probe(due_us: u64) -> AgentEvent {
    let metadata = json!({ "probe_us": unix_micros(), "due_us": due_us });
    AgentEvent::Usage(Usage { metadata: Some(metadata), ..Usage::default() })
}

/// The demo provider.
#[derive(Debug, Clone, Default)]
pub struct DemoProvider {
    config: DemoConfig,
}

impl DemoProvider {
    /// A demo provider with these settings.
    pub fn new(config: DemoConfig) -> Self {
        Self { config }
    }
}

/// The events of the script for one request, without the final `Exit`.
pub fn script(request: &RunRequest, reply_words: usize) -> Vec<AgentEvent> {
    let text = |content: String| AgentEvent::Text { content };
    let call_id = format!("{}-search", request.run_id);
    let mut events: Vec<AgentEvent> = ["Looking ", "into: ", &format!("\"{}\". ", request.prompt)]
        .iter()
        .map(|part| text(part.to_string()))
        .collect();
    events.push(AgentEvent::ToolCall {
        id: call_id.clone(),
        name: "search".into(),
        input: json!({ "query": request.prompt }),
    });
    events.push(AgentEvent::ToolResult {
        tool_call_id: call_id,
        output: json!({ "hits": 3, "top": format!("notes about {}", request.prompt) }),
        truncated: false,
        error: None,
    });
    events.extend((0..reply_words).map(|i| text(format!("{} ", WORDS[i % WORDS.len()]))));
    events.push(AgentEvent::Usage(Usage {
        tokens_used: Some(reply_words as u64 + 12),
        ctx_used: Some(reply_words as u64 * 4 + 100),
        ctx_max: Some(200_000),
        model: Some(DEMO_MODEL.into()),
        ..Usage::default()
    }));
    events
}

impl Provider for DemoProvider {
    fn start(&self, request: RunRequest) -> ProviderRun {
        let (sender, run) = channel();
        let stop = run.cancel.clone();
        let config = self.config;
        tokio::spawn(async move {
            // When the next event is meant to go: the end of the pause before it.
            let mut due_us = unix_micros();
            for (index, event) in script(&request, config.reply_words).into_iter().enumerate() {
                if config.probe_every > 0 && index % config.probe_every == 0 {
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        sent = sender.send(probe(due_us).into()) => if sent.is_err() { return },
                    }
                }
                // Text comes at the configured pace; the tool "works" for ten
                // beats, so its card shows a running state and a duration.
                let pause = match event {
                    AgentEvent::Text { .. } => config.delta_interval,
                    AgentEvent::ToolCall { .. } => config.delta_interval * TOOL_BEATS,
                    _ => Duration::ZERO,
                };
                tokio::select! {
                    _ = stop.cancelled() => return,
                    sent = sender.send(event.into()) => if sent.is_err() { return },
                }
                if !pause.is_zero() {
                    due_us = unix_micros() + pause.as_micros() as u64;
                    tokio::select! {
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(pause) => {}
                    }
                }
            }
            let _ = sender.send(ProviderEvent::Exit { status: Outcome::Complete, exit_code: None, error: None }).await;
        });
        run
    }

    fn kind(&self) -> &'static str {
        "demo"
    }

    fn model(&self) -> Option<String> {
        Some(DEMO_MODEL.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request() -> RunRequest {
        RunRequest { session_id: "s".into(), run_id: "r1".into(), prompt: "hi".into(), ..RunRequest::default() }
    }

    #[test]
    fn the_script_is_deterministic_and_calls_one_tool() {
        let events = script(&request(), 10);
        assert_eq!(events, script(&request(), 10));
        let calls = events.iter().filter(|event| matches!(event, AgentEvent::ToolCall { .. })).count();
        let texts = events.iter().filter(|event| matches!(event, AgentEvent::Text { .. })).count();
        assert_eq!((calls, texts), (1, 13));
    }

    #[tokio::test]
    async fn probes_carry_their_send_and_due_times_every_n_events() {
        let delta = Duration::from_millis(2);
        let config = DemoConfig { delta_interval: delta, reply_words: 10, probe_every: 4 };
        let before = unix_micros();
        let mut run = DemoProvider::new(config).start(request());
        let mut probes = Vec::new();
        while let Some(event) = run.events.recv().await {
            if let ProviderEvent::Item(item) = event
                && let AgentEvent::Usage(Usage { metadata: Some(metadata), .. }) = item.event
            {
                let time = |key: &str| metadata[key].as_u64().expect("a time");
                probes.push((time("due_us"), time("probe_us")));
            }
        }
        // The script has 16 events: a probe goes before events 0, 4, 8 and 12.
        assert_eq!(probes.len(), 4);
        assert!(probes.iter().all(|&(due, sent)| before <= due && due <= sent) && probes.is_sorted());
        // Events 4, 8 and 12 follow a pause (a text's or the tool's): each
        // was due a pause or more after the probe before it was sent.
        let pause_us = delta.as_micros() as u64;
        assert!(probes.windows(2).all(|pair| pair[1].0 >= pair[0].1 + pause_us), "{probes:?}");
    }

    #[tokio::test]
    async fn a_run_ends_with_exit_and_a_cancel_stops_it() {
        let provider = DemoProvider::new(DemoConfig { delta_interval: Duration::ZERO, reply_words: 5, probe_every: 0 });
        let mut run = provider.start(request());
        let mut last = None;
        while let Some(event) = run.events.recv().await {
            last = Some(event);
        }
        assert_eq!(last, Some(ProviderEvent::Exit { status: Outcome::Complete, exit_code: None, error: None }));

        let provider =
            DemoProvider::new(DemoConfig { delta_interval: Duration::from_secs(60), reply_words: 5, probe_every: 0 });
        let mut run = provider.start(request());
        run.events.recv().await.unwrap();
        run.cancel.cancel();
        assert_eq!(run.events.recv().await, None);
    }
}
