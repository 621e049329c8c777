//! Replays every input committed under `fuzz/regressions/` (inputs that once
//! crashed the fuzz target, and corpus seeds that reach deep paths) through
//! the same operation runner the fuzz target uses. Native only: it reads the
//! directory.
#![cfg(not(target_arch = "wasm32"))]

use std::path::Path;

#[test]
fn committed_fuzz_inputs_replay_without_failure() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|extension| extension == "md") {
            continue;
        }
        let data = std::fs::read(&path).expect("readable input");
        let ops = stream_core::fuzzing::ops_from_bytes(&data);
        assert!(!ops.is_empty(), "{} decodes to no operation", path.display());
        stream_core::fuzzing::run(&ops);
        replayed += 1;
    }
    assert!(replayed > 0, "no inputs under {}", dir.display());
}
