//! One agent's output from bytes to [`AgentItem`]s: the framing its format
//! uses (lines or SSE) and its adapter, behind one type the server's
//! providers and the tests share.

use super::anthropic::MessageStream;
use super::claude_code::ClaudeCode;
use super::codex::Codex;
use super::framing::{LineError, LineSplitter, SseDecoder, SseEvent};
use super::openai_chat::ChatStream;
use super::{AgentEvent, AgentItem, StreamVerdict};

/// A native output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The `command` provider's JSON lines: one [`AgentItem`] per line.
    Command,
    /// `claude -p --output-format stream-json`.
    ClaudeCode,
    /// `codex exec --json`.
    Codex,
    /// Chat Completions SSE.
    OpenAiChat,
    /// Messages API SSE.
    Anthropic,
}

#[derive(Debug)]
enum Adapter {
    Command { verdict: StreamVerdict },
    ClaudeCode(ClaudeCode),
    Codex(Codex),
    OpenAiChat(ChatStream),
    Anthropic(MessageStream),
}

#[derive(Debug)]
enum Framing {
    Lines(LineSplitter),
    Sse(SseDecoder),
}

/// Decodes one run's output, fed in chunks cut anywhere.
#[derive(Debug)]
pub struct Decoder {
    framing: Framing,
    adapter: Adapter,
}

impl Decoder {
    /// A decoder for `format`, refusing lines over `max_line_bytes`.
    pub fn new(format: Format, max_line_bytes: usize) -> Self {
        let lines = || Framing::Lines(LineSplitter::new(max_line_bytes));
        let sse = || Framing::Sse(SseDecoder::new(max_line_bytes));
        let (framing, adapter) = match format {
            Format::Command => (lines(), Adapter::Command { verdict: StreamVerdict::default() }),
            Format::ClaudeCode => (lines(), Adapter::ClaudeCode(ClaudeCode::new())),
            Format::Codex => (lines(), Adapter::Codex(Codex::new())),
            Format::OpenAiChat => (sse(), Adapter::OpenAiChat(ChatStream::new())),
            Format::Anthropic => (sse(), Adapter::Anthropic(MessageStream::new())),
        };
        Self { framing, adapter }
    }

    /// Feeds a chunk of output.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<AgentItem>) {
        let Self { framing, adapter } = self;
        match framing {
            Framing::Lines(lines) => lines.push(chunk, &mut |line| adapter.line(line, out)),
            Framing::Sse(sse) => sse.push(chunk, &mut |event| adapter.event(event, out)),
        }
    }

    /// Ends the output (the process exited, the response ended).
    pub fn finish(&mut self, out: &mut Vec<AgentItem>) {
        let Self { framing, adapter } = self;
        match framing {
            Framing::Lines(lines) => lines.finish(&mut |line| adapter.line(line, out)),
            Framing::Sse(sse) => sse.finish(&mut |event| adapter.event(event, out)),
        }
    }

    /// How the output said the run ended.
    pub fn verdict(&self) -> StreamVerdict {
        match &self.adapter {
            Adapter::Command { verdict } => verdict.clone(),
            Adapter::ClaudeCode(adapter) => adapter.verdict(),
            Adapter::Codex(adapter) => adapter.verdict(),
            Adapter::OpenAiChat(stream) => stream.verdict().clone(),
            Adapter::Anthropic(stream) => stream.verdict().clone(),
        }
    }
}

impl Adapter {
    fn line(&mut self, line: Result<&str, LineError>, out: &mut Vec<AgentItem>) {
        let line = match line {
            Ok(line) => line,
            Err(error) => return out.push(AgentEvent::Error { error: format!("provider {error}") }.into()),
        };
        match self {
            Self::Command { .. } => {
                let line = line.trim();
                if line.is_empty() {
                    return;
                }
                out.push(serde_json::from_str(line).unwrap_or_else(|error| {
                    AgentEvent::Error { error: format!("provider line is not an event: {error}") }.into()
                }));
            }
            Self::ClaudeCode(adapter) => adapter.line(line, out),
            Self::Codex(adapter) => adapter.line(line, out),
            Self::OpenAiChat(_) | Self::Anthropic(_) => {}
        }
    }

    fn event(&mut self, event: Result<SseEvent, LineError>, out: &mut Vec<AgentItem>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => return out.push(AgentEvent::Error { error: format!("stream {error}") }.into()),
        };
        match self {
            Self::OpenAiChat(stream) => stream.sse(&event, out),
            Self::Anthropic(stream) => stream.sse(&event, out),
            Self::Command { .. } | Self::ClaudeCode(_) | Self::Codex(_) => {}
        }
    }
}
