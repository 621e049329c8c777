//! Several server processes on one Redis: what a client sees does not
//! depend on the node it reaches. Run by `just test-redis` (they need a
//! `redis-server`; elsewhere they say they were skipped).

mod common;

use std::time::Duration;

use common::*;
use futures_util::SinkExt;
use stream_core::RunEvent;
use stream_core::message::Outcome;
use stream_server::local_redis::LocalRedis;
use tokio_tungstenite::tungstenite::Message;

/// One Redis and `count` nodes on it, with `extra` flags each.
struct Cluster {
    nodes: Vec<ServerProcess>,
    _dirs: Vec<TempDir>,
    redis: LocalRedis,
}

impl Cluster {
    fn start(count: usize, extra: &[&str]) -> Option<Self> {
        if std::env::var("STREAM_TEST_STORE").as_deref() != Ok("redis") {
            eprintln!("skipped: the cluster tests run with STREAM_TEST_STORE=redis (just test-redis)");
            return None;
        }
        let redis_dir = TempDir::new("cluster-redis");
        let redis = LocalRedis::start(&redis_dir.0).expect("redis-server");
        let mut dirs = vec![redis_dir];
        let mut nodes = Vec::new();
        for _ in 0..count {
            let dir = TempDir::new("cluster-node");
            nodes.push(ServerProcess::spawn_node(
                &dir,
                Some(&redis.url()),
                extra,
                "warn",
                std::process::Stdio::inherit(),
            ));
            dirs.push(dir);
        }
        Some(Self { nodes, _dirs: dirs, redis })
    }

    fn url(&self, node: usize) -> String {
        self.nodes[node].url("")
    }
}

#[tokio::test]
async fn subscribers_on_every_node_see_the_same_frames_and_every_node_serves_the_same_snapshot() {
    let Some(cluster) = Cluster::start(3, &["--demo-reply-words", "300", "--demo-delta-ms", "1"]) else { return };
    // Subscribed on every node before the session exists anywhere.
    let mut clients = Vec::new();
    for node in &cluster.nodes {
        clients.push(Client::connect(node.addr, "everywhere").await);
    }
    let (status, body) = send(&cluster.url(0), "everywhere", "c1", "hello").await;
    assert_eq!(status, 202, "{body}");
    for client in &mut clients {
        client.until_finished(1).await;
    }
    // A second run, sent to another node, after the first.
    let (status, body) = send(&cluster.url(2), "everywhere", "c2", "again").await;
    assert_eq!(status, 202, "{body}");
    for client in &mut clients {
        client.until_finished(2).await;
    }
    let snapshots = [snapshot(&cluster.url(0), "everywhere").await, snapshot(&cluster.url(1), "everywhere").await];
    assert_eq!(snapshots[0].state_hash, snapshots[1].state_hash);
    for client in &clients {
        assert_eq!(client.engine.state_hash(), snapshots[0].state_hash);
        assert_eq!(client.engine.cursor().seq, snapshots[0].seq);
    }
    assert_eq!(snapshots[0].messages.len(), 8);
    drop(cluster.redis);
}

#[tokio::test]
async fn resuming_on_any_node_has_no_gap_and_no_duplicate() {
    const RUNS: usize = 4;
    const CYCLES: usize = 200;
    let Some(cluster) = Cluster::start(2, &["--demo-reply-words", "400", "--demo-delta-ms", "1"]) else { return };
    let nodes: Vec<_> = cluster.nodes.iter().map(|node| (node.addr, node.url(""))).collect();
    let engine = resume_cycles("roaming", RUNS, CYCLES, 0xc105_7e12, &nodes).await;
    for node in 0..cluster.nodes.len() {
        let snapshot = snapshot(&cluster.url(node), "roaming").await;
        assert_eq!((engine.state_hash(), engine.cursor().seq), (snapshot.state_hash, snapshot.seq), "node {node}");
    }
}

#[tokio::test]
async fn a_run_in_progress_on_one_node_refuses_a_send_on_another_and_a_repeated_id_makes_one_run() {
    let Some(cluster) = Cluster::start(2, &["--demo-reply-words", "2000", "--demo-delta-ms", "2"]) else { return };
    let (status, first) = send(&cluster.url(0), "busy", "c1", "long").await;
    assert_eq!(status, 202, "{first}");
    // The same id on the other node: the first answer, not a second run.
    let (status, again) = send(&cluster.url(1), "busy", "c1", "long").await;
    assert_eq!((status, &again), (202, &first));
    let (status, refused) = send(&cluster.url(1), "busy", "c2", "another").await;
    assert_eq!((status, refused["error"]["code"].as_str()), (409, Some("run_in_progress")), "{refused}");
}

/// Reads `running` frames from a `watch_running` socket until one satisfies `done`.
async fn running_until(client: &mut Client, done: impl Fn(&serde_json::Value) -> bool) {
    loop {
        let text = client.next_text().await.expect("socket open");
        let frame: serde_json::Value = serde_json::from_str(&text).expect("json");
        if frame["type"] == "running" && done(&frame) {
            return;
        }
    }
}

fn lists(frame: &serde_json::Value, session: &str) -> bool {
    frame["sessions"].as_array().is_some_and(|sessions| sessions.iter().any(|entry| entry["session_id"] == session))
}

#[tokio::test]
async fn every_node_shows_a_run_of_another_and_an_abort_on_any_node_ends_it_once() {
    let Some(cluster) = Cluster::start(2, &["--demo-reply-words", "5000", "--demo-delta-ms", "5"]) else { return };
    let mut watcher = Client::connect(cluster.nodes[1].addr, "unwatched").await;
    watcher.ws.send(Message::text(r#"{"type":"watch_running"}"#)).await.expect("watch");
    let mut subscriber = Client::connect(cluster.nodes[1].addr, "far").await;
    let (status, body) = send(&cluster.url(0), "far", "c1", "long").await;
    assert_eq!(status, 202, "{body}");
    running_until(&mut watcher, |frame| lists(frame, "far")).await;
    let listed: serde_json::Value =
        reqwest::get(cluster.url(1) + "/v1/sessions").await.expect("list").json().await.expect("json");
    assert_eq!(listed[0]["running"], true, "{listed}");
    // Aborted through the node that does not drive it.
    let aborted = reqwest::Client::new().post(cluster.url(1) + "/v1/sessions/far/abort").send().await.expect("abort");
    assert!(aborted.status().is_success(), "{}", aborted.status());
    running_until(&mut watcher, |frame| !lists(frame, "far")).await;
    subscriber.until_finished(1).await;
    assert!(
        matches!(&subscriber.finished[..], [RunEvent::Finished { aborted: true, .. }]),
        "{:?}",
        subscriber.finished
    );
    // Nothing after the one run_finished, on either node.
    tokio::time::sleep(Duration::from_millis(300)).await;
    for node in 0..2 {
        assert_eq!(snapshot(&cluster.url(node), "far").await.seq, subscriber.engine.cursor().seq, "node {node}");
    }
}

#[tokio::test]
async fn a_session_deleted_on_one_node_is_let_go_on_another() {
    let Some(cluster) = Cluster::start(2, &["--demo-reply-words", "20"]) else { return };
    let (status, body) = send(&cluster.url(0), "doomed", "c1", "hello").await;
    assert_eq!(status, 202, "{body}");
    let mut subscriber = Client::connect(cluster.nodes[1].addr, "doomed").await;
    subscriber.until_finished(1).await;
    let deleted = reqwest::Client::new().delete(cluster.url(0) + "/v1/sessions/doomed").send().await.expect("delete");
    assert!(deleted.status().is_success(), "{}", deleted.status());
    loop {
        let text = subscriber.next_text().await.expect("socket open");
        if text.contains(r#""type":"unsubscribed""#) {
            assert!(text.contains(r#""reason":"deleted""#), "{text}");
            break;
        }
    }
    let gone = reqwest::get(cluster.url(1) + "/v1/sessions/doomed").await.expect("get");
    assert_eq!(gone.status(), 404);
}

#[tokio::test]
async fn killing_the_node_that_drives_a_run_ends_it_once_on_another() {
    let args = ["--demo-reply-words", "5000", "--demo-delta-ms", "5", "--run-lease-ms", "600"];
    // Two survivors, which both find the run orphaned.
    let Some(mut cluster) = Cluster::start(3, &args) else { return };
    let mut near = Client::connect(cluster.nodes[0].addr, "orphan").await;
    let mut far = Client::connect(cluster.nodes[1].addr, "orphan").await;
    let (status, body) = send(&cluster.url(0), "orphan", "c1", "long").await;
    assert_eq!(status, 202, "{body}");
    while near.frames_seen < 50 {
        near.pump().await.expect("frames");
    }
    cluster.nodes.remove(0).kill();
    // Its subscriber resumes on the other node, and both see the one end.
    let mut resumed = Client::resume(cluster.nodes[0].addr, near.engine).await;
    resumed.until_finished(1).await;
    far.until_finished(1).await;
    for client in [&resumed, &far] {
        assert!(
            matches!(&client.finished[..], [RunEvent::Finished { status: Outcome::Failed, aborted: false, .. }]),
            "{:?}",
            client.finished
        );
    }
    let snapshot = snapshot(&cluster.url(0), "orphan").await;
    assert!(snapshot.run.is_none());
    for client in [&resumed, &far] {
        assert_eq!((client.engine.state_hash(), client.engine.cursor().seq), (snapshot.state_hash, snapshot.seq));
    }
    // One close, whichever node made it: one error frame, one run_finished.
    let log: Vec<serde_json::Value> = reqwest::get(cluster.url(1) + "/v1/sessions/orphan/stream?offset=-1")
        .await
        .expect("read")
        .json()
        .await
        .expect("json");
    let count = |kind: &str| log.iter().filter(|frame| frame["type"] == kind).count();
    assert_eq!((count("error"), count("run_finished")), (1, 1));
    // The session takes a new run.
    let (status, body) = send(&cluster.url(0), "orphan", "c2", "again").await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn a_redis_restart_mid_stream_loses_no_acknowledged_frame() {
    let Some(mut cluster) = Cluster::start(2, &["--demo-reply-words", "3000", "--demo-delta-ms", "2"]) else { return };
    let mut near = Client::connect(cluster.nodes[0].addr, "weathered").await;
    let mut far = Client::connect(cluster.nodes[1].addr, "weathered").await;
    let (status, body) = send(&cluster.url(0), "weathered", "c1", "long").await;
    assert_eq!(status, 202, "{body}");
    while near.frames_seen < 50 {
        near.pump().await.expect("frames");
    }
    cluster.redis.kill();
    // Meanwhile a request is refused, plainly.
    let refused = reqwest::get(cluster.url(1) + "/v1/sessions/weathered").await.expect("get");
    assert_eq!(refused.status(), 503);
    let refused: serde_json::Value = refused.json().await.expect("json");
    assert_eq!(refused["error"]["code"], "storage_unavailable", "{refused}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.redis.restart().expect("redis back");
    // What the clients saw was acknowledged, so it is in the log: their
    // state after the run's end is the log's, on both nodes.
    near.until_finished(1).await;
    far.until_finished(1).await;
    for node in 0..2 {
        let snapshot = snapshot(&cluster.url(node), "weathered").await;
        for client in [&near, &far] {
            assert_eq!((client.engine.state_hash(), client.engine.cursor().seq), (snapshot.state_hash, snapshot.seq));
        }
    }
    // And it goes on.
    let (status, body) = send(&cluster.url(1), "weathered", "c2", "again").await;
    assert_eq!(status, 202, "{body}");
    far.until_finished(2).await;
}

#[tokio::test]
async fn a_session_compacted_by_one_node_moves_to_its_new_epoch_on_another() {
    let args = ["--demo-reply-words", "20", "--retain-frames", "10", "--retention-ms", "0", "--maintenance-ms", "50"];
    let Some(cluster) = Cluster::start(2, &args) else { return };
    let mut watching = Client::connect(cluster.nodes[1].addr, "kept").await;
    let (status, body) = send(&cluster.url(0), "kept", "c1", "first").await;
    assert_eq!(status, 202, "{body}");
    watching.until_finished(1).await;
    let before = watching.engine.cursor().clone();
    // Node 0 lets the idle session go and compacts it; node 1, which holds
    // it for its subscriber, hands the subscriber the new epoch (a
    // snapshot) unasked.
    while watching.engine.cursor().epoch == before.epoch {
        watching.pump().await.expect("socket open");
    }
    let (status, body) = send(&cluster.url(1), "kept", "c2", "second").await;
    assert_eq!(status, 202, "{body}");
    watching.until_finished(2).await;
    for node in 0..2 {
        let snapshot = snapshot(&cluster.url(node), "kept").await;
        assert_ne!(snapshot.epoch, before.epoch);
        assert_eq!((watching.engine.state_hash(), watching.engine.cursor().seq), (snapshot.state_hash, snapshot.seq));
    }
}
