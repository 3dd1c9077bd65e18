#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod access_token;
mod authorize;
mod client_auth;
mod client_management;
mod client_metadata_document;

mod config;
mod customize;
mod dpop;
mod endpoints;
mod error;
mod grant;
mod hash;
mod http_entry;
mod id_token;
mod ids;
mod introspection;
mod keys;
mod memory;
mod model;
mod model_error;
#[cfg(feature = "os")]
mod os;
mod random;
mod registration;
mod revocation;
mod shared_signals;
mod subject;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

use std::sync::Arc;

pub use access_token::{AccessTokenClaims, Audience, Confirmation, SubjectType};
pub use authorize::{
    AuthorizationRedirect, AuthorizeOutcome, ClientIdentity, PendingAuthorization,
};
pub use client_management::{ClientConfigurationRefusal, ClientConfigurationRequest};
pub use client_metadata_document::{
    DOCUMENT_REFETCHES_PER_MINUTE, DocumentFetch, MAX_CLIENT_METADATA_DOCUMENT_BYTES,
    is_client_metadata_document_url,
};
pub use config::{
    AccessTokenFormat, CallerKey, ConfigError, EngineConfig, RegistrationPolicy, ResourcePolicy,
    USER_DELEGATED_GRANT_TYPES,
};
pub use customize::{TokenContext, TokenCustomizer};
pub use dpop::DpopPolicy;
pub use endpoints::{EndpointError, RegistrationRefusal, RegistrationRequest, TokenEndpointError};
pub use error::{AuthorizeError, RegistrationError, RevocationError, TokenError};
pub use grant::device_code::{
    DEVICE_CODE_GRANT, DeviceAuthorization, DeviceUserError, PendingDevice,
};
pub use grant::id_jag_issuance::{
    AssertionAudience, AudienceClient, ID_JAG_GRANT_PROFILE, ID_JAG_TOKEN_TYPE, ID_TOKEN_TYPE,
    REFRESH_TOKEN_TYPE,
};
pub use grant::jwt_bearer::{
    EnterpriseUsers, ID_JAG_TYPE, IssuerKind, JWT_BEARER_GRANT, TrustedIssuer, TrustedIssuerKeys,
    WorkloadRule,
};
pub use grant::token_exchange::{ACCESS_TOKEN_TYPE, ExchangeRule, TOKEN_EXCHANGE_GRANT};
pub use http_entry::{EndpointEvent, EndpointEventKind, InternalError, IssuedForGrantType};
pub use id_token::OPENID_SCOPE;
pub use introspection::Introspection;
pub use keys::{KeyError, KeySet, SigningKey, jwk_set};
pub use mcpauth_dcr::{redirect_uri_matches, validate_redirect_uri};
pub use mcpauth_dpop::{NonceSource, ProofPolicy};
pub use mcpauth_oauth_types::{
    Clock, FormParams, GrantType, IntrospectionErrorCode, ManualClock, RegistrationErrorCode,
    RevocationErrorCode, Scope, ScopeError, TokenErrorCode, TokenResponse, UnixTime,
};
pub use memory::{MemoryModel, MemoryModelError, Swept};
pub use model::{
    AccessTokenRecord, AccessTokenStore, AuthorizationCodeRecord, ClientId, ClientRecord,
    ClientStore, CodeStore, ConsumeCode, DeviceAuthorizationRecord, DeviceDecision, DeviceState,
    DeviceStore, GrantId, GrantRecord, GrantStore, ModelBase, OAuthServerModel, RateLimitKey,
    RateLimitStore, RefreshTokenRecord, RefreshTokenStore, ReplayStore, RotateRefresh, SecretHash,
    TokenEndpointAuthMethod, Voucher,
};
#[cfg(feature = "os")]
pub use os::{KeyAlgorithm, OsRandom, SystemClock, now};
pub use random::{RandomError, SecureRandom, random_token};
pub use registration::RegisteredClient;
pub use shared_signals::{ResourceServerRefusal, SetSigningError};
pub use subject::SubjectStatus;

/// The authorization-server engine over a model `M`.
///
/// Cheap to share: wrap it in an `Arc` and call it from every request handler.
pub struct TokenEngine<M: ?Sized> {
    config: EngineConfig,
    model: Arc<M>,
    /// Swapped whole on rotation ([`replace_keys`](TokenEngine::replace_keys)); requests
    /// clone the `Arc` under a read lock held for nanoseconds.
    keys: std::sync::RwLock<Arc<KeySet>>,
    rng: Arc<dyn SecureRandom>,
}

impl<M: ?Sized> std::fmt::Debug for TokenEngine<M> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenEngine")
            .field("config", &self.config)
            .field("keys", &self.keys)
            .finish_non_exhaustive()
    }
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Builds an engine that signs with `keys` (a [`SigningKey`], or a [`KeySet`] with
    /// retired keys that still verify).
    #[must_use]
    pub fn new(
        config: EngineConfig,
        model: Arc<M>,
        keys: impl Into<KeySet>,
        rng: Arc<dyn SecureRandom>,
    ) -> Self {
        Self {
            config,
            model,
            keys: std::sync::RwLock::new(Arc::new(keys.into())),
            rng,
        }
    }

    /// The keys in use now.
    #[must_use]
    pub fn keys(&self) -> Arc<KeySet> {
        self.keys
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the keys (a rotation, or keys reloaded from shared storage): tokens are
    /// signed with the new current key from the next request on, and verified and published
    /// with every key of the new set.
    pub fn replace_keys(&self, keys: impl Into<KeySet>) {
        *self
            .keys
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(keys.into());
    }

    /// The configuration.
    #[must_use]
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// The model.
    #[must_use]
    pub fn model(&self) -> &Arc<M> {
        &self.model
    }

    /// Whether this engine serves the device authorization grant (RFC 8628): its model keeps
    /// device authorizations ([`ModelBase::devices`]).
    #[must_use]
    pub fn serves_device_flow(&self) -> bool {
        self.model.devices().is_some()
    }

    /// RFC 8414 metadata describing exactly what this engine does.
    #[must_use]
    pub fn metadata(&self) -> mcpauth_metadata::AuthorizationServerMetadata {
        let c = &self.config;
        let mut m = mcpauth_metadata::AuthorizationServerMetadata::new(self.issuer_str());
        m.authorization_endpoint = Some(c.endpoint_url(paths::AUTHORIZE));
        m.token_endpoint = Some(c.endpoint_url(paths::TOKEN));
        m.jwks_uri = Some(c.endpoint_url(paths::JWKS));
        m.revocation_endpoint = Some(c.endpoint_url(paths::REVOKE));
        m.introspection_endpoint = Some(c.endpoint_url(paths::INTROSPECT));
        if c.dynamic_registration {
            m.registration_endpoint = Some(c.endpoint_url(paths::REGISTER));
        }
        m.scopes_supported.clone_from(&c.scopes_supported);
        m.response_types_supported = vec!["code".into()];
        m.response_modes_supported = vec!["query".into()];
        m.grant_types_supported = vec![
            "authorization_code".into(),
            "refresh_token".into(),
            "client_credentials".into(),
        ];
        // RFC 8628 only where the model keeps device authorizations.
        if self.serves_device_flow() {
            m.device_authorization_endpoint = Some(c.endpoint_url(paths::DEVICE_AUTHORIZATION));
            m.grant_types_supported.push(DEVICE_CODE_GRANT.into());
        }
        m.grant_types_supported.push(TOKEN_EXCHANGE_GRANT.into());
        if self.serves_jwt_bearer() {
            m.grant_types_supported.push(JWT_BEARER_GRANT.into());
        }
        // The ID-JAG draft's §7: what this server takes and issues.
        if self.accepts_identity_assertions() {
            m.authorization_grant_profiles_supported = vec![ID_JAG_GRANT_PROFILE.into()];
        }
        if self.issues_identity_assertions() {
            m.identity_chaining_requested_token_types_supported = vec![ID_JAG_TOKEN_TYPE.into()];
        }
        let secret_and_key = [
            "client_secret_basic",
            "client_secret_post",
            "private_key_jwt",
        ]
        .map(String::from)
        .to_vec();
        let mut methods = vec!["none".to_owned()];
        methods.extend(secret_and_key.iter().cloned());
        m.token_endpoint_auth_methods_supported.clone_from(&methods);
        m.revocation_endpoint_auth_methods_supported = methods;
        // RFC 7662 §2.1: introspection callers must authenticate; public clients cannot.
        m.introspection_endpoint_auth_methods_supported = secret_and_key;
        m.token_endpoint_auth_signing_alg_values_supported = client_auth::ASSERTION_ALGORITHMS
            .iter()
            .map(|(name, _)| (*name).to_owned())
            .collect();
        m.code_challenge_methods_supported = vec!["S256".into()];
        if c.dpop.is_enabled() {
            m.dpop_signing_alg_values_supported = c
                .dpop
                .proofs
                .algorithm_names()
                .into_iter()
                .map(str::to_owned)
                .collect();
        }
        // ID tokens for `openid` grants (OpenID Connect Core §2), with asymmetric keys only.
        m.id_token_signing_alg_values_supported = self.id_token_algorithms();
        if !m.id_token_signing_alg_values_supported.is_empty() {
            m.subject_types_supported = vec!["public".into()];
        }
        m.authorization_response_iss_parameter_supported = true;
        m.client_id_metadata_document_supported = c.client_metadata_documents;
        m
    }

    /// The JWK Set document to serve at `jwks_uri`.
    #[must_use]
    pub fn jwks(&self) -> serde_json::Value {
        self.keys().jwks()
    }

    /// Whether `subject` may still hold authority ([`EngineConfig::subject_status`]).
    pub(crate) async fn subject_is_active(
        &self,
        subject: &str,
    ) -> Result<bool, Box<dyn std::error::Error + Send + Sync>> {
        match &self.config.subject_status {
            Some(status) => status.is_active(subject).await,
            None => Ok(true),
        }
    }

    /// The issuer string as published in metadata, tokens and RFC 9207 `iss`: a bare origin
    /// has no trailing slash (`https://as.example`), a path is kept as configured.
    pub(crate) fn issuer_str(&self) -> String {
        if self.config.issuer.path() == "/" {
            self.config.issuer.as_str().trim_end_matches('/').to_owned()
        } else {
            self.config.issuer.as_str().to_owned()
        }
    }
}

/// Default endpoint paths below the issuer.
pub mod paths {
    /// Authorization endpoint.
    pub const AUTHORIZE: &str = "/authorize";
    /// Token endpoint.
    pub const TOKEN: &str = "/token";
    /// Dynamic client registration endpoint.
    pub const REGISTER: &str = "/register";
    /// Revocation endpoint.
    pub const REVOKE: &str = "/revoke";
    /// Introspection endpoint.
    pub const INTROSPECT: &str = "/introspect";
    /// Device authorization endpoint (RFC 8628 §3.1).
    pub const DEVICE_AUTHORIZATION: &str = "/device_authorization";
    /// JWK Set document.
    pub const JWKS: &str = "/jwks.json";
}
