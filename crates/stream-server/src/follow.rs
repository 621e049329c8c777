//! Cross-node fan-out. With the log in Redis, other nodes commit frames to
//! the sessions this node holds; each node follows the logs of the sessions
//! in its memory, and of those its clients wait for, with one blocking read
//! for all of them, and publishes what it reads to its own subscribers in
//! seq order, each frame once (its own frames come back too, and are
//! skipped). A session waited for is opened when its first frames appear.
//! A session whose run this node drives is not followed while it runs: this
//! node writes nearly all its frames, and what another writes meanwhile is
//! read from the log before the next batch is published.
//! The same read brings the other nodes' events: runs that start and end
//! (for the running map), sessions deleted, and aborts of the runs this node
//! drives.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use crate::AppState;
use crate::store::{ClusterEvent, Followed};

/// How long one read waits for frames; a session opened meanwhile is
/// followed from the next read on.
const FOLLOW_BLOCK: Duration = Duration::from_millis(100);
/// The pause after a failed read (Redis down), before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Follows until shutdown; returns at once when the log is not shared.
pub async fn follow_loop(state: Arc<AppState>) {
    let taken = state.follower.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
    let Some(mut follower) = taken else { return };
    let mut failing = false;
    while !state.shutdown.is_cancelled() {
        // Ids only: a session held here during the read could not leave memory.
        let mut after = state.hub.followed_heads().await;
        let live: HashSet<String> = after.iter().map(|(id, _)| id.clone()).collect();
        after.extend(state.hub.awaited_sessions().into_iter().filter(|id| !live.contains(id)).map(|id| (id, 0)));
        let read = tokio::select! {
            read = follower.read(&after, FOLLOW_BLOCK) => read,
            () = state.shutdown.cancelled() => return,
        };
        let Followed { frames, events } = match read {
            Ok(followed) => followed,
            Err(error) => {
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(%error, "cannot follow the shared log; retrying");
                }
                tokio::time::sleep(RETRY_PAUSE).await;
                continue;
            }
        };
        if std::mem::take(&mut failing) {
            tracing::info!("following the shared log again");
        }
        // Events first: frames of a session deleted and made again belong to the new one.
        for (node, event) in events {
            if !state.hub.is_this_node(&node) {
                apply(&state, event).await;
            }
        }
        for (id, frames) in frames {
            let published = match state.hub.live_session(&id).await {
                Some(session) => session.publish_in_order(&state.hub, &frames, None).await,
                // Left memory meanwhile: it is loaded from the log when needed.
                None if live.contains(&id) => Ok(()),
                // Awaited: opening it hands its waiting subscribers the log.
                None => state.hub.open(&id).await.map(drop),
            };
            if let Err(error) = published {
                tracing::warn!(session = %id, %error, "could not publish followed frames");
            }
        }
    }
}

/// What another node told.
async fn apply(state: &AppState, event: ClusterEvent) {
    match event {
        ClusterEvent::Running { session_id, run, head } => state.hub.running_changed(&session_id, run, head),
        ClusterEvent::Compacted { session_id } => state.hub.supersede(&session_id).await,
        ClusterEvent::Deleted { session_id } => state.hub.forget(&session_id).await,
        ClusterEvent::Abort { session_id, run_id } => crate::runs::abort_driven(state, &session_id, &run_id).await,
    }
}
