#![doc = include_str!("../README.md")]

pub mod flow;
pub mod id_token;
pub mod identity;
pub mod provider;
pub mod upstream;
pub mod vault;

pub use flow::{
    CallbackOutcome, FederatedLogin, Mapping, MemoryUpstreamRequests, ProviderSubject, TokenMapper,
    UpstreamRequestStore, resolve_provider,
};
pub use identity::{ClaimMapping, UpstreamIdentity};
pub use provider::{Preset, Provider, ProviderConfig, ProviderError};
pub use upstream::{
    Callback, CallbackError, ProxyError, Purpose, Transport, UpstreamRequest, UpstreamTokens,
};
pub use vault::{KeptTokens, TokenVault, VaultError};
