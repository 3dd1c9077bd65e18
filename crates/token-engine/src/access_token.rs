//! RFC 9068: JWT access tokens (`typ: at+jwt`), signed with the engine's key.
//!
//! `jti` is `<grant_id>.<random>`: the grant id is not a secret, and carrying it lets the
//! revocation and introspection endpoints find the grant of an access token without a table
//! of issued tokens. Tokens that belong to no grant (`client_credentials`) have a plain
//! random `jti`.

use jsonwebtoken::{Header, Validation};
use serde::{Deserialize, Serialize};

use crate::TokenEngine;
use crate::customize::{RESERVED_CLAIMS, TokenContext};
use crate::model::OAuthServerModel;
use crate::random::{self, RandomError};
use crate::time::UnixTime;
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
    /// Claims added by the application's [`crate::TokenCustomizer`].
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
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

impl AccessTokenClaims {
    /// The grant id carried in `jti`.
    #[must_use]
    pub fn grant_id(&self) -> Option<&str> {
        self.jti.split_once('.').map(|(grant, _)| grant)
    }
}

/// Signing failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub(crate) enum IssueError {
    #[error(transparent)]
    Random(#[from] RandomError),
    #[error("signing the access token failed: {0}")]
    Sign(#[from] jsonwebtoken::errors::Error),
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    #[expect(
        clippy::too_many_arguments,
        reason = "private; each argument is one claim"
    )]
    pub(crate) fn issue_access_token(
        &self,
        grant_type: GrantType,
        grant_id: Option<&str>,
        subject: &str,
        client_id: &str,
        scope: &str,
        resources: &[String],
        now: UnixTime,
    ) -> Result<String, IssueError> {
        let claims = self.access_token_claims(
            grant_type, grant_id, subject, client_id, scope, resources, now,
        )?;
        self.sign_access_token(&claims)
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
        })
    }

    /// Signs claims with the current key, as `typ: at+jwt` (RFC 9068 §2.1).
    pub(crate) fn sign_access_token(
        &self,
        claims: &AccessTokenClaims,
    ) -> Result<String, IssueError> {
        let key = self.keys.current();
        let mut header = Header::new(key.algorithm());
        header.typ = Some("at+jwt".into());
        header.kid = Some(key.kid().to_owned());
        Ok(jsonwebtoken::encode(&header, claims, key.encoding_key())?)
    }

    /// Verifies an access token this engine issued (signature and issuer only; the caller
    /// decides what expiry means for it).
    pub(crate) fn decode_own_access_token(&self, token: &str) -> Option<AccessTokenClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.find(header.kid.as_deref()?)?;
        let mut validation = Validation::new(key.algorithm());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer_str()]);
        jsonwebtoken::decode::<AccessTokenClaims>(token, key.decoding_key(), &validation)
            .ok()
            .map(|d| d.claims)
    }
}
