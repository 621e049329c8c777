//! Several server processes on one Redis: what a client sees does not
//! depend on the node it reaches. Run by `just test-redis` (they need a
//! `redis-server`; elsewhere they say they were skipped).

mod common;

use common::*;
use stream_core::SessionEngine;
use stream_server::local_redis::LocalRedis;

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
    let mut rng = fastrand::Rng::with_seed(0xc105_7e12);
    let mut engine = SessionEngine::new("roaming");
    let (mut sent, mut finished, mut cycles) = (0, 0, 0);
    while cycles < CYCLES || finished < RUNS {
        if sent == finished && sent < RUNS {
            sent += 1;
            let node = rng.usize(0..cluster.nodes.len());
            let (status, body) =
                send(&cluster.url(node), "roaming", &format!("c{sent}"), &format!("prompt {sent}")).await;
            assert_eq!(status, 202, "{body}");
        }
        let node = &cluster.nodes[rng.usize(0..cluster.nodes.len())];
        let mut client = Client::resume(node.addr, engine).await;
        for _ in 0..rng.usize(1..12) {
            let Some(report) = client.pump().await else { break };
            assert_eq!((report.buffered, report.duplicates), (0, 0), "cycle {cycles}");
            if finished + client.finished.len() == sent {
                break;
            }
        }
        finished += client.finished.len();
        engine = client.engine;
        cycles += 1;
    }
    for node in 0..cluster.nodes.len() {
        let snapshot = snapshot(&cluster.url(node), "roaming").await;
        assert_eq!((engine.state_hash(), engine.cursor().seq), (snapshot.state_hash, snapshot.seq), "node {node}");
    }
    assert_eq!(finished, RUNS);
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
