//! Agents that run as one process per run: the `command` provider (the JSON
//! lines of docs/providers.md), Claude Code and Codex. One runner serves all
//! three:
//!
//! - the process starts in a process group of its own, so an abort kills the
//!   agent and every tool it started;
//! - the prompt goes to stdin from a task of its own while stdout is read, so
//!   a child that never reads its stdin blocks nothing, and cancel still wins;
//! - stdout goes through the format's stream-core `Decoder`, whose line bound
//!   holds while reading (a runaway line is dropped as it streams);
//! - the last lines of stderr are kept for the error of a failed exit.
//!
//! The run fails when the output said so (an error result, a failed turn) or
//! the process exited non-zero; it completes on exit 0.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use stream_core::agent::{Decoder, Format};
use stream_core::message::Outcome;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Provider, ProviderEvent, ProviderRun, RunRequest, channel};

/// Longest stdout line accepted; a longer one is reported and skipped.
pub const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Longest prompt also given to `command` as `STREAM_PROMPT`.
pub const MAX_PROMPT_ENV_BYTES: usize = 32 * 1024;
/// How long stderr may stay open after the agent exited.
const STDERR_GRACE: std::time::Duration = std::time::Duration::from_secs(2);
/// How much of stderr is kept for the error of a failed exit.
const STDERR_TAIL_BYTES: usize = 2 * 1024;

/// Which agent CLI, and so which arguments and output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cli {
    /// Any program printing the `command` JSON lines.
    Command,
    /// `claude -p --output-format stream-json --verbose --include-partial-messages`.
    ClaudeCode,
    /// `codex exec --json`.
    Codex,
}

impl Cli {
    fn format(self) -> Format {
        match self {
            Self::Command => Format::Command,
            Self::ClaudeCode => Format::ClaudeCode,
            Self::Codex => Format::Codex,
        }
    }

    /// The program looked for on `PATH`, when none is given.
    pub fn executable(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::ClaudeCode => "claude",
            Self::Codex => "codex",
        }
    }

    /// The provider kind.
    pub fn name(self) -> &'static str {
        match self {
            Self::Command => "command",
            Self::ClaudeCode => "claude-code",
            Self::Codex => "codex",
        }
    }
}

/// Runs `program` once per run.
#[derive(Debug, Clone)]
pub struct ProcessProvider {
    cli: Cli,
    program: PathBuf,
    args: Vec<String>,
}

impl ProcessProvider {
    /// A provider that runs `program` as `cli`, with `args` added to the
    /// arguments the CLI needs.
    pub fn new(cli: Cli, program: impl Into<PathBuf>, args: Vec<String>) -> Self {
        Self { cli, program: program.into(), args }
    }

    /// The arguments of one run; the prompt always goes to stdin (no length
    /// limit, and not visible in the process list).
    pub fn arguments(&self, request: &RunRequest) -> Vec<String> {
        let owned = |args: &[&str]| args.iter().map(|arg| (*arg).to_owned()).collect::<Vec<String>>();
        let mut args = match self.cli {
            Cli::Command => Vec::new(),
            Cli::ClaudeCode => {
                owned(&["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages"])
            }
            Cli::Codex => owned(&["exec", "--json"]),
        };
        args.extend(self.args.iter().cloned());
        match (self.cli, &request.continuation) {
            (Cli::ClaudeCode, Some(id)) => args.extend(["--resume".to_owned(), id.clone()]),
            (Cli::Codex, Some(id)) => args.extend(["resume".to_owned(), id.clone()]),
            _ => {}
        }
        if self.cli == Cli::Codex {
            // `-` reads the prompt from stdin.
            args.push("-".into());
        }
        args
    }
}

impl Provider for ProcessProvider {
    fn start(&self, request: RunRequest) -> ProviderRun {
        let (sender, run) = channel();
        let mut command = Command::new(&self.program);
        command
            .args(self.arguments(&request))
            .env("STREAM_SESSION_ID", &request.session_id)
            .env("STREAM_RUN_ID", &request.run_id)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        // Linux refuses an environment string over 128 KiB: a longer prompt is on stdin only.
        if self.cli == Cli::Command && request.prompt.len() <= MAX_PROMPT_ENV_BYTES {
            command.env("STREAM_PROMPT", &request.prompt);
        }
        #[cfg(unix)]
        command.process_group(0);
        let process =
            Process { program: self.program.clone(), format: self.cli.format(), run_id: request.run_id.clone() };
        tokio::spawn(process.drive(command, request.prompt, sender, run.cancel.clone()));
        run
    }

    fn kind(&self) -> &'static str {
        self.cli.name()
    }
}

struct Process {
    program: PathBuf,
    format: Format,
    run_id: String,
}

impl Process {
    async fn drive(
        self,
        mut command: Command,
        prompt: String,
        events: mpsc::Sender<ProviderEvent>,
        cancel: CancellationToken,
    ) {
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(error) => {
                let error = format!("could not start {}: {error}", self.program.display());
                let _ = events
                    .send(ProviderEvent::Exit { status: Outcome::Failed, exit_code: None, error: Some(error) })
                    .await;
                return;
            }
        };
        // The group's id is the child's pid (`process_group(0)`), kept for after it is reaped.
        let group = child.id();
        let writer = child.stdin.take().map(|mut stdin| {
            tokio::spawn(async move {
                // A child that does not read its stdin is fine: the error is ignored.
                let _ = stdin.write_all(prompt.as_bytes()).await;
            })
        });
        let stderr = child.stderr.take().map(|stderr| tokio::spawn(tail(stderr)));
        let ended = self.read(&mut child, &events, &cancel).await;
        if let Some(writer) = writer {
            writer.abort();
        }
        let Some(exit) = ended else {
            kill_group(&mut child).await;
            return;
        };
        let status = tokio::select! {
            _ = cancel.cancelled() => {
                kill_group(&mut child).await;
                return;
            }
            status = child.wait() => status,
        };
        let stderr = match stderr {
            // A tool the agent left running may hold stderr open: then it is
            // killed with the rest of the group, and the tail is what came.
            Some(mut task) => match tokio::time::timeout(STDERR_GRACE, &mut task).await {
                Ok(tail) => tail.unwrap_or_default(),
                Err(_) => {
                    signal_group(group);
                    // Killed, the holders close stderr at once; the bound is for a holder outside the group.
                    tokio::time::timeout(STDERR_GRACE, task).await.ok().and_then(Result::ok).unwrap_or_default()
                }
            },
            None => String::new(),
        };
        let _ = events.send(self.exit(status, exit, &stderr)).await;
    }

    /// Reads stdout to its end; `None` when cancelled or nobody listens.
    async fn read(
        &self,
        child: &mut Child,
        events: &mpsc::Sender<ProviderEvent>,
        cancel: &CancellationToken,
    ) -> Option<Option<String>> {
        let mut stdout = child.stdout.take()?;
        let mut decoder = Decoder::for_run(self.format, MAX_LINE_BYTES, &self.run_id);
        let mut buffer = vec![0; 16 * 1024];
        let mut items = Vec::new();
        loop {
            let read = tokio::select! {
                _ = cancel.cancelled() => return None,
                read = stdout.read(&mut buffer) => read,
            };
            match read {
                Ok(0) | Err(_) => break,
                Ok(read) => decoder.push(&buffer[..read], &mut items),
            }
            for item in items.drain(..) {
                if events.send(ProviderEvent::Item(item)).await.is_err() {
                    return None;
                }
            }
        }
        decoder.finish(&mut items);
        for item in items {
            if events.send(ProviderEvent::Item(item)).await.is_err() {
                return None;
            }
        }
        Some(decoder.verdict().failed)
    }

    fn exit(
        &self,
        status: std::io::Result<std::process::ExitStatus>,
        failed: Option<String>,
        stderr: &str,
    ) -> ProviderEvent {
        let exit_code = status.as_ref().ok().and_then(std::process::ExitStatus::code);
        let said = |what: String| {
            let name = self
                .program
                .file_name()
                .map_or_else(|| self.program.display().to_string(), |name| name.to_string_lossy().into_owned());
            let stderr = stderr.trim();
            if stderr.is_empty() { format!("{name} {what}") } else { format!("{name} {what}: {stderr}") }
        };
        let (status, error) = match (status, failed) {
            // The output said why; that error is already in the session.
            (_, Some(_)) => (Outcome::Failed, None),
            (Ok(status), None) if status.success() => (Outcome::Complete, None),
            (Ok(status), None) => match status.code() {
                Some(code) => (Outcome::Failed, Some(said(format!("exited with {code}")))),
                None => (Outcome::Failed, Some(said("was killed by a signal".into()))),
            },
            (Err(error), None) => (Outcome::Failed, Some(said(format!("could not be waited for: {error}")))),
        };
        ProviderEvent::Exit { status, exit_code, error }
    }
}

/// The last lines of a stream, at most [`STDERR_TAIL_BYTES`].
async fn tail(mut stream: impl AsyncRead + Unpin) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer).await {
        if read == 0 {
            break;
        }
        kept.extend_from_slice(&buffer[..read]);
        if kept.len() > STDERR_TAIL_BYTES {
            kept.drain(..kept.len() - STDERR_TAIL_BYTES);
        }
    }
    String::from_utf8_lossy(&kept).into_owned()
}

/// Kills the child's whole process group (the agent and what it started).
async fn kill_group(child: &mut Child) {
    signal_group(child.id());
    let _ = child.kill().await;
}

/// Sends SIGKILL to the process group `group` (a child's pid, its group leader).
fn signal_group(group: Option<u32>) {
    #[cfg(unix)]
    if let Some(pid) = group {
        use nix::sys::signal::{Signal, killpg};
        use nix::unistd::Pid;
        // Linux gives no new process a pid still in use as a group id, so a
        // group outliving its reaped leader is still this one.
        let _ = killpg(Pid::from_raw(pid as i32), Signal::SIGKILL);
    }
    #[cfg(not(unix))]
    let _ = group;
}

/// The program `name` on `PATH`, if there is one.
pub fn find_on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join(name)).find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata().is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use stream_core::agent::AgentEvent;

    use super::*;

    fn text(content: &str) -> ProviderEvent {
        AgentEvent::Text { content: content.into() }.into()
    }

    async fn collect(provider: &ProcessProvider, request: RunRequest) -> Vec<ProviderEvent> {
        let mut run = provider.start(request);
        let mut events = Vec::new();
        while let Some(event) = run.events.recv().await {
            events.push(event);
        }
        events
    }

    fn request(prompt: &str) -> RunRequest {
        RunRequest { session_id: "s".into(), run_id: "r".into(), prompt: prompt.into(), ..RunRequest::default() }
    }

    fn shell(script: &str) -> ProcessProvider {
        ProcessProvider::new(Cli::Command, "sh", vec!["-c".into(), script.into()])
    }

    #[tokio::test]
    async fn json_lines_become_events_and_exit_zero_completes() {
        let provider = shell(
            r#"read prompt; echo "{\"type\":\"text\",\"content\":\"you said $prompt\"}"; echo '{"type":"usage","tokens_used":3}'"#,
        );
        let events = collect(&provider, request("hello\n")).await;
        assert_eq!(events[0], text("you said hello"));
        assert!(
            matches!(&events[1], ProviderEvent::Item(item) if matches!(&item.event, AgentEvent::Usage(usage) if usage.tokens_used == Some(3)))
        );
        assert_eq!(events[2], ProviderEvent::Exit { status: Outcome::Complete, exit_code: Some(0), error: None });
        assert_eq!(events.len(), 3);
    }

    #[tokio::test]
    async fn an_unreadable_line_is_shown_and_fails_the_run_keeping_what_came_around_it() {
        let provider =
            shell(r#"echo '{"type":"text","content":"a"}'; echo 'not json'; echo '{"type":"text","content":"b"}'"#);
        let events = collect(&provider, request("")).await;
        assert_eq!(events[0], text("a"));
        assert!(
            matches!(&events[1], ProviderEvent::Item(item) if matches!(&item.event, AgentEvent::Error { error } if error.contains("not an event")))
        );
        assert_eq!(events[2], text("b"));
        assert_eq!(events[3], ProviderEvent::Exit { status: Outcome::Failed, exit_code: Some(0), error: None });
    }

    #[tokio::test]
    async fn a_non_zero_exit_fails_with_the_tail_of_stderr_and_a_missing_program_is_named() {
        let events = collect(&shell("echo 'bad credentials' >&2; exit 3"), request("")).await;
        assert_eq!(
            events,
            vec![ProviderEvent::Exit {
                status: Outcome::Failed,
                exit_code: Some(3),
                error: Some("sh exited with 3: bad credentials".into()),
            }]
        );
        let events = collect(&ProcessProvider::new(Cli::Command, "/nonexistent/agent", vec![]), request("")).await;
        assert!(
            matches!(events.as_slice(), [ProviderEvent::Exit { status: Outcome::Failed, error: Some(error), .. }] if error.contains("/nonexistent/agent"))
        );
    }

    #[tokio::test]
    async fn a_big_prompt_to_a_child_that_never_reads_stdin_neither_blocks_nor_survives_cancel() {
        let provider = shell("echo '{\"type\":\"text\",\"content\":\"a\"}'; sleep 30");
        let mut run = provider.start(request(&"x".repeat(256 * 1024)));
        assert_eq!(run.events.recv().await, Some(text("a")));
        let started = std::time::Instant::now();
        run.cancel.cancel();
        assert_eq!(run.events.recv().await, None);
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[tokio::test]
    async fn cancel_kills_the_whole_process_group() {
        let dir = std::env::temp_dir().join(format!("stream-group-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let pid_file = dir.join("grandchild.pid");
        // The agent starts a tool that outlives it unless its group is killed.
        let script = format!(
            "sleep 60 & echo $! > {pid}; echo '{{\"type\":\"text\",\"content\":\"started\"}}'; wait",
            pid = pid_file.display()
        );
        let mut run = shell(&script).start(request(""));
        assert_eq!(run.events.recv().await, Some(text("started")));
        let grandchild: i32 = std::fs::read_to_string(&pid_file).unwrap().trim().parse().unwrap();
        run.cancel.cancel();
        assert_eq!(run.events.recv().await, None);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        // A zombie (killed, not yet reaped by its parent) counts as gone.
        let alive = || {
            let status = std::fs::read_to_string(format!("/proc/{grandchild}/status")).unwrap_or_default();
            !status.is_empty() && !status.contains("State:\tZ")
        };
        while alive() {
            assert!(std::time::Instant::now() < deadline, "the tool the agent started is still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn an_agent_that_exits_with_a_tool_still_holding_stderr_ends_and_the_tool_is_killed() {
        let provider = shell("echo '{\"type\":\"text\",\"content\":\"done\"}'; (sleep 60 >&2 &) ; exit 0");
        let started = std::time::Instant::now();
        let events = collect(&provider, request("")).await;
        assert_eq!(
            events.last(),
            Some(&ProviderEvent::Exit { status: Outcome::Complete, exit_code: Some(0), error: None })
        );
        assert!(started.elapsed() < Duration::from_secs(10), "the run waited for the tool");
    }

    #[tokio::test]
    async fn a_runaway_line_is_dropped_while_it_streams() {
        let script = format!(
            "head -c {} /dev/zero | tr '\\0' x; echo; echo '{{\"type\":\"text\",\"content\":\"after\"}}'",
            MAX_LINE_BYTES + 10
        );
        let events = collect(&shell(&script), request("")).await;
        assert!(
            matches!(&events[0], ProviderEvent::Item(item) if matches!(&item.event, AgentEvent::Error { error } if error.contains("over")))
        );
        assert_eq!(events[1], text("after"));
    }

    #[test]
    fn the_clis_get_their_streaming_flags_and_resume_the_stored_conversation() {
        let claude = ProcessProvider::new(Cli::ClaudeCode, "claude", vec!["--model".into(), "opus".into()]);
        let mut second = request("again");
        assert_eq!(
            claude.arguments(&second),
            ["-p", "--output-format", "stream-json", "--verbose", "--include-partial-messages", "--model", "opus"]
        );
        second.continuation = Some("cli-session".into());
        assert_eq!(claude.arguments(&second)[7..], ["--resume", "cli-session"]);
        let codex = ProcessProvider::new(Cli::Codex, "codex", vec!["--skip-git-repo-check".into()]);
        assert_eq!(codex.arguments(&second), ["exec", "--json", "--skip-git-repo-check", "resume", "cli-session", "-"]);
    }
}
