//! The `stream-server` binary. The server itself (router, store, providers)
//! is the next milestone; until then the binary reports the protocol it speaks.

fn main() {
    println!("stream-server: protocol v{}", stream_core::frame::PROTOCOL_VERSION);
}
