//! The AI SDK endpoints across a `kill -9` (the Node suite in tests/ai-sdk
//! runs the real client): the stream is read from the log, so a retried
//! POST after a restart replays the run, which the restart closed, from its
//! start to its one error.

mod common;

use common::*;
use serde_json::{Value, json};

fn chat_body(text: &str) -> Value {
    json!({ "id": "aisdk", "trigger": "submit-message", "messages": [{ "id": "u1", "role": "user", "parts": [{ "type": "text", "text": text }] }] })
}

/// The `data:` payloads of a UI message stream, until `[DONE]`.
async fn chunks(response: reqwest::Response) -> Vec<String> {
    assert_eq!(response.headers()["x-vercel-ai-ui-message-stream"], "v1");
    let text = response.text().await.expect("stream");
    text.split("\n\n").filter_map(|event| event.strip_prefix("data: ")).map(str::to_owned).collect()
}

#[tokio::test]
async fn after_a_kill_9_a_resume_is_204_and_a_retry_replays_the_closed_run_from_the_log() {
    let dir = TempDir::new("aisdk-kill");
    let server = ServerProcess::spawn(&dir, &["--demo-delta-ms", "10", "--demo-reply-words", "2000"]);
    let client = reqwest::Client::new();
    let mut live = client.post(server.url("/v1/ai-sdk/chat")).json(&chat_body("long")).send().await.expect("chat");
    let mut seen = String::new();
    while !seen.contains("text-delta") {
        seen.push_str(&String::from_utf8_lossy(&live.chunk().await.expect("chunk").expect("open")));
    }
    server.kill();

    let server = ServerProcess::spawn(&dir, &[]);
    let resume = client.get(server.url("/v1/ai-sdk/chat/aisdk/stream")).send().await.expect("resume");
    assert_eq!(resume.status(), 204, "the restart closed the run: nothing to resume");
    let replay =
        chunks(client.post(server.url("/v1/ai-sdk/chat")).json(&chat_body("long")).send().await.unwrap()).await;
    assert!(replay[0].contains(r#""type":"start""#), "{}", replay[0]);
    assert_eq!(replay.last().map(String::as_str), Some("[DONE]"));
    let end: Value = serde_json::from_str(&replay[replay.len() - 2]).unwrap();
    assert_eq!(end["type"], "error", "the interrupted run ends failed, once");
    assert_eq!(replay.iter().filter(|chunk| chunk.contains(r#""type":"error""#)).count(), 1);
    let snapshot = snapshot(&server.url(""), "aisdk").await;
    assert_eq!(
        snapshot.messages.iter().filter(|message| message.client_message_id.as_deref() == Some("u1")).count(),
        1
    );
}
