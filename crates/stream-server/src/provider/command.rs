//! The `command` provider: runs a configured executable per run and reads
//! JSON lines from its stdout, so any agent can be wrapped with a small script.
//!
//! The prompt is written to the process's stdin (then stdin is closed), and
//! is also in the environment as `STREAM_PROMPT`, with `STREAM_SESSION_ID` and
//! `STREAM_RUN_ID`. Each stdout line is one event (see `docs/providers.md`):
//! `{"type":"text","content":"..."}`, `{"type":"tool_call","id","name","input"}`,
//! `{"type":"tool_result","tool_call_id","output","truncated","error"}`,
//! `{"type":"usage","tokens_used",...}`, `{"type":"error","error":"..."}`.
//! Exit code 0 ends the run `complete`; anything else, a crash included, ends
//! it `failed`. An abort kills the process.

use std::path::PathBuf;
use std::process::Stdio;

use stream_core::message::Outcome;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Provider, ProviderEvent, ProviderRun, RunRequest};

/// Longest stdout line accepted; a longer one is reported and skipped.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;

/// Runs `program` with `args` for each run.
#[derive(Debug, Clone)]
pub struct CommandProvider {
    program: PathBuf,
    args: Vec<String>,
}

impl CommandProvider {
    /// A provider that runs `program args...`.
    pub fn new(program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self { program: program.into(), args }
    }
}

impl Provider for CommandProvider {
    fn start(&self, request: RunRequest) -> ProviderRun {
        let (sender, events) = mpsc::channel(256);
        let cancel = CancellationToken::new();
        let mut command = Command::new(&self.program);
        command
            .args(&self.args)
            .env("STREAM_PROMPT", &request.prompt)
            .env("STREAM_SESSION_ID", &request.session_id)
            .env("STREAM_RUN_ID", &request.run_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        tokio::spawn(drive(command, request.prompt, sender, cancel.clone()));
        ProviderRun { events, cancel }
    }
}

async fn drive(mut command: Command, prompt: String, events: mpsc::Sender<ProviderEvent>, cancel: CancellationToken) {
    let exit = |status, exit_code| ProviderEvent::Exit { status, exit_code };
    let mut child = match command.spawn() {
        Ok(child) => child,
        Err(error) => {
            let _ = events.send(ProviderEvent::Error { error: format!("could not start the provider: {error}") }).await;
            let _ = events.send(exit(Outcome::Failed, None)).await;
            return;
        }
    };
    if let Some(mut stdin) = child.stdin.take() {
        // A process that does not read its stdin is fine: the write error is ignored.
        let _ = stdin.write_all(prompt.as_bytes()).await;
    }
    let Some(stdout) = child.stdout.take() else {
        let _ = events.send(exit(Outcome::Failed, None)).await;
        return;
    };
    let mut lines = BufReader::new(stdout);
    let mut line = String::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let read = tokio::select! {
            _ = cancel.cancelled() => {
                let _ = child.kill().await;
                return;
            }
            read = lines.read_line(&mut line) => read,
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        number += 1;
        let text = line.trim();
        if text.is_empty() {
            continue;
        }
        let event = if text.len() > MAX_LINE_BYTES {
            ProviderEvent::Error { error: format!("provider line {number} is over {MAX_LINE_BYTES} bytes; skipped") }
        } else {
            serde_json::from_str(text).unwrap_or_else(|error| ProviderEvent::Error {
                error: format!("provider line {number} is not an event: {error}"),
            })
        };
        if events.send(event).await.is_err() {
            let _ = child.kill().await;
            return;
        }
    }
    let status = tokio::select! {
        _ = cancel.cancelled() => {
            let _ = child.kill().await;
            return;
        }
        status = child.wait() => status,
    };
    let event = match status {
        Ok(status) if status.success() => exit(Outcome::Complete, Some(0)),
        Ok(status) => exit(Outcome::Failed, status.code()),
        Err(_) => exit(Outcome::Failed, None),
    };
    let _ = events.send(event).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn collect(provider: &CommandProvider) -> Vec<ProviderEvent> {
        let mut run = provider.start(RunRequest { session_id: "s".into(), run_id: "r".into(), prompt: "hello".into() });
        let mut events = Vec::new();
        while let Some(event) = run.events.recv().await {
            events.push(event);
        }
        events
    }

    fn shell(script: &str) -> CommandProvider {
        CommandProvider::new("sh", vec!["-c".into(), script.into()])
    }

    #[tokio::test]
    async fn json_lines_become_events_and_exit_zero_completes() {
        let provider = shell(
            r#"read prompt; echo "{\"type\":\"text\",\"content\":\"you said $prompt\"}"; echo 'not json'; echo '{"type":"usage","tokens_used":3}'"#,
        );
        let events = collect(&provider).await;
        assert_eq!(events[0], ProviderEvent::Text { content: "you said hello".into() });
        assert!(matches!(&events[1], ProviderEvent::Error { error } if error.contains("line 2")));
        assert!(matches!(&events[2], ProviderEvent::Usage(usage) if usage.tokens_used == Some(3)));
        assert_eq!(events[3], ProviderEvent::Exit { status: Outcome::Complete, exit_code: Some(0) });
        assert_eq!(events.len(), 4);
    }

    #[tokio::test]
    async fn a_non_zero_exit_or_a_missing_program_fails() {
        let events = collect(&shell("exit 3")).await;
        assert_eq!(events, vec![ProviderEvent::Exit { status: Outcome::Failed, exit_code: Some(3) }]);
        let events = collect(&CommandProvider::new("/nonexistent/agent", vec![])).await;
        assert!(matches!(events.last(), Some(ProviderEvent::Exit { status: Outcome::Failed, .. })));
    }

    #[tokio::test]
    async fn cancel_kills_the_process() {
        let provider = shell("echo '{\"type\":\"text\",\"content\":\"a\"}'; sleep 30");
        let mut run = provider.start(RunRequest { session_id: "s".into(), run_id: "r".into(), prompt: String::new() });
        assert!(run.events.recv().await.is_some());
        let started = std::time::Instant::now();
        run.cancel.cancel();
        assert_eq!(run.events.recv().await, None);
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
    }
}
