//! Side by side with the plain Node server (`baseline/server.mjs`): the
//! paced delivery cases (10 sessions × 100 subscribers, a delta every 5 or
//! 20 ms) in paired rounds, and the memory of idle connections, in one run,
//! so both servers meet the same machine and the same load generator; and
//! ours again at the frame rate the Node server delivered at 5 ms (equal load).
//! Latency is taken from each probe's send time and from when it was due:
//! a server whose timers fire late (a single thread busy writing) sends
//! late, and only the second figure counts that wait.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::{Deployment, Server, demo_args, idle_memory, median, percentile, strs, temp_dir};

/// Paired rounds of each paced case (ours, then the baseline's).
const ROUNDS: usize = 3;

/// The paced cases: a delta every this many ms, and the reply's words.
fn paced_cases(paced_words: usize) -> [(u64, usize); 2] {
    [(5, paced_words), (20, paced_words / 4)]
}

/// The p50 range (ms) a plain Node server was first measured at on this
/// kind of machine, for a delta every 5 and 20 ms: the latency target.
fn reference_p50_ms(delta_ms: u64) -> Option<(f64, f64)> {
    match delta_ms {
        5 => Some((5.0, 9.0)),
        20 => Some((4.5, 5.6)),
        _ => None,
    }
}

/// Where the baseline server lives.
pub fn baseline_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline/server.mjs")
}

/// Why the baseline cannot run here, if it cannot (Node or its `ws` missing).
fn baseline_missing() -> Option<String> {
    let has_node = std::process::Command::new("node").arg("--version").output().is_ok_and(|out| out.status.success());
    let has_ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("baseline/node_modules/ws").is_dir();
    match (has_node, has_ws) {
        (true, true) => None,
        (false, _) => Some("node is not on PATH".to_owned()),
        (true, false) => Some("baseline/node_modules is missing (just setup installs it)".to_owned()),
    }
}

/// The stages of a frame's path the server's probe reports, then the client's receipt.
const STAGES: [&str; 5] = ["sequenced", "committed", "published", "written", "received"];

/// The medians of one server's rounds of one case.
#[derive(Clone, Copy)]
pub struct Figures {
    pub frames_per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// p50 and p99 from when each probe was due.
    pub due_p50_ms: f64,
    pub due_p99_ms: f64,
    /// The server's CPU time (all its threads) per frame delivered, in µs:
    /// what a frame costs, apart from when it is written.
    pub cpu_us_per_frame: f64,
    /// Where a frame's time goes (stream-server only).
    pub pipeline: Option<Pipeline>,
}

/// Where a frame's time goes in stream-server, from its `/metrics`.
#[derive(Clone, Copy)]
pub struct Pipeline {
    /// The probe frames' mean age at each of [`STAGES`], in ms.
    pub stages_ms: [f64; 5],
    /// The mean time of one group commit's SQLite transaction, in ms: the
    /// part of the committed stage that is the log's work, not waiting.
    pub commit_ms: f64,
}

/// One paced case on both servers.
pub struct PacedRow {
    pub delta_ms: u64,
    pub ours: Figures,
    pub baseline: Option<Figures>,
}

/// Ours again at about the frame rate the Node server delivered in a paced
/// case: its single thread falls behind the pacing (its timers fire late),
/// so at the same delta it delivers fewer frames than ours and its latency
/// is that of a lighter load. This row compares the two at equal load.
pub struct EqualLoadRow {
    /// The paced case whose Node figures are matched.
    pub node_delta_ms: u64,
    /// The delta that brings our rate to about the Node server's.
    pub delta_ms: u64,
    pub ours: Figures,
}

/// Everything compared.
pub struct Versus {
    pub paced: Vec<PacedRow>,
    pub equal_load: Option<EqualLoadRow>,
    /// Our RSS in KiB before and after the idle connections, and the bytes per connection.
    pub idle: (u64, u64, f64),
    /// The baseline's bytes per idle connection.
    pub baseline_idle_bytes: Option<f64>,
    pub skipped: Option<String>,
}

/// Runs the paced cases in paired rounds and the idle-connection count on both servers.
pub async fn run(binary: &Path, paced_words: usize, idle: usize) -> Versus {
    let skipped = baseline_missing();
    let mut paced = Vec::new();
    for (delta_ms, words) in paced_cases(paced_words) {
        let args = demo_args(words, delta_ms);
        let (mut ours, mut baseline) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            ours.push(round(|dir| Deployment::sqlite(binary, dir, &strs(&args)), delta_ms).await);
            if skipped.is_none() {
                baseline.push(round(|dir| Deployment::baseline(dir, &strs(&args)), delta_ms).await);
            }
        }
        paced.push(PacedRow {
            delta_ms,
            ours: medians(&ours),
            baseline: (!baseline.is_empty()).then(|| medians(&baseline)),
        });
    }
    let equal_load = match paced.first() {
        Some(&PacedRow { delta_ms: node_delta_ms, ours, baseline: Some(node) }) => {
            // A frame's period is about proportional to the delta at these rates.
            let ratio = ours.frames_per_second / node.frames_per_second;
            let delta_ms = ((node_delta_ms as f64 * ratio).round() as u64).max(node_delta_ms);
            let args = demo_args(paced_cases(paced_words)[0].1, delta_ms);
            let mut rounds = Vec::new();
            for _ in 0..ROUNDS {
                rounds.push(round(|dir| Deployment::sqlite(binary, dir, &strs(&args)), delta_ms).await);
            }
            Some(EqualLoadRow { node_delta_ms, delta_ms, ours: medians(&rounds) })
        }
        _ => None,
    };
    let ours_idle = idle_rss(|dir| Server::spawn(binary, dir, &[]), idle).await;
    let baseline_idle_bytes = match skipped {
        None => Some(idle_rss(|dir| Server::baseline(dir, &[]), idle).await.2),
        Some(_) => None,
    };
    Versus { paced, equal_load, idle: ours_idle, baseline_idle_bytes, skipped }
}

/// One round of a paced case on a fresh deployment.
async fn round(deploy: impl FnOnce(&Path) -> Deployment, delta_ms: u64) -> Figures {
    let dir = temp_dir("versus");
    let deployment = deploy(&dir);
    let case = crate::delivery(&deployment, 10, 100, delta_ms).await;
    let received_ms = case.latency_ms.iter().sum::<f64>() / case.latency_ms.len() as f64;
    let pipeline = match deployment.baseline {
        true => None,
        false => pipeline(&deployment.nodes[0], received_ms).await,
    };
    drop(deployment);
    let _ = std::fs::remove_dir_all(dir);
    Figures {
        frames_per_second: case.frames as f64 / case.seconds,
        p50_ms: percentile(&case.latency_ms, 0.5),
        p99_ms: percentile(&case.latency_ms, 0.99),
        due_p50_ms: percentile(&case.due_latency_ms, 0.5),
        due_p99_ms: percentile(&case.due_latency_ms, 0.99),
        cpu_us_per_frame: case.server_cpu_seconds / case.frames as f64 * 1e6,
        pipeline,
    }
}

/// The server's mean probe age at each stage but the last (the client's
/// `received_ms` is the last), and the mean group commit's duration.
async fn pipeline(server: &Server, received_ms: f64) -> Option<Pipeline> {
    let text = reqwest::get(server.url("/metrics")).await.ok()?.text().await.ok()?;
    let value =
        |series: &str| text.lines().find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse::<f64>().ok());
    // A histogram's series: `{name}_sum{labels} value` and `{name}_count{labels} value`.
    let mean_ms = |name: &str, labels: &str| {
        Some(value(&format!("{name}_sum{labels}"))? / value(&format!("{name}_count{labels}"))? * 1e3)
    };
    let mut stages_ms = [received_ms; 5];
    for (mean, stage) in stages_ms.iter_mut().zip(&STAGES[..4]) {
        *mean = mean_ms("stream_probe_age_seconds", &format!("{{stage=\"{stage}\"}}"))?;
    }
    Some(Pipeline { stages_ms, commit_ms: mean_ms("stream_commit_seconds", "")? })
}

async fn idle_rss(start: impl FnOnce(&Path) -> Server, connections: usize) -> (u64, u64, f64) {
    let dir = temp_dir("versus-idle");
    let rss = idle_memory(start(&dir), connections).await;
    let _ = std::fs::remove_dir_all(dir);
    rss
}

fn medians(rounds: &[Figures]) -> Figures {
    let of = |figure: fn(&Figures) -> f64| median(rounds.iter().map(figure).collect());
    let pipeline = rounds.iter().map(|round| round.pipeline).collect::<Option<Vec<_>>>().map(|pipelines| Pipeline {
        stages_ms: std::array::from_fn(|stage| median(pipelines.iter().map(|round| round.stages_ms[stage]).collect())),
        commit_ms: median(pipelines.iter().map(|round| round.commit_ms).collect()),
    });
    Figures {
        frames_per_second: of(|round| round.frames_per_second),
        p50_ms: of(|round| round.p50_ms),
        p99_ms: of(|round| round.p99_ms),
        due_p50_ms: of(|round| round.due_p50_ms),
        due_p99_ms: of(|round| round.due_p99_ms),
        cpu_us_per_frame: of(|round| round.cpu_us_per_frame),
        pipeline,
    }
}

/// The probes' mean age at each stage, and a commit's share, under a row of the table.
fn print_stages(figures: &Figures) {
    if let Some(Pipeline { stages_ms, commit_ms }) = figures.pipeline {
        let breakdown: Vec<String> =
            STAGES.iter().zip(stages_ms).map(|(stage, ms)| format!("{stage} {ms:.2}")).collect();
        println!(
            "{:>28} mean age (ms) of the probes: {}; a group commit's transaction takes {commit_ms:.2}",
            "",
            breakdown.join(", ")
        );
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "NOT MET" }
}

impl Versus {
    /// Prints the table and the targets; returns them as JSON.
    pub fn report(&self, idle: usize) -> Value {
        println!(
            "side by side with a plain Node server (ws, in-memory replay, a JSON-lines file), 10 sessions x 100 subscribers, median of {ROUNDS} paired rounds"
        );
        if let Some(why) = &self.skipped {
            println!("  (the Node server is skipped: {why})");
        }
        println!(
            "{:>9} {:>18} {:>12} {:>10} {:>10} {:>14} {:>14} {:>15}",
            "delta ms", "server", "frames/s", "p50 ms", "p99 ms", "due->p50 ms", "due->p99 ms", "cpu us/frame"
        );
        let mut rows = Vec::new();
        for row in &self.paced {
            for (name, figures) in [("stream-server", Some(row.ours)), ("plain Node", row.baseline)] {
                let Some(figures) = figures else { continue };
                let Figures { frames_per_second, p50_ms, p99_ms, due_p50_ms, due_p99_ms, cpu_us_per_frame, pipeline } =
                    figures;
                println!(
                    "{:>9} {name:>18} {frames_per_second:>12.0} {p50_ms:>10.2} {p99_ms:>10.2} {due_p50_ms:>14.2} {due_p99_ms:>14.2} {cpu_us_per_frame:>15.1}",
                    row.delta_ms
                );
                print_stages(&figures);
                rows.push(json!({
                    "demo_delta_ms": row.delta_ms,
                    "server": name,
                    "frames_per_second": frames_per_second,
                    "latency_p50_ms": p50_ms,
                    "latency_p99_ms": p99_ms,
                    "latency_from_due_p50_ms": due_p50_ms,
                    "latency_from_due_p99_ms": due_p99_ms,
                    "server_cpu_us_per_frame": cpu_us_per_frame,
                    "probe_mean_age_ms": pipeline.map(|pipeline| STAGES.iter().copied().zip(pipeline.stages_ms).collect::<std::collections::BTreeMap<_, _>>()),
                    "commit_mean_ms": pipeline.map(|pipeline| pipeline.commit_ms),
                }));
            }
            if let Some((low, high)) = reference_p50_ms(row.delta_ms) {
                let verdict = match row.ours.p50_ms {
                    p50 if p50 <= low => "met",
                    p50 if p50 <= high => "met within the range",
                    _ => "NOT MET",
                };
                println!(
                    "target: p50 at a delta every {} ms <= the first measured Node figures, {low}-{high} ms: {:.2} ms {verdict}",
                    row.delta_ms, row.ours.p50_ms
                );
            }
            if let Some(baseline) = row.baseline {
                let met = row.ours.p50_ms <= baseline.p50_ms;
                println!(
                    "target: p50 at a delta every {} ms <= the Node server's: {:.2} vs {:.2} ms {}",
                    row.delta_ms,
                    row.ours.p50_ms,
                    baseline.p50_ms,
                    verdict(met)
                );
                let met = row.ours.due_p50_ms <= baseline.due_p50_ms;
                println!(
                    "target: p50 from when each probe was due, a delta every {} ms, <= the Node server's: {:.2} vs {:.2} ms {}",
                    row.delta_ms,
                    row.ours.due_p50_ms,
                    baseline.due_p50_ms,
                    verdict(met)
                );
            }
        }
        let equal_load = self.equal_load.as_ref().map(|row| {
            let node = self.paced.iter().find(|paced| paced.delta_ms == row.node_delta_ms).and_then(|paced| paced.baseline);
            let (node_rate, node_p50, node_due_p50) = node
                .map_or((f64::NAN, f64::NAN, f64::NAN), |node| (node.frames_per_second, node.p50_ms, node.due_p50_ms));
            println!(
                "at equal load: stream-server at a delta of {} ms delivers {:.0} frames/s (the Node server {node_rate:.0} at {} ms): p50 {:.2} ms against the Node server's {node_p50:.2}, p99 {:.2}; from when due, p50 {:.2} against {node_due_p50:.2}; {:.1} us of CPU per frame",
                row.delta_ms,
                row.ours.frames_per_second,
                row.node_delta_ms,
                row.ours.p50_ms,
                row.ours.p99_ms,
                row.ours.due_p50_ms,
                row.ours.cpu_us_per_frame,
            );
            print_stages(&row.ours);
            json!({
                "demo_delta_ms": row.delta_ms,
                "matches_node_at_delta_ms": row.node_delta_ms,
                "frames_per_second": row.ours.frames_per_second,
                "latency_p50_ms": row.ours.p50_ms,
                "latency_p99_ms": row.ours.p99_ms,
                "latency_from_due_p50_ms": row.ours.due_p50_ms,
                "server_cpu_us_per_frame": row.ours.cpu_us_per_frame,
            })
        });
        let ((before, after, ours), baseline) = (self.idle, self.baseline_idle_bytes);
        let baseline_text = baseline.map_or(String::new(), |bytes| format!(", the Node server {bytes:.0}"));
        println!("idle connections: {idle}, server RSS {before} KiB -> {after} KiB");
        println!(
            "target: RSS per idle connection at {idle} connections <= 4 KB: {ours:.0} bytes{baseline_text} {}",
            verdict(ours <= 4096.0)
        );
        json!({
            "rounds": ROUNDS,
            "paced": rows,
            "equal_load": equal_load,
            "bytes_per_idle_connection": ours,
            "baseline_bytes_per_idle_connection": baseline,
        })
    }
}
