#![doc = include_str!("../README.md")]

mod authorization_server;
mod protected_resource;
mod well_known;

pub use authorization_server::AuthorizationServerMetadata;
pub use protected_resource::ProtectedResourceMetadata;
pub use well_known::{
    WellKnownError, authorization_server_metadata_url, is_loopback_http,
    protected_resource_metadata_url, validate_issuer,
};
