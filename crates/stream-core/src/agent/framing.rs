//! Lines and server-sent events out of byte chunks that may be cut anywhere:
//! inside a line, a UTF-8 character or an event. The line bound is enforced
//! while reading: an over-long line is dropped as it streams, never buffered.

/// Why a line was not handed out.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineError {
    /// The line was longer than the bound; its bytes were dropped.
    #[error("line {line} is over {max} bytes; skipped")]
    TooLong {
        /// Its number, from 1.
        line: usize,
        /// The bound.
        max: usize,
    },
    /// The line is not UTF-8.
    #[error("line {line} is not UTF-8; skipped")]
    NotUtf8 {
        /// Its number, from 1.
        line: usize,
    },
}

/// Splits bytes into lines (`\n`, with a `\r` before it dropped).
#[derive(Debug)]
pub struct LineSplitter {
    pending: Vec<u8>,
    max_line_bytes: usize,
    /// Dropping the rest of a line that went over the bound.
    overflowing: bool,
    line: usize,
}

impl LineSplitter {
    /// A splitter that refuses lines over `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self { pending: Vec::new(), max_line_bytes, overflowing: false, line: 0 }
    }

    /// Feeds a chunk; each complete line (or its error) goes to `out`.
    pub fn push(&mut self, mut chunk: &[u8], out: &mut impl FnMut(Result<&str, LineError>)) {
        while !chunk.is_empty() {
            let newline = chunk.iter().position(|&byte| byte == b'\n');
            let (head, rest) = match newline {
                Some(at) => (&chunk[..at], Some(&chunk[at + 1..])),
                None => (chunk, None),
            };
            if !self.overflowing {
                if self.pending.len() + head.len() > self.max_line_bytes {
                    self.overflowing = true;
                    self.pending.clear();
                } else {
                    self.pending.extend_from_slice(head);
                }
            }
            match rest {
                Some(rest) => {
                    self.end_line(out);
                    chunk = rest;
                }
                None => break,
            }
        }
    }

    /// Ends the input: a last line without its `\n` is handed out.
    pub fn finish(&mut self, out: &mut impl FnMut(Result<&str, LineError>)) {
        if self.overflowing || !self.pending.is_empty() {
            self.end_line(out);
        }
    }

    fn end_line(&mut self, out: &mut impl FnMut(Result<&str, LineError>)) {
        self.line += 1;
        if std::mem::take(&mut self.overflowing) {
            out(Err(LineError::TooLong { line: self.line, max: self.max_line_bytes }));
            return;
        }
        if self.pending.last() == Some(&b'\r') {
            self.pending.pop();
        }
        match std::str::from_utf8(&self.pending) {
            Ok(line) => out(Ok(line)),
            Err(_) => out(Err(LineError::NotUtf8 { line: self.line })),
        }
        self.pending.clear();
    }
}

/// One server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SseEvent {
    /// Its `event:` name; empty for the default `message`.
    pub event: String,
    /// Its `data:` lines, joined with `\n`.
    pub data: String,
}

/// Decodes `text/event-stream` (the WHATWG rules: `field: value` lines, one
/// leading space dropped, comments ignored, a blank line ends the event).
#[derive(Debug)]
pub struct SseDecoder {
    lines: LineSplitter,
    current: SseEvent,
    has_data: bool,
}

impl SseDecoder {
    /// A decoder that refuses lines over `max_line_bytes`.
    pub fn new(max_line_bytes: usize) -> Self {
        Self { lines: LineSplitter::new(max_line_bytes), current: SseEvent::default(), has_data: false }
    }

    /// Feeds a chunk; each complete event (or a line's error) goes to `out`.
    pub fn push(&mut self, chunk: &[u8], out: &mut impl FnMut(Result<SseEvent, LineError>)) {
        let Self { lines, current, has_data } = self;
        lines.push(chunk, &mut |line| Self::line(current, has_data, line, out));
    }

    /// Ends the input: an event the stream did not end with a blank line is
    /// handed out too (servers that close right after the last `data:`).
    pub fn finish(&mut self, out: &mut impl FnMut(Result<SseEvent, LineError>)) {
        let Self { lines, current, has_data } = self;
        lines.finish(&mut |line| Self::line(current, has_data, line, out));
        Self::line(current, has_data, Ok(""), out);
    }

    fn line(
        current: &mut SseEvent,
        has_data: &mut bool,
        line: Result<&str, LineError>,
        out: &mut impl FnMut(Result<SseEvent, LineError>),
    ) {
        let line = match line {
            Ok(line) => line,
            Err(error) => return out(Err(error)),
        };
        if line.is_empty() {
            if std::mem::take(has_data) {
                out(Ok(std::mem::take(current)));
            } else {
                current.event.clear();
            }
            return;
        }
        if line.starts_with(':') {
            return;
        }
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => value.clone_into(&mut current.event),
            "data" => {
                if *has_data {
                    current.data.push('\n');
                }
                current.data.push_str(value);
                *has_data = true;
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;

    fn lines_of(chunks: &[&[u8]], max: usize) -> Vec<Result<String, LineError>> {
        let mut splitter = LineSplitter::new(max);
        let mut lines = Vec::new();
        let mut out = |line: Result<&str, LineError>| lines.push(line.map(str::to_owned));
        for chunk in chunks {
            splitter.push(chunk, &mut out);
        }
        splitter.finish(&mut out);
        lines
    }

    #[test]
    fn lines_survive_any_cut_including_inside_a_character() {
        let text = "héllo\r\nwörld ✓\nlast".as_bytes();
        let whole = lines_of(&[text], 64);
        assert_eq!(whole, vec![Ok("héllo".into()), Ok("wörld ✓".into()), Ok("last".into())]);
        for cut in 0..=text.len() {
            let (a, b) = text.split_at(cut);
            assert_eq!(lines_of(&[a, b], 64), whole, "cut at {cut}");
        }
    }

    #[test]
    fn an_over_long_line_is_dropped_while_it_streams_and_the_next_one_is_read() {
        let long = [b'x'; 100];
        let lines = lines_of(&[b"ok\n", &long[..50], &long[50..], b"\nnext\n"], 10);
        assert_eq!(lines, vec![Ok("ok".into()), Err(LineError::TooLong { line: 2, max: 10 }), Ok("next".into())]);
        assert_eq!(lines_of(&[b"\xff\xfe\n"], 10), vec![Err(LineError::NotUtf8 { line: 1 })]);
    }

    #[test]
    fn sse_events_join_data_lines_and_ignore_comments() {
        let stream = b": keep-alive\nevent: message_start\ndata: {\"a\":\ndata:1}\n\ndata: [DONE]\n\n";
        let mut decoder = SseDecoder::new(1024);
        let mut events = Vec::new();
        for cut in stream.chunks(3) {
            decoder.push(cut, &mut |event| events.push(event.unwrap()));
        }
        decoder.finish(&mut |event| events.push(event.unwrap()));
        assert_eq!(
            events,
            vec![
                SseEvent { event: "message_start".into(), data: "{\"a\":\n1}".into() },
                SseEvent { event: String::new(), data: "[DONE]".into() },
            ]
        );
    }

    #[test]
    fn an_sse_event_cut_off_by_the_end_of_the_stream_is_still_handed_out() {
        let mut decoder = SseDecoder::new(1024);
        let mut events = Vec::new();
        decoder.push(b"data: {}", &mut |event| events.push(event.unwrap()));
        decoder.finish(&mut |event| events.push(event.unwrap()));
        assert_eq!(events, vec![SseEvent { event: String::new(), data: "{}".into() }]);
    }
}
