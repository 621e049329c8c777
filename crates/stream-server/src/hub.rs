//! The live sessions: for each, its sequencer (behind the producer lock) and
//! its fan-out (hot ring and subscribers); the running index; and what
//! connections attach to.
//!
//! Ordering rules, which make resume exact:
//! - A batch is sequenced, committed to the log, then published, all under
//!   the session's producer lock, so frames reach the ring and subscribers in
//!   seq order and only once durable (persist-first).
//! - A subscriber is attached under the fan-out lock together with the ring
//!   read (replay) or under the producer lock with the snapshot, so between
//!   what it catches up on and what it receives live there is no gap and no
//!   overlap.
//! - A session leaves memory only when the map holds the only reference to
//!   it, checked under the map lock, which every lookup takes: nobody can be
//!   attaching to, catching up on, or producing into a session that is
//!   evicted, so no subscriber is left on a session nobody publishes to, and
//!   no channel ever has two sequencers. Compaction works only on sessions
//!   out of memory, under the same lock.
//! - A deleted session refuses its producer and new subscribers: whoever
//!   looked it up before the delete looks again.
//! - With a shared log (several nodes on Redis), publishing goes by seq:
//!   frames already published are skipped and a gap before a batch is read
//!   from the log first, so this node's subscribers see each seq once, in
//!   order, whichever node committed it. A sequencer behind the log catches
//!   up on it before it sequences, and a batch refused because another node
//!   moved the head first is sequenced again. A copy of a session that
//!   another node created or compacted in another epoch is let go.

use std::cell::OnceCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use stream_core::frame::{ControlFrame, FrameBody, ProtocolError, RunInfo, SubscribeMode, Subscribed, Unsubscribed};
use stream_core::server::ChannelSequencer;
use stream_core::server::{ReplayRing, RingLimits, RunningIndex, is_evictable};
use stream_core::{SequencedFrame, ServerFrame, Snapshot};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::durable::read::Tail;
use crate::error::AppError;
use crate::lock;
use crate::metrics::Metrics;
use crate::outbox::Outbox;
use crate::probe::Stage;
use crate::store::{ClusterEvent, SessionRow, Store, StoreError, WriteOp};

/// Frames read from the log per page during a replay.
pub const LOG_PAGE_FRAMES: usize = 1_000;

/// Most times a write is made again because another node wrote to the
/// session first ([`is_head_conflict`]).
pub const CONFLICT_RETRIES: usize = 8;

/// Whether an append failed only because another node wrote first (moved
/// the head, or created the session): the same request may be made again,
/// after its checks.
pub fn is_head_conflict(error: &AppError) -> bool {
    matches!(
        error,
        AppError::Storage(StoreError::NotAtHead(_) | StoreError::SessionExists(_) | StoreError::EpochMoved(_))
    )
}

/// Most frames a publish writes to its subscribers' sockets itself.
const MOST_FRAMES_WRITTEN_AT_ONCE: usize = 8;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |elapsed| elapsed.as_millis() as u64)
}

/// A new unique id with a prefix, time-ordered.
pub fn new_id(prefix: &str) -> String {
    format!("{prefix}_{}", uuid::Uuid::now_v7().simple())
}

/// The run a session has going, with the token that aborts it.
pub struct ActiveRun {
    /// The run.
    pub run_id: String,
    /// Cancelled by an abort.
    pub abort: CancellationToken,
}

/// What the producer lock guards: the sequencer and the run.
pub struct Producer {
    /// The sequencer at the committed head (between batches).
    pub sequencer: ChannelSequencer,
    /// The active run, driven by a task of this process.
    pub run: Option<ActiveRun>,
    /// The provider the session was created with; its sends use it when they name none.
    pub provider: Option<String>,
    /// Whether the session row exists in the log yet.
    persisted: bool,
    /// Set when a failed commit could not be followed by a reload from the
    /// log: the sequencer may be ahead of the log, so nothing is appended
    /// until a reload succeeds.
    stale: bool,
    /// The first frame of a write whose answer was lost (Redis went away
    /// meanwhile): it may have landed, which the log tells later.
    unconfirmed: Option<(u64, Arc<str>)>,
    /// Set when the session was deleted; appends do nothing.
    deleted: bool,
}

struct Fanout {
    ring: ReplayRing<Arc<str>>,
    head: u64,
    subscribers: Vec<Arc<Outbox>>,
    last_finished_at: Option<u64>,
    deleted: bool,
}

/// One live session.
pub struct Session {
    id: String,
    metrics: Arc<Metrics>,
    epoch: String,
    producer: Arc<tokio::sync::Mutex<Producer>>,
    fanout: Mutex<Fanout>,
    head: AtomicU64,
    /// The head as the readers of its Durable Stream (`/v1/sessions/{id}/stream`) wait on it.
    tail: watch::Sender<Tail>,
    /// The seq of the base snapshot it was loaded from (0: never compacted).
    base_seq: u64,
    /// Set when another node created the session first: the map loads it
    /// again from the log.
    superseded: std::sync::atomic::AtomicBool,
    /// Set while a run's driver of this node writes to it.
    driven: std::sync::atomic::AtomicBool,
}

/// Marks a session as driven by this node while it lives.
pub struct Driving<'a>(&'a Session);

impl Drop for Driving<'_> {
    fn drop(&mut self) {
        self.0.driven.store(false, Ordering::Release);
    }
}

/// How a subscriber catches up on the frames after its cursor.
pub enum Attach {
    /// Attached; these ring frames come first, then live ones.
    Attached(Vec<Arc<str>>),
    /// Not attached: the frames up to `head` are only in the log.
    FromLog {
        /// Read the log up to here, then try again.
        head: u64,
    },
    /// The session was deleted meanwhile.
    Deleted,
}

/// A session with its producer lock held, as [`Hub::lock`] hands it out.
pub struct Locked {
    /// The live session.
    pub session: Arc<Session>,
    /// Its producer, locked.
    pub producer: tokio::sync::OwnedMutexGuard<Producer>,
}

impl Locked {
    /// [`Session::append`] on this session.
    pub async fn append(&mut self, hub: &Hub, bodies: Vec<FrameBody>, extra: Vec<WriteOp>) -> Result<(), AppError> {
        self.session.append(hub, &mut self.producer, bodies, extra).await
    }

    /// [`Session::try_append`] on this session.
    pub async fn try_append(&mut self, hub: &Hub, bodies: Vec<FrameBody>, extra: Vec<WriteOp>) -> Result<(), AppError> {
        self.session.try_append(hub, &mut self.producer, bodies, extra).await
    }
}

/// Whether [`Hub::lock`] makes a session that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IfMissing {
    /// Answer `None`.
    Absent,
    /// Create it (in memory; in the log with its first frames).
    Create,
}

/// A subscriber's catch-up after its cursor, one page per step: from the log
/// while the memory ring no longer holds those frames, then the ring's frames
/// once the outbox is attached; live frames follow in the outbox. The socket
/// loop only writes what it is handed.
pub struct CatchUp {
    session: Arc<Session>,
    outbox: Arc<Outbox>,
    cursor: u64,
    /// The ring's frames still to hand out, once attached.
    attached: Option<std::vec::IntoIter<Arc<str>>>,
    from_log: bool,
}

/// One step of a [`CatchUp`].
pub enum CatchUpStep {
    /// Frames to send, in order; at most [`LOG_PAGE_FRAMES`].
    Page(Vec<Arc<str>>),
    /// Caught up and attached; `from_log` when part of it came from the log.
    Live {
        /// Whether the log was read.
        from_log: bool,
    },
    /// The session was deleted meanwhile.
    Deleted,
}

impl CatchUp {
    /// A catch-up of `outbox` after `after_seq`.
    pub fn new(session: Arc<Session>, outbox: Arc<Outbox>, after_seq: u64) -> Self {
        Self { session, outbox, cursor: after_seq, attached: None, from_log: false }
    }

    /// The next step. The catch-up holds its session, so it stays in memory
    /// (and out of compaction) until the catch-up ends.
    pub async fn next(&mut self, hub: &Hub) -> Result<CatchUpStep, StoreError> {
        loop {
            if let Some(rest) = &mut self.attached {
                // Catch-up goes in large batches: fewer messages, less per-message cost.
                let page: Vec<Arc<str>> = rest.by_ref().take(LOG_PAGE_FRAMES).collect();
                return Ok(if page.is_empty() {
                    CatchUpStep::Live { from_log: self.from_log }
                } else {
                    CatchUpStep::Page(page)
                });
            }
            match self.session.attach_after(&self.outbox, self.cursor) {
                Attach::Attached(frames) => self.attached = Some(frames.into_iter()),
                Attach::Deleted => return Ok(CatchUpStep::Deleted),
                // The ring is tried again once the log has been read up to `head`.
                Attach::FromLog { head } => {
                    self.from_log = true;
                    let page = hub.store.frames_after(self.session.id(), self.cursor, LOG_PAGE_FRAMES).await?;
                    let Some(&(last, _)) = page.last() else {
                        return Err(StoreError::MissingFrames {
                            session: self.session.id().to_owned(),
                            after: self.cursor,
                            head,
                        });
                    };
                    self.cursor = last;
                    return Ok(CatchUpStep::Page(page.into_iter().map(|(_, text)| text).collect()));
                }
            }
        }
    }
}

impl Session {
    /// The session's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Its epoch.
    pub fn epoch(&self) -> &str {
        &self.epoch
    }

    /// The last seq published.
    pub fn head(&self) -> u64 {
        self.head.load(Ordering::Acquire)
    }

    /// The first seq its log (and so a replay) still holds.
    pub fn retained_from(&self) -> u64 {
        self.base_seq + 1
    }

    /// Its head, and every later change of it (and its deletion).
    pub fn watch_tail(&self) -> watch::Receiver<Tail> {
        self.tail.subscribe()
    }

    /// Marks the session as driven here until the guard drops: the follower
    /// leaves it alone meanwhile, since this node writes nearly all of its
    /// frames (what another node writes is read before the next batch).
    pub fn driving(&self) -> Driving<'_> {
        self.driven.store(true, Ordering::Release);
        Driving(self)
    }

    /// Takes the producer lock. Only a run's driver calls this on a session it
    /// holds: its run keeps the session alive. Everyone else goes through
    /// [`Hub::lock`], which never hands out a deleted session.
    pub async fn producer(&self) -> tokio::sync::MutexGuard<'_, Producer> {
        self.producer.lock().await
    }

    /// The producer lock, unless the session was deleted before it was taken.
    pub async fn lock_live(&self) -> Option<tokio::sync::OwnedMutexGuard<Producer>> {
        let producer = Arc::clone(&self.producer).lock_owned().await;
        (!producer.deleted).then_some(producer)
    }

    /// Sequences `bodies`, commits them with `extra` writes, then publishes
    /// them. Frames the sequencer refuses are counted and skipped. On a failed
    /// commit the sequencer is brought back to the log (now, or before the
    /// next append), so a seq is never given to two different frames. When
    /// another node moved the head first (a shared log), the sequencer
    /// catches up on its frames and `bodies` are sequenced again, so a run's
    /// frames fenced off by then (its run ended elsewhere) are refused.
    pub async fn append(
        &self,
        hub: &Hub,
        producer: &mut Producer,
        bodies: Vec<FrameBody>,
        extra: Vec<WriteOp>,
    ) -> Result<(), AppError> {
        if !hub.store.is_shared() {
            return self.try_append(hub, producer, bodies, extra).await;
        }
        let mut conflicts = 0;
        loop {
            match self.try_append(hub, producer, bodies.clone(), extra.clone()).await {
                // (A session superseded meanwhile is the caller's to look up again.)
                Err(AppError::Storage(StoreError::NotAtHead(_))) if conflicts < CONFLICT_RETRIES => conflicts += 1,
                result => return result,
            }
        }
    }

    /// [`Self::append`], once: a conflict with another node's writes comes
    /// back as the error (see [`is_head_conflict`]), with the sequencer caught
    /// up, for callers whose checks must be made again first.
    pub async fn try_append(
        &self,
        hub: &Hub,
        producer: &mut Producer,
        bodies: Vec<FrameBody>,
        mut extra: Vec<WriteOp>,
    ) -> Result<(), AppError> {
        if producer.deleted {
            return Ok(());
        }
        // What landed of a write whose answer was lost is published first.
        self.landed(hub, producer).await?;
        self.refresh(&hub.store, producer).await?;
        let running_before = producer.sequencer.running().cloned();
        // The session's cost is summed again only when this batch can change it.
        let cost_changes = bodies.iter().any(changes_cost);
        let mut frames = Vec::with_capacity(bodies.len());
        let mut started_run = None;
        for body in bodies {
            let run_id = match &body {
                FrameBody::RunStarted(started) => Some(started.run_id.clone()),
                _ => None,
            };
            match producer.sequencer.append(body) {
                Ok(appended) => {
                    if let Some(run_id) = run_id {
                        started_run = Some((run_id, appended.seq));
                    }
                    frames.push((appended.seq, Arc::<str>::from(appended.text)));
                }
                Err(dropped) => {
                    tracing::debug!(session = %self.id, %dropped, "frame dropped");
                    hub.metrics.drop_frame(dropped.label());
                }
            }
        }
        if frames.is_empty() && extra.is_empty() {
            return Ok(());
        }
        let texts = || frames.iter().map(|(_, text)| &**text);
        hub.metrics.probes.observe(Stage::Sequenced, texts());
        let now = now_ms();
        let mut ops = Vec::with_capacity(extra.len() + 2);
        if !producer.persisted {
            ops.push(WriteOp::CreateSession {
                id: self.id.clone(),
                epoch: self.epoch.clone(),
                provider: producer.provider.clone(),
                now,
            });
        }
        if !frames.is_empty() {
            ops.push(WriteOp::Append {
                session_id: self.id.clone(),
                epoch: self.epoch.clone(),
                frames: frames.clone(),
                name: producer.sequencer.state().name().map(str::to_owned),
                open_run: producer.sequencer.running().map(|run| run.run_id.clone()),
                cost_usd: cost_changes.then(|| producer.sequencer.state().cost_usd()),
                started_run,
                now,
            });
        }
        ops.append(&mut extra);
        let running_after = producer.sequencer.running().cloned();
        if running_after != running_before {
            let head = frames.last().map_or(producer.sequencer.head(), |&(seq, _)| seq);
            let event = ClusterEvent::Running { session_id: self.id.clone(), run: running_after.clone(), head };
            ops.extend(hub.announce(event));
        }
        if let Err(error) = hub.store.write(ops).await {
            if matches!(error, StoreError::SessionExists(_) | StoreError::EpochMoved(_)) {
                // Another node created it first, or compacted it, in another
                // epoch: this copy is let go, and whoever holds it looks the
                // session up again.
                producer.deleted = true;
                self.superseded.store(true, Ordering::Release);
                self.evict_subscribers(&hub.metrics);
            } else if matches!(error, StoreError::Redis(_)) {
                // Unsure whether it landed: the log tells once Redis is back.
                producer.unconfirmed = frames.first().cloned();
                producer.stale = true;
            } else {
                // The sequencer holds the refused frames: it is restored from
                // the log (with what another node wrote, when that was why).
                match load_sequencer(&hub.store, &self.id, &self.epoch).await {
                    Ok(sequencer) => producer.sequencer = sequencer,
                    Err(_) => producer.stale = true,
                }
            }
            return Err(error.into());
        }
        producer.persisted = true;
        hub.metrics.frames_committed.inc_by(frames.len() as u64);
        hub.metrics.probes.observe(Stage::Committed, texts());
        let run_ended = running_before.is_some() && running_after.is_none();
        if let Err(error) = self.publish_in_order(hub, &frames, run_ended.then_some(now)).await {
            // Committed: the follower publishes what could not be read now.
            tracing::warn!(session = %self.id, %error, "could not read the frames before a batch");
        }
        hub.metrics.probes.observe(Stage::Published, texts());
        if running_after != running_before {
            hub.running_changed(&self.id, running_after, self.head());
        }
        Ok(())
    }

    /// Whether the write whose answer was lost landed after all (the log holds
    /// its first frame): then its frames are published. Either way it is no
    /// longer in doubt, and the sequencer is restored from the log next.
    pub async fn landed(&self, hub: &Hub, producer: &mut Producer) -> Result<bool, StoreError> {
        let Some((seq, text)) = producer.unconfirmed.clone() else { return Ok(false) };
        let stored = hub.store.frames_after(&self.id, seq - 1, 1).await?;
        let landed = stored.first().is_some_and(|(at, stored)| *at == seq && **stored == *text);
        if landed {
            self.publish_log(hub).await?;
        }
        producer.unconfirmed = None;
        Ok(landed)
    }

    /// With a shared log: publishes what other nodes committed that this
    /// node has not read yet (the follower would, a moment later), so what
    /// this node serves next is the log's state.
    pub async fn publish_log(&self, hub: &Hub) -> Result<(), StoreError> {
        if !hub.store.is_shared() {
            return Ok(());
        }
        loop {
            let page = hub.store.frames_after(&self.id, self.head(), LOG_PAGE_FRAMES).await?;
            if page.is_empty() {
                return Ok(());
            }
            self.publish_in_order(hub, &page, None).await?;
        }
    }

    /// Restores the sequencer from the log when a failed commit left it
    /// unsure, or catches it up when it is behind what this node published
    /// (frames another node committed).
    async fn refresh(&self, store: &Store, producer: &mut Producer) -> Result<(), StoreError> {
        if producer.stale {
            producer.sequencer = load_sequencer(store, &self.id, &self.epoch).await?;
            producer.stale = false;
        } else if producer.sequencer.head() < self.head() {
            self.catch_up(store, producer).await?;
        }
        Ok(())
    }

    /// Brings the sequencer to the log's head: the frames committed after it
    /// (by another node) are applied to it, or, when they do not follow on
    /// (the log was compacted past it), it is restored from the log.
    async fn catch_up(&self, store: &Store, producer: &mut Producer) -> Result<(), StoreError> {
        loop {
            let page = store.frames_after(&self.id, producer.sequencer.head(), LOG_PAGE_FRAMES).await?;
            let Some(&(last, _)) = page.last() else {
                // The log lacks what this node published: deleted or compacted meanwhile.
                let head = self.head();
                return match producer.sequencer.head() < head {
                    true => Err(StoreError::MissingFrames {
                        session: self.id.clone(),
                        after: producer.sequencer.head(),
                        head,
                    }),
                    false => Ok(()),
                };
            };
            // Frames that do not follow on, or do not parse: restored from the log instead.
            if !producer.sequencer.catch_up(sequenced(&self.id, &page)) || producer.sequencer.head() < last {
                producer.sequencer = load_sequencer(store, &self.id, &self.epoch).await?;
                return Ok(());
            }
        }
    }

    /// Publishes the frames after the head, in seq order and each once:
    /// frames already published are skipped, and a gap before them (frames
    /// another node committed that this one has not read yet) is read from
    /// the log and published first.
    pub async fn publish_in_order(
        &self,
        hub: &Hub,
        frames: &[(u64, Arc<str>)],
        run_ended_at: Option<u64>,
    ) -> Result<(), StoreError> {
        while let Err(head) = self.publish(hub, frames, run_ended_at) {
            let Some(&(first, _)) = frames.iter().find(|(seq, _)| *seq > head) else { return Ok(()) };
            let missing = hub.store.frames_after(&self.id, head, (first - head - 1) as usize).await?;
            // The log no longer holds them (compacted meanwhile): nothing to wait for.
            if missing.first().is_none_or(|&(seq, _)| seq != head + 1) {
                return Err(StoreError::MissingFrames { session: self.id.clone(), after: head, head: first - 1 });
            }
            // Another node's frames may have been published meanwhile: the next round skips them.
            let _ = self.publish(hub, &missing, None);
        }
        Ok(())
    }

    /// Publishes the frames after the head, unless they do not follow on
    /// from it: then nothing, and the head comes back.
    fn publish(&self, hub: &Hub, frames: &[(u64, Arc<str>)], run_ended_at: Option<u64>) -> Result<(), u64> {
        let mut fanout = lock(&self.fanout);
        let head = fanout.head;
        let fresh = &frames[frames.partition_point(|(seq, _)| *seq <= head)..];
        let Some(&(first, _)) = fresh.first() else { return Ok(()) };
        if first != head + 1 {
            return Err(head);
        }
        let last = fresh[fresh.len() - 1].0;
        for (seq, text) in fresh {
            fanout.ring.push(*seq, Arc::clone(text), text.len());
        }
        fanout.head = last;
        if run_ended_at.is_some() {
            fanout.last_finished_at = run_ended_at;
        }
        self.head.store(last, Ordering::Release);
        self.tail.send_replace(Tail { position: last, closed: false, gone: false });
        let message = OnceCell::new();
        // Many frames at once mean a driver behind its provider: queued, they
        // are written by the connections' tasks, beside the driver and in
        // larger batches. A few frames (a paced delta) go straight out.
        let write_now = fresh.len() <= MOST_FRAMES_WRITTEN_AT_ONCE;
        fanout.subscribers.retain(|subscriber| {
            let kept = subscriber.offer(fresh.iter().map(|(_, text)| text), &message, write_now);
            if !kept {
                // It was handed every frame up to the old head: its task
                // catches up from there, at the pace its client reads.
                subscriber.evict(&self.id, Some((&self.epoch, head)));
                hub.metrics.slow_consumer_drops.inc();
                hub.metrics.subscriptions.dec();
            }
            kept
        });
        Ok(())
    }

    /// Attaches `outbox` after the frames up to `after_seq`, if the ring still
    /// holds every frame after it.
    pub fn attach_after(&self, outbox: &Arc<Outbox>, after_seq: u64) -> Attach {
        let mut fanout = lock(&self.fanout);
        if fanout.deleted {
            return Attach::Deleted;
        }
        if self.superseded.load(Ordering::Acquire) {
            // Nobody publishes to this copy any more: evicted as a slow
            // consumer is, the subscriber looks the session up again.
            outbox.evict(&self.id, Some((&self.epoch, after_seq)));
            return Attach::Attached(Vec::new());
        }
        let caught_up = fanout.head == after_seq;
        let frames: Option<Vec<Arc<str>>> = if caught_up {
            Some(Vec::new())
        } else {
            fanout.ring.after(after_seq).map(|frames| frames.cloned().collect())
        };
        match frames {
            Some(frames) => {
                fanout.subscribers.push(Arc::clone(outbox));
                self.subscribed_gauge().inc();
                Attach::Attached(frames)
            }
            None => Attach::FromLog { head: fanout.head },
        }
    }

    /// Attaches `outbox` with a snapshot at the head; returns its watermark
    /// and text, or `None` when the session was deleted: look it up again.
    pub async fn attach_with_snapshot(
        &self,
        hub: &Hub,
        outbox: &Arc<Outbox>,
    ) -> Result<Option<(u64, String)>, StoreError> {
        // The producer lock means no batch of this node is between commit and
        // publish; the snapshot is taken when the sequencer stands exactly at
        // what was published (the follower may publish meanwhile: then again).
        let mut producer = self.producer.lock().await;
        for _ in 0..=CONFLICT_RETRIES {
            self.publish_log(hub).await?;
            self.refresh(&hub.store, &mut producer).await?;
            let mut fanout = lock(&self.fanout);
            // Deleted, or superseded by another node's copy: looked up again.
            if fanout.deleted || self.superseded.load(Ordering::Acquire) {
                return Ok(None);
            }
            if fanout.head != producer.sequencer.head() {
                continue;
            }
            let snapshot = serde_json::to_string(&ControlFrame::Snapshot(producer.sequencer.snapshot()))
                .expect("snapshots always encode");
            fanout.subscribers.push(Arc::clone(outbox));
            self.subscribed_gauge().inc();
            return Ok(Some((producer.sequencer.head(), snapshot)));
        }
        // Other nodes kept writing faster than this one could read.
        Err(StoreError::MissingFrames { session: self.id.clone(), after: producer.sequencer.head(), head: self.head() })
    }

    /// Detaches a connection; returns whether it was attached.
    pub fn detach(&self, outbox_id: u64) -> bool {
        let mut fanout = lock(&self.fanout);
        let before = fanout.subscribers.len();
        fanout.subscribers.retain(|subscriber| subscriber.id != outbox_id);
        let removed = before != fanout.subscribers.len();
        if removed {
            self.subscribed_gauge().dec();
        }
        removed
    }

    /// Evicts every subscriber as a slow consumer is evicted: each looks the
    /// session up again and catches up from its cursor.
    fn evict_subscribers(&self, metrics: &Metrics) {
        let mut fanout = lock(&self.fanout);
        let head = fanout.head;
        for subscriber in fanout.subscribers.drain(..) {
            subscriber.evict(&self.id, Some((&self.epoch, head)));
            metrics.subscriptions.dec();
        }
    }

    fn subscribed_gauge(&self) -> &prometheus_client::metrics::gauge::Gauge {
        &self.metrics.subscriptions
    }
}

/// Settings of the hub.
#[derive(Debug, Clone, Copy)]
pub struct HubConfig {
    /// Bounds of each session's hot ring.
    pub ring: RingLimits,
    /// How long a finished run's ring stays in memory.
    pub retention_ms: u64,
    /// When the log compacts a session.
    pub log_retention: LogRetention,
}

/// When an idle session's log is compacted into a base snapshot (both off by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogRetention {
    /// Most frames a session keeps after its base.
    pub max_frames: Option<u64>,
    /// A session untouched this long (ms) is compacted whole.
    pub max_idle_ms: Option<u64>,
}

/// Most sessions compacted in one maintenance pass.
const COMPACTIONS_PER_PASS: usize = 64;

/// Every live session, the running index and its watchers.
pub struct Hub {
    store: Store,
    metrics: Arc<Metrics>,
    config: HubConfig,
    sessions: tokio::sync::Mutex<HashMap<String, Arc<Session>>>,
    /// Subscribers of sessions that do not exist yet.
    waiting: Mutex<HashMap<String, Vec<Arc<Outbox>>>>,
    running: Mutex<RunningState>,
    running_frames: watch::Sender<Arc<str>>,
    /// This node's id, when other nodes share the log and are told its changes.
    announcer: Option<String>,
}

#[derive(Default)]
struct RunningState {
    index: RunningIndex,
    heads: HashMap<String, u64>,
}

impl Hub {
    /// A hub over the log.
    pub fn new(store: Store, metrics: Arc<Metrics>, config: HubConfig, node: &str) -> Self {
        let running = RunningState::default();
        let (running_frames, _) = watch::channel(running_text(&running));
        Self {
            announcer: store.is_shared().then(|| node.to_owned()),
            store,
            metrics,
            config,
            sessions: tokio::sync::Mutex::new(HashMap::new()),
            waiting: Mutex::new(HashMap::new()),
            running: Mutex::new(running),
            running_frames,
        }
    }

    /// The log.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The metrics.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// The session, from memory or loaded from the log; `None` if it does not exist.
    pub async fn open(&self, id: &str) -> Result<Option<Arc<Session>>, StoreError> {
        let mut sessions = self.sessions.lock().await;
        self.open_locked(&mut sessions, id).await
    }

    async fn open_locked(
        &self,
        sessions: &mut HashMap<String, Arc<Session>>,
        id: &str,
    ) -> Result<Option<Arc<Session>>, StoreError> {
        match sessions.get(id) {
            Some(session) if session.superseded.load(Ordering::Acquire) => {
                sessions.remove(id);
            }
            Some(session) => return Ok(Some(Arc::clone(session))),
            None => {}
        }
        let Some(row) = self.store.session(id).await? else { return Ok(None) };
        // One read of the log: the sequencer from all of it, the ring from its tail.
        let mut ring = ReplayRing::new(self.config.ring);
        let sequencer = restore(&self.store, id, &row.epoch, |page| {
            for (seq, text) in page.iter().skip(page.len().saturating_sub(self.config.ring.max_frames)) {
                ring.push(*seq, Arc::clone(text), text.len());
            }
        })
        .await?;
        let epoch = row.epoch.clone();
        let session = self.insert(sessions, id, epoch, sequencer, ring, Some(row));
        Ok(Some(session))
    }

    /// The session with its producer lock held: the one in the map, never a
    /// deleted one (a session deleted between the lookup and the lock is
    /// looked up again). `None` when it does not exist and `if_missing` is
    /// [`IfMissing::Absent`].
    pub async fn lock(&self, id: &str, if_missing: IfMissing) -> Result<Option<Locked>, StoreError> {
        loop {
            let session = match if_missing {
                IfMissing::Absent => self.open(id).await?,
                IfMissing::Create => Some(self.open_or_create(id).await?),
            };
            let Some(session) = session else { return Ok(None) };
            if let Some(producer) = session.lock_live().await {
                let mut locked = Locked { session, producer };
                // What is read under the lock is the log's state, whichever node wrote it.
                locked.session.publish_log(self).await?;
                locked.session.refresh(&self.store, &mut locked.producer).await?;
                return Ok(Some(locked));
            }
        }
    }

    /// The session, created (in memory; in the log with its first frames) if new.
    async fn open_or_create(&self, id: &str) -> Result<Arc<Session>, StoreError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = self.open_locked(&mut sessions, id).await? {
            return Ok(session);
        }
        let epoch = new_id("ep");
        let sequencer = ChannelSequencer::new(id, epoch.clone());
        Ok(self.insert(&mut sessions, id, epoch, sequencer, ReplayRing::new(self.config.ring), None))
    }

    fn insert(
        &self,
        sessions: &mut HashMap<String, Arc<Session>>,
        id: &str,
        epoch: String,
        sequencer: ChannelSequencer,
        ring: ReplayRing<Arc<str>>,
        // Its row; `None` for a session not in the log yet.
        row: Option<SessionRow>,
    ) -> Arc<Session> {
        let persisted = row.is_some();
        let base_seq = row.as_ref().map_or(0, |row| row.base_seq);
        let head = sequencer.head();
        let running = sequencer.running().cloned();
        let mut subscribers = lock(&self.waiting).remove(id).unwrap_or_default();
        if persisted {
            // They waited for a session another node created: they get its
            // frames so far from the ring, or, when it no longer holds them
            // all (or their queue is full), catch up from their cursors.
            let from_start: Vec<Arc<str>> = ring.after(0).map(|frames| frames.cloned().collect()).unwrap_or_default();
            subscribers.retain(|subscriber| {
                let kept = !from_start.is_empty() && subscriber.offer(from_start.iter(), &OnceCell::new(), true);
                if !kept {
                    subscriber.evict(id, None);
                    self.metrics.subscriptions.dec();
                }
                kept
            });
        }
        let session = Arc::new(Session {
            id: id.to_owned(),
            metrics: Arc::clone(&self.metrics),
            epoch,
            producer: Arc::new(tokio::sync::Mutex::new(Producer {
                sequencer,
                run: None,
                provider: row.and_then(|row| row.provider),
                persisted,
                stale: false,
                unconfirmed: None,
                deleted: false,
            })),
            fanout: Mutex::new(Fanout { ring, head, subscribers, last_finished_at: None, deleted: false }),
            head: AtomicU64::new(head),
            tail: watch::Sender::new(Tail { position: head, closed: false, gone: false }),
            base_seq,
            superseded: std::sync::atomic::AtomicBool::new(false),
            driven: std::sync::atomic::AtomicBool::new(false),
        });
        sessions.insert(id.to_owned(), Arc::clone(&session));
        if running.is_some() {
            self.running_changed(id, running, head);
        }
        session
    }

    /// Attaches `outbox` to a session that does not exist yet: its first
    /// frames will arrive live. Returns the session instead if it exists.
    pub async fn attach_or_wait(&self, id: &str, outbox: &Arc<Outbox>) -> Result<Option<Arc<Session>>, StoreError> {
        let mut sessions = self.sessions.lock().await;
        if let Some(session) = self.open_locked(&mut sessions, id).await? {
            return Ok(Some(session));
        }
        lock(&self.waiting).entry(id.to_owned()).or_default().push(Arc::clone(outbox));
        self.metrics.subscriptions.inc();
        Ok(None)
    }

    /// Detaches a connection from a session or from the wait for one.
    pub async fn detach(&self, id: &str, outbox_id: u64) {
        let session = self.sessions.lock().await.get(id).cloned();
        if let Some(session) = session {
            session.detach(outbox_id);
        }
        let mut waiting = lock(&self.waiting);
        if let Some(list) = waiting.get_mut(id) {
            let before = list.len();
            list.retain(|outbox| outbox.id != outbox_id);
            if list.len() != before {
                self.metrics.subscriptions.dec();
            }
            if list.is_empty() {
                waiting.remove(id);
            }
        }
    }

    /// The write that tells the other nodes `event`; none when alone.
    pub fn announce(&self, event: ClusterEvent) -> Option<WriteOp> {
        self.announcer.as_ref().map(|node| WriteOp::Announce { node: node.clone(), event })
    }

    /// Whether `node` is this one.
    pub fn is_this_node(&self, node: &str) -> bool {
        self.announcer.as_deref() == Some(node)
    }

    /// Deletes a session: aborts its run, tells its subscribers, erases its log.
    pub async fn delete(&self, id: &str) -> Result<bool, AppError> {
        let mut sessions = self.sessions.lock().await;
        let Some(session) = self.open_locked(&mut sessions, id).await? else { return Ok(false) };
        let mut writes = vec![WriteOp::DeleteSession { id: id.to_owned() }];
        writes.extend(self.announce(ClusterEvent::Deleted { session_id: id.to_owned() }));
        self.store.write(writes).await?;
        sessions.remove(id);
        self.let_go(&session).await;
        Ok(true)
    }

    /// A session another node compacted into a new epoch: this node's copy
    /// is let go; its subscribers catch up from their cursors (a snapshot of
    /// the new epoch), and the next lookup loads it from the log.
    pub async fn supersede(&self, id: &str) {
        // Out of the map first: the producer lock may be held a while.
        let Some(session) = self.sessions.lock().await.remove(id) else { return };
        session.superseded.store(true, Ordering::Release);
        session.producer.lock().await.deleted = true;
        session.evict_subscribers(&self.metrics);
    }

    /// A session another node deleted: this node lets go of it too.
    pub async fn forget(&self, id: &str) {
        // Out of the map first: the producer lock may be held a while.
        let removed = self.sessions.lock().await.remove(id);
        if let Some(session) = removed {
            self.let_go(&session).await;
        }
    }

    /// Aborts a deleted session's run and tells its subscribers.
    async fn let_go(&self, session: &Arc<Session>) {
        let id = session.id();
        let mut producer = session.producer.lock().await;
        if let Some(run) = producer.run.take() {
            run.abort.cancel();
        }
        producer.deleted = true;
        let notice: Arc<str> = Arc::from(
            serde_json::to_string(&ControlFrame::Unsubscribed(Unsubscribed {
                channel: id.to_owned(),
                reason: "deleted".into(),
            }))
            .expect("control frames encode"),
        );
        session.tail.send_modify(|tail| tail.gone = true);
        let mut fanout = lock(&session.fanout);
        fanout.deleted = true;
        let message = OnceCell::new();
        for subscriber in fanout.subscribers.drain(..) {
            subscriber.offer(std::iter::once(&notice), &message, true);
            self.metrics.subscriptions.dec();
        }
        drop(fanout);
        self.running_changed(id, None, 0);
    }

    /// Records a change of a session's running run and tells the watchers.
    pub fn running_changed(&self, id: &str, run: Option<RunInfo>, head: u64) {
        let mut running = lock(&self.running);
        let changed = match run {
            Some(run) => {
                running.heads.insert(id.to_owned(), head);
                running.index.started(id, run);
                true
            }
            None => {
                running.heads.remove(id);
                running.index.finished(id)
            }
        };
        if changed {
            self.running_frames.send_replace(running_text(&running));
        }
    }

    /// Sets or clears the notice on a session's running run, and tells the watchers.
    pub fn running_notice(&self, id: &str, notice: Option<String>) {
        let mut running = lock(&self.running);
        if running.index.notice(id, notice) {
            self.running_frames.send_replace(running_text(&running));
        }
    }

    /// Whether the session has a run going.
    pub fn is_running(&self, id: &str) -> bool {
        lock(&self.running).index.is_running(id)
    }

    /// The current `running` frame text.
    pub fn running_frame(&self) -> Arc<str> {
        Arc::clone(&self.running_frames.borrow())
    }

    /// Follows changes of the `running` frame.
    pub fn watch_running(&self) -> watch::Receiver<Arc<str>> {
        self.running_frames.subscribe()
    }

    /// Drops idle sessions from memory (their log stays): no run, no
    /// subscriber, the last run ended at least the retention period ago, and
    /// nothing but the map holds the session (no catch-up, no handler).
    pub async fn evict_idle(&self, now: u64) -> usize {
        let mut sessions = self.sessions.lock().await;
        let before = sessions.len();
        let retention = self.config.retention_ms;
        sessions.retain(|_, session| {
            // Under the map lock no new holder can appear: a lookup takes it.
            if Arc::strong_count(session) > 1 {
                return true;
            }
            let Ok(producer) = session.producer.try_lock() else { return true };
            let mut fanout = lock(&session.fanout);
            if !is_evictable(producer.run.is_some(), fanout.last_finished_at, now, retention) {
                return true;
            }
            if !fanout.subscribers.is_empty() {
                // Watched sessions stay, but their hot ring goes: replays come from the log.
                fanout.ring.clear();
                return true;
            }
            false
        });
        before - sessions.len()
    }

    /// Compacts what [`LogRetention`] names, among the sessions not in memory
    /// and with no run open: each one's frames become a base snapshot at its
    /// head, and it moves to a new epoch, so a cursor from before gets the
    /// snapshot verdict (no gap, no stale frame). Returns how many.
    pub async fn compact_idle(&self, now: u64) -> Result<usize, StoreError> {
        let LogRetention { max_frames, max_idle_ms } = self.config.log_retention;
        if max_frames.is_none() && max_idle_ms.is_none() {
            return Ok(0);
        }
        let idle_before = max_idle_ms.map(|idle| now.saturating_sub(idle));
        // More than one pass compacts: sessions in memory are among them and skipped.
        let candidates = self.store.compaction_candidates(max_frames, idle_before, COMPACTIONS_PER_PASS * 4).await?;
        let mut compacted = 0;
        for id in candidates {
            if compacted == COMPACTIONS_PER_PASS {
                break;
            }
            match self.compact(&id).await {
                Ok(true) => compacted += 1,
                Ok(false) => {}
                // One session's trouble (a base that does not parse) spares the others.
                Err(error) => tracing::warn!(%error, session = %id, "compaction failed; its log is unchanged"),
            }
        }
        self.metrics.compactions.inc_by(compacted as u64);
        Ok(compacted)
    }

    /// Compacts one session, unless it is in memory or has a run open.
    async fn compact(&self, id: &str) -> Result<bool, StoreError> {
        // Held for this one session: it cannot be opened while its log changes under it.
        let sessions = self.sessions.lock().await;
        if sessions.contains_key(id) {
            return Ok(false);
        }
        let Some(row) = self.store.session(id).await? else { return Ok(false) };
        let sequencer = load_sequencer(&self.store, id, &row.epoch).await?;
        if sequencer.running().is_some() || sequencer.head() == row.base_seq {
            return Ok(false);
        }
        let epoch = new_id("ep");
        let mut snapshot = sequencer.snapshot();
        snapshot.epoch = Some(epoch.clone());
        let snapshot = serde_json::to_string(&snapshot).expect("snapshots always encode");
        let mut writes = vec![WriteOp::Compact { session_id: id.to_owned(), epoch, seq: sequencer.head(), snapshot }];
        writes.extend(self.announce(ClusterEvent::Compacted { session_id: id.to_owned() }));
        self.store.write(writes).await?;
        Ok(true)
    }

    /// The session, if it is in memory (never loaded from the log).
    pub async fn live_session(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().await.get(id).cloned()
    }

    /// The id and head of every session in memory that no run of this node
    /// drives (holding none of them).
    pub async fn followed_heads(&self) -> Vec<(String, u64)> {
        let sessions = self.sessions.lock().await;
        let followed = sessions.values().filter(|session| !session.driven.load(Ordering::Acquire));
        followed.map(|session| (session.id.clone(), session.head())).collect()
    }

    /// Sessions that clients wait for: subscribed to before they existed.
    pub fn awaited_sessions(&self) -> Vec<String> {
        lock(&self.waiting).keys().cloned().collect()
    }
}

fn running_text(running: &RunningState) -> Arc<str> {
    let list = running.index.list(|id| running.heads.get(id).copied().unwrap_or(0));
    Arc::from(serde_json::to_string(&ControlFrame::Running(list)).expect("control frames encode"))
}

/// Whether a frame can change a session's cost: usage that names one, or messages leaving.
fn changes_cost(body: &FrameBody) -> bool {
    match body {
        FrameBody::Status(status) => status.usage.cost_usd.is_some(),
        FrameBody::MessageComplete(complete) => complete.usage.cost_usd.is_some(),
        FrameBody::MessagesDeleted(_) => true,
        _ => false,
    }
}

/// Rebuilds a sequencer from the log: its base snapshot, if it was
/// compacted, then the frames after it.
pub async fn load_sequencer(store: &Store, id: &str, epoch: &str) -> Result<ChannelSequencer, StoreError> {
    restore(store, id, epoch, |_| {}).await
}

/// [`load_sequencer`], handing each page of the log read to `page` too.
async fn restore(
    store: &Store,
    id: &str,
    epoch: &str,
    mut each_page: impl FnMut(&[(u64, Arc<str>)]),
) -> Result<ChannelSequencer, StoreError> {
    let base: Option<Snapshot> = match store.base(id).await? {
        Some((seq, text)) => Some(serde_json::from_str(&text).map_err(|error| StoreError::CorruptBase {
            session: id.to_owned(),
            seq,
            error: error.to_string(),
        })?),
        None => None,
    };
    let mut frames: Vec<SequencedFrame> = Vec::new();
    let mut after = base.as_ref().map_or(0, |base| base.seq);
    loop {
        let page = store.frames_after(id, after, LOG_PAGE_FRAMES * 10).await?;
        let Some(&(last, _)) = page.last() else { break };
        frames.extend(sequenced(id, &page));
        each_page(&page);
        after = last;
    }
    Ok(ChannelSequencer::restore_from(id, epoch, base, frames))
}

/// The sequenced frames of a page of the session's log.
fn sequenced<'a>(id: &'a str, page: &'a [(u64, Arc<str>)]) -> impl Iterator<Item = SequencedFrame> + 'a {
    page.iter().flat_map(move |(_, text)| {
        stream_core::frame::parse_server_message(text, Some(id), usize::MAX).frames.into_iter().filter_map(|frame| {
            match frame.frame {
                ServerFrame::Sequenced(frame) => Some(frame),
                _ => None,
            }
        })
    })
}

/// The `subscribed` frame text.
pub fn subscribed_text(channel: &str, epoch: Option<&str>, head_seq: u64, mode: SubscribeMode) -> String {
    serde_json::to_string(&ControlFrame::Subscribed(Subscribed {
        channel: channel.to_owned(),
        epoch: epoch.map(str::to_owned),
        head_seq,
        mode,
    }))
    .expect("control frames encode")
}

/// The empty snapshot of a session that does not exist yet.
pub fn empty_snapshot_text(channel: &str) -> String {
    let snapshot = stream_core::SessionState::new().snapshot(channel, None, 0);
    serde_json::to_string(&ControlFrame::Snapshot(snapshot)).expect("snapshots always encode")
}

/// A `protocol_error` frame text.
pub fn protocol_error_text(code: &str, message: &str, channel: Option<&str>) -> String {
    serde_json::to_string(&ControlFrame::ProtocolError(ProtocolError {
        code: code.to_owned(),
        message: message.to_owned(),
        channel: channel.map(str::to_owned),
    }))
    .expect("control frames encode")
}

#[cfg(test)]
mod tests {
    //! Eviction against the holders of a session, with each interleaving
    //! forced by calling the steps in order: no timing involved.

    use super::*;
    use stream_core::frame::Renamed;
    use stream_core::server::{Verdict, verdict};

    struct TestHub {
        hub: Hub,
        dir: std::path::PathBuf,
    }

    impl Drop for TestHub {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    async fn test_hub(name: &str) -> TestHub {
        let dir = std::env::temp_dir().join(format!("stream-hub-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let store = Store::open(&dir.join("stream.db"), None, Arc::new(|_, _| {})).await.unwrap();
        let config = HubConfig {
            ring: RingLimits { max_frames: 64, max_bytes: 1 << 20 },
            retention_ms: 0,
            log_retention: LogRetention { max_frames: Some(2), max_idle_ms: None },
        };
        TestHub { hub: Hub::new(store, Arc::new(Metrics::default()), config, "node-test"), dir }
    }

    async fn rename(hub: &Hub, id: &str, name: &str) {
        let mut locked = hub.lock(id, IfMissing::Create).await.unwrap().unwrap();
        locked.append(hub, vec![FrameBody::Renamed(Renamed { name: name.into() })], Vec::new()).await.unwrap();
    }

    /// An outbox whose connection task is writing, so live frames queue.
    fn outbox() -> Arc<Outbox> {
        Outbox::new(1, 64, Arc::new(Metrics::new(false)), crate::outbox::testing::socket().0)
    }

    fn queued(outbox: &Outbox) -> Vec<String> {
        let mut batch = Vec::new();
        outbox.take_or_release(&mut batch, 64);
        batch.iter().map(|text| text.to_string()).collect()
    }

    #[tokio::test]
    async fn a_session_under_catch_up_stays_in_memory_and_the_subscriber_gets_what_follows() {
        let test = test_hub("catch-up").await;
        let hub = &test.hub;
        rename(hub, "s", "one").await;
        rename(hub, "s", "two").await;
        let outbox = outbox();
        // The subscriber looked the session up; the maintenance pass runs before it attaches.
        let held = hub.open("s").await.unwrap().unwrap();
        let mut catch_up = CatchUp::new(held, Arc::clone(&outbox), 1);
        assert_eq!(hub.evict_idle(now_ms()).await, 0, "a catch-up holds its session");
        let mut caught_up = Vec::new();
        loop {
            match catch_up.next(hub).await.unwrap() {
                CatchUpStep::Page(page) => caught_up.extend(page),
                CatchUpStep::Live { .. } => break,
                CatchUpStep::Deleted => panic!("the session was not deleted"),
            }
        }
        drop(catch_up);
        assert_eq!(caught_up.len(), 1, "the frame after the cursor");
        assert_eq!(hub.evict_idle(now_ms()).await, 0, "a watched session stays");
        rename(hub, "s", "three").await;
        let live = queued(&outbox);
        assert_eq!(live.len(), 1, "the next frame reaches the subscriber: {live:?}");
        assert!(live[0].contains("three"));
        hub.detach("s", 1).await;
        assert_eq!(hub.evict_idle(now_ms()).await, 1, "unwatched and unheld, it goes");
    }

    #[tokio::test]
    async fn a_holder_keeps_its_session_in_memory_so_one_sequencer_holds_the_channel() {
        let test = test_hub("producer").await;
        let hub = &test.hub;
        rename(hub, "s", "one").await;
        // A send looked the session up; the maintenance pass runs before it takes the lock.
        let held = hub.open("s").await.unwrap().unwrap();
        assert_eq!(hub.evict_idle(now_ms()).await, 0);
        let locked = hub.lock("s", IfMissing::Absent).await.unwrap().unwrap();
        assert!(Arc::ptr_eq(&held, &locked.session), "the one session, not a second from the log");
        drop((held, locked));
        assert_eq!(hub.evict_idle(now_ms()).await, 1);
    }

    #[tokio::test]
    async fn a_deleted_session_refuses_its_producer_and_subscribers_so_holders_look_again() {
        let test = test_hub("deleted").await;
        let hub = &test.hub;
        rename(hub, "s", "one").await;
        let outbox = outbox();
        let held = hub.open("s").await.unwrap().unwrap();
        assert!(hub.delete("s").await.unwrap());
        assert!(held.lock_live().await.is_none(), "a send that lost the race to the delete");
        assert!(held.attach_with_snapshot(hub, &outbox).await.unwrap().is_none());
        assert!(matches!(held.attach_after(&outbox, 0), Attach::Deleted));
        assert!(hub.lock("s", IfMissing::Absent).await.unwrap().is_none());
        let fresh = hub.lock("s", IfMissing::Create).await.unwrap().unwrap();
        assert!(!Arc::ptr_eq(&held, &fresh.session));
        assert_ne!(held.epoch(), fresh.session.epoch(), "a new session, a new epoch");
    }

    #[tokio::test]
    async fn retention_compacts_an_idle_session_into_its_snapshot_at_a_new_epoch() {
        let test = test_hub("compact").await;
        let hub = &test.hub;
        for name in ["one", "two", "three"] {
            rename(hub, "s", name).await;
        }
        // A deletion before the compaction stays in force after it.
        let deleted =
            FrameBody::MessagesDeleted(stream_core::frame::MessagesDeleted { message_ids: vec!["gone".into()] });
        hub.lock("s", IfMissing::Absent).await.unwrap().unwrap().append(hub, vec![deleted], Vec::new()).await.unwrap();
        let before = hub.open("s").await.unwrap().unwrap();
        let old_epoch = before.epoch().to_owned();
        let old = before.producer().await.sequencer.snapshot();
        drop(before);
        assert_eq!(hub.compact_idle(now_ms()).await.unwrap(), 0, "a session in memory is left alone");
        assert_eq!(hub.evict_idle(now_ms()).await, 1);
        assert_eq!(hub.compact_idle(now_ms()).await.unwrap(), 1);
        assert!(hub.store().frames_after("s", 0, 10).await.unwrap().is_empty(), "the frames are gone");
        let after = hub.open("s").await.unwrap().unwrap();
        assert_ne!(after.epoch(), old_epoch);
        assert_eq!((after.head(), after.retained_from()), (4, 5));
        let now = after.producer().await.sequencer.snapshot();
        assert_eq!(now.deleted_message_ids, ["gone"]);
        assert_eq!(
            (now.name, now.messages, now.state_hash, now.deleted_message_ids),
            (old.name, old.messages, old.state_hash, old.deleted_message_ids)
        );
        // A cursor of the old epoch gets the snapshot; one of the new replays.
        let replay = |epoch: &str, after_seq| {
            verdict(Some(after.epoch()), after.head(), after.retained_from(), Some(epoch), Some(after_seq))
        };
        assert_eq!(replay(&old_epoch, 4), Verdict::Snapshot);
        assert_eq!(replay(after.epoch(), 4), Verdict::Replay { after_seq: 4, head: 4 });
        drop(after);
        rename(hub, "s", "four").await;
        let seqs: Vec<u64> =
            hub.store().frames_after("s", 0, 10).await.unwrap().into_iter().map(|(seq, _)| seq).collect();
        assert_eq!(seqs, [5], "the seq goes on from the base");
        assert_eq!(hub.compact_idle(now_ms()).await.unwrap(), 0, "one frame is within the bound of two");
    }

    #[tokio::test]
    async fn a_watched_or_busy_session_is_not_evicted() {
        let test = test_hub("kept").await;
        let hub = &test.hub;
        rename(hub, "watched", "w").await;
        rename(hub, "busy", "b").await;
        let outbox = outbox();
        let watched = hub.open("watched").await.unwrap().unwrap();
        assert!(matches!(watched.attach_after(&outbox, 1), Attach::Attached(_)));
        let busy = hub.lock("busy", IfMissing::Absent).await.unwrap().unwrap();
        assert_eq!(hub.evict_idle(now_ms()).await, 0);
        drop(busy);
        assert_eq!(hub.evict_idle(now_ms()).await, 1, "the busy one goes once its lock is free");
    }
}
