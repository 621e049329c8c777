//! Bad input gets a clear 4xx (REST) or `protocol_error`/close code
//! (WebSocket), is counted, and changes no stored state.

mod common;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// Method, path, optional (content type, body), expected status and error code.
type BadRequest = (reqwest::Method, &'static str, Option<(&'static str, String)>, u16, &'static str);

#[tokio::test]
async fn bad_rest_requests_get_4xx_with_a_code_and_change_nothing() {
    let server = TestServer::start(|_| {}).await;
    let base = server.url("");
    let (status, _) = send(&base, "kept", "c1", "hello").await;
    assert_eq!(status, 202);
    wait_until_idle(&base, "kept").await;
    let before = snapshot(&base, "kept").await;

    let http = reqwest::Client::new();
    let json = "application/json";
    let big = format!(r#"{{"client_message_id":"c9","content":"{}"}}"#, "x".repeat(2 * 1024 * 1024));
    let cases: Vec<BadRequest> = vec![
        (reqwest::Method::POST, "/v1/sessions/kept/messages", Some((json, "{bad".into())), 400, "bad_json"),
        (
            reqwest::Method::POST,
            "/v1/sessions/kept/messages",
            Some((json, r#"{"client_message_id":"c2","content":5}"#.into())),
            400,
            "bad_json",
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions/kept/messages",
            Some((json, r#"{"client_message_id":"c2","content":"x","extra":1}"#.into())),
            400,
            "bad_json",
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions/kept/messages",
            Some(("text/plain", r#"{"client_message_id":"c2","content":"x"}"#.into())),
            400,
            "bad_content_type",
        ),
        (reqwest::Method::POST, "/v1/sessions/kept/messages", Some((json, big)), 413, "body_too_large"),
        (
            reqwest::Method::POST,
            "/v1/sessions/bad%20id/messages",
            Some((json, r#"{"client_message_id":"c2","content":"x"}"#.into())),
            400,
            "invalid_session_id",
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions/kept/messages",
            Some((json, r#"{"client_message_id":"bad id","content":"x"}"#.into())),
            400,
            "invalid_client_message_id",
        ),
        (
            reqwest::Method::POST,
            "/v1/sessions/kept/messages",
            Some((json, r#"{"client_message_id":"c2","content":"x","provider":"nope"}"#.into())),
            400,
            "unknown_provider",
        ),
        (reqwest::Method::GET, "/v1/sessions/nobody", None, 404, "not_found"),
        (reqwest::Method::PATCH, "/v1/sessions/nobody", Some((json, r#"{"name":"x"}"#.into())), 404, "not_found"),
        (reqwest::Method::PATCH, "/v1/sessions/kept", Some((json, r#"{"name":"   "}"#.into())), 400, "invalid_name"),
        (reqwest::Method::POST, "/v1/sessions", Some((json, r#"{"name":""}"#.into())), 400, "invalid_name"),
        (reqwest::Method::POST, "/v1/sessions", Some((json, r#"{"title":"x"}"#.into())), 400, "bad_json"),
        (reqwest::Method::DELETE, "/v1/sessions/nobody", None, 404, "not_found"),
        (reqwest::Method::POST, "/v1/sessions/nobody/abort", None, 404, "not_found"),
        (reqwest::Method::POST, "/v1/sessions/kept/abort", None, 404, "not_found"),
    ];
    for (method, path, body, status, code) in cases {
        let mut request = http.request(method.clone(), server.url(path));
        if let Some((content_type, body)) = body {
            request = request.header("content-type", content_type).body(body);
        }
        let response = request.send().await.expect("response");
        assert_eq!(response.status().as_u16(), status, "{method} {path}");
        let body: serde_json::Value = response.json().await.expect("JSON error body");
        assert_eq!(body["error"]["code"].as_str(), Some(code), "{method} {path}: {body}");
        assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()));
    }
    let after = snapshot(&base, "kept").await;
    assert_eq!((after.seq, after.state_hash), (before.seq, before.state_hash));
    let sessions: serde_json::Value = reqwest::get(server.url("/v1/sessions")).await.unwrap().json().await.unwrap();
    assert_eq!(sessions.as_array().map(Vec::len), Some(1), "{sessions}");
    assert!(metric(&base, "stream_rejected_inputs_total").await >= 8.0);
    server.stop().await;
}

#[tokio::test]
async fn bad_websocket_frames_get_protocol_errors_and_the_connection_stays() {
    let server = TestServer::start(|_| {}).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/ws", server.addr)).await.unwrap();
    let read_text = async |ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >| loop {
        match ws.next().await.expect("open").expect("message") {
            Message::Text(text) => return serde_json::from_str::<serde_json::Value>(&text).unwrap(),
            _ => continue,
        }
    };
    assert_eq!(read_text(&mut ws).await["type"], "hello");
    let cases: Vec<(Message, &str)> = vec![
        (Message::text("{not json"), "bad_json"),
        (Message::text(r#"{"type":"dance"}"#), "unknown_type"),
        (Message::text(r#"{"type":"subscribe"}"#), "missing_field"),
        (Message::text(r#"{"type":"subscribe","channel":5}"#), "wrong_type"),
        (Message::text(r#"{"type":"subscribe","channel":"a b"}"#), "invalid_channel"),
        (Message::text(format!(r#"{{"type":"ping","id":"{}"}}"#, "x".repeat(70 * 1024))), "oversize"),
        (Message::binary(vec![1, 2, 3]), "binary_not_supported"),
    ];
    for (i, (message, code)) in cases.into_iter().enumerate() {
        ws.send(message).await.unwrap();
        let error = read_text(&mut ws).await;
        assert_eq!((error["type"].as_str(), error["code"].as_str()), (Some("protocol_error"), Some(code)), "{error}");
        // Still connected: a ping gets its pong.
        ws.send(Message::text(format!(r#"{{"type":"ping","id":{i}}}"#))).await.unwrap();
        let pong = read_text(&mut ws).await;
        assert_eq!((pong["type"].as_str(), pong["id"].as_u64()), (Some("pong"), Some(i as u64)));
    }
    // Past the socket's own bound the connection closes with 1009.
    let _ = ws.send(Message::text("x".repeat(2 * 1024 * 1024))).await;
    let code = loop {
        match ws.next().await {
            Some(Ok(Message::Close(frame))) => break frame.map(|frame| frame.code),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert_eq!(code, Some(CloseCode::Size));
    server.stop().await;
}

/// A server with `tweak`, a client on `channel` that does not read, and one
/// that reads a long reply at full speed to its end.
async fn flood_past_a_client_not_reading(
    tweak: impl FnOnce(&mut stream_server::Config),
    channel: &str,
) -> (TestServer, Client, Client) {
    let server = TestServer::start(|config| {
        config.demo_reply_words = 40_000;
        tweak(config);
    })
    .await;
    let not_reading = Client::connect(server.addr, channel).await;
    let mut reader = Client::connect(server.addr, channel).await;
    send(&server.url(""), channel, "c1", "flood").await;
    reader.until_finished(1).await;
    (server, not_reading, reader)
}

#[tokio::test]
async fn a_client_that_stops_reading_is_let_go_after_two_heartbeats() {
    let (server, mut stuck, _reader) =
        flood_past_a_client_not_reading(|config| config.heartbeat_ms = 500, "stuck").await;
    let base = server.url("");
    // The stuck client's socket is full and its writes wait: after a second
    // it is let go, and only the reader (kept open) is left.
    let timed_out = r#"stream_rejected_inputs_total{reason="write_timeout"}"#;
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&base, timed_out).await < 1.0 || server.state.metrics.connections.get() != 1 {
        assert!(tokio::time::Instant::now() < deadline, "the stuck client was never let go");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // What it was handed before it stopped still applies cleanly, and the socket ends.
    while let Some(text) = stuck.next_text().await {
        let report = stuck.engine.ingest(&text, 0);
        assert_eq!((report.errors.len(), report.buffered, report.duplicates), (0, 0, 0), "{text:.200}");
    }
    server.stop().await;
}

#[tokio::test]
async fn a_client_that_never_reads_holds_nobody_back_and_is_caught_up_once_it_reads() {
    let (server, mut idle, reader) =
        flood_past_a_client_not_reading(|config| config.outbox_frames = 64, "firehose").await;
    let base = server.url("");
    let logged = snapshot(&base, "firehose").await.state_hash;
    assert_eq!(reader.engine.state_hash(), logged);
    assert!(metric(&base, "stream_slow_consumer_drops_total").await >= 1.0);
    // Reading at last, the idle client gets every frame from where it fell
    // behind: once each, in order, with no resync asked of it.
    while idle.finished.is_empty() {
        let report = idle.pump().await.expect("socket open");
        assert_eq!((report.buffered, report.duplicates), (0, 0), "a gap or an overlap");
    }
    assert_eq!(idle.engine.state_hash(), logged);
    server.stop().await;
}
