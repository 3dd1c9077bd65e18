//! The device authorization grant (RFC 8628), for clients without a browser: ask for a code,
//! show it to the user with the verification URI, and poll the token endpoint at the
//! interval the server sets (§3.4), slowing down when told (§3.5), until the user decides or
//! the code expires.

use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::Error;
use crate::error::ErrorCode;
use crate::http::HttpClient;
use crate::registration::ClientCredentials;
use crate::token::{TokenFailure, TokenSet, authenticated_form, token_request};
use mcpauth_oauth_types::TokenErrorCode;

/// The RFC 8628 grant type.
pub use mcpauth_oauth_types::DEVICE_CODE_GRANT;

/// What the user needs: the code and where to enter it (RFC 8628 §3.2).
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct DeviceCode {
    /// The code the device polls with (secret).
    pub device_code: String,
    /// The code the user types.
    pub user_code: String,
    /// Where the user types it.
    pub verification_uri: String,
    /// The same with the code filled in, when the server offers it.
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    /// Seconds the codes live.
    pub expires_in: u64,
    /// Seconds between polls (default 5).
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    5
}

impl std::fmt::Debug for DeviceCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceCode")
            .field("device_code", &"[redacted]")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

/// Asks for a device code (RFC 8628 §3.1), with `resource` (RFC 8707).
///
/// # Errors
///
/// [`Error::Token`] with the server's error, [`Error::Network`].
pub async fn request_device_code(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    scope: Option<&str>,
    resource: &str,
    now: u64,
) -> Result<DeviceCode, Error> {
    let mut params = vec![("resource", resource)];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let response = http
        .send(authenticated_form(endpoint, client, &params, now)?)
        .await?;
    let unusable = |reason: String| Error::BadTokenResponse {
        url: endpoint.to_string(),
        reason,
    };
    if !response.status().is_success() {
        return Err(
            TokenFailure::of_error_response(response.status(), response.body())
                .into_error(endpoint),
        );
    }
    serde_json::from_slice(response.body())
        .map_err(|e| unusable(format!("the response does not parse: {e}")))
}

/// Polls the token endpoint until the user approves or denies, or the code expires; with
/// `dpop`, every poll carries a proof made with that key (RFC 9449 §5).
///
/// # Errors
///
/// [`Error::Denied`] (`access_denied`), [`Error::Timeout`] (`expired_token`, or the code's
/// lifetime passed), [`Error::Token`] for anything else, [`Error::Network`].
#[allow(
    clippy::too_many_arguments,
    reason = "each is one parameter of the request"
)]
pub async fn poll_for_tokens(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    code: &DeviceCode,
    resource: &str,
    scope: Option<&str>,
    now: impl Fn() -> u64,
    dpop: Option<&crate::dpop::DpopKeyMaterial>,
) -> Result<TokenSet, Error> {
    let started = now();
    let deadline = started.saturating_add(code.expires_in);
    let mut interval = code.interval.max(1);
    loop {
        tokio::time::sleep(Duration::from_secs(interval)).await;
        let params = [
            ("grant_type", DEVICE_CODE_GRANT),
            ("device_code", code.device_code.as_str()),
            ("resource", resource),
        ];
        match token_request(http, endpoint, client, &params, scope, now(), dpop).await? {
            Ok(tokens) => return Ok(tokens),
            Err(TokenFailure::Refused { error, description }) => match error {
                ErrorCode::Token(TokenErrorCode::AuthorizationPending) => {}
                // RFC 8628 §3.5: add five seconds to this and every later poll.
                ErrorCode::Token(TokenErrorCode::SlowDown) => {
                    interval = interval.saturating_add(5);
                }
                ErrorCode::Token(TokenErrorCode::AccessDenied) => {
                    return Err(Error::Denied { error, description });
                }
                ErrorCode::Token(TokenErrorCode::ExpiredToken) => {
                    return Err(Error::Timeout {
                        seconds: code.expires_in,
                    });
                }
                _ => {
                    return Err(Error::Token {
                        url: endpoint.to_string(),
                        error,
                        description,
                    });
                }
            },
            Err(unusable) => return Err(unusable.into_error(endpoint)),
        }
        if now() >= deadline {
            return Err(Error::Timeout {
                seconds: code.expires_in,
            });
        }
    }
}
