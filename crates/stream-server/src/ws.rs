//! One WebSocket connection (`/v1/ws`): `hello`, then client frames
//! (`subscribe`, `unsubscribe`, `watch_running`, `ping`) in, and the verdict,
//! catch-up and live frames out. Live frames mostly leave on their
//! publisher's thread (see [`crate::outbox`]); the loop writes the rest,
//! queued frames in batches (one JSON array per WebSocket message). It works
//! over any [`Socket`], so it does not depend on the socket type.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade, close_code};
use axum::response::Response;
use futures_util::{SinkExt, StreamExt};
use stream_core::frame::{ClientFrame, ControlFrame, Hello, PROTOCOL_VERSION, Pong, SubscribeMode, Unsubscribed};
use stream_core::server::{Verdict, verdict};
use tokio::sync::watch;

use crate::AppState;
use crate::config::{MAX_SUBSCRIPTIONS_PER_CONNECTION, MAX_WEBSOCKET_MESSAGE_BYTES};
use crate::hub::{CatchUp, CatchUpStep, empty_snapshot_text, protocol_error_text, subscribed_text};
use crate::outbox::{Evicted, Outbox, SharedSocket, Socket, batch_text};
use crate::store::StoreError;

/// Most queued texts sent in one WebSocket message.
const MAX_BATCH: usize = 256;

/// The socket's read buffer: see [`upgrade`].
const READ_BUFFER_BYTES: usize = 256;

/// Upgrades to a WebSocket with small buffers (idle connections stay light)
/// and a bound on what a client may send. The read buffer is allocated at
/// once and kept: client frames are small (a subscribe is ~100 bytes), and a
/// larger one is read in several reads, not refused.
pub async fn upgrade(State(state): State<Arc<AppState>>, upgrade: WebSocketUpgrade) -> Response {
    let tracked = state.tasks.clone();
    upgrade
        .read_buffer_size(READ_BUFFER_BYTES)
        .write_buffer_size(0)
        .max_message_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .max_frame_size(MAX_WEBSOCKET_MESSAGE_BYTES)
        .on_upgrade(move |socket: WebSocket| tracked.track_future(run_connection(state, Box::new(socket))))
}

type SendResult = Result<(), axum::Error>;

/// Serves one connection until either side closes it or the server stops.
pub async fn run_connection(state: Arc<AppState>, socket: Box<dyn Socket>) {
    let id = state.next_connection_id();
    let capacity = state.config.outbox_frames.max(crate::runs::MAX_FRAMES_PER_APPEND);
    let outbox = Outbox::new(id, capacity, Arc::clone(&state.metrics), socket);
    let (mut sink, mut stream) = (outbox.socket(), outbox.socket());
    let heartbeat = Duration::from_millis(state.config.heartbeat_ms.max(1));
    let mut connection = Connection {
        state: Arc::clone(&state),
        outbox,
        subscriptions: HashSet::new(),
        watching: None,
        write_patience: 2 * heartbeat,
    };
    state.metrics.connections.inc();
    // Encoded at once: the frame itself would be held for the connection's life.
    let hello = encode(&ControlFrame::Hello(Hello {
        protocol: PROTOCOL_VERSION,
        connection_id: format!("conn-{id}"),
        heartbeat_ms: state.config.heartbeat_ms,
    }));
    let mut ticks = tokio::time::interval(heartbeat);
    // Made for the first batch, let go after a heartbeat period without one:
    // an idle connection holds no batch buffer, a busy one keeps it.
    let mut batch = Vec::new();
    let mut drops = state.drop_connections.subscribe();
    // Made once, not per message: each is registered with a notifier shared
    // by every connection, and registering anew for every batch sent showed.
    let shutdown = state.shutdown.cancelled();
    let dropped = drops.changed();
    tokio::pin!(shutdown, dropped);
    let mut result = connection.send(&mut sink, hello).await;
    while result.is_ok() {
        // Whatever the turn queued is written, and then the socket is the publishers' again.
        result = connection.write_queued(&mut sink, &mut batch).await;
        if result.is_err() {
            break;
        }
        result = tokio::select! {
            _ = &mut shutdown => {
                connection.close(&mut sink, close_code::AWAY, "the server is shutting down").await;
                break;
            }
            _ = &mut dropped => {
                connection.close(&mut sink, close_code::RESTART, "dropped by the test hook").await;
                break;
            }
            incoming = stream.next() => {
                // Taken from the publishers before a client frame is answered: a
                // subscribe attaches before it writes its catch-up, which live frames follow.
                connection.outbox.claim();
                match incoming {
                    // Boxed: a subscribe's catch-up is a large future, and an idle connection should not carry it.
                    Some(Ok(Message::Text(text))) => Box::pin(connection.handle(&mut sink, text.as_str())).await,
                    Some(Ok(Message::Binary(_))) => {
                        connection.refuse(&mut sink, "binary_not_supported", "send frames as JSON text", None).await
                    }
                    Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
                    Some(Ok(Message::Close(_))) | None => break,
                    Some(Err(error)) => {
                        // A message over the size bound surfaces here as a read error.
                        state.metrics.reject("socket_error");
                        connection.close(&mut sink, close_code::SIZE, "message too big or malformed").await;
                        tracing::debug!(%error, connection = id, "socket read failed");
                        break;
                    }
                }
            }
            // Queued texts are written at the top of the loop; evicted channels are caught up here.
            _ = connection.outbox.queued() => match connection.outbox.take_evicted() {
                evicted if evicted.is_empty() => Ok(()),
                evicted => Box::pin(connection.catch_up(&mut sink, &mut batch, evicted)).await,
            },
            changed = watch_changed(&mut connection.watching) => match changed {
                Some(text) => connection.send(&mut sink, text.to_string()).await,
                None => Ok(()),
            },
            _ = ticks.tick() => {
                if connection.outbox.last_sent().elapsed() >= heartbeat {
                    batch = Vec::new();
                    connection.send(&mut sink, encode(&ControlFrame::Pong(Pong { id: None }))).await
                } else {
                    Ok(())
                }
            }
        };
    }
    for channel in &connection.subscriptions {
        state.hub.detach(channel, id).await;
    }
    state.metrics.connections.dec();
}

struct Connection {
    state: Arc<AppState>,
    outbox: Arc<Outbox>,
    subscriptions: HashSet<String>,
    watching: Option<watch::Receiver<Arc<str>>>,
    /// How long one write may wait on the client: two heartbeats, the
    /// silence after which a client gives the link up too.
    write_patience: Duration,
}

impl Connection {
    async fn send(&mut self, sink: &mut SharedSocket, text: String) -> SendResult {
        self.outbox.claim();
        self.patiently(sink.send(Message::Text(text.into()))).await
    }

    /// Sends a close frame with `code`: the connection ends whether or not
    /// the client takes it.
    async fn close(&self, sink: &mut SharedSocket, code: u16, reason: &str) {
        let _ = self.patiently(sink.send(close(code, reason))).await;
    }

    /// `write`, unless the client takes longer than [`Self::write_patience`]
    /// to accept it: then it has stopped reading (or the link is dead), and
    /// the connection ends, counted; the client resumes from its cursor
    /// when it comes back.
    async fn patiently(&self, write: impl Future<Output = SendResult>) -> SendResult {
        match tokio::time::timeout(self.write_patience, write).await {
            Ok(written) => written,
            Err(_) => {
                self.state.metrics.reject("write_timeout");
                Err(axum::Error::new(std::io::Error::from(std::io::ErrorKind::TimedOut)))
            }
        }
    }

    /// Writes what is queued, in batches, finishing first what a
    /// publisher's write left to flush; then releases the socket.
    async fn write_queued(&mut self, sink: &mut SharedSocket, batch: &mut Vec<Arc<str>>) -> SendResult {
        self.patiently(sink.flush()).await?;
        while self.outbox.take_or_release(batch, MAX_BATCH) {
            let sent = self.patiently(sink.send(Message::Text(batch_text(batch.iter()).into()))).await;
            self.outbox.count_written(batch.iter());
            batch.clear();
            sent?;
        }
        Ok(())
    }

    async fn refuse(
        &mut self,
        sink: &mut SharedSocket,
        code: &str,
        message: &str,
        channel: Option<&str>,
    ) -> SendResult {
        self.state.metrics.reject(code);
        self.send(sink, protocol_error_text(code, message, channel)).await
    }

    async fn handle(&mut self, sink: &mut SharedSocket, text: &str) -> SendResult {
        let frame = match crate::inputs::client_frame(text) {
            Ok(frame) => frame,
            Err(error) => return self.refuse(sink, error.kind.code(), &error.to_string(), None).await,
        };
        match frame {
            ClientFrame::Subscribe { channel, epoch, after_seq } => {
                self.subscribe(sink, channel, epoch, after_seq).await
            }
            ClientFrame::Unsubscribe { channel } => {
                if self.subscriptions.remove(&channel) {
                    self.leave(&channel).await;
                }
                Ok(())
            }
            ClientFrame::WatchRunning => {
                let mut receiver = self.state.hub.watch_running();
                let current = receiver.borrow_and_update().to_string();
                self.watching = Some(receiver);
                self.send(sink, current).await
            }
            ClientFrame::Ping { id } => self.send(sink, encode(&ControlFrame::Pong(Pong { id }))).await,
        }
    }

    async fn subscribe(
        &mut self,
        sink: &mut SharedSocket,
        channel: String,
        epoch: Option<String>,
        after_seq: Option<u64>,
    ) -> SendResult {
        if !stream_core::frame::is_valid_session_id(&channel) {
            return self
                .refuse(sink, "invalid_channel", "a channel id matches [A-Za-z0-9._:-]{1,128}", Some(&channel))
                .await;
        }
        if self.subscriptions.contains(&channel) {
            // A resubscribe (after a resync) starts over from the new cursor.
            self.leave(&channel).await;
        } else if self.subscriptions.len() >= MAX_SUBSCRIPTIONS_PER_CONNECTION {
            let message = format!("at most {MAX_SUBSCRIPTIONS_PER_CONNECTION} channels per connection");
            return self.refuse(sink, "too_many_subscriptions", &message, Some(&channel)).await;
        }
        let state = Arc::clone(&self.state);
        let hub = &state.hub;
        let outbox = Arc::clone(&self.outbox);
        // Looped only when the session is deleted between the lookup and the attach.
        let (session, after_seq, head) = loop {
            let session = match hub.attach_or_wait(&channel, &outbox).await {
                Ok(session) => session,
                Err(error) => return self.refuse_unreadable(sink, &channel, &error).await,
            };
            let Some(session) = session else {
                // Not created yet: an empty snapshot, and its first frames arrive live.
                self.subscriptions.insert(channel.clone());
                hub.metrics().resume("snapshot");
                self.send(sink, subscribed_text(&channel, None, 0, SubscribeMode::Snapshot)).await?;
                return self.send(sink, empty_snapshot_text(&channel)).await;
            };
            // The verdict is the log's, whichever node wrote the frames.
            let attached = match session.publish_log(hub).await {
                Ok(()) => {
                    verdict(Some(session.epoch()), session.head(), session.retained_from(), epoch.as_deref(), after_seq)
                }
                Err(error) => return self.refuse_unreadable(sink, &channel, &error).await,
            };
            match attached {
                Verdict::Snapshot => {
                    let snapshot = match session.attach_with_snapshot(hub, &outbox).await {
                        Ok(attached) => attached,
                        Err(error) => return self.refuse_unreadable(sink, &channel, &error).await,
                    };
                    let Some((seq, snapshot)) = snapshot else { continue };
                    self.subscriptions.insert(channel.clone());
                    hub.metrics().resume("snapshot");
                    let subscribed = subscribed_text(&channel, Some(session.epoch()), seq, SubscribeMode::Snapshot);
                    self.send(sink, subscribed).await?;
                    return self.send(sink, snapshot).await;
                }
                Verdict::Replay { after_seq, head } => break (session, after_seq, head),
            }
        };
        self.subscriptions.insert(channel.clone());
        self.send(sink, subscribed_text(&channel, Some(session.epoch()), head, SubscribeMode::Replay)).await?;
        let mut catch_up = CatchUp::new(session, outbox, after_seq);
        loop {
            match catch_up.next(hub).await {
                Ok(CatchUpStep::Page(texts)) => {
                    self.state.metrics.frames_sent.inc_by(texts.len() as u64);
                    self.send(sink, batch_text(texts.iter())).await?;
                }
                Ok(CatchUpStep::Live { from_log }) => {
                    hub.metrics().resume(if from_log { "replay_log" } else { "replay_memory" });
                    return Ok(());
                }
                Ok(CatchUpStep::Deleted) => {
                    self.subscriptions.remove(&channel);
                    let notice = Unsubscribed { channel: channel.clone(), reason: "deleted".into() };
                    return self.send(sink, encode(&ControlFrame::Unsubscribed(notice))).await;
                }
                Err(error) => {
                    self.subscriptions.remove(&channel);
                    return self.refuse_unreadable(sink, &channel, &error).await;
                }
            }
        }
    }

    /// Takes this connection out of `channel`'s fan-out; an eviction of it
    /// not yet caught up is stale from here on, so it is forgotten.
    async fn leave(&self, channel: &str) {
        self.state.hub.detach(channel, self.outbox.id).await;
        self.outbox.forget_evicted(channel);
    }

    /// Refuses a subscribe the log could not serve.
    async fn refuse_unreadable(&mut self, sink: &mut SharedSocket, channel: &str, error: &StoreError) -> SendResult {
        tracing::error!(%error, "subscribe failed on storage");
        self.refuse(sink, "storage_unavailable", "the log cannot be read now; retry", Some(channel)).await
    }

    /// Catches each `evicted` channel up from its cursor, as if the client
    /// had resubscribed from there: from the ring or the log, at the pace the
    /// client reads, and then live again (or a snapshot, when the cursor is
    /// of an epoch gone). They were taken before the queue is written here,
    /// so every frame queued before an eviction goes first: nothing is sent
    /// twice or out of order.
    async fn catch_up(
        &mut self,
        sink: &mut SharedSocket,
        batch: &mut Vec<Arc<str>>,
        evicted: Vec<Evicted>,
    ) -> SendResult {
        self.write_queued(sink, batch).await?;
        for Evicted { channel, cursor } in evicted {
            let (epoch, after_seq) = cursor.unzip();
            self.subscribe(sink, channel, epoch, after_seq).await?;
        }
        Ok(())
    }
}

async fn watch_changed(watching: &mut Option<watch::Receiver<Arc<str>>>) -> Option<Arc<str>> {
    match watching {
        Some(receiver) => match receiver.changed().await {
            Ok(()) => Some(Arc::clone(&receiver.borrow_and_update())),
            Err(_) => std::future::pending().await,
        },
        None => std::future::pending().await,
    }
}

fn encode(frame: &ControlFrame) -> String {
    serde_json::to_string(frame).expect("control frames encode")
}

fn close(code: u16, reason: &str) -> Message {
    Message::Close(Some(CloseFrame { code, reason: reason.into() }))
}
