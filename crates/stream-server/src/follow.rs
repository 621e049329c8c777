//! Cross-node fan-out. With the log in Redis, other nodes commit frames to
//! the sessions this node holds; each node follows the logs of the sessions
//! in its memory, and of those its clients wait for, with one blocking read
//! for all of them, and publishes what it reads to its own subscribers in
//! seq order, each frame once (its own frames come back too, and are
//! skipped). A session waited for is opened when its first frames appear.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::AppState;

/// How long one read waits for frames; a session opened meanwhile is
/// followed from the next read on.
const FOLLOW_BLOCK: Duration = Duration::from_millis(100);
/// The pause after a failed read (Redis down), before the next.
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// Follows until shutdown; returns at once when the log is not shared.
pub async fn follow_loop(state: Arc<AppState>) {
    let Some(mut follower) = state.hub.store().follower() else { return };
    let mut failing = false;
    while !state.shutdown.is_cancelled() {
        let live: HashMap<String, _> =
            state.hub.live_sessions().await.into_iter().map(|session| (session.id().to_owned(), session)).collect();
        let mut after: Vec<(String, u64)> =
            live.values().map(|session| (session.id().to_owned(), session.head())).collect();
        after.extend(state.hub.awaited_sessions().into_iter().filter(|id| !live.contains_key(id)).map(|id| (id, 0)));
        let read = tokio::select! {
            read = follower.read(&after, FOLLOW_BLOCK) => read,
            () = state.shutdown.cancelled() => return,
        };
        let batches = match read {
            Ok(batches) => batches,
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
        for (id, frames) in batches {
            let published = match live.get(&id) {
                Some(session) => session.publish_in_order(&state.hub, &frames, None).await,
                // Opening it hands its waiting subscribers the log.
                None => state.hub.open(&id).await.map(drop),
            };
            if let Err(error) = published {
                tracing::warn!(session = %id, %error, "could not publish followed frames");
            }
        }
    }
}
