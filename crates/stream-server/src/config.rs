//! The server's settings: command-line flags, each also readable from the
//! environment (`STREAM_*`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;

use clap::Parser;

/// Largest REST body accepted.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Longest append (or initial content) of a Durable Streams stream: streams
/// may carry files, and a client's upload is read whole before it is answered.
pub const MAX_STREAM_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Largest client WebSocket frame accepted as a protocol frame; larger ones
/// get `protocol_error` with code `oversize`.
pub const MAX_CLIENT_FRAME_BYTES: usize = 64 * 1024;
/// Largest WebSocket message read at all; past it the socket is closed (1009).
pub const MAX_WEBSOCKET_MESSAGE_BYTES: usize = 1024 * 1024;
/// Most channels one connection may subscribe to.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 1_024;

/// `stream-server`: streams agent chat sessions over WebSocket, with a durable SQLite log.
#[derive(Debug, Clone, Parser)]
#[command(version, about)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "STREAM_BIND", default_value = "127.0.0.1:8080")]
    pub bind: SocketAddr,
    /// Directory for the database (created if missing).
    #[arg(long, env = "STREAM_DATA_DIR", default_value = "data")]
    pub data_dir: PathBuf,
    /// SQLite database file; default `<data-dir>/stream.db`.
    #[arg(long, env = "STREAM_DATABASE")]
    pub database: Option<PathBuf>,
    /// Redis for the session log (e.g. `redis://127.0.0.1:6379/`), shared by
    /// every node given the same URL; the Durable Streams at `/v1/stream/*`
    /// stay in the SQLite database.
    #[arg(long, env = "STREAM_REDIS_URL")]
    pub redis_url: Option<String>,
    /// Static web app to serve at `/`; default `web/dist` when it exists.
    #[arg(long, env = "STREAM_WEB_DIR")]
    pub web_dir: Option<PathBuf>,
    /// Log filter, as for `tracing` (e.g. `info`, `stream_server=debug`).
    #[arg(long, env = "STREAM_LOG", default_value = "info")]
    pub log: String,
    /// Browser origins allowed besides the server's own, comma-separated
    /// (e.g. `http://localhost:5173`): by CORS, on the WebSocket and on every
    /// state-changing call; `*` allows every origin.
    #[arg(long, env = "STREAM_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Hostnames accepted in `Host` besides IP addresses and `localhost`,
    /// comma-separated; `.example.com` also allows its subdomains, `*` turns
    /// the check (against DNS rebinding) off.
    #[arg(long, env = "STREAM_ALLOWED_HOSTS", value_delimiter = ',')]
    pub allowed_hosts: Vec<String>,
    /// When set, every REST call and the WebSocket upgrade need it
    /// (`Authorization: Bearer <token>`, or `?token=<token>` for the WebSocket).
    #[arg(long, env = "STREAM_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<Secret>,
    /// Provider used when a send names none.
    #[arg(long, env = "STREAM_DEFAULT_PROVIDER", default_value = "demo")]
    pub default_provider: String,
    /// Milliseconds between the demo provider's text deltas (0: full speed).
    #[arg(long, env = "STREAM_DEMO_DELTA_MS", default_value_t = 30)]
    pub demo_delta_ms: u64,
    /// Words in the demo provider's reply.
    #[arg(long, env = "STREAM_DEMO_REPLY_WORDS", default_value_t = 60)]
    pub demo_reply_words: usize,
    /// Every this many demo events, a status frame carrying its send time
    /// (`probe_us`), for the benchmark's in-band latency probe; 0: none.
    #[arg(long, default_value_t = 0, hide = true)]
    pub demo_probe_every: usize,
    /// Executable of the `command` provider (JSON lines on stdout); the provider is offered only when set.
    #[arg(long, env = "STREAM_COMMAND")]
    pub command: Option<PathBuf>,
    /// Arguments of the `command` provider, comma-separated.
    #[arg(long, env = "STREAM_COMMAND_ARGS", value_delimiter = ',', allow_hyphen_values = true)]
    pub command_args: Vec<String>,
    /// The Claude Code CLI (`claude`) for the `claude-code` provider; found on `PATH` when not given.
    #[arg(long, env = "STREAM_CLAUDE_COMMAND")]
    pub claude_command: Option<PathBuf>,
    /// Extra arguments for Claude Code, comma-separated (e.g. `--model,opus`).
    #[arg(long, env = "STREAM_CLAUDE_ARGS", value_delimiter = ',', allow_hyphen_values = true)]
    pub claude_args: Vec<String>,
    /// The Codex CLI (`codex`) for the `codex` provider; found on `PATH` when not given.
    #[arg(long, env = "STREAM_CODEX_COMMAND")]
    pub codex_command: Option<PathBuf>,
    /// Extra arguments for `codex exec`, comma-separated (e.g. `--skip-git-repo-check`).
    #[arg(long, env = "STREAM_CODEX_ARGS", value_delimiter = ',', allow_hyphen_values = true)]
    pub codex_args: Vec<String>,
    /// Offers nothing found on `PATH`: only the CLIs given by flag.
    #[arg(long, env = "STREAM_NO_CLI_DETECTION")]
    pub no_cli_detection: bool,
    /// A Chat Completions server for the `openai` provider (OpenAI, Ollama,
    /// vLLM, llama.cpp...), e.g. `http://localhost:11434/v1`; with only an
    /// API key, OpenAI's own.
    #[arg(long, env = "STREAM_OPENAI_BASE_URL")]
    pub openai_base_url: Option<String>,
    /// The `openai` provider's model.
    #[arg(long, env = "STREAM_OPENAI_MODEL", default_value = "gpt-4o-mini")]
    pub openai_model: String,
    /// The `openai` provider's API key.
    #[arg(long, env = "OPENAI_API_KEY", hide_env_values = true)]
    pub openai_api_key: Option<Secret>,
    /// The Messages API for the `anthropic` provider, offered when a key or a model is given.
    #[arg(long, env = "STREAM_ANTHROPIC_BASE_URL", default_value = "https://api.anthropic.com")]
    pub anthropic_base_url: String,
    /// The `anthropic` provider's model.
    #[arg(long, env = "STREAM_ANTHROPIC_MODEL")]
    pub anthropic_model: Option<String>,
    /// The `anthropic` provider's API key.
    #[arg(long, env = "ANTHROPIC_API_KEY", hide_env_values = true)]
    pub anthropic_api_key: Option<Secret>,
    /// Most tokens an `anthropic` reply may have.
    #[arg(long, env = "STREAM_ANTHROPIC_MAX_TOKENS", default_value_t = 8_192)]
    pub anthropic_max_tokens: u32,
    /// Milliseconds of silence from a provider after which its run shows a notice.
    #[arg(long, env = "STREAM_PROVIDER_STALL_MS", default_value_t = 120_000)]
    pub provider_stall_ms: u64,
    /// With `--redis-url`: how long a node's lease on a run it drives lasts
    /// unless renewed; a node that dies has its runs ended by another within
    /// about this long.
    #[arg(long, env = "STREAM_RUN_LEASE_MS", default_value_t = 10_000)]
    pub run_lease_ms: u64,
    /// Milliseconds of silence from a provider after which its run fails.
    #[arg(long, env = "STREAM_PROVIDER_TIMEOUT_MS", default_value_t = 900_000)]
    pub provider_timeout_ms: u64,
    /// Milliseconds of silence after which the server sends a heartbeat
    /// (`pong` without id); a write its client has not taken within two of
    /// them ends the connection.
    #[arg(long, env = "STREAM_HEARTBEAT_MS", default_value_t = 15_000)]
    pub heartbeat_ms: u64,
    /// Frames a connection may have queued before its channels leave the
    /// live fan-out and catch up from the log; at least the most frames one
    /// append publishes (1,032).
    #[arg(long, env = "STREAM_OUTBOX_FRAMES", default_value_t = 4_096)]
    pub outbox_frames: usize,
    /// Frames kept in memory per session for replay.
    #[arg(long, env = "STREAM_RING_FRAMES", default_value_t = 16_384)]
    pub ring_frames: usize,
    /// Bytes kept in memory per session for replay.
    #[arg(long, env = "STREAM_RING_BYTES", default_value_t = 8 * 1024 * 1024)]
    pub ring_bytes: usize,
    /// Milliseconds a finished run's frames stay in memory.
    #[arg(long, env = "STREAM_RETENTION_MS", default_value_t = 300_000)]
    pub retention_ms: u64,
    /// Most frames a session's log keeps: past it, an idle session is compacted
    /// into a snapshot (a new epoch). Off by default.
    #[arg(long, env = "STREAM_RETAIN_FRAMES")]
    pub retain_frames: Option<u64>,
    /// Days after which an untouched session's log is compacted into a snapshot. Off by default.
    #[arg(long, env = "STREAM_RETAIN_DAYS")]
    pub retain_days: Option<u64>,
    /// Milliseconds between maintenance passes (idle sessions leave memory, retention compacts).
    #[arg(long, env = "STREAM_MAINTENANCE_MS", default_value_t = 30_000)]
    pub maintenance_ms: u64,
    /// Milliseconds a Durable Streams long-poll waits for data before it answers 204.
    #[arg(long, env = "STREAM_LONG_POLL_MS", default_value_t = 30_000)]
    pub long_poll_ms: u64,
    /// Milliseconds an `external` run's producer may stay silent before the run fails.
    #[arg(long, env = "STREAM_EXTERNAL_RUN_TIMEOUT_MS", default_value_t = 60_000)]
    pub external_run_timeout_ms: u64,
    /// Offers `POST /v1/test/drop-connections`, which closes every WebSocket
    /// (1012) while runs go on: end-to-end tests use it to cut the link.
    #[arg(long, env = "STREAM_TEST_HOOKS")]
    pub test_hooks: bool,
}

/// A secret setting: its `Debug` never shows it, so it cannot reach a log.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The secret itself, for the one comparison that needs it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(Self(value.to_owned()))
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str("Secret(redacted)")
    }
}

impl Config {
    /// Settings for tests and embedding: everything default, data in `data_dir`.
    pub fn for_data_dir(data_dir: impl Into<PathBuf>) -> Self {
        let mut config = Self::parse_from(["stream-server"]);
        config.data_dir = data_dir.into();
        config
    }

    /// The database file.
    pub fn database_path(&self) -> PathBuf {
        self.database.clone().unwrap_or_else(|| self.data_dir.join("stream.db"))
    }

    /// The web app directory, if there is one to serve.
    pub fn web_root(&self) -> Option<PathBuf> {
        match &self.web_dir {
            Some(dir) => Some(dir.clone()),
            None => Some(PathBuf::from("web/dist")).filter(|dir| dir.is_dir()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_arguments_may_be_flags_themselves() {
        let config =
            Config::try_parse_from(["stream-server", "--claude-args=--model,opus", "--codex-args", "--full-auto"])
                .unwrap();
        assert_eq!(config.claude_args, ["--model", "opus"]);
        assert_eq!(config.codex_args, ["--full-auto"]);
    }

    #[test]
    fn secrets_stay_out_of_debug_output() {
        let config =
            Config::try_parse_from(["stream-server", "--auth-token", "hunter2", "--openai-api-key", "sk-1"]).unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2") && !shown.contains("sk-1"), "{shown}");
    }
}
