//! A `redis-server` of one's own, for the tests and the benchmark: started
//! from `PATH` on a free loopback port with its data in a directory of the
//! caller's (append-only file on), stopped when dropped. Never a system Redis.

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
    fsync: Fsync,
}

/// When Redis fsyncs its append-only file (`appendfsync`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fsync {
    /// Before it answers each write: an acknowledged write survives a power cut.
    Always,
    /// Once a second (Redis's usual setting): a power cut loses up to a second.
    EverySecond,
}

impl LocalRedis {
    /// Starts one with its data in `dir` (created if missing), fsyncing every
    /// write. Fails with `NotFound` when `redis-server` is not installed
    /// (`just setup` installs it).
    pub fn start(dir: &Path) -> std::io::Result<Self> {
        Self::start_with(dir, Fsync::Always)
    }

    /// [`Self::start`], with the fsync policy given.
    pub fn start_with(dir: &Path, fsync: Fsync) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        let child = spawn(dir, port, fsync)?;
        let mut redis = Self { child, port, dir: dir.to_owned(), fsync };
        redis.wait_ready()?;
        Ok(redis)
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
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
        self.child = spawn(&self.dir, self.port, self.fsync)?;
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

fn spawn(dir: &Path, port: u16, fsync: Fsync) -> std::io::Result<Child> {
    let fsync = match fsync {
        Fsync::Always => "always",
        Fsync::EverySecond => "everysec",
    };
    Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string(), "--save", "", "--daemonize", "no"])
        .args(["--appendonly", "yes", "--appendfsync", fsync, "--loglevel", "warning", "--dir"])
        .arg(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
}

impl LocalRedis {
    /// The text of `INFO <section>` (e.g. `commandstats`, `stats`), for the benchmark's counts.
    pub fn info(&self, section: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(5)))?;
        stream.write_all(format!("INFO {section}\r\n").as_bytes())?;
        // A bulk string: `$<length>\r\n<text>\r\n`.
        let mut reader = std::io::BufReader::new(stream);
        let mut header = String::new();
        std::io::BufRead::read_line(&mut reader, &mut header)?;
        let length: usize = header.trim().trim_start_matches('$').parse().map_err(std::io::Error::other)?;
        let mut text = vec![0; length];
        reader.read_exact(&mut text)?;
        String::from_utf8(text).map_err(std::io::Error::other)
    }
}

fn answers_ping(port: u16) -> bool {
    let Ok(mut stream) = TcpStream::connect((Ipv4Addr::LOCALHOST, port)) else { return false };
    let _ = stream.set_read_timeout(Some(Duration::from_millis(500)));
    let mut answer = [0u8; 7];
    stream.write_all(b"PING\r\n").is_ok() && stream.read_exact(&mut answer).is_ok() && &answer == b"+PONG\r\n"
}
