//! The in-band latency probe, inside the server. With `--demo-probe-every`,
//! the demo provider stamps a frame now and then with its send time
//! (`probe_us`, µs since the Unix epoch) and the time its pacing meant it
//! to go (`due_us`: when the pause before it ends, so a timer that fires
//! late shows); each stage of the pipeline then
//! records that frame's age as it passes, into
//! `stream_probe_age_seconds{stage}`. A benchmark reads where a frame's
//! time goes from there, beside the age its client measures on receipt.
//! Off unless probing is on: one branch per batch.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};

/// The stages of a frame's path, in order.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Stage {
    /// Taken from the provider, translated and sequenced; not yet committed.
    Sequenced,
    /// Committed to the log.
    Committed,
    /// Offered to every subscriber: written to its socket, or queued.
    Published,
    /// Written to a subscriber's socket (once per subscriber).
    Written,
}

impl Stage {
    fn label(self) -> &'static str {
        match self {
            Self::Sequenced => "sequenced",
            Self::Committed => "committed",
            Self::Published => "published",
            Self::Written => "written",
        }
    }
}

/// The histogram label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct StageLabel {
    stage: &'static str,
}

/// One histogram of ages per stage.
type Ages = Family<StageLabel, Histogram, fn() -> Histogram>;

fn age_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_025, 2.0, 16))
}

/// The probe's histograms, and whether probing is on.
pub struct Probes {
    enabled: bool,
    ages: Ages,
}

impl Probes {
    /// Probes that record when `enabled`.
    pub fn new(enabled: bool) -> Self {
        Self { enabled, ages: Family::new_with_constructor(age_histogram) }
    }

    /// The histograms, for registration.
    pub fn ages(&self) -> Ages {
        self.ages.clone()
    }

    /// Records the age of every probe among `texts` at `stage`.
    pub fn observe<'a>(&self, stage: Stage, texts: impl IntoIterator<Item = &'a str>) {
        if !self.enabled {
            return;
        }
        let now = unix_micros();
        let histogram = self.ages.get_or_create(&StageLabel { stage: stage.label() });
        for sent in texts.into_iter().flat_map(probe_times) {
            histogram.observe(now.saturating_sub(sent) as f64 / 1e6);
        }
    }
}

/// µs since the Unix epoch, the probes' clock.
pub fn unix_micros() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |now| now.as_micros() as u64)
}

/// The send times (`probe_us`) of the probes in a frame's or a message's text.
pub fn probe_times(text: &str) -> impl Iterator<Item = u64> + '_ {
    stamps(text, "\"probe_us\":")
}

/// The times the probes in a text were due (`due_us`), in order.
pub fn due_times(text: &str) -> impl Iterator<Item = u64> + '_ {
    stamps(text, "\"due_us\":")
}

/// The integers after each `key` (a quoted name and its colon) in `text`.
fn stamps<'a>(text: &'a str, key: &'static str) -> impl Iterator<Item = u64> + 'a {
    text.match_indices(key).filter_map(|(at, key)| {
        let digits = &text[at + key.len()..];
        digits[..digits.find(|c: char| !c.is_ascii_digit()).unwrap_or(digits.len())].parse().ok()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_times_are_read_from_any_text_in_order() {
        let text = r#"[{"seq":1,"metadata":{"probe_us":17}},{"seq":2},{"metadata":{"probe_us":42},"x":1}]"#;
        assert_eq!(probe_times(text).collect::<Vec<_>>(), [17, 42]);
        assert_eq!(probe_times(r#"{"probe_us":}"#).count(), 0);
        let text = r#"[{"metadata":{"due_us":15,"probe_us":17}},{"metadata":{"due_us":40,"probe_us":42}}]"#;
        assert_eq!(
            (probe_times(text).collect::<Vec<_>>(), due_times(text).collect::<Vec<_>>()),
            (vec![17, 42], vec![15, 40])
        );
    }

    #[test]
    fn an_age_is_recorded_per_probe_only_when_enabled() {
        let text = format!(r#"{{"metadata":{{"probe_us":{}}}}}"#, unix_micros());
        let count = |probes: &Probes| {
            let histogram = probes.ages.get_or_create(&StageLabel { stage: "written" });
            let mut encoded = String::new();
            let mut registry = prometheus_client::registry::Registry::default();
            registry.register("age", "", histogram.clone());
            prometheus_client::encoding::text::encode(&mut encoded, &registry).expect("encode");
            encoded.lines().find_map(|line| line.strip_prefix("age_count ")?.parse::<u64>().ok())
        };
        let on = Probes::new(true);
        on.observe(Stage::Written, [text.as_str(), "{}", text.as_str()]);
        assert_eq!(count(&on), Some(2));
        let off = Probes::new(false);
        off.observe(Stage::Written, [text.as_str()]);
        assert_eq!(count(&off), Some(0));
    }
}
