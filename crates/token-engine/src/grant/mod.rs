//! Token-endpoint grants (RFC 6749 §4.1.3, §6).

pub(crate) mod authorization_code;
pub(crate) mod refresh_token;
