//! This server as the enterprise identity provider: token exchange (RFC 8693) that issues an
//! identity assertion JWT authorization grant (ID-JAG) for one of its users to another
//! authorization server (draft-ietf-oauth-identity-assertion-authz-grant §4.3, "Token
//! Exchange"), which presents it there with the JWT bearer grant.
//!
//! - The audiences are configured ([`AssertionAudience`]): which authorization servers,
//!   which resources and scope there, and which clients here may ask, with the id each has
//!   there (the draft's §6, "Cross-Domain Client ID Handling": the ID-JAG's `client_id` is the
//!   client's id at the audience).
//! - The caller is a confidential client the operator added or vouched for (token exchange
//!   is never open to self-registered clients), which registered the token-exchange grant.
//! - The subject token says who the user is, in one of two forms, both from the client's
//!   sign-in here:
//!   - an ID token (`urn:ietf:params:oauth:token-type:id_token`, the draft's §4.3 and MCP's
//!     enterprise-managed authorization), which this server issues for the `openid` scope
//!     (`crate::id_token`): signed by this server, `typ: JWT`, unexpired, its `aud` the
//!     authenticated client (§4.3: "MUST validate"), of a live grant;
//!   - the refresh token (`urn:ietf:params:oauth:token-type:refresh_token`), which lives as
//!     long as the sign-in where an ID token lives minutes: checked as a refresh would check
//!     it (this client's, unexpired, not yet rotated, of a live grant, held to its DPoP key if
//!     bound), and not rotated by the exchange.
//!
//!   Either way the user must still be enabled.
//! - The ID-JAG names the user's subject here, the audience's issuer as `aud`, the mapped
//!   `client_id`, the granted `resource` and `scope` (within the audience's), a fresh `jti`,
//!   and lives `lifetime` seconds (five minutes by default). It is signed with this server's
//!   current access-token key and `typ: oauth-id-jag+jwt`, so the audience verifies it with
//!   this server's JWK Set.

use mcpauth_oauth_types::{OAuthError, Scope, TokenErrorCode, TokenResponse};
use serde::Serialize;

use crate::dpop::{BoundGrant, check_binding};
use crate::error::{TokenError, internal};
use crate::grant::token_exchange::Exchange;
use crate::model::{ClientRecord, OAuthServerModel, SecretHash, TokenEndpointAuthMethod};
use crate::{TokenEngine, UnixTime, random};

/// RFC 8693 §3 token type of an identity assertion JWT authorization grant (the draft's §4.3).
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// RFC 8693 §3: a refresh token, one of the two subject tokens this server takes for an
/// ID-JAG (with [`ID_TOKEN_TYPE`]).
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";
/// RFC 8693 §3: an OpenID Connect ID token, the subject token the draft's §4.3 names.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// The draft's §7.2: what a resource authorization server lists in
/// `authorization_grant_profiles_supported` when it accepts ID-JAGs.
pub const ID_JAG_GRANT_PROFILE: &str = "urn:ietf:params:oauth:grant-profile:id-jag";

/// One client here that may obtain ID-JAGs for an [`AssertionAudience`], and its client id
/// there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AudienceClient {
    /// The client here (the one that authenticates for the exchange).
    pub client_id: String,
    /// Its client id at the audience: the ID-JAG's `client_id`.
    pub client_id_there: String,
}

/// An authorization server this server issues ID-JAGs for, as an enterprise identity provider.
///
/// ```
/// use mcpauth_token_engine::{AssertionAudience, EngineConfig};
///
/// let mut config = EngineConfig::new("https://idp.example.com".parse()?)?;
/// config.identity_assertion_audiences(vec![
///     AssertionAudience::new(
///         "https://auth.mcp.example.com",
///         vec!["https://mcp.example.com/mcp".into()],
///         vec!["mcp:tools".into()],
///     )
///     // The agent, `agent-7` here, is `3f9c…` at that authorization server.
///     .client("agent-7", "3f9c2b7e1d"),
/// ]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AssertionAudience {
    /// Its issuer identifier: the `audience` clients ask for and the ID-JAG's `aud`.
    pub issuer: String,
    /// The resources there an ID-JAG may name (all of them when the client names none).
    pub resources: Vec<String>,
    /// The scope there an ID-JAG may carry (all of it when the client asks for none; empty:
    /// ID-JAGs carry no scope, and the audience decides).
    pub scope: Vec<String>,
    /// The clients here that may ask, with their ids there.
    pub clients: Vec<AudienceClient>,
    /// How long an ID-JAG lives, in seconds.
    pub lifetime: u64,
}

impl AssertionAudience {
    /// The authorization server `issuer`, for `resources` within `scope`; no client may ask
    /// until [`client`](Self::client) names one; ID-JAGs live five minutes.
    #[must_use]
    pub fn new(issuer: &str, resources: Vec<String>, scope: Vec<String>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            resources,
            scope,
            clients: Vec::new(),
            lifetime: 300,
        }
    }

    /// The client `client_id` here may ask; it is `client_id_there` at the audience.
    #[must_use]
    pub fn client(mut self, client_id: &str, client_id_there: &str) -> Self {
        self.clients.push(AudienceClient {
            client_id: client_id.to_owned(),
            client_id_there: client_id_there.to_owned(),
        });
        self
    }

    /// How long an ID-JAG lives, in seconds (at least one).
    #[must_use]
    pub fn lifetime(mut self, seconds: u64) -> Self {
        self.lifetime = seconds.max(1);
        self
    }
}

/// The claims of an issued ID-JAG (the draft's §3.1).
#[derive(Serialize)]
struct IdJagClaims<'a> {
    iss: String,
    sub: &'a str,
    aud: &'a str,
    client_id: &'a str,
    jti: String,
    iat: u64,
    exp: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    resource: Option<serde_json::Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<String>,
    /// The draft's §8.6.1: bound to the key of the exchange's DPoP proof, if one came.
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<crate::Confirmation>,
}

fn error(code: TokenErrorCode, description: &'static str) -> TokenError {
    OAuthError::new(code, description)
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Whether this engine issues ID-JAGs (some audience is configured).
    pub(crate) fn issues_identity_assertions(&self) -> bool {
        !self.config.assertion_audiences.is_empty()
    }

    /// Token exchange with `requested_token_type` [`ID_JAG_TOKEN_TYPE`] by `client`.
    pub(crate) async fn issue_identity_assertion(
        &self,
        client: &ClientRecord,
        request: Exchange<'_>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        if !self.issues_identity_assertions() {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "this server issues no identity assertions (requested_token_type id-jag)",
            ));
        }
        // The draft's §8.1: for confidential clients only.
        if client.auth_method() == TokenEndpointAuthMethod::None {
            return Err(error(
                TokenErrorCode::UnauthorizedClient,
                "identity assertions are issued to confidential clients only",
            ));
        }
        if request.has_actor_token {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "actor_token is not supported: the authenticated client is the actor",
            ));
        }
        if ![ID_TOKEN_TYPE, REFRESH_TOKEN_TYPE].contains(&request.subject_token_type) {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "subject_token_type must be urn:ietf:params:oauth:token-type:id_token (an ID token from this server) or urn:ietf:params:oauth:token-type:refresh_token",
            ));
        }
        let [audience_name] = request.audience else {
            return Err(error(
                TokenErrorCode::InvalidRequest,
                "name exactly one audience: the issuer identifier of the authorization server the identity assertion is for",
            ));
        };
        let audience = self
            .config
            .assertion_audiences
            .iter()
            .find(|a| a.issuer == *audience_name)
            .ok_or_else(|| {
                error(
                    TokenErrorCode::InvalidTarget,
                    "this server issues no identity assertions for that audience",
                )
            })?;
        let mapped = audience
            .clients
            .iter()
            .find(|c| client.client_id == c.client_id)
            .ok_or_else(|| {
                error(
                    TokenErrorCode::UnauthorizedClient,
                    "this client may not obtain identity assertions for that audience",
                )
            })?;

        // The user, from the subject token of their sign-in here.
        let subject = if request.subject_token_type == ID_TOKEN_TYPE {
            self.subject_of_id_token(client, request.subject_token.secret(), now)
                .await?
        } else {
            self.subject_of_refresh_token(client, &request, now).await?
        };
        let active = self.subject_is_active(&subject).await.map_err(|e| {
            OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e)
        })?;
        if !active {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "the user is disabled or was removed",
            ));
        }

        // What the audience's policy grants: the resources and scope asked for, within it.
        let resources: Vec<String> = if request.resource.is_empty() {
            audience.resources.clone()
        } else if request
            .resource
            .iter()
            .all(|r| audience.resources.contains(r))
        {
            request.resource.to_vec()
        } else {
            return Err(error(
                TokenErrorCode::InvalidTarget,
                "a requested resource is not one this server issues identity assertions for at that audience",
            ));
        };
        let ceiling = Scope::from_tokens(audience.scope.iter().cloned());
        let scope = match request.scope {
            // No scope in the policy: the ID-JAG carries none, and the audience decides
            // (the draft lets the provider grant a subset; clients send the scope the MCP
            // server advertises, which need not be refused here).
            Some(_) if ceiling.is_empty() => ceiling,
            Some(asked) => {
                let granted = Scope::from_tokens(
                    asked
                        .iter()
                        .filter(|s| ceiling.contains(s))
                        .map(str::to_owned),
                );
                if granted.is_empty() && !asked.is_empty() {
                    return Err(error(
                        TokenErrorCode::InvalidScope,
                        "none of the requested scope may be granted for that audience",
                    ));
                }
                granted
            }
            None => ceiling,
        };

        let scope_text = scope.to_string();
        let claims = IdJagClaims {
            iss: self.issuer_str(),
            sub: &subject,
            aud: &audience.issuer,
            client_id: &mapped.client_id_there,
            jti: random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?,
            iat: now.0,
            exp: now.0.saturating_add(audience.lifetime),
            resource: match resources.as_slice() {
                [] => None,
                [one] => Some(one.clone().into()),
                many => Some(many.to_vec().into()),
            },
            scope: (!scope_text.is_empty()).then(|| scope_text.clone()),
            cnf: request.dpop_jkt.map(crate::Confirmation::jkt),
        };
        let keys = self.keys();
        let key = keys.current();
        // The audience verifies the ID-JAG with this server's published keys: a shared
        // secret (HS256, which resource servers here also hold) would be no signature there.
        if key.public_jwk().is_none() {
            return Err(error(
                TokenErrorCode::ServerError,
                "identity assertions need an asymmetric signing key (ES256, EdDSA or RS256); this server signs with a shared secret",
            ));
        }
        let mut header = jsonwebtoken::Header::new(key.algorithm());
        header.typ = Some(crate::ID_JAG_TYPE.into());
        header.kid = Some(key.kid().to_owned());
        let assertion = key
            .sign_jwt(&header, &claims)
            .map_err(|e| internal("signing failure", e))?;
        // The draft's §4.3.2: `token_type` N_A (it is not an access token), no refresh token.
        let mut response = TokenResponse::bearer(assertion, audience.lifetime);
        response.token_type = "N_A".into();
        response.issued_token_type = Some(ID_JAG_TOKEN_TYPE.into());
        response.scope = (!scope_text.is_empty()).then_some(scope_text);
        Ok(super::Granted {
            response,
            subject: subject.to_string(),
        })
    }

    /// The user of a refresh token from their sign-in, checked as a refresh checks it.
    async fn subject_of_refresh_token(
        &self,
        client: &ClientRecord,
        request: &Exchange<'_>,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let (record, grant_live) = self
            .model
            .find_refresh_and_grant(&SecretHash::of(request.subject_token.secret()))
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(|| error(TokenErrorCode::InvalidGrant, "subject_token is invalid"))?;
        if record.client_id != client.client_id {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token was issued to another client",
            ));
        }
        if record.expires_at <= now {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token has expired",
            ));
        }
        // A replaced refresh token presented again is a replay, as at the refresh grant:
        // past the reuse grace window the sign-in (the grant) is revoked.
        if let Some(rotated_at) = record.rotated_at {
            if now.seconds_since(rotated_at) > self.config.refresh_reuse_grace {
                self.model
                    .revoke_grant(&record.grant_id, now)
                    .await
                    .map_err(|e| internal("storage failure", e))?;
                return Err(error(
                    TokenErrorCode::InvalidGrant,
                    "subject_token was replaced and is presented again: a replay; the sign-in is revoked and the user must sign in again",
                ));
            }
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token was replaced by a newer refresh token: present that one",
            ));
        }
        if !grant_live {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token has been revoked",
            ));
        }
        check_binding(
            &self.config.dpop,
            BoundGrant::RefreshToken,
            record.dpop_jkt.as_deref(),
            request.dpop_jkt,
        )?;
        Ok(record.subject)
    }

    /// The user of an ID token this server issued to `client` (the draft's §4.3), whose grant
    /// is still live.
    async fn subject_of_id_token(
        &self,
        client: &ClientRecord,
        token: &str,
        now: UnixTime,
    ) -> Result<String, TokenError> {
        let claims = self.decode_own_id_token(token).ok_or_else(|| {
            error(
                TokenErrorCode::InvalidGrant,
                "subject_token is not an ID token this server issued",
            )
        })?;
        // The draft's §4.3: the ID token's audience MUST be the authenticated client.
        if !claims.is_for(client.client_id.as_str()) {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token was issued to another client",
            ));
        }
        if claims.exp <= now.0 {
            return Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token has expired: sign in again, or refresh for a new ID token",
            ));
        }
        let grant = match claims.grant_id() {
            Some(grant_id) => self
                .model
                .find_grant(&grant_id)
                .await
                .map_err(|e| internal("storage failure", e))?,
            None => None,
        };
        match grant {
            Some(grant)
                if grant.revoked_at.is_none()
                    && grant.client_id == client.client_id
                    && grant.subject == claims.sub =>
            {
                Ok(claims.sub)
            }
            _ => Err(error(
                TokenErrorCode::InvalidGrant,
                "subject_token has been revoked",
            )),
        }
    }
}
