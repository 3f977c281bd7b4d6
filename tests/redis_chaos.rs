//! RedisStore under load while Redis fails: killed and restarted, frozen for
//! longer than the command timeout, its connections cut, out of memory
//! (SECURITY F29, F31, G32-G34).
//!
//! Each test drives an axum app with `SessionLayer<RedisStore>` in-process
//! from [`CLIENTS`] concurrent tasks. Every client owns one session holding
//! its own marker (`owner`) and counter (`n`), and checks every reply:
//! - the status is 200 or 503, nothing else, and no request takes longer
//!   than [`BOUND`];
//! - a 503 has an empty body and no `Set-Cookie`;
//! - a 200 shows the client's own marker and a counter that never goes back
//!   and never skips ahead, except by a write the client was not told about
//!   (see [`Client::observe`]);
//! - once the fault is lifted, requests succeed again within [`RECOVERY`],
//!   with the same app, pool and sessions.
//!
//! At the end each session's counter, read straight from Redis, must equal
//! the 200s its client got from `/incr`, plus the writes that timed out but
//! were applied by Redis anyway (a 503 on a save means "not known"; the
//! count of those is bounded by the saves that failed, and is zero where
//! Redis refuses writes outright, as when out of memory).

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::extract::Query;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use common::redis::RedisServer;
use common::{call, key, Reply};
use sessio::store::deadpool_redis::redis::{self, AsyncCommands};
use sessio::{RedisStore, Session, SessionLayer};
use tokio::task::JoinSet;

/// Concurrent clients, each with its own session; more than the pool holds.
const CLIENTS: usize = 12;
const POOL_SIZE: usize = 4;
const CONNECT_TIMEOUT: Duration = Duration::from_millis(300);
const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// The slowest a request can be by design: a load and a save, each waiting up
/// to the connect timeout for a connection and the command timeout for the
/// reply.
const WORST: Duration = CONNECT_TIMEOUT
    .saturating_add(COMMAND_TIMEOUT)
    .saturating_mul(2);
/// What the tests assert: the worst case plus 1 s of slack for a loaded
/// 2-core machine (late timers, descheduled threads). A bound, not a
/// benchmark: a request that hangs on a dead Redis blows far past it.
const BOUND: Duration = WORST.saturating_add(Duration::from_secs(1));
/// How long a fault lasts: over three times the command timeout.
const FAULT: Duration = Duration::from_millis(1000);
/// After the fault is lifted, each client must have a 200 within this
/// window, retrying (every [`BACKOFF`]) on 503.
const RECOVERY: Duration = Duration::from_secs(5);
/// A client's pause after a 503 before it tries again.
const BACKOFF: Duration = Duration::from_millis(20);
/// Requests each client makes after its first success once the fault is
/// lifted; all of them must succeed.
const AFTER_RECOVERY: usize = 5;
const PREFIX: &str = "chaos:";

/// One chaos test at a time: they share two cores, and each has its own
/// redis-server and load.
fn exclusive<F: std::future::Future<Output = ()>>(test: F) {
    static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());
    let _turn = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(test);
}

/// Times `/incr`'s handler ran for each client (found by its marker): a 503
/// that ran the handler failed in the save, and may have been written.
type HandlerRuns = Arc<Vec<AtomicU64>>;

fn owner(i: usize) -> String {
    format!("client-{i:02}")
}

fn client_index(owner: &str) -> usize {
    owner
        .strip_prefix("client-")
        .and_then(|i| i.parse().ok())
        .expect("a client marker")
}

/// `/start?owner=`: a new session with the marker and a zero counter;
/// `/incr`: reads both, counts, answers `owner n` (n as read);
/// `/peek`: the same, without writing.
fn chaos_app(store: RedisStore, runs: HandlerRuns) -> Router {
    async fn read(s: &Session) -> Result<(String, u64), (StatusCode, &'static str)> {
        // A session without its marker was lost: say so, write nothing.
        let owner: String = s
            .get("owner")
            .unwrap()
            .ok_or((StatusCode::CONFLICT, "session lost"))?;
        Ok((owner, s.get("n").unwrap().unwrap_or(0)))
    }
    Router::new()
        .route(
            "/start",
            get(
                |s: Session, Query(q): Query<BTreeMap<String, String>>| async move {
                    s.set("owner", &q["owner"]).unwrap();
                    s.set("n", 0).unwrap();
                    "started"
                },
            ),
        )
        .route(
            "/incr",
            get(move |s: Session| {
                let runs = runs.clone();
                async move {
                    let (owner, n) = read(&s).await?;
                    runs[client_index(&owner)].fetch_add(1, Ordering::SeqCst);
                    s.set("n", n + 1).unwrap();
                    Ok::<_, (StatusCode, &'static str)>(format!("{owner} {n}"))
                }
            }),
        )
        .route(
            "/peek",
            get(|s: Session| async move {
                let (owner, n) = read(&s).await?;
                Ok::<_, (StatusCode, &'static str)>(format!("{owner} {n}"))
            }),
        )
        .layer(SessionLayer::new(store, key()))
}

/// The app, its Redis and the shared bookkeeping of one test.
struct Rig {
    redis: RedisServer,
    app: Router,
    runs: HandlerRuns,
}

impl Rig {
    fn start(redis: RedisServer) -> Self {
        let store = RedisStore::builder()
            .with_prefix(PREFIX)
            .with_pool_size(POOL_SIZE)
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_command_timeout(COMMAND_TIMEOUT)
            .connect(&redis.url())
            .expect("store");
        let runs: HandlerRuns = Arc::new((0..CLIENTS).map(|_| AtomicU64::new(0)).collect());
        Self {
            app: chaos_app(store, runs.clone()),
            redis,
            runs,
        }
    }

    /// One session per client, made while Redis is healthy.
    async fn clients(&self) -> Vec<Client> {
        let mut clients = Vec::new();
        for i in 0..CLIENTS {
            let r = call(&self.app, &format!("/start?owner={}", owner(i)), None).await;
            assert_eq!(r.status, StatusCode::OK, "start {i}");
            clients.push(Client::new(
                i,
                r.cookie("__Host-id").expect("a session cookie"),
            ));
        }
        clients
    }

    /// Starts the clients, lets them warm up, and marks the fault as
    /// begun: the caller injects it, then lifts it with [`Load::lift`].
    async fn load(&self) -> Load {
        let phase = Arc::new(Phase::default());
        let mut tasks = JoinSet::new();
        for client in self.clients().await {
            let (app, runs, phase) = (self.app.clone(), self.runs.clone(), phase.clone());
            tasks.spawn(client.drive(app, runs, phase));
        }
        // Warm: everyone has a few 200s before the fault.
        tokio::time::sleep(Duration::from_millis(300)).await;
        phase.faulted.store(true, Ordering::SeqCst);
        Load { tasks, phase }
    }

    /// Every session's counter as Redis holds it, by marker.
    async fn stored(&self) -> BTreeMap<String, u64> {
        let mut raw = self.redis.raw().await;
        let keys: Vec<String> = raw.keys(format!("{PREFIX}*")).await.expect("KEYS");
        let mut counters = BTreeMap::new();
        for key in keys {
            let fields: BTreeMap<String, String> = raw.hgetall(&key).await.expect("HGETALL");
            let owner: String = serde_json::from_str(&fields["owner"]).expect("owner");
            let n: u64 = serde_json::from_str(&fields["n"]).expect("n");
            // SECURITY F29: one record per client; never two sessions merged.
            assert!(
                counters.insert(owner.clone(), n).is_none(),
                "two records carry {owner}"
            );
        }
        counters
    }

    /// The checks every fault shares; returns the totals for fault-specific
    /// ones.
    async fn check(&self, fault: &str, clients: &[Client]) -> Totals {
        let mut totals = Totals::default();
        let mut problems = Vec::new();
        let stored = self.stored().await;
        assert_eq!(stored.len(), CLIENTS, "{fault}: sessions in Redis");
        for c in clients {
            problems.extend(c.problems.iter().map(|p| format!("{}: {p}", c.owner)));
            if c.recovered_after.is_none() {
                problems.push(format!("{}: no success within {RECOVERY:?}", c.owner));
            }
            // SECURITY F29: no write lost or applied twice. The counter is
            // the confirmed increments plus those that timed out yet landed
            // (seen in later replies), and no more than the unconfirmed ones.
            let n = stored[&c.owner];
            if n != c.known || c.pending != 0 || n != c.ok + c.landed || c.landed > c.unconfirmed {
                problems.push(format!(
                    "{}: counter {n} in Redis, {} confirmed, {} landed of {} unconfirmed, \
                     last seen {} (+{} pending)",
                    c.owner, c.ok, c.landed, c.unconfirmed, c.known, c.pending
                ));
            }
            totals.add(c);
        }
        eprintln!("{fault}: {totals:?}");
        assert!(
            problems.is_empty(),
            "{fault}: {} problem(s):\n{}",
            problems.len(),
            problems.join("\n")
        );
        totals
    }
}

/// The clients at work.
struct Load {
    tasks: JoinSet<Client>,
    phase: Arc<Phase>,
}

impl Load {
    /// The fault is over: clients go on until each has recovered (or the
    /// window closed); returns them.
    async fn lift(mut self) -> Vec<Client> {
        self.phase
            .lifted
            .set(Instant::now())
            .expect("lifted only once");
        let mut clients = Vec::new();
        while let Some(done) = self.tasks.join_next().await {
            // SECURITY G32: no panic anywhere in the app under a failing store.
            clients.push(done.expect("a client task panicked"));
        }
        clients.sort_by_key(|c| c.index);
        clients
    }
}

/// Where the test is; clients read it.
#[derive(Default)]
struct Phase {
    faulted: AtomicBool,
    lifted: OnceLock<Instant>,
}

/// One simulated user: its session, what it was told, what went wrong.
struct Client {
    index: usize,
    owner: String,
    cookie: String,
    /// 200s from `/incr`.
    ok: u64,
    /// The counter as last seen in a 200 (after that request's write).
    known: u64,
    /// Failed requests since then that ran the handler: their save may or may
    /// not have landed.
    pending: u64,
    /// All such requests.
    unconfirmed: u64,
    /// How many of them turned out to have landed.
    landed: u64,
    /// Replies by path and status.
    statuses: BTreeMap<(&'static str, u16), u64>,
    slowest: Duration,
    /// From the lift of the fault to this client's first 200 after it.
    recovered_after: Option<Duration>,
    problems: Vec<String>,
}

impl Client {
    fn new(index: usize, cookie: String) -> Self {
        Self {
            index,
            owner: owner(index),
            cookie,
            ok: 0,
            known: 0,
            pending: 0,
            unconfirmed: 0,
            landed: 0,
            statuses: BTreeMap::new(),
            slowest: Duration::ZERO,
            recovered_after: None,
            problems: Vec::new(),
        }
    }

    /// Requests until RECOVERY after the lift, or AFTER_RECOVERY successes
    /// after recovering. One in four is a read-only `/peek`.
    async fn drive(mut self, app: Router, runs: HandlerRuns, phase: Arc<Phase>) -> Self {
        let mut successes_since_lift = 0;
        for turn in 0u64.. {
            if let Some(lifted) = phase.lifted.get() {
                if successes_since_lift > AFTER_RECOVERY || lifted.elapsed() > RECOVERY {
                    break;
                }
            }
            // Bounded even if the lift never comes.
            if turn > 100_000 {
                self.problems.push("too many requests".into());
                break;
            }
            let path = if turn % 4 == 3 { "/peek" } else { "/incr" };
            let lifted_before = phase.lifted.get().copied();
            let runs_before = runs[self.index].load(Ordering::SeqCst);
            let start = Instant::now();
            let r = call(&app, path, Some(&self.cookie)).await;
            let took = start.elapsed();
            let ran = runs[self.index].load(Ordering::SeqCst) > runs_before;
            self.slowest = self.slowest.max(took);
            *self.statuses.entry((path, r.status.as_u16())).or_default() += 1;
            // SECURITY G34: bounded latency whatever Redis does.
            if took > BOUND {
                self.problems
                    .push(format!("{path} took {took:?}, over {BOUND:?}"));
            }
            let success = self.reply(path, &r, ran);
            if success && !phase.faulted.load(Ordering::SeqCst) {
                continue;
            }
            match (success, lifted_before) {
                (true, Some(lifted)) => {
                    self.recovered_after.get_or_insert_with(|| lifted.elapsed());
                    successes_since_lift += 1;
                }
                (true, None) => {}
                (false, Some(_)) if self.recovered_after.is_some() => {
                    self.problems
                        .push(format!("{path}: {} after recovering", r.status));
                }
                (false, _) => tokio::time::sleep(BACKOFF).await,
            }
        }
        self
    }

    /// Checks one reply; `true` for a 200.
    fn reply(&mut self, path: &str, r: &Reply, ran: bool) -> bool {
        match r.status {
            StatusCode::OK => {
                let Some((who, n)) = r.body.split_once(' ') else {
                    self.problems.push(format!("{path}: body {:?}", r.body));
                    return true;
                };
                // SECURITY F31: never another client's data, even after
                // connections were cut mid-command.
                if who != self.owner {
                    self.problems
                        .push(format!("{path}: saw {who:?}'s session, not its own"));
                }
                let n: u64 = n.parse().expect("a counter");
                self.observe(path, n);
                if path == "/incr" {
                    self.ok += 1;
                    self.known = n + 1;
                }
                if let Some(c) = r.cookie("__Host-id") {
                    self.cookie = c;
                }
                true
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                // SECURITY G32 / G33: an opaque 503; no cookie for anything
                // that was not stored, and nothing of the handler's reply.
                if r.cookie("__Host-id").is_some() {
                    self.problems.push(format!("{path}: Set-Cookie on a 503"));
                }
                if !r.body.is_empty() {
                    self.problems
                        .push(format!("{path}: 503 with body {:?}", r.body));
                }
                if ran {
                    self.pending += 1;
                    self.unconfirmed += 1;
                }
                false
            }
            other => {
                self.problems
                    .push(format!("{path}: status {other}, body {:?}", r.body));
                false
            }
        }
    }

    /// A 200 read `n`. It must be what the client last saw, or more by no
    /// more than the saves it was not told about (pending); more means they
    /// landed after all.
    fn observe(&mut self, path: &str, n: u64) {
        if n < self.known {
            self.problems.push(format!(
                "{path}: read {n} after {}: a write was lost",
                self.known
            ));
        } else if n > self.known + self.pending {
            self.problems.push(format!(
                "{path}: read {n} after {} with {} unconfirmed: a write applied twice \
                 or another's",
                self.known, self.pending
            ));
        } else {
            self.landed += n - self.known;
        }
        self.known = n;
        self.pending = 0;
    }
}

#[derive(Debug, Default)]
#[allow(dead_code)] // read through Debug
struct Totals {
    statuses: BTreeMap<(&'static str, u16), u64>,
    confirmed: u64,
    unconfirmed: u64,
    landed: u64,
    slowest: Duration,
    slowest_recovery: Duration,
}

impl Totals {
    fn add(&mut self, c: &Client) {
        for (status, n) in &c.statuses {
            *self.statuses.entry(*status).or_default() += n;
        }
        self.confirmed += c.ok;
        self.unconfirmed += c.unconfirmed;
        self.landed += c.landed;
        self.slowest = self.slowest.max(c.slowest);
        self.slowest_recovery = self
            .slowest_recovery
            .max(c.recovered_after.unwrap_or_default());
    }

    fn count(&self, path: &str, status: u16) -> u64 {
        self.statuses
            .iter()
            .filter(|((p, s), _)| *p == path && *s == status)
            .map(|(_, n)| n)
            .sum()
    }

    fn unavailable(&self) -> u64 {
        self.count("/incr", 503) + self.count("/peek", 503)
    }
}

// SECURITY G34 / G32: Redis killed under load (connections reset, new ones
// refused), then started again on its port with its data (append-only file,
// fsync always, so every acknowledged write survives the kill). A failed load
// is a 503, never an empty session (`/incr` would answer 409).
#[test]
fn redis_killed_and_restarted_under_load() {
    exclusive(async {
        let redis = RedisServer::start_with(|_| {
            ["--appendonly", "yes", "--appendfsync", "always"]
                .map(String::from)
                .to_vec()
        });
        let mut rig = Rig::start(redis);
        let load = rig.load().await;
        rig.redis.kill();
        tokio::time::sleep(FAULT).await;
        rig.redis.restart();
        let clients = load.lift().await;

        let totals = rig.check("kill", &clients).await;
        assert!(
            totals.unavailable() > 0,
            "no request noticed Redis was gone"
        );
    });
}

// SECURITY G34 / F31: Redis frozen (SIGSTOP) for over three command timeouts:
// connections stay open and nothing answers. A command sent just before the
// freeze still runs when Redis thaws, after its request has given up with a
// 503: such writes may land, and the counters account for them.
#[test]
fn redis_frozen_longer_than_the_command_timeout() {
    exclusive(async {
        let rig = Rig::start(RedisServer::start());
        let load = rig.load().await;
        rig.redis.pause();
        tokio::time::sleep(FAULT).await;
        rig.redis.resume();
        let clients = load.lift().await;

        let totals = rig.check("freeze", &clients).await;
        assert!(totals.unavailable() > 0, "no request noticed the freeze");
        assert!(
            totals.slowest >= CONNECT_TIMEOUT.min(COMMAND_TIMEOUT),
            "nothing waited for a timeout: was Redis frozen?"
        );
    });
}

// SECURITY F31 / G34: every client connection cut (`CLIENT KILL TYPE normal`)
// again and again while requests flow, some mid-command: those requests get a
// 503, their connections never go back to the pool, no reply reaches another
// request.
#[test]
fn redis_connections_killed_while_requests_flow() {
    exclusive(async {
        let rig = Rig::start(RedisServer::start());
        let mut admin = rig.redis.raw().await;
        let load = rig.load().await;
        let rounds = 20;
        let mut killed = 0;
        for _ in 0..rounds {
            let n: u64 = redis::cmd("CLIENT")
                .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
                .query_async(&mut admin)
                .await
                .expect("CLIENT KILL");
            killed += n;
            tokio::time::sleep(FAULT / rounds).await;
        }
        let clients = load.lift().await;

        let totals = rig.check("client kill", &clients).await;
        eprintln!("client kill: {killed} connections cut");
        assert!(killed > 0, "no connection was cut");
        assert!(totals.unavailable() > 0, "no request noticed a cut");
    });
}

// SECURITY G33: Redis out of memory with `noeviction`: it refuses every
// write (`OOM command not allowed`) but still reads. Sessions read fine, every
// save is refused whole, answered with 503 (the store maps OOM to
// unavailable: Redis is up but cannot take writes for now, as with a
// read-only replica), and no cookie is sent for a session that was not
// stored. Nothing is written, so every counter matches the 200s exactly.
#[test]
fn redis_out_of_memory_refuses_writes_with_503() {
    exclusive(async {
        let rig = Rig::start(RedisServer::start());
        let mut admin = rig.redis.raw().await;
        let load = rig.load().await;
        fill_memory(&mut admin).await;
        // A new session cannot be stored: 503, and no cookie for it.
        let r = call(&rig.app, "/start?owner=client-00", None).await;
        assert_eq!(r.status, StatusCode::SERVICE_UNAVAILABLE, "create when OOM");
        assert!(
            r.cookie("__Host-id").is_none(),
            "Set-Cookie for a session not stored"
        );
        tokio::time::sleep(FAULT).await;
        free_memory(&mut admin).await;
        let clients = load.lift().await;

        let totals = rig.check("out of memory", &clients).await;
        assert!(totals.count("/incr", 503) > 0, "no write was refused");
        assert_eq!(totals.count("/peek", 503), 0, "a read was refused");
        assert_eq!(totals.landed, 0, "a refused write landed");
    });
}

/// Caps Redis just above what it uses, with `noeviction`, and fills it until
/// it refuses a write. A refused write frees its own buffer, leaving room for
/// small writes, so the cap then goes a little below what Redis uses: out of
/// memory for as long as the test wants it.
async fn fill_memory(admin: &mut redis::aio::MultiplexedConnection) {
    let _: () = redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory-policy", "noeviction"])
        .query_async(&mut *admin)
        .await
        .expect("CONFIG SET");
    let used = used_memory(admin).await;
    set_maxmemory(admin, used + (1 << 20)).await;
    let filler = vec![b'x'; 64 << 10];
    for i in 0..1000 {
        let set: redis::RedisResult<()> = admin.set(format!("filler:{i}"), &filler).await;
        match set {
            Ok(()) => continue,
            Err(e) if e.code() == Some("OOM") => {
                let used = used_memory(admin).await;
                set_maxmemory(admin, used - (256 << 10)).await;
                return;
            }
            Err(e) => panic!("filling Redis: {e}"),
        }
    }
    panic!("Redis never ran out of memory");
}

async fn used_memory(admin: &mut redis::aio::MultiplexedConnection) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("memory")
        .query_async(admin)
        .await
        .expect("INFO");
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .expect("used_memory")
}

async fn set_maxmemory(admin: &mut redis::aio::MultiplexedConnection, bytes: u64) {
    let _: () = redis::cmd("CONFIG")
        .arg("SET")
        .arg("maxmemory")
        .arg(bytes)
        .query_async(admin)
        .await
        .expect("CONFIG SET maxmemory");
}

async fn free_memory(admin: &mut redis::aio::MultiplexedConnection) {
    set_maxmemory(admin, 0).await;
    let keys: Vec<String> = admin.keys("filler:*").await.expect("KEYS");
    let _: () = admin.del(keys).await.expect("DEL");
}
