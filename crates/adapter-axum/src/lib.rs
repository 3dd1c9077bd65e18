#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "authorization-server")]
mod authorization_server;
mod resource_server;

#[cfg(feature = "authorization-server")]
pub use authorization_server::{router, show_error_page};
#[cfg(feature = "authorization-server")]
pub use mcpauth_http::{AuthorizationServer, Interaction};
pub use mcpauth_http::{ResourceServer, ResourceServerConfig, ResourceServerError, now};
pub use resource_server::{
    Authenticated, BearerLayer, BearerService, MetadataRouter, RevocationPushRouter,
};
