//! Fuzzes every client input of the server through the parsing its handlers
//! use (`stream_server::inputs::fuzz`): WebSocket frames, REST bodies, ids,
//! names, and the host, origin and token checks. A crash found here is
//! copied to `../regressions/`, which `tests/fuzz_regressions.rs` replays.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use stream_server::access::Access;

static ACCESS: LazyLock<Access> = LazyLock::new(stream_server::inputs::fuzz_access);

fuzz_target!(|data: &[u8]| {
    stream_server::inputs::fuzz(data, &ACCESS);
});
