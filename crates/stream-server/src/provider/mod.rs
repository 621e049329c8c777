//! Providers: what runs a turn of a session. Each one takes a prompt and
//! streams [`ProviderEvent`]s until it ends or is cancelled; the run driver
//! turns those into frames.

pub mod command;
pub mod demo;

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;
use stream_core::message::{Outcome, Usage};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Something a provider did, in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ProviderEvent {
    /// Text of the agent's reply, appended to the current assistant message.
    Text {
        /// The text.
        content: String,
    },
    /// The agent called a tool.
    ToolCall {
        /// The call's id, unique within the run.
        id: String,
        /// The tool.
        name: String,
        /// Its input.
        #[serde(default)]
        input: Value,
    },
    /// A tool returned.
    ToolResult {
        /// The call it answers.
        tool_call_id: String,
        /// Its output.
        #[serde(default)]
        output: Value,
        /// Whether the output was cut.
        #[serde(default)]
        truncated: bool,
        /// The tool's error.
        #[serde(default)]
        error: Option<String>,
    },
    /// Usage figures for the current assistant message.
    Usage(Usage),
    /// An error; the run goes on unless the provider exits.
    Error {
        /// What went wrong.
        error: String,
    },
    /// The provider finished. Only the run driver makes this from a process
    /// exit or a channel end; it is not part of the JSON-lines format.
    #[serde(skip)]
    Exit {
        /// How it ended.
        status: Outcome,
        /// The process's exit code, when there was a process.
        exit_code: Option<i32>,
    },
}

/// What a provider is asked to do.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// The session.
    pub session_id: String,
    /// The run.
    pub run_id: String,
    /// The user's message.
    pub prompt: String,
}

/// A started provider run: its events, and the token that stops it.
pub struct ProviderRun {
    /// Events until the end; the channel closes after `Exit`.
    pub events: mpsc::Receiver<ProviderEvent>,
    /// Cancelling stops the provider (and kills its process).
    pub cancel: CancellationToken,
}

/// A kind of agent behind the server.
pub trait Provider: Send + Sync + 'static {
    /// Starts a run.
    fn start(&self, request: RunRequest) -> ProviderRun;
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
}
