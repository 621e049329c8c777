//! Test harness: a real server on port 0 (in-process, or as the binary for
//! crash tests), and a native client built on stream-core's engine and
//! tokio-tungstenite.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use stream_core::{IngestReport, RunEvent, SessionEngine, Snapshot};
use stream_server::local_redis::LocalRedis;
use stream_server::{AppState, Config};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single wait in a test may take before it fails.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A directory removed when dropped. As a server's data directory it also
/// holds the server's Redis when the tests run on Redis
/// (`STREAM_TEST_STORE=redis`, as `just test-redis` sets): started at the
/// first server, kept across that server's restarts.
pub struct TempDir(pub PathBuf, OnceLock<LocalRedis>);

impl TempDir {
    pub fn new(name: &str) -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "stream-test-{name}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        Self(dir, OnceLock::new())
    }

    /// The Redis of a server with its data here, when the tests run on Redis.
    pub fn redis_url(&self) -> Option<String> {
        if std::env::var("STREAM_TEST_STORE").as_deref() != Ok("redis") {
            return None;
        }
        let redis = self.1.get_or_init(|| LocalRedis::start(&self.0.join("redis")).expect("redis-server"));
        Some(redis.url())
    }

    /// Its Redis, to stop and start it, when the tests run on Redis.
    pub fn redis(&mut self) -> Option<&mut LocalRedis> {
        self.1.get_mut()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        drop(self.1.take());
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A server running in this process.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<AppState>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    pub dir: TempDir,
}

impl TestServer {
    pub async fn start(tweak: impl FnOnce(&mut Config)) -> Self {
        Self::start_in(TempDir::new("server"), tweak).await
    }

    pub async fn start_in(dir: TempDir, tweak: impl FnOnce(&mut Config)) -> Self {
        let mut config = Config::for_data_dir(&dir.0);
        config.demo_delta_ms = 0;
        config.web_dir = Some(dir.0.join("no-web"));
        config.redis_url = dir.redis_url();
        tweak(&mut config);
        let state = AppState::open(config).await.expect("server state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address");
        let (stop, stopped) = oneshot::channel::<()>();
        let serving = Arc::clone(&state);
        let task = tokio::spawn(async move {
            stream_server::serve(serving, listener, async move {
                let _ = stopped.await;
            })
            .await
            .expect("serve");
        });
        Self { addr, state, stop: Some(stop), task: Some(task), dir }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Graceful stop; returns the data directory for a restart.
    pub async fn stop(mut self) -> TempDir {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(PATIENCE, task).await;
        }
        let dir = std::mem::replace(&mut self.dir, TempDir(PathBuf::new(), OnceLock::new()));
        std::mem::forget(self);
        dir
    }
}

/// Posts a send; returns the status and JSON body.
pub async fn send(base: &str, session: &str, client_message_id: &str, content: &str) -> (u16, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{base}/v1/sessions/{session}/messages"))
        .json(&serde_json::json!({ "client_message_id": client_message_id, "content": content }))
        .send()
        .await
        .expect("send");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(serde_json::Value::Null))
}

/// `GET /v1/sessions/{id}` as a snapshot.
pub async fn snapshot(base: &str, session: &str) -> Snapshot {
    let text = reqwest::get(format!("{base}/v1/sessions/{session}")).await.expect("get").text().await.expect("body");
    serde_json::from_str(&text).unwrap_or_else(|error| panic!("snapshot {text}: {error}"))
}

/// Polls the session until no run is going.
pub async fn wait_until_idle(base: &str, session: &str) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while snapshot(base, session).await.run.is_some() {
        assert!(tokio::time::Instant::now() < deadline, "the run did not end in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A metric's value from `/metrics` (0 when absent).
pub async fn metric(base: &str, name: &str) -> f64 {
    let text = reqwest::get(format!("{base}/metrics")).await.expect("metrics").text().await.expect("body");
    text.lines()
        .filter(|line| line.starts_with(name))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A client on one channel: a socket and the engine it feeds.
pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
    pub engine: SessionEngine,
    pub finished: Vec<RunEvent>,
    pub frames_seen: usize,
}

impl Client {
    pub async fn connect(addr: SocketAddr, channel: &str) -> Self {
        Self::resume(addr, SessionEngine::new(channel)).await
    }

    /// Connects with an existing engine (its cursor) and subscribes.
    pub async fn resume(addr: SocketAddr, engine: SessionEngine) -> Self {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/v1/ws")).await.expect("connect");
        let mut client = Self { ws, engine, finished: Vec::new(), frames_seen: 0 };
        let hello = client.next_text().await.expect("hello");
        assert!(hello.contains(r#""type":"hello""#), "{hello}");
        let subscribe = serde_json::to_string(&client.engine.subscribe_frame()).expect("subscribe");
        client.ws.send(Message::text(subscribe)).await.expect("send subscribe");
        client
    }

    pub async fn next_text(&mut self) -> Option<String> {
        loop {
            match tokio::time::timeout(PATIENCE, self.ws.next()).await.expect("no message in time") {
                Some(Ok(Message::Text(text))) => return Some(text.to_string()),
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                Some(Ok(_)) => continue,
            }
        }
    }

    /// Feeds one WebSocket message to the engine; asserts it was clean and
    /// asked for no resync (the server catches a lagging subscription up
    /// itself).
    pub async fn pump(&mut self) -> Option<IngestReport> {
        let text = self.next_text().await?;
        let report = self.engine.ingest(&text, 0);
        assert!(report.errors.is_empty(), "{:?} in {text}", report.errors);
        assert_eq!(report.need_resync, None, "after {text}");
        self.frames_seen += report.applied;
        for event in &report.run_events {
            if matches!(event, RunEvent::Finished { .. }) {
                self.finished.push(event.clone());
            }
        }
        Some(report)
    }

    /// Pumps until `runs` runs have finished.
    pub async fn until_finished(&mut self, runs: usize) {
        while self.finished.len() < runs {
            self.pump().await.expect("socket closed before the run finished");
        }
    }
}

/// Drives `runs` runs in `session` (each sent when the last has finished)
/// while its client disconnects and resumes at least `cycles` times, each
/// time on a node (`addr`, base URL) `nodes` picks at random, from `seed`.
/// Each connection must deliver in order from the cursor: a held frame would
/// be a gap, a duplicate an overlap. Returns the engine at the end.
pub async fn resume_cycles(
    session: &str,
    runs: usize,
    cycles: usize,
    seed: u64,
    nodes: &[(SocketAddr, String)],
) -> SessionEngine {
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut engine = SessionEngine::new(session);
    let (mut sent, mut finished, mut cycle) = (0, 0, 0);
    while cycle < cycles || finished < runs {
        if sent == finished && sent < runs {
            sent += 1;
            let (_, base) = &nodes[rng.usize(0..nodes.len())];
            let (status, body) = send(base, session, &format!("c{sent}"), &format!("prompt {sent}")).await;
            assert_eq!(status, 202, "{body}");
        }
        let (addr, _) = &nodes[rng.usize(0..nodes.len())];
        let mut client = Client::resume(*addr, engine).await;
        for _ in 0..rng.usize(1..12) {
            let Some(report) = client.pump().await else { break };
            assert_eq!((report.buffered, report.duplicates), (0, 0), "cycle {cycle}");
            if finished + client.finished.len() == sent {
                break;
            }
        }
        finished += client.finished.len();
        engine = client.engine;
        cycle += 1;
    }
    assert_eq!(finished, runs);
    engine
}

/// The stream-server binary, for tests that kill it.
pub struct ServerProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
}

impl ServerProcess {
    pub fn spawn(data_dir: &TempDir, extra: &[&str]) -> Self {
        Self::spawn_logging(data_dir, extra, "warn", std::process::Stdio::inherit())
    }

    /// Spawns with a log filter, its log written to `stderr`.
    pub fn spawn_logging(data_dir: &TempDir, extra: &[&str], log: &str, stderr: std::process::Stdio) -> Self {
        Self::spawn_node(data_dir, data_dir.redis_url().as_deref(), extra, log, stderr)
    }

    /// Spawns one node of several on the Redis at `redis_url` (`None`: on SQLite alone).
    pub fn spawn_node(
        data_dir: &TempDir,
        redis_url: Option<&str>,
        extra: &[&str],
        log: &str,
        stderr: std::process::Stdio,
    ) -> Self {
        use std::io::BufRead;
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_stream-server"));
        if let Some(url) = redis_url {
            command.args(["--redis-url", url]);
        }
        let mut child = command
            .args(["--bind", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir.0)
            .args(["--web-dir", "/nonexistent", "--log", log])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn server");
        let stdout = child.stdout.take().expect("stdout");
        let mut line = String::new();
        std::io::BufReader::new(stdout).read_line(&mut line).expect("server banner");
        let addr = stream_server::address_from_banner(&line).unwrap_or_else(|| panic!("no address in {line:?}"));
        Self { child, addr }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// SIGKILL: no cleanup of any kind.
    pub fn kill(mut self) {
        self.child.kill().expect("kill");
        self.child.wait().expect("reap");
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
