//! A connection's side of the fan-out: its socket, and the frames queued for
//! it.
//!
//! A publisher writes a batch of live frames straight to the socket when
//! nothing is queued before it and the connection's task is not writing:
//! the frames leave on the publisher's thread, with no task to wake (at
//! 100 subscribers, that was 100 wake-ups per frame, and the median's
//! largest share). Otherwise they queue, bounded, and the connection's task
//! writes them in order; a channel whose frames do not fit is evicted from
//! the fan-out with the cursor of the last frame handed over, and the task
//! catches it up from there at its client's pace. Whoever writes holds the
//! lock for one poll of the socket, never across an await, so a publisher
//! never waits on a slow client: a socket that cannot take a write at once
//! gets the frames queued instead.

use std::cell::OnceCell;
use std::collections::VecDeque;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};

use axum::extract::ws::{Message, Utf8Bytes};
use futures_util::{Sink, Stream};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::lock;
use crate::metrics::Metrics;
use crate::probe::Stage;

/// What a connection reads and writes: a WebSocket, or anything like one.
pub trait Socket:
    Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Send + Unpin
{
}

impl<T> Socket for T where
    T: Sink<Message, Error = axum::Error> + Stream<Item = Result<Message, axum::Error>> + Send + Unpin
{
}

/// One connection's outbox.
pub struct Outbox {
    /// The connection's id.
    pub id: u64,
    /// Most texts the queue holds.
    capacity: usize,
    line: Mutex<Line>,
    /// The task has work: texts were queued, a publisher's write left bytes
    /// to flush, or a channel was evicted.
    queued: Notify,
    evicted: Mutex<Vec<Evicted>>,
    metrics: Arc<Metrics>,
}

/// A channel whose frames stopped reaching the connection, and where its
/// task picks it up again.
pub struct Evicted {
    /// The channel.
    pub channel: String,
    /// The epoch and seq of the last frame the connection was handed, from
    /// which its task catches up; `None` when it was handed none.
    pub cursor: Option<(String, u64)>,
}

/// What the lock guards.
struct Line {
    socket: Box<dyn Socket>,
    queue: VecDeque<Arc<str>>,
    /// Set while the connection's task writes (or will: it has taken queued
    /// texts, is answering a client frame, or must finish a publisher's
    /// flush). Publishers queue behind it meanwhile, so nothing overtakes.
    busy: bool,
    last_sent: Instant,
}

/// How a write straight to the socket went.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Direct {
    /// Written and flushed.
    Flushed,
    /// Taken, with bytes left to flush, or the socket failed: the
    /// connection's task finishes it (or finds the failure).
    Handed,
    /// The socket cannot take it now: queue it.
    NotReady,
}

impl Outbox {
    /// An outbox over `socket` whose queue holds `capacity` texts. Its task
    /// owns the socket until it first calls [`Self::take_or_release`].
    pub fn new(id: u64, capacity: usize, metrics: Arc<Metrics>, socket: Box<dyn Socket>) -> Arc<Self> {
        let line = Line { socket, queue: VecDeque::new(), busy: true, last_sent: Instant::now() };
        Arc::new(Self {
            id,
            capacity,
            line: Mutex::new(line),
            queued: Notify::new(),
            evicted: Mutex::new(Vec::new()),
            metrics,
        })
    }

    /// Delivers `texts`, in order, as one message: written now when
    /// `write_now` and the socket is free and takes it, else queued (under
    /// load the task's batches write fewer messages). False when the queue
    /// has no room for them all (nothing is queued then). `message` is their
    /// WebSocket message, made at the first write and shared by every
    /// subscriber they are offered to, so a frame is encoded once.
    pub fn offer<'a>(
        &self,
        texts: impl ExactSizeIterator<Item = &'a Arc<str>> + Clone,
        message: &OnceCell<Utf8Bytes>,
        write_now: bool,
    ) -> bool {
        let mut line = lock(&self.line);
        if write_now && !line.busy && line.queue.is_empty() {
            let message = message.get_or_init(|| batch_text(texts.clone()).into()).clone();
            let written = try_write(&mut line.socket, message);
            if written != Direct::NotReady {
                if written == Direct::Handed {
                    line.busy = true;
                    self.queued.notify_one();
                }
                line.last_sent = Instant::now();
                self.count_written(texts);
                return true;
            }
        }
        if line.queue.len() + texts.len() > self.capacity {
            return false;
        }
        line.queue.extend(texts.cloned());
        self.queued.notify_one();
        true
    }

    /// Counts `texts` as written to the socket, by a publisher or the task.
    pub fn count_written<'a>(&self, texts: impl ExactSizeIterator<Item = &'a Arc<str>>) {
        self.metrics.frames_sent.inc_by(texts.len() as u64);
        self.metrics.probes.observe(Stage::Written, texts.map(|text| &**text));
    }

    /// Marks the socket as the task's: publishers queue until it is released.
    pub fn claim(&self) {
        lock(&self.line).busy = true;
    }

    /// Moves up to `most` queued texts into `batch` (still the task's to
    /// write), or, when none are queued, releases the socket to publishers.
    /// False when it released it.
    pub fn take_or_release(&self, batch: &mut Vec<Arc<str>>, most: usize) -> bool {
        let mut line = lock(&self.line);
        if line.queue.is_empty() {
            line.busy = false;
            return false;
        }
        let taken = line.queue.len().min(most);
        if batch.capacity() == 0 {
            // Made for the first batch only: an idle connection holds none.
            batch.reserve_exact(most);
        }
        batch.extend(line.queue.drain(..taken));
        true
    }

    /// Waits until the task has work: texts were queued, a publisher's write
    /// needs flushing, or a channel was evicted.
    pub async fn queued(&self) {
        self.queued.notified().await;
    }

    /// When anything was last written to the socket.
    pub fn last_sent(&self) -> Instant {
        lock(&self.line).last_sent
    }

    /// The socket, to read and write through: each poll takes the lock.
    pub fn socket(self: &Arc<Self>) -> SharedSocket {
        SharedSocket(Arc::clone(self))
    }

    /// Tells the task that `channel`'s frames no longer reach this
    /// connection after `cursor`, so it catches up from there.
    pub fn evict(&self, channel: &str, cursor: Option<(&str, u64)>) {
        let cursor = cursor.map(|(epoch, seq)| (epoch.to_owned(), seq));
        lock(&self.evicted).push(Evicted { channel: channel.to_owned(), cursor });
        self.queued.notify_one();
    }

    /// The channels evicted since the last call.
    pub fn take_evicted(&self) -> Vec<Evicted> {
        std::mem::take(&mut *lock(&self.evicted))
    }

    /// Forgets `channel`'s evictions not yet taken: the client subscribed
    /// anew or unsubscribed, so their cursors are stale.
    pub fn forget_evicted(&self, channel: &str) {
        lock(&self.evicted).retain(|evicted| evicted.channel != channel);
    }
}

/// One poll of each step of a send, with a waker that does nothing: a
/// publisher never waits, and whatever is left over is the task's.
fn try_write(socket: &mut Box<dyn Socket>, message: Utf8Bytes) -> Direct {
    let mut context = Context::from_waker(Waker::noop());
    let mut socket = Pin::new(socket);
    match socket.as_mut().poll_ready(&mut context) {
        Poll::Ready(Ok(())) => {}
        Poll::Pending => return Direct::NotReady,
        Poll::Ready(Err(_)) => return Direct::Handed,
    }
    if socket.as_mut().start_send(Message::Text(message)).is_err() {
        return Direct::Handed;
    }
    match socket.poll_flush(&mut context) {
        Poll::Ready(Ok(())) => Direct::Flushed,
        Poll::Pending | Poll::Ready(Err(_)) => Direct::Handed,
    }
}

/// One text for a batch: the frame itself, or a JSON array of frames.
pub fn batch_text<'a>(texts: impl ExactSizeIterator<Item = &'a Arc<str>> + Clone) -> String {
    if texts.len() == 1 {
        return texts.map(|only| only.to_string()).collect();
    }
    let mut out = String::with_capacity(texts.clone().map(|text| text.len() + 1).sum::<usize>() + 2);
    out.push('[');
    for (i, text) in texts.enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(text);
    }
    out.push(']');
    out
}

/// The connection's socket, shared with the publishers of its channels.
pub struct SharedSocket(Arc<Outbox>);

impl SharedSocket {
    fn poll_socket<T>(&self, poll: impl FnOnce(Pin<&mut Box<dyn Socket>>) -> T) -> T {
        poll(Pin::new(&mut lock(&self.0.line).socket))
    }
}

impl Sink<Message> for SharedSocket {
    type Error = axum::Error;

    fn poll_ready(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_socket(|socket| socket.poll_ready(context))
    }

    fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
        let mut line = lock(&self.0.line);
        line.last_sent = Instant::now();
        Pin::new(&mut line.socket).start_send(message)
    }

    fn poll_flush(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_socket(|socket| socket.poll_flush(context))
    }

    fn poll_close(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.poll_socket(|socket| socket.poll_close(context))
    }
}

impl Stream for SharedSocket {
    type Item = Result<Message, axum::Error>;

    fn poll_next(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.poll_socket(|socket| socket.poll_next(context))
    }
}

#[cfg(test)]
pub mod testing {
    //! A socket in memory: what was written to it, and whether it takes more.

    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    /// The test's end of a [`TestSocket`].
    #[derive(Clone, Default)]
    pub struct Peer {
        written: Arc<Mutex<Vec<String>>>,
        blocked: Arc<AtomicBool>,
        waker: Arc<Mutex<Option<Waker>>>,
    }

    impl Peer {
        /// The texts written so far, taken.
        pub fn take(&self) -> Vec<String> {
            std::mem::take(&mut *lock(&self.written))
        }

        /// Whether the socket refuses writes (as a full send buffer does).
        pub fn block(&self, blocked: bool) {
            self.blocked.store(blocked, Ordering::SeqCst);
            if let Some(waker) = lock(&self.waker).take() {
                waker.wake();
            }
        }
    }

    /// A socket that never receives, and writes into its [`Peer`].
    pub struct TestSocket(Peer);

    /// A socket and its peer.
    pub fn socket() -> (Box<dyn Socket>, Peer) {
        let peer = Peer::default();
        (Box::new(TestSocket(peer.clone())), peer)
    }

    impl Sink<Message> for TestSocket {
        type Error = axum::Error;

        fn poll_ready(self: Pin<&mut Self>, context: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            if self.0.blocked.load(Ordering::SeqCst) {
                *lock(&self.0.waker) = Some(context.waker().clone());
                return Poll::Pending;
            }
            Poll::Ready(Ok(()))
        }

        fn start_send(self: Pin<&mut Self>, message: Message) -> Result<(), Self::Error> {
            if let Message::Text(text) = message {
                lock(&self.0.written).push(text.to_string());
            }
            Ok(())
        }

        fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }

        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
    }

    impl Stream for TestSocket {
        type Item = Result<Message, axum::Error>;

        fn poll_next(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Option<Self::Item>> {
            Poll::Pending
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::socket;
    use super::*;

    fn texts(names: &[&str]) -> Vec<Arc<str>> {
        names.iter().map(|name| Arc::from(format!("\"{name}\""))).collect()
    }

    #[test]
    fn frames_go_straight_to_a_free_socket_and_queue_behind_the_task_in_order() {
        let (socket, peer) = socket();
        let outbox = Outbox::new(1, 4, Arc::new(Metrics::new(false)), socket);
        let mut batch = Vec::new();
        assert!(!outbox.take_or_release(&mut batch, 8), "nothing queued: released");
        assert!(outbox.offer(texts(&["a", "b"]).iter(), &OnceCell::new(), true));
        assert_eq!(peer.take(), ["[\"a\",\"b\"]"], "written at once, as one message");
        outbox.claim();
        assert!(outbox.offer(texts(&["c"]).iter(), &OnceCell::new(), true));
        assert!(peer.take().is_empty(), "the task writes: queued behind it");
        outbox.take_or_release(&mut batch, 8);
        assert!(outbox.offer(texts(&["d"]).iter(), &OnceCell::new(), true));
        assert!(peer.take().is_empty(), "taken but not yet written by the task: still queued behind it");
        assert!(outbox.take_or_release(&mut batch, 8));
        assert_eq!(batch, texts(&["c", "d"]));
        assert!(!outbox.take_or_release(&mut batch, 8));
        assert!(outbox.offer(texts(&["e"]).iter(), &OnceCell::new(), true));
        assert_eq!(peer.take(), ["\"e\""]);
        assert!(outbox.offer(texts(&["f"]).iter(), &OnceCell::new(), false));
        assert!(peer.take().is_empty(), "under load: queued for the task to batch");
        assert!(outbox.take_or_release(&mut batch, 8));
    }

    #[test]
    fn a_socket_that_takes_nothing_gets_its_frames_queued_until_the_queue_is_full() {
        let (socket, peer) = socket();
        let outbox = Outbox::new(1, 3, Arc::new(Metrics::new(false)), socket);
        outbox.take_or_release(&mut Vec::new(), 8);
        peer.block(true);
        assert!(outbox.offer(texts(&["a", "b"]).iter(), &OnceCell::new(), true));
        assert!(
            !outbox.offer(texts(&["c", "d"]).iter(), &OnceCell::new(), true),
            "no room for both: neither is queued"
        );
        assert!(outbox.offer(texts(&["c"]).iter(), &OnceCell::new(), true));
        peer.block(false);
        assert!(!outbox.offer(texts(&["d"]).iter(), &OnceCell::new(), true), "full, and queued ones go first");
        let mut batch = Vec::new();
        assert!(outbox.take_or_release(&mut batch, 2));
        assert_eq!(batch, texts(&["a", "b"]), "at most the batch size");
        assert!(peer.take().is_empty());
    }

    #[test]
    fn a_batch_of_one_is_the_frame_and_more_are_an_array() {
        let frames = texts(&["a", "b"]);
        assert_eq!(batch_text(frames[..1].iter()), "\"a\"");
        assert_eq!(batch_text(frames.iter()), "[\"a\",\"b\"]");
    }
}
