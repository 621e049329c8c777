//! Replays every input committed under `fuzz/regressions/` (seeds for each
//! parser, and inputs that once crashed the fuzz target) through the entry
//! the fuzz target uses.

use std::path::Path;

#[test]
fn committed_fuzz_inputs_replay_without_failure() {
    let access = stream_server::inputs::fuzz_access();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for entry in std::fs::read_dir(&dir).expect("fuzz/regressions exists") {
        let path = entry.expect("readable entry").path();
        if path.extension().is_some_and(|extension| extension == "md") {
            continue;
        }
        stream_server::inputs::fuzz(&std::fs::read(&path).expect("readable input"), &access);
        replayed += 1;
    }
    assert!(replayed >= 8, "only {replayed} inputs under {}", dir.display());
}
