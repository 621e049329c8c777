//! What the Durable Streams protocol's offsets, headers and bodies look like:
//! parsing and formatting, with no state. Every refusal is a [`WireError`],
//! which the handlers answer with 400.

use base64::Engine;
use serde_json::value::RawValue;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// A malformed request part.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct WireError(pub &'static str);

/// An offset: a position in a stream, written `{:016}_{:016}` so that
/// offsets sort as strings. The first part is reserved (always 0 today).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Offset(pub u64);

impl Offset {
    /// The offset's text.
    pub fn text(self) -> String {
        format!("{:016}_{:016}", 0, self.0)
    }
}

/// Where a read starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// `-1` or no offset: the stream's beginning.
    Beginning,
    /// `now`: the tail, skipping what is there.
    Now,
    /// A position.
    At(Offset),
}

/// Parses an `offset` value: `-1`, `now`, or an offset this server wrote.
pub fn parse_start(text: &str) -> Result<Start, WireError> {
    match text {
        "-1" => Ok(Start::Beginning),
        "now" => Ok(Start::Now),
        _ => parse_offset(text).map(Start::At),
    }
}

/// Parses an offset this server wrote; anything else is refused.
pub fn parse_offset(text: &str) -> Result<Offset, WireError> {
    const INVALID: WireError = WireError("an offset is -1, now, or a Stream-Next-Offset this server sent");
    let (reserved, position) = text.split_once('_').ok_or(INVALID)?;
    let digits = |part: &str| part.len() == 16 && part.bytes().all(|byte| byte.is_ascii_digit());
    if !digits(reserved) || !digits(position) || reserved.bytes().any(|byte| byte != b'0') {
        return Err(INVALID);
    }
    position.parse().map(Offset).map_err(|_| INVALID)
}

/// The query of a read: `offset` (at most once), `live` and `cursor`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ReadQuery {
    /// Where to start; `None` when the query has no offset.
    pub start: Option<Start>,
    /// The live mode.
    pub live: Live,
    /// The client's `cursor`, echoed from the last response.
    pub cursor: Option<u64>,
}

/// How a read waits for more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Live {
    /// Answer with what is there.
    #[default]
    No,
    /// Wait for data when there is none (`live=long-poll`).
    LongPoll,
    /// An event stream (`live=sse`).
    Sse,
}

/// Parses a read's query string; unknown parameters are ignored.
pub fn parse_read_query(query: Option<&str>) -> Result<ReadQuery, WireError> {
    let mut parsed = ReadQuery::default();
    let mut offsets = 0;
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "offset" => {
                offsets += 1;
                if offsets > 1 {
                    return Err(WireError("give offset once"));
                }
                parsed.start = Some(parse_start(&value)?);
            }
            "live" => {
                parsed.live = match &*value {
                    "long-poll" => Live::LongPoll,
                    "sse" => Live::Sse,
                    _ => return Err(WireError("live is long-poll or sse")),
                }
            }
            // A cursor is opaque to clients; one this server did not write is ignored.
            "cursor" => parsed.cursor = value.parse().ok(),
            _ => {}
        }
    }
    if parsed.live != Live::No && parsed.start.is_none() {
        return Err(WireError("a live read needs an offset"));
    }
    Ok(parsed)
}

/// A content type, compared by its lowercased essence (`type/subtype`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentType {
    /// As created, lowercased.
    pub full: String,
    essence_len: usize,
}

impl ContentType {
    /// The default of a stream created without one.
    pub fn octet_stream() -> Self {
        Self::parse("application/octet-stream").expect("a valid content type")
    }

    /// Parses a `Content-Type` value.
    pub fn parse(text: &str) -> Result<Self, WireError> {
        let full = text.trim().to_ascii_lowercase();
        let essence = full.split(';').next().unwrap_or_default().trim_end();
        let token = |part: &str| !part.is_empty() && part.bytes().all(|byte| byte.is_ascii_graphic() && byte != b'/');
        match essence.split_once('/') {
            Some((kind, subtype)) if token(kind) && token(subtype) => {
                Ok(Self { essence_len: essence.len(), full: full.clone() })
            }
            _ => Err(WireError("Content-Type is type/subtype")),
        }
    }

    /// `type/subtype`.
    pub fn essence(&self) -> &str {
        &self.full[..self.essence_len]
    }

    /// Whether two content types name the same format.
    pub fn matches(&self, other: &Self) -> bool {
        self.essence() == other.essence()
    }

    /// JSON mode: message boundaries kept, reads answer a JSON array.
    pub fn is_json(&self) -> bool {
        self.essence() == "application/json"
    }

    /// Whether SSE carries it as text; anything else goes as base64.
    pub fn is_text(&self) -> bool {
        let essence = self.essence();
        essence.starts_with("text/")
            || self.is_json()
            || matches!(essence, "application/ndjson" | "application/x-ndjson" | "application/xml")
            || essence.ends_with("+json")
            || essence.ends_with("+xml")
    }
}

/// Parses `Stream-TTL`: seconds, a plain decimal integer.
pub fn parse_ttl(text: &str) -> Result<u64, WireError> {
    const INVALID: WireError = WireError("Stream-TTL is a whole number of seconds without sign or leading zeros");
    let plain =
        !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit()) && (text == "0" || !text.starts_with('0'));
    if !plain {
        return Err(INVALID);
    }
    text.parse().map_err(|_| INVALID)
}

/// Parses `Stream-Expires-At` (RFC 3339) into ms since the Unix epoch.
pub fn parse_expires_at(text: &str) -> Result<u64, WireError> {
    let at =
        OffsetDateTime::parse(text.trim(), &Rfc3339).map_err(|_| WireError("Stream-Expires-At is an RFC 3339 time"))?;
    u64::try_from(at.unix_timestamp_nanos() / 1_000_000).map_err(|_| WireError("Stream-Expires-At is before 1970"))
}

/// Formats ms since the Unix epoch as RFC 3339.
pub fn format_time(ms: u64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|at| at.format(&Rfc3339).ok())
        .unwrap_or_default()
}

/// Parses a non-negative integer header (`Producer-Epoch`, `Producer-Seq`,
/// `Stream-Fork-Sub-Offset`): decimal digits, at most 2^53 − 1 so that
/// JavaScript clients can hold it. `leading_zeros` allows `007`.
pub fn parse_count(text: &str, leading_zeros: bool) -> Result<u64, WireError> {
    const INVALID: WireError = WireError("a count is a decimal integer from 0 to 2^53 - 1");
    let digits = !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit());
    if !digits || (!leading_zeros && text.len() > 1 && text.starts_with('0')) {
        return Err(INVALID);
    }
    text.parse().ok().filter(|&count: &u64| count < 1 << 53).ok_or(INVALID)
}

/// Parses `Stream-Closed`: `true` closes; absent or `false` does not.
pub fn parse_closed(value: Option<&str>) -> Result<bool, WireError> {
    match value.map(str::trim) {
        None => Ok(false),
        Some(value) if value.eq_ignore_ascii_case("true") => Ok(true),
        Some(value) if value.eq_ignore_ascii_case("false") => Ok(false),
        Some(_) => Err(WireError("Stream-Closed is true or false")),
    }
}

/// Splits a JSON body into the messages it appends: an array is flattened
/// one level, anything else is one message. Each keeps its exact text.
/// `allow_empty` admits `[]` (a PUT's empty initial content).
pub fn json_messages(body: &[u8], allow_empty: bool) -> Result<Vec<Vec<u8>>, WireError> {
    let text = std::str::from_utf8(body).map_err(|_| WireError("the body is not UTF-8 JSON"))?;
    let value: &RawValue = serde_json::from_str(text).map_err(|_| WireError("the body is not valid JSON"))?;
    let raw = value.get();
    if !raw.starts_with('[') {
        return Ok(vec![raw.as_bytes().to_vec()]);
    }
    let items: Vec<&RawValue> = serde_json::from_str(raw).map_err(|_| WireError("the body is not valid JSON"))?;
    if items.is_empty() && !allow_empty {
        return Err(WireError("an append of an empty JSON array appends nothing"));
    }
    Ok(items.into_iter().map(|item| item.get().as_bytes().to_vec()).collect())
}

/// Milliseconds since the Unix epoch of the cursor epoch, 2024-10-09T00:00:00Z.
const CURSOR_EPOCH_MS: u64 = 1_728_432_000_000;
/// The length of one cursor interval.
const CURSOR_INTERVAL_MS: u64 = 20_000;

/// The cursor of a live response at `now_ms`: the current interval, and
/// always past the client's own (by 1 s to 1 h of jitter) so a CDN keyed on
/// it can never serve the same cached answer forever.
pub fn cursor(now_ms: u64, client: Option<u64>) -> u64 {
    let current = now_ms.saturating_sub(CURSOR_EPOCH_MS) / CURSOR_INTERVAL_MS;
    match client {
        Some(client) if client >= current => {
            let jitter_ms = fastrand::u64(1_000..=3_600_000);
            client + jitter_ms.div_ceil(CURSOR_INTERVAL_MS)
        }
        _ => current,
    }
}

/// The SSE `data:` lines of a payload: text split at every line break (so a
/// payload cannot end the event early or forge another), or base64.
pub fn sse_data_lines(out: &mut Vec<u8>, payload: &[u8], as_text: bool) {
    if !as_text {
        out.extend_from_slice(b"data:");
        out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(payload).as_bytes());
        out.push(b'\n');
        return;
    }
    let mut rest = payload;
    loop {
        let end = rest.iter().position(|&byte| byte == b'\n' || byte == b'\r').unwrap_or(rest.len());
        out.extend_from_slice(b"data:");
        out.extend_from_slice(&rest[..end]);
        out.push(b'\n');
        if end == rest.len() {
            return;
        }
        let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') { 2 } else { 1 };
        rest = &rest[end + skip..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offsets_round_trip_and_sort_as_strings() {
        assert_eq!(Offset(0).text(), "0000000000000000_0000000000000000");
        assert_eq!(parse_offset(&Offset(42).text()), Ok(Offset(42)));
        assert!(Offset(9).text() < Offset(10).text());
        for bad in ["", "0", "0_0", "0000000000000001_0000000000000000", "0000000000000000_000000000000000a", "a,b"] {
            assert!(parse_offset(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_start("-1"), Ok(Start::Beginning));
        assert_eq!(parse_start("now"), Ok(Start::Now));
    }

    proptest! {
        #[test]
        fn any_text_that_is_not_an_offset_we_wrote_is_refused(text in ".*") {
            if let Ok(offset) = parse_offset(&text) {
                prop_assert_eq!(offset.text(), text);
            }
        }

        #[test]
        fn sse_lines_never_carry_a_line_break_and_rejoin_to_the_text(text in "[a-z\r\n:]{0,40}") {
            let mut out = Vec::new();
            sse_data_lines(&mut out, text.as_bytes(), true);
            let out = String::from_utf8(out).unwrap();
            let lines: Vec<&str> = out.strip_suffix('\n').unwrap().split('\n').collect();
            prop_assert!(lines.iter().all(|line| line.starts_with("data:") && !line.contains('\r')));
            let rejoined = lines.iter().map(|line| &line[5..]).collect::<Vec<_>>().join("\n");
            prop_assert_eq!(rejoined, text.replace("\r\n", "\n").replace('\r', "\n"));
        }
    }

    #[test]
    fn read_queries_take_one_offset_and_need_it_to_go_live() {
        let parsed = parse_read_query(Some("offset=-1&live=sse&cursor=7&foo=bar")).unwrap();
        assert_eq!(parsed, ReadQuery { start: Some(Start::Beginning), live: Live::Sse, cursor: Some(7) });
        for bad in ["offset=a&offset=b", "offset=", "live=long-poll", "offset=0%2C1", "offset=-1&live=ws"] {
            assert!(parse_read_query(Some(bad)).is_err(), "{bad}");
        }
        assert_eq!(parse_read_query(None).unwrap().start, None);
    }

    #[test]
    fn ttls_are_plain_integers_and_expiry_is_rfc_3339() {
        assert_eq!(parse_ttl("3600"), Ok(3600));
        assert_eq!(parse_ttl("0"), Ok(0));
        for bad in ["", "abc", "-1", "+60", "00060", "60.5", "1e3", "99999999999999999999999"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        let at = parse_expires_at("2026-12-01T00:00:00Z").unwrap();
        assert_eq!(parse_expires_at("2026-12-01T01:00:00+01:00"), Ok(at));
        assert_eq!(format_time(at), "2026-12-01T00:00:00Z");
        assert!(parse_expires_at("not-a-timestamp").is_err());
    }

    #[test]
    fn counts_and_content_types() {
        assert_eq!(parse_count("0", false), Ok(0));
        for bad in ["", "-1", "1abc", "0xyz", "1e3", "05", "+1", "1.5", "9007199254740992"] {
            assert!(parse_count(bad, false).is_err(), "{bad}");
        }
        assert_eq!(parse_count("007", true), Ok(7));
        let json = ContentType::parse("Application/JSON; charset=utf-8").unwrap();
        assert!(json.is_json() && json.matches(&ContentType::parse("application/json").unwrap()));
        assert!(!ContentType::octet_stream().is_text() && ContentType::parse("text/plain").unwrap().is_text());
        assert!(ContentType::parse("garbage").is_err());
    }

    #[test]
    fn json_bodies_flatten_one_level_and_keep_their_text() {
        let messages = |body: &str| {
            json_messages(body.as_bytes(), false)
                .map(|all| all.into_iter().map(|m| String::from_utf8(m).unwrap()).collect::<Vec<_>>())
        };
        assert_eq!(messages(r#"{"a": 1.0}"#).unwrap(), vec![r#"{"a": 1.0}"#]);
        assert_eq!(messages("[[1,2], [3]]").unwrap(), vec!["[1,2]", "[3]"]);
        assert_eq!(messages("[[[1]]]").unwrap(), vec!["[[1]]"]);
        assert!(messages("[]").is_err() && messages("{ invalid json }").is_err());
        assert_eq!(json_messages(b"[]", true), Ok(Vec::new()));
    }

    #[test]
    fn a_cursor_moves_past_the_clients_own() {
        let now = CURSOR_EPOCH_MS + 1_000 * CURSOR_INTERVAL_MS;
        assert_eq!(cursor(now, None), 1_000);
        assert_eq!(cursor(now, Some(3)), 1_000);
        let echoed = cursor(now, Some(1_000));
        assert!(echoed > 1_000 && echoed <= 1_000 + 180, "{echoed}");
    }

    #[test]
    fn binary_sse_data_is_one_base64_line() {
        let mut out = Vec::new();
        sse_data_lines(&mut out, b"Hello", false);
        assert_eq!(out, b"data:SGVsbG8=\n");
    }
}
