//! Fuzzes the client engine with arbitrary operation sequences: raw and
//! mutated frames, valid frames in any order, local sends, snapshots and
//! timeouts. Crashes found here go to `../crashers/`, which a normal test replays.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    stream_core::fuzzing::run(&stream_core::fuzzing::ops_from_bytes(data));
});
