//! Protecting an MCP server (the resource server), framework-neutral: bearer tokens verified
//! (RFC 6750, RFC 9068) against the authorization server's keys, RFC 6750 §3 / RFC 9728 §5.1
//! challenges, per-route scopes with `insufficient_scope` for step-up, and the RFC 9728
//! protected-resource metadata document.
//!
//! Keys come from the authorization server's `jwks_uri`, fetched on first use and again when a
//! token names an unknown `kid` (at most once every 30 seconds, so garbage tokens cannot make
//! us hammer the authorization server), through a [`KeySource`]. Requests are admitted by the
//! state machine in [`crate::admission`].

mod admission_steps;
mod challenge;
mod config;
mod dpop_memory;
mod metadata;
mod revocation;
mod verification;

#[cfg(test)]
mod dpop_tests;
#[cfg(test)]
mod revocation_push_tests;

pub use config::{DEFAULT_MAX_BODY_BYTES, IntrospectionClient, ResourceServerConfig};
pub use revocation::{
    MAX_PUSHED_EVENT_BYTES, RevocationMetrics, RevocationStream, WhenUnreachable,
};

use std::sync::Arc;

use mcpauth_bearer::{TokenVerifier, VerifiedToken, VerifyError};
use mcpauth_oauth_types::UnixTime;
use tokio::sync::{Mutex, RwLock};

#[cfg(feature = "reqwest")]
use crate::key_source::HttpKeySource;
use crate::key_source::KeySource;
use crate::session_binding::SessionOwners;

/// Why a token was not accepted.
enum Refusal {
    /// The token is bad: `401 invalid_token`.
    Invalid(VerifyError),
    /// The authorization server could not be asked: `503`, try again.
    Unavailable,
}

impl From<VerifyError> for Refusal {
    fn from(e: VerifyError) -> Self {
        Self::Invalid(e)
    }
}

/// Most introspection results kept at once.
const CACHE_CAPACITY: usize = 1024;

/// Most DPoP proofs remembered at once (each until its `iat` is 300 s old): about 650 proofs a
/// second, sustained, per instance. Past it, new proofs are refused with `503` until older ones
/// expire, rather than old ones forgotten early (which would allow their replay).
const DPOP_PROOFS_REMEMBERED: usize = 200_000;

/// Most DPoP proofs remembered for one key: about 30 a second, sustained. Past it, that key's
/// requests get `429`, and no single token holder can fill the memory for everyone.
const DPOP_PROOFS_PER_KEY: usize = 10_000;

/// The configuration cannot protect a resource.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ResourceServerError {
    /// The resource identifier is not an https (or loopback http) URL without fragment.
    #[error("resource identifier: {0}")]
    Resource(#[from] mcpauth_metadata::WellKnownError),
    /// The resource identifier does not parse.
    #[error("resource identifier is not a URL: {0}")]
    Url(#[from] url::ParseError),
    /// The HTTP client could not be built.
    #[cfg(feature = "reqwest")]
    #[error("HTTP client")]
    Http(#[from] reqwest::Error),
    /// The revocation stream's settings contradict each other or the routes.
    #[error("revocation stream: {0}")]
    RevocationStream(&'static str),
}

/// A protected resource: verifier, key cache, session bindings and metadata. Share it in an
/// `Arc`; admit requests with [`admit`](Self::admit).
pub struct ResourceServer {
    config: ResourceServerConfig,
    metadata_url: String,
    metadata_path: String,
    verifier: RwLock<TokenVerifier>,
    introspected: Mutex<std::collections::HashMap<[u8; 32], (VerifiedToken, u64)>>,
    /// When the JWK Set was last fetched, how that went, and how many fetches ended.
    last_fetch: std::sync::Mutex<KeyFetches>,
    /// Held by the one fetch of the JWK Set under way.
    fetching: Mutex<()>,
    keys: Arc<dyn KeySource>,
    sessions: SessionOwners,
    /// What a DPoP proof must be (RFC 9449 §4.3).
    dpop_policy: mcpauth_dpop::ProofPolicy,
    /// The DPoP proofs accepted, each until it is too old to pass again (§11.1).
    dpop_seen: std::sync::Mutex<dpop_memory::ProofMemory>,
    /// When the proof memory last warned that it was full (seconds).
    dpop_full_warned: std::sync::atomic::AtomicU64,
    /// What the revocation stream said, and when it last answered.
    revocations: revocation::Revocations,
}

impl std::fmt::Debug for ResourceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResourceServer")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// Seconds between two fetches of the JWK Set for unknown `kid`s.
const REFETCH_INTERVAL_SECONDS: u64 = 30;

/// The last fetch of the JWK Set: when, whether it worked, and how long until the next may
/// run (30 s after a success; after a failure 1 s, doubling up to 30 s, so a resource server
/// started before its authorization server accepts tokens within a second of it coming up).
#[derive(Clone, Copy, Debug)]
struct LastFetch {
    at: UnixTime,
    worked: bool,
    wait: u64,
}

/// The fetches of the JWK Set so far: the last one, and a count of those that ended (so a
/// request that waited for another's fetch takes its outcome instead of fetching again).
#[derive(Clone, Copy, Debug, Default)]
struct KeyFetches {
    last: Option<LastFetch>,
    ended: u64,
}

/// Largest JWK Set or introspection answer used.
const MAX_ANSWER_BYTES: usize = 64 * 1024;

impl ResourceServer {
    /// Builds the protection for `config`, fetching keys over HTTP ([`HttpKeySource`], the
    /// `reqwest` feature).
    ///
    /// # Errors
    ///
    /// [`ResourceServerError`] when the resource identifier is unusable.
    #[cfg(feature = "reqwest")]
    pub fn new(config: ResourceServerConfig) -> Result<Self, ResourceServerError> {
        Self::with_key_source(config, Arc::new(HttpKeySource::new()?))
    }

    /// Builds the protection for `config`, getting keys and introspection answers from
    /// `keys`.
    ///
    /// # Errors
    ///
    /// [`ResourceServerError`] when the resource identifier is unusable.
    pub fn with_key_source(
        config: ResourceServerConfig,
        keys: Arc<dyn KeySource>,
    ) -> Result<Self, ResourceServerError> {
        let resource = url::Url::parse(&config.resource)?;
        let metadata_url = mcpauth_metadata::protected_resource_metadata_url(&resource)?;
        if let Some(stream) = &config.revocation_stream {
            revocation::check_stream(stream, &resource, metadata_url.path())
                .map_err(ResourceServerError::RevocationStream)?;
        }
        Ok(Self {
            metadata_path: metadata_url.path().to_owned(),
            metadata_url: metadata_url.into(),
            verifier: RwLock::new(TokenVerifier::new(
                config.issuer.clone(),
                config.resource.clone(),
            )),
            last_fetch: std::sync::Mutex::new(KeyFetches::default()),
            fetching: Mutex::new(()),
            introspected: Mutex::new(std::collections::HashMap::new()),
            config,
            keys,
            sessions: SessionOwners::default(),
            dpop_policy: mcpauth_dpop::ProofPolicy::default(),
            dpop_seen: std::sync::Mutex::new(dpop_memory::ProofMemory::new(
                DPOP_PROOFS_PER_KEY,
                DPOP_PROOFS_REMEMBERED,
            )),
            dpop_full_warned: std::sync::atomic::AtomicU64::new(0),
            revocations: revocation::Revocations::default(),
        })
    }

    /// The configuration it protects with.
    #[must_use]
    pub fn config(&self) -> &ResourceServerConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_results_carry_the_insufficient_scope_challenge_in_meta() {
        let resource = ResourceServer::new(ResourceServerConfig::new(
            "https://mcp.example.com/mcp",
            "https://auth.example.com",
            "https://auth.example.com/jwks.json",
        ))
        .unwrap();
        let result = resource.tool_authorization_required(&["mcp", "admin"], "Allow admin access");
        assert_eq!(result["isError"], true);
        assert_eq!(result["content"][0]["text"], "Allow admin access");
        let challenge = result["_meta"]["mcp/www_authenticate"][0].as_str().unwrap();
        assert!(challenge.starts_with("Bearer "), "{challenge}");
        assert!(
            challenge.contains("error=\"insufficient_scope\""),
            "{challenge}"
        );
        assert!(challenge.contains("scope=\"mcp admin\""), "{challenge}");
        assert!(
            challenge.contains(
                "resource_metadata=\"https://mcp.example.com/.well-known/oauth-protected-resource/mcp\""
            ),
            "{challenge}"
        );
    }
}
