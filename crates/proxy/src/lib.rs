//! Federated login for mcpauth: the MCP client's user signs in at an upstream identity
//! provider, and the MCP client gets mcpauth's own code and tokens.
//!
//! ```text
//!  MCP client ──/authorize──▶ mcpauth ──(our state, nonce, PKCE)──▶ upstream IdP
//!       ▲                        │  ◀──── /upstream/{provider}/callback ────┘
//!       └── our code ◀── TokenMapper(upstream identity) → local subject
//! ```
//!
//! - [`provider`]: presets for Google, GitHub, Microsoft Entra ID (a tenant or `common`),
//!   GitLab (gitlab.com or self-hosted), Slack and Discord, with their quirks; any OpenID
//!   Connect provider from its discovery document; any OAuth 2.0 provider from explicit
//!   endpoints and a userinfo mapping.
//! - [`upstream`]: the authorization request we send (fresh `state`, `nonce`, PKCE S256),
//!   the callback checks (single use, bound to the browser, RFC 9207 `iss`, one callback URL
//!   per provider), the code exchange through the `oauth2` crate, the identity requests.
//! - [`id_token`]: OpenID Connect Core §3.1.3.7 ID-token validation.
//! - [`identity`]: the upstream's user as an [`UpstreamIdentity`].
//! - [`vault`]: upstream tokens kept for the application, sealed with AES-256-GCM, refreshed
//!   when they run out.
//! - [`flow`]: [`FederatedLogin`] ties them to the engine: `begin` holds the MCP client's
//!   request and redirects upstream with a browser-binding cookie; `callback` checks,
//!   exchanges, validates, asks the application's [`TokenMapper`] for the local subject and
//!   finishes the MCP client's authorization with the engine's own code.
//!
//! The first leg, with the Google preset: the redirect upstream carries our own `state`, a
//! `nonce` and a PKCE S256 challenge, and the callback is parsed strictly:
//!
//! ```
//! use mcpauth_proxy::upstream::{self, Purpose};
//! use mcpauth_proxy::{Preset, Provider, ProviderConfig};
//! use mcpauth_token_engine::{OsRandom, UnixTime};
//!
//! let mut config = ProviderConfig::new("google", Preset::Google, "1234.apps.googleusercontent.com");
//! config.client_secret = Some("from MCPAUTH_PROVIDER_GOOGLE_CLIENT_SECRET".into());
//! let google = Provider::from_config(&config)?;
//! let callback = url::Url::parse("https://auth.example.com/upstream/google/callback")?;
//! let purpose = Purpose::SignIn { return_to: "/account".into() };
//! let started = upstream::start(&google, &callback, purpose, &OsRandom, UnixTime(1_800_000_000), 600)?;
//! // Store `started.record` under `upstream::state_key(&started.state)`, set the
//! // `started.browser_binding` cookie, and redirect the browser to `started.location`:
//! let sent: std::collections::HashMap<_, _> = started.location.query_pairs().into_owned().collect();
//! assert_eq!(sent.get("state"), Some(&started.state));
//! assert_eq!(sent.get("code_challenge_method").map(String::as_str), Some("S256"));
//! assert!(sent.contains_key("nonce"));
//!
//! // Google sends the browser back with the code and our state:
//! let back = upstream::parse_callback(&format!("code=4%2F0Ad&state={}", started.state))?;
//! assert_eq!(back.state(), started.state);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//!
//! Upstream tokens never reach the MCP client (no token passthrough): the MCP client's
//! authorization is finished with the engine's own code.

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
