//! RFC 9068: JWT access tokens (`typ: at+jwt`), signed with the engine's key.
//!
//! `jti` is `<grant_id>.<random>`: the grant id is not a secret, and carrying it lets the
//! revocation and introspection endpoints find the grant of an access token without a table
//! of issued tokens. Tokens that belong to no grant (`client_credentials`) have a plain
//! random `jti`.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use crate::SecretHash;
use crate::TokenEngine;
use crate::UnixTime;
use crate::config::AccessTokenFormat;
use crate::customize::{RESERVED_CLAIMS, TokenContext};
use crate::model::{AccessTokenRecord, ClientId, GrantId, OAuthServerModel};
use crate::random::{self, RandomError};
use mcpauth_oauth_types::GrantType;

/// The claims of an access token (RFC 9068 §2.2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct AccessTokenClaims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user.
    pub sub: String,
    /// Audience: the resources (RFC 8707) the token is for.
    pub aud: Audience,
    /// The client the token was issued to.
    pub client_id: String,
    /// Space-separated scope.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub scope: String,
    /// Unique token id: `<grant_id>.<random>`, or `<random>` without a grant.
    pub jti: String,
    /// Issued at.
    pub iat: u64,
    /// Expires at.
    pub exp: u64,
    /// Whether a user stands behind the token (`user`) or the client acts for itself
    /// (`client`, as with `client_credentials`), so a resource server can refuse user-less
    /// tokens where a person must have agreed. Absent only in tokens from before it existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub_type: Option<SubjectType>,
    /// The key the token is bound to (RFC 7800 `cnf`; RFC 9449 §6.1 `jkt`): a resource
    /// server accepts it only with a DPoP proof made with that key. Absent for bearer tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// Claims added by the application's [`crate::TokenCustomizer`].
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The `cnf` claim of a DPoP-bound token (RFC 9449 §6.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Confirmation {
    /// The SHA-256 JWK thumbprint (RFC 7638) of the DPoP key.
    pub jkt: String,
}

impl Confirmation {
    /// A binding to the key whose thumbprint is `jkt`.
    #[must_use]
    pub fn jkt(jkt: impl Into<String>) -> Self {
        Self { jkt: jkt.into() }
    }
}

/// `aud`: one string, or an array of strings (RFC 7519 §4.1.3).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Audience {
    /// A single audience.
    One(String),
    /// Several audiences.
    Many(Vec<String>),
}

impl Audience {
    fn from_resources(resources: &[String]) -> Self {
        match resources {
            [one] => Self::One(one.clone()),
            many => Self::Many(many.to_vec()),
        }
    }
}

/// Who the subject of an access token is (its `sub_type` claim).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SubjectType {
    /// A user authorized the token (authorization code, device flow, and what descends from
    /// them): `sub` is the user.
    User,
    /// The client acts for itself (`client_credentials`): `sub` is the client.
    Client,
}

impl SubjectType {
    /// The claim value.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Client => "client",
        }
    }
}

impl AccessTokenClaims {
    /// Whether a user stands behind the token. Tokens without `sub_type` (issued before the
    /// claim existed) count as a user's exactly when they descend from a grant.
    #[must_use]
    pub fn has_user(&self) -> bool {
        match self.sub_type {
            Some(kind) => kind == SubjectType::User,
            None => self.grant_id().is_some(),
        }
    }

    /// The grant id carried in `jti`.
    #[must_use]
    pub fn grant_id(&self) -> Option<&str> {
        grant_of_jti(&self.jti)
    }
}

/// The grant named by a `jti` of the form `<grant_id>.<random>` (access and ID tokens).
pub(crate) fn grant_of_jti(jti: &str) -> Option<&str> {
    jti.split_once('.').map(|(grant, _)| grant)
}

/// Signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum IssueError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("signing the access token failed: {0}")]
    Sign(#[from] crate::keys::SignError),
    #[error("storing the access token failed: {0}")]
    Storage(Box<dyn std::error::Error + Send + Sync>),
    #[error("encoding the access token failed: {0}")]
    Json(#[from] serde_json::Error),
    #[error(
        "opaque access tokens are configured but the model keeps none (ModelBase::opaque_tokens \
         is None): implement AccessTokenStore, or issue JWT access tokens"
    )]
    NoOpaqueStore,
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    #[expect(
        clippy::too_many_arguments,
        reason = "private; each argument is one claim"
    )]
    pub(crate) async fn issue_access_token(
        &self,
        grant_type: GrantType,
        grant_id: Option<&str>,
        subject: &str,
        client_id: &str,
        scope: &str,
        resources: &[String],
        dpop_jkt: Option<&str>,
        now: UnixTime,
    ) -> Result<String, IssueError> {
        let mut claims = self.access_token_claims(
            grant_type, grant_id, subject, client_id, scope, resources, now,
        )?;
        claims.cnf = dpop_jkt.map(Confirmation::jkt);
        self.encode_access_token(&claims).await
    }

    /// The RFC 9068 claims of a new access token, with the application's extra claims.
    #[expect(
        clippy::too_many_arguments,
        reason = "private; each argument is one claim"
    )]
    pub(crate) fn access_token_claims(
        &self,
        grant_type: GrantType,
        grant_id: Option<&str>,
        subject: &str,
        client_id: &str,
        scope: &str,
        resources: &[String],
        now: UnixTime,
    ) -> Result<AccessTokenClaims, IssueError> {
        let mut extra = match &self.config.customizer {
            Some(customizer) => customizer.extra_claims(&TokenContext {
                grant_type,
                subject,
                client_id,
                scope,
                audience: resources,
            }),
            None => serde_json::Map::new(),
        };
        extra.retain(|name, _| !RESERVED_CLAIMS.contains(&name.as_str()));
        Ok(AccessTokenClaims {
            extra,
            iss: self.issuer_str(),
            sub: subject.to_owned(),
            aud: Audience::from_resources(resources),
            client_id: client_id.to_owned(),
            scope: scope.to_owned(),
            jti: match grant_id {
                Some(grant_id) => format!("{grant_id}.{}", random::identifier(&*self.rng)?),
                None => random::identifier(&*self.rng)?,
            },
            iat: now.0,
            exp: now.plus(self.config.access_token_ttl).0,
            sub_type: Some(if grant_type == GrantType::ClientCredentials {
                SubjectType::Client
            } else {
                SubjectType::User
            }),
            cnf: None,
        })
    }

    /// Encodes claims as the configured format: a JWT signed with the current key (`typ:
    /// at+jwt`, RFC 9068 §2.1), or an opaque random token whose claims are stored by hash.
    pub(crate) async fn encode_access_token(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<String, IssueError> {
        match self.config.access_token_format {
            AccessTokenFormat::Jwt => {
                let keys = self.keys();
                let key = keys.current();
                let mut header = Header::new(key.algorithm());
                header.typ = Some("at+jwt".into());
                header.kid = Some(key.kid().to_owned());
                Ok(key.sign_jwt(&header, claims)?)
            }
            AccessTokenFormat::Opaque => {
                let token = random::random_token(&*self.rng)?;
                let record = AccessTokenRecord {
                    token_hash: SecretHash::of(&token),
                    grant_id: claims.grant_id().map(GrantId::from),
                    client_id: ClientId::from(claims.client_id.as_str()),
                    claims: serde_json::to_value(claims)?,
                    expires_at: UnixTime(claims.exp),
                };
                self.model
                    .opaque_tokens()
                    .ok_or(IssueError::NoOpaqueStore)?
                    .insert_access_token(record)
                    .await
                    .map_err(|e| IssueError::Storage(Box::new(e)))?;
                Ok(token)
            }
        }
    }

    /// The claims of an access token this engine issued: a JWT with a valid signature from one
    /// of our keys and our issuer, or an opaque token we stored. Expiry and revocation are for
    /// the caller to judge. `Ok(None)` when the token is not ours.
    pub(crate) async fn decode_own_access_token(
        &self,
        token: &str,
    ) -> Result<Option<AccessTokenClaims>, M::Error> {
        if token.bytes().filter(|b| *b == b'.').count() != 2 {
            let Some(store) = self.model.opaque_tokens() else {
                return Ok(None);
            };
            let Some(record) = store.find_access_token(&SecretHash::of(token)).await? else {
                return Ok(None);
            };
            return Ok(serde_json::from_value(record.claims).ok());
        }
        // Only access tokens (RFC 9068 §2.1): the same key signs the ID-JAGs and ID tokens
        // this server issues, which must never pass for access tokens here (introspection,
        // token exchange).
        Ok(self.decode_own_jwt(
            token,
            |t| t.eq_ignore_ascii_case("at+jwt") || t.eq_ignore_ascii_case("application/at+jwt"),
            false,
        ))
    }

    /// The claims of a JWT this server signed with a key it still publishes (or holds), of a
    /// `typ` that `typ_is` accepts, with `iss` this server; `None` otherwise. With
    /// `asymmetric_only`, a shared secret's signature (HS256, which resource servers hold
    /// too) does not count. The caller checks `aud`, `exp` and what the claims refer to.
    pub(crate) fn decode_own_jwt<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        typ_is: impl Fn(&str) -> bool,
        asymmetric_only: bool,
    ) -> Option<T> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if !header.typ.as_deref().is_some_and(typ_is) {
            return None;
        }
        let keys = self.keys();
        let key = keys.find(header.kid.as_deref()?)?;
        if asymmetric_only && key.public_jwk().is_none() {
            return None;
        }
        let mut validation = Validation::new(key.algorithm());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer_str()]);
        jsonwebtoken::decode::<T>(token, key.decoding_key(), &validation)
            .ok()
            .map(|d| d.claims)
    }
}
