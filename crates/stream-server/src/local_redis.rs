//! A `redis-server` of one's own, for the tests and the benchmark: started
//! from `PATH` on a free loopback port with its data in a directory of the
//! caller's (append-only file on, fsync on every write), stopped when dropped.
//! Never a system Redis.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a started `redis-server` may take to answer `PING`.
const STARTUP: Duration = Duration::from_secs(10);

/// A running `redis-server` of this process.
pub struct LocalRedis {
    child: Child,
    port: u16,
    dir: PathBuf,
}

impl LocalRedis {
    /// Starts one with its data in `dir` (created if missing). Fails with
    /// `NotFound` when `redis-server` is not installed (`just setup` installs it).
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let child = spawn(dir, port)?;
        let mut redis = Self { child, port, dir: dir.to_owned() };
        redis.wait_ready()?;
        Ok(redis)
    }

    /// Its URL, for `--redis-url`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Kills it (SIGKILL: what it had not written to its append-only file is gone).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again, on the same port with the same data, after [`Self::kill`].
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.kill();
        self.child = spawn(&self.dir, self.port)?;
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> std::io::Result<()> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if answers_ping(self.port) {
                return Ok(());
            }
            if let Some(status) = self.child.try_wait()? {
                return Err(std::io::Error::other(format!("redis-server exited at start: {status}")));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other("redis-server did not answer PING"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

fn spawn(dir: &Path, port: u16) -> std::io::Result<Child> {
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--daemonize", "no"])
        .args(["--appendonly", "yes", "--appendfsync", "always", "--loglevel", "warning", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
