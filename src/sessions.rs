//! [`Sessions`]: every named session of a request.

use std::sync::Arc;

use crate::error::Error;
use crate::session::Session;

/// All sessions the layers put in this request, in order: each layer's names
/// in the order given, outer layers first. An axum extractor, and a request
/// extension for plain tower services.
///
/// ```
/// # async fn demo(sessions: sessio::Sessions) -> Result<(), sessio::Error> {
/// let cart = sessions.get("cart").await?;
/// let auth = sessions.get("auth").await?;
/// cart.set("items", vec!["apple"])?;
/// let user: Option<String> = auth.get("user")?;
/// # let _ = user;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct Sessions {
    // Shared with the layer's response future: one allocation per request.
    list: Arc<[Session]>,
}

impl Sessions {
    pub(crate) fn new(list: Arc<[Session]>) -> Self {
        Self { list }
    }

    /// Appends the sessions of an inner layer.
    pub(crate) fn extend(&mut self, more: &[Session]) {
        self.list = self.list.iter().chain(more).cloned().collect();
    }

    /// The session with this cookie name, loaded (gin's `DefaultMany`).
    ///
    /// # Errors
    ///
    /// [`Error::UnknownSession`] when no layer has a session of that name;
    /// the store's error when loading fails.
    pub async fn get(&self, name: &str) -> Result<Session, Error> {
        let session = self
            .find(name)
            .ok_or_else(|| Error::UnknownSession(name.to_owned()))?
            .clone();
        session.load().await?;
        Ok(session)
    }

    /// The session with this cookie name, without loading it.
    pub fn find(&self, name: &str) -> Option<&Session> {
        self.list.iter().find(|s| s.name() == name)
    }

    /// Every session, unloaded.
    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.list.iter()
    }
}
