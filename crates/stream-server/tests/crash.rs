//! Crashes and shutdowns: nothing a client saw is lost, the epoch survives,
//! and an interrupted run ends with exactly one failed `run_finished`.

mod common;

use common::*;
use futures_util::StreamExt;
use stream_core::RunEvent;
use stream_core::message::Outcome;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

fn assert_one_failed_finish(finished: &[RunEvent]) {
    match finished {
        [RunEvent::Finished { status: Outcome::Failed, aborted: false, .. }] => {}
        other => panic!("expected one failed run_finished, got {other:?}"),
    }
}

#[tokio::test]
async fn sigkill_mid_run_loses_nothing_a_client_saw_and_ends_the_run_once() {
    let dir = TempDir::new("sigkill");
    let server = ServerProcess::spawn(&dir, &["--demo-delta-ms", "10", "--demo-reply-words", "2000"]);
    let mut client = Client::connect(server.addr, "crash").await;
    let (status, _) = send(&server.url(""), "crash", "c1", "long job").await;
    assert_eq!(status, 202);
    while client.engine.cursor().seq < 30 {
        client.pump().await.expect("frames before the kill");
    }
    let seen_cursor = client.engine.cursor().clone();
    let seen = client.engine.state().messages().to_vec();
    server.kill();

    let server = ServerProcess::spawn(&dir, &[]);
    let base = server.url("");
    let after_restart = snapshot(&base, "crash").await;
    assert_eq!(after_restart.epoch, seen_cursor.epoch, "the epoch survives a restart");
    assert!(after_restart.seq > seen_cursor.seq, "the log holds at least what the client saw");
    for message in &seen {
        let kept = after_restart.messages.iter().find(|kept| kept.id == message.id).expect("seen message kept");
        assert!(kept.content.starts_with(&message.content), "seen text of {} kept", message.id);
    }
    // The client resumes from its cursor: a replay, not a snapshot.
    let mut client = Client::resume(server.addr, client.engine).await;
    let subscribed = client.next_text().await.expect("verdict");
    assert!(subscribed.contains(r#""mode":"replay""#), "{subscribed}");
    while client.engine.cursor().seq < after_restart.seq {
        client.pump().await.expect("replay after restart");
    }
    assert_one_failed_finish(&client.finished);
    assert_eq!(client.engine.state_hash(), after_restart.state_hash);
    assert!(after_restart.run.is_none());

    // Another restart finds nothing open: no second run_finished.
    server.kill();
    let server = ServerProcess::spawn(&dir, &[]);
    assert_eq!(snapshot(&server.url(""), "crash").await.seq, after_restart.seq);
}

#[tokio::test]
async fn graceful_shutdown_fails_running_runs_once_and_closes_sockets_with_1001() {
    let server = TestServer::start(|config| {
        config.demo_delta_ms = 10;
        config.demo_reply_words = 2000;
    })
    .await;
    let addr = server.addr;
    let mut client = Client::connect(addr, "stop").await;
    send(&server.url(""), "stop", "c1", "long job").await;
    while client.engine.cursor().seq < 10 {
        client.pump().await.expect("frames");
    }
    let stopping = tokio::spawn(server.stop());
    let close_code = loop {
        match client.ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let report = client.engine.ingest(&text, 0);
                client
                    .finished
                    .extend(report.run_events.into_iter().filter(|e| matches!(e, RunEvent::Finished { .. })));
            }
            Some(Ok(Message::Close(frame))) => break frame.map(|frame| frame.code),
            Some(Ok(_)) => {}
            other => panic!("socket ended without a close frame: {other:?}"),
        }
    };
    assert_eq!(close_code, Some(CloseCode::Away));
    let dir = stopping.await.expect("stopped");

    let server = TestServer::start_in(dir, |_| {}).await;
    let snapshot = snapshot(&server.url(""), "stop").await;
    assert!(snapshot.run.is_none());
    // The run_finished may have arrived before the close, or comes in the catch-up.
    let seen_before_close = client.finished;
    let mut client = Client::resume(server.addr, client.engine).await;
    while client.engine.cursor().seq < snapshot.seq {
        client.pump().await.expect("catch up");
    }
    let finished: Vec<RunEvent> = seen_before_close.into_iter().chain(client.finished.clone()).collect();
    assert_one_failed_finish(&finished);
    assert_eq!(client.engine.state_hash(), snapshot.state_hash);
    server.stop().await;
}
