//! RFC 7523 §2.1 and §3: a JWT from an issuer the operator trusts, as the authorization grant.
//! Two kinds of issuers:
//!
//! - **Enterprise identity providers** (MCP's enterprise-managed authorization): the JWT is an
//!   identity assertion JWT authorization grant (ID-JAG, `typ: oauth-id-jag+jwt`,
//!   draft-ietf-oauth-identity-assertion-authz-grant §3) the provider issued for one of its
//!   users to one client. The client must authenticate as the `client_id` it names and be one
//!   the operator allowed for that provider; the user is mapped to a local account
//!   ([`EnterpriseUsers`]); the token is the user's, for the `resource` and within the `scope`
//!   the assertion names, and belongs to a grant (revoking the user revokes it). No refresh
//!   token: the client asks the provider for a new assertion.
//! - **Workload issuers** (MCP's workload identity: Kubernetes service-account tokens, CI OIDC
//!   tokens, SPIFFE JWT-SVIDs): the JWT is the workload's own credential; its `sub` is matched
//!   against the issuer's rules ([`WorkloadRule`]), which name the client it acts as and the
//!   scope it may have. The token is the client's (`sub_type: client`), as with
//!   `client_credentials`.
//!
//! For both: the signature by a key of the issuer's JWK Set (fetched by the embedder,
//! [`TrustedIssuerKeys`]), an asymmetric `alg`, `iss` exactly, `aud` this server (its issuer
//! identifier, or the audience configured), `exp` (with 30 seconds of leeway), a lifetime no
//! longer than the issuer's `max_lifetime`, and the `jti` used once (through the model's replay
//! store, shared by every instance) unless the operator turned that off for an issuer whose
//! tokens carry none. Every refusal is `invalid_grant` (§3.1) and changes nothing.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use mcpauth_oauth_types::{Assertion, GrantType, OAuthError, Scope, TokenErrorCode, TokenResponse};
use serde::Deserialize;

use crate::access_token::SubjectType;
use crate::error::{TokenError, internal};
use crate::model::{ClientRecord, GrantId, GrantRecord, OAuthServerModel};
use crate::{TokenEngine, UnixTime, random};

/// The grant type name registered by RFC 7523 §2.1.
pub use mcpauth_oauth_types::JWT_BEARER_GRANT;

/// The `typ` of an identity assertion JWT authorization grant.
pub const ID_JAG_TYPE: &str = "oauth-id-jag+jwt";

/// Seconds of clock difference allowed on `exp`, `nbf` and `iat`.
const LEEWAY: u64 = 30;

/// Where the engine gets a trusted issuer's keys: the embedder fetches the JWK Set (SSRF-safely:
/// the URL comes from configuration, but a redirect must not move it) and caches it.
#[async_trait::async_trait]
pub trait TrustedIssuerKeys: Send + Sync {
    /// The JWK Set at `jwks_uri`, as JSON. `refresh`: the set in hand lacks the key an
    /// assertion names, so fetch it again (an implementation limits how often).
    async fn jwk_set(
        &self,
        jwks_uri: &str,
        refresh: bool,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>>;
}

/// Maps an enterprise identity provider's user to a local subject.
#[async_trait::async_trait]
pub trait EnterpriseUsers: Send + Sync {
    /// The local subject for the user `subject` of the provider `issuer` (with the `email` the
    /// assertion names, if any); `None` refuses the assertion.
    async fn local_subject(
        &self,
        issuer: &str,
        subject: &str,
        email: Option<&str>,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>>;
}

/// Which workload may act as which client: a token whose `sub` matches `subject` (exactly,
/// or by prefix when it ends with `*`) gets tokens as `client_id`, within `scope`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkloadRule {
    /// The subject, or a prefix ending with `*` (`system:serviceaccount:prod:*`,
    /// `repo:acme/deploy:ref:refs/heads/main`).
    pub subject: String,
    /// The client the workload acts as (`client_id` of its tokens).
    pub client_id: String,
    /// The most scope its tokens may carry (and what it gets when it asks for none).
    pub scope: Vec<String>,
}

impl WorkloadRule {
    /// `subject` (or a `*`-terminated prefix) acts as `client_id` within `scope`.
    #[must_use]
    pub fn new(subject: &str, client_id: &str, scope: &[&str]) -> Self {
        Self {
            subject: subject.to_owned(),
            client_id: client_id.to_owned(),
            scope: scope.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Whether this rule covers the token subject `sub`.
    #[must_use]
    pub fn matches(&self, sub: &str) -> bool {
        match self.subject.strip_suffix('*') {
            Some(prefix) => sub.starts_with(prefix),
            None => sub == self.subject,
        }
    }
}

/// What an issuer's JWTs stand for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerKind {
    /// An enterprise identity provider's ID-JAGs, for the clients listed (none: no client).
    IdentityProvider {
        /// The clients (by `client_id` here) that may present its assertions.
        allowed_clients: Vec<String>,
    },
    /// Workload tokens, mapped to clients by the rules (first match wins).
    Workloads {
        /// The rules.
        rules: Vec<WorkloadRule>,
    },
}

/// An issuer whose JWTs the token endpoint accepts as grants.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TrustedIssuer {
    /// Its `iss`, compared exactly.
    pub issuer: String,
    /// Where its JWK Set is.
    pub jwks_uri: String,
    /// What its JWTs stand for.
    pub kind: IssuerKind,
    /// The `aud` its JWTs must name; `None`: this server's issuer identifier.
    pub audience: Option<String>,
    /// The longest lifetime (`exp` − `iat`, and `exp` from now) accepted, in seconds.
    pub max_lifetime: u64,
    /// Whether each JWT's `jti` may be used once only (then a JWT without one is refused).
    pub single_use: bool,
}

impl TrustedIssuer {
    /// An enterprise identity provider whose ID-JAGs the `allowed_clients` may present: at
    /// most 10 minutes long, each once.
    #[must_use]
    pub fn identity_provider(issuer: &str, jwks_uri: &str, allowed_clients: Vec<String>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
            kind: IssuerKind::IdentityProvider { allowed_clients },
            audience: None,
            max_lifetime: 600,
            single_use: true,
        }
    }

    /// A workload issuer whose tokens the `rules` map to clients: at most an hour (and a
    /// little: Kubernetes' default is 3607 s) long, each once.
    #[must_use]
    pub fn workloads(issuer: &str, jwks_uri: &str, rules: Vec<WorkloadRule>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            jwks_uri: jwks_uri.to_owned(),
            kind: IssuerKind::Workloads { rules },
            audience: None,
            max_lifetime: 3700,
            single_use: true,
        }
    }

    /// JWTs must name `audience` instead of this server's issuer identifier.
    #[must_use]
    pub fn audience(mut self, audience: &str) -> Self {
        self.audience = Some(audience.to_owned());
        self
    }

    /// The longest lifetime accepted, in seconds.
    #[must_use]
    pub fn max_lifetime(mut self, seconds: u64) -> Self {
        self.max_lifetime = seconds;
        self
    }

    /// Whether each JWT may be used once only (default on; off for an issuer whose tokens
    /// carry no `jti`, or are reused for their lifetime: then audience and lifetime alone
    /// bound a stolen one).
    #[must_use]
    pub fn single_use(mut self, single_use: bool) -> Self {
        self.single_use = single_use;
        self
    }
}

/// The issuers the JWT bearer grant trusts, and where their keys and users come from.
#[derive(Clone)]
pub(crate) struct TrustedIssuers {
    pub(crate) issuers: Vec<TrustedIssuer>,
    pub(crate) keys: Arc<dyn TrustedIssuerKeys>,
    pub(crate) users: Option<Arc<dyn EnterpriseUsers>>,
}

impl std::fmt::Debug for TrustedIssuers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedIssuers")
            .field("issuers", &self.issuers)
            .field("users", &self.users.is_some())
            .finish_non_exhaustive()
    }
}

/// A JWT bearer grant request.
pub(crate) struct JwtBearerRequest<'a> {
    pub(crate) assertion: &'a Assertion,
    pub(crate) scope: Option<&'a Scope>,
    pub(crate) resource: &'a [String],
    pub(crate) dpop_jkt: Option<&'a str>,
}

fn invalid_grant(description: &'static str) -> TokenError {
    OAuthError::new(TokenErrorCode::InvalidGrant, description)
}

/// The claims read from any trusted issuer's JWT.
#[derive(Deserialize)]
struct Claims {
    sub: String,
    exp: u64,
    #[serde(default)]
    iat: Option<u64>,
    #[serde(default)]
    jti: Option<String>,
    /// ID-JAG: the client the assertion was issued to.
    #[serde(default)]
    client_id: Option<String>,
    /// ID-JAG: the resource (RFC 8707) the client may use it for.
    #[serde(default)]
    resource: Option<OneOrMany>,
    /// ID-JAG: the scope granted.
    #[serde(default)]
    scope: Option<String>,
    #[serde(default)]
    email: Option<String>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// The `iss` of a JWT, read before its signature is checked (to know whose keys check it).
fn unverified_issuer(jwt: &str) -> Option<String> {
    #[derive(Deserialize)]
    struct Issuer {
        iss: String,
    }
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload).ok()?;
    serde_json::from_slice::<Issuer>(&bytes).ok().map(|i| i.iss)
}

/// The asymmetric algorithms a trusted issuer may sign with.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// The key of `set` that `kid` names (the only key when neither names one), usable for `alg`.
fn key_in(set: &serde_json::Value, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let keys = set.get("keys")?.as_array()?;
    let candidates: Vec<&serde_json::Value> = keys
        .iter()
        .filter(|k| match kid {
            Some(kid) => k.get("kid").and_then(|v| v.as_str()) == Some(kid),
            None => true,
        })
        .collect();
    let [key] = candidates.as_slice() else {
        return None;
    };
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value((*key).clone()).ok()?;
    // A key that names its algorithm is used for that one only.
    if let Some(named) = jwk.common.key_algorithm
        && format!("{named:?}") != format!("{alg:?}")
    {
        return None;
    }
    DecodingKey::from_jwk(&jwk).ok()
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Whether this engine serves the JWT bearer grant (it trusts some issuer).
    pub(crate) fn serves_jwt_bearer(&self) -> bool {
        self.config
            .trusted_issuers
            .as_ref()
            .is_some_and(|t| !t.issuers.is_empty())
    }

    /// RFC 7523 §2.1: `client` (`None`: the request named no client, as a workload may)
    /// presents `request.assertion`.
    pub(crate) async fn jwt_bearer(
        &self,
        client: Option<&ClientRecord>,
        request: JwtBearerRequest<'_>,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenError> {
        let Some(trust) = &self.config.trusted_issuers else {
            return Err(OAuthError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            ));
        };
        let jwt = request.assertion.secret();
        let header = jsonwebtoken::decode_header(jwt)
            .map_err(|_| invalid_grant("the assertion is not a signed JWT"))?;
        let issuer = unverified_issuer(jwt)
            .and_then(|iss| trust.issuers.iter().find(|i| i.issuer == iss))
            .ok_or_else(|| invalid_grant("the assertion's issuer is not one this server trusts"))?;
        let typ = header.typ.as_deref();
        match (&issuer.kind, typ) {
            (IssuerKind::IdentityProvider { .. }, Some(t))
                if t.eq_ignore_ascii_case(ID_JAG_TYPE) => {}
            (IssuerKind::IdentityProvider { .. }, _) => {
                return Err(invalid_grant(
                    "an identity provider's assertion must be an ID-JAG (typ oauth-id-jag+jwt)",
                ));
            }
            // Workload tokens carry no `typ` or `JWT`; an ID-JAG, access token or proof is
            // not one (RFC 8725 §3.11: explicit typing keeps kinds of JWT apart).
            (IssuerKind::Workloads { .. }, None) => {}
            (IssuerKind::Workloads { .. }, Some(t)) if t.eq_ignore_ascii_case("JWT") => {}
            (IssuerKind::Workloads { .. }, Some(_)) => {
                return Err(invalid_grant(
                    "a workload token must be a plain JWT (no typ, or typ JWT)",
                ));
            }
        }
        if !ALGORITHMS.contains(&header.alg) {
            return Err(invalid_grant(
                "the assertion must be signed with an asymmetric algorithm",
            ));
        }
        let claims = self
            .verified_claims(trust, issuer, jwt, &header, now)
            .await?;
        if claims.exp > now.0.saturating_add(issuer.max_lifetime)
            || claims
                .iat
                .is_some_and(|iat| claims.exp.saturating_sub(iat) > issuer.max_lifetime)
        {
            return Err(invalid_grant(
                "the assertion lives longer than this server accepts from its issuer",
            ));
        }
        if claims
            .iat
            .is_some_and(|iat| iat > now.0.saturating_add(LEEWAY))
        {
            return Err(invalid_grant("the assertion was issued in the future"));
        }
        let (subject, client_id, scope, resources, grant) = match &issuer.kind {
            IssuerKind::IdentityProvider { allowed_clients } => {
                self.identity_assertion(
                    trust,
                    issuer,
                    allowed_clients,
                    client,
                    &claims,
                    &request,
                    now,
                )
                .await?
            }
            IssuerKind::Workloads { rules } => {
                self.workload_token(rules, client, &claims, &request)?
            }
        };
        // Used once, across instances; remembered until it expires.
        if issuer.single_use {
            let Some(jti) = claims
                .jti
                .as_deref()
                .filter(|j| !j.is_empty() && j.len() <= 256)
            else {
                return Err(invalid_grant(
                    "the assertion has no jti: this server accepts each assertion once",
                ));
            };
            let first = self
                .model
                .remember_once(
                    &format!("jwt-bearer:{}:{jti}", issuer.issuer),
                    UnixTime(claims.exp.saturating_add(LEEWAY)),
                    now,
                )
                .await
                .map_err(|e| internal("storage failure", e))?;
            if !first {
                return Err(invalid_grant("the assertion was used before"));
            }
        }
        let grant_id = match grant {
            Some(grant) => {
                let id = grant.grant_id.clone();
                self.model
                    .insert_grant(grant)
                    .await
                    .map_err(|e| internal("storage failure", e))?;
                Some(id)
            }
            None => None,
        };
        let access_scope = scope.to_string();
        let mut claims_out = self
            .access_token_claims(
                GrantType::JwtBearer,
                grant_id.as_ref().map(GrantId::as_str),
                &subject,
                &client_id,
                &access_scope,
                &resources,
                now,
            )
            .map_err(|e| internal("signing failure", e))?;
        if grant_id.is_none() {
            claims_out.sub_type = Some(SubjectType::Client);
        }
        claims_out.cnf = request.dpop_jkt.map(crate::Confirmation::jkt);
        let access_token = self
            .encode_access_token(&claims_out)
            .await
            .map_err(|e| internal("signing failure", e))?;
        let mut response = self.access_token_response(access_token, request.dpop_jkt.is_some());
        response.scope = (!access_scope.is_empty()).then_some(access_scope);
        Ok(response)
    }

    /// The assertion's claims once its signature, issuer, audience and expiry check out.
    async fn verified_claims(
        &self,
        trust: &TrustedIssuers,
        issuer: &TrustedIssuer,
        jwt: &str,
        header: &jsonwebtoken::Header,
        now: UnixTime,
    ) -> Result<Claims, TokenError> {
        let mut key = None;
        for refresh in [false, true] {
            let set = trust
                .keys
                .jwk_set(&issuer.jwks_uri, refresh)
                .await
                .map_err(|e| {
                    OAuthError::new(
                        TokenErrorCode::ServerError,
                        "the assertion issuer's keys could not be fetched",
                    )
                    .with_source(e)
                })?;
            key = key_in(&set, header.kid.as_deref(), header.alg);
            if key.is_some() {
                break;
            }
        }
        let key = key.ok_or_else(|| {
            invalid_grant("no key of the assertion's issuer matches the assertion (kid and alg)")
        })?;
        let audience = issuer.audience.clone().unwrap_or_else(|| self.issuer_str());
        let mut validation = Validation::new(header.alg);
        validation.set_issuer(&[&issuer.issuer]);
        validation.set_audience(&[&audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = LEEWAY;
        validation.validate_nbf = true;
        // Expiry against the engine's clock, not the system's.
        validation.validate_exp = false;
        let claims = jsonwebtoken::decode::<Claims>(jwt, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::InvalidAudience => {
                    invalid_grant("the assertion is not addressed to this server (aud)")
                }
                jsonwebtoken::errors::ErrorKind::InvalidSignature => {
                    invalid_grant("the assertion's signature does not verify")
                }
                _ => invalid_grant("the assertion's claims are missing or malformed"),
            })?
            .claims;
        if claims.exp.saturating_add(LEEWAY) <= now.0 {
            return Err(invalid_grant("the assertion has expired"));
        }
        Ok(claims)
    }

    /// An enterprise user's assertion: the client it names, the local user, its resource and
    /// scope; a grant for the token.
    #[expect(
        clippy::too_many_arguments,
        reason = "private; the request's parts, checked together"
    )]
    async fn identity_assertion(
        &self,
        trust: &TrustedIssuers,
        issuer: &TrustedIssuer,
        allowed_clients: &[String],
        client: Option<&ClientRecord>,
        claims: &Claims,
        request: &JwtBearerRequest<'_>,
        now: UnixTime,
    ) -> Result<Granted, TokenError> {
        let Some(client) = client else {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidClient,
                "an identity assertion is presented by the client it was issued to: authenticate",
            ));
        };
        if claims.client_id.as_deref() != Some(client.client_id.as_str()) {
            return Err(invalid_grant(
                "the assertion was issued to another client (client_id)",
            ));
        }
        if !allowed_clients.iter().any(|c| client.client_id == *c) {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "this client may not present identity assertions from this provider",
            ));
        }
        // The assertion names what the provider granted; the request may only narrow it.
        let granted_resources = claims.resource.as_ref().map(|r| match r {
            OneOrMany::One(one) => vec![one.clone()],
            OneOrMany::Many(many) => many.clone(),
        });
        let resources = match granted_resources {
            Some(granted) => {
                if !request.resource.iter().all(|r| granted.contains(r)) {
                    return Err(OAuthError::new(
                        TokenErrorCode::InvalidTarget,
                        "resource was not part of the identity assertion",
                    ));
                }
                let wanted = if request.resource.is_empty() {
                    granted
                } else {
                    request.resource.to_vec()
                };
                self.resolve_resources(&wanted)
                    .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?
            }
            None => self
                .resolve_resources(request.resource)
                .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?,
        };
        let granted_scope = claims
            .scope
            .as_deref()
            .map(Scope::parse)
            .transpose()
            .map_err(|_| invalid_grant("the assertion's scope is malformed"))?;
        let scope = match (request.scope, granted_scope) {
            (Some(asked), Some(granted)) if asked.is_subset_of(&granted) => asked.clone(),
            (Some(_), Some(_)) => {
                return Err(OAuthError::new(
                    TokenErrorCode::InvalidScope,
                    "the requested scope exceeds the identity assertion's",
                ));
            }
            (None, Some(granted)) => granted,
            (asked, None) => self
                .resolve_scope(asked, client, false)
                .map_err(|d| OAuthError::new(TokenErrorCode::InvalidScope, d))?,
        };
        let subject = match &trust.users {
            Some(users) => users
                .local_subject(&issuer.issuer, &claims.sub, claims.email.as_deref())
                .await
                .map_err(|e| {
                    OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e)
                })?
                .ok_or_else(|| {
                    invalid_grant("the identity provider's user has no account on this server")
                })?,
            None => claims.sub.clone(),
        };
        let active = self.subject_is_active(&subject).await.map_err(|e| {
            OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e)
        })?;
        if !active {
            return Err(invalid_grant("the user is disabled or was removed"));
        }
        let grant_id = GrantId::from(
            random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?,
        );
        let grant = GrantRecord {
            grant_id,
            client_id: client.client_id.clone(),
            subject: subject.clone(),
            scope: scope.clone(),
            resources: resources.clone(),
            created_at: now,
            revoked_at: None,
        };
        Ok((
            subject,
            client.client_id.as_str().to_owned(),
            scope,
            resources,
            Some(grant),
        ))
    }

    /// A workload's token: the rule its subject matches names the client and the scope.
    fn workload_token(
        &self,
        rules: &[WorkloadRule],
        client: Option<&ClientRecord>,
        claims: &Claims,
        request: &JwtBearerRequest<'_>,
    ) -> Result<Granted, TokenError> {
        let rule = rules
            .iter()
            .find(|r| r.matches(&claims.sub))
            .ok_or_else(|| {
                invalid_grant("no workload rule of this issuer covers the token's subject")
            })?;
        if let Some(client) = client
            && client.client_id != rule.client_id
        {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "this workload acts as another client than the one that authenticated",
            ));
        }
        let ceiling = Scope::from_tokens(rule.scope.iter().cloned());
        let scope = match request.scope {
            Some(asked) if asked.is_subset_of(&ceiling) => asked.clone(),
            Some(_) => {
                return Err(OAuthError::new(
                    TokenErrorCode::InvalidScope,
                    "the requested scope exceeds what this workload may have",
                ));
            }
            None => ceiling,
        };
        let resources = self
            .resolve_resources(request.resource)
            .map_err(|d| OAuthError::new(TokenErrorCode::InvalidTarget, d))?;
        Ok((
            rule.client_id.clone(),
            rule.client_id.clone(),
            scope,
            resources,
            None,
        ))
    }
}

/// The subject, client, scope, resources and (for a user) the grant of a token to issue.
type Granted = (String, String, Scope, Vec<String>, Option<GrantRecord>);
