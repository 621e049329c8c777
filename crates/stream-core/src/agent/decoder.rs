//! One agent's output from bytes to [`AgentItem`]s: the framing its format
//! uses (lines or SSE) and its adapter, behind one type the server's
//! providers and the tests share. Output that cannot be read (a line over the
//! bound, not UTF-8, not JSON) is shown as an error and fails the run; what
//! came before and after it is kept.

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
    Command,
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
    /// The first output that could not be read, if any.
    unreadable: Option<String>,
}

impl Decoder {
    /// A decoder for `format`, refusing lines over `max_line_bytes`.
    pub fn new(format: Format, max_line_bytes: usize) -> Self {
        let lines = || Framing::Lines(LineSplitter::new(max_line_bytes));
        let sse = || Framing::Sse(SseDecoder::new(max_line_bytes));
        let (framing, adapter) = match format {
            Format::Command => (lines(), Adapter::Command),
            Format::ClaudeCode => (lines(), Adapter::ClaudeCode(ClaudeCode::new())),
            Format::Codex => (lines(), Adapter::Codex(Codex::new())),
            Format::OpenAiChat => (sse(), Adapter::OpenAiChat(ChatStream::new())),
            Format::Anthropic => (sse(), Adapter::Anthropic(MessageStream::new())),
        };
        Self { framing, adapter, unreadable: None }
    }

    /// The same, for one run of a session: the ids a format numbers per
    /// process (Codex's items) are made unique with `run_id`.
    pub fn for_run(format: Format, max_line_bytes: usize, run_id: &str) -> Self {
        let mut decoder = Self::new(format, max_line_bytes);
        if format == Format::Codex {
            decoder.adapter = Adapter::Codex(Codex::with_id_prefix(&format!("{run_id}.")));
        }
        decoder
    }

    /// Feeds a chunk of output.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<AgentItem>) {
        let Self { framing, adapter, unreadable } = self;
        match framing {
            Framing::Lines(lines) => lines.push(chunk, &mut |line| adapter.line(line, unreadable, out)),
            Framing::Sse(sse) => sse.push(chunk, &mut |event| adapter.event(event, unreadable, out)),
        }
    }

    /// Ends the output (the process exited, the response ended).
    pub fn finish(&mut self, out: &mut Vec<AgentItem>) {
        let Self { framing, adapter, unreadable } = self;
        match framing {
            Framing::Lines(lines) => lines.finish(&mut |line| adapter.line(line, unreadable, out)),
            Framing::Sse(sse) => sse.finish(&mut |event| adapter.event(event, unreadable, out)),
        }
    }

    /// How the output said the run ended; failed too when some of it could not be read.
    pub fn verdict(&self) -> StreamVerdict {
        let mut verdict = match &self.adapter {
            Adapter::Command => StreamVerdict::default(),
            Adapter::ClaudeCode(adapter) => adapter.verdict(),
            Adapter::Codex(adapter) => adapter.verdict(),
            Adapter::OpenAiChat(stream) => stream.verdict().clone(),
            Adapter::Anthropic(stream) => stream.verdict().clone(),
        };
        if let Some(error) = &self.unreadable {
            verdict.fail(error.clone());
        }
        verdict
    }
}

/// Shows output that could not be read, and keeps the first such error.
fn unreadable_output(error: String, unreadable: &mut Option<String>, out: &mut Vec<AgentItem>) {
    out.push(AgentEvent::Error { error: error.clone() }.into());
    unreadable.get_or_insert(error);
}

impl Adapter {
    fn line(&mut self, line: Result<&str, LineError>, unreadable: &mut Option<String>, out: &mut Vec<AgentItem>) {
        let line = match line {
            Ok(line) => line,
            Err(error) => return unreadable_output(format!("provider {error}"), unreadable, out),
        };
        match self {
            Self::Command => {
                let line = line.trim();
                if line.is_empty() {
                    return;
                }
                match serde_json::from_str(line) {
                    Ok(item) => out.push(item),
                    Err(error) => unreadable_output(format!("provider line is not an event: {error}"), unreadable, out),
                }
            }
            Self::ClaudeCode(adapter) => adapter.line(line, out),
            Self::Codex(adapter) => adapter.line(line, out),
            Self::OpenAiChat(_) | Self::Anthropic(_) => {}
        }
    }

    fn event(&mut self, event: Result<SseEvent, LineError>, unreadable: &mut Option<String>, out: &mut Vec<AgentItem>) {
        let event = match event {
            Ok(event) => event,
            Err(error) => return unreadable_output(format!("stream {error}"), unreadable, out),
        };
        match self {
            Self::OpenAiChat(stream) => stream.sse(&event, out),
            Self::Anthropic(stream) => stream.sse(&event, out),
            Self::Command | Self::ClaudeCode(_) | Self::Codex(_) => {}
        }
    }
}
