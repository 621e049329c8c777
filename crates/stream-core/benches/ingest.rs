//! Ingest throughput of the client engine on a generated trace, and whether
//! the cost per frame grows with the history (it must not).
//!
//! For each history size H (10, 1,000, 10,000 messages), an engine first
//! ingests H finished messages; then 100,000 streamed deltas (over assistant
//! messages of 200 deltas each) arrive in batches of 20 frames per WebSocket
//! message, with the changed ids drained after each batch as the bindings do.
//! Only the streaming phase is timed; the cases run in rotation and the median
//! of several runs of each is reported.
//! Output: a table on stdout and JSON in `target/bench/core.json`.

use std::hint::black_box;
use std::time::Instant;

use stream_core::SessionEngine;

const CHANNEL: &str = "bench";
const STREAMED_DELTAS: usize = 100_000;
const DELTAS_PER_MESSAGE: usize = 200;
const BATCH: usize = 20;
const RUNS: usize = 9;

/// Builds frame texts with consecutive seqs.
struct TraceWriter {
    seq: u64,
    frames: Vec<String>,
}

impl TraceWriter {
    fn push(&mut self, body: String) {
        self.seq += 1;
        self.frames.push(format!(r#"{{"channel":"{CHANNEL}","epoch":"e1","seq":{},{body}}}"#, self.seq));
    }

    fn message(&mut self, id: &str, deltas: usize) {
        self.push(format!(
            r#""type":"message_started","message_id":"{id}","role":"assistant","created_at":1700000000000"#
        ));
        for i in 0..deltas {
            self.push(format!(r#""type":"delta","message_id":"{id}","content":"token {i} of a streamed reply, ""#));
        }
        self.push(format!(
            r#""type":"message_complete","message_id":"{id}","status":"complete","finished_at":1700000001000,"tokens_used":{deltas}"#
        ));
    }

    fn batches(frames: &[String]) -> Vec<String> {
        frames.chunks(BATCH).map(|chunk| format!("[{}]", chunk.join(","))).collect()
    }
}

struct Case {
    history: usize,
    frames: usize,
    median_ns_per_frame: f64,
    frames_per_second: f64,
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// One history size, ready to measure: the engine after the history, and the
/// streamed batches.
struct Setup {
    history: usize,
    base: SessionEngine,
    live_batches: Vec<String>,
    live_frames: usize,
}

fn setup(history: usize) -> Setup {
    let mut trace = TraceWriter { seq: 0, frames: Vec::new() };
    for i in 0..history {
        trace.message(&format!("h{i}"), 2);
    }
    let history_batches = TraceWriter::batches(&trace.frames);
    trace.frames.clear();
    for i in 0..STREAMED_DELTAS / DELTAS_PER_MESSAGE {
        trace.message(&format!("live{i}"), DELTAS_PER_MESSAGE);
    }
    let live_frames = trace.frames.len();
    let live_batches = TraceWriter::batches(&trace.frames);
    let mut base = SessionEngine::new(CHANNEL);
    for batch in &history_batches {
        base.ingest(batch, 0);
    }
    base.take_patch();
    assert_eq!(base.state().messages().len(), history);
    Setup { history, base, live_batches, live_frames }
}

/// ns per frame of one timed run of the streaming phase.
fn run_once(setup: &Setup) -> f64 {
    let mut engine = setup.base.clone();
    let start = Instant::now();
    for batch in &setup.live_batches {
        let report = engine.ingest(batch, 0);
        black_box(&report);
        black_box(engine.take_patch());
    }
    let elapsed = start.elapsed();
    assert_eq!(engine.cursor().seq as usize, setup.history * 4 + setup.live_frames, "every frame applied");
    elapsed.as_nanos() as f64 / setup.live_frames as f64
}

/// Runs the cases in rotation, so drift of the machine (frequency, neighbours)
/// lands on every case alike, after one untimed round for warm-up.
fn measure(setups: &[Setup]) -> Vec<Case> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::with_capacity(RUNS); setups.len()];
    for round in 0..=RUNS {
        for (setup, samples) in setups.iter().zip(&mut samples) {
            let ns = run_once(setup);
            if round > 0 {
                samples.push(ns);
            }
        }
    }
    setups
        .iter()
        .zip(samples)
        .map(|(setup, samples)| {
            let median_ns_per_frame = median(samples);
            Case {
                history: setup.history,
                frames: setup.live_frames,
                median_ns_per_frame,
                frames_per_second: 1e9 / median_ns_per_frame,
            }
        })
        .collect()
}

fn main() {
    // `cargo bench` passes `--bench`; a filter is not supported, every case runs.
    let setups: Vec<Setup> = [10, 1_000, 10_000].into_iter().map(setup).collect();
    let cases = measure(&setups);
    println!("stream-core ingest: {STREAMED_DELTAS} streamed deltas, batches of {BATCH}, median of {RUNS} runs");
    println!("{:>10} {:>10} {:>14} {:>14}", "history", "frames", "ns/frame", "frames/s");
    for case in &cases {
        println!(
            "{:>10} {:>10} {:>14.1} {:>14.0}",
            case.history, case.frames, case.median_ns_per_frame, case.frames_per_second
        );
    }
    let ratio = cases[2].median_ns_per_frame / cases[0].median_ns_per_frame;
    println!("per-frame cost ratio, 10,000-message history / 10-message history: {ratio:.3}");

    let json = serde_json::json!({
        "benchmark": "stream-core ingest",
        "streamed_deltas": STREAMED_DELTAS,
        "batch_frames": BATCH,
        "runs": RUNS,
        "cases": cases.iter().map(|case| serde_json::json!({
            "history_messages": case.history,
            "frames": case.frames,
            "median_ns_per_frame": case.median_ns_per_frame,
            "frames_per_second": case.frames_per_second,
        })).collect::<Vec<_>>(),
        "cost_ratio_10000_vs_10": ratio,
    });
    let target = std::env::var("CARGO_TARGET_DIR")
        .unwrap_or_else(|_| concat!(env!("CARGO_MANIFEST_DIR"), "/../../target").to_owned());
    let dir = std::path::Path::new(&target).join("bench");
    std::fs::create_dir_all(&dir).expect("create target/bench");
    std::fs::write(dir.join("core.json"), serde_json::to_string_pretty(&json).expect("json")).expect("write core.json");
    println!("wrote {}", dir.join("core.json").display());
}
