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
//!   resource servers hold too, could convince no client); `typ: JWT`, which no access
//!   token (`at+jwt`) or ID-JAG (`oauth-id-jag+jwt`) of this server carries, so none of them
//!   passes for another.
//!
//! This server is not an OpenID Provider: it serves no `openid-configuration`, UserInfo or
//! session management. An `openid` request's `prompt=none`, `prompt=login` and `max_age`,
//! which it cannot honour, are refused at the authorization endpoint (`authorize.rs`), so it
//! never claims an `auth_time` it did not check. With an HS256 key it issues no ID tokens and
//! `openid` is an ordinary scope.

use serde::{Deserialize, Serialize};

use crate::access_token::{Audience, grant_of_jti};
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
    /// Whether the ID token was issued to `client_id`: this server names one audience, the
    /// client (§2), and takes no other form.
    pub(crate) fn is_for(&self, client_id: &str) -> bool {
        matches!(&self.aud, Audience::One(one) if one == client_id)
    }

    /// The grant the ID token was issued from.
    pub(crate) fn grant_id(&self) -> Option<GrantId> {
        grant_of_jti(&self.jti).map(GrantId::from)
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
    /// Whether this server issues ID tokens: its current key is asymmetric. With an HS256
    /// secret (which resource servers hold too) `openid` stays an ordinary scope, as it was
    /// before ID tokens, and nothing advertises them.
    pub(crate) fn signs_id_tokens(&self) -> bool {
        self.keys().current().public_jwk().is_some()
    }

    /// `id_token_signing_alg_values_supported` (OpenID Connect Discovery §3): the algorithms
    /// of the keys that sign or signed ID tokens still in use (current first); empty when
    /// this server issues none, or when its `scopes_supported` leaves `openid` out.
    pub(crate) fn id_token_algorithms(&self) -> Vec<String> {
        let supported = &self.config.scopes_supported;
        if !self.signs_id_tokens()
            || !(supported.is_empty() || supported.iter().any(|s| s == OPENID_SCOPE))
        {
            return Vec::new();
        }
        let mut algorithms: Vec<String> = Vec::new();
        for key in self.keys().iter().filter(|k| k.public_jwk().is_some()) {
            let name = key.algorithm_name().to_owned();
            if !algorithms.contains(&name) {
                algorithms.push(name);
            }
        }
        algorithms
    }

    /// A signed ID token (OpenID Connect Core §2), or `None` when this server signs with a
    /// shared secret.
    pub(crate) fn issue_id_token(
        &self,
        issue: &IdTokenFor<'_>,
        now: UnixTime,
    ) -> Result<Option<String>, TokenError> {
        let keys = self.keys();
        let key = keys.current();
        if key.public_jwk().is_none() {
            return Ok(None);
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
            .map(Some)
            .map_err(|e| internal("signing failure", e))
    }

    /// The claims of an ID token this server signed with an asymmetric key it still
    /// publishes, or `None`. Checks the signature, `typ` and `iss`; the caller checks `aud`,
    /// `exp` and the grant.
    pub(crate) fn decode_own_id_token(&self, token: &str) -> Option<IdTokenClaims> {
        self.decode_own_jwt(token, |typ| typ == ID_TOKEN_TYP, true)
    }
}
