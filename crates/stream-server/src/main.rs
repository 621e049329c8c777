//! The `stream-server` binary: flags in, the server out (see `stream_server::Config`).

use clap::Parser;
use stream_server::{AppState, Config};
use tracing_subscriber::EnvFilter;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let config = Config::parse();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_new(&config.log).unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    match run(config).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(config: Config) -> Result<(), Box<dyn std::error::Error>> {
    let listener = tokio::net::TcpListener::bind(config.bind).await?;
    let address = listener.local_addr()?;
    let serves_web = config.web_root().is_some();
    let database = config.database_path();
    let state = AppState::open(config).await?;
    tracing::info!(database = %database.display(), "log open");
    println!("{}", stream_server::banner(address, serves_web));
    stream_server::serve(state, listener, stream_server::shutdown_signal()).await?;
    Ok(())
}
