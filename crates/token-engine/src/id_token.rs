//! OpenID Connect Core 1.0 ID tokens, issued for one purpose: so that a client can present the
//! user's identity to this server again, as the subject token of an identity assertion
//! exchange (draft-ietf-oauth-identity-assertion-authz-grant §4.3; `grant::id_jag_issuance`).
//!
//! - §3.1.2.1: a grant whose scope includes `openid` gets an ID token with every token
//!   response of the code, device and refresh grants (§12.2: a refresh's ID token keeps `iss`,
//!   `sub` and `aud`, and carries no `nonce`). The authorization request's `nonce` is kept
//!   with the code and echoed (§3.1.3.3).
//! - §2: `iss`, `sub` (the user), `aud` (the client id), `iat`, `exp` (the access-token
//!   lifetime), `nonce`; `jti` is `<grant_id>.<random>`, as in access tokens, so an exchange
//!   finds the user's grant and refuses the ID tokens of a revoked one.
//! - §10.1: signed with the server's current key, asymmetric only (an HS256 secret, which
//!   resource servers hold too, could not convince a client); `typ: JWT`, which no access
//!   token (`at+jwt`) or ID-JAG (`oauth-id-jag+jwt`) of this server carries, so none of them
//!   passes for another.
//!
//! This server is not an OpenID Provider: it serves no `openid-configuration`, UserInfo or
//! session management, and ignores `prompt`, `max_age` and `claims` (so it never claims an
//! `auth_time` it did not check).

use mcpauth_oauth_types::{OAuthError, TokenErrorCode};
use serde::{Deserialize, Serialize};

use crate::access_token::Audience;
use crate::error::{TokenError, internal};
use crate::model::{GrantId, OAuthServerModel};
use crate::{TokenEngine, UnixTime, random};

/// The scope that asks for an ID token (OpenID Connect Core §3.1.2.1).
pub const OPENID_SCOPE: &str = "openid";

/// The `typ` header of this server's ID tokens.
const ID_TOKEN_TYP: &str = "JWT";

/// The claims of an ID token (OpenID Connect Core §2).
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct IdTokenClaims {
    pub(crate) iss: String,
    pub(crate) sub: String,
    pub(crate) aud: Audience,
    pub(crate) iat: u64,
    pub(crate) exp: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) nonce: Option<String>,
    /// `<grant_id>.<random>`.
    pub(crate) jti: String,
}

impl IdTokenClaims {
    /// Whether `client_id` is among the audiences (§2: the client it was issued to).
    pub(crate) fn is_for(&self, client_id: &str) -> bool {
        match &self.aud {
            Audience::One(one) => one == client_id,
            Audience::Many(many) => many.iter().any(|a| a == client_id),
        }
    }

    /// The grant the ID token was issued from.
    pub(crate) fn grant_id(&self) -> Option<GrantId> {
        self.jti
            .split_once('.')
            .map(|(grant, _)| GrantId::from(grant))
    }
}

/// Whether a space-separated scope includes `openid`.
pub(crate) fn asks_for_id_token(scope: &str) -> bool {
    scope.split(' ').any(|s| s == OPENID_SCOPE)
}

/// What an ID token is issued for.
pub(crate) struct IdTokenFor<'a> {
    pub(crate) grant_id: &'a GrantId,
    pub(crate) subject: &'a str,
    pub(crate) client_id: &'a str,
    /// The authorization request's `nonce` (code redemption only).
    pub(crate) nonce: Option<&'a str>,
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Whether this server can sign ID tokens: its current key is asymmetric.
    pub(crate) fn signs_id_tokens(&self) -> bool {
        self.keys().current().public_jwk().is_some()
    }

    /// A signed ID token (OpenID Connect Core §2).
    pub(crate) fn issue_id_token(
        &self,
        issue: &IdTokenFor<'_>,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let keys = self.keys();
        let key = keys.current();
        if key.public_jwk().is_none() {
            return Err(OAuthError::new(
                TokenErrorCode::ServerError,
                "ID tokens need an asymmetric signing key (ES256, EdDSA or RS256); this server signs with a shared secret",
            ));
        }
        let claims = IdTokenClaims {
            iss: self.issuer_str(),
            sub: issue.subject.to_owned(),
            aud: Audience::One(issue.client_id.to_owned()),
            iat: now.0,
            exp: now.0.saturating_add(self.config.access_token_ttl),
            nonce: issue.nonce.map(str::to_owned),
            jti: format!(
                "{}.{}",
                issue.grant_id.as_str(),
                random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?
            ),
        };
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = Some(ID_TOKEN_TYP.into());
        header.kid = Some(key.kid().to_owned());
        key.sign_jwt(&header, &claims)
            .map_err(|e| internal("signing failure", e))
    }

    /// The claims of an ID token this server signed (any key it still publishes), or `None`.
    /// Checks the signature, `typ` and `iss`; the caller checks `aud`, `exp` and the grant.
    pub(crate) fn decode_own_id_token(&self, token: &str) -> Option<IdTokenClaims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        if header.typ.as_deref() != Some(ID_TOKEN_TYP) {
            return None;
        }
        let keys = self.keys();
        let key = keys.find(header.kid.as_deref()?)?;
        // An HS256 secret is shared with resource servers: it signs no ID token here.
        key.public_jwk()?;
        let mut validation = jsonwebtoken::Validation::new(key.algorithm());
        validation.validate_exp = false;
        validation.validate_aud = false;
        validation.required_spec_claims.clear();
        validation.set_issuer(&[self.issuer_str()]);
        jsonwebtoken::decode::<IdTokenClaims>(token, key.decoding_key(), &validation)
            .ok()
            .map(|d| d.claims)
    }
}
