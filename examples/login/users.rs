//! Users in SQLite, passwords hashed with Argon2id.

use std::error::Error as StdError;
use std::path::Path;
use std::sync::{Arc, Mutex};

use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rusqlite::{params, Connection, ErrorCode, OptionalExtension};

pub(crate) type BoxError = Box<dyn StdError + Send + Sync>;

/// Why a registration was refused; the text is shown to the user.
#[derive(Debug)]
pub(crate) enum RegisterError {
    Invalid(&'static str),
    Taken,
    Failed(BoxError),
}

/// What a password change did; the text of a refusal is shown to the user.
#[derive(Debug)]
pub(crate) enum PasswordChange {
    Changed,
    WrongPassword,
    Invalid(&'static str),
}

/// The user table. Clones share one connection.
#[derive(Clone)]
pub(crate) struct Users {
    conn: Arc<Mutex<Connection>>,
    /// A hash to check against when the user does not exist, so a wrong
    /// username takes as long as a wrong password (no user enumeration by
    /// timing).
    decoy: Arc<str>,
}

impl Users {
    /// Opens (or creates) the database file and the table; `:memory:` is a
    /// private in-memory database.
    pub(crate) fn open(path: &Path) -> Result<Self, BoxError> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS users (
                 id            INTEGER PRIMARY KEY,
                 username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
                 password_hash TEXT NOT NULL,
                 created_at    TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
             )",
        )?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
            decoy: hash("not a real password")?.into(),
        })
    }

    /// Adds a user, hashing the password off the async threads.
    pub(crate) async fn register(
        &self,
        username: &str,
        password: &str,
    ) -> Result<(), RegisterError> {
        check_username(username).map_err(RegisterError::Invalid)?;
        check_password(password).map_err(RegisterError::Invalid)?;
        let (conn, username, password) =
            (self.conn.clone(), username.to_owned(), password.to_owned());
        blocking(move || {
            let hashed = hash(&password)?;
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            conn.execute(
                "INSERT INTO users (username, password_hash) VALUES (?1, ?2)",
                params![username, hashed],
            )?;
            Ok(())
        })
        .await
        .map_err(|err| match err.downcast_ref::<rusqlite::Error>() {
            Some(e) if e.sqlite_error_code() == Some(ErrorCode::ConstraintViolation) => {
                RegisterError::Taken
            }
            _ => RegisterError::Failed(err),
        })
    }

    /// The username as registered when the password is right, else `None`.
    pub(crate) async fn verify(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<String>, BoxError> {
        if username.len() > MAX_USERNAME || password.len() > MAX_PASSWORD {
            return Ok(None);
        }
        let (conn, decoy) = (self.conn.clone(), self.decoy.clone());
        let (username, password) = (username.to_owned(), password.to_owned());
        blocking(move || {
            let row: Option<(String, String)> = {
                let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
                conn.query_row(
                    "SELECT username, password_hash FROM users WHERE username = ?1",
                    params![username],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?
            };
            let (name, stored) = match &row {
                Some((name, stored)) => (Some(name), stored.as_str()),
                None => (None, &*decoy),
            };
            let ok = matches(&password, stored)?;
            Ok(name.filter(|_| ok).cloned())
        })
        .await
    }

    /// Replaces `username`'s password hash when `current` is right.
    pub(crate) async fn change_password(
        &self,
        username: &str,
        current: &str,
        new: &str,
    ) -> Result<PasswordChange, BoxError> {
        if let Err(why) = check_password(new) {
            return Ok(PasswordChange::Invalid(why));
        }
        if self.verify(username, current).await?.is_none() {
            return Ok(PasswordChange::WrongPassword);
        }
        let (conn, username, new) = (self.conn.clone(), username.to_owned(), new.to_owned());
        blocking(move || {
            let hashed = hash(&new)?;
            let conn = conn.lock().unwrap_or_else(|e| e.into_inner());
            let changed = conn.execute(
                "UPDATE users SET password_hash = ?2 WHERE username = ?1",
                params![username, hashed],
            )?;
            Ok(if changed == 1 {
                PasswordChange::Changed
            } else {
                // Deleted meanwhile: nothing to change, and no password works.
                PasswordChange::WrongPassword
            })
        })
        .await
    }
}

const MAX_USERNAME: usize = 32;
const MAX_PASSWORD: usize = 256;

fn check_username(name: &str) -> Result<(), &'static str> {
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if !(3..=MAX_USERNAME).contains(&name.len()) || !ok_chars {
        return Err("Usernames are 3 to 32 letters, digits, dots, dashes or underscores");
    }
    Ok(())
}

fn check_password(password: &str) -> Result<(), &'static str> {
    if password.chars().count() < 8 {
        return Err("Passwords need at least 8 characters");
    }
    if password.len() > MAX_PASSWORD {
        return Err("Passwords are at most 256 bytes");
    }
    Ok(())
}

/// Argon2id with the crate's default (OWASP-recommended) parameters.
fn hash(password: &str) -> Result<String, BoxError> {
    let salt = SaltString::generate(&mut OsRng);
    Ok(Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| e.to_string())?
        .to_string())
}

fn matches(password: &str, stored: &str) -> Result<bool, BoxError> {
    let parsed = PasswordHash::new(stored).map_err(|e| e.to_string())?;
    Ok(Argon2::default()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok())
}

/// Runs hashing and SQLite off the async worker threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, BoxError> + Send + 'static,
) -> Result<T, BoxError> {
    tokio::task::spawn_blocking(f).await?
}
