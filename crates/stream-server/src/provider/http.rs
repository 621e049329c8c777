//! Agents behind a streaming HTTP API: `openai` (Chat Completions, spoken
//! by OpenAI, Ollama, vLLM, llama.cpp, DeepSeek…) and `anthropic` (the
//! Messages API). The APIs keep no conversation, so each run sends the
//! session's history with the new prompt. The response streams through
//! stream-core's `Decoder`; an abort drops the request.
//!
//! Failures end the run failed with a readable error: an HTTP error status
//! (401, 429, 5xx: the API's own message), an `error` event after 200, a cut
//! connection, or a stream that stops before its end marker.

use std::time::Duration;

use serde_json::{Value, json};
use stream_core::agent::{AgentItem, Decoder, Format};
use stream_core::message::Outcome;
use tokio::sync::mpsc;

use super::{Provider, ProviderEvent, ProviderRun, RunRequest, channel};
use crate::config::Secret;

/// Longest SSE line accepted.
const MAX_LINE_BYTES: usize = 4 * 1024 * 1024;
/// Most bytes of an error body read for its message.
const MAX_ERROR_BODY_BYTES: usize = 64 * 1024;
/// The Messages API version sent.
const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// `POST {base}/chat/completions`.
    OpenAi,
    /// `POST {base}/v1/messages`.
    Anthropic,
}

impl Api {
    /// The provider kind.
    fn kind(self) -> &'static str {
        match self {
            Self::OpenAi => "openai",
            Self::Anthropic => "anthropic",
        }
    }

    /// The streaming endpoint, after the base URL.
    fn path(self) -> &'static str {
        match self {
            Self::OpenAi => "/chat/completions",
            Self::Anthropic => "/v1/messages",
        }
    }

    /// The stream's format.
    fn format(self) -> Format {
        match self {
            Self::OpenAi => Format::OpenAiChat,
            Self::Anthropic => Format::Anthropic,
        }
    }
}

/// A provider on a streaming HTTP API.
#[derive(Debug, Clone)]
pub struct HttpProvider {
    api: Api,
    base_url: String,
    model: String,
    api_key: Option<Secret>,
    max_tokens: u32,
    client: reqwest::Client,
}

impl HttpProvider {
    /// A provider on `api` at `base_url` with `model`.
    pub fn new(api: Api, base_url: &str, model: &str, api_key: Option<Secret>, max_tokens: u32) -> Self {
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            api,
            base_url: base_url.trim_end_matches('/').to_owned(),
            model: model.to_owned(),
            api_key,
            max_tokens,
            client,
        }
    }

    /// The request body of one run: the history, then the prompt.
    pub fn body(&self, request: &RunRequest) -> Value {
        let mut messages: Vec<Value> =
            request.history.iter().map(|turn| json!({ "role": turn.role, "content": turn.content })).collect();
        messages.push(json!({ "role": "user", "content": request.prompt }));
        match self.api {
            Api::OpenAi => json!({
                "model": self.model,
                "stream": true,
                "stream_options": { "include_usage": true },
                "messages": messages,
            }),
            Api::Anthropic => json!({
                "model": self.model,
                "stream": true,
                "max_tokens": self.max_tokens,
                "messages": messages,
            }),
        }
    }

    fn request(&self, request: &RunRequest) -> reqwest::RequestBuilder {
        let url = format!("{}{}", self.base_url, self.api.path());
        let mut builder = self.client.post(url).header("accept", "text/event-stream").json(&self.body(request));
        if let Some(key) = &self.api_key {
            builder = match self.api {
                Api::OpenAi => builder.bearer_auth(key.expose()),
                Api::Anthropic => builder.header("x-api-key", key.expose()),
            };
        }
        if self.api == Api::Anthropic {
            builder = builder.header("anthropic-version", ANTHROPIC_VERSION);
        }
        builder
    }
}

impl Provider for HttpProvider {
    fn start(&self, request: RunRequest) -> ProviderRun {
        let (sender, run) = channel();
        let builder = self.request(&request);
        let format = self.api.format();
        let cancel = run.cancel.clone();
        tokio::spawn(async move {
            let exit = tokio::select! {
                // Dropping the request future closes the connection.
                _ = cancel.cancelled() => return,
                exit = stream(builder, format, &sender) => exit,
            };
            let _ = sender.send(exit).await;
        });
        run
    }

    fn kind(&self) -> &'static str {
        self.api.kind()
    }

    fn model(&self) -> Option<String> {
        Some(self.model.clone())
    }

    fn wants_history(&self) -> bool {
        true
    }
}

fn failed(error: String) -> ProviderEvent {
    ProviderEvent::Exit { status: Outcome::Failed, exit_code: None, error: Some(error) }
}

/// Sends the request and streams its answer; returns how the run ended.
async fn stream(
    builder: reqwest::RequestBuilder,
    format: Format,
    events: &mpsc::Sender<ProviderEvent>,
) -> ProviderEvent {
    let mut response = match builder.send().await {
        Ok(response) => response,
        Err(error) => return failed(format!("the API could not be reached: {}", without_url(&error))),
    };
    let status = response.status();
    if !status.is_success() {
        return failed(format!("the API answered {status}: {}", error_message(response).await));
    }
    let mut decoder = Decoder::new(format, MAX_LINE_BYTES);
    let mut items = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => decoder.push(&chunk, &mut items),
            Ok(None) => break,
            Err(error) => {
                flush(&mut items, events).await;
                return failed(format!("the connection was cut mid-stream: {}", without_url(&error)));
            }
        }
        if !flush(&mut items, events).await {
            return failed("nobody is listening".into());
        }
    }
    decoder.finish(&mut items);
    flush(&mut items, events).await;
    let verdict = decoder.verdict();
    match (verdict.failed, verdict.finished) {
        // The error event is in the session already.
        (Some(_), _) => ProviderEvent::Exit { status: Outcome::Failed, exit_code: None, error: None },
        (None, false) => failed("the stream ended before the API said it was done".into()),
        (None, true) => ProviderEvent::Exit { status: Outcome::Complete, exit_code: None, error: None },
    }
}

async fn flush(items: &mut Vec<AgentItem>, events: &mpsc::Sender<ProviderEvent>) -> bool {
    for item in items.drain(..) {
        if events.send(ProviderEvent::Item(item)).await.is_err() {
            return false;
        }
    }
    true
}

/// The API's own message from an error body (`{"error": {"message"}}` in
/// both APIs), else the start of the body.
async fn error_message(mut response: reqwest::Response) -> String {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        body.extend_from_slice(&chunk);
        if body.len() >= MAX_ERROR_BODY_BYTES {
            break;
        }
    }
    let parsed: Option<Value> = serde_json::from_slice(&body).ok();
    match parsed.as_ref().and_then(|value| value.pointer("/error/message")).and_then(Value::as_str) {
        Some(message) => message.to_owned(),
        None => String::from_utf8_lossy(&body[..body.len().min(500)]).trim().to_owned(),
    }
}

/// A reqwest error without its URL (which may hold a key in a query).
fn without_url(error: &reqwest::Error) -> String {
    let mut error = error.to_string();
    if let Some(start) = error.find(" for url (") {
        error.truncate(start);
    }
    error
}
