//! The runtime the run drivers run on: threads of their own, beside the
//! shared workers that serve the connections.
//!
//! A driver's path is the latency every subscriber sees: it sequences a
//! batch, commits it, and publishes it, writing it to every free subscriber
//! socket itself. A commit that had to wait for the SQLite writer thread is
//! answered from there, and a task woken from outside its runtime joins the
//! back of the workers' queue. Under fan-out load that queue
//! holds hundreds of connection tasks, so a driver on the shared workers
//! waited milliseconds after each commit before it could publish (the probe's
//! `committed` stage). On their own threads, drivers queue only behind each
//! other; there are as many as cores, so runs at full speed still sequence
//! in parallel.

use tokio::runtime::{Builder, Handle, Runtime};

/// The drivers' runtime; it stops when this is dropped.
pub struct Drivers {
    handle: Handle,
    /// Taken only when dropped.
    runtime: Option<Runtime>,
}

impl Drivers {
    /// Starts the runtime, one `run-driver` thread per core.
    pub fn start() -> std::io::Result<Self> {
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let runtime =
            Builder::new_multi_thread().worker_threads(threads).thread_name("run-driver").enable_all().build()?;
        Ok(Self { handle: runtime.handle().clone(), runtime: Some(runtime) })
    }

    /// Where drivers are spawned.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for Drivers {
    fn drop(&mut self) {
        // Without waiting: this may run inside another runtime.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}
