//! External runs: a process outside the server drives a run over HTTP with
//! idempotent-producer headers. Retries, duplicates, reordering and a
//! producer restart leave the session exactly as sent, with one
//! `run_finished`; silence past the lease and aborts end the run once.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{Value, json};
use stream_core::message::Role;

/// Opens an external run; returns its events path.
async fn open_run(base: &str, session: &str, client_message_id: &str) -> (StatusCode, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/sessions/{session}/runs"))
        .json(&json!({ "client_message_id": client_message_id, "content": "write it", "provider": "external" }))
        .send()
        .await
        .expect("open run");
    (response.status(), response.json().await.unwrap_or(Value::Null))
}

/// Appends a batch as producer `agent`; returns the status, `Producer-Seq` and the body.
async fn append(base: &str, events: &str, epoch: u64, seq: u64, batch: Value) -> (StatusCode, Option<String>, Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}{events}"))
        .header("producer-id", "agent")
        .header("producer-epoch", epoch.to_string())
        .header("producer-seq", seq.to_string())
        .json(&batch)
        .send()
        .await
        .expect("append");
    let seq = response.headers().get("producer-seq").map(|value| value.to_str().unwrap().to_owned());
    let expected = response.headers().get("producer-expected-seq").map(|value| value.to_str().unwrap().to_owned());
    let status = response.status();
    let mut body: Value = response.json().await.unwrap_or(Value::Null);
    if let Some(expected) = expected {
        body["expected"] = expected.into();
    }
    (status, seq, body)
}

/// The run frames of a session, read from its Durable Stream.
async fn run_finished_frames(base: &str, session: &str) -> Vec<Value> {
    let frames: Vec<Value> =
        reqwest::get(format!("{base}/v1/sessions/{session}/stream")).await.unwrap().json().await.unwrap();
    frames.into_iter().filter(|frame| frame["type"] == "run_finished").collect()
}

#[tokio::test]
async fn retries_duplicates_reordering_and_a_producer_restart_leave_the_session_as_sent() {
    let server = TestServer::start(|config| config.external_run_timeout_ms = 10_000).await;
    let base = server.url("");
    let (status, opened) = open_run(&base, "ext", "c1").await;
    assert_eq!(status, StatusCode::ACCEPTED, "{opened}");
    let events = opened["events"].as_str().unwrap().to_owned();
    assert_eq!(open_run(&base, "ext", "c2").await.0, StatusCode::CONFLICT, "one run at a time");
    assert_eq!(open_run(&base, "ext", "c1").await.1["run_id"], opened["run_id"], "a retried open is the same run");

    let batches = [
        json!([{ "type": "text", "content": "Hel" }]),
        json!([{ "type": "text", "content": "lo" }, { "type": "tool_call", "id": "t1", "name": "search", "input": { "q": 1.5 } }]),
        json!([{ "type": "tool_result", "tool_call_id": "t1", "output": { "hits": 2 } }]),
        json!([{ "type": "text", "content": " world" }, { "type": "finish", "status": "complete" }]),
    ];
    assert_eq!(append(&base, &events, 0, 0, batches[0].clone()).await.0, StatusCode::OK);
    let retry = append(&base, &events, 0, 0, batches[0].clone()).await;
    assert_eq!((retry.0, retry.1.as_deref()), (StatusCode::NO_CONTENT, Some("0")), "a retry is a duplicate");
    let early = append(&base, &events, 0, 2, batches[2].clone()).await;
    assert_eq!((early.0, early.2["expected"].as_str()), (StatusCode::CONFLICT, Some("1")), "a gap names the seq due");
    let malformed = append(&base, &events, 0, 1, json!([{ "type": "telepathy" }])).await;
    assert_eq!(malformed.0, StatusCode::BAD_REQUEST, "a malformed batch writes nothing");
    assert_eq!(append(&base, &events, 0, 1, batches[1].clone()).await.0, StatusCode::OK);
    // The producer crashes and comes back with a new epoch; its old self is fenced off.
    assert_eq!(append(&base, &events, 1, 0, batches[2].clone()).await.0, StatusCode::OK);
    assert_eq!(append(&base, &events, 0, 2, batches[2].clone()).await.0, StatusCode::FORBIDDEN);
    assert_eq!(append(&base, &events, 1, 1, batches[3].clone()).await.0, StatusCode::OK);
    assert_eq!(append(&base, &events, 1, 1, batches[3].clone()).await.0, StatusCode::NO_CONTENT);
    let late = append(&base, &events, 1, 2, json!([{ "type": "text", "content": "!" }])).await;
    assert_eq!((late.0, late.2["error"]["code"].as_str()), (StatusCode::CONFLICT, Some("run_ended")));

    wait_until_idle(&base, "ext").await;
    let snapshot = snapshot(&base, "ext").await;
    let assistant: Vec<&str> = snapshot
        .messages
        .iter()
        .filter(|message| message.role == Role::Assistant)
        .map(|message| message.content.as_str())
        .collect();
    assert_eq!(assistant.concat(), "Hello world", "every text once, in order");
    let calls: Vec<_> = snapshot.messages.iter().flat_map(|message| &message.tool_calls).collect();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].input, json!({ "q": 1.5 }));
    let finished = run_finished_frames(&base, "ext").await;
    assert_eq!(finished.len(), 1, "{finished:?}");
    assert_eq!(finished[0]["status"], "complete");
}

#[tokio::test]
async fn a_silent_producer_loses_its_run_and_an_abort_reaches_the_producer() {
    let server = TestServer::start(|config| config.external_run_timeout_ms = 300).await;
    let base = server.url("");
    let (_, opened) = open_run(&base, "lease", "c1").await;
    let events = opened["events"].as_str().unwrap().to_owned();
    assert_eq!(
        append(&base, &events, 0, 0, json!([{ "type": "text", "content": "thinking" }])).await.0,
        StatusCode::OK
    );
    wait_until_idle(&base, "lease").await;
    let finished = run_finished_frames(&base, "lease").await;
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0]["status"], "failed");
    let late = append(&base, &events, 0, 1, json!([{ "type": "text", "content": "back" }])).await;
    assert_eq!(late.0, StatusCode::CONFLICT);
    assert!(late.2["error"]["message"].as_str().unwrap().contains("sent nothing"), "{}", late.2);

    let (_, opened) = open_run(&base, "abort", "c1").await;
    let events = opened["events"].as_str().unwrap().to_owned();
    let aborted = reqwest::Client::new().post(format!("{base}/v1/sessions/abort/abort")).send().await.unwrap();
    assert_eq!(aborted.status(), StatusCode::ACCEPTED);
    wait_until_idle(&base, "abort").await;
    let told = append(&base, &events, 0, 0, json!([{ "type": "text", "content": "too late" }])).await;
    assert_eq!(told.0, StatusCode::CONFLICT);
    assert!(told.2["error"]["message"].as_str().unwrap().contains("aborted"), "{}", told.2);
    let finished = run_finished_frames(&base, "abort").await;
    assert_eq!((finished.len(), &finished[0]["aborted"]), (1, &json!(true)));
    let unknown =
        append(&base, "/v1/sessions/abort/runs/run-nope/events", 0, 0, json!([{ "type": "text", "content": "x" }]))
            .await;
    assert_eq!(unknown.0, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_python_example_producer_streams_a_reply_into_a_session() {
    if std::process::Command::new("python3").arg("--version").output().is_err() {
        eprintln!("skipped: no python3 on this machine");
        return;
    }
    let server = TestServer::start(|_| {}).await;
    let base = server.url("");
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/external_producer.py");
    let output = tokio::process::Command::new("python3")
        .args([script, &base, "py", "one two three"])
        .output()
        .await
        .expect("run the example");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    wait_until_idle(&base, "py").await;
    let snapshot = snapshot(&base, "py").await;
    let reply: String = snapshot
        .messages
        .iter()
        .filter(|message| message.role == Role::Assistant)
        .map(|message| message.content.as_str())
        .collect();
    assert_eq!(reply, "one two three ");
    let finished = run_finished_frames(&base, "py").await;
    assert_eq!((finished.len(), &finished[0]["status"]), (1, &json!("complete")));
}
