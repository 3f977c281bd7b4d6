//! The cache's own connection to Redis: RESP3, tracking on (`OPTIN`),
//! pipelined, read by the requests that use it, never by a background task.
//!
//! That is what makes "a change is seen by the next request" hold: before a
//! request answers from memory it reads, without waiting, whatever this
//! process's socket has received, and applies the invalidations in it.
//! Redis writes an invalidation to this socket in the same event-loop pass
//! in which it answers the writer, so by the time the writer has its reply
//! (and its HTTP response has gone out and a next request come in), the
//! invalidation is in this socket's receive buffer. A connection owned by a
//! task (redis-rs') would apply it only when that task next runs, which on
//! a busy or multi-threaded runtime can be after the next request.
//!
//! The socket is tokio's, but the read before a cached answer is a plain
//! `read(2)` on its file descriptor (through `socket2`, the crate tokio and
//! redis-rs already build on): it sees the bytes the kernel has even where
//! tokio's reactor has not yet been told about them, where
//! `TcpStream::try_read` would answer "would block" from tokio's readiness
//! flags without asking the kernel.

use std::collections::VecDeque;
use std::future::{poll_fn, Future};
use std::io::{self, Read};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use deadpool_redis::redis::{ConnectionAddr, ConnectionInfo, Value};
use socket2::SockRef;
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::{oneshot, Mutex, MutexGuard};

use super::resp::{self, Frame, Malformed};
use super::ClientCache;
use crate::error::{ConfigError, StoreError};
use crate::store::redis::conn::Timeouts;
use crate::store::redis::Failure;

/// Where the cache's connection goes and how it introduces itself.
pub(super) struct Link {
    addr: Addr,
    /// `HELLO 3 …`, `SELECT` (unless database 0) and `CLIENT TRACKING ON
    /// OPTIN`, sent as one write on every new connection.
    hello: Vec<u8>,
    hello_replies: usize,
    timeouts: Timeouts,
    slot: Mutex<Slot>,
}

enum Addr {
    Tcp(String, u16),
    Unix(PathBuf),
}

/// The connection, when there is one; held by one request at a time.
pub(super) struct Slot {
    conn: Option<Conn>,
    dialled: u64,
}

struct Conn {
    /// Shared with the loads waiting for a reply, which wait for the socket
    /// to become readable without holding the slot.
    socket: Arc<Socket>,
    /// Bytes read and not yet parsed: at most part of one frame between
    /// uses.
    buf: Vec<u8>,
    /// Where a read lands first; zeroed once, not on every read (a cached
    /// answer reads the socket every time, and almost always finds nothing).
    scratch: Box<[u8]>,
    generation: u64,
    /// The loads sent and not yet answered, oldest first: Redis answers in
    /// the order it was asked.
    waiting: VecDeque<Waiter>,
    /// `false` while a request is being written: a load cancelled half-way
    /// through leaves the connection out of step, and the next user drops it.
    in_step: bool,
}

/// A load waiting for its replies.
struct Waiter {
    want: usize,
    replies: Vec<Reply>,
    /// Dropped with the connection: the load then knows it is lost.
    tx: oneshot::Sender<Vec<Reply>>,
}

enum Socket {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Socket {
    /// A `read(2)` now, whatever tokio believes about readiness.
    fn read_now(&self, buf: &mut [u8]) -> io::Result<usize> {
        let sock = match self {
            Socket::Tcp(s) => SockRef::from(s),
            Socket::Unix(s) => SockRef::from(s),
        };
        (&*sock).read(buf)
    }

    async fn readable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.readable().await,
            Socket::Unix(s) => s.readable().await,
        }
    }

    fn try_read(&self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_read(buf),
            Socket::Unix(s) => s.try_read(buf),
        }
    }

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Socket::Tcp(s) => s.poll_read_ready(cx),
            Socket::Unix(s) => s.poll_read_ready(cx),
        }
    }

    async fn writable(&self) -> io::Result<()> {
        match self {
            Socket::Tcp(s) => s.writable().await,
            Socket::Unix(s) => s.writable().await,
        }
    }

    fn try_write(&self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Socket::Tcp(s) => s.try_write(buf),
            Socket::Unix(s) => s.try_write(buf),
        }
    }
}

/// Why the cache's connection failed.
#[derive(Debug, thiserror::Error)]
enum LinkError {
    #[error("redis closed the client cache's connection")]
    Closed,
    #[error("redis sent something that is not RESP3 on the client cache's connection")]
    Malformed,
    #[error("redis sent a reply nobody asked for on the client cache's connection")]
    Unasked,
    #[error("a load was cancelled half-way through writing on the client cache's connection")]
    OutOfStep,
    #[error("a load timed out on the client cache's connection")]
    TimedOut,
    #[error("the client cache's connection was dropped before its reply came")]
    Lost,
    #[error("redis refused the client cache's connection setup: {0}")]
    Refused(String),
    #[error("client cache's connection: {0}")]
    Io(#[from] io::Error),
}

impl From<Malformed> for LinkError {
    fn from(_: Malformed) -> Self {
        LinkError::Malformed
    }
}

/// An error reply to a load; value-free (Redis' messages name no values).
#[derive(Debug, thiserror::Error)]
#[error("redis error reply: {0}")]
struct ErrorReply(String);

/// A reply, or the error Redis answered instead.
type Reply = Result<Value, String>;

impl Link {
    /// The link for `info`; refuses what it cannot speak (TLS).
    pub(super) fn new(info: &ConnectionInfo, timeouts: Timeouts) -> Result<Self, ConfigError> {
        let addr = match info.addr() {
            ConnectionAddr::Tcp(host, port) => Addr::Tcp(host.clone(), *port),
            ConnectionAddr::Unix(path) => Addr::Unix(path.clone()),
            _ => {
                return Err(ConfigError::ClientCache(
                    "needs a redis:// or unix socket URL: its connection does not do TLS",
                ))
            }
        };
        let settings = info.redis_settings();
        let mut hello = Vec::new();
        let mut args: Vec<&[u8]> = vec![b"HELLO", b"3"];
        if let Some(password) = settings.password() {
            args.extend([
                &b"AUTH"[..],
                settings.username().unwrap_or("default").as_bytes(),
                password.as_bytes(),
            ]);
        }
        args.extend([&b"SETNAME"[..], b"sessio-cache"]);
        resp::command(&mut hello, &args);
        let mut hello_replies = 1;
        let db = settings.db().to_string();
        if settings.db() != 0 {
            resp::command(&mut hello, &[b"SELECT", db.as_bytes()]);
            hello_replies += 1;
        }
        resp::command(&mut hello, &[b"CLIENT", b"TRACKING", b"ON", b"OPTIN"]);
        hello_replies += 1;
        Ok(Self {
            addr,
            hello,
            hello_replies,
            timeouts,
            slot: Mutex::new(Slot {
                conn: None,
                dialled: 0,
            }),
        })
    }

    pub(super) async fn lock(&self) -> MutexGuard<'_, Slot> {
        self.slot.lock().await
    }

    /// Loads `key` (`HGETALL`, then `PTTL`) asking Redis to track it, with
    /// the generation of the connection it came over. Every push read on
    /// the way is handed to `cache` first, in order.
    ///
    /// Loads are pipelined: the request is written while holding `slot`,
    /// which is then let go; while waiting, whichever load finds the socket
    /// readable reads it for all of them, handing each its replies. A load
    /// is a read, so when a connection that was already open fails it is
    /// sent once more on a new one.
    pub(super) async fn load(
        &self,
        mut slot: MutexGuard<'_, Slot>,
        cache: &ClientCache,
        key: &str,
    ) -> Result<(Value, i64, u64), StoreError> {
        let mut request = Vec::with_capacity(64 + 2 * key.len());
        resp::command(&mut request, &[b"CLIENT", b"CACHING", b"YES"]);
        resp::command(&mut request, &[b"HGETALL", key.as_bytes()]);
        resp::command(&mut request, &[b"PTTL", key.as_bytes()]);
        let mut may_resend = true;
        loop {
            if let Some(g) = slot
                .conn
                .as_ref()
                .filter(|c| !c.in_step)
                .map(|c| c.generation)
            {
                slot.lost(g, cache, &LinkError::OutOfStep);
            }
            let reused = slot.conn.is_some();
            if !reused {
                let conn = self.dial(&mut slot, cache).await?;
                slot.conn = Some(conn);
            }
            let Some(conn) = slot.conn.as_mut() else {
                return Err(StoreError::unavailable(LinkError::Closed));
            };
            let (generation, socket) = (conn.generation, conn.socket.clone());
            conn.in_step = false;
            let written =
                tokio::time::timeout(self.timeouts.command, conn.write_all(&request)).await;
            let rx = match written {
                Ok(Ok(())) => {
                    let (tx, rx) = oneshot::channel();
                    conn.in_step = true;
                    conn.waiting.push_back(Waiter {
                        want: 3,
                        replies: Vec::with_capacity(3),
                        tx,
                    });
                    rx
                }
                Ok(Err(err)) => {
                    slot.lost(generation, cache, &err);
                    if reused && std::mem::take(&mut may_resend) {
                        continue;
                    }
                    return Err(StoreError::unavailable(err));
                }
                Err(_elapsed) => {
                    slot.lost(generation, cache, &LinkError::TimedOut);
                    return Err(StoreError::unavailable(Failure::CommandTimeout));
                }
            };
            drop(slot);
            let answered = tokio::time::timeout(
                self.timeouts.command,
                self.wait(rx, &socket, generation, cache),
            )
            .await;
            let replies = match answered {
                Ok(Some(replies)) => replies,
                // The connection was dropped before the replies came.
                Ok(None) => {
                    if reused && std::mem::take(&mut may_resend) {
                        slot = self.lock().await;
                        continue;
                    }
                    return Err(StoreError::unavailable(LinkError::Lost));
                }
                Err(_elapsed) => {
                    self.lock()
                        .await
                        .lost(generation, cache, &LinkError::TimedOut);
                    return Err(StoreError::unavailable(Failure::CommandTimeout));
                }
            };
            let mut replies = replies.into_iter();
            let (Some(caching), Some(hash), Some(pttl)) =
                (replies.next(), replies.next(), replies.next())
            else {
                return Err(StoreError::backend(Failure::UnexpectedReply));
            };
            let hash = hash.and_then(|h| caching.map(|_| h)).map_err(error_reply)?;
            let pttl = match pttl.map_err(error_reply)? {
                Value::Int(ms) => ms,
                _ => return Err(StoreError::backend(Failure::UnexpectedReply)),
            };
            return Ok((hash, pttl, generation));
        }
    }

    /// Waits for `rx`'s replies, reading the socket whenever it is readable
    /// (for every load waiting on it); `None` when the connection went.
    async fn wait(
        &self,
        mut rx: oneshot::Receiver<Vec<Reply>>,
        socket: &Socket,
        generation: u64,
        cache: &ClientCache,
    ) -> Option<Vec<Reply>> {
        loop {
            // The replies first: whoever read them may have left the socket
            // readable-looking to tokio.
            let ready = poll_fn(|cx| {
                if let Poll::Ready(replies) = Pin::new(&mut rx).poll(cx) {
                    return Poll::Ready(Err(replies.ok()));
                }
                socket.poll_read_ready(cx).map(Ok)
            })
            .await;
            let ready = match ready {
                Ok(ready) => ready,
                Err(replies) => return replies,
            };
            let mut slot = self.lock().await;
            match ready {
                Ok(()) => slot.pump(generation, cache),
                Err(err) => slot.lost(generation, cache, &err.into()),
            }
        }
    }

    async fn dial(&self, slot: &mut Slot, cache: &ClientCache) -> Result<Conn, StoreError> {
        slot.dialled += 1;
        let generation = slot.dialled;
        let dial = async {
            let socket = match &self.addr {
                Addr::Tcp(host, port) => {
                    let s = TcpStream::connect((host.as_str(), *port)).await?;
                    s.set_nodelay(true)?;
                    Socket::Tcp(s)
                }
                Addr::Unix(path) => Socket::Unix(UnixStream::connect(path).await?),
            };
            let mut conn = Conn {
                socket: Arc::new(socket),
                buf: Vec::with_capacity(4096),
                scratch: vec![0; 4096].into_boxed_slice(),
                generation,
                waiting: VecDeque::new(),
                in_step: true,
            };
            for reply in conn
                .exchange(&self.hello, self.hello_replies, cache)
                .await?
            {
                reply.map_err(LinkError::Refused)?;
            }
            Ok::<_, LinkError>(conn)
        };
        match tokio::time::timeout(self.timeouts.connect, dial).await {
            Ok(Ok(conn)) => Ok(conn),
            Ok(Err(err)) => Err(StoreError::unavailable(err)),
            Err(_elapsed) => Err(StoreError::unavailable(Failure::ConnectTimeout)),
        }
    }
}

impl Slot {
    /// Reads whatever the socket holds now, without waiting, and hands its
    /// pushes to `cache` (and replies to the loads waiting for them); the
    /// connection's generation when it is alive and nothing is left
    /// half-read (an invalidation may be on its way), else `None`: the
    /// request must not answer from memory. A connection found closed or out
    /// of step is dropped, and the cache emptied.
    pub(super) fn catch_up(&mut self, cache: &ClientCache) -> Option<u64> {
        let conn = self.conn.as_mut()?;
        let generation = conn.generation;
        if !conn.in_step {
            self.lost(generation, cache, &LinkError::OutOfStep);
            return None;
        }
        match conn.drain(cache, true) {
            Ok(()) if conn.buf.is_empty() => Some(generation),
            Ok(()) => None,
            Err(err) => {
                self.lost(generation, cache, &err);
                None
            }
        }
    }

    /// Reads what the socket holds for connection `generation`, if that is
    /// still the one: the waiting loads' turn to read.
    fn pump(&mut self, generation: u64, cache: &ClientCache) {
        let Some(conn) = self.conn.as_mut().filter(|c| c.generation == generation) else {
            return;
        };
        if let Err(err) = conn.drain(cache, false) {
            self.lost(generation, cache, &err);
        }
    }

    /// Drops connection `generation` (if it is still the one), and with it
    /// the loads waiting on it; nothing it loaded is served again.
    fn lost(&mut self, generation: u64, cache: &ClientCache, err: &LinkError) {
        if self
            .conn
            .as_ref()
            .is_some_and(|c| c.generation == generation)
        {
            tracing::debug!(error = %err, "client cache connection lost");
            self.conn = None;
            cache.flush();
        }
    }
}

impl Conn {
    /// Sends `request` and reads `n` replies, handing pushes to `cache` as
    /// they come.
    async fn exchange(
        &mut self,
        request: &[u8],
        n: usize,
        cache: &ClientCache,
    ) -> Result<Vec<Reply>, LinkError> {
        self.write_all(request).await?;
        let mut replies = Vec::with_capacity(n);
        while replies.len() < n {
            match self.next_frame()? {
                Some(Frame::Push(items)) => cache.on_push(&items),
                Some(Frame::Reply(v)) => replies.push(Ok(v)),
                Some(Frame::Error(e)) => replies.push(Err(e)),
                None => self.read_more().await?,
            }
        }
        Ok(replies)
    }

    /// Reads until the socket has nothing more, routing every whole frame:
    /// pushes to `cache`, replies to the oldest waiting load. `now`: a plain
    /// `read(2)` (see the module docs), else tokio's, which also tells
    /// tokio the socket is drained.
    fn drain(&mut self, cache: &ClientCache, now: bool) -> Result<(), LinkError> {
        loop {
            while let Some(frame) = self.next_frame()? {
                let reply = match frame {
                    Frame::Push(items) => {
                        cache.on_push(&items);
                        continue;
                    }
                    Frame::Reply(v) => Ok(v),
                    Frame::Error(e) => Err(e),
                };
                let waiter = self.waiting.front_mut().ok_or(LinkError::Unasked)?;
                waiter.replies.push(reply);
                if waiter.replies.len() == waiter.want {
                    if let Some(done) = self.waiting.pop_front() {
                        // A load that gave up (cancelled) no longer listens.
                        let _ = done.tx.send(done.replies);
                    }
                }
            }
            let read = if now {
                self.socket.read_now(&mut self.scratch)
            } else {
                self.socket.try_read(&mut self.scratch)
            };
            match read {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => self.buf.extend_from_slice(&self.scratch[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    fn next_frame(&mut self) -> Result<Option<Frame>, LinkError> {
        match resp::parse(&self.buf)? {
            Some((frame, used)) => {
                self.buf.drain(..used);
                Ok(Some(frame))
            }
            None => Ok(None),
        }
    }

    /// Waits until the socket has more, and reads it.
    async fn read_more(&mut self) -> Result<(), LinkError> {
        loop {
            self.socket.readable().await?;
            match self.socket.try_read(&mut self.scratch) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => {
                    self.buf.extend_from_slice(&self.scratch[..n]);
                    return Ok(());
                }
                Err(e) if try_again(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }

    async fn write_all(&mut self, mut bytes: &[u8]) -> Result<(), LinkError> {
        while !bytes.is_empty() {
            self.socket.writable().await?;
            match self.socket.try_write(bytes) {
                Ok(0) => return Err(LinkError::Closed),
                Ok(n) => bytes = &bytes[n..],
                Err(e) if try_again(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// An error after which the socket is tried again: not ready after all, or
/// a signal.
fn try_again(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
    )
}

/// An error reply to a load, classified as the store's other commands are:
/// a Redis that is loading, busy or failing over is unavailable (503).
fn error_reply(message: String) -> StoreError {
    let code = message.split(' ').next().unwrap_or("");
    let transient = matches!(
        code,
        "LOADING" | "BUSY" | "TRYAGAIN" | "MASTERDOWN" | "CLUSTERDOWN"
    );
    if transient {
        StoreError::unavailable(ErrorReply(message))
    } else {
        StoreError::backend(ErrorReply(message))
    }
}
