//! The authorization request we send the user upstream with: our own `state`, `nonce` and PKCE,
//! stored under the state's hash and bound to the browser; checked when the callback claims it.

use mcpauth_token_engine::UnixTime;

use mcpauth_token_engine::{PendingAuthorization, SecureRandom};
use serde::{Deserialize, Serialize};
use url::Url;

use super::exchange::oauth_client;
use crate::provider::Provider;
use crate::{CallbackError, ProxyError};

/// What the proxy keeps between sending the user upstream and the callback. Stored
/// server-side under the hash of `state`, taken once.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub struct UpstreamRequest {
    /// The provider the user was sent to; the callback must arrive at its own URL.
    pub provider: String,
    /// The nonce sent (OpenID Connect), to be found in the ID token.
    pub nonce: Option<String>,
    /// The PKCE verifier, when PKCE was sent.
    pub pkce_verifier: Option<String>,
    /// SHA-256 of the browser-binding cookie set with the redirect: the callback must come
    /// from the same browser (login CSRF defence).
    pub browser_binding_hash: String,
    /// What the sign-in is for: an MCP client's authorization request, finished after the
    /// callback, or a plain sign-in to the application.
    pub purpose: Purpose,
    /// When this request stops being accepted.
    pub expires_at: u64,
}

/// What a federated sign-in is for.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[non_exhaustive]
pub enum Purpose {
    /// Finish this MCP client's authorization request with the engine's code (boxed: it is
    /// far larger than the other variant).
    Authorize(Box<PendingAuthorization>),
    /// Only sign the user in to the application (its device or account page), then send the
    /// browser to `return_to`, a path on this server.
    SignIn {
        /// Where to go afterwards: an absolute path (`/device?user_code=…`).
        return_to: String,
    },
}

impl From<PendingAuthorization> for Purpose {
    fn from(pending: PendingAuthorization) -> Self {
        Self::Authorize(Box::new(pending))
    }
}

impl Purpose {
    /// The MCP client's request, for an authorization.
    #[must_use]
    pub fn pending(&self) -> Option<&PendingAuthorization> {
        match self {
            Self::Authorize(pending) => Some(pending),
            Self::SignIn { .. } => None,
        }
    }
}

/// Whether `path` is a path on this server (`/x`), never another site (`//evil`, `/\evil`,
/// `https://…`): the only places a plain sign-in returns to.
#[must_use]
pub fn is_local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains('\\')
        && !path.chars().any(char::is_control)
}

/// The redirect that sends the user upstream.
#[derive(Debug)]
#[non_exhaustive]
pub struct Started {
    /// The upstream authorization URL.
    pub location: Url,
    /// The `state` sent: the caller stores `record` under [`state_key`] of it.
    pub state: String,
    /// The browser-binding value to set as a cookie.
    pub browser_binding: String,
    /// What to store until the callback.
    pub record: UpstreamRequest,
}

/// The key under which an upstream request is stored: SHA-256 of its `state`, so a stolen
/// database does not hold usable states.
#[must_use]
pub fn state_key(state: &str) -> String {
    mcpauth_token_engine::SecretHash::of(state).into_string()
}

/// 32 random bytes, base64url: states, nonces, PKCE verifiers, browser bindings.
///
/// # Errors
///
/// [`ProxyError::Random`] when the random source fails.
pub fn random_value(rng: &dyn SecureRandom) -> Result<String, ProxyError> {
    mcpauth_token_engine::random_token(rng).map_err(|_| ProxyError::Random)
}

/// Builds the redirect that sends the user to `provider`, returning to `callback_url`, for
/// `purpose` (an MCP client's request, or a plain sign-in). Fresh `state`, browser binding,
/// and (as the provider supports them) `nonce` and PKCE S256; the record expires after `ttl`
/// seconds.
///
/// # Errors
///
/// [`ProxyError::Random`].
pub fn start(
    provider: &Provider,
    callback_url: &Url,
    purpose: impl Into<Purpose>,
    rng: &dyn SecureRandom,
    now: UnixTime,
    ttl: u64,
) -> Result<Started, ProxyError> {
    let now = now.0;
    let state = random_value(rng)?;
    let browser_binding = random_value(rng)?;
    let nonce = provider.openid.then(|| random_value(rng)).transpose()?;
    let verifier = provider.pkce.then(|| random_value(rng)).transpose()?;
    let client = oauth_client(provider, callback_url);
    let csrf = state.clone();
    let mut request = client
        .authorize_url(move || oauth2::CsrfToken::new(csrf))
        .add_scopes(provider.scopes.iter().cloned().map(oauth2::Scope::new));
    if let Some(nonce) = &nonce {
        request = request.add_extra_param("nonce", nonce.clone());
    }
    if let Some(verifier) = &verifier {
        let verifier = oauth2::PkceCodeVerifier::new(verifier.clone());
        request = request.set_pkce_challenge(oauth2::PkceCodeChallenge::from_code_verifier_sha256(
            &verifier,
        ));
    }
    let (location, _) = request.url();
    Ok(Started {
        location,
        record: UpstreamRequest {
            provider: provider.id.clone(),
            nonce,
            pkce_verifier: verifier,
            browser_binding_hash: mcpauth_token_engine::SecretHash::of(&browser_binding)
                .into_string(),
            purpose: purpose.into(),
            expires_at: now.saturating_add(ttl),
        },
        state,
        browser_binding,
    })
}

/// Checks a stored request against the callback that claimed it: the right provider's URL,
/// the same browser, not expired.
///
/// # Errors
///
/// [`CallbackError`].
pub fn check_record(
    record: &UpstreamRequest,
    provider: &Provider,
    browser_binding: Option<&str>,
    now: UnixTime,
) -> Result<(), CallbackError> {
    let now = now.0;
    use subtle::ConstantTimeEq as _;
    if record.expires_at <= now {
        return Err(CallbackError::UnknownState);
    }
    if record.provider != provider.id {
        return Err(CallbackError::WrongProvider);
    }
    let presented = browser_binding
        .map(|binding| mcpauth_token_engine::SecretHash::of(binding).into_string())
        .unwrap_or_default();
    if !bool::from(
        presented
            .as_bytes()
            .ct_eq(record.browser_binding_hash.as_bytes()),
    ) {
        return Err(CallbackError::WrongBrowser);
    }
    Ok(())
}
