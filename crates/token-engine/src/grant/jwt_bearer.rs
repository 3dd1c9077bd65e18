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
use mcpauth_oauth_types::{Assertion, GrantType, OAuthError, Scope, TokenErrorCode};
use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::access_token::SubjectType;
use crate::error::{TokenError, internal};
use crate::model::{
    ClientId, ClientRecord, GrantId, GrantRecord, OAuthServerModel, TokenEndpointAuthMethod,
};
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
    nbf: Option<u64>,
    /// Checked by the JWT validation; read again for the ID-JAG's one-audience rule.
    #[serde(default)]
    aud: Option<OneOrMany>,
    /// The ID-JAG draft's §8.6.2: the key the provider bound the assertion to.
    #[serde(default)]
    cnf: Option<BoundKey>,
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
struct BoundKey {
    #[serde(default)]
    jkt: Option<String>,
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

/// The key of `set` that `kid` names (the only signing key for `alg` when no `kid` is given),
/// usable for `alg`: not an encryption key (`use: enc`), and, when it names its algorithm,
/// naming `alg`.
fn key_in(set: &serde_json::Value, kid: Option<&str>, alg: Algorithm) -> Option<DecodingKey> {
    let keys = set.get("keys")?.as_array()?;
    let candidates: Vec<jsonwebtoken::jwk::Jwk> = keys
        .iter()
        .filter(|k| kid.is_none_or(|kid| k.get("kid").and_then(|v| v.as_str()) == Some(kid)))
        // A key this crate cannot read is skipped, not fatal: a set may hold newer key types.
        .filter_map(|k| serde_json::from_value::<jsonwebtoken::jwk::Jwk>(k.clone()).ok())
        .filter(|jwk| {
            !matches!(
                jwk.common.public_key_use,
                Some(jsonwebtoken::jwk::PublicKeyUse::Encryption)
            )
        })
        .filter(|jwk| {
            jwk.common
                .key_algorithm
                .is_none_or(|named| named == jsonwebtoken::jwk::KeyAlgorithm::from(alg))
        })
        .filter(|jwk| {
            use jsonwebtoken::jwk::AlgorithmParameters as Key;
            match &jwk.algorithm {
                Key::EllipticCurve(_) => matches!(alg, Algorithm::ES256 | Algorithm::ES384),
                Key::RSA(_) => matches!(
                    alg,
                    Algorithm::RS256
                        | Algorithm::RS384
                        | Algorithm::RS512
                        | Algorithm::PS256
                        | Algorithm::PS384
                        | Algorithm::PS512
                ),
                Key::OctetKeyPair(_) => alg == Algorithm::EdDSA,
                _ => false,
            }
        })
        .collect();
    let [key] = candidates.as_slice() else {
        return None;
    };
    DecodingKey::from_jwk(key).ok()
}

/// An assertion whose type, signature, issuer, audience and lifetime checked out; nothing
/// recorded yet.
pub(crate) struct VerifiedAssertion<'t> {
    trust: &'t TrustedIssuers,
    issuer: &'t TrustedIssuer,
    claims: Claims,
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Whether this engine serves the JWT bearer grant (it trusts some issuer).
    pub(crate) fn serves_jwt_bearer(&self) -> bool {
        self.config
            .trusted_issuers
            .as_ref()
            .is_some_and(|t| !t.issuers.is_empty())
    }

    /// Whether some trusted issuer is an enterprise identity provider (ID-JAGs are accepted).
    pub(crate) fn accepts_identity_assertions(&self) -> bool {
        self.config.trusted_issuers.as_ref().is_some_and(|t| {
            t.issuers
                .iter()
                .any(|i| matches!(i.kind, IssuerKind::IdentityProvider { .. }))
        })
    }

    /// The checks of RFC 7523 §3 that need no state: `assertion` is a JWT of a trusted issuer,
    /// of the kind it issues, signed by its key, addressed to this server and current.
    pub(crate) async fn verified_assertion(
        &self,
        assertion: &Assertion,
        now: UnixTime,
    ) -> Result<VerifiedAssertion<'_>, TokenError> {
        let Some(trust) = &self.config.trusted_issuers else {
            return Err(OAuthError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            ));
        };
        let jwt = assertion.secret();
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
        // The ID-JAG draft's §3.1: `iat` and `jti` are required, whatever `single_use` says.
        if matches!(issuer.kind, IssuerKind::IdentityProvider { .. })
            && (claims.iat.is_none() || claims.jti.as_deref().is_none_or(str::is_empty))
        {
            return Err(invalid_grant(
                "an identity assertion must carry iat and jti",
            ));
        }
        // The ID-JAG draft's §4.4.1: an `aud` array holds exactly one element (no assertion
        // for several authorization servers at once).
        if matches!(issuer.kind, IssuerKind::IdentityProvider { .. })
            && matches!(&claims.aud, Some(OneOrMany::Many(many)) if many.len() != 1)
        {
            return Err(invalid_grant(
                "an identity assertion's aud must name this authorization server alone",
            ));
        }
        if claims
            .nbf
            .is_some_and(|nbf| nbf > now.0.saturating_add(LEEWAY))
        {
            return Err(invalid_grant("the assertion is not valid yet (nbf)"));
        }
        Ok(VerifiedAssertion {
            trust,
            issuer,
            claims,
        })
    }

    /// RFC 7523 §3.1: a request that authenticated no client and presents a workload token
    /// acts as the client the token's rule names, which must be registered, have registered
    /// the JWT bearer grant and be allowed to act for itself. An identity assertion is
    /// presented by the client it was issued to, authenticated.
    pub(crate) async fn workload_client(
        &self,
        verified: &VerifiedAssertion<'_>,
    ) -> Result<ClientRecord, TokenError> {
        let IssuerKind::Workloads { rules } = &verified.issuer.kind else {
            return Err(OAuthError::new(
                TokenErrorCode::InvalidClient,
                "an identity assertion is presented by the client it was issued to: authenticate",
            ));
        };
        let rule = matching_rule(rules, &verified.claims.sub)?;
        let client = self
            .model
            .find_client(&ClientId::from(rule.client_id.clone()))
            .await
            .map_err(|e| internal("storage failure", e))?
            .ok_or_else(|| {
                OAuthError::new(
                    TokenErrorCode::UnauthorizedClient,
                    "the client this workload acts as is not registered on this server",
                )
            })?;
        if !client.allows_grant(GrantType::JwtBearer) {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "the client this workload acts as did not register the JWT bearer grant",
            ));
        }
        // Checked again with the grant; here so that nothing (a proof's jti) is recorded for
        // a client that may not act for itself.
        if !client.may_act_for_itself() {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "workload tokens are for clients the operator registered or vouched for; this client registered itself",
            ));
        }
        Ok(client)
    }

    /// RFC 7523 §2.1: `client` (authenticated, or the one a workload token's rule names)
    /// presents the `verified` assertion; `request.dpop_jkt`: its DPoP proof's key.
    pub(crate) async fn jwt_bearer(
        &self,
        client: &ClientRecord,
        verified: VerifiedAssertion<'_>,
        request: JwtBearerRequest<'_>,
        now: UnixTime,
    ) -> Result<super::Granted, TokenError> {
        let VerifiedAssertion {
            trust,
            issuer,
            claims,
        } = verified;
        // The ID-JAG draft's §8.6.2: an assertion bound to a key is used with a proof by it.
        if let Some(bound) = claims.cnf.as_ref().and_then(|c| c.jkt.as_deref()) {
            match request.dpop_jkt {
                Some(jkt) if crate::dpop::same_key(jkt, bound) => {}
                Some(_) => {
                    return Err(invalid_grant(
                        "the assertion is bound to another DPoP key (cnf.jkt)",
                    ));
                }
                None => {
                    return Err(invalid_grant(
                        "the assertion is bound to a DPoP key (cnf.jkt): send a DPoP proof signed with it",
                    ));
                }
            }
        }
        let (subject, scope, resources, grant) = match &issuer.kind {
            IssuerKind::IdentityProvider { allowed_clients } => {
                self.identity_assertion(trust, issuer, allowed_clients, client, &claims, &request)
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
            Some(grant) => Some(self.standing_grant(&issuer.issuer, grant, now).await?),
            None => None,
        };
        let access_scope = scope.to_string();
        let mut claims_out = self
            .access_token_claims(
                GrantType::JwtBearer,
                grant_id.as_ref().map(GrantId::as_str),
                &subject,
                client.client_id.as_str(),
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
        Ok(super::Granted { response, subject })
    }

    /// The grant an enterprise user's tokens for a client belong to: one per provider, user,
    /// client, scope and resources, found again on each assertion while it stands (so that
    /// assertions do not pile up grants), a new one once the user or an operator revoked it.
    async fn standing_grant(
        &self,
        issuer: &str,
        template: GrantRecord,
        now: UnixTime,
    ) -> Result<GrantId, TokenError> {
        let mut base = Sha256::new();
        for part in [
            "jwt-bearer grant",
            issuer,
            template.client_id.as_str(),
            &template.subject,
            &template.scope.to_string(),
            &template.resources.join(" "),
        ] {
            base.update((part.len() as u64).to_be_bytes());
            base.update(part.as_bytes());
        }
        let storage = |e| internal("storage failure", e);
        // Each revocation moves to the next id; past a few, a random one each time.
        for generation in 0u32..8 {
            let digest = base
                .clone()
                .chain_update(generation.to_be_bytes())
                .finalize();
            let id = GrantId::from(URL_SAFE_NO_PAD.encode(digest.get(..16).unwrap_or(&digest)));
            match self.model.find_grant(&id).await.map_err(storage)? {
                Some(grant) if grant.revoked_at.is_none() => return Ok(id),
                Some(_) => continue,
                None => {}
            }
            let record = GrantRecord {
                grant_id: id.clone(),
                created_at: now,
                ..template.clone()
            };
            if let Err(error) = self.model.insert_grant(record).await {
                // Another request for the same grant inserted it first.
                return match self.model.find_grant(&id).await.map_err(storage)? {
                    Some(grant) if grant.revoked_at.is_none() => Ok(id),
                    _ => Err(storage(error)),
                };
            }
            return Ok(id);
        }
        let id = GrantId::from(
            random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?,
        );
        self.model
            .insert_grant(GrantRecord {
                grant_id: id.clone(),
                created_at: now,
                ..template
            })
            .await
            .map_err(storage)?;
        Ok(id)
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
        // Expiry and `nbf` against the engine's clock (checked after), not the system's.
        validation.validate_nbf = false;
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
    async fn identity_assertion(
        &self,
        trust: &TrustedIssuers,
        issuer: &TrustedIssuer,
        allowed_clients: &[String],
        client: &ClientRecord,
        claims: &Claims,
        request: &JwtBearerRequest<'_>,
    ) -> Result<Granted, TokenError> {
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
        // The ID-JAG draft is for confidential clients: a public client's id is no proof that
        // the party presenting the assertion is the one it was issued to.
        if client.auth_method() == TokenEndpointAuthMethod::None {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "identity assertions are presented by confidential clients; this one has no credentials",
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
        let invalid_scope = |d| OAuthError::new(TokenErrorCode::InvalidScope, d);
        // Within the provider's grant, and within what this server supports and the client
        // registered: the provider decides for its users, this server for its resources.
        let scope = match (request.scope, granted_scope) {
            (Some(asked), Some(granted)) if asked.is_subset_of(&granted) => self
                .resolve_scope(Some(asked), client, false)
                .map_err(invalid_scope)?,
            (Some(_), Some(_)) => {
                return Err(invalid_scope(
                    "the requested scope exceeds the identity assertion's",
                ));
            }
            // Unasked, what of the provider's grant this server may give (RFC 6749 §3.3).
            (None, Some(granted)) => {
                let allowed = Scope::from_tokens(
                    granted
                        .iter()
                        .filter(|s| {
                            let one = Scope::from_tokens([(*s).to_owned()]);
                            self.resolve_scope(Some(&one), client, false).is_ok()
                        })
                        .map(str::to_owned),
                );
                if allowed.is_empty() && !granted.is_empty() {
                    return Err(invalid_scope(
                        "none of the identity assertion's scope may be granted to this client here",
                    ));
                }
                allowed
            }
            (asked, None) => self
                .resolve_scope(asked, client, false)
                .map_err(invalid_scope)?,
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
            // No mapping: the provider's subject, in its own namespace, so that no provider
            // can name a local user or another provider's.
            None => format!("{}#{}", issuer.issuer, claims.sub),
        };
        let active = self.subject_is_active(&subject).await.map_err(|e| {
            OAuthError::new(TokenErrorCode::ServerError, "storage failure").with_source(e)
        })?;
        if !active {
            return Err(invalid_grant("the user is disabled or was removed"));
        }
        let grant = GrantRecord {
            // Replaced by `standing_grant`.
            grant_id: GrantId::from(String::new()),
            client_id: client.client_id.clone(),
            subject: subject.clone(),
            scope: scope.clone(),
            resources: resources.clone(),
            created_at: UnixTime(0),
            revoked_at: None,
        };
        Ok((subject, scope, resources, Some(grant)))
    }

    /// A workload's token: the rule its subject matches names the client and the scope.
    fn workload_token(
        &self,
        rules: &[WorkloadRule],
        client: &ClientRecord,
        claims: &Claims,
        request: &JwtBearerRequest<'_>,
    ) -> Result<Granted, TokenError> {
        let rule = matching_rule(rules, &claims.sub)?;
        if client.client_id != rule.client_id {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "this workload acts as another client than the one that authenticated",
            ));
        }
        // A workload's token is the client's own authority, as with client_credentials.
        if !client.may_act_for_itself() {
            return Err(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "workload tokens are for clients the operator registered or vouched for; this client registered itself",
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
        Ok((rule.client_id.clone(), scope, resources, None))
    }
}

/// The first of `rules` that covers the workload `sub`.
fn matching_rule<'r>(rules: &'r [WorkloadRule], sub: &str) -> Result<&'r WorkloadRule, TokenError> {
    rules
        .iter()
        .find(|r| r.matches(sub))
        .ok_or_else(|| invalid_grant("no workload rule of this issuer covers the token's subject"))
}

/// The subject, scope, resources and (for a user) the grant of a token to issue.
type Granted = (String, Scope, Vec<String>, Option<GrantRecord>);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// RFC 7515 A.3's P-256 public key, as a JWK with `extra` members.
    fn ec_key(extra: serde_json::Value) -> serde_json::Value {
        let mut key = serde_json::json!({
            "kty": "EC", "crv": "P-256",
            "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
            "y": "x_FEzRjmy5ErEd4iG7dRjbg6sQIiKY9nYidhhZ2gCVg",
        });
        for (name, value) in extra.as_object().unwrap() {
            key[name] = value.clone();
        }
        key
    }

    #[test]
    fn a_key_is_used_only_for_signatures_and_for_the_algorithm_it_names() {
        let sig = ec_key(serde_json::json!({"kid": "a", "use": "sig", "alg": "ES256"}));
        let enc = ec_key(serde_json::json!({"kid": "a", "use": "enc"}));
        let set = serde_json::json!({ "keys": [enc.clone(), sig] });
        // The encryption key with the same kid does not make the choice ambiguous.
        assert!(key_in(&set, Some("a"), Algorithm::ES256).is_some());
        assert!(key_in(&set, None, Algorithm::ES256).is_some());
        // An encryption key alone is no signing key.
        assert!(
            key_in(
                &serde_json::json!({ "keys": [enc] }),
                Some("a"),
                Algorithm::ES256
            )
            .is_none()
        );
        // A key naming ES256 is not one for ES384, nor an EC key one for RS256.
        assert!(key_in(&set, Some("a"), Algorithm::ES384).is_none());
        let unnamed = serde_json::json!({ "keys": [ec_key(serde_json::json!({}))] });
        assert!(key_in(&unnamed, None, Algorithm::RS256).is_none());
        assert!(key_in(&unnamed, None, Algorithm::ES256).is_some());
        // Two keys that fit and no kid: which one is unknown, so none.
        let two = serde_json::json!({ "keys": [ec_key(serde_json::json!({})), ec_key(serde_json::json!({}))] });
        assert!(key_in(&two, None, Algorithm::ES256).is_none());
        assert!(key_in(&serde_json::json!({"keys": "no"}), None, Algorithm::ES256).is_none());
    }
}
