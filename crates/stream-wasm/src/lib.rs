//! `stream-wasm`: thin wasm-bindgen bindings over stream-core. The bindings
//! (engine, processing map, transport) arrive with the npm package; this
//! crate starts with the protocol version so the build and package pipeline
//! can be exercised end to end.

use wasm_bindgen::prelude::wasm_bindgen;

/// The wire protocol version the engine speaks.
#[wasm_bindgen(js_name = protocolVersion)]
pub fn protocol_version() -> u32 {
    stream_core::frame::PROTOCOL_VERSION
}
