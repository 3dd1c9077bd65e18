#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod admission;
#[cfg(feature = "authorization-server")]
mod authorization_server;
mod client_address;
#[cfg(feature = "authorization-server")]
mod engine_handle;
mod key_source;
mod resource_server;
mod response;
mod session_binding;
mod tool_scopes;

pub use admission::{Admission, Admitted, PendingBody, RouteRules};
#[cfg(feature = "authorization-server")]
pub use authorization_server::{
    AuthorizationServer, Interaction, MAX_BODY_BYTES, OsRandom, show_error_page,
};
pub use client_address::{ForwardedHeader, InvalidProxy, TrustedProxies, caller_key};
#[cfg(feature = "reqwest")]
pub use key_source::HttpKeySource;
pub use key_source::{KeySource, KeySourceError};
pub use mcpauth_bearer::{SubjectType, VerifiedToken};
/// The current time from the system clock (the lowest crate's; the edges read it).
pub use mcpauth_oauth_types::now;
pub use resource_server::{
    DEFAULT_MAX_BODY_BYTES, IntrospectionClient, MAX_PUSHED_EVENT_BYTES, ResourceServer,
    ResourceServerConfig, ResourceServerError, RevocationMetrics, RevocationStream,
    WhenUnreachable,
};
pub use response::{HttpResponse, body_too_large, endpoint_error};
pub use session_binding::{MAX_BOUND_SESSIONS, SESSION_HEADER};
pub use tool_scopes::{ToolNeeds, ToolScopes};
