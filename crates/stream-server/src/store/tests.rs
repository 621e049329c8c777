//! The log's rules, on both backends: each test runs on SQLite and on a
//! `redis-server` of its own (skipped, with a message, where none is installed).

use std::path::PathBuf;
use std::sync::Arc;

use proptest::prelude::*;
use rusqlite::Connection;

use super::*;
use crate::local_redis::LocalRedis;

fn temp_dir(name: &str) -> PathBuf {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let next = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("stream-store-{name}-{}-{next}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A log on one backend, in a directory removed with it.
struct TestLog {
    dir: PathBuf,
    redis: Option<LocalRedis>,
}

impl TestLog {
    /// Both backends; Redis only where `redis-server` is installed.
    fn both(name: &str) -> Vec<Self> {
        let sqlite = Self { dir: temp_dir(&format!("{name}-sqlite")), redis: None };
        let dir = temp_dir(&format!("{name}-redis"));
        match LocalRedis::start(&dir.join("redis")) {
            Ok(redis) => vec![sqlite, Self { dir, redis: Some(redis) }],
            Err(error) => {
                eprintln!("skipped on Redis: no redis-server ({error}); `just setup` installs it");
                vec![sqlite]
            }
        }
    }

    fn name(&self) -> &'static str {
        if self.redis.is_some() { "redis" } else { "sqlite" }
    }

    /// Opens the log (again: a reopen sees what was committed before).
    async fn open(&self) -> Store {
        let url = self.redis.as_ref().map(LocalRedis::url);
        Store::open(&self.dir.join("log.db"), url.as_deref(), Arc::new(|_, _| {})).await.unwrap()
    }
}

impl Drop for TestLog {
    fn drop(&mut self) {
        self.redis.take();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn create(id: &str, epoch: &str, now: u64) -> WriteOp {
    WriteOp::CreateSession { id: id.into(), epoch: epoch.into(), provider: None, now }
}

/// Frames in epoch `e`, the epoch the tests create sessions in.
fn append(id: &str, seqs: std::ops::RangeInclusive<u64>, now: u64) -> WriteOp {
    append_in("e", id, seqs, now)
}

fn append_in(epoch: &str, id: &str, seqs: std::ops::RangeInclusive<u64>, now: u64) -> WriteOp {
    WriteOp::Append {
        session_id: id.into(),
        epoch: epoch.into(),
        frames: seqs.map(|seq| (seq, Arc::from(format!("{{\"seq\":{seq}}}")))).collect(),
        name: None,
        open_run: None,
        cost_usd: None,
        started_run: None,
        now,
    }
}

async fn seqs(store: &Store, id: &str) -> Vec<u64> {
    store.frames_after(id, 0, 1_000).await.unwrap().into_iter().map(|(seq, _)| seq).collect()
}

#[tokio::test]
async fn a_log_from_before_the_provider_column_and_run_starts_gains_them_and_keeps_its_rows() {
    let dir = temp_dir("migrate");
    let old = Connection::open(dir.join("log.db")).unwrap();
    old.execute_batch(
        "CREATE TABLE sessions (id TEXT PRIMARY KEY, epoch TEXT NOT NULL, name TEXT, created_at INTEGER NOT NULL,
         updated_at INTEGER NOT NULL, head INTEGER NOT NULL DEFAULT 0, open_run TEXT) WITHOUT ROWID;
         CREATE TABLE frames (session_id TEXT NOT NULL, seq INTEGER NOT NULL, body TEXT NOT NULL,
         PRIMARY KEY (session_id, seq)) WITHOUT ROWID;
         INSERT INTO sessions (id, epoch, created_at, updated_at, head) VALUES ('old', 'e0', 1, 1, 2);
         INSERT INTO frames VALUES ('old', 1, '{\"seq\":1,\"type\":\"message_started\"}');
         INSERT INTO frames VALUES ('old', 2, '{\"seq\":2,\"type\":\"run_started\",\"run_id\":\"r1\"}');",
    )
    .unwrap();
    drop(old);
    let store = Store::open(&dir.join("log.db"), None, Arc::new(|_, _| {})).await.unwrap();
    let old = store.session("old").await.unwrap().unwrap();
    assert_eq!((old.epoch.as_str(), old.provider, old.cost_usd), ("e0", None, None));
    assert_eq!(store.run_start_seq("old", "r1").await.unwrap(), Some(2));
    let create =
        WriteOp::CreateSession { id: "new".into(), epoch: "e1".into(), provider: Some("codex".into()), now: 2 };
    store.write(vec![create]).await.unwrap();
    assert_eq!(store.session("new").await.unwrap().and_then(|row| row.provider).as_deref(), Some("codex"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// A SQLite log whose observer records the name of each committing thread.
async fn sqlite_watching_committers(dir: &std::path::Path) -> (Store, Arc<std::sync::Mutex<Vec<Option<String>>>>) {
    let threads = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = Arc::clone(&threads);
    let observer: CommitObserver =
        Arc::new(move |_, _| seen.lock().unwrap().push(std::thread::current().name().map(str::to_owned)));
    (Store::open(&dir.join("log.db"), None, observer).await.unwrap(), threads)
}

#[tokio::test]
async fn a_lone_light_write_commits_on_its_callers_thread_and_a_heavy_one_on_the_writer() {
    let dir = temp_dir("committers");
    let (store, threads) = sqlite_watching_committers(&dir).await;
    store.write(vec![create("s", "e", 1), append("s", 1..=3, 1)]).await.unwrap();
    store.write(vec![append("s", 4..=100, 2)]).await.unwrap();
    store.write(vec![WriteOp::DeleteSession { id: "s".into() }]).await.unwrap();
    let caller = std::thread::current().name().map(str::to_owned);
    let writer = Some("log-writer".to_owned());
    assert_eq!(*threads.lock().unwrap(), vec![caller, writer.clone(), writer]);
    assert_eq!(store.session("s").await.unwrap(), None);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_racing_between_callers_and_the_writer_all_land_in_order() {
    let dir = temp_dir("racing-writes");
    let (store, threads) = sqlite_watching_committers(&dir).await;
    let writers: Vec<_> = (0..64)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move {
                let id = format!("s{n}");
                store.write(vec![create(&id, "e", 1)]).await.unwrap();
                for seq in 1..=20 {
                    store.write(vec![append(&id, seq..=seq, seq)]).await.unwrap();
                }
            })
        })
        .collect();
    for writer in writers {
        writer.await.unwrap();
    }
    for n in 0..64 {
        let id = format!("s{n}");
        assert_eq!(seqs(&store, &id).await, (1..=20).collect::<Vec<_>>(), "{id}");
        assert_eq!(store.session(&id).await.unwrap().map(|row| row.head), Some(20));
    }
    let threads = threads.lock().unwrap();
    let on_writer = threads.iter().filter(|name| name.as_deref() == Some("log-writer")).count();
    eprintln!("{on_writer} of {} commits on the writer thread", threads.len());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn appends_read_back_in_pages_and_survive_reopen() {
    for log in TestLog::both("pages") {
        {
            let store = log.open().await;
            store.write(vec![create("s", "e", 1)]).await.unwrap();
            let WriteOp::Append { frames, .. } = append("s", 1..=5, 2) else { unreachable!() };
            store
                .write(vec![WriteOp::Append {
                    session_id: "s".into(),
                    epoch: "e".into(),
                    frames,
                    name: Some("chat".into()),
                    open_run: Some("r1".into()),
                    cost_usd: Some(Some(0.125)),
                    started_run: Some(("r1".into(), 2)),
                    now: 2,
                }])
                .await
                .unwrap();
        }
        let store = log.open().await;
        let row = store.session("s").await.unwrap().unwrap();
        let summary = (row.epoch.as_str(), row.head, row.open_run.as_deref(), row.name.as_deref(), row.cost_usd);
        assert_eq!(summary, ("e", 5, Some("r1"), Some("chat"), Some(0.125)), "{}", log.name());
        let page = store.frames_after("s", 1, 2).await.unwrap();
        assert_eq!(
            page.iter().map(|(seq, body)| (*seq, body.to_string())).collect::<Vec<_>>(),
            vec![(2, "{\"seq\":2}".to_string()), (3, "{\"seq\":3}".to_string())],
            "{}",
            log.name()
        );
        assert_eq!(store.orphaned_runs(None).await.unwrap(), vec!["s".to_string()], "{}", log.name());
        assert_eq!(store.run_start_seq("s", "r1").await.unwrap(), Some(2), "{}", log.name());
        assert_eq!(store.run_start_seq("s", "r2").await.unwrap(), None, "{}", log.name());
    }
}

#[tokio::test]
async fn a_failed_write_commits_nothing_of_itself_and_spares_the_others() {
    for log in TestLog::both("atomic") {
        let store = log.open().await;
        store.write(vec![create("s", "e", 1)]).await.unwrap();
        // The second create of the same id is refused, and the append before it with it.
        let result = store.write(vec![append("s", 1..=1, 2), create("s", "e2", 2)]).await;
        assert!(matches!(&result, Err(StoreError::SessionExists(id)) if id == "s"), "{}: {result:?}", log.name());
        assert!(seqs(&store, "s").await.is_empty(), "{}", log.name());
        // Two writers in flight together: the bad one fails, the good one lands.
        let (good, bad) =
            tokio::join!(store.write(vec![append("s", 1..=1, 3)]), store.write(vec![create("s", "e3", 3)]));
        assert!(good.is_ok() && bad.is_err(), "{}", log.name());
        assert_eq!(seqs(&store, "s").await, [1], "{}", log.name());
    }
}

#[tokio::test]
async fn frames_that_do_not_follow_the_head_are_refused_whole() {
    for log in TestLog::both("head") {
        let store = log.open().await;
        store.write(vec![create("s", "e", 1), append("s", 1..=3, 1)]).await.unwrap();
        for (stale, first) in [(2..=4, 2), (5..=6, 5), (1..=1, 1)] {
            let result = store.write(vec![append("s", stale, 2)]).await;
            let refused = NotAtHead { session: "s".into(), first };
            assert!(
                matches!(&result, Err(StoreError::NotAtHead(refusal)) if *refusal == refused),
                "{}: {result:?}",
                log.name()
            );
        }
        let result = store.write(vec![append("gone", 1..=1, 2)]).await;
        assert!(matches!(result, Err(StoreError::NotAtHead(_))), "{}: {result:?}", log.name());
        assert_eq!(store.session("s").await.unwrap().unwrap().head, 3, "{}", log.name());
        assert_eq!(seqs(&store, "s").await, [1, 2, 3], "{}", log.name());
        assert!(store.session("gone").await.unwrap().is_none(), "{}", log.name());
    }
}

#[tokio::test]
async fn compaction_at_the_head_moves_the_epoch_and_forgets_earlier_runs() {
    for log in TestLog::both("compact") {
        let store = log.open().await;
        let mut first_run = append("s", 1..=4, 1);
        if let WriteOp::Append { started_run, .. } = &mut first_run {
            *started_run = Some(("r1".into(), 2));
        }
        store
            .write(vec![create("s", "e", 1), first_run, create("busy", "e", 1), append("busy", 1..=9, 1)])
            .await
            .unwrap();
        let WriteOp::Append { frames, .. } = append("busy", 10..=10, 1) else { unreachable!() };
        let open = WriteOp::Append {
            session_id: "busy".into(),
            epoch: "e".into(),
            frames,
            name: None,
            open_run: Some("r9".into()),
            cost_usd: None,
            started_run: None,
            now: 1,
        };
        store.write(vec![open]).await.unwrap();
        // `busy` has a run open: never a candidate.
        assert_eq!(store.compaction_candidates(Some(2), None, 10).await.unwrap(), ["s"], "{}", log.name());
        assert_eq!(store.compaction_candidates(None, Some(2), 10).await.unwrap(), ["s"], "{}", log.name());
        assert!(store.compaction_candidates(Some(4), None, 10).await.unwrap().is_empty(), "{}", log.name());
        let compact = WriteOp::Compact { session_id: "s".into(), epoch: "e2".into(), seq: 4, snapshot: "{}".into() };
        // Frames of the old epoch are refused from now on.
        store.write(vec![compact.clone(), append_in("e2", "s", 5..=5, 2)]).await.unwrap();
        let stale = store.write(vec![append("s", 6..=6, 2)]).await;
        assert!(matches!(&stale, Err(StoreError::EpochMoved(id)) if id == "s"), "{}: {stale:?}", log.name());
        // A compaction is only at the head.
        let behind = store.write(vec![compact]).await;
        assert!(matches!(behind, Err(StoreError::NotAtHead(_))), "{}: {behind:?}", log.name());
        assert_eq!(seqs(&store, "s").await, [5], "{}", log.name());
        assert_eq!(store.base("s").await.unwrap(), Some((4, "{}".to_string())), "{}", log.name());
        let row = store.session("s").await.unwrap().unwrap();
        assert_eq!((row.epoch.as_str(), row.base_seq, row.head), ("e2", 4, 5), "{}", log.name());
        assert_eq!(store.run_start_seq("s", "r1").await.unwrap(), None, "{}", log.name());
        assert!(store.compaction_candidates(Some(2), None, 10).await.unwrap().is_empty(), "{}", log.name());
    }
}

#[tokio::test]
async fn send_answers_and_continuations_are_kept_and_deleted_with_the_session() {
    for log in TestLog::both("sends") {
        let store = log.open().await;
        let answer = SendAnswer { run_id: "r".into(), message_id: "m".into() };
        let other = SendAnswer { run_id: "r2".into(), message_id: "m2".into() };
        store
            .write(vec![
                create("s", "e", 1),
                WriteOp::RecordSend { session_id: "s".into(), client_message_id: "c".into(), answer: answer.clone() },
                // The first answer stays.
                WriteOp::RecordSend { session_id: "s".into(), client_message_id: "c".into(), answer: other },
                WriteOp::SetContinuation { session_id: "s".into(), provider: "codex".into(), id: "t1".into() },
                WriteOp::SetContinuation { session_id: "s".into(), provider: "claude-code".into(), id: "c1".into() },
                WriteOp::ClearContinuation { session_id: "s".into(), provider: "claude-code".into() },
            ])
            .await
            .unwrap();
        assert_eq!(store.send_answer("s", "c").await.unwrap(), Some(answer), "{}", log.name());
        assert_eq!(store.continuation("s", "codex").await.unwrap().as_deref(), Some("t1"), "{}", log.name());
        assert_eq!(store.continuation("s", "claude-code").await.unwrap(), None, "{}", log.name());
        store.write(vec![WriteOp::DeleteSession { id: "s".into() }]).await.unwrap();
        assert_eq!(store.send_answer("s", "c").await.unwrap(), None, "{}", log.name());
        assert_eq!(store.continuation("s", "codex").await.unwrap(), None, "{}", log.name());
        assert!(store.session("s").await.unwrap().is_none(), "{}", log.name());
        assert!(store.sessions().await.unwrap().is_empty(), "{}", log.name());
        // Made again, it starts from nothing.
        store.write(vec![create("s", "e", 2), append("s", 1..=1, 2)]).await.unwrap();
        assert_eq!(seqs(&store, "s").await, [1], "{}", log.name());
    }
}

/// `append` with run `r1` open after it.
fn append_in_run(id: &str, seqs: std::ops::RangeInclusive<u64>, now: u64) -> WriteOp {
    let mut op = append(id, seqs, now);
    if let WriteOp::Append { open_run, .. } = &mut op {
        *open_run = Some("r1".into());
    }
    op
}

/// Node `node`'s lease op for run `r1`.
fn lease(node: &str, action: LeaseAction) -> WriteOp {
    WriteOp::Lease { session_id: "s".into(), holder: format!("{node}/r1"), action, ttl_ms: 60_000 }
}

#[tokio::test]
async fn a_run_lease_fences_the_writes_of_the_node_that_lost_it() {
    let Some(log) = TestLog::both("lease").into_iter().find(|log| log.redis.is_some()) else { return };
    let store = log.open().await;
    store.write(vec![create("s", "e", 1), append_in_run("s", 1..=1, 1), lease("a", LeaseAction::Take)]).await.unwrap();
    // Node b's run is refused, and nothing of its request stored.
    let refused = store.write(vec![append("s", 2..=2, 2), lease("b", LeaseAction::Take)]).await;
    assert!(matches!(&refused, Err(StoreError::Leased(id)) if id == "s"), "{refused:?}");
    assert_eq!(seqs(&store, "s").await, [1]);
    store.write(vec![append_in_run("s", 2..=2, 2), lease("a", LeaseAction::Keep)]).await.unwrap();
    // The run is a's, so it is not orphaned, but for a's own restart.
    assert!(store.orphaned_runs(None).await.unwrap().is_empty());
    assert_eq!(store.orphaned_runs(Some("a")).await.unwrap(), ["s"]);
    assert!(store.orphaned_runs(Some("b")).await.unwrap().is_empty());
    // b cannot keep or let go of what a holds; once a lets go, b may take it.
    assert!(store.write(vec![lease("b", LeaseAction::Keep)]).await.is_err());
    store.write(vec![lease("b", LeaseAction::Release)]).await.unwrap();
    assert!(store.write(vec![lease("b", LeaseAction::Take)]).await.is_err());
    store.write(vec![lease("a", LeaseAction::Release)]).await.unwrap();
    assert_eq!(store.orphaned_runs(None).await.unwrap(), ["s"]);
    store.write(vec![lease("b", LeaseAction::Take), lease("b", LeaseAction::Release)]).await.unwrap();
    // a, late, is fenced off: its batch is refused.
    let late = store.write(vec![append("s", 3..=3, 3), lease("a", LeaseAction::Keep)]).await;
    assert!(matches!(late, Err(StoreError::Leased(_))), "{late:?}");
    assert_eq!(seqs(&store, "s").await, [1, 2]);
}

#[tokio::test]
async fn an_expired_lease_orphans_its_run() {
    let Some(log) = TestLog::both("lease-expiry").into_iter().find(|log| log.redis.is_some()) else { return };
    let store = log.open().await;
    let start = append_in_run("s", 1..=1, 1);
    let short = WriteOp::Lease { session_id: "s".into(), holder: "a/r1".into(), action: LeaseAction::Take, ttl_ms: 50 };
    store.write(vec![create("s", "e", 1), start, short]).await.unwrap();
    assert!(store.orphaned_runs(None).await.unwrap().is_empty());
    tokio::time::sleep(std::time::Duration::from_millis(120)).await;
    assert_eq!(store.orphaned_runs(None).await.unwrap(), ["s"]);
    let late = store.write(vec![lease("a", LeaseAction::Keep)]).await;
    assert!(matches!(late, Err(StoreError::Leased(_))), "{late:?}");
}

/// One request of a generated schedule.
#[derive(Debug, Clone)]
enum Step {
    Create(u8),
    Append(u8, u64, u64, bool),
    Compact(u8),
    Delete(u8),
    Rename(u8, bool),
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        (0..3u8).prop_map(Step::Create),
        (0..3u8, 0..6u64, 1..4u64, proptest::bool::weighted(0.2))
            .prop_map(|(id, first, count, stale)| Step::Append(id, first, count, stale)),
        (0..3u8).prop_map(Step::Compact),
        (0..3u8).prop_map(Step::Delete),
        (0..3u8, any::<bool>()).prop_map(|(id, named)| Step::Rename(id, named)),
    ]
}

/// A request for `step`: against `rows` (the log's heads and epochs, as a
/// reader sees them), so appends both follow and miss the head, and now and
/// then carry an epoch the session has left.
fn request(step: &Step, now: u64, rows: &std::collections::HashMap<String, (u64, String)>) -> Vec<WriteOp> {
    let id = |n: &u8| format!("s{n}");
    match step {
        Step::Create(n) => vec![create(&id(n), "e", now)],
        Step::Append(n, first, count, stale) => {
            let (head, epoch) = head_and_epoch(rows, &id(n));
            // `first` 0 or 1 (most often) follows the head; the rest miss it.
            let start = if *first <= 1 { head + 1 } else { head + *first };
            vec![append_in(if *stale { "e" } else { &epoch }, &id(n), start..=start + count - 1, now)]
        }
        Step::Compact(n) => {
            let (seq, _) = head_and_epoch(rows, &id(n));
            vec![WriteOp::Compact { session_id: id(n), epoch: format!("e{now}"), seq, snapshot: format!("{now}") }]
        }
        Step::Delete(n) => vec![WriteOp::DeleteSession { id: id(n) }],
        Step::Rename(n, named) => {
            let (head, epoch) = head_and_epoch(rows, &id(n));
            let WriteOp::Append { frames, .. } = append(&id(n), head + 1..=head + 1, now) else { unreachable!() };
            let name = named.then(|| format!("name {now}"));
            vec![WriteOp::Append {
                session_id: id(n),
                epoch,
                frames,
                name,
                open_run: None,
                cost_usd: Some(named.then_some(now as f64 / 8.0)),
                started_run: None,
                now,
            }]
        }
    }
}

/// A session's head and epoch in `rows`; 0 and `e` when it does not exist.
fn head_and_epoch(rows: &std::collections::HashMap<String, (u64, String)>, id: &str) -> (u64, String) {
    rows.get(id).cloned().unwrap_or_else(|| (0, "e".to_owned()))
}

/// What a reader sees of the whole log.
async fn everything(store: &Store) -> Vec<(SessionRow, Vec<(u64, String)>, Option<(u64, String)>)> {
    let mut seen = Vec::new();
    let mut rows = store.sessions().await.unwrap();
    rows.sort_by(|a, b| a.id.cmp(&b.id));
    for row in rows {
        let frames = store.frames_after(&row.id, 0, 1_000).await.unwrap();
        let base = store.base(&row.id).await.unwrap();
        seen.push((row, frames.into_iter().map(|(seq, body)| (seq, body.to_string())).collect(), base));
    }
    seen
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// For any schedule of creates, appends (at and off the head), renames,
    /// compactions and deletes, Redis takes and refuses exactly what SQLite
    /// does, and a reader sees the same log in both.
    #[test]
    fn redis_keeps_the_same_log_as_sqlite_for_any_schedule(steps in proptest::collection::vec(step(), 1..24)) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let logs = TestLog::both("differential");
            if logs.len() < 2 {
                return;
            }
            let stores = [logs[0].open().await, logs[1].open().await];
            for (now, step) in steps.iter().enumerate() {
                let rows =
                    stores[0].sessions().await.unwrap().into_iter().map(|row| (row.id, (row.head, row.epoch))).collect();
                let ops = request(step, now as u64 + 1, &rows);
                let sqlite = stores[0].write(ops.clone()).await;
                let redis = stores[1].write(ops).await;
                assert_eq!(sqlite.is_ok(), redis.is_ok(), "{step:?}: {sqlite:?} vs {redis:?}");
                assert_eq!(everything(&stores[0]).await, everything(&stores[1]).await, "after {step:?}");
            }
        });
    }
}
