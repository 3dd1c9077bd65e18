//! RFC 6749 §4.1.1–§4.1.2: the authorization endpoint, with PKCE (RFC 7636 §4.3, S256 only),
//! resource indicators (RFC 8707 §2) and the `iss` response parameter (RFC 9207).
//!
//! Until the client and its redirect URI are known to be valid, errors are shown to the user
//! and never redirected (RFC 6749 §4.1.2.1), so the endpoint cannot be used as an open
//! redirector. Unknown client and unregistered redirect URI look the same from outside.

use mcpauth_oauth_types::{
    AuthorizationRequest, AuthorizeErrorCode, FormParams, GrantType, OAuthError, Scope,
};
use mcpauth_pkce::CodeChallenge;
use serde::{Deserialize, Serialize};
use url::Url;

use crate::UnixTime;
use crate::client_metadata_document::{
    DocumentFetch, is_client_metadata_document_url, on_origin_of,
};
use crate::config::ResourcePolicy;
use crate::error::{AuthorizeError, internal};
use crate::model::{AuthorizationCodeRecord, ClientId, GrantId, GrantRecord, OAuthServerModel};
use crate::{SecretHash, TokenEngine, random};
use mcpauth_dcr::redirect_uri_matches;

/// What the caller of [`TokenEngine::authorize`] must do next.
#[derive(Debug)]
#[must_use]
#[non_exhaustive]
pub enum AuthorizeOutcome {
    /// The caller MUST redirect the user agent to this location (302/303).
    Redirect(AuthorizationRedirect),
    /// The request cannot be redirected safely: the caller MUST show this error to the user
    /// and MUST NOT redirect.
    ShowError(AuthorizeError),
    /// The request is valid: the caller MUST authenticate the user and ask for consent, then
    /// pass the pending authorization to [`TokenEngine::approve`] or [`TokenEngine::deny`].
    NeedsConsent(PendingAuthorization),
    /// The `client_id` is a Client ID Metadata Document URL whose document is not cached (or
    /// has expired): the caller MUST fetch it SSRF-safely (within its per-caller limit,
    /// [`TokenEngine::allow_client_metadata_fetch`]), pass it to
    /// [`TokenEngine::accept_client_metadata_document`], and call `authorize` again. If the
    /// fetch fails, the caller MUST show an error and MUST NOT redirect.
    NeedsClientMetadata(crate::DocumentFetch),
}

/// What the consent page can say about who the client is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum ClientIdentity {
    /// Registered by the operator.
    PreRegistered,
    /// Registered itself (RFC 7591): its name is unverified.
    SelfRegistered,
    /// Published a metadata document at a URL on this host: the host is verified by TLS.
    MetadataDocument {
        /// The host of the `client_id` URL.
        host: String,
    },
}

impl ClientIdentity {
    /// How far `client`'s identity is verified.
    #[must_use]
    pub fn of(client: &crate::model::ClientRecord) -> Self {
        if client.document_expires_at.is_some() {
            Self::MetadataDocument {
                host: Url::parse(client.client_id.as_str())
                    .ok()
                    .and_then(|u| u.host_str().map(str::to_owned))
                    .unwrap_or_default(),
            }
        } else if client.is_self_registered() {
            Self::SelfRegistered
        } else {
            Self::PreRegistered
        }
    }
}

/// Where to send the user agent after an authorization decision.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AuthorizationRedirect {
    /// The full redirect URI with `code` (or `error`), `state` and `iss`.
    pub location: String,
}

/// A validated authorization request waiting for the user's decision.
///
/// Its fields are read-only and it cannot be copied, so a page cannot widen what is approved
/// or decide twice: `approve` and `deny` consume it. Between the sign-in and consent pages,
/// keep it with [`persist`](Self::persist) and [`restore`](Self::restore) (or as part of
/// your own serde structure), server-side: whoever can edit it can mint codes.
#[derive(Debug, PartialEq, Eq, Serialize, Deserialize)]
#[must_use = "a pending authorization must be approved or denied"]
#[non_exhaustive]
pub struct PendingAuthorization {
    /// The client asking.
    client_id: ClientId,
    /// The client's display name, if it registered one.
    client_name: Option<String>,
    /// How far the client's identity is verified, for the consent page.
    client_identity: ClientIdentity,
    /// The redirect URI to answer at.
    redirect_uri: String,
    /// Whether the request carried `redirect_uri` explicitly.
    redirect_uri_in_request: bool,
    /// The scope requested (after defaults).
    scope: String,
    /// The resources (RFC 8707) requested.
    resources: Vec<String>,
    /// The client's `state`, returned untouched.
    state: Option<String>,
    /// The S256 `code_challenge`.
    code_challenge: String,
    /// Whether the client's identity is assured, so that a consent page may remember the
    /// decision and skip itself next time: the client authenticates at the token endpoint,
    /// or its redirect URI is an `https` URL only it receives. Never for a public client
    /// whose redirect is a loopback or private-use URI, which any local program can claim
    /// (RFC 8252 §8.6).
    #[serde(default)]
    consent_may_be_remembered: bool,
    /// The DPoP key thumbprint the code is to be bound to (RFC 9449 §10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    dpop_jkt: Option<String>,
    /// The `nonce` of an OpenID Connect request (scope `openid`), for the ID token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    nonce: Option<String>,
}

impl PendingAuthorization {
    /// The requested scope as a set.
    #[must_use]
    pub fn requested_scope(&self) -> Scope {
        Scope::parse(&self.scope).unwrap_or_default()
    }

    /// The client asking.
    #[must_use]
    pub fn client_id(&self) -> &str {
        self.client_id.as_str()
    }

    /// The client's display name, if it registered one (its own claim unless
    /// [`client_identity`](Self::client_identity) says otherwise).
    #[must_use]
    pub fn client_name(&self) -> Option<&str> {
        self.client_name.as_deref()
    }

    /// How far the client's identity is verified, for the consent page.
    #[must_use]
    pub fn client_identity(&self) -> &ClientIdentity {
        &self.client_identity
    }

    /// The redirect URI the answer goes to.
    #[must_use]
    pub fn redirect_uri(&self) -> &str {
        &self.redirect_uri
    }

    /// The scope requested (after defaults), space-separated.
    #[must_use]
    pub fn scope(&self) -> &str {
        &self.scope
    }

    /// The resources (RFC 8707) requested.
    #[must_use]
    pub fn resources(&self) -> &[String] {
        &self.resources
    }

    /// The client's `state`, returned untouched.
    #[must_use]
    pub fn state(&self) -> Option<&str> {
        self.state.as_deref()
    }

    /// Whether the client's identity is assured, so that a consent page may remember the
    /// decision and skip itself next time (never for a public client whose redirect is a
    /// loopback or private-use URI, RFC 8252 §8.6).
    #[must_use]
    pub fn consent_may_be_remembered(&self) -> bool {
        self.consent_may_be_remembered
    }

    /// The request as text, to keep between the sign-in and consent pages. Keep it
    /// server-side (or sealed): [`restore`](Self::restore) trusts what it reads, so whoever
    /// can edit the stored text can mint codes.
    ///
    /// # Errors
    ///
    /// The request does not serialize (it always does; the error is not hidden).
    pub fn persist(&self) -> Result<String, serde_json::Error> {
        serde_json::to_string(self)
    }

    /// Reads back what [`persist`](Self::persist) wrote. It trusts its input: restore only
    /// what this server persisted and kept where clients cannot write.
    ///
    /// # Errors
    ///
    /// The text is not a persisted authorization request.
    pub fn restore(persisted: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(persisted)
    }
}

fn show(code: AuthorizeErrorCode, description: &'static str) -> AuthorizeOutcome {
    AuthorizeOutcome::ShowError(OAuthError::new(code, description))
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Validates an authorization request from its raw query string (without `?`).
    pub async fn authorize(&self, query: &[u8], now: UnixTime) -> AuthorizeOutcome {
        let mut request =
            match FormParams::parse(query).and_then(|f| AuthorizationRequest::from_form(&f)) {
                Ok(request) => request,
                Err(e) => {
                    return AuthorizeOutcome::ShowError(OAuthError::new(
                        AuthorizeErrorCode::InvalidRequest,
                        e.to_string(),
                    ));
                }
            };
        let Some(client_id) = request.client_id.as_deref() else {
            return show(AuthorizeErrorCode::InvalidRequest, "client_id is missing");
        };
        let document_client =
            self.config.client_metadata_documents && is_client_metadata_document_url(client_id);
        let found = match self.model.find_client(&ClientId::from(client_id)).await {
            Ok(found) => found,
            Err(e) => return AuthorizeOutcome::ShowError(internal("storage failure", e)),
        };
        // A metadata-document client without a fresh cached document: fetch it first.
        let fresh = found
            .as_ref()
            .is_some_and(|c| c.document_expires_at.is_some_and(|until| until > now));
        if document_client && !fresh {
            return match Url::parse(client_id) {
                Ok(url) if on_origin_of(&url, &self.config.issuer) => show(
                    AuthorizeErrorCode::InvalidRequest,
                    "a client_id on this server's own origin is not a client metadata document",
                ),
                Ok(url) => AuthorizeOutcome::NeedsClientMetadata(DocumentFetch::for_authorization(
                    url,
                    request.redirect_uri.clone(),
                )),
                Err(_) => show(
                    AuthorizeErrorCode::InvalidRequest,
                    UNKNOWN_CLIENT_OR_REDIRECT,
                ),
            };
        }
        let Some(client) = found else {
            return show(
                AuthorizeErrorCode::InvalidRequest,
                UNKNOWN_CLIENT_OR_REDIRECT,
            );
        };
        let registered = &client.metadata.redirect_uris;
        let (redirect_uri, in_request) = match request.redirect_uri.as_deref() {
            Some(requested)
                if registered
                    .iter()
                    .any(|r| redirect_uri_matches(r, requested)) =>
            {
                (requested.to_owned(), true)
            }
            Some(_) => {
                return show(
                    AuthorizeErrorCode::InvalidRequest,
                    UNKNOWN_CLIENT_OR_REDIRECT,
                );
            }
            // OAuth 2.1 §4.1.1: optional only when exactly one URI is registered.
            None => match registered.as_slice() {
                [only] => (only.clone(), false),
                _ => {
                    return show(
                        AuthorizeErrorCode::InvalidRequest,
                        "redirect_uri is required: the client registered more than one",
                    );
                }
            },
        };

        // From here on the redirect URI is trusted: errors go back to the client.
        let redirect = |code: AuthorizeErrorCode, description: &str| match self.error_redirect(
            &redirect_uri,
            request.state.as_deref(),
            code,
            description,
        ) {
            Ok(redirect) => AuthorizeOutcome::Redirect(redirect),
            Err(e) => AuthorizeOutcome::ShowError(e),
        };
        match request.response_type.as_deref() {
            Some("code") => {}
            None => {
                return redirect(
                    AuthorizeErrorCode::InvalidRequest,
                    "response_type is missing",
                );
            }
            Some(_) => {
                return redirect(
                    AuthorizeErrorCode::UnsupportedResponseType,
                    "only response_type=code is supported",
                );
            }
        }
        // The code goes back in the query only: a client asking for another mode (form_post,
        // fragment, jwt) would not find it where it looks, or could leak it (a fragment
        // survives redirects). Refused before anything is issued.
        if let Some(mode) = request.response_mode.as_deref()
            && mode != "query"
        {
            return redirect(
                AuthorizeErrorCode::InvalidRequest,
                "response_mode is not supported: this server answers in the query only",
            );
        }
        if !client.allows_grant(GrantType::AuthorizationCode) {
            return redirect(
                AuthorizeErrorCode::UnauthorizedClient,
                "the client did not register the authorization_code grant",
            );
        }
        let Some(challenge) = request.code_challenge.as_deref() else {
            return redirect(
                AuthorizeErrorCode::InvalidRequest,
                "code_challenge is required (PKCE with S256)",
            );
        };
        let challenge =
            match CodeChallenge::parse(challenge, request.code_challenge_method.as_deref()) {
                Ok(challenge) => challenge,
                Err(e) => return redirect(AuthorizeErrorCode::InvalidRequest, &e.to_string()),
            };
        let scope = match self.resolve_scope(request.scope.as_ref(), &client, true) {
            Ok(scope) => scope,
            Err(description) => return redirect(AuthorizeErrorCode::InvalidScope, description),
        };
        let resources = match self.resolve_resources(&request.resource) {
            Ok(resources) => resources,
            Err(description) => return redirect(AuthorizeErrorCode::InvalidTarget, description),
        };
        // RFC 9449 §10: a SHA-256 JWK thumbprint, base64url without padding (43 characters);
        // ignored, like any unknown parameter, by a server without DPoP.
        if !self.config.dpop.is_enabled() {
            request.dpop_jkt = None;
        }
        if let Some(jkt) = request.dpop_jkt.as_deref()
            && !is_thumbprint(jkt)
        {
            return redirect(
                AuthorizeErrorCode::InvalidRequest,
                "dpop_jkt must be the base64url SHA-256 JWK thumbprint (RFC 7638) of the DPoP key",
            );
        }
        // OpenID Connect Core §3.1.2.1, for a request that gets an ID token: what this server
        // cannot honour is refused, never ignored; `nonce` is kept for the ID token.
        let openid = scope.contains(crate::OPENID_SCOPE) && self.signs_id_tokens();
        if openid && let Err((code, description)) = openid_request_is_honoured(&request, in_request)
        {
            return redirect(code, description);
        }
        let nonce = request.nonce.filter(|_| openid);
        if nonce.as_ref().is_some_and(|n| n.len() > MAX_NONCE_LEN) {
            return redirect(
                AuthorizeErrorCode::InvalidRequest,
                "nonce is longer than 512 bytes",
            );
        }
        let consent_may_be_remembered = client.auth_method()
            != crate::model::TokenEndpointAuthMethod::None
            || Url::parse(&redirect_uri).is_ok_and(|u| u.scheme() == "https");
        AuthorizeOutcome::NeedsConsent(PendingAuthorization {
            client_identity: ClientIdentity::of(&client),
            consent_may_be_remembered,
            client_id: client.client_id,
            client_name: client.metadata.client_name,
            redirect_uri,
            redirect_uri_in_request: in_request,
            scope: scope.to_string(),
            resources,
            state: request.state,
            code_challenge: challenge.as_str().to_owned(),
            dpop_jkt: request.dpop_jkt,
            nonce,
        })
    }

    /// The user approved part of the request: like [`Self::approve`], with the scope narrowed
    /// to `granted` (the consent page let the user untick scopes).
    ///
    /// # Errors
    ///
    /// `invalid_scope`, shown to the user, when `granted` is not within the requested scope;
    /// `server_error` when storage or randomness fails.
    pub async fn approve_scope(
        &self,
        mut pending: PendingAuthorization,
        subject: &str,
        granted: &Scope,
        now: UnixTime,
    ) -> Result<AuthorizationRedirect, AuthorizeError> {
        if !granted.is_subset_of(&pending.requested_scope()) {
            return Err(OAuthError::new(
                AuthorizeErrorCode::InvalidScope,
                "the granted scope must be within the requested scope",
            ));
        }
        pending.scope = granted.to_string();
        self.approve(pending, subject, now).await
    }

    /// The user approved: issues a code for `subject` and returns the redirect carrying it.
    ///
    /// # Errors
    ///
    /// `access_denied`, shown to the user, when `subject` is not active
    /// ([`EngineConfig::subject_status`](crate::EngineConfig::subject_status)); nothing is
    /// written. `server_error` when storage or randomness fails (show it; do not redirect).
    pub async fn approve(
        &self,
        pending: PendingAuthorization,
        subject: &str,
        now: UnixTime,
    ) -> Result<AuthorizationRedirect, AuthorizeError> {
        let active = self.subject_is_active(subject).await.map_err(|e| {
            OAuthError::new(AuthorizeErrorCode::ServerError, "storage failure").with_source(e)
        })?;
        if !active {
            return Err(OAuthError::new(
                AuthorizeErrorCode::AccessDenied,
                "this account cannot approve requests: it is disabled or was removed",
            ));
        }
        let grant_id = GrantId::from(
            random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?,
        );
        let code =
            random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        // Validated when the request came in; kept as text between the pages.
        let scope = Scope::from_stored(&pending.scope)
            .map_err(|e| internal("the pending authorization's scope", e))?;
        self.model
            .insert_grant(GrantRecord {
                grant_id: grant_id.clone(),
                client_id: pending.client_id.clone(),
                subject: subject.to_owned(),
                scope: scope.clone(),
                resources: pending.resources.clone(),
                created_at: now,
                revoked_at: None,
            })
            .await
            .map_err(|e| internal("storage failure", e))?;
        self.model
            .insert_code(AuthorizationCodeRecord {
                code_hash: SecretHash::of(&code),
                grant_id,
                client_id: pending.client_id,
                redirect_uri: pending.redirect_uri.clone(),
                redirect_uri_in_request: pending.redirect_uri_in_request,
                code_challenge: pending.code_challenge,
                subject: subject.to_owned(),
                scope,
                resources: pending.resources,
                expires_at: now.plus(self.config.code_ttl),
                consumed_at: None,
                dpop_jkt: pending.dpop_jkt,
                nonce: pending.nonce,
            })
            .await
            .map_err(|e| internal("storage failure", e))?;
        let mut location = redirect_base(&pending.redirect_uri)?;
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("code", &code);
            if let Some(state) = &pending.state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer_str());
        }
        Ok(AuthorizationRedirect {
            location: location.into(),
        })
    }

    /// The user denied: returns the `access_denied` redirect (RFC 6749 §4.1.2.1).
    ///
    /// # Errors
    ///
    /// `server_error` when the stored redirect URI does not parse (show it; do not redirect).
    pub fn deny(
        &self,
        pending: PendingAuthorization,
    ) -> Result<AuthorizationRedirect, AuthorizeError> {
        self.error_redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            AuthorizeErrorCode::AccessDenied,
            "the user denied the request",
        )
    }

    /// Ends `pending` with an error for the client (RFC 6749 §4.1.2.1): `access_denied`,
    /// `server_error` or `temporarily_unavailable` when something between the request and
    /// the user's decision failed (a federated sign-in the upstream refused, for one), so
    /// the client hears of it rather than waiting.
    ///
    /// # Errors
    ///
    /// `server_error` when the stored redirect URI does not parse (show it; do not redirect).
    pub fn fail(
        &self,
        pending: PendingAuthorization,
        code: AuthorizeErrorCode,
        description: &str,
    ) -> Result<AuthorizationRedirect, AuthorizeError> {
        self.error_redirect(
            &pending.redirect_uri,
            pending.state.as_deref(),
            code,
            description,
        )
    }

    fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        code: AuthorizeErrorCode,
        description: &str,
    ) -> Result<AuthorizationRedirect, AuthorizeError> {
        let mut location = redirect_base(redirect_uri)?;
        {
            let mut query = location.query_pairs_mut();
            query.append_pair("error", code.as_str());
            query.append_pair("error_description", description);
            if let Some(state) = state {
                query.append_pair("state", state);
            }
            query.append_pair("iss", &self.issuer_str());
        }
        Ok(AuthorizationRedirect {
            location: location.into(),
        })
    }

    /// Requested scope, or the default; checked against what the server and client allow.
    ///
    /// The client's registered `scope` bounds the request when an administrator registered
    /// the client, or when no user approves the grant (`user_approves` false). A client that
    /// registered itself chose that scope itself (RFC 7591 §2) and could widen it by
    /// registering again, so for a grant a user approves the bound is the server's scopes and
    /// the user's consent: that keeps MCP step-up working, where a client registered with the
    /// scope it first needed later asks for one more (`403 insufficient_scope`).
    pub(crate) fn resolve_scope(
        &self,
        requested: Option<&Scope>,
        client: &crate::model::ClientRecord,
        user_approves: bool,
    ) -> Result<Scope, &'static str> {
        let client_scope = client.metadata.scope.as_deref();
        // RFC 6749 §3.3: without `scope`, use a pre-defined default: the server's default
        // scope if configured, else everything the client registered.
        let scope = match requested {
            Some(scope) => scope.clone(),
            None if !self.config.default_scope.is_empty() => {
                Scope::from_tokens(self.config.default_scope.iter().cloned())
            }
            None => client_scope
                .and_then(|s| Scope::parse(s).ok())
                .unwrap_or_default(),
        };
        let supported = &self.config.scopes_supported;
        if !supported.is_empty() && !scope.iter().all(|s| supported.iter().any(|x| x == s)) {
            return Err("the request includes a scope this server does not support");
        }
        let bounded_by_registration = !(user_approves && client.is_self_registered());
        // A registered scope that does not parse (a corrupt record) allows nothing, never
        // everything.
        if let Some(allowed) = client_scope.map(|s| Scope::parse(s).unwrap_or_default())
            && bounded_by_registration
            && !scope.is_subset_of(&allowed)
        {
            return Err("the request includes a scope the client did not register");
        }
        Ok(scope)
    }

    /// RFC 8707 §2: each resource is an absolute URI without a fragment that this server
    /// serves. None given: `invalid_target` with `strict_resource` on; otherwise the
    /// configured `default_resource`, else the only allowed resource when exactly one is.
    pub(crate) fn resolve_resources(
        &self,
        requested: &[String],
    ) -> Result<Vec<String>, &'static str> {
        if requested.is_empty() {
            if self.config.strict_resource {
                return Err(
                    "the resource parameter is required (RFC 8707): send the MCP server's URI",
                );
            }
            if let Some(default) = &self.config.default_resource {
                return Ok(vec![default.clone()]);
            }
            return match &self.config.resources {
                ResourcePolicy::Allowed(list) if list.len() == 1 => Ok(list.clone()),
                _ => Err(
                    "the resource parameter is required (RFC 8707): send the MCP server's URI (this server has no default resource)",
                ),
            };
        }
        for resource in requested {
            let acceptable = match &self.config.resources {
                ResourcePolicy::Allowed(list) => list.iter().any(|r| r == resource),
                ResourcePolicy::AnyUri => Url::parse(resource).is_ok_and(|u| {
                    u.fragment().is_none()
                        && !resource.contains('#')
                        && (u.scheme() == "https" || mcpauth_metadata::is_loopback_http(&u))
                        && u.host().is_some()
                }),
            };
            if !acceptable {
                return Err("the requested resource is not served by this authorization server");
            }
        }
        Ok(requested.to_vec())
    }
}

/// OpenID Connect Core §3.1.2.1 for an `openid` request: `redirect_uri` is required, and a
/// `prompt` or `max_age` this server cannot honour is an error (it always shows its pages when
/// the user must sign in or consent, and claims no `auth_time`).
fn openid_request_is_honoured(
    request: &AuthorizationRequest,
    redirect_uri_in_request: bool,
) -> Result<(), (AuthorizeErrorCode, &'static str)> {
    if !redirect_uri_in_request {
        return Err((
            AuthorizeErrorCode::InvalidRequest,
            "redirect_uri is required in an OpenID Connect request (scope openid)",
        ));
    }
    let prompts: Vec<&str> = request
        .prompt
        .as_deref()
        .map(|p| p.split(' ').filter(|v| !v.is_empty()).collect())
        .unwrap_or_default();
    if prompts.contains(&"none") {
        // §3.1.2.1: `none` with any other value is an error.
        return Err(if prompts.len() > 1 {
            (
                AuthorizeErrorCode::InvalidRequest,
                "prompt=none cannot be combined with other prompt values",
            )
        } else {
            (
                AuthorizeErrorCode::InteractionRequired,
                "prompt=none cannot be honoured: this server shows its sign-in and consent pages",
            )
        });
    }
    if prompts.contains(&"login") {
        return Err((
            AuthorizeErrorCode::LoginRequired,
            "prompt=login cannot be honoured: this server does not force a new sign-in; send the request without it",
        ));
    }
    if request.max_age.is_some() {
        return Err((
            AuthorizeErrorCode::InvalidRequest,
            "max_age is not supported: this server does not claim auth_time in its ID tokens",
        ));
    }
    Ok(())
}

/// The longest `nonce` kept (it is stored with the code and signed into the ID token).
const MAX_NONCE_LEN: usize = 512;

const UNKNOWN_CLIENT_OR_REDIRECT: &str =
    "unknown client_id, or redirect_uri is not registered for this client";

/// The redirect URI as a `Url` to add parameters to (RFC 6749 §3.1.2: an existing query is
/// kept). It matched a URI validated at registration, so this fails only on corrupt storage.
fn redirect_base(redirect_uri: &str) -> Result<Url, AuthorizeError> {
    Url::parse(redirect_uri).map_err(|e| internal("stored redirect_uri does not parse", e))
}

/// Whether `value` has the shape of a SHA-256 JWK thumbprint: 32 bytes in base64url without
/// padding.
fn is_thumbprint(value: &str) -> bool {
    value.len() == 43
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}
