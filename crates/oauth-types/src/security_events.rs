//! The names Shared Signals speak in (OpenID Shared Signals Framework 1.0, RFC 8936): the
//! event types an mcpauth authorization server transmits and its resource servers act on,
//! and the delivery methods.

/// RFC 8936 poll delivery, as a stream's `delivery.method`.
pub const POLL_DELIVERY: &str = "urn:ietf:rfc:8936";
/// RFC 8935 push delivery, as a stream's `delivery.method`.
pub const PUSH_DELIVERY: &str = "urn:ietf:rfc:8935";
/// The media type a pushed Security Event Token is sent as (RFC 8935 §2).
pub const SECURITY_EVENT_TOKEN_MEDIA_TYPE: &str = "application/secevent+jwt";
/// SSF §8.1.4: the event a transmitter sends when a receiver asks it to prove the stream
/// delivers, carrying the receiver's `state`.
pub const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
/// The `typ` of a Security Event Token (RFC 8417 §2.3).
pub const SECURITY_EVENT_TOKEN_TYPE: &str = "secevent+jwt";
/// CAEP: a session ended (mcpauth: a grant, or every grant of a client).
pub const SESSION_REVOKED: &str =
    "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
/// CAEP: a user's credential changed.
pub const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
/// RISC: a user's account was disabled.
pub const ACCOUNT_DISABLED: &str =
    "https://schemas.openid.net/secevent/risc/event-type/account-disabled";
/// mcpauth's own (no standard type fits): a signing key was removed, and every token it
/// signed ends.
pub const SIGNING_KEY_REMOVED: &str = "urn:mcpauth:secevent:signing-key-removed";
