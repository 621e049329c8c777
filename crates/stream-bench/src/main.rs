//! `loadgen`: measures a real `stream-server` process on loopback.
//!
//! 1. Delivery: S sessions × K subscribers, the demo provider at full speed;
//!    frames/s delivered to all subscribers, and publish→receive latency,
//!    probed in band: every 50 events the demo sends a `status` frame whose
//!    metadata carries its send time (`probe_us`), and each subscriber takes
//!    the time from it to its receipt. That is the whole pipeline (provider,
//!    sequencer, group commit, fan-out, socket write) and nothing else. The
//!    probe also carries when its pacing meant it to go (`due_us`); the side
//!    by side reports latency from there too, which counts a server's late
//!    timers (a backlog before the send) as well.
//! 2. Memory: server RSS per idle connection at 10,000 idle connections.
//! 3. Resume: time to catch up a 10,000-frame gap, from the memory ring and
//!    from SQLite (the server restarted with a tiny ring), and by Durable
//!    Streams long-poll catch-up (`GET /v1/sessions/{id}/stream`, page by page).
//! 4. SSE delivery: the full-speed case of 1, read by SSE readers of
//!    `/v1/sessions/{id}/stream?live=sse` instead of WebSocket subscribers.
//! 5. Scale-out: delivery at full speed and paced, side by side, on one node
//!    on SQLite and on two nodes sharing one Redis (subscribers spread over
//!    both); Redis's commands and bytes per frame; and a 10,000-frame resume
//!    on a node that has not loaded the session (a fresh process each time),
//!    on SQLite and on Redis.
//!
//! 6. Side by side with a plain Node.js server (`baseline/server.mjs`): the
//!    paced cases of 1 at 1,000 subscribers and idle memory (see `versus`).
//!
//! Usage: `loadgen --server target/release/stream-server [--quick] [--idle-only] [--delivery-only] [--versus-only]`.
//! Prints a table and writes `target/bench/server.json` (`--idle-only`: only
//! the idle-connection figure, printed; `--delivery-only`: only the delivery
//! table of 1; `--versus-only`: only the side by side).

use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use stream_server::local_redis::{Fsync, LocalRedis};
use stream_server::probe::{due_times, probe_times, unix_micros};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use versus::baseline_script;

mod versus;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Where the sessions live: one node on its SQLite file, or several nodes
/// sharing one Redis (AOF, fsync every second, as SQLite's NORMAL sync).
/// Or, for comparison, the plain Node.js server of `baseline/server.mjs`.
struct Deployment {
    nodes: Vec<Server>,
    redis: Option<LocalRedis>,
    baseline: bool,
}

impl Deployment {
    fn sqlite(binary: &Path, dir: &Path, args: &[&str]) -> Self {
        Self { nodes: vec![Server::spawn(binary, dir, args)], redis: None, baseline: false }
    }

    fn baseline(dir: &Path, args: &[&str]) -> Self {
        Self { nodes: vec![Server::baseline(dir, args)], redis: None, baseline: true }
    }

    fn redis(binary: &Path, dir: &Path, args: &[&str], nodes: usize) -> Self {
        let redis = LocalRedis::start_with(&dir.join("redis"), Fsync::EverySecond)
            .expect("redis-server (just setup installs it)");
        let nodes = (0..nodes).map(|node| Self::node(binary, dir, &redis, node, args)).collect();
        Self { nodes, redis: Some(redis), baseline: false }
    }

    /// Node `node` on `redis`, with its own data directory.
    fn node(binary: &Path, dir: &Path, redis: &LocalRedis, node: usize, args: &[&str]) -> Server {
        let url = redis.url();
        let mut with_redis = vec!["--redis-url", &url];
        with_redis.extend_from_slice(args);
        Server::spawn(binary, &dir.join(format!("node{node}")), &with_redis)
    }

    fn name(&self) -> String {
        match self.redis {
            None if self.baseline => "plain Node server".to_owned(),
            None => "SQLite, 1 node".to_owned(),
            Some(_) => format!("Redis, {} nodes", self.nodes.len()),
        }
    }

    /// Redis's counts so far.
    fn redis_counts(&self) -> Option<RedisCounts> {
        let redis = self.redis.as_ref()?;
        let commands = redis.info("commandstats").ok()?;
        // `cmdstat_<name>:calls=<n>,...`, the commands run inside scripts included.
        let calls: Vec<(&str, u64)> = commands
            .lines()
            .filter_map(|line| {
                let (name, rest) = line.strip_prefix("cmdstat_")?.split_once(':')?;
                Some((name, rest.strip_prefix("calls=")?.split(',').next()?.parse().ok()?))
            })
            .collect();
        let calls_of = |name: &str| calls.iter().filter(|(command, _)| *command == name).map(|(_, n)| n).sum::<u64>();
        let stats = redis.info("stats").ok()?;
        let stat = |name: &str| {
            stats.lines().find_map(|line| line.strip_prefix(name)?.strip_prefix(':')?.trim().parse::<u64>().ok())
        };
        Some(RedisCounts {
            commands: calls.iter().map(|(_, n)| n).sum(),
            scripts: calls_of("evalsha") + calls_of("eval"),
            follower_reads: calls_of("xread"),
            bytes_in: stat("total_net_input_bytes")?,
            bytes_out: stat("total_net_output_bytes")?,
        })
    }

    /// Frames committed by every node.
    async fn frames_committed(&self) -> u64 {
        let mut committed = 0;
        for node in &self.nodes {
            let text = reqwest::get(node.url("/metrics")).await.expect("metrics").text().await.expect("body");
            committed += text
                .lines()
                .filter(|line| line.starts_with("stream_frames_committed_total"))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>() as u64;
        }
        committed
    }
}

/// What Redis counted: commands run (inside scripts too), write scripts,
/// the followers' reads, and network bytes.
#[derive(Debug, Clone, Copy, Default)]
struct RedisCounts {
    commands: u64,
    scripts: u64,
    follower_reads: u64,
    bytes_in: u64,
    bytes_out: u64,
}

impl RedisCounts {
    /// Each count since `before`, per one of `frames`.
    fn per_frame(&self, before: &Self, frames: f64) -> [f64; 5] {
        let per = |to: u64, from: u64| (to - from) as f64 / frames;
        [
            per(self.commands, before.commands),
            per(self.scripts, before.scripts),
            per(self.follower_reads, before.follower_reads),
            per(self.bytes_in, before.bytes_in),
            per(self.bytes_out, before.bytes_out),
        ]
    }
}

/// A server process with its own data directory.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// `stream-server` on `data_dir`.
    fn spawn(binary: &Path, data_dir: &Path, args: &[&str]) -> Self {
        Self::start(Command::new(binary), data_dir, args)
    }

    /// The plain Node server (`baseline/server.mjs`, which takes the same flags).
    fn baseline(data_dir: &Path, args: &[&str]) -> Self {
        let mut node = Command::new("node");
        node.arg(baseline_script());
        Self::start(node, data_dir, args)
    }

    fn start(mut program: Command, data_dir: &Path, args: &[&str]) -> Self {
        let mut child = program
            .args(["--bind", "127.0.0.1:0", "--web-dir", "/nonexistent", "--log", "error", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .spawn()
            .expect("start the server");
        let mut banner = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut banner).expect("banner");
        let addr = stream_server::address_from_banner(&banner).unwrap_or_else(|| panic!("no address in {banner:?}"));
        Self { child, addr }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.split_whitespace().next()?.parse().ok())
            .unwrap_or(0)
    }

    /// CPU seconds (user and system, every thread) the process has used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        // After the command name (in parentheses, may hold spaces) come the
        // fields from the state on: utime and stime are the 12th and 13th.
        let fields: Vec<&str> = stat.rsplit_once(')').map_or("", |(_, rest)| rest).split_whitespace().collect();
        let ticks: u64 = fields.get(11..13).map_or(0, |times| times.iter().filter_map(|t| t.parse::<u64>().ok()).sum());
        // /proc counts in USER_HZ, which Linux fixes at 100 for user space.
        ticks as f64 / 100.0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A client socket. Its read buffer is small: the library zero-fills the
/// buffer's free space on every read (128 KiB by default), which would make
/// the generator, not the server, the bottleneck on shared cores.
async fn connect(addr: SocketAddr) -> Socket {
    let config = WebSocketConfig::default().read_buffer_size(READ_BUFFER_BYTES);
    let (mut socket, _) =
        tokio_tungstenite::connect_async_with_config(format!("ws://{addr}/v1/ws"), Some(config), true)
            .await
            .expect("connect");
    next_text(&mut socket).await.expect("hello");
    socket
}

async fn next_text(socket: &mut Socket) -> Option<String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(60), socket.next()).await.ok()?? {
            Ok(Message::Text(text)) => return Some(text.to_string()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => {}
        }
    }
}

async fn subscribe(socket: &mut Socket, channel: &str, cursor: Option<(&str, u64)>) {
    let mut frame = json!({ "type": "subscribe", "channel": channel });
    if let Some((epoch, after_seq)) = cursor {
        frame["epoch"] = json!(epoch);
        frame["after_seq"] = json!(after_seq);
    }
    socket.send(Message::text(frame.to_string())).await.expect("subscribe");
}

/// A client whose pooled connections are let go before the Node server's
/// keep-alive (5 s) closes them: one reused as it closes is reset.
fn http_client() -> reqwest::Client {
    reqwest::Client::builder().pool_idle_timeout(Duration::from_secs(2)).build().expect("an HTTP client")
}

async fn post_send(http: &reqwest::Client, server: &Server, session: &str, id: &str) {
    let response = http
        .post(server.url(&format!("/v1/sessions/{session}/messages")))
        .json(&json!({ "client_message_id": id, "content": format!("load {id}") }))
        .send()
        .await
        .expect("send");
    assert_eq!(response.status().as_u16(), 202, "send {id}");
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Sequenced frames in one WebSocket message, counted without a full parse
/// so the generator stays light next to the server on the same cores.
fn count_frames(text: &str) -> usize {
    text.matches("\"seq\":").count()
}

/// Each client socket's read buffer.
const READ_BUFFER_BYTES: usize = 4096;

/// Events between two in-band probes of the demo provider.
const PROBE_EVERY: usize = 50;

struct Delivery {
    delta_ms: u64,
    sessions: usize,
    subscribers: usize,
    frames: u64,
    seconds: f64,
    /// From each probe's send time to its receipt, sorted.
    latency_ms: Vec<f64>,
    /// From the time each probe was due (its pacing's deadline) to its receipt, sorted.
    due_latency_ms: Vec<f64>,
    /// CPU seconds the deployment's servers used while it delivered.
    server_cpu_seconds: f64,
}

/// The demo provider's flags for a delivery case.
fn demo_args(words: usize, delta_ms: u64) -> Vec<String> {
    let args = ["--demo-delta-ms", &delta_ms.to_string(), "--demo-reply-words", &words.to_string()];
    let mut args: Vec<String> = args.iter().map(|arg| arg.to_string()).collect();
    args.extend(["--demo-probe-every".to_owned(), PROBE_EVERY.to_string()]);
    args
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// One delivery case on `deployment`: subscribers spread over its nodes,
/// the sends to the first.
async fn delivery(deployment: &Deployment, sessions: usize, subscribers: usize, delta_ms: u64) -> Delivery {
    let server = &deployment.nodes[0];
    let http = http_client();
    // Per probe received: from its send time, and from when it was due.
    let latencies: Arc<Mutex<(Vec<f64>, Vec<f64>)>> = Arc::default();
    let mut readers = Vec::new();
    for session in 0..sessions {
        for subscriber in 0..subscribers {
            let node = &deployment.nodes[(session * subscribers + subscriber) % deployment.nodes.len()];
            let mut socket = connect(node.addr).await;
            let channel = format!("load{session}");
            subscribe(&mut socket, &channel, None).await;
            next_text(&mut socket).await.expect("subscribed");
            next_text(&mut socket).await.expect("snapshot");
            let latencies = Arc::clone(&latencies);
            readers.push(tokio::spawn(async move {
                let mut frames = 0u64;
                while let Some(text) = next_text(&mut socket).await {
                    frames += count_frames(&text) as u64;
                    let received = unix_micros();
                    let age_ms = |at: u64| received.saturating_sub(at) as f64 / 1e3;
                    // Only a text that holds a probe takes the shared lock.
                    let mut from_sent = probe_times(&text).map(age_ms).peekable();
                    if from_sent.peek().is_some() {
                        let (sent, due) = &mut *latencies.lock().expect("latencies");
                        sent.extend(from_sent);
                        due.extend(due_times(&text).map(age_ms));
                    }
                    if text.contains("\"run_finished\"") {
                        break;
                    }
                }
                frames
            }));
        }
    }
    let cpu_used = || deployment.nodes.iter().map(Server::cpu_seconds).sum::<f64>();
    let cpu_before = cpu_used();
    let started = Instant::now();
    for session in 0..sessions {
        post_send(&http, server, &format!("load{session}"), "c1").await;
    }
    let mut frames = 0;
    for reader in readers {
        frames += reader.await.expect("reader");
    }
    let seconds = started.elapsed().as_secs_f64();
    let server_cpu_seconds = cpu_used() - cpu_before;
    let (mut latency_ms, mut due_latency_ms) = std::mem::take(&mut *latencies.lock().expect("latencies"));
    latency_ms.sort_by(f64::total_cmp);
    due_latency_ms.sort_by(f64::total_cmp);
    Delivery { delta_ms, sessions, subscribers, frames, seconds, latency_ms, due_latency_ms, server_cpu_seconds }
}

/// Frames/s delivered to `readers` SSE readers of each of `sessions` sessions.
async fn sse_delivery(binary: &Path, dir: &Path, sessions: usize, readers: usize, words: usize) -> (u64, f64) {
    let words = words.to_string();
    let server = Server::spawn(binary, dir, &["--demo-delta-ms", "0", "--demo-reply-words", &words]);
    let http = http_client();
    for session in 0..sessions {
        // A first run makes each session exist before its readers follow it.
        post_send(&http, &server, &format!("sse{session}"), "c0").await;
        wait_idle(&http, &server, &format!("sse{session}")).await;
    }
    let mut tasks = Vec::new();
    for session in 0..sessions {
        let url = server.url(&format!("/v1/sessions/sse{session}/stream?offset=now&live=sse"));
        for _ in 0..readers {
            let mut response = http.get(&url).send().await.expect("sse");
            assert_eq!(response.status().as_u16(), 200);
            tasks.push(tokio::spawn(async move {
                let (mut frames, mut pending) = (0u64, String::new());
                while let Ok(Some(chunk)) = response.chunk().await {
                    pending.push_str(&String::from_utf8_lossy(&chunk));
                    // Only whole events are counted: a key is never split between chunks.
                    let Some(end) = pending.rfind("\n\n") else { continue };
                    let events: String = pending.drain(..end + 2).collect();
                    frames += count_frames(&events) as u64;
                    if events.contains("\"run_finished\"") {
                        break;
                    }
                }
                frames
            }));
        }
    }
    // Each session's first run ended before the readers came; the second is measured.
    let started = Instant::now();
    for session in 0..sessions {
        post_send(&http, &server, &format!("sse{session}"), "c1").await;
    }
    let mut frames = 0;
    for task in tasks {
        frames += task.await.expect("reader");
    }
    (frames, frames as f64 / started.elapsed().as_secs_f64())
}

async fn wait_idle(http: &reqwest::Client, server: &Server, session: &str) {
    loop {
        let snapshot: serde_json::Value = http
            .get(server.url(&format!("/v1/sessions/{session}")))
            .send()
            .await
            .expect("get")
            .json()
            .await
            .expect("json");
        if snapshot["run"].is_null() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Milliseconds to catch up `gap` frames by Durable Streams long-poll reads, page by page.
async fn long_poll_catch_up(server: &Server, session: &str, after: u64, gap: u64) -> f64 {
    let http = http_client();
    let started = Instant::now();
    let (mut offset, mut received) = (format!("{:016}_{after:016}", 0), 0u64);
    while received < gap {
        let url = server.url(&format!("/v1/sessions/{session}/stream?offset={offset}&live=long-poll"));
        let response = http.get(url).send().await.expect("long-poll");
        offset = response.headers()["stream-next-offset"].to_str().expect("offset").to_owned();
        received += count_frames(&response.text().await.expect("page")) as u64;
    }
    started.elapsed().as_secs_f64() * 1e3
}

/// `server`'s RSS before and after `connections` idle connections, and the bytes per connection.
async fn idle_memory(server: Server, connections: usize) -> (u64, u64, f64) {
    // Warm up the allocator and the runtime with a few connections first.
    let warm: Vec<Socket> = futures_util::future::join_all((0..16).map(|_| connect(server.addr))).await;
    drop(warm);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = server.rss_kib();
    let mut sockets = Vec::with_capacity(connections);
    for chunk in 0..connections.div_ceil(500) {
        let count = 500.min(connections - chunk * 500);
        sockets.extend(futures_util::future::join_all((0..count).map(|_| connect(server.addr))).await);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = server.rss_kib();
    drop(sockets);
    (before, after, (after.saturating_sub(before)) as f64 * 1024.0 / connections as f64)
}

/// The demo flags of a reply long enough to leave a `gap`-frame log.
fn gap_args(gap: u64) -> [String; 4] {
    ["--demo-delta-ms".into(), "0".into(), "--demo-reply-words".into(), (gap + 100).to_string()]
}

/// Runs one reply in session `gap` on `server`; returns its epoch and head.
async fn seed_gap_session(server: &Server) -> (String, u64) {
    let mut socket = connect(server.addr).await;
    subscribe(&mut socket, "gap", None).await;
    post_send(&http_client(), server, "gap", "c1").await;
    while let Some(text) = next_text(&mut socket).await {
        if text.contains("\"run_finished\"") {
            break;
        }
    }
    let snapshot: serde_json::Value =
        reqwest::get(server.url("/v1/sessions/gap")).await.expect("get").json().await.expect("json");
    (snapshot["epoch"].as_str().expect("epoch").to_owned(), snapshot["seq"].as_u64().expect("seq"))
}

/// Milliseconds from a subscribe `gap` frames behind the head to the last of them.
async fn time_replay(server: &Server, epoch: &str, head: u64, gap: u64) -> f64 {
    let mut socket = connect(server.addr).await;
    let started = Instant::now();
    subscribe(&mut socket, "gap", Some((epoch, head - gap))).await;
    let mut received = 0u64;
    while received < gap {
        received += count_frames(&next_text(&mut socket).await.expect("replay")) as u64;
    }
    started.elapsed().as_secs_f64() * 1e3
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

async fn resume_gap(binary: &Path, dir: &Path, gap: u64) -> (f64, f64, f64) {
    let (epoch, head) = seed_gap_session(&Server::spawn(binary, dir, &strs(&gap_args(gap)))).await;
    let measure = |args: &'static [&'static str]| {
        let epoch = epoch.clone();
        async move {
            let server = Server::spawn(binary, dir, args);
            let mut samples = Vec::new();
            for _ in 0..5 {
                samples.push(time_replay(&server, &epoch, head, gap).await);
            }
            median(samples)
        }
    };
    let from_memory = measure(&[]).await;
    let from_log = measure(&["--ring-frames", "16"]).await;
    let server = Server::spawn(binary, dir, &[]);
    let mut samples = Vec::new();
    for _ in 0..5 {
        samples.push(long_poll_catch_up(&server, "gap", head - gap, gap).await);
    }
    (from_memory, from_log, median(samples))
}

/// Milliseconds of a `gap`-frame resume on a node that has not loaded the
/// session (a fresh process each time, the median of 5): on SQLite, the
/// node restarted on its file; on Redis, a new node on the same Redis.
async fn cold_resume(binary: &Path, dir: &Path, on_redis: bool, gap: u64) -> f64 {
    let args = gap_args(gap);
    let Deployment { nodes, redis, .. } = if on_redis {
        Deployment::redis(binary, dir, &strs(&args), 1)
    } else {
        Deployment::sqlite(binary, dir, &strs(&args))
    };
    let (epoch, head) = seed_gap_session(&nodes[0]).await;
    drop(nodes);
    let mut samples = Vec::new();
    for sample in 0..5 {
        let node = match &redis {
            Some(redis) => Deployment::node(binary, dir, redis, sample + 1, &[]),
            None => Server::spawn(binary, dir, &[]),
        };
        samples.push(time_replay(&node, &epoch, head, gap).await);
    }
    median(samples)
}

/// Scale-out, side by side: one node on SQLite, two on one Redis.
struct ScaleOut {
    /// Per deployment: its name, the full-speed case and the paced case.
    rows: Vec<(String, Delivery, Delivery)>,
    /// Redis's counts per frame committed (full speed), as [`RedisCounts::per_frame`].
    redis_per_frame: [f64; 5],
    /// The 10,000-frame resume on a node that has not loaded the session: SQLite, Redis.
    cold_resume_ms: (f64, f64),
}

async fn scale_out(binary: &Path, words: usize, paced_words: usize) -> ScaleOut {
    let (mut rows, mut redis_per_frame) = (Vec::new(), [f64::NAN; 5]);
    for on_redis in [false, true] {
        let deploy = |dir: &Path, args: Vec<String>| {
            if on_redis {
                Deployment::redis(binary, dir, &strs(&args), 2)
            } else {
                Deployment::sqlite(binary, dir, &strs(&args))
            }
        };
        let dir = temp_dir("scale-full");
        let deployment = deploy(&dir, demo_args(words, 0));
        let (before, committed_before) = (deployment.redis_counts(), deployment.frames_committed().await);
        let full = delivery(&deployment, 10, 10, 0).await;
        let committed = (deployment.frames_committed().await - committed_before) as f64;
        if let (Some(before), Some(after)) = (before, deployment.redis_counts()) {
            redis_per_frame = after.per_frame(&before, committed);
        }
        let name = deployment.name();
        drop(deployment);
        let _ = std::fs::remove_dir_all(dir);
        let dir = temp_dir("scale-paced");
        let deployment = deploy(&dir, demo_args(paced_words / 4, 20));
        let paced = delivery(&deployment, 10, 100, 20).await;
        drop(deployment);
        let _ = std::fs::remove_dir_all(dir);
        rows.push((name, full, paced));
    }
    let mut cold = [0.0; 2];
    for (slot, on_redis) in cold.iter_mut().zip([false, true]) {
        let dir = temp_dir("scale-resume");
        *slot = cold_resume(binary, &dir, on_redis, 10_000).await;
        let _ = std::fs::remove_dir_all(dir);
    }
    ScaleOut { rows, redis_per_frame, cold_resume_ms: (cold[0], cold[1]) }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stream-loadgen-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let binary = args
        .windows(2)
        .find(|pair| pair[0] == "--server")
        .map(|pair| PathBuf::from(&pair[1]))
        .unwrap_or_else(|| PathBuf::from("target/release/stream-server"));
    let quick = args.iter().any(|arg| arg == "--quick");
    // Replies long enough that the load lasts seconds while latency is probed.
    let (words, idle) = if quick { (2_000, 1_000) } else { (10_000, 10_000) };
    if args.iter().any(|arg| arg == "--idle-only") {
        let dir = temp_dir("idle");
        let (before, after, bytes) = idle_memory(Server::spawn(&binary, &dir, &[]), idle).await;
        let _ = std::fs::remove_dir_all(dir);
        println!("idle connections: {idle}, server RSS {before} KiB -> {after} KiB, {bytes:.0} bytes per connection");
        return;
    }

    // Full speed measures capacity (latency there is queueing behind the
    // firehose); the paced cases (a delta every 5 or 20 ms per session, as
    // fast as or faster than models stream) measure latency at sustained
    // loads, side by side with the plain Node server.
    let paced_words = words / 10;
    if args.iter().any(|arg| arg == "--delivery-only") {
        report_delivery(&delivery_cases(&binary, words, paced_words).await, words);
        return;
    }
    let versus = versus::run(&binary, paced_words, idle).await;
    if args.iter().any(|arg| arg == "--versus-only") {
        versus.report(idle);
        return;
    }
    let cases = delivery_cases(&binary, words, paced_words).await;
    let scale_out = scale_out(&binary, words, paced_words).await;
    let (rss_before, rss_after, bytes_per_idle) = versus.idle;
    let dir = temp_dir("resume");
    let (resume_memory_ms, resume_log_ms, resume_long_poll_ms) = resume_gap(&binary, &dir, 10_000).await;
    let _ = std::fs::remove_dir_all(dir);
    let dir = temp_dir("sse");
    let (sse_frames, sse_rate) = sse_delivery(&binary, &dir, 10, 10, words).await;
    let _ = std::fs::remove_dir_all(dir);

    let json_cases = report_delivery(&cases, words);
    let json_versus = versus.report(idle);
    // The fan-out target: p99 at 1,000 subscribers under the paced load.
    if let Some(row) = versus.paced.iter().find(|row| row.delta_ms == 20) {
        let (p99, rate) = (row.ours.p99_ms, row.ours.frames_per_second);
        let verdict = if p99 <= 10.0 { "met" } else { "NOT MET" };
        println!(
            "target: p99 publish->receive at 1,000 subscribers, {rate:.0} frames/s: {p99:.2} ms (<= 10) {verdict}"
        );
    }
    println!(
        "resume of a 10,000-frame gap (median of 5): {resume_memory_ms:.1} ms from memory, {resume_log_ms:.1} ms from SQLite, {resume_long_poll_ms:.1} ms by Durable Streams long-poll"
    );
    let websocket_rate = cases
        .iter()
        .find(|case| case.sessions == 10 && case.subscribers == 10 && case.delta_ms == 0)
        .map_or(f64::NAN, |case| case.frames as f64 / case.seconds);
    println!(
        "SSE delivery, 10 sessions x 10 readers at full speed: {sse_frames} frames, {sse_rate:.0} frames/s ({:.2}x the WebSocket's {websocket_rate:.0})",
        sse_rate / websocket_rate
    );
    println!("scale-out, side by side (Redis: AOF, fsync every second; subscribers spread over the nodes)");
    println!(
        "{:>16} {:>22} {:>24} {:>10} {:>10}",
        "deployment", "full speed frames/s", "paced 20 ms frames/s", "p50 ms", "p99 ms"
    );
    let mut json_scale = Vec::new();
    for (name, full, paced) in &scale_out.rows {
        let (full_rate, paced_rate) = (full.frames as f64 / full.seconds, paced.frames as f64 / paced.seconds);
        let (p50, p99) = (percentile(&paced.latency_ms, 0.5), percentile(&paced.latency_ms, 0.99));
        println!("{name:>16} {full_rate:>22.0} {paced_rate:>24.0} {p50:>10.2} {p99:>10.2}");
        json_scale.push(json!({
            "deployment": name,
            "full_speed_frames_per_second": full_rate,
            "paced_frames_per_second": paced_rate,
            "paced_latency_p50_ms": p50,
            "paced_latency_p99_ms": p99,
        }));
    }
    if let [(_, sqlite, _), (_, redis, _)] = &scale_out.rows[..] {
        let ratio = (redis.frames as f64 / redis.seconds) / (sqlite.frames as f64 / sqlite.seconds);
        println!("full-speed delivery, Redis with 2 nodes / SQLite with 1: {ratio:.2}x");
    }
    let [commands, scripts, reads, bytes_in, bytes_out] = scale_out.redis_per_frame;
    println!(
        "Redis per frame committed (full speed, 2 nodes): {commands:.2} commands run ({scripts:.4} write scripts, {reads:.4} follower reads), {bytes_in:.0} bytes in, {bytes_out:.0} bytes out"
    );
    let (cold_sqlite, cold_redis) = scale_out.cold_resume_ms;
    println!(
        "resume of a 10,000-frame gap on a node that has not loaded the session (median of 5): {cold_sqlite:.1} ms on SQLite, {cold_redis:.1} ms on Redis"
    );
    let report = json!({
        "benchmark": "stream-server load",
        "scale_out": json_scale,
        "redis_commands_per_frame": commands,
        "redis_write_scripts_per_frame": scripts,
        "redis_follower_reads_per_frame": reads,
        "redis_bytes_in_per_frame": bytes_in,
        "redis_bytes_out_per_frame": bytes_out,
        "resume_10000_gap_cold_sqlite_ms": cold_sqlite,
        "resume_10000_gap_cold_redis_ms": cold_redis,
        "reply_words": words,
        "delivery": json_cases,
        "side_by_side": json_versus,
        "idle_connections": idle,
        "rss_before_kib": rss_before,
        "rss_after_kib": rss_after,
        "bytes_per_idle_connection": bytes_per_idle,
        "resume_10000_gap_memory_ms": resume_memory_ms,
        "resume_10000_gap_sqlite_ms": resume_log_ms,
        "resume_10000_gap_long_poll_ms": resume_long_poll_ms,
        "sse_delivery_frames": sse_frames,
        "sse_delivery_frames_per_second": sse_rate,
    });
    let dir = Path::new("target/bench");
    std::fs::create_dir_all(dir).expect("target/bench");
    std::fs::write(dir.join("server.json"), serde_json::to_string_pretty(&report).expect("json")).expect("write");
    println!("wrote target/bench/server.json");
}

/// The delivery cases of 1: one paced session, then full speed at 10 × 10
/// and 10 × 100, each on a fresh server.
async fn delivery_cases(binary: &Path, words: usize, paced_words: usize) -> Vec<Delivery> {
    let mut cases = Vec::new();
    for (sessions, subscribers, words, delta_ms) in
        [(1, 1, paced_words / 4, 20), (10, 10, words, 0), (10, 100, words, 0)]
    {
        let dir = temp_dir("delivery");
        let deployment = Deployment::sqlite(binary, &dir, &strs(&demo_args(words, delta_ms)));
        cases.push(delivery(&deployment, sessions, subscribers, delta_ms).await);
        drop(deployment);
        let _ = std::fs::remove_dir_all(dir);
    }
    cases
}

/// Prints the delivery table and returns its rows for the JSON report.
fn report_delivery(cases: &[Delivery], words: usize) -> Vec<serde_json::Value> {
    println!("stream-server load ({} cores), demo provider, {words} words per reply at full speed", num_cpus());
    println!(
        "{:>9} {:>9} {:>12} {:>12} {:>12} {:>10} {:>10}",
        "delta ms", "sessions", "subscribers", "frames", "frames/s", "p50 ms", "p99 ms"
    );
    let mut json_cases = Vec::new();
    for case in cases {
        let rate = case.frames as f64 / case.seconds;
        let (p50, p99) = (percentile(&case.latency_ms, 0.5), percentile(&case.latency_ms, 0.99));
        println!(
            "{:>9} {:>9} {:>12} {:>12} {:>12.0} {:>10.2} {:>10.2}",
            case.delta_ms,
            case.sessions,
            case.sessions * case.subscribers,
            case.frames,
            rate,
            p50,
            p99
        );
        json_cases.push(json!({
            "demo_delta_ms": case.delta_ms,
            "sessions": case.sessions,
            "subscribers_total": case.sessions * case.subscribers,
            "frames_delivered": case.frames,
            "seconds": case.seconds,
            "frames_per_second": rate,
            "latency_samples": case.latency_ms.len(),
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
        }));
    }
    json_cases
}

fn num_cpus() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}
