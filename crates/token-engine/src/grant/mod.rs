//! Token-endpoint grants (RFC 6749 §4.1.3, §4.4, §6; RFC 8628 §3.4; RFC 8693; RFC 7523 §2.1).

pub(crate) mod authorization_code;
pub(crate) mod client_credentials;
pub(crate) mod device_code;
pub(crate) mod id_jag_issuance;
pub(crate) mod jwt_bearer;
pub(crate) mod refresh_token;
pub(crate) mod token_exchange;

use mcpauth_oauth_types::TokenResponse;

/// A grant's answer and whom its tokens stand for (the `sub` of the access token), for the
/// token endpoint's audit event.
pub(crate) struct Granted {
    pub(crate) response: TokenResponse,
    pub(crate) subject: String,
}
