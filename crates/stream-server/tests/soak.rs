//! Soaks, run by `just soak` (never in CI): long, heavy, and reported as
//! figures on stdout.
//!
//! - A million frames through sessions with retention on: the log (the
//!   database file and its WAL) must plateau. Sessions idle between prompts,
//!   as people do, since only an idle session is compacted.
//! - Chaos: 10,000 seeded disconnect/resume cycles across `kill -9` restarts,
//!   with clients that never read and malformed client frames mixed in: nothing lost
//!   or duplicated, the client's hash equals the server's, no 5xx, and the
//!   server's RSS stays under a stated bound.

mod common;

use std::time::{Duration, Instant};

use common::*;

/// Frames to push through the server.
const FRAMES: f64 = 1_000_000.0;
/// Sessions going at once; each is one conversation of `RUNS_PER_CONVERSATION`
/// runs, then deleted and replaced by a new one (users delete chats).
const SLOTS: usize = 8;
const RUNS_PER_CONVERSATION: usize = 40;
/// The pause between rounds, longer than the maintenance interval.
const READING: Duration = Duration::from_millis(150);
/// Frames each session's log keeps before compaction.
const RETAIN_FRAMES: u64 = 2_000;

fn file_bytes(path: &std::path::Path) -> u64 {
    std::fs::metadata(path).map_or(0, |meta| meta.len())
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

async fn run_to_end(base: &str, session: &str, id: &str) {
    let (status, body) = send(base, session, id, "soak").await;
    assert_eq!(status, 202, "{body}");
    let http = reqwest::Client::new();
    loop {
        let running: serde_json::Value =
            http.get(format!("{base}/v1/sessions/running")).send().await.unwrap().json().await.unwrap();
        let going = running["sessions"].as_array().unwrap().iter().any(|entry| entry["session_id"] == session);
        if !going {
            return;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: run by `just soak`"]
async fn a_million_frames_with_retention_keep_the_log_bounded() {
    let server = TestServer::start(|config| {
        config.demo_delta_ms = 0;
        config.demo_reply_words = 500;
        config.retain_frames = Some(RETAIN_FRAMES);
        config.retention_ms = 0;
        config.maintenance_ms = 100;
    })
    .await;
    let base = server.url("");
    let database = server.dir.0.join("stream.db");
    let wal = server.dir.0.join("stream.db-wal");
    let started = Instant::now();
    let mut samples: Vec<(f64, u64, u64, u64)> = Vec::new();
    let mut round = 0usize;
    println!(
        "{:>10} {:>8} {:>12} {:>12} {:>10} {:>12}",
        "frames", "seconds", "db bytes", "wal bytes", "rss KiB", "compactions"
    );
    loop {
        let frames = metric(&base, "stream_frames_committed_total").await;
        let sample = (frames, file_bytes(&database), file_bytes(&wal), rss_kib());
        let compactions = metric(&base, "stream_compactions_total").await;
        if samples.last().is_none_or(|last| frames - last.0 >= FRAMES / 10.0) || frames >= FRAMES {
            println!(
                "{:>10.0} {:>8.1} {:>12} {:>12} {:>10} {:>12.0}",
                frames,
                started.elapsed().as_secs_f64(),
                sample.1,
                sample.2,
                sample.3,
                compactions
            );
            samples.push(sample);
        }
        if frames >= FRAMES {
            break;
        }
        // One run in every slot, at once; a conversation ends by being deleted.
        let conversation = round / RUNS_PER_CONVERSATION;
        let runs = (0..SLOTS).map(|slot| {
            let base = base.clone();
            let session = format!("soak-{slot}-{conversation}");
            let id = format!("c{round}");
            async move { run_to_end(&base, &session, &id).await }
        });
        futures_util::future::join_all(runs).await;
        // A person reads the reply before the next prompt: the sessions idle past a maintenance pass.
        tokio::time::sleep(READING).await;
        round += 1;
        if round.is_multiple_of(RUNS_PER_CONVERSATION) {
            let http = reqwest::Client::new();
            for slot in 0..SLOTS {
                let deleted =
                    http.delete(format!("{base}/v1/sessions/soak-{slot}-{conversation}")).send().await.unwrap();
                assert_eq!(deleted.status().as_u16(), 204);
            }
        }
    }
    // A plateau: the second half of the run grows the files by little.
    let half = samples.len() / 2;
    let size = |sample: &(f64, u64, u64, u64)| sample.1 + sample.2;
    let first_half = samples[..half].iter().map(size).max().unwrap();
    let second_half = samples[half..].iter().map(size).max().unwrap();
    println!(
        "plateau: largest log in the first half {first_half} B, in the second {second_half} B ({:.2}×); RSS at the end {} KiB",
        second_half as f64 / first_half as f64,
        samples.last().unwrap().3
    );
    assert!(second_half as f64 <= first_half as f64 * 1.25, "the log keeps growing");
    assert!(metric(&base, "stream_compactions_total").await > 0.0);
    server.stop().await;
}

/// The server's resident memory, from its `/proc` status.
fn process_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// The bound the chaos run asserts on the server's RSS.
const CHAOS_RSS_BOUND_KIB: u64 = 150 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a soak: run by `just soak`"]
async fn chaos_resumes_across_kills_slow_consumers_and_bad_frames_lose_nothing() {
    use futures_util::SinkExt;
    use stream_core::SessionEngine;
    use tokio_tungstenite::tungstenite::Message;

    const CYCLES: usize = 10_000;
    let dir = TempDir::new("chaos");
    let args = ["--demo-delta-ms", "1", "--demo-reply-words", "300"];
    let mut server = ServerProcess::spawn(&dir, &args);
    let mut rng = fastrand::Rng::with_seed(0xc4a0_5eed);
    let mut engine = SessionEngine::new("chaos");
    let (mut sent, mut finished, mut kills, mut bad_frames, mut stalled) = (0, 0, 0, 0, 0);
    let mut max_rss = 0;
    // Connections that subscribe and never read, kept for a while.
    let mut slow: Vec<Client> = Vec::new();
    let started = Instant::now();
    for cycle in 0..CYCLES {
        if rng.usize(0..500) == 0 {
            max_rss = max_rss.max(process_rss_kib(server.child.id()));
            slow.clear();
            server.kill();
            server = ServerProcess::spawn(&dir, &args);
            kills += 1;
        }
        let base = server.url("");
        if sent == finished {
            sent += 1;
            let (status, body) = send(&base, "chaos", &format!("c{sent}"), &format!("prompt {sent}")).await;
            assert!(status == 202, "cycle {cycle}: send answered {status} {body}");
        }
        if rng.usize(0..100) == 0 {
            slow.push(Client::connect(server.addr, "chaos").await);
            stalled += 1;
            if slow.len() > 4 {
                slow.remove(0);
            }
        }
        let mut client = Client::resume(server.addr, engine).await;
        if rng.usize(0..50) == 0 {
            client.ws.send(Message::text("{\"type\":\"subscribe\",\"channel\":")).await.expect("bad frame");
            bad_frames += 1;
        }
        for _ in 0..rng.usize(1..12) {
            let Some(report) = client.pump().await else { break };
            assert_eq!((report.buffered, report.duplicates), (0, 0), "cycle {cycle}: a gap or an overlap");
            if finished + client.finished.len() == sent {
                break;
            }
        }
        finished += client.finished.len();
        engine = client.engine;
        if cycle % 1_000 == 999 {
            max_rss = max_rss.max(process_rss_kib(server.child.id()));
            println!(
                "{:>6} cycles {:>6.1} s: {sent} runs, {kills} kills, {bad_frames} bad frames, {stalled} clients that never read, server RSS {} KiB",
                cycle + 1,
                started.elapsed().as_secs_f64(),
                process_rss_kib(server.child.id())
            );
        }
    }
    let base = server.url("");
    let mut client = Client::resume(server.addr, engine).await;
    while finished + client.finished.len() < sent {
        client.pump().await.expect("the last run ends");
    }
    wait_until_idle(&base, "chaos").await;
    let snapshot = snapshot(&base, "chaos").await;
    while client.engine.cursor().seq < snapshot.seq {
        client.pump().await.expect("caught up");
    }
    assert_eq!(client.engine.state_hash(), snapshot.state_hash, "the client ends with the server's state");
    println!(
        "chaos: {CYCLES} cycles, {sent} runs, {kills} kill -9 restarts, {bad_frames} malformed frames, {stalled} clients that never read, {} messages, max server RSS {max_rss} KiB (bound {CHAOS_RSS_BOUND_KIB}), {:.0} s",
        snapshot.messages.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(max_rss < CHAOS_RSS_BOUND_KIB, "server RSS {max_rss} KiB over the bound");
    server.kill();
}
