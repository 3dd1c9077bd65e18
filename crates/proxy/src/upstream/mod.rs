//! Talking to the upstream: the authorization request we send the user with (our own
//! `state`, `nonce` and PKCE), the callback we get back, the code exchange (through the
//! `oauth2` crate) with each provider's quirks, and the identity requests.

mod callback;
mod exchange;
mod identity_fetch;
mod request;
mod transport;

pub use callback::{Callback, CallbackError, check_issuer, parse_callback};
pub use exchange::{
    IdTokenField, UpstreamTokens, exchange_code, normalize_token_response, refresh_tokens,
};
pub use identity_fetch::fetch_identity;
pub use request::{
    Purpose, Started, UpstreamRequest, check_record, is_local_path, random_value, start, state_key,
};
pub use transport::{ReqwestTransport, Transport, TransportError};

use std::time::Duration;

use crate::identity::IdentityError;

/// Largest upstream response read (token, userinfo, JWKS, discovery).
pub const MAX_RESPONSE_BYTES: usize = 256 * 1024;

/// How long any one upstream request may take.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a federated sign-in failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ProxyError {
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// The callback is unusable (see [`CallbackError`]).
    #[error(transparent)]
    Callback(#[from] CallbackError),
    /// The upstream refused the code or answered something unusable.
    #[error("the identity provider's token endpoint: {0}")]
    Token(String),
    /// The ID token was refused.
    #[error(transparent)]
    IdToken(#[from] crate::id_token::IdTokenError),
    /// The identity could not be read.
    #[error(transparent)]
    Identity(#[from] IdentityError),
    /// An upstream request failed.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// An upstream answered an error at its userinfo or user API.
    #[error("the identity provider's {endpoint} answered {status}")]
    Upstream {
        /// Which endpoint.
        endpoint: &'static str,
        /// The HTTP status (or Slack's error code).
        status: String,
    },
}
