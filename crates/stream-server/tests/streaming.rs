//! Streaming, resume and replay against a real server on port 0.

mod common;

use common::*;
use stream_core::RunEvent;

#[tokio::test]
async fn three_subscribers_end_with_the_state_and_hash_of_the_rest_snapshot() {
    let server = TestServer::start(|config| config.demo_reply_words = 300).await;
    let mut clients = Vec::new();
    for _ in 0..3 {
        // Subscribed before the session exists: an empty snapshot, then live frames.
        clients.push(Client::connect(server.addr, "three").await);
    }
    let (status, _) = send(&server.url(""), "three", "c1", "hello").await;
    assert_eq!(status, 202);
    for client in &mut clients {
        client.until_finished(1).await;
    }
    let snapshot = snapshot(&server.url(""), "three").await;
    for client in &clients {
        assert_eq!(client.engine.state().messages(), snapshot.messages.as_slice());
        assert_eq!(client.engine.state_hash(), snapshot.state_hash);
        assert_eq!(client.engine.cursor().seq, snapshot.seq);
    }
    // user, assistant (preamble + call), tool, assistant (reply)
    assert_eq!(snapshot.messages.len(), 4);
    server.stop().await;
}

#[tokio::test]
async fn random_disconnects_resume_without_gap_or_duplicate() {
    const RUNS: usize = 6;
    const CYCLES: usize = 200;
    let server = TestServer::start(|config| {
        config.demo_reply_words = 400;
        config.demo_delta_ms = 1;
    })
    .await;
    let base = server.url("");
    let engine = resume_cycles("flaky", RUNS, CYCLES, 0x5eed_2026, &[(server.addr, base.clone())]).await;
    let snapshot = snapshot(&base, "flaky").await;
    assert_eq!(engine.state_hash(), snapshot.state_hash);
    assert_eq!(engine.cursor().seq, snapshot.seq);
    assert!(metric(&base, "stream_resumes_total{reason=\"replay_memory\"}").await >= CYCLES as f64 - 1.0);
    server.stop().await;
}

#[tokio::test]
async fn replay_beyond_the_memory_ring_comes_from_the_log() {
    let server = TestServer::start(|config| {
        config.demo_reply_words = 500;
        config.ring_frames = 16;
    })
    .await;
    let base = server.url("");
    let mut early = Client::connect(server.addr, "deep").await;
    send(&base, "deep", "c1", "go").await;
    // Leave after a few frames; the run goes on far past the ring.
    while early.engine.cursor().seq < 5 {
        early.pump().await.expect("frames");
    }
    drop(early.ws);
    wait_until_idle(&base, "deep").await;

    let mut late = Client::resume(server.addr, early.engine).await;
    let head = snapshot(&base, "deep").await.seq;
    while late.engine.cursor().seq < head {
        let report = late.pump().await.expect("replay");
        assert_eq!((report.buffered, report.duplicates), (0, 0));
    }
    assert_eq!(late.engine.state_hash(), snapshot(&base, "deep").await.state_hash);
    assert_eq!(metric(&base, "stream_resumes_total{reason=\"replay_log\"}").await, 1.0);
    server.stop().await;
}

#[tokio::test]
async fn a_cursor_from_before_a_compaction_gets_the_snapshot_of_the_new_epoch() {
    let server = TestServer::start(|config| {
        config.demo_reply_words = 20;
        config.retain_frames = Some(10);
        config.retention_ms = 0;
        config.maintenance_ms = 50;
    })
    .await;
    let base = server.url("");
    let mut client = Client::connect(server.addr, "kept-short").await;
    send(&base, "kept-short", "c1", "first").await;
    client.until_finished(1).await;
    let seen = client.engine.cursor().clone();
    drop(client.ws);
    // Unwatched and idle, the session leaves memory and its log is compacted.
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while metric(&base, "stream_compactions_total").await < 1.0 {
        assert!(tokio::time::Instant::now() < deadline, "no compaction");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let compacted = snapshot(&base, "kept-short").await;
    assert_ne!(compacted.epoch, seen.epoch);
    assert_eq!(compacted.seq, seen.seq, "the base stands at the head");

    let mut back = Client::resume(server.addr, client.engine).await;
    back.pump().await.expect("subscribed");
    let report = back.pump().await.expect("the snapshot");
    assert_eq!((report.applied, report.buffered), (0, 0), "no stale frame applied");
    assert_eq!(back.engine.cursor().epoch, compacted.epoch);
    assert_eq!(back.engine.state_hash(), compacted.state_hash);
    assert_eq!(metric(&base, "stream_resumes_total{reason=\"snapshot\"}").await, 2.0);
    // The session goes on in its new epoch, seq after seq.
    send(&base, "kept-short", "c2", "second").await;
    back.until_finished(1).await;
    assert_eq!(back.engine.state_hash(), snapshot(&base, "kept-short").await.state_hash);
    server.stop().await;
}

#[tokio::test]
async fn a_double_send_conflicts_a_repeated_id_is_idempotent_and_abort_finishes_once() {
    let server = TestServer::start(|config| config.demo_delta_ms = 50).await;
    let base = server.url("");
    let mut client = Client::connect(server.addr, "busy").await;
    let (status, first) = send(&base, "busy", "c1", "long job").await;
    assert_eq!(status, 202);
    let (status, body) = send(&base, "busy", "c2", "another").await;
    assert_eq!((status, body["error"]["code"].as_str()), (409, Some("run_in_progress")));
    let (status, again) = send(&base, "busy", "c1", "long job").await;
    assert_eq!((status, &again), (202, &first));

    let abort = reqwest::Client::new().post(server.url("/v1/sessions/busy/abort")).send().await.unwrap();
    assert_eq!(abort.status().as_u16(), 202);
    let aborted: serde_json::Value = abort.json().await.unwrap();
    assert_eq!(aborted["run_id"], first["run_id"]);
    client.until_finished(1).await;
    match &client.finished[..] {
        [RunEvent::Finished { aborted: true, run_id, .. }] => assert_eq!(run_id, first["run_id"].as_str().unwrap()),
        other => panic!("{other:?}"),
    }
    let abort = reqwest::Client::new().post(server.url("/v1/sessions/busy/abort")).send().await.unwrap();
    assert_eq!(abort.status().as_u16(), 404);
    // Only one user message and one run, although c1 was posted twice.
    let snapshot = snapshot(&base, "busy").await;
    let users = snapshot.messages.iter().filter(|message| message.role == stream_core::Role::User).count();
    assert_eq!(users, 1);
    // Nothing more arrives after the one run_finished.
    let (status, _) = send(&base, "busy", "c3", "next").await;
    assert_eq!(status, 202);
    client.until_finished(2).await;
    assert_eq!(client.finished.len(), 2);
    server.stop().await;
}

#[tokio::test]
async fn a_created_session_is_listed_renamed_live_and_deleted() {
    let server = TestServer::start(|_| {}).await;
    let http = reqwest::Client::new();
    let created = http.post(server.url("/v1/sessions")).json(&serde_json::json!({})).send().await.unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: serde_json::Value = created.json().await.unwrap();
    let id = created["session_id"].as_str().expect("an id").to_owned();
    assert_eq!(created["name"], "New session");

    let mut client = Client::connect(server.addr, &id).await;
    let renamed = http.patch(server.url(&format!("/v1/sessions/{id}"))).json(&serde_json::json!({"name": " Plans "}));
    assert_eq!(renamed.send().await.unwrap().status().as_u16(), 200);
    while client.engine.state().name() != Some("Plans") {
        client.pump().await.expect("the renamed frame arrives");
    }
    let sessions: serde_json::Value = http.get(server.url("/v1/sessions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(sessions[0]["session_id"], id.as_str());
    assert_eq!(sessions[0]["name"], "Plans");

    let deleted = http.delete(server.url(&format!("/v1/sessions/{id}"))).send().await.unwrap();
    assert_eq!(deleted.status().as_u16(), 204);
    let listed: serde_json::Value = http.get(server.url("/v1/sessions")).send().await.unwrap().json().await.unwrap();
    assert_eq!(listed.as_array().map(Vec::len), Some(0), "{listed}");
    server.stop().await;
}

#[tokio::test]
async fn the_test_hook_drops_every_socket_while_the_run_goes_on() {
    let server = TestServer::start(|config| {
        config.test_hooks = true;
        config.demo_delta_ms = 5;
    })
    .await;
    let base = server.url("");
    let http = reqwest::Client::new();
    let mut client = Client::connect(server.addr, "cut").await;
    let (status, _) = send(&base, "cut", "c1", "cut me").await;
    assert_eq!(status, 202);
    client.pump().await.expect("the run starts");
    let dropped = http.post(server.url("/v1/test/drop-connections")).send().await.unwrap();
    assert_eq!(dropped.status().as_u16(), 204);
    while client.pump().await.is_some() {}
    let mut client = Client::resume(server.addr, client.engine).await;
    client.until_finished(1).await;
    assert_eq!(client.engine.state_hash(), snapshot(&base, "cut").await.state_hash);
    server.stop().await;

    let plain = TestServer::start(|_| {}).await;
    let hook = http.post(plain.url("/v1/test/drop-connections")).send().await.unwrap();
    assert!(hook.status().is_client_error(), "the hook exists only when asked for: {}", hook.status());
    plain.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_at_any_pace_get_every_frame_once_in_order() {
    // Small queues and a long reply at full speed: the fan-out outruns the
    // readers that pause, and their connections catch them up.
    let server = TestServer::start(|config| {
        config.outbox_frames = 64;
        config.demo_reply_words = 40_000;
    })
    .await;
    let base = server.url("");
    let mut readers = Vec::new();
    for seed in 0..4u64 {
        let mut client = Client::connect(server.addr, "paces").await;
        readers.push(tokio::spawn(async move {
            // Reader 0 reads flat out; 1 and 2 pause at random, 2 longer;
            // 3 stops for two seconds early on, which outruns its queue
            // whatever the log's speed.
            let (mut rng, mut read) = (fastrand::Rng::with_seed(seed), 0);
            while client.finished.is_empty() {
                let report = client.pump().await.expect("socket open");
                assert_eq!((report.buffered, report.duplicates), (0, 0), "reader {seed}: a gap or an overlap");
                read += 1;
                let pause = match seed {
                    1 | 2 if rng.usize(0..40) == 0 => rng.u64(10..100 * seed),
                    3 if read == 10 => 2_000,
                    _ => continue,
                };
                tokio::time::sleep(std::time::Duration::from_millis(pause)).await;
            }
            client.engine.state_hash()
        }));
    }
    let (status, body) = send(&base, "paces", "c1", "flood").await;
    assert_eq!(status, 202, "{body}");
    let mut hashes = Vec::new();
    for reader in readers {
        hashes.push(reader.await.expect("reader"));
    }
    let logged = snapshot(&base, "paces").await.state_hash;
    assert_eq!(hashes, vec![logged; 4]);
    assert!(metric(&base, "stream_slow_consumer_drops_total").await >= 1.0, "no reader fell behind");
    server.stop().await;
}
