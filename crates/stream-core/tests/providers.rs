//! Real provider transcripts recorded by other projects, read in place from
//! `../shared/fixtures/providers` (never copied here), through each adapter,
//! the translator and the reducer: whole, and re-chunked at random byte
//! boundaries (the same messages and hash for any chunking). What the session
//! ends with is checked against what the transcript itself says, read here
//! independently of the adapters. Skips with a message when `../shared` is absent.

#![cfg(not(target_arch = "wasm32"))]

#[path = "support/transcripts.rs"]
mod transcripts;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::Value;
use stream_core::agent::{Decoder, Format, StreamVerdict, Translator};
use stream_core::message::{Message, Outcome, Role};
use stream_core::{SequencedFrame, SessionState, StateHash};
use transcripts::Transcript;

/// What a session holds after a transcript.
#[derive(Debug, PartialEq)]
struct Played {
    messages: Vec<Message>,
    hash: StateHash,
    verdict: StreamVerdict,
    continuation: Option<String>,
    cost_usd: Option<f64>,
    /// The translator's frames.
    frames: Vec<stream_core::FrameBody>,
}

/// Plays the wire bytes, cut at `cuts` (positions, any order), into a session.
fn play(transcript: &Transcript, cuts: &[usize]) -> Played {
    let mut positions: Vec<usize> = cuts.iter().map(|cut| cut % (transcript.wire.len() + 1)).collect();
    positions.push(transcript.wire.len());
    positions.sort_unstable();
    let mut decoder = Decoder::new(transcript.format, 1 << 20);
    let mut translator = Translator::new("r");
    let mut state = SessionState::new();
    let mut continuation = None;
    let mut seq = 0;
    let mut apply = |bodies: Vec<stream_core::FrameBody>, state: &mut SessionState| {
        for body in bodies {
            seq += 1;
            state.apply(SequencedFrame { channel: Arc::from("s"), epoch: Arc::from("e"), seq, body });
        }
    };
    let mut start = 0;
    let mut items = Vec::new();
    for end in positions {
        decoder.push(&transcript.wire[start..end], &mut items);
        start = end;
    }
    decoder.finish(&mut items);
    let mut bodies = Vec::new();
    for item in items {
        if let stream_core::agent::AgentEvent::Continuation { id } = &item.event {
            continuation = Some(id.clone());
        }
        translator.push(item, 1, &mut bodies);
    }
    let verdict = decoder.verdict();
    let status = if verdict.failed.is_some() { Outcome::Failed } else { Outcome::Complete };
    translator.finish(status, 2, &mut bodies);
    let frames = bodies.clone();
    apply(bodies, &mut state);
    Played {
        frames,
        messages: state.messages().to_vec(),
        hash: state.state_hash(),
        verdict,
        continuation,
        cost_usd: state.cost_usd(),
    }
}

fn text_of(messages: &[Message], role: Role) -> String {
    messages.iter().filter(|m| m.role == role && m.parent_tool_call_id.is_none()).map(|m| m.content.as_str()).collect()
}

fn tool_calls(messages: &[Message]) -> BTreeSet<(String, String)> {
    messages.iter().flat_map(|m| &m.tool_calls).map(|call| (call.id.clone(), call.name.clone())).collect()
}

fn tool_results(messages: &[Message]) -> BTreeSet<String> {
    messages.iter().filter_map(|m| m.tool_result.as_ref()).map(|result| result.tool_call_id.clone()).collect()
}

fn str_at<'a>(value: &'a Value, pointer: &str) -> &'a str {
    value.pointer(pointer).and_then(Value::as_str).unwrap_or_default()
}

/// What the transcript says, read without the adapters.
#[derive(Debug, Default)]
struct Said {
    text: String,
    thinking: String,
    calls: BTreeSet<(String, String)>,
    /// Each call's input, where the transcript gives it (whole, or as the JSON its fragments make).
    inputs: BTreeMap<String, Value>,
    results: BTreeSet<String>,
    cost_usd: Option<f64>,
    failed: bool,
    continuation: Option<String>,
}

/// The input that JSON fragments make; `{}` when there were none.
fn joined_input(fragments: &str) -> Value {
    if fragments.is_empty() { serde_json::json!({}) } else { serde_json::from_str(fragments).unwrap() }
}

fn said(transcript: &Transcript) -> Said {
    let mut said = Said::default();
    // Fragments by index: (call id, JSON so far).
    let mut fragments: BTreeMap<u64, (String, String)> = BTreeMap::new();
    for event in &transcript.events {
        let kind = str_at(event, "/type");
        match transcript.format {
            Format::ClaudeCode => match kind {
                "assistant" if event.get("error").is_none() => {
                    for block in event.pointer("/message/content").and_then(Value::as_array).into_iter().flatten() {
                        let main = event.get("parent_tool_use_id").is_none_or(Value::is_null);
                        match str_at(block, "/type") {
                            "text" if main => said.text.push_str(str_at(block, "/text")),
                            "thinking" if main => said.thinking.push_str(str_at(block, "/thinking")),
                            "tool_use" => {
                                said.calls.insert((str_at(block, "/id").into(), str_at(block, "/name").into()));
                                said.inputs.insert(str_at(block, "/id").into(), block["input"].clone());
                            }
                            _ => {}
                        }
                    }
                }
                "user" => {
                    for block in event.pointer("/message/content").and_then(Value::as_array).into_iter().flatten() {
                        if str_at(block, "/type") == "tool_result" {
                            said.results.insert(str_at(block, "/tool_use_id").into());
                        }
                    }
                }
                "result" => {
                    said.cost_usd = event.get("total_cost_usd").and_then(Value::as_f64);
                    said.failed = event.get("is_error").and_then(Value::as_bool).unwrap_or(false);
                    said.continuation = Some(str_at(event, "/session_id").into());
                }
                _ => {}
            },
            Format::Codex => {
                let item = event.get("item").unwrap_or(&Value::Null);
                let item_type = str_at(item, "/type");
                match (kind, item_type) {
                    ("thread.started", _) => said.continuation = Some(str_at(event, "/thread_id").into()),
                    ("turn.failed", _) => said.failed = true,
                    ("item.completed", "agent_message") => said.text.push_str(str_at(item, "/text")),
                    ("item.completed", "reasoning") => said.thinking.push_str(str_at(item, "/text")),
                    ("item.completed", "error") => {}
                    ("item.completed", _) => {
                        said.calls.insert((str_at(item, "/id").into(), String::new()));
                        said.results.insert(str_at(item, "/id").into());
                    }
                    _ => {}
                }
            }
            Format::OpenAiChat => {
                if event.get("error").is_some() {
                    said.failed = true;
                }
                for choice in event.get("choices").and_then(Value::as_array).into_iter().flatten() {
                    said.text.push_str(str_at(choice, "/delta/content"));
                    let reasoning =
                        choice.pointer("/delta/reasoning_content").or_else(|| choice.pointer("/delta/reasoning"));
                    said.thinking.push_str(reasoning.and_then(Value::as_str).unwrap_or_default());
                    for call in choice.pointer("/delta/tool_calls").and_then(Value::as_array).into_iter().flatten() {
                        let index = call["index"].as_u64().unwrap();
                        if let Some(id) = call.get("id").and_then(Value::as_str) {
                            said.calls.insert((id.into(), str_at(call, "/function/name").into()));
                            fragments.insert(index, (id.into(), String::new()));
                        }
                        fragments.get_mut(&index).unwrap().1.push_str(str_at(call, "/function/arguments"));
                    }
                }
            }
            Format::Anthropic => match kind {
                "content_block_start" => {
                    let block = &event["content_block"];
                    match str_at(block, "/type") {
                        "text" => said.text.push_str(str_at(block, "/text")),
                        "tool_use" | "server_tool_use" => {
                            said.calls.insert((str_at(block, "/id").into(), str_at(block, "/name").into()));
                            fragments
                                .insert(event["index"].as_u64().unwrap(), (str_at(block, "/id").into(), String::new()));
                        }
                        _ => {}
                    }
                }
                "content_block_delta" => {
                    said.text.push_str(str_at(event, "/delta/text"));
                    said.thinking.push_str(str_at(event, "/delta/thinking"));
                    if let Some((_, json)) = fragments.get_mut(&event["index"].as_u64().unwrap()) {
                        json.push_str(str_at(event, "/delta/partial_json"));
                    }
                }
                "content_block_stop" => {
                    if let Some((id, json)) = fragments.remove(&event["index"].as_u64().unwrap()) {
                        said.inputs.insert(id, joined_input(&json));
                    }
                }
                "error" => said.failed = true,
                _ => {}
            },
            Format::Command => unreachable!(),
        }
    }
    if transcript.format == Format::OpenAiChat {
        for (_, (id, json)) in fragments {
            said.inputs.insert(id, joined_input(&json));
        }
    }
    said
}

#[test]
fn every_transcript_ends_as_the_session_it_describes() {
    let transcripts = transcripts::all();
    let mut inputs = 0;
    for transcript in &transcripts {
        let played = play(transcript, &[]);
        let said = said(transcript);
        let name = &transcript.name;
        assert_eq!(text_of(&played.messages, Role::Assistant), said.text, "{name}: assistant text");
        assert_eq!(text_of(&played.messages, Role::Reasoning), said.thinking, "{name}: reasoning text");
        let calls = tool_calls(&played.messages);
        if transcript.format == Format::Codex {
            let ids: BTreeSet<String> = calls.iter().map(|(id, _)| id.clone()).collect();
            let said_ids: BTreeSet<String> = said.calls.iter().map(|(id, _)| id.clone()).collect();
            assert_eq!(ids, said_ids, "{name}: tool calls");
        } else {
            assert_eq!(calls, said.calls, "{name}: tool calls");
        }
        inputs += said.inputs.len();
        for (id, input) in &said.inputs {
            let call = played.messages.iter().flat_map(|m| &m.tool_calls).find(|call| &call.id == id).unwrap();
            assert_eq!(&call.input, input, "{name}: input of {id}");
        }
        assert!(tool_results(&played.messages).is_superset(&said.results), "{name}: tool results");
        assert_eq!(played.cost_usd, said.cost_usd, "{name}: cost");
        assert_eq!(played.verdict.failed.is_some(), said.failed, "{name}: failure {:?}", played.verdict);
        assert_eq!(played.continuation, said.continuation.filter(|id| !id.is_empty()), "{name}: continuation");
        // Errors the transcript reports show; none comes from reading it.
        let unreadable =
            played.messages.iter().filter_map(|m| m.error.as_deref()).find(|error| error.contains("not JSON"));
        assert_eq!(unreadable, None, "{name}");
    }
    if !transcripts.is_empty() {
        eprintln!("{} transcripts checked, {inputs} tool inputs among them", transcripts.len());
        assert!(inputs > 0);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn any_chunking_gives_the_same_session(cuts in prop::collection::vec(any::<usize>(), 1..24)) {
        for transcript in &transcripts::all() {
            let whole = play(transcript, &[]);
            let cut = play(transcript, &cuts);
            prop_assert_eq!(&cut, &whole, "{} cut at {:?}", transcript.name, cuts);
        }
    }
}

/// What a UI message stream assembles to, checked against the client's rules
/// as it goes: every delta and end after its start, every tool output after
/// its input, one terminal chunk, last.
#[derive(Debug, Default, PartialEq)]
struct Assembled {
    text: String,
    reasoning: String,
    calls: BTreeSet<(String, String)>,
    outputs: BTreeSet<String>,
}

fn assemble(chunks: &[Value]) -> Assembled {
    let mut assembled = Assembled::default();
    let (mut open_text, mut open_reasoning, mut inputs) = (BTreeSet::new(), BTreeSet::new(), BTreeSet::new());
    for (index, chunk) in chunks.iter().enumerate() {
        let id = || str_at(chunk, "/id").to_owned();
        let call = || str_at(chunk, "/toolCallId").to_owned();
        match str_at(chunk, "/type") {
            "text-start" => assert!(open_text.insert(id())),
            "text-delta" => {
                assert!(open_text.contains(&id()), "text-delta before its start: {chunk}");
                assembled.text.push_str(str_at(chunk, "/delta"));
            }
            "text-end" => assert!(open_text.remove(&id()), "text-end before its start: {chunk}"),
            "reasoning-start" => assert!(open_reasoning.insert(id())),
            "reasoning-delta" => {
                assert!(open_reasoning.contains(&id()), "reasoning-delta before its start: {chunk}");
                assembled.reasoning.push_str(str_at(chunk, "/delta"));
            }
            "reasoning-end" => assert!(open_reasoning.remove(&id()), "reasoning-end before its start"),
            "tool-input-start" => assert!(inputs.insert(call())),
            "tool-input-available" => {
                assert!(inputs.contains(&call()), "input before its start: {chunk}");
                assert_eq!((chunk["dynamic"].as_bool(), chunk["providerExecuted"].as_bool()), (Some(true), Some(true)));
                assembled.calls.insert((call(), str_at(chunk, "/toolName").to_owned()));
            }
            "tool-output-available" | "tool-output-error" => {
                assert!(inputs.contains(&call()), "output of an unknown call: {chunk}");
                assert!(assembled.outputs.insert(call()), "a second output: {chunk}");
            }
            "finish" | "error" | "abort" => {
                assert_eq!(index, chunks.len() - 1, "the terminal chunk is last");
                assert!(open_text.is_empty() && open_reasoning.is_empty(), "parts left open");
            }
            "start" | "start-step" | "finish-step" | "message-metadata" => {}
            other => panic!("unexpected chunk type {other}"),
        }
    }
    assert!(matches!(chunks.last().map(|chunk| str_at(chunk, "/type")), Some("finish" | "error" | "abort")));
    assembled
}

#[test]
fn every_transcript_is_a_valid_ui_message_stream_with_the_sessions_parts() {
    use stream_core::frame::{FrameBody, RunFinished, RunStarted};
    use stream_core::server::UiMessageStream;
    for transcript in &transcripts::all() {
        let played = play(transcript, &[]);
        let status = if played.verdict.failed.is_some() { Outcome::Failed } else { Outcome::Complete };
        let mut stream = UiMessageStream::new("r");
        let mut chunks = Vec::new();
        let started = FrameBody::RunStarted(RunStarted { run_id: "r".into(), provider: "p".into(), started_at: 0 });
        let finished = FrameBody::RunFinished(RunFinished {
            run_id: "r".into(),
            status,
            aborted: false,
            exit_code: None,
            state_hash: None,
        });
        for frame in std::iter::once(&started).chain(&played.frames).chain(std::iter::once(&finished)) {
            stream.push(frame, &mut chunks);
        }
        let chunks: Vec<Value> = chunks.iter().map(|chunk| serde_json::to_value(chunk).unwrap()).collect();
        let assembled = assemble(&chunks);
        let top: Vec<Message> = played.messages.iter().filter(|m| m.parent_tool_call_id.is_none()).cloned().collect();
        let name = &transcript.name;
        assert_eq!(assembled.text, text_of(&top, Role::Assistant), "{name}");
        assert_eq!(assembled.reasoning, text_of(&top, Role::Reasoning), "{name}");
        assert_eq!(assembled.calls, tool_calls(&top), "{name}");
        let answered: BTreeSet<String> =
            tool_results(&top).into_iter().filter(|id| assembled.calls.iter().any(|(call, _)| call == id)).collect();
        assert_eq!(assembled.outputs, answered, "{name}");
    }
}
