//! What an idle WebSocket connection costs the server, counted by a heap
//! profiler (dhat) rather than read off RSS: the live heap bytes and blocks that
//! many connections add, each upgraded and greeted (`hello`) and then silent.
//! The clients are blocking std sockets with a hand-written upgrade, which
//! allocate nothing, so everything counted is the server's.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::*;

#[global_allocator]
static ALLOCATOR: dhat::Alloc = dhat::Alloc;

/// The heap an idle connection may hold on the server. Measured (dhat's
/// profile of this test, bytes per connection, 10 blocks in all):
///
/// | what | bytes |
/// |---|---|
/// | its task: the upgrade's and the connection's futures, in tokio's task cell | 1,280 |
/// | the upgraded WebSocket, boxed as the connection's socket | 368 |
/// | the socket's registration with tokio's I/O driver | 256 |
/// | the WebSocket's read buffer (`READ_BUFFER_BYTES` in `ws.rs`) | 256 |
/// | the outbox (its queue is empty and unallocated) | 184 |
/// | the heartbeat timer | 112 |
/// | the write buffer's leftover capacity after the `hello` | 79 |
/// | hyper's upgraded I/O and tokio-tungstenite's two waker proxies | 200 |
/// | total | 2,735 |
///
/// RSS per connection (allocator overhead and page granularity on top) is
/// held to 4 KB by `just bench`.
const HEAP_BUDGET_BYTES: f64 = 3_072.0;

const CONNECTIONS: usize = 1_000;

/// A socket upgraded to a WebSocket on `addr`, read up to its `hello`.
fn greeted(addr: SocketAddr) -> TcpStream {
    let mut socket = TcpStream::connect(addr).expect("connect");
    let upgrade = format!(
        "GET /v1/ws HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    socket.write_all(upgrade.as_bytes()).expect("upgrade");
    let (mut seen, mut read) = ([0u8; 1024], 0);
    while !seen[..read].windows(7).any(|window| window == b"\"hello\"") {
        let more = socket.read(&mut seen[read..]).expect("read");
        assert!(more > 0 && read + more < seen.len(), "no hello in {:?}", String::from_utf8_lossy(&seen[..read]));
        read += more;
    }
    socket
}

/// Opens `count` greeted connections and waits until the server has settled.
async fn open(addr: SocketAddr, count: usize, held: &mut Vec<TcpStream>) {
    let opened = tokio::task::spawn_blocking(move || (0..count).map(|_| greeted(addr)).collect::<Vec<_>>());
    held.extend(opened.await.expect("connections"));
    // Each connection's task parks after its hello; let the last of them.
    tokio::time::sleep(Duration::from_millis(200)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_connection_holds_under_its_heap_budget() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let server = TestServer::start(|_| {}).await;
    let mut held = Vec::with_capacity(CONNECTIONS + 16);
    // Warm-up: the runtime's and the allocator's first growth is not a connection's.
    open(server.addr, 16, &mut held).await;
    held.clear();
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = dhat::HeapStats::get();
    open(server.addr, CONNECTIONS, &mut held).await;
    let after = dhat::HeapStats::get();
    let per_connection = |after: usize, before: usize| (after as f64 - before as f64) / CONNECTIONS as f64;
    let bytes = per_connection(after.curr_bytes, before.curr_bytes);
    let blocks = per_connection(after.curr_blocks, before.curr_blocks);
    println!("an idle connection holds {bytes:.0} heap bytes in {blocks:.1} blocks");
    assert_eq!(server.state.metrics.connections.get(), CONNECTIONS as i64, "every connection is open");
    assert!(bytes <= HEAP_BUDGET_BYTES, "{bytes:.0} heap bytes per idle connection, budget {HEAP_BUDGET_BYTES}");
    drop(held);
    server.stop().await;
}
