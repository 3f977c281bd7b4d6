//! A session store written by a user: one SQLite table, a few dozen lines,
//! no cryptography (the layer signs the cookie). `tests/custom_store.rs` runs
//! sessio's conformance suite on it.
//!
//! ```sh
//! cargo run --example custom_store
//! curl -c jar -b jar localhost:3000/incr   # {"count":0}, then 1, 2, ...
//! ```
//!
//! Environment: `PORT` (default 3000), `DATABASE_URL` (the SQLite file;
//! default `sessio-sessions.sqlite3` in the temporary directory).

use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::types::Type;
use rusqlite::{params, Connection, OptionalExtension};
use sessio::store::{storage_key, Changes, Deadline, Record, Store, StoreError, Updated};
use sessio::{Error, Id};

/// Sessions in a SQLite table, keyed by a hash of the id (a leaked database
/// holds no usable session ids).
#[derive(Clone)]
pub(crate) struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
}

impl SqliteStore {
    pub(crate) fn open(path: &str) -> rusqlite::Result<Self> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS sessions (
                 key TEXT PRIMARY KEY, data TEXT NOT NULL, expires INTEGER NOT NULL);
             CREATE INDEX IF NOT EXISTS sessions_expires ON sessions (expires);",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection off the async threads.
    async fn db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection, i64) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.conn.clone();
        let run = move || {
            f(
                &conn.lock().unwrap_or_else(|e| e.into_inner()),
                millis(SystemTime::now()),
            )
        };
        tokio::task::spawn_blocking(run)
            .await
            .map_err(StoreError::backend)?
            .map_err(StoreError::backend)
    }
}

fn millis(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// The stored record under `key`, if it has not expired.
fn live(conn: &Connection, key: &str, now: i64) -> rusqlite::Result<Option<Record>> {
    let sql = "SELECT data FROM sessions WHERE key = ?1 AND expires > ?2";
    let data: Option<String> = conn
        .query_row(sql, params![key, now], |r| r.get(0))
        .optional()?;
    // A row that no longer parses is a store error (a 500), not a fresh session.
    data.map(|d| serde_json::from_str(&d))
        .transpose()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, Type::Text, Box::new(e)))
}

impl Store for SqliteStore {
    async fn create(&self, record: &Record, expires: Deadline) -> Result<String, StoreError> {
        let data = serde_json::to_string(record).map_err(StoreError::encode)?;
        self.db(move |conn, now| {
            // Expired rows go first (the table's only clean-up); then a live
            // row is never overwritten: on an id collision, try another id.
            conn.execute("DELETE FROM sessions WHERE expires <= ?1", params![now])?;
            let sql = "INSERT OR IGNORE INTO sessions (key, data, expires) VALUES (?1, ?2, ?3)";
            loop {
                let id = Id::generate();
                let key = storage_key("", id.as_str());
                if conn.execute(sql, params![key, data, millis(expires.at())])? == 1 {
                    return Ok(id.as_str().to_owned());
                }
            }
        })
        .await
    }

    async fn load(&self, value: &str) -> Result<Option<Record>, StoreError> {
        let Some(id) = Id::parse(value) else {
            return Ok(None);
        };
        self.db(move |conn, now| live(conn, &storage_key("", id.as_str()), now))
            .await
    }

    async fn update(
        &self,
        value: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        let Some(id) = Id::parse(value) else {
            return Ok(Updated::Gone);
        };
        let (record, changes) = (record.clone(), changes.clone());
        self.db(move |conn, now| {
            let key = storage_key("", id.as_str());
            // Read, apply this request's changes, write back: under the one
            // connection lock, so concurrent requests keep each other's keys.
            let Some(mut stored) = live(conn, &key, now)? else {
                return Ok(Updated::Gone);
            };
            stored.apply(&changes, &record);
            if stored.is_empty() {
                conn.execute("DELETE FROM sessions WHERE key = ?1", params![key])?;
                return Ok(Updated::Emptied);
            }
            let data = serde_json::to_string(&stored)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let sql = "UPDATE sessions SET data = ?2, expires = ?3 WHERE key = ?1";
            conn.execute(sql, params![key, data, millis(expires.at())])?;
            Ok(Updated::Written(id.as_str().to_owned()))
        })
        .await
    }

    async fn rotate(
        &self,
        old: &str,
        record: &Record,
        changes: &Changes,
        expires: Deadline,
    ) -> Result<Updated, StoreError> {
        let Some(id) = Id::parse(old) else {
            return Ok(Updated::Gone);
        };
        let (record, changes) = (record.clone(), changes.clone());
        self.db(move |conn, now| {
            // Check, delete and insert under the one connection lock: a
            // logout in between is impossible, so nothing comes back.
            let key = storage_key("", id.as_str());
            let Some(mut stored) = live(conn, &key, now)? else {
                return Ok(Updated::Gone);
            };
            conn.execute("DELETE FROM sessions WHERE key = ?1", params![key])?;
            stored.apply(&changes, &record);
            if stored.is_empty() {
                return Ok(Updated::Emptied);
            }
            let data = serde_json::to_string(&stored)
                .map_err(|e| rusqlite::Error::ToSqlConversionFailure(Box::new(e)))?;
            let sql = "INSERT OR IGNORE INTO sessions (key, data, expires) VALUES (?1, ?2, ?3)";
            loop {
                let id = Id::generate();
                let key = storage_key("", id.as_str());
                if conn.execute(sql, params![key, data, millis(expires.at())])? == 1 {
                    return Ok(Updated::Written(id.as_str().to_owned()));
                }
            }
        })
        .await
    }

    async fn touch(&self, value: &str, expires: Deadline) -> Result<bool, StoreError> {
        let Some(id) = Id::parse(value) else {
            return Ok(false);
        };
        self.db(move |conn, now| {
            let sql = "UPDATE sessions SET expires = ?2 WHERE key = ?1 AND expires > ?3";
            let key = storage_key("", id.as_str());
            Ok(conn.execute(sql, params![key, millis(expires.at()), now])? == 1)
        })
        .await
    }

    async fn delete(&self, value: &str) -> Result<(), StoreError> {
        let Some(id) = Id::parse(value) else {
            return Ok(());
        };
        self.db(move |conn, _| {
            let key = storage_key("", id.as_str());
            conn.execute("DELETE FROM sessions WHERE key = ?1", params![key])
                .map(drop)
        })
        .await
    }
}

#[allow(dead_code)] // the test includes this file for the store alone
#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    use axum::{routing::get, Json, Router};
    use sessio::{Key, Session, SessionLayer};

    async fn incr(session: Session) -> Result<Json<serde_json::Value>, Error> {
        let count: u64 = session.get("count")?.unwrap_or(0);
        session.set("count", count + 1)?;
        Ok(Json(serde_json::json!({ "count": count })))
    }

    let default_db = std::env::temp_dir().join("sessio-sessions.sqlite3");
    let path = std::env::var("DATABASE_URL").unwrap_or_else(|_| default_db.display().to_string());
    let port: u16 = std::env::var("PORT")
        .ok()
        .and_then(|p| p.parse().ok())
        .unwrap_or(3000);
    // Plain HTTP on loopback: no `Secure` flag, or curl would not send the cookie back.
    let layer = SessionLayer::builder(SqliteStore::open(&path)?, Key::generate())
        .with_secure(false)
        .build()?;
    let app = Router::new().route("/incr", get(incr)).layer(layer);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    println!("custom_store listening on http://127.0.0.1:{port}, sessions in {path}");
    axum::serve(listener, app).await?;
    Ok(())
}
