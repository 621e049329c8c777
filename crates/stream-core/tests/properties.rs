//! Property tests of the client engine's invariants, natively and on wasm32:
//! (a) any delivery schedule equals in-order application, (b) a snapshot plus
//! the frames after it equals everything, (c) every local send ends as exactly
//! one message, (d) a finished run is not reported again by a stale list,
//! (e) no input makes the parser or the reducer panic, (f) a connection
//! whose socket messages mix sessions gives each session the state (and the
//! hash) it gets from its own frames, numbers written any way included.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use arbitrary::{Arbitrary, Unstructured};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use stream_core::client::ReorderLimits;
use stream_core::client::{RunningEntry, RunningMap};
use stream_core::frame::{ControlFrame, MessageStarted, Running, RunningSession};
use stream_core::fuzzing::{self, BodyPick, CHANNEL};
use stream_core::message::{MessageStatus, Role};
use stream_core::{Client, EngineConfig, FrameBody, SequencedFrame, SessionEngine, SessionState};

/// Bound of the reorder buffer in these tests; schedules displace frames by less.
const MAX_HELD: usize = 16;
const MAX_DISPLACEMENT: usize = 8;

fn config() -> Config {
    Config {
        cases: 256,
        // No files and a fixed seed, so the suite runs the same under Node,
        // where there is no file system and no OS randomness by default.
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5eed),
        ..Config::default()
    }
}

fn engine_config() -> EngineConfig {
    EngineConfig {
        reorder: ReorderLimits { max_frames: MAX_HELD, max_bytes: 1 << 20, stall_ms: 1_000, max_stall_ms: 8_000 },
        ..EngineConfig::default()
    }
}

/// Frame bodies decoded from fuzz-style bytes, so the property tests and the
/// fuzz target explore the same shapes.
fn picks(max_bytes: usize) -> impl Strategy<Value = Vec<BodyPick>> {
    prop::collection::vec(any::<u8>(), 0..max_bytes)
        .prop_map(|bytes| Vec::<BodyPick>::arbitrary_take_rest(Unstructured::new(&bytes)).unwrap_or_default())
}

fn reference(frames: &[SequencedFrame]) -> SessionState {
    let mut state = SessionState::new();
    for frame in frames {
        state.apply(frame.clone());
    }
    state
}

/// A delivery schedule: frame indices, reordered by at most `MAX_DISPLACEMENT`,
/// with duplicates and a replay overlapping the live stream, cut into batches.
#[derive(Debug, Clone)]
struct Schedule {
    jitter: Vec<usize>,
    duplicates: Vec<(usize, usize)>,
    replay: Option<(usize, usize, usize)>,
    batch_sizes: Vec<usize>,
}

fn schedule() -> impl Strategy<Value = Schedule> {
    (
        prop::collection::vec(0..MAX_DISPLACEMENT, 0..400),
        prop::collection::vec((any::<usize>(), any::<usize>()), 0..20),
        prop::option::of((any::<usize>(), any::<usize>(), any::<usize>())),
        prop::collection::vec(1..8usize, 1..10),
    )
        .prop_map(|(jitter, duplicates, replay, batch_sizes)| Schedule { jitter, duplicates, replay, batch_sizes })
}

impl Schedule {
    fn deliveries(&self, n: usize) -> Vec<Vec<usize>> {
        if n == 0 {
            return Vec::new();
        }
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by_key(|&i| (i + self.jitter.get(i).copied().unwrap_or(0), i));
        for &(frame, at) in &self.duplicates {
            order.insert(at % (order.len() + 1), frame % n);
        }
        if let Some((start, len, at)) = self.replay {
            // A replay from the server resends frames the client may already
            // have, up to the newest one delivered by then.
            let at = at % (order.len() + 1);
            let newest = order[..at].iter().copied().max().unwrap_or(0);
            let start = start % (newest + 1);
            let end = (start + len % 64).min(newest);
            order.splice(at..at, start..=end);
        }
        let mut batches = Vec::new();
        let mut rest = order.as_slice();
        for &size in self.batch_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at(size.min(rest.len()));
            batches.push(batch.to_vec());
            rest = tail;
        }
        batches
    }
}

fn assert_same_state(engine: &SessionEngine, expected: &SessionState) {
    assert_eq!(engine.state().messages(), expected.messages());
    assert_eq!(engine.state_hash(), expected.state_hash());
    assert_eq!(engine.state().name(), expected.name());
    assert_eq!(engine.state().run(), expected.run());
}

proptest! {
    #![proptest_config(config())]

    /// (a) Duplicates, bounded reordering, and a replay overlapping live frames
    /// give the same messages and hash as in-order application.
    #[test]
    fn any_delivery_schedule_equals_in_order_application(picks in picks(1_500), schedule in schedule()) {
        let frames = fuzzing::sequence(&picks, "e1");
        let expected = reference(&frames);
        let mut engine = SessionEngine::with_config(CHANNEL, engine_config());
        for batch in schedule.deliveries(frames.len()) {
            let batch: Vec<&SequencedFrame> = batch.iter().map(|&i| &frames[i]).collect();
            let report = engine.ingest(&fuzzing::batch_json(&batch), 0);
            prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
            prop_assert_eq!(report.need_resync, None);
        }
        prop_assert_eq!(engine.cursor().seq, frames.len() as u64);
        assert_same_state(&engine, &expected);
    }

    /// (b) A snapshot at watermark S, then the frames after S, equals applying
    /// every frame.
    #[test]
    fn snapshot_plus_later_frames_equals_everything(picks in picks(1_500), cut in any::<usize>()) {
        let frames = fuzzing::sequence(&picks, "e1");
        let watermark = cut % (frames.len() + 1);
        let snapshot = reference(&frames[..watermark]).snapshot(CHANNEL, (watermark > 0).then_some("e1"), watermark as u64);
        let mut engine = SessionEngine::with_config(CHANNEL, engine_config());
        let text = serde_json::to_string(&ControlFrame::Snapshot(snapshot)).unwrap();
        prop_assert!(engine.ingest(&text, 0).errors.is_empty());
        for frame in &frames[watermark..] {
            engine.ingest(&fuzzing::frame_json(frame), 0);
        }
        assert_same_state(&engine, &reference(&frames));
    }

    /// (c) Every local send ends as exactly one message, whatever mix of
    /// echoes, duplicate deliveries, failures, retries and snapshots.
    #[test]
    fn every_local_send_ends_as_exactly_one_message(ops in prop::collection::vec(any::<(u8, u8, bool)>(), 1..60), echo_ids in any::<bool>()) {
        check_local_sends(&ops, echo_ids)?;
    }

    /// (d) The map never reports a run whose `run_finished` was applied, and a
    /// session it was applied for only comes back with a newer run.
    #[test]
    fn a_finished_run_is_never_reported_again(ops in prop::collection::vec(any::<(u8, u8, u8)>(), 1..80)) {
        check_running_map(&ops)?;
    }

    /// (e) No text makes the parser or the reducer panic.
    #[test]
    fn no_text_panics(text in ".{0,300}", bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let mut engine = SessionEngine::new(CHANNEL);
        engine.ingest(&text, 0);
        engine.ingest(&String::from_utf8_lossy(&bytes), 0);
        engine.ingest(&format!("[{text}]"), 0);
    }

    /// (e) No sequence of operations (valid, mutated and raw frames, sends,
    /// snapshots, timeouts) breaks the engine's invariants.
    /// (f) Two sessions' frames, interleaved and batched together in any way,
    /// with tool inputs whose numbers a JSON round trip through JavaScript
    /// would rewrite (`1.0`, `-0`, integers past 2^53).
    #[test]
    fn mixed_session_messages_equal_each_sessions_own_frames(
        picks_a in picks(600),
        picks_b in picks(600),
        order in prop::collection::vec(any::<bool>(), 0..400),
        batch_sizes in prop::collection::vec(1..8usize, 1..10),
    ) {
        let texts = |picks: &[BodyPick], channel: &str| -> Vec<String> {
            let mut texts: Vec<String> = fuzzing::sequence(picks, "e1")
                .iter()
                .map(|frame| fuzzing::frame_json(frame).replacen(&format!("\"{CHANNEL}\""), &format!("\"{channel}\""), 1))
                .collect();
            let seq = texts.len() + 1;
            texts.push(format!(
                r#"{{"type":"tool_call","channel":"{channel}","epoch":"e1","seq":{seq},"message_id":"n","tool_call":{{"id":"t{channel}","name":"calc","input":{{"a":1.0,"b":-0,"c":9007199254740993,"d":-0.0,"e":1e300,"f":0.1}}}}}}"#
            ));
            texts
        };
        let (a, b) = (texts(&picks_a, "a"), texts(&picks_b, "b"));
        let own = |texts: &[String], channel: &str| {
            let mut engine = SessionEngine::new(channel);
            for text in texts {
                engine.ingest(text, 0);
            }
            (engine.state_hash(), engine.state().messages().to_vec())
        };
        // Interleave by `order`, then cut into socket messages.
        let (mut next_a, mut next_b) = (a.iter().peekable(), b.iter().peekable());
        let mut mixed = Vec::new();
        for take_a in order.iter().copied().chain(std::iter::repeat(true)) {
            match (take_a, next_a.peek().is_some(), next_b.peek().is_some()) {
                (_, false, false) => break,
                (true, true, _) | (false, true, false) => mixed.push(next_a.next().unwrap()),
                _ => mixed.push(next_b.next().unwrap()),
            }
        }
        let mut client = Client::new();
        client.open("a");
        client.open("b");
        let mut rest = mixed.as_slice();
        for &size in batch_sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (batch, tail) = rest.split_at(size.min(rest.len()));
            let text = match batch {
                [one] => (*one).clone(),
                _ => format!("[{}]", batch.iter().map(|text| text.as_str()).collect::<Vec<_>>().join(",")),
            };
            let report = client.ingest(&text, 0);
            prop_assert!(report.errors.is_empty(), "{:?}", report.errors);
            rest = tail;
        }
        for (channel, texts) in [("a", &a), ("b", &b)] {
            let engine = client.session(channel).unwrap();
            let (hash, messages) = own(texts, channel);
            prop_assert_eq!(engine.state().messages(), &messages[..]);
            prop_assert_eq!(engine.state_hash(), hash);
        }
    }

    #[test]
    fn no_operation_sequence_panics(bytes in prop::collection::vec(any::<u8>(), 0..4_000)) {
        fuzzing::run(&fuzzing::ops_from_bytes(&bytes));
    }
}

/// Server side of test (c): sends reach the server, which echoes them as user
/// messages (with or without `client_message_id`, per server), sometimes twice,
/// sometimes only inside a snapshot.
fn check_local_sends(ops: &[(u8, u8, bool)], echo_ids: bool) -> Result<(), TestCaseError> {
    const CONTENTS: [&str; 3] = ["same", "same", "other"];
    let mut engine = SessionEngine::with_config(CHANNEL, engine_config());
    let mut server = SessionState::new();
    let mut server_frames: Vec<SequencedFrame> = Vec::new();
    let mut sends: Vec<(String, &str)> = Vec::new();
    let mut echoed: Vec<bool> = Vec::new();
    let echo = |server: &mut SessionState, frames: &mut Vec<SequencedFrame>, index: usize, content: &str, id: &str| {
        let frame = SequencedFrame {
            channel: CHANNEL.into(),
            epoch: "e1".into(),
            seq: frames.len() as u64 + 1,
            body: FrameBody::MessageStarted(MessageStarted {
                message_id: format!("u{index}"),
                role: Role::User,
                created_at: 1,
                client_message_id: echo_ids.then(|| id.to_owned()),
                content: Some(content.to_owned()),
                parent_tool_call_id: None,
            }),
        };
        server.apply(frame.clone());
        frames.push(frame);
    };
    for (step, &(op, pick, flag)) in ops.iter().enumerate() {
        let now = step as u64;
        match op % 5 {
            0 | 1 => {
                let id = format!("c{}", sends.len());
                let content = CONTENTS[usize::from(pick) % CONTENTS.len()];
                engine.send_local(content, &id, now);
                if flag {
                    // A double click: same id again.
                    engine.send_local(content, &id, now);
                }
                sends.push((id, content));
                echoed.push(false);
            }
            2 => {
                // The server echoes the oldest send it has not echoed yet; the
                // frame may be delivered twice.
                if let Some(index) = echoed.iter().position(|done| !done) {
                    echoed[index] = true;
                    echo(&mut server, &mut server_frames, index, sends[index].1, &sends[index].0);
                    let frame = fuzzing::frame_json(server_frames.last().unwrap());
                    engine.ingest(&frame, now);
                    if flag {
                        engine.ingest(&frame, now);
                    }
                }
            }
            3 => {
                // A POST fails, then is retried (or not yet).
                if !sends.is_empty() {
                    let (id, content) = &sends[usize::from(pick) % sends.len()];
                    engine.mark_send_failed(id, "offline");
                    if flag {
                        engine.send_local(content, id, now);
                    }
                }
            }
            _ => {
                // Echoes that the client only learns of through a snapshot.
                if let Some(index) = echoed.iter().position(|done| !done) {
                    echoed[index] = true;
                    echo(&mut server, &mut server_frames, index, sends[index].1, &sends[index].0);
                }
                let seq = server_frames.len() as u64;
                let snapshot = server.snapshot(CHANNEL, (seq > 0).then_some("e1"), seq);
                engine.ingest(&serde_json::to_string(&ControlFrame::Snapshot(snapshot)).unwrap(), now);
            }
        }
        let user_messages = engine.messages().filter(|message| message.role == Role::User).count();
        prop_assert_eq!(user_messages, sends.len(), "after step {}", step);
    }
    // The server eventually echoes everything: nothing stays pending.
    for index in 0..sends.len() {
        if !echoed[index] {
            echo(&mut server, &mut server_frames, index, sends[index].1, &sends[index].0);
            engine.ingest(&fuzzing::frame_json(server_frames.last().unwrap()), ops.len() as u64);
        }
    }
    prop_assert!(engine.messages().all(|message| message.status == MessageStatus::Complete));
    prop_assert_eq!(engine.message_count(), sends.len());
    prop_assert_eq!(engine.state_hash(), server.state_hash());
    Ok(())
}

/// Test (d): a server runs sessions; the client applies run frames as they
/// happen and receives `running` lists of any past rev, late and out of order.
fn check_running_map(ops: &[(u8, u8, u8)]) -> Result<(), TestCaseError> {
    const SESSIONS: [&str; 3] = ["a", "b", "c"];
    let mut map = RunningMap::new(50);
    // Server model: per session the channel's last seq and its running run.
    let mut last_seq = [0u64; 3];
    let mut running: [Option<u64>; 3] = [None; 3];
    let mut next_run = 0u64;
    let mut lists: Vec<Running> = Vec::new();
    // Client knowledge: the last run whose finish it applied, per session.
    let mut finished_run: [Option<u64>; 3] = [None; 3];
    let mut marked_after_finish = [false; 3];
    let mut now = 0u64;
    for &(op, session, pick) in ops {
        let s = usize::from(session) % SESSIONS.len();
        match op % 5 {
            0 => {
                if running[s].is_none() {
                    next_run += 1;
                    last_seq[s] += 1;
                    running[s] = Some(next_run);
                    map.run_started(SESSIONS[s], &format!("r{next_run}"), "demo", 0, last_seq[s]);
                }
            }
            1 => {
                if let Some(run) = running[s].take() {
                    last_seq[s] += 1;
                    map.run_finished(SESSIONS[s], &format!("r{run}"), last_seq[s]);
                    finished_run[s] = Some(run);
                    marked_after_finish[s] = false;
                }
            }
            2 => {
                map.mark_local(SESSIONS[s], now);
                marked_after_finish[s] = true;
            }
            3 => {
                if !lists.is_empty() {
                    let list = &lists[usize::from(pick) % lists.len()];
                    map.sync(list, now);
                }
            }
            _ => {
                now += u64::from(pick);
                map.expire_local(now);
            }
        }
        // The server publishes its list after every step, with a new rev.
        let sessions = (0..SESSIONS.len())
            .filter_map(|i| {
                running[i].map(|run| RunningSession {
                    session_id: SESSIONS[i].into(),
                    run_id: format!("r{run}"),
                    provider: "demo".into(),
                    started_at: 0,
                    last_seq: last_seq[i],
                    notice: None,
                })
            })
            .collect();
        lists.push(Running { rev: lists.len() as u64 + 1, sessions });

        for (i, name) in SESSIONS.iter().enumerate() {
            match map.entries().get(*name) {
                Some(RunningEntry::Run { run_id, .. }) => {
                    let run: u64 = run_id[1..].parse().unwrap();
                    prop_assert!(
                        finished_run[i].is_none_or(|finished| run > finished),
                        "session {} reports run {} after finishing run {:?}",
                        name,
                        run,
                        finished_run[i]
                    );
                }
                Some(RunningEntry::Local { .. }) => {
                    prop_assert!(finished_run[i].is_none() || marked_after_finish[i], "stale local mark on {}", name);
                }
                None => {}
            }
        }
    }
    Ok(())
}
