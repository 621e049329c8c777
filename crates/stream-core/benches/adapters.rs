//! Adapter throughput: every provider transcript recorded by others (read in
//! place from `../shared/fixtures/providers`) decoded from its wire bytes,
//! in 16 KiB chunks as a socket delivers them, and translated into frame
//! bodies, on one core. Reports, per transcript (the largest first), the
//! native events in, the agent events out, agent events per second and MB/s
//! (median of several runs).
//! Output: a table on stdout and JSON in `target/bench/adapters.json`.

#[path = "../tests/support/transcripts.rs"]
mod transcripts;

use std::hint::black_box;
use std::time::{Duration, Instant};

use stream_core::agent::{Decoder, Translator};
use stream_core::message::Outcome;

const CHUNK: usize = 16 * 1024;
const RUNS: usize = 9;
/// Each run repeats a transcript until it has taken at least this long.
const RUN_TIME: Duration = Duration::from_millis(200);

/// Decodes and translates the transcript once; returns (events, frames).
fn play(transcript: &transcripts::Transcript) -> (usize, usize) {
    let mut decoder = Decoder::new(transcript.format, 1 << 20);
    let mut translator = Translator::new("r");
    let mut items = Vec::new();
    for chunk in transcript.wire.chunks(CHUNK) {
        decoder.push(chunk, &mut items);
    }
    decoder.finish(&mut items);
    let events = items.len();
    let mut bodies = Vec::with_capacity(events * 2);
    for item in items {
        translator.push(item, 1, &mut bodies);
    }
    translator.finish(Outcome::Complete, 2, &mut bodies);
    (events, black_box(bodies).len())
}

fn main() {
    let mut all = transcripts::all();
    if all.is_empty() {
        return;
    }
    all.sort_by_key(|transcript| std::cmp::Reverse(transcript.wire.len()));
    println!("{:<72} {:>9} {:>7} {:>7} {:>12} {:>7}", "transcript", "bytes", "native", "events", "events/s", "MB/s");
    let mut rows = Vec::new();
    for transcript in &all {
        let (events, frames) = play(transcript);
        let mut per_second = Vec::with_capacity(RUNS);
        for _ in 0..RUNS {
            let started = Instant::now();
            let mut rounds = 0u32;
            while started.elapsed() < RUN_TIME || rounds == 0 {
                play(transcript);
                rounds += 1;
            }
            per_second.push(f64::from(rounds) / started.elapsed().as_secs_f64());
        }
        per_second.sort_by(f64::total_cmp);
        let plays = per_second[RUNS / 2];
        let (events_per_second, megabytes) = (plays * events as f64, plays * transcript.wire.len() as f64 / 1e6);
        let native = transcript.events.len();
        println!(
            "{:<72} {:>9} {native:>7} {events:>7} {events_per_second:>12.0} {megabytes:>7.1}",
            transcript.name,
            transcript.wire.len()
        );
        rows.push(format!(
            r#"{{"transcript":"{}","bytes":{},"native_events":{native},"events":{events},"frames":{frames},"events_per_second":{events_per_second:.0},"megabytes_per_second":{megabytes:.2}}}"#,
            transcript.name,
            transcript.wire.len(),
        ));
    }
    let out = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench");
    std::fs::create_dir_all(&out).expect("target/bench");
    std::fs::write(out.join("adapters.json"), format!("[{}]\n", rows.join(",\n"))).expect("adapters.json");
}
