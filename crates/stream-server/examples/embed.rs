//! Embedding stream-server in another axum app: its router nests under a
//! prefix next to the app's own routes.
//!
//! Run: `cargo run -p stream-server --example embed`, then
//! `curl -XPOST localhost:3000/chat/v1/sessions/s1/messages -H 'content-type: application/json' \
//!   -d '{"client_message_id":"c1","content":"hi"}'` and `curl localhost:3000/chat/v1/sessions/s1`.

use axum::Router;
use axum::routing::get;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let state = stream_server::AppState::open(stream_server::Config::for_data_dir("data/embed")).await?;
    let app = Router::new().route("/", get(|| async { "the host app" })).nest("/chat", stream_server::router(state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("host app on http://127.0.0.1:3000, chat API under /chat/v1");
    axum::serve(listener, app).await?;
    Ok(())
}
