//! The store conformance suite: one set of scenarios every store must pass.
//!
//! The built-in stores run it in their tests; run it on yours:
//!
//! ```
//! use sessio::test_util::Suite;
//! use sessio::MemoryStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() {
//! // In a #[tokio::test]:
//! let report = Suite::new(MemoryStore::new()).run().await;
//! assert!(report.passed() >= 10);
//! # }
//! ```
//!
//! Each scenario panics with its name and what went wrong. Scenarios that
//! need a server-side record (revocation, concurrent updates, TTLs kept by the
//! store) are skipped for a client-side store declared with
//! [`Suite::with_client_side`]. One scenario waits about two seconds for a real TTL
//! to run out, so stores with their own clocks (Redis) are checked too.

use crate::store::{Changes, Store};

/// A change set as a request would hand it to [`Store::update`], for a
/// custom store's own tests: `cleared` first (when true), then the keys
/// `set`, then the keys `removed`.
///
/// ```
/// let c = sessio::test_util::changes(&["cart"], &["flash"], false);
/// assert_eq!(c.set().collect::<Vec<_>>(), vec!["cart"]);
/// assert_eq!(c.removed().collect::<Vec<_>>(), vec!["flash"]);
/// assert!(!c.cleared());
/// ```
pub fn changes(set: &[&str], removed: &[&str], cleared: bool) -> Changes {
    let mut c = Changes::default();
    if cleared {
        c.record_clear();
    }
    for k in set {
        c.record_set(k);
    }
    for k in removed {
        c.record_remove(k);
    }
    c
}

mod layer;
mod store;
mod users;

use layer::*;
use store::*;

use crate::store::UserIndex;

/// The conformance suite for one store.
#[derive(Debug)]
pub struct Suite<St> {
    store: St,
    server_side: bool,
}

/// What a run did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    passed: Vec<&'static str>,
    skipped: Vec<&'static str>,
}

impl Report {
    /// Number of scenarios that ran and passed.
    pub fn passed(&self) -> usize {
        self.passed.len()
    }

    /// Names of the scenarios skipped for a client-side store.
    pub fn skipped(&self) -> &[&'static str] {
        &self.skipped
    }
}

impl<St: Store + Clone> Suite<St> {
    /// The suite for a server-side store (every scenario runs).
    pub fn new(store: St) -> Self {
        Self {
            store,
            server_side: true,
        }
    }

    /// Declares a store that keeps sessions in the cookie itself: scenarios
    /// that need a server-side record are skipped and listed in the report.
    /// Default: a server-side store, every scenario runs.
    #[must_use]
    pub fn with_client_side(mut self) -> Self {
        self.server_side = false;
        self
    }

    /// Runs every scenario, panicking at the first failure.
    pub async fn run(self) -> Report {
        let mut report = Report::default();
        macro_rules! scenario {
            ($name:ident, server_side) => {
                if self.server_side {
                    $name(&self.store).await;
                    report.passed.push(stringify!($name));
                } else {
                    report.skipped.push(stringify!($name));
                }
            };
            ($name:ident) => {
                $name(&self.store).await;
                report.passed.push(stringify!($name));
            };
        }
        scenario!(create_then_load_round_trips);
        scenario!(load_of_unknown_values_is_none);
        scenario!(update_applies_changes);
        scenario!(update_with_clear_replaces_everything);
        scenario!(create_never_reuses_a_value, server_side);
        scenario!(delete_removes_and_tolerates_missing, server_side);
        scenario!(update_never_resurrects_a_deleted_record, server_side);
        scenario!(touch_of_missing_record_is_false, server_side);
        scenario!(
            concurrent_changes_to_different_keys_both_survive,
            server_side
        );
        scenario!(ttl_is_kept_by_the_store, server_side);
        scenario!(update_deletes_only_a_merged_empty_record, server_side);
        scenario!(rotate_moves_the_record, server_side);
        scenario!(rotate_never_resurrects, server_side);
        scenario!(deleted_ids_are_not_reused, server_side);
        scenario!(values_and_odd_keys_round_trip);
        scenario!(layer_counter_counts);
        scenario!(layer_untouched_and_read_only_write_nothing);
        layer_flashes_are_delivered_once(&self.store, self.server_side).await;
        report.passed.push("layer_flashes_are_delivered_once");
        scenario!(layer_clear_removes_cookie);
        scenario!(layer_destroy_revokes_old_cookie, server_side);
        scenario!(
            layer_cycle_id_keeps_data_and_revokes_old_cookie,
            server_side
        );
        report
    }
}

impl<St: UserIndex + Clone> Suite<St> {
    /// Runs the scenarios of the per-user index contract
    /// ([`UserIndex`]), panicking at the first failure: bound records listed
    /// under their user only, kept listed across a rotation, moved by a change
    /// of binding, unlisted when deleted or expired (one scenario waits about
    /// two seconds), `end_session` refusing another user's session, and an
    /// "end all" racing a `cycle_id` leaving no session behind.
    ///
    /// ```
    /// use sessio::test_util::Suite;
    /// use sessio::MemoryStore;
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let report = Suite::new(MemoryStore::new()).run_user_index().await;
    /// assert_eq!(report.passed(), 6);
    /// # }
    /// ```
    pub async fn run_user_index(self) -> Report {
        let mut report = Report::default();
        macro_rules! scenario {
            ($name:ident) => {
                users::$name(&self.store).await;
                report.passed.push(stringify!($name));
            };
        }
        scenario!(bound_records_are_listed_under_their_user);
        scenario!(rotate_keeps_a_bound_record_listed);
        scenario!(update_moves_the_binding);
        scenario!(deleted_and_expired_records_are_not_listed);
        scenario!(end_session_ends_only_the_named_users_session);
        scenario!(end_all_racing_cycle_id_leaves_no_session);
        report
    }
}
