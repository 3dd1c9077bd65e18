//! MCP sessions bound to the user and client that opened them (MCP security best practices,
//! "Session Hijacking"): a session id is a handle, not a credential, so a request naming a
//! session opened with someone else's token is answered as if the session did not exist.
//!
//! The MCP server (rmcp's session manager, for one) hands out the id in the `Mcp-Session-Id`
//! response header; the protection records whose token got it. An id the protection has not
//! seen (opened before a restart, or evicted) is bound to the first token that uses it.

use std::collections::{HashMap, VecDeque};
use std::sync::{Mutex, PoisonError};

/// The MCP streamable-HTTP transport's session header.
pub const SESSION_HEADER: &str = "mcp-session-id";

/// How many sessions are remembered; past it the oldest bindings are dropped (their ids are
/// then bound again on first use).
pub const MAX_BOUND_SESSIONS: usize = 100_000;

/// Who opened a session: the token's subject and client.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Owner {
    pub(crate) subject: String,
    pub(crate) client_id: String,
}

/// What the protection remembers of a request until the MCP server answers it (kept in
/// [`Admitted`](crate::Admitted) until [`finish`](crate::Admitted::finish)).
#[derive(Debug, Default)]
#[must_use]
pub(crate) struct SessionTicket {
    /// The session a `DELETE` asks to end.
    pub(crate) ends: Option<String>,
    /// Who sent a request outside any session (one that may open a session).
    pub(crate) opener: Option<Owner>,
}

#[derive(Debug, Default)]
struct Bindings {
    owners: HashMap<String, Owner>,
    // Insertion order, for eviction. A forgotten id may linger here; evicting it later only
    // makes a re-bound id bind again on first use.
    order: VecDeque<String>,
}

/// The session ids this protection has seen, and their owners.
#[derive(Debug, Default)]
pub(crate) struct SessionOwners {
    bindings: Mutex<Bindings>,
}

impl SessionOwners {
    /// Whether `owner` may use session `id`. An id seen for the first time is bound to it.
    pub(crate) fn admit(&self, id: &str, owner: &Owner) -> bool {
        let mut bindings = self.lock();
        match bindings.owners.get(id) {
            Some(existing) => existing == owner,
            None => {
                bindings.bind(id, owner.clone());
                true
            }
        }
    }

    /// Records that `owner` opened session `id` (the server's answer named it). An id
    /// already bound keeps its owner: the server never hands one id to two sessions.
    pub(crate) fn opened(&self, id: &str, owner: &Owner) {
        let mut bindings = self.lock();
        if !bindings.owners.contains_key(id) {
            bindings.bind(id, owner.clone());
        }
    }

    /// The session ended (`DELETE` answered with success).
    pub(crate) fn ended(&self, id: &str) {
        self.lock().owners.remove(id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Bindings> {
        // The map is consistent after every statement; a panic elsewhere leaves it usable.
        self.bindings.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Bindings {
    fn bind(&mut self, id: &str, owner: Owner) {
        while self.owners.len() >= MAX_BOUND_SESSIONS {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.owners.remove(&oldest);
                }
                None => break,
            }
        }
        self.owners.insert(id.to_owned(), owner);
        self.order.push_back(id.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner(subject: &str, client_id: &str) -> Owner {
        Owner {
            subject: subject.into(),
            client_id: client_id.into(),
        }
    }

    #[test]
    fn a_session_serves_only_the_user_and_client_that_opened_it() {
        let sessions = SessionOwners::default();
        sessions.opened("s1", &owner("alice", "app"));
        assert!(sessions.admit("s1", &owner("alice", "app")));
        assert!(!sessions.admit("s1", &owner("mallory", "app")));
        assert!(!sessions.admit("s1", &owner("alice", "other-app")));
    }

    #[test]
    fn an_unknown_session_is_bound_to_its_first_user() {
        let sessions = SessionOwners::default();
        assert!(sessions.admit("s2", &owner("alice", "app")));
        assert!(!sessions.admit("s2", &owner("mallory", "app")));
    }

    #[test]
    fn an_ended_session_can_be_bound_again() {
        let sessions = SessionOwners::default();
        sessions.opened("s3", &owner("alice", "app"));
        sessions.ended("s3");
        assert!(sessions.admit("s3", &owner("bob", "app")));
    }

    #[test]
    fn the_oldest_bindings_are_dropped_past_the_limit() {
        let sessions = SessionOwners::default();
        for i in 0..=MAX_BOUND_SESSIONS {
            sessions.opened(&format!("s{i}"), &owner("alice", "app"));
        }
        let bindings = sessions.lock();
        assert_eq!(bindings.owners.len(), MAX_BOUND_SESSIONS);
        assert!(!bindings.owners.contains_key("s0"));
        assert!(
            bindings
                .owners
                .contains_key(&format!("s{MAX_BOUND_SESSIONS}"))
        );
    }
}
