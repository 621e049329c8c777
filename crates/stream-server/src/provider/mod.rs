//! Providers: what runs a turn of a session. Each one takes a request and
//! streams [`ProviderEvent`]s until it ends or is cancelled; the run driver
//! turns those into frames through stream-core's translator.
//!
//! | module | provider |
//! |---|---|
//! | [`demo`] | the scripted demo agent |
//! | [`process`] | any agent CLI: `command`, `claude-code`, `codex` |
//! | [`http`] | streaming APIs: `openai`, `anthropic` |
//! | [`external`] | `external`: a process outside drives the run over HTTP |

pub mod demo;
pub mod external;
pub mod http;
pub mod process;

use std::collections::BTreeMap;
use std::sync::Arc;

use std::time::Duration;

use serde::Serialize;
use stream_core::agent::{AgentEvent, AgentItem};
use stream_core::message::Outcome;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use demo::{DemoConfig, DemoProvider};
use external::{ExternalProvider, ExternalRuns};
use http::{Api, HttpProvider};
use process::{Cli, ProcessProvider};

/// OpenAI's own API, for the `openai` provider given only a key.
const OPENAI_API: &str = "https://api.openai.com/v1";
/// The `anthropic` provider's model when given only a key.
const DEFAULT_ANTHROPIC_MODEL: &str = "claude-sonnet-4-5";

/// Something a provider did, in order; `Exit` comes last.
#[derive(Debug, PartialEq)]
pub enum ProviderEvent {
    /// What the agent did.
    Item(AgentItem),
    /// The provider finished.
    Exit {
        /// How it ended.
        status: Outcome,
        /// The process's exit code, when there was a process.
        exit_code: Option<i32>,
        /// Why it failed, when it did and no event said so.
        error: Option<String>,
    },
    /// Events taken in together, answered once they are committed (or, when
    /// one is an `Exit`, once the run's end is): an external producer's
    /// append. Sent as one, so a driver never takes half of it, nor ends the
    /// run on its `Exit` with the answer still queued behind it.
    Batch(Vec<ProviderEvent>, Committed),
}

/// The answer to a [`ProviderEvent::Batch`]; dropped unanswered when the
/// events could not be stored.
#[derive(Debug)]
pub struct Committed(pub tokio::sync::oneshot::Sender<()>);

impl Committed {
    /// Says the events are stored.
    pub fn stored(self) {
        let _ = self.0.send(());
    }
}

impl PartialEq for Committed {
    fn eq(&self, _: &Self) -> bool {
        false
    }
}

impl From<AgentEvent> for ProviderEvent {
    fn from(event: AgentEvent) -> Self {
        Self::Item(event.into())
    }
}

/// One earlier message of the conversation, for providers that are sent the
/// history (the HTTP APIs keep no state of their own).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Turn {
    /// `user` or `assistant`.
    pub role: &'static str,
    /// Its text.
    pub content: String,
}

/// What a provider is asked to do.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The session.
    pub session_id: String,
    /// The run.
    pub run_id: String,
    /// The user's message.
    pub prompt: String,
    /// The provider's own id of the conversation, stored by an earlier run.
    pub continuation: Option<String>,
    /// The session's messages before this one, oldest first.
    pub history: Vec<Turn>,
}

/// A started provider run: its events, and the token that stops it.
pub struct ProviderRun {
    /// Events until the end; the channel closes after `Exit`.
    pub events: mpsc::Receiver<ProviderEvent>,
    /// Cancelling stops the provider (kills its processes, drops its request).
    pub cancel: CancellationToken,
}

/// What `GET /v1/providers` says of a provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProviderInfo {
    /// The name a send uses.
    pub name: String,
    /// What it is: `demo`, `command`, `claude-code`, `codex`, `openai`, `anthropic`.
    pub kind: &'static str,
    /// The model, where the server knows it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Whether sends naming no provider use this one.
    pub default: bool,
}

/// A kind of agent behind the server.
pub trait Provider: Send + Sync + 'static {
    /// Starts a run.
    fn start(&self, request: RunRequest) -> ProviderRun;
    /// Its kind, as `GET /v1/providers` lists it.
    fn kind(&self) -> &'static str;
    /// Its model, when known before a run.
    fn model(&self) -> Option<String> {
        None
    }
    /// Whether it needs the session's history in [`RunRequest::history`].
    fn wants_history(&self) -> bool {
        false
    }
}

/// The providers the server offers, by name, and the default one.
#[derive(Clone)]
pub struct Providers {
    by_name: BTreeMap<String, Arc<dyn Provider>>,
    default: String,
}

impl Providers {
    /// Providers with `default` as the one used when a send names none.
    pub fn new(default: &str) -> Self {
        Self { by_name: BTreeMap::new(), default: default.to_owned() }
    }

    /// Adds a provider.
    pub fn with(mut self, name: &str, provider: impl Provider) -> Self {
        self.by_name.insert(name.to_owned(), Arc::new(provider));
        self
    }

    /// The provider `name` (or the default), with its resolved name.
    pub fn get(&self, name: Option<&str>) -> Option<(&str, &Arc<dyn Provider>)> {
        let name = name.unwrap_or(&self.default);
        self.by_name.get_key_value(name).map(|(name, provider)| (name.as_str(), provider))
    }

    /// The names offered.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.by_name.keys().map(String::as_str)
    }

    /// The providers the settings enable: `demo` always, `command` and the
    /// CLIs when given (or, for the CLIs, found on `PATH`), the HTTP APIs
    /// when configured.
    pub fn from_config(config: &Config, external: &Arc<ExternalRuns>) -> Self {
        let lease = Duration::from_millis(config.external_run_timeout_ms.max(1));
        let mut providers = Self::new(&config.default_provider)
            .with("external", ExternalProvider::new(Arc::clone(external), lease))
            .with(
                "demo",
                DemoProvider::new(DemoConfig {
                    delta_interval: Duration::from_millis(config.demo_delta_ms),
                    reply_words: config.demo_reply_words,
                    probe_every: config.demo_probe_every,
                }),
            );
        if let Some(program) = &config.command {
            providers =
                providers.with("command", ProcessProvider::new(Cli::Command, program, config.command_args.clone()));
        }
        for (cli, program, args) in [
            (Cli::ClaudeCode, &config.claude_command, &config.claude_args),
            (Cli::Codex, &config.codex_command, &config.codex_args),
        ] {
            let found = || (!config.no_cli_detection).then(|| process::find_on_path(cli.executable())).flatten();
            if let Some(program) = program.clone().or_else(found) {
                providers = providers.with(cli.name(), ProcessProvider::new(cli, program, args.clone()));
            }
        }
        let openai_base =
            config.openai_base_url.clone().or_else(|| config.openai_api_key.is_some().then(|| OPENAI_API.to_owned()));
        if let Some(base) = openai_base {
            let key = config.openai_api_key.clone();
            providers = providers.with("openai", HttpProvider::new(Api::OpenAi, &base, &config.openai_model, key, 0));
        }
        let anthropic_model = config
            .anthropic_model
            .clone()
            .or_else(|| config.anthropic_api_key.is_some().then(|| DEFAULT_ANTHROPIC_MODEL.to_owned()));
        if let Some(model) = anthropic_model {
            let (base, key, max_tokens) =
                (&config.anthropic_base_url, config.anthropic_api_key.clone(), config.anthropic_max_tokens);
            providers = providers.with("anthropic", HttpProvider::new(Api::Anthropic, base, &model, key, max_tokens));
        }
        providers
    }

    /// Every provider, as `GET /v1/providers` lists them.
    pub fn list(&self) -> Vec<ProviderInfo> {
        self.by_name
            .iter()
            .map(|(name, provider)| ProviderInfo {
                name: name.clone(),
                kind: provider.kind(),
                model: provider.model(),
                default: *name == self.default,
            })
            .collect()
    }
}

/// A channel for a provider's events and the token that cancels it.
fn channel() -> (mpsc::Sender<ProviderEvent>, ProviderRun) {
    let (sender, events) = mpsc::channel(256);
    (sender, ProviderRun { events, cancel: CancellationToken::new() })
}
