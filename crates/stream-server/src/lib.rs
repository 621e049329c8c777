//! `stream-server`: sessions, runs, providers, a durable SQLite log, and
//! resume over WebSocket, speaking protocol v1 (`docs/protocol.md`).
//!
//! Embedding in another axum app is one call:
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let config = stream_server::Config::for_data_dir("data");
//! let state = stream_server::AppState::open(config).await?;
//! let app = axum::Router::new().nest("/chat", stream_server::router(state));
//! # Ok(()) }
//! ```
//!
//! | module | owns |
//! |---|---|
//! | [`access`] | the host, origin and token checks |
//! | [`config`] | flags and environment |
//! | [`store`] | the durable log: SQLite (group commit) or Redis |
//! | [`local_redis`] | a `redis-server` of one's own, for tests and benchmarks |
//! | [`inputs`] | the parsing of every client input, and its fuzz entry |
//! | [`hub`] | live sessions: sequencer, hot ring, fan-out, running index |
//! | [`follow`] | cross-node fan-out: following the shared log |
//! | [`runs`] | sends, aborts, the run driver, crash recovery |
//! | [`lease`] | which node drives a run, when several share the log |
//! | [`provider`] | the provider trait and every provider |
//! | [`outbox`] | a connection's socket and queue, shared with the publishers |
//! | [`ws`] | the WebSocket connection |
//! | [`rest`] | the REST API |
//! | [`durable`] | the Durable Streams protocol at `/v1/stream/*` |
//! | [`ai_sdk`] | the AI SDK's `useChat` endpoints at `/v1/ai-sdk/chat` |
//! | [`drivers`] | the run drivers' own runtime |
//! | [`metrics`] | Prometheus metrics |
//! | [`probe`] | the latency probe's ages at each stage of the pipeline |
//! | [`error`] | REST errors |

pub mod access;
pub mod ai_sdk;
pub mod config;
pub mod drivers;
pub mod durable;
pub mod error;
pub mod follow;
pub mod hub;
pub mod inputs;
pub mod lease;
pub mod local_redis;
pub mod metrics;
pub mod outbox;
pub mod probe;
pub mod provider;
pub mod rest;
pub mod runs;
pub mod store;
pub mod ws;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use config::Config;
pub use error::AppError;

use crate::hub::{Hub, HubConfig};
use crate::metrics::Metrics;
use crate::provider::Providers;
use crate::store::Store;

/// Everything the handlers share.
pub struct AppState {
    /// The settings.
    pub config: Config,
    /// Who may reach the server, decided from the settings.
    pub access: access::Access,
    /// Live sessions.
    pub hub: Hub,
    /// The streams of `/v1/stream/*`.
    pub streams: durable::Streams,
    /// Providers by name.
    pub providers: Providers,
    /// The runs outside processes drive (the `external` provider).
    pub external: Arc<provider::external::ExternalRuns>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// This node's hold on the runs it drives.
    pub lease: lease::RunLease,
    /// With a shared log, what follows it, until the follower task takes it.
    pub follower: std::sync::Mutex<Option<store::LogFollower>>,
    /// Cancelled when the server shuts down.
    pub shutdown: CancellationToken,
    /// Run drivers and connections, awaited at shutdown.
    pub tasks: TaskTracker,
    /// The runtime the run drivers run on.
    pub drivers: drivers::Drivers,
    /// Bumped to close every WebSocket at once (the test hook); runs go on.
    pub drop_connections: tokio::sync::watch::Sender<u64>,
    next_connection: AtomicU64,
}

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The data directory could not be made.
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The log could not be opened or recovered.
    #[error("cannot open the log: {0}")]
    Store(#[from] store::StoreError),
    /// The run drivers' thread could not be started.
    #[error("cannot start the run drivers' thread: {0}")]
    Drivers(std::io::Error),
    /// Closing interrupted runs failed.
    #[error("cannot close interrupted runs: {0}")]
    Recovery(#[from] AppError),
}

impl AppState {
    /// Opens the log, closes the runs a crash left open, and builds the state.
    pub async fn open(config: Config) -> Result<Arc<Self>, StartError> {
        std::fs::create_dir_all(&config.data_dir)
            .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
        let metrics = Arc::new(Metrics::new(config.demo_probe_every > 0));
        let observer = Arc::clone(&metrics);
        let store = Store::open(
            &config.database_path(),
            config.redis_url.as_deref(),
            Arc::new(move |writes, seconds| {
                observer.commit_seconds.observe(seconds);
                observer.commit_batch.observe(writes as f64);
            }),
        )
        .await?;
        let streams = durable::Streams::load(store.clone(), hub::now_ms()).await?;
        let lease = lease::RunLease::new(&config.data_dir, config.run_lease_ms, store.is_shared())
            .map_err(|source| StartError::DataDir { path: config.data_dir.clone(), source })?;
        // Taken before anything is read, so no other node's event is missed.
        let follower = store.follower().await?;
        let hub = Hub::new(
            store,
            Arc::clone(&metrics),
            HubConfig {
                ring: stream_core::server::RingLimits { max_frames: config.ring_frames, max_bytes: config.ring_bytes },
                retention_ms: config.retention_ms,
                log_retention: hub::LogRetention {
                    max_frames: config.retain_frames,
                    max_idle_ms: config.retain_days.map(|days| days.saturating_mul(24 * 60 * 60 * 1000)),
                },
            },
            &lease.node,
        );
        let external = Arc::new(provider::external::ExternalRuns::default());
        let providers = Providers::from_config(&config, &external);
        let state = Arc::new(Self {
            access: access::Access::new(&config),
            config,
            hub,
            streams,
            providers,
            external,
            metrics,
            lease,
            follower: std::sync::Mutex::new(follower),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            drivers: drivers::Drivers::start().map_err(StartError::Drivers)?,
            drop_connections: tokio::sync::watch::Sender::new(0),
            next_connection: AtomicU64::new(1),
        });
        let token = state.config.auth_token.is_some();
        if !state.config.bind.ip().is_loopback() && !token {
            tracing::warn!(
                "listening beyond loopback without --auth-token: anyone who reaches this port can run its agents"
            );
        }
        if state.config.cors_origins.iter().any(|origin| origin.trim() == "*") && !token {
            tracing::warn!("--cors-origins * without --auth-token: every web page can drive this server");
        }
        // The runs other nodes drive, for this node's running map.
        if state.lease.is_shared() {
            for session_id in state.hub.store().open_runs().await? {
                state.hub.open(&session_id).await?;
            }
        }
        let closed = runs::close_orphaned_runs(&state, true).await?;
        if closed > 0 {
            tracing::warn!(closed, "closed runs interrupted by the last stop");
        }
        Ok(state)
    }

    /// A new connection id.
    pub fn next_connection_id(&self) -> u64 {
        self.next_connection.fetch_add(1, Ordering::Relaxed)
    }
}

/// Locks a mutex even when a panic poisoned it: a panic elsewhere must not
/// take every session and connection down with it.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The whole HTTP surface: REST, WebSocket, metrics, and the web app.
pub fn router(state: Arc<AppState>) -> Router {
    rest::router(state)
}

/// Serves until `stop` resolves, then shuts down gracefully: stops
/// accepting, ends running runs with one failed `run_finished` each, closes
/// sockets with 1001, and waits for pending commits.
pub async fn serve(
    state: Arc<AppState>,
    listener: TcpListener,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let shutdown = state.shutdown.clone();
    let evictor = tokio::spawn(maintain(Arc::clone(&state)));
    let expirer = tokio::spawn(durable::expire_loop(Arc::clone(&state)));
    let follower = tokio::spawn(follow::follow_loop(Arc::clone(&state)));
    let closer = tokio::spawn(runs::close_orphaned_runs_loop(Arc::clone(&state)));
    let app = router(Arc::clone(&state));
    let graceful = async move {
        stop.await;
        tracing::info!("shutting down");
        shutdown.cancel();
    };
    // Frames are small and latency matters: no Nagle delay on any socket.
    let listener = listener.tap_io(|stream| {
        if let Err(error) = stream.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    axum::serve(listener, app).with_graceful_shutdown(graceful).await?;
    state.shutdown.cancel();
    evictor.abort();
    expirer.abort();
    follower.abort();
    closer.abort();
    state.tasks.close();
    if tokio::time::timeout(Duration::from_secs(10), state.tasks.wait()).await.is_err() {
        tracing::warn!("some runs or connections did not finish within 10 s");
    }
    Ok(())
}

/// The maintenance pass: idle sessions leave memory, then retention compacts
/// the logs of those it names.
async fn maintain(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(Duration::from_millis(state.config.maintenance_ms.max(1)));
    loop {
        tick.tick().await;
        let evicted = state.hub.evict_idle(hub::now_ms()).await;
        if evicted > 0 {
            tracing::debug!(evicted, "idle sessions left memory");
        }
        match state.hub.compact_idle(hub::now_ms()).await {
            Ok(0) => {}
            Ok(compacted) => tracing::debug!(compacted, "session logs compacted"),
            Err(error) => tracing::warn!(%error, "compaction failed; the log is unchanged"),
        }
    }
}

/// The line the binary prints on start, saying where to connect.
pub fn banner(address: std::net::SocketAddr, serves_web: bool) -> String {
    if serves_web {
        format!("stream-server: open http://{address}/ (WebSocket ws://{address}/v1/ws)")
    } else {
        format!("stream-server: listening on http://{address} (WebSocket ws://{address}/v1/ws; no web app built)")
    }
}

/// The address in a [`banner`] line, for tools that start the binary.
pub fn address_from_banner(line: &str) -> Option<std::net::SocketAddr> {
    line.split("http://").nth(1)?.split([' ', '/']).next()?.parse().ok()
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(signal) => signal,
            Err(_) => {
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = interrupt.await;
    }
}
