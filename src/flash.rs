//! Flash messages: values stored for exactly one later read.
//!
//! ```
//! # async fn demo(session: sessio::Session) -> Result<(), sessio::Error> {
//! // In the POST handler:
//! session.add_flash("Registered, please log in")?;
//! session.add_flash_to("error", "Wrong username or password")?;
//! // In the next GET (reading removes them):
//! let notes: Vec<String> = session.flashes()?;
//! let errors: Vec<String> = session.flashes_from("error")?;
//! # let _ = (notes, errors);
//! # Ok(()) }
//! ```
//!
//! Flashes live in the session's data under `_flash` (default category) and
//! `_flash:<category>`, as gorilla keeps them under `_flash`; treat keys
//! starting with `_flash` as reserved. Reading removes them and marks the
//! session changed; if that response's save fails they stay in the store and
//! are shown again.
//!
//! Each category keeps at most [`MAX_FLASHES`] messages, the newest: a page
//! that adds a flash on every failed login cannot grow the session without
//! bound.

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::error::Error;
use crate::session::Session;

const DEFAULT_KEY: &str = "_flash";

/// The most flash messages kept per category (the oldest are dropped).
pub const MAX_FLASHES: usize = 32;

fn key(category: &str) -> String {
    format!("{DEFAULT_KEY}:{category}")
}

impl Session {
    /// Adds a flash message to the default category (keeping the newest
    /// [`MAX_FLASHES`]).
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when `value` cannot be serialized;
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn add_flash(&self, value: impl Serialize) -> Result<(), Error> {
        self.push_list(DEFAULT_KEY, value, MAX_FLASHES)
    }

    /// Adds a flash message to `category` (keeping the newest
    /// [`MAX_FLASHES`]).
    ///
    /// # Errors
    ///
    /// [`Error::Serialize`] when `value` cannot be serialized;
    /// [`Error::NotLoaded`] before the session is loaded.
    pub fn add_flash_to(&self, category: &str, value: impl Serialize) -> Result<(), Error> {
        self.push_list(&key(category), value, MAX_FLASHES)
    }

    /// Takes the flash messages of the default category, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when a message is not a `T` (the messages then
    /// stay in the session).
    pub fn flashes<T: DeserializeOwned>(&self) -> Result<Vec<T>, Error> {
        self.take_list(DEFAULT_KEY)
    }

    /// Takes the flash messages of `category`, oldest first.
    ///
    /// # Errors
    ///
    /// [`Error::NotLoaded`] before the session is loaded;
    /// [`Error::Deserialize`] when a message is not a `T` (the messages then
    /// stay in the session).
    pub fn flashes_from<T: DeserializeOwned>(&self, category: &str) -> Result<Vec<T>, Error> {
        self.take_list(&key(category))
    }
}
