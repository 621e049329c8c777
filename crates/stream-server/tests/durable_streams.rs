//! The Durable Streams endpoints beyond what the published conformance suite
//! checks (`just test-conformance`): streams survive `kill -9` with their
//! producers' state, and sessions read as streams of their frames.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use stream_core::SessionEngine;

fn offset(position: u64) -> String {
    format!("{:016}_{position:016}", 0)
}

async fn post_as_producer(base: &str, path: &str, seq: u64, body: &str) -> StatusCode {
    reqwest::Client::new()
        .post(format!("{base}/v1/stream/{path}"))
        .header("content-type", "application/json")
        .header("producer-id", "agent")
        .header("producer-epoch", "0")
        .header("producer-seq", seq.to_string())
        .body(body.to_owned())
        .send()
        .await
        .expect("append")
        .status()
}

#[tokio::test]
async fn a_stream_keeps_its_exact_bytes_and_its_producers_across_kill_9() {
    let dir = TempDir::new("ds-kill");
    let server = ServerProcess::spawn(&dir, &[]);
    let base = server.url("");
    let created = reqwest::Client::new()
        .put(format!("{base}/v1/stream/agent/log"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), StatusCode::CREATED);
    // `1.0` and a big integer keep their text: nothing is re-encoded.
    assert_eq!(post_as_producer(&base, "agent/log", 0, r#"[{"x":1.0},{"n":9007199254740993}]"#).await, StatusCode::OK);
    server.kill();

    let server = ServerProcess::spawn(&dir, &[]);
    let base = server.url("");
    let read = reqwest::get(format!("{base}/v1/stream/agent/log")).await.expect("read");
    assert_eq!(read.headers()["stream-next-offset"], offset(2).as_str());
    assert_eq!(read.text().await.unwrap(), r#"[{"x":1.0},{"n":9007199254740993}]"#);
    // The producer's seq survived: a retry is a duplicate, the next one lands once.
    assert_eq!(post_as_producer(&base, "agent/log", 0, r#"{"again":true}"#).await, StatusCode::NO_CONTENT);
    assert_eq!(post_as_producer(&base, "agent/log", 1, r#"{"y":2}"#).await, StatusCode::OK);
    let read = reqwest::get(format!("{base}/v1/stream/agent/log?offset={}", offset(2))).await.expect("read");
    assert_eq!(read.text().await.unwrap(), r#"[{"y":2}]"#);
}

/// Reads a session's stream from `-1` to its tail, page by page.
async fn catch_up(base: &str, session: &str) -> (Vec<serde_json::Value>, String) {
    let (mut frames, mut from) = (Vec::new(), "-1".to_owned());
    loop {
        let response = reqwest::get(format!("{base}/v1/sessions/{session}/stream?offset={from}")).await.expect("read");
        assert_eq!(response.status(), StatusCode::OK);
        let next = response.headers()["stream-next-offset"].to_str().unwrap().to_owned();
        let up_to_date = response.headers().contains_key("stream-up-to-date");
        let page: Vec<serde_json::Value> = response.json().await.expect("a JSON array of frames");
        frames.extend(page);
        from = next;
        if up_to_date {
            return (frames, from);
        }
    }
}

#[tokio::test]
async fn a_session_reads_as_a_stream_of_its_frames_by_catch_up_long_poll_and_sse() {
    let server = TestServer::start(|config| config.long_poll_ms = 5_000).await;
    let base = server.url("");
    assert_eq!(send(&base, "ds", "c1", "hello").await.0, 202);
    wait_until_idle(&base, "ds").await;
    let snapshot = snapshot(&base, "ds").await;

    let (frames, tail) = catch_up(&base, "ds").await;
    let seqs: Vec<u64> = frames.iter().map(|frame| frame["seq"].as_u64().expect("a seq")).collect();
    assert_eq!(seqs, (1..=snapshot.seq).collect::<Vec<_>>(), "one message per frame, offsets one to one with seq");
    assert_eq!(tail, offset(snapshot.seq));
    let mut engine = SessionEngine::new("ds");
    let report = engine.ingest(&serde_json::to_string(&frames).unwrap(), 0);
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(engine.state_hash(), snapshot.state_hash, "the frames rebuild the server's state");

    // A long-poll at the tail answers with the next run's first frames.
    let waiting = tokio::spawn({
        let url = format!("{base}/v1/sessions/ds/stream?offset={tail}&live=long-poll");
        async move { reqwest::get(url).await.expect("long-poll") }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(send(&base, "ds", "c2", "again").await.0, 202);
    let answered = waiting.await.unwrap();
    assert_eq!(answered.status(), StatusCode::OK);
    let next: Vec<serde_json::Value> = answered.json().await.unwrap();
    assert_eq!(next[0]["seq"].as_u64(), Some(snapshot.seq + 1));
    wait_until_idle(&base, "ds").await;

    // SSE from the start carries the same frames, each data event followed by a control event.
    let (all, _) = catch_up(&base, "ds").await;
    let response = reqwest::get(format!("{base}/v1/sessions/ds/stream?offset=-1&live=sse")).await.expect("sse");
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut response = response;
    let (mut text, mut streamed) = (String::new(), Vec::new());
    while streamed.len() < all.len() {
        let chunk = tokio::time::timeout(PATIENCE, response.chunk()).await.expect("an event in time").unwrap();
        text.push_str(std::str::from_utf8(&chunk.expect("the stream stays open")).unwrap());
        while let Some(end) = text.find("\n\n") {
            let event: String = text.drain(..end + 2).collect();
            if let Some(data) = event.strip_prefix("event: data\n") {
                let json: String = data.lines().filter_map(|line| line.strip_prefix("data:")).collect();
                streamed.extend(serde_json::from_str::<Vec<serde_json::Value>>(&json).unwrap());
            }
        }
    }
    assert_eq!(streamed, all);

    // Sessions are written only through runs; bad offsets and unknown sessions are refused.
    let client = reqwest::Client::new();
    let append = client.post(format!("{base}/v1/sessions/ds/stream")).body("[]").send().await.unwrap();
    assert_eq!(append.status(), StatusCode::METHOD_NOT_ALLOWED);
    let beyond = reqwest::get(format!("{base}/v1/sessions/ds/stream?offset={}", offset(10_000))).await.unwrap();
    assert_eq!(beyond.status(), StatusCode::BAD_REQUEST);
    let unknown = reqwest::get(format!("{base}/v1/sessions/nope/stream")).await.unwrap();
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
    assert!(metric(&base, "stream_rejected_inputs_total").await >= 2.0);
}
