#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub mod assertion;
pub mod authorize;
pub mod challenge;
pub mod device;
pub mod discovery;
pub mod dpop;
mod error;
pub mod http;
pub mod loopback;
pub mod registration;
#[cfg(feature = "rmcp")]
pub mod rmcp;
mod session;
pub mod store;
pub mod token;

pub use challenge::BearerChallenge;
pub use discovery::{Discovered, discover};
pub use error::{Error, ErrorCode};
pub use http::{HttpClient, ReqwestClient, UrlPolicy};
pub use mcpauth_oauth_types::said;
pub use registration::ClientCredentials;
pub use session::{
    Browser, LoggedOut, OAuthClient, OAuthClientBuilder, REFRESH_LEEWAY, ResourceAuthorization,
    SystemBrowser,
};
pub use store::{AccountStore, FileStore, KeySource, MemoryStore, StoreLock, TokenStore};
pub use token::TokenSet;
