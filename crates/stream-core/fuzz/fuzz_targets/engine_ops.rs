//! Fuzzes the client engine with arbitrary operation sequences: raw and
//! mutated frames, valid frames in any order, local sends, snapshots and
//! timeouts. A crash found here is copied to `../regressions/`, which a normal test
//! (`tests/fuzz_regressions.rs`) replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stream_core::fuzzing::run(&stream_core::fuzzing::ops_from_bytes(data));
});
