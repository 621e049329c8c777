//! The providers end to end, through a real server: fake CLIs that replay
//! this repository's own small transcripts and record the arguments they
//! were given (conversation continuity, failures, a missing binary), and an
//! in-process upstream that replays SSE in random chunks and fails in every
//! way an API does (401, 429, 500, a cut, an `error` event after 200).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use common::*;
use serde_json::{Value, json};
use stream_core::message::{Outcome, Role};
use stream_core::{Message, RunEvent};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A fake CLI: appends its arguments to `args`, reads the prompt, prints `fixture`, then runs `tail`.
fn fake_cli(dir: &Path, name: &str, fixture: &Path, tail: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{args}'\ncat > /dev/null\ncat '{fixture}'\n{tail}\n",
        args = dir.join(format!("{name}.args")).display(),
        fixture = fixture.display(),
    );
    std::fs::write(&path, script).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn recorded_args(dir: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(dir.join(format!("{name}.args"))).unwrap_or_default().lines().map(str::to_owned).collect()
}

async fn send_with(base: &str, session: &str, client_message_id: &str, content: &str, provider: &str) -> u16 {
    let body = json!({ "client_message_id": client_message_id, "content": content, "provider": provider });
    let response =
        reqwest::Client::new().post(format!("{base}/v1/sessions/{session}/messages")).json(&body).send().await.unwrap();
    response.status().as_u16()
}

/// Sends on a fresh connection and returns how the run finished and the session's messages.
async fn run_once(
    server: &TestServer,
    session: &str,
    id: &str,
    content: &str,
    provider: &str,
) -> (Outcome, Vec<Message>) {
    let mut client = Client::connect(server.addr, session).await;
    client.pump().await.expect("subscribed");
    client.pump().await.expect("snapshot");
    let already = client.finished.len();
    assert_eq!(send_with(&server.url(""), session, id, content, provider).await, 202);
    client.until_finished(already + 1).await;
    let Some(RunEvent::Finished { status, .. }) = client.finished.last() else { unreachable!() };
    let status = *status;
    wait_until_idle(&server.url(""), session).await;
    let snapshot = snapshot(&server.url(""), session).await;
    assert_eq!(client.engine.state().messages(), snapshot.messages.as_slice(), "the client holds the server's session");
    (status, snapshot.messages)
}

fn of_role(messages: &[Message], role: Role) -> Vec<&str> {
    messages.iter().filter(|m| m.role == role).map(|m| m.content.as_str()).collect()
}

fn errors(messages: &[Message]) -> Vec<&str> {
    messages.iter().filter_map(|m| m.error.as_deref()).collect()
}

#[tokio::test]
async fn claude_code_streams_thinking_tools_and_cost_and_the_next_run_resumes_its_session() {
    let bin = TempDir::new("fake-claude");
    let claude = fake_cli(&bin.0, "claude", &fixture("claude-code-run.jsonl"), "");
    let program = claude.clone();
    let server = TestServer::start(move |config| config.claude_command = Some(program)).await;
    let (status, messages) = run_once(&server, "cc", "c1", "what is here?", "claude-code").await;
    assert_eq!(status, Outcome::Complete);
    assert_eq!(of_role(&messages, Role::Reasoning), ["List the files first."]);
    assert_eq!(of_role(&messages, Role::Assistant), ["Let me look.", "Two entries."]);
    let call = &messages.iter().find(|m| !m.tool_calls.is_empty()).unwrap().tool_calls[0];
    assert_eq!((call.id.as_str(), call.name.as_str(), &call.input), ("toolu_1", "Bash", &json!({"command": "ls"})));
    assert_eq!(call.state, stream_core::message::ToolCallState::Succeeded);
    let result = messages.iter().find_map(|m| m.tool_result.as_ref()).unwrap();
    assert_eq!(result.output, json!("README.md\nsrc"));
    assert_eq!(messages.last().unwrap().usage.cost_usd, Some(0.0042));
    let text = reqwest::get(server.url("/v1/sessions/cc")).await.unwrap().text().await.unwrap();
    assert!(text.contains(r#""cost_usd":0.0042"#), "the session total is in the snapshot");
    let listed: Value = reqwest::get(server.url("/v1/sessions")).await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["cost_usd"], json!(0.0042), "and in the session list");
    assert!(!text.contains("cli-session-7"), "the CLI's own session id never reaches a client");

    run_once(&server, "cc", "c2", "and now?", "claude-code").await;
    let dir = server.stop().await;
    // The id is durable: a restarted server resumes the same conversation.
    let server = TestServer::start_in(dir, move |config| config.claude_command = Some(claude)).await;
    run_once(&server, "cc", "c3", "still there?", "claude-code").await;
    let args = recorded_args(&bin.0, "claude");
    let flags = "-p --output-format stream-json --verbose --include-partial-messages";
    assert_eq!(
        args,
        [flags.to_owned(), format!("{flags} --resume cli-session-7"), format!("{flags} --resume cli-session-7")]
    );
    server.stop().await;
}

#[tokio::test]
async fn a_session_keeps_the_provider_it_was_created_with() {
    let bin = TempDir::new("fake-claude-session");
    let claude = fake_cli(&bin.0, "claude", &fixture("claude-code-run.jsonl"), "");
    let server = TestServer::start(move |config| config.claude_command = Some(claude)).await;
    let http = reqwest::Client::new();
    let created: Value = http
        .post(server.url("/v1/sessions"))
        .json(&json!({ "name": "agent", "provider": "claude-code" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = created["session_id"].as_str().unwrap();
    // The send names no provider: the session's, not the server's default (demo), runs it.
    let mut client = Client::connect(server.addr, id).await;
    let (status, _) = send(&server.url(""), id, "c1", "hi").await;
    assert_eq!(status, 202);
    client.until_finished(1).await;
    assert_eq!(recorded_args(&bin.0, "claude").len(), 1);
    let listed: Value = http.get(server.url("/v1/sessions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed[0]["provider"], "claude-code");
    let refused = http.post(server.url("/v1/sessions")).json(&json!({ "provider": "nope" })).send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 400);
    server.stop().await;
}

#[tokio::test]
async fn a_conversation_the_cli_no_longer_has_is_let_go_after_its_resume_fails() {
    use std::os::unix::fs::PermissionsExt;
    let bin = TempDir::new("fake-forgetful");
    let claude = bin.0.join("claude");
    let script = format!(
        "#!/bin/sh\necho \"$@\" >> '{args}'\ncat > /dev/null\ncase \"$*\" in *--resume*) echo 'No conversation found' >&2; exit 1;; esac\ncat '{fixture}'\n",
        args = bin.0.join("claude.args").display(),
        fixture = fixture("claude-code-run.jsonl").display(),
    );
    std::fs::write(&claude, script).unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    let server = TestServer::start(move |config| config.claude_command = Some(claude)).await;
    assert_eq!(run_once(&server, "gone", "c1", "one", "claude-code").await.0, Outcome::Complete);
    let (status, messages) = run_once(&server, "gone", "c2", "two", "claude-code").await;
    assert_eq!(status, Outcome::Failed);
    assert!(errors(&messages).iter().any(|e| e.contains("No conversation found")), "{:?}", errors(&messages));
    assert_eq!(run_once(&server, "gone", "c3", "three", "claude-code").await.0, Outcome::Complete);
    let args = recorded_args(&bin.0, "claude");
    let resumed: Vec<bool> = args.iter().map(|line| line.contains("--resume")).collect();
    assert_eq!(resumed, [false, true, false], "{args:?}");
    server.stop().await;
}

#[tokio::test]
async fn codex_runs_resume_their_thread() {
    let bin = TempDir::new("fake-codex");
    let codex = fake_cli(&bin.0, "codex", &fixture("codex-run.jsonl"), "");
    let server = TestServer::start(move |config| config.codex_command = Some(codex)).await;
    let (status, messages) = run_once(&server, "cx", "c1", "list", "codex").await;
    assert_eq!(status, Outcome::Complete);
    assert_eq!(of_role(&messages, Role::Reasoning), ["**Checking the tree**"]);
    assert_eq!(of_role(&messages, Role::Assistant).last(), Some(&"One file."));
    run_once(&server, "cx", "c2", "again", "codex").await;
    assert_eq!(recorded_args(&bin.0, "codex"), ["exec --json -", "exec --json resume thread-9 -"]);
    server.stop().await;
}

#[tokio::test]
async fn a_failing_or_missing_cli_ends_the_run_failed_with_a_readable_error_and_keeps_what_it_printed() {
    let bin = TempDir::new("fake-failing");
    let failing = fake_cli(&bin.0, "codex", &fixture("codex-run.jsonl"), "echo 'Invalid API key' >&2; exit 2");
    let server = TestServer::start(move |config| {
        config.codex_command = Some(failing);
        config.claude_command = Some("/nonexistent/claude".into());
    })
    .await;
    let (status, messages) = run_once(&server, "f1", "c1", "go", "codex").await;
    assert_eq!(status, Outcome::Failed);
    assert_eq!(of_role(&messages, Role::Assistant).last(), Some(&"One file."), "what was streamed stays");
    assert!(errors(&messages).iter().any(|e| e.contains("exited with 2: Invalid API key")), "{:?}", errors(&messages));
    let (status, messages) = run_once(&server, "f2", "c1", "go", "claude-code").await;
    assert_eq!(status, Outcome::Failed);
    assert!(errors(&messages).iter().any(|e| e.contains("could not start /nonexistent/claude")), "{messages:?}");
    server.stop().await;
}

#[tokio::test]
async fn the_providers_are_listed_with_kind_and_model() {
    let server = TestServer::start(|config| {
        config.no_cli_detection = true;
        config.openai_base_url = Some("http://127.0.0.1:9/v1".into());
        config.openai_model = "llama3".into();
    })
    .await;
    let listed: Value = reqwest::get(server.url("/v1/providers")).await.unwrap().json().await.unwrap();
    assert_eq!(
        listed,
        json!([
            {"name": "demo", "kind": "demo", "model": "demo-1", "default": true},
            {"name": "external", "kind": "external", "default": false},
            {"name": "openai", "kind": "openai", "model": "llama3", "default": false},
        ])
    );
    server.stop().await;
}

/// What the mock upstream saw and does.
#[derive(Clone, Default)]
struct Upstream {
    bodies: Arc<Mutex<Vec<Value>>>,
    /// Set when the client dropped a streaming response (an abort).
    dropped: Arc<std::sync::atomic::AtomicBool>,
}

/// Marks `Upstream::dropped` when the response stream holding it goes away.
struct DropSignal(Arc<std::sync::atomic::AtomicBool>);

impl Drop for DropSignal {
    fn drop(&mut self) {
        self.0.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A reply that streams a word every 50 ms for a minute, and notes when it is dropped.
fn endless(dropped: Arc<std::sync::atomic::AtomicBool>) -> Response {
    let words = futures_util::stream::unfold(DropSignal(dropped), |signal| async move {
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let chunk = format!("data: {}\n\n", json!({"choices": [{"index": 0, "delta": {"content": "more "}}]}));
        Some((Ok::<_, std::io::Error>(chunk.into_bytes()), signal))
    });
    let minute = futures_util::StreamExt::take(words, 1_200);
    ([("content-type", "text/event-stream")], Body::from_stream(minute)).into_response()
}

/// SSE for a Chat Completions reply, cut into random chunks (inside characters too).
fn chat_sse(text: &[&str], tail: &str) -> Vec<Vec<u8>> {
    let mut wire = String::new();
    for piece in text {
        wire.push_str(&format!(
            "data: {}\n\n",
            json!({"model": "mock-1", "choices": [{"index": 0, "delta": {"content": piece}}]})
        ));
    }
    wire.push_str(tail);
    random_chunks(wire.into_bytes())
}

fn random_chunks(bytes: Vec<u8>) -> Vec<Vec<u8>> {
    let mut chunks = Vec::new();
    let mut rest = bytes.as_slice();
    while !rest.is_empty() {
        let size = fastrand::usize(1..=rest.len().min(7));
        chunks.push(rest[..size].to_vec());
        rest = &rest[size..];
    }
    chunks
}

fn streamed(chunks: Vec<Vec<u8>>, cut: bool) -> Response {
    let mut items: Vec<Result<Vec<u8>, std::io::Error>> = chunks.into_iter().map(Ok).collect();
    if cut {
        items.push(Err(std::io::Error::other("cut")));
    }
    // The cut waits until what came before it has left, as a real connection drop would.
    let paced = futures_util::StreamExt::then(futures_util::stream::iter(items), |item| async move {
        if item.is_err() {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        item
    });
    ([("content-type", "text/event-stream")], Body::from_stream(paced)).into_response()
}

/// One scenario per prompt: the last user message names it.
async fn upstream(State(upstream): State<Upstream>, body: axum::Json<Value>) -> Response {
    let prompt =
        body["messages"].as_array().and_then(|m| m.last()).and_then(|m| m["content"].as_str()).unwrap_or("").to_owned();
    upstream.bodies.lock().unwrap().push(body.0);
    let error = |status: StatusCode, message: &str| {
        (status, axum::Json(json!({"error": {"message": message}}))).into_response()
    };
    match prompt.as_str() {
        "401" => error(StatusCode::UNAUTHORIZED, "Incorrect API key provided"),
        "429" => error(StatusCode::TOO_MANY_REQUESTS, "Rate limit reached"),
        "500" => (StatusCode::INTERNAL_SERVER_ERROR, "upstream exploded").into_response(),
        "cut" => streamed(chat_sse(&["Half ", "a rep"], ""), true),
        "error-event" => streamed(chat_sse(&["Before "], "data: {\"error\":{\"message\":\"overloaded\"}}\n\n"), false),
        "no-done" => streamed(chat_sse(&["Stops "], ""), false),
        "endless" => endless(Arc::clone(&upstream.dropped)),
        "anthropic" => {
            let events = [
                json!({"type": "message_start", "message": {"id": "m1", "model": "claude-mock", "usage": {"input_tokens": 9}}}),
                json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
                json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "Bonjour ✓"}}),
                json!({"type": "content_block_stop", "index": 0}),
                json!({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 3}}),
                json!({"type": "message_stop"}),
            ];
            let wire: String =
                events.iter().map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap())).collect();
            streamed(random_chunks(wire.into_bytes()), false)
        }
        _ => streamed(
            chat_sse(
                &["Héllo", " ✓ ", "there"],
                &format!(
                    "data: {}\n\ndata: [DONE]\n\n",
                    json!({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
                ),
            ),
            false,
        ),
    }
}

async fn start_upstream() -> (String, Upstream) {
    let state = Upstream::default();
    let app = axum::Router::new()
        .route("/v1/chat/completions", axum::routing::post(upstream))
        .route("/v1/messages", axum::routing::post(upstream))
        .with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (base, state)
}

#[tokio::test]
async fn an_api_streams_its_reply_and_the_next_request_carries_the_history() {
    let (base, upstream) = start_upstream().await;
    let server = TestServer::start(move |config| {
        config.openai_base_url = Some(format!("{base}/v1"));
        config.openai_api_key = Some("sk-test".parse().unwrap());
    })
    .await;
    let (status, messages) = run_once(&server, "api", "c1", "hello", "openai").await;
    assert_eq!(status, Outcome::Complete);
    assert_eq!(of_role(&messages, Role::Assistant), ["Héllo ✓ there"]);
    let reply = messages.iter().find(|m| m.role == Role::Assistant).unwrap();
    assert_eq!((reply.usage.tokens_used, reply.usage.model.as_deref()), (Some(8), Some("mock-1")));
    run_once(&server, "api", "c2", "more", "openai").await;
    let bodies = upstream.bodies.lock().unwrap().clone();
    assert_eq!(
        bodies[1]["messages"],
        json!([
            {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "Héllo ✓ there"},
            {"role": "user", "content": "more"},
        ])
    );
    assert_eq!((bodies[1]["stream"].clone(), bodies[1]["model"].clone()), (json!(true), json!("gpt-4o-mini")));
    server.stop().await;
}

#[tokio::test]
async fn every_api_failure_ends_the_run_failed_once_with_a_readable_error_and_keeps_what_streamed() {
    let (base, _) = start_upstream().await;
    let server = TestServer::start(move |config| config.openai_base_url = Some(format!("{base}/v1"))).await;
    let cases: [(&str, &str, Option<&str>); 6] = [
        ("401", "401 Unauthorized: Incorrect API key provided", None),
        ("429", "429 Too Many Requests: Rate limit reached", None),
        ("500", "500 Internal Server Error: upstream exploded", None),
        ("cut", "the connection was cut mid-stream", Some("Half a rep")),
        ("error-event", "overloaded", Some("Before ")),
        ("no-done", "the stream ended before the API said it was done", Some("Stops ")),
    ];
    for (i, (prompt, error, kept)) in cases.into_iter().enumerate() {
        let session = format!("fail-{i}");
        let (status, messages) = run_once(&server, &session, "c1", prompt, "openai").await;
        assert_eq!(status, Outcome::Failed, "{prompt}");
        assert!(errors(&messages).iter().any(|e| e.contains(error)), "{prompt}: {:?}", errors(&messages));
        assert_eq!(of_role(&messages, Role::Assistant).first().copied(), kept, "{prompt}");
    }
    server.stop().await;
}

#[tokio::test]
async fn the_messages_api_streams_through_the_anthropic_provider() {
    let (base, upstream) = start_upstream().await;
    let server = TestServer::start(move |config| {
        config.anthropic_base_url = base;
        config.anthropic_model = Some("claude-mock".into());
        config.anthropic_api_key = Some("key".parse().unwrap());
    })
    .await;
    let (status, messages) = run_once(&server, "an", "c1", "anthropic", "anthropic").await;
    assert_eq!(status, Outcome::Complete);
    assert_eq!(of_role(&messages, Role::Assistant), ["Bonjour ✓"]);
    assert_eq!(messages.last().unwrap().usage.tokens_used, Some(12));
    assert_eq!(upstream.bodies.lock().unwrap()[0]["max_tokens"], json!(8192));
    server.stop().await;
}

#[tokio::test]
async fn a_silent_provider_gets_a_notice_then_fails_at_the_timeout() {
    let server = TestServer::start(|config| {
        config.command = Some("sh".into());
        config.command_args =
            vec!["-c".into(), r#"echo '{"type":"text","content":"thinking it over"}'; sleep 30"#.into()];
        config.provider_stall_ms = 200;
        config.provider_timeout_ms = 1_000;
    })
    .await;
    // The running list carries the notice while the provider is silent.
    let running = server.url("/v1/sessions/running");
    let watcher = tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let list: Value = reqwest::get(&running).await.unwrap().json().await.unwrap();
            if let Some(notice) = list["sessions"][0]["notice"].as_str() {
                return notice.to_owned();
            }
            assert!(tokio::time::Instant::now() < deadline, "no notice in the running list");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    });
    let (status, messages) = run_once(&server, "quiet", "c1", "go", "command").await;
    assert!(watcher.await.unwrap().starts_with("no output from the provider for 200 ms"));
    assert_eq!(status, Outcome::Failed);
    assert!(errors(&messages).iter().any(|e| e.contains("the provider sent nothing for")), "{:?}", errors(&messages));
    let reply = messages.iter().find(|m| m.role == Role::Assistant).unwrap();
    assert_eq!(reply.content, "thinking it over");
    let notice = reply.usage.metadata.as_ref().and_then(|metadata| metadata["notice"].as_str());
    assert!(
        notice.is_some_and(|notice| notice.starts_with("no output from the provider")),
        "{:?}",
        reply.usage.metadata
    );
    server.stop().await;
}

#[tokio::test]
async fn an_abort_drops_the_api_request_and_ends_the_run_cancelled() {
    let (base, upstream) = start_upstream().await;
    let server = TestServer::start(move |config| config.openai_base_url = Some(format!("{base}/v1"))).await;
    let mut client = Client::connect(server.addr, "stop").await;
    assert_eq!(send_with(&server.url(""), "stop", "c1", "endless", "openai").await, 202);
    while !client.engine.state().messages().iter().any(|m| m.role == Role::Assistant && !m.content.is_empty()) {
        client.pump().await.expect("the reply starts");
    }
    let abort = reqwest::Client::new().post(server.url("/v1/sessions/stop/abort")).send().await.unwrap();
    assert_eq!(abort.status().as_u16(), 202);
    client.until_finished(1).await;
    assert!(matches!(client.finished[0], RunEvent::Finished { status: Outcome::Cancelled, aborted: true, .. }));
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !upstream.dropped.load(std::sync::atomic::Ordering::SeqCst) {
        assert!(tokio::time::Instant::now() < deadline, "the request to the API is still open");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    server.stop().await;
}
