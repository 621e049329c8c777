//! The provider transcripts recorded by others, read in place from
//! `../shared/fixtures/providers` (never copied into this repository), as
//! their providers send them on the wire. Shared by the adapter tests and the
//! adapter benchmark; empty, with a message, when `../shared` is absent.

use std::path::{Path, PathBuf};

use serde_json::Value;
use stream_core::agent::Format;

fn fixtures() -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/fixtures/providers");
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("skipped: {} is absent (the transcripts recorded by others)", dir.display());
        None
    }
}

/// A transcript as its provider sends it on the wire.
pub struct Transcript {
    /// `folder/file`.
    pub name: String,
    /// Its format.
    pub format: Format,
    /// The bytes on the wire.
    pub wire: Vec<u8>,
    /// The native events, one JSON object each, for independent checks.
    pub events: Vec<Value>,
}

fn json_lines(text: &str) -> Vec<Value> {
    text.lines().filter(|line| !line.trim().is_empty()).filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// Every transcript of the four formats; `.chunks.jsonl` files (data objects
/// only) are framed as the servers frame them.
pub fn all() -> Vec<Transcript> {
    let Some(root) = fixtures() else { return Vec::new() };
    let mut all = Vec::new();
    for (folder, format) in [
        ("claude-code", Format::ClaudeCode),
        ("codex", Format::Codex),
        ("openai-chat", Format::OpenAiChat),
        ("anthropic-sse", Format::Anthropic),
    ] {
        let mut paths: Vec<PathBuf> =
            std::fs::read_dir(root.join(folder)).unwrap().map(|entry| entry.unwrap().path()).collect();
        paths.sort();
        for path in paths {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path).unwrap();
            let (wire, events) = match (format, name.rsplit_once('.').map(|(_, ext)| ext)) {
                // `--output-format json` is one result object, not a stream.
                (Format::ClaudeCode, Some("json")) => continue,
                (Format::ClaudeCode | Format::Codex, _) => (text.clone().into_bytes(), json_lines(&text)),
                (Format::OpenAiChat, Some("sse")) => {
                    let events = text
                        .lines()
                        .filter_map(|line| line.strip_prefix("data:"))
                        .filter_map(|data| serde_json::from_str(data.trim()).ok())
                        .collect();
                    (text.clone().into_bytes(), events)
                }
                (Format::OpenAiChat, _) => {
                    let events = json_lines(&text);
                    let mut wire: String = events.iter().map(|event| format!("data: {event}\n\n")).collect();
                    wire.push_str("data: [DONE]\n\n");
                    (wire.into_bytes(), events)
                }
                (Format::Anthropic, Some("json")) => {
                    let recording: Value = serde_json::from_str(&text).unwrap();
                    let sse = recording.pointer("/response/sse_events").and_then(Value::as_array).unwrap();
                    let mut wire = String::new();
                    let mut events = Vec::new();
                    for event in sse {
                        let (name, data) = (event["event"].as_str().unwrap(), event["data"].as_str().unwrap());
                        wire.push_str(&format!("event: {name}\ndata: {data}\n\n"));
                        events.push(serde_json::from_str(data).unwrap());
                    }
                    (wire.into_bytes(), events)
                }
                (Format::Anthropic, _) => {
                    let events = json_lines(&text);
                    let wire: String = events
                        .iter()
                        .map(|event| format!("event: {}\ndata: {event}\n\n", event["type"].as_str().unwrap()))
                        .collect();
                    (wire.into_bytes(), events)
                }
                (Format::Command, _) => unreachable!(),
            };
            all.push(Transcript { name: format!("{folder}/{name}"), format, wire, events });
        }
    }
    all
}
