//! Upstream tokens kept for the application's own calls to the upstream (the user's GitHub
//! repositories, their Google calendar), sealed with AES-256-GCM before they are stored, and
//! refreshed when they run out.
//!
//! They are the application's, never the MCP client's (no token passthrough): the MCP
//! client only ever holds mcpauth's tokens. Keep them only when the application needs them.
//!
//! ```
//! use mcpauth_proxy::vault::{KeptTokens, TokenVault};
//! use mcpauth_token_engine::UnixTime;
//! # struct Fixed;
//! # impl mcpauth_token_engine::SecureRandom for Fixed {
//! #     fn fill(&self, dest: &mut [u8]) -> Result<(), mcpauth_token_engine::RandomError> {
//! #         dest.fill(7);
//! #         Ok(())
//! #     }
//! # }
//! let vault = TokenVault::new(&[42; 32]);
//! let tokens = KeptTokens::new("gho_access", Some("ghr_refresh"), Some(3600), None, UnixTime(1_000));
//! // Bound to the account it belongs to: a sealed value moved to another row does not open.
//! let sealed = vault.seal(&tokens, "github\n1234", &Fixed).unwrap();
//! assert_eq!(vault.open(&sealed, "github\n1234").unwrap(), tokens);
//! assert!(vault.open(&sealed, "github\n999").is_err());
//! assert!(tokens.needs_refresh(UnixTime(4_570), 60));
//! ```

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use mcpauth_token_engine::SecureRandom;
use mcpauth_token_engine::UnixTime;
use serde::{Deserialize, Serialize};

use crate::provider::Provider;
use crate::upstream::{self, ProxyError, Transport, UpstreamTokens};

/// The prefix of sealed values: names the format, so a later one can be told apart.
const SEALED_PREFIX: &str = "v1.";

/// Upstream tokens as kept: the access token's expiry is absolute.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct KeptTokens {
    /// The upstream access token.
    pub access_token: String,
    /// The upstream refresh token, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token runs out (seconds since the epoch), if the upstream said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The scope the upstream granted, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

impl std::fmt::Debug for KeptTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeptTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .finish()
    }
}

impl KeptTokens {
    /// Tokens received at `now`, living `expires_in` seconds.
    #[must_use]
    pub fn new(
        access_token: &str,
        refresh_token: Option<&str>,
        expires_in: Option<u64>,
        scope: Option<&str>,
        now: UnixTime,
    ) -> Self {
        let now = now.0;
        Self {
            access_token: access_token.to_owned(),
            refresh_token: refresh_token.map(str::to_owned),
            expires_at: expires_in.map(|s| now.saturating_add(s)),
            scope: scope.map(str::to_owned),
        }
    }

    /// The tokens of a token response received at `now`.
    #[must_use]
    pub fn from_response(tokens: &UpstreamTokens, now: UnixTime) -> Self {
        let now = now.0;
        Self::new(
            &tokens.access_token,
            tokens.refresh_token.as_deref(),
            tokens.expires_in,
            tokens.scope.as_deref(),
            UnixTime(now),
        )
    }

    /// Whether the access token runs out within `leeway` seconds of `now` (never, when the
    /// upstream gave no lifetime).
    #[must_use]
    pub fn needs_refresh(&self, now: UnixTime, leeway: u64) -> bool {
        let now = now.0;
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(leeway))
    }

    /// Refreshes at `provider` (RFC 6749 §6), keeping the refresh token when the upstream
    /// does not rotate it.
    ///
    /// # Errors
    ///
    /// [`ProxyError::Token`] when there is no refresh token or the upstream refuses it (the
    /// user must sign in again), [`ProxyError::Transport`].
    pub async fn refresh(
        &self,
        provider: &Provider,
        transport: &dyn Transport,
        now: UnixTime,
    ) -> Result<Self, ProxyError> {
        let now = now.0;
        let refresh_token = self.refresh_token.as_deref().ok_or_else(|| {
            ProxyError::Token("no refresh token is kept: the user must sign in again".into())
        })?;
        let tokens = upstream::refresh_tokens(provider, refresh_token, transport).await?;
        let mut kept = Self::from_response(&tokens, UnixTime(now));
        // A provider that does not repeat the scope granted it unchanged.
        if kept.scope.is_none() {
            kept.scope.clone_from(&self.scope);
        }
        Ok(kept)
    }
}

/// Sealing or opening kept tokens failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum VaultError {
    /// The random source failed.
    #[error("the random source failed")]
    Random,
    /// The value was not sealed by this key for this account, or is damaged.
    #[error(
        "the kept upstream tokens cannot be opened: sealed under another key, for another account, or damaged"
    )]
    Unreadable,
}

/// Seals kept tokens with AES-256-GCM under one 32-byte key, and opens what it or a previous
/// key sealed (while the operator rotates the key).
pub struct TokenVault {
    key: LessSafeKey,
    previous: Vec<LessSafeKey>,
}

impl std::fmt::Debug for TokenVault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVault(<redacted>)")
    }
}

fn aes_key(key: &[u8; 32]) -> LessSafeKey {
    // AES-256 takes any 32 bytes: the only error of `UnboundKey::new` is a wrong length,
    // which the type rules out.
    #[allow(clippy::expect_used, reason = "a 32-byte key is always accepted")]
    let key = UnboundKey::new(&AES_256_GCM, key).expect("AES-256-GCM takes 32-byte keys");
    LessSafeKey::new(key)
}

impl TokenVault {
    /// A vault sealing under `key` (32 random bytes, kept outside the database).
    #[must_use]
    pub fn new(key: &[u8; 32]) -> Self {
        Self {
            key: aes_key(key),
            previous: Vec::new(),
        }
    }

    /// This vault, also opening what `previous` keys sealed (it seals under its own only):
    /// tokens kept before a key rotation stay readable, and are sealed under the new key the
    /// next time they are stored.
    #[must_use]
    pub fn with_previous(mut self, previous: &[[u8; 32]]) -> Self {
        self.previous.extend(previous.iter().map(aes_key));
        self
    }

    /// Seals `tokens` for the account named by `binding` (for example `provider\nsubject`),
    /// with a fresh random nonce: `v1.` + base64url(nonce ‖ ciphertext ‖ tag).
    ///
    /// # Errors
    ///
    /// [`VaultError::Random`].
    pub fn seal(
        &self,
        tokens: &KeptTokens,
        binding: &str,
        rng: &dyn SecureRandom,
    ) -> Result<String, VaultError> {
        let mut nonce = [0u8; NONCE_LEN];
        rng.fill(&mut nonce).map_err(|_| VaultError::Random)?;
        let mut in_out = serde_json::to_vec(tokens).map_err(|_| VaultError::Unreadable)?;
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(binding.as_bytes()),
                &mut in_out,
            )
            .map_err(|_| VaultError::Unreadable)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(format!("{SEALED_PREFIX}{}", URL_SAFE_NO_PAD.encode(sealed)))
    }

    /// Opens a value [`seal`](Self::seal) made for `binding`.
    ///
    /// # Errors
    ///
    /// [`VaultError::Unreadable`] for another key, another binding, or damage.
    pub fn open(&self, sealed: &str, binding: &str) -> Result<KeptTokens, VaultError> {
        let body = sealed
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| URL_SAFE_NO_PAD.decode(b).ok())
            .ok_or(VaultError::Unreadable)?;
        let (nonce, ciphertext) = body
            .split_at_checked(NONCE_LEN)
            .ok_or(VaultError::Unreadable)?;
        for key in std::iter::once(&self.key).chain(&self.previous) {
            let nonce =
                Nonce::try_assume_unique_for_key(nonce).map_err(|_| VaultError::Unreadable)?;
            let mut in_out = ciphertext.to_vec();
            if let Ok(plain) = key.open_in_place(nonce, Aad::from(binding.as_bytes()), &mut in_out)
            {
                return serde_json::from_slice(plain).map_err(|_| VaultError::Unreadable);
            }
        }
        Err(VaultError::Unreadable)
    }
}
