//! The runtime the run drivers run on: one thread of its own, beside the
//! shared workers that serve the connections.
//!
//! A driver's path is the latency every subscriber sees: it sequences a
//! batch, waits for its commit, and publishes it. The commit is answered
//! from the SQLite writer thread, and a task woken from outside its runtime
//! joins the back of the workers' queue. Under fan-out load that queue
//! holds hundreds of connection tasks, so a driver on the shared workers
//! waited milliseconds after each commit before it could publish (the probe's
//! `committed` stage). On its own thread the kernel runs it once its commit
//! is answered.

use std::thread::JoinHandle;

use tokio::runtime::{Builder, Handle};
use tokio::sync::oneshot;

/// The drivers' runtime; it stops when this is dropped.
pub struct Drivers {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Drivers {
    /// Starts the runtime on a thread named `run-drivers`.
    pub fn start() -> std::io::Result<Self> {
        let runtime = Builder::new_current_thread().enable_all().build()?;
        let handle = runtime.handle().clone();
        let (stop, stopped) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new().name("run-drivers".into()).spawn(move || {
            // Until the sender is dropped.
            let _ = runtime.block_on(stopped);
        })?;
        Ok(Self { handle, stop: Some(stop), thread: Some(thread) })
    }

    /// Where drivers are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Drivers {
    fn drop(&mut self) {
        drop(self.stop.take());
        // Joined only outside a runtime: blocking a runtime's thread on
        // another's shutdown is not allowed (a test may drop the last handle there).
        if Handle::try_current().is_err()
            && let Some(thread) = self.thread.take()
        {
            let _ = thread.join();
        }
    }
}
