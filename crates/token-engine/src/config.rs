//! Engine configuration: concrete values with safe defaults and `&mut self` setters.

use std::sync::Arc;

use url::Url;

use crate::customize::TokenCustomizer;
use crate::subject::SubjectStatus;

/// Which `resource` values (RFC 8707) the server issues tokens for.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResourcePolicy {
    /// Only these resource identifiers (exact string match). Anything else is
    /// `invalid_target`.
    Allowed(Vec<String>),
    /// Any absolute `https` URI, or `http` on a loopback host, without a fragment.
    ///
    /// # Background
    ///
    /// RFC 8707 §2 lets the server decide which resources it accepts. Accepting any lets one
    /// server front many MCP servers without configuration, but then audience checks at each
    /// resource server are the only thing keeping tokens apart; prefer `Allowed` in
    /// production.
    AnyUri,
}

/// Who may register clients dynamically (RFC 7591), and how much.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationPolicy {
    /// SHA-256 hashes of the initial access tokens that open `/register` (RFC 7591 §3);
    /// empty means open registration.
    pub initial_access_token_hashes: Vec<crate::SecretHash>,
    /// Most clients that may exist at once; registrations beyond it are refused.
    pub max_clients: Option<u64>,
    /// Registrations allowed per caller (the adapter's [`CallerKey`]) per hour.
    pub per_caller_per_hour: u32,
    /// Lifetime of issued client secrets in seconds (`None`: they do not expire).
    pub client_secret_ttl: Option<u64>,
    /// Issuers whose software statements (RFC 7591 §2.3) are accepted.
    pub software_statement_issuers: Vec<mcpauth_dcr::TrustedStatementIssuer>,
    /// Whether registration requires a software statement from one of them.
    pub require_software_statement: bool,
    /// Grant types a client may give itself at `/register` or in a Client ID Metadata
    /// Document. Default: `authorization_code`, `refresh_token` and the device grant, the
    /// grants through which a user delegates authority; anything else is refused with
    /// `invalid_client_metadata`.
    pub grant_types: Vec<String>,
    /// Grant types a self-registered client may have *beyond* [`Self::grant_types`] when its
    /// registration was vouched for: it presented one of the initial access tokens, or a
    /// software statement from a trusted issuer (never a metadata document). Default: none.
    /// Listing `client_credentials` or token exchange here is the operator's opt-in to
    /// machine clients that register themselves.
    pub vouched_grant_types: Vec<String>,
    /// The scope ceiling of `client_credentials` for vouched self-registered clients: the
    /// operator's choice, never the client's own registration. Default empty (such clients
    /// get tokens with no scope).
    pub vouched_scope: Vec<String>,
}

/// The grants through which a user delegates authority: what any self-registered client may
/// have ([`RegistrationPolicy::grant_types`]'s default).
pub const USER_DELEGATED_GRANT_TYPES: &[&str] = &[
    "authorization_code",
    "refresh_token",
    mcpauth_oauth_types::DEVICE_CODE_GRANT,
];

impl Default for RegistrationPolicy {
    fn default() -> Self {
        Self {
            initial_access_token_hashes: Vec::new(),
            max_clients: None,
            per_caller_per_hour: 30,
            client_secret_ttl: None,
            software_statement_issuers: Vec::new(),
            require_software_statement: false,
            grant_types: USER_DELEGATED_GRANT_TYPES
                .iter()
                .map(|g| (*g).to_owned())
                .collect(),
            vouched_grant_types: Vec::new(),
            vouched_scope: Vec::new(),
        }
    }
}

impl RegistrationPolicy {
    /// Requires one of these initial access tokens (hashed here; the tokens are not kept).
    /// Clients present one as `Authorization: Bearer <token>`, so each must be RFC 6750
    /// `b64token` syntax (letters, digits, `-._~+/`, then `=` padding): any other could never
    /// be presented (`mcpauth-server` refuses to start with one).
    #[must_use]
    pub fn with_initial_access_tokens<S: AsRef<str>>(mut self, tokens: &[S]) -> Self {
        self.initial_access_token_hashes = tokens
            .iter()
            .map(|t| crate::SecretHash::of(t.as_ref()))
            .collect();
        self
    }

    /// Caps the number of clients.
    #[must_use]
    pub fn with_max_clients(mut self, max: u64) -> Self {
        self.max_clients = Some(max);
        self
    }

    /// Registrations allowed per caller per hour.
    #[must_use]
    pub fn with_per_caller_per_hour(mut self, limit: u32) -> Self {
        self.per_caller_per_hour = limit;
        self
    }

    /// Accepts software statements signed by `issuers`; with `required`, registration needs one.
    #[must_use]
    pub fn with_software_statements(
        mut self,
        issuers: Vec<mcpauth_dcr::TrustedStatementIssuer>,
        required: bool,
    ) -> Self {
        self.software_statement_issuers = issuers;
        self.require_software_statement = required;
        self
    }

    /// Issued client secrets expire after `seconds`.
    #[must_use]
    pub fn with_client_secret_ttl(mut self, seconds: u64) -> Self {
        self.client_secret_ttl = Some(seconds);
        self
    }

    /// The grant types any self-registered client may have (see [`Self::grant_types`]).
    #[must_use]
    pub fn with_grant_types<S: AsRef<str>>(mut self, grant_types: &[S]) -> Self {
        self.grant_types = grant_types.iter().map(|g| g.as_ref().to_owned()).collect();
        self
    }

    /// Opts in to self-registered machine clients: a registration that presents an initial
    /// access token or a trusted software statement may also have `grant_types` (typically
    /// `client_credentials`), and gets `client_credentials` tokens of at most `scope`.
    #[must_use]
    pub fn with_vouched_grant_types<S: AsRef<str>, T: AsRef<str>>(
        mut self,
        grant_types: &[S],
        scope: &[T],
    ) -> Self {
        self.vouched_grant_types = grant_types.iter().map(|g| g.as_ref().to_owned()).collect();
        self.vouched_scope = scope.iter().map(|s| s.as_ref().to_owned()).collect();
        self
    }
}

/// Who is calling, as the adapter sees it (typically the peer IP address), put in the
/// request extensions so per-caller rate limits work. Without it, all callers share one
/// budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CallerKey(pub String);

/// How access tokens are encoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum AccessTokenFormat {
    /// RFC 9068 JWTs signed with the current key: resource servers verify them offline.
    #[default]
    Jwt,
    /// Random opaque tokens, stored hashed: resource servers must introspect (RFC 7662), and
    /// revocation takes effect at once.
    Opaque,
}

/// Engine settings. Endpoint paths are joined to the issuer's path.
#[derive(Clone)]
#[non_exhaustive]
pub struct EngineConfig {
    pub(crate) customizer: Option<Arc<dyn TokenCustomizer>>,
    pub(crate) subject_status: Option<Arc<dyn SubjectStatus>>,
    pub(crate) exchange_rules: Vec<ExchangeRule>,
    pub(crate) access_token_format: AccessTokenFormat,
    pub(crate) public_clients_by_default: bool,
    pub(crate) registration: RegistrationPolicy,
    pub(crate) client_metadata_documents: bool,
    pub(crate) allow_localhost_redirect_uris: bool,
    pub(crate) issuer: Url,
    pub(crate) access_token_ttl: u64,
    pub(crate) refresh_token_ttl: u64,
    pub(crate) code_ttl: u64,
    pub(crate) device_code_ttl: u64,
    pub(crate) device_poll_interval: u64,
    pub(crate) device_verification_path: String,
    pub(crate) user_code_attempts_per_minute: u32,
    pub(crate) refresh_reuse_grace: u64,
    pub(crate) scopes_supported: Vec<String>,
    pub(crate) default_scope: Vec<String>,
    pub(crate) resources: ResourcePolicy,
    pub(crate) default_resource: Option<String>,
    pub(crate) strict_resource: bool,
    pub(crate) dynamic_registration: bool,
    pub(crate) legacy_assertion_audience: bool,
    pub(crate) introspection_clients: Vec<String>,
    pub(crate) dpop: crate::DpopPolicy,
    pub(crate) trusted_issuers: Option<crate::grant::jwt_bearer::TrustedIssuers>,
    pub(crate) assertion_audiences: Vec<crate::AssertionAudience>,
}

/// The configuration is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The issuer is not a valid RFC 8414 issuer.
    #[error("invalid issuer: {0}")]
    Issuer(#[from] mcpauth_metadata::WellKnownError),
}

impl EngineConfig {
    /// A configuration for `issuer` with the defaults: access tokens live 1 hour, refresh
    /// tokens 14 days, codes 60 seconds, a rotated refresh token presented again within 10
    /// seconds gets the same successor again (an idempotent retry; after that it revokes the
    /// family), any https or loopback resource is accepted, a request without `resource` gets
    /// the `default_resource` or the only allowed resource (`strict_resource` off), and
    /// dynamic registration is open to user-delegated grants only.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Issuer`] when `issuer` is not https (or loopback http) or has a query.
    pub fn new(issuer: Url) -> Result<Self, ConfigError> {
        mcpauth_metadata::validate_issuer(&issuer)?;
        Ok(Self {
            customizer: None,
            subject_status: None,
            exchange_rules: Vec::new(),
            access_token_format: AccessTokenFormat::Jwt,
            public_clients_by_default: true,
            registration: RegistrationPolicy::default(),
            client_metadata_documents: false,
            allow_localhost_redirect_uris: true,
            issuer,
            access_token_ttl: 3600,
            refresh_token_ttl: 14 * 24 * 3600,
            code_ttl: 60,
            device_code_ttl: 15 * 60,
            device_poll_interval: 5,
            device_verification_path: "/device".into(),
            user_code_attempts_per_minute: 10,
            refresh_reuse_grace: 10,
            scopes_supported: Vec::new(),
            default_scope: Vec::new(),
            resources: ResourcePolicy::AnyUri,
            default_resource: None,
            strict_resource: false,
            dynamic_registration: true,
            legacy_assertion_audience: false,
            introspection_clients: Vec::new(),
            dpop: crate::DpopPolicy::default(),
            trusted_issuers: None,
            assertion_audiences: Vec::new(),
        })
    }

    /// Serves the JWT bearer grant (RFC 7523 §2.1) for JWTs from `issuers`: enterprise
    /// identity providers' ID-JAGs and workload tokens. `keys` fetches their JWK Sets; an
    /// enterprise user is the local subject `users` maps them to (without it, the assertion's
    /// `sub` as it is).
    pub fn trusted_issuers(
        &mut self,
        issuers: Vec<crate::TrustedIssuer>,
        keys: Arc<dyn crate::TrustedIssuerKeys>,
        users: Option<Arc<dyn crate::EnterpriseUsers>>,
    ) -> &mut Self {
        self.trusted_issuers = Some(crate::grant::jwt_bearer::TrustedIssuers {
            issuers,
            keys,
            users,
        });
        self
    }

    /// Acts as an enterprise identity provider for `audiences`: token exchange issues ID-JAGs
    /// (draft-ietf-oauth-identity-assertion-authz-grant §4.3) for a user's refresh token to
    /// the clients each audience lists, which present them at that authorization server.
    pub fn identity_assertion_audiences(
        &mut self,
        audiences: Vec<crate::AssertionAudience>,
    ) -> &mut Self {
        self.assertion_audiences = audiences;
        self
    }

    /// How the token endpoint treats DPoP proofs (RFC 9449): by default a proof is checked and
    /// binds what it obtains, and none is required.
    pub fn dpop(&mut self, policy: crate::DpopPolicy) -> &mut Self {
        self.dpop = policy;
        self
    }

    /// Lifetime of access tokens in seconds.
    pub fn access_token_ttl(&mut self, seconds: u64) -> &mut Self {
        self.access_token_ttl = seconds;
        self
    }

    /// Lifetime of refresh tokens in seconds.
    pub fn refresh_token_ttl(&mut self, seconds: u64) -> &mut Self {
        self.refresh_token_ttl = seconds;
        self
    }

    /// Lifetime of authorization codes in seconds (RFC 6749 §4.1.2 recommends at most 600).
    pub fn code_ttl(&mut self, seconds: u64) -> &mut Self {
        self.code_ttl = seconds;
        self
    }

    /// Who may exchange tokens (RFC 8693) for which downstream resources. Empty (the
    /// default): token exchange is refused with `invalid_target`.
    pub fn token_exchange_rules(&mut self, rules: Vec<ExchangeRule>) -> &mut Self {
        self.exchange_rules = rules;
        self
    }

    /// A configuration that follows the RFCs to the letter: every compatibility switch off
    /// (`strict_resource` on, no refresh-reuse grace, RFC 7591's `client_secret_basic`
    /// default, no `localhost` redirect URIs). See `docs/compatibility.md`.
    ///
    /// # Errors
    ///
    /// As [`Self::new`].
    pub fn strict(issuer: Url) -> Result<Self, ConfigError> {
        let mut config = Self::new(issuer)?;
        config.strict_resource = true;
        config.refresh_reuse_grace = 0;
        config.public_clients_by_default = false;
        config.allow_localhost_redirect_uris = false;
        Ok(config)
    }

    /// Registrations without `token_endpoint_auth_method` become public clients (default on).
    ///
    /// # Background
    ///
    /// RFC 7591 §2: "If unspecified or omitted, the default is client_secret_basic". MCP
    /// clients that omit the member never send a secret and fail at the token endpoint with
    /// one; RFC 7591 §3.2.1 lets the server substitute a value and report it, which this does.
    pub fn public_clients_by_default(&mut self, enabled: bool) -> &mut Self {
        self.public_clients_by_default = enabled;
        self
    }

    /// Whether `http://localhost` redirect URIs may be registered (default on).
    ///
    /// # Background
    ///
    /// RFC 8252 §8.3: "it is NOT RECOMMENDED to use localhost" (the name may not resolve to
    /// the loopback interface); clients should use `127.0.0.1` or `[::1]`. Widely used MCP
    /// clients register `http://localhost:PORT/...` callbacks anyway (the MCP Inspector's
    /// default is `http://localhost:6274/oauth/callback`).
    pub fn allow_localhost_redirect_uris(&mut self, enabled: bool) -> &mut Self {
        self.allow_localhost_redirect_uris = enabled;
        self
    }

    /// Whether `https` URLs are accepted as `client_id` (Client ID Metadata Documents, the MCP
    /// authorization specification's recommended client identity since 2025-11-25). Default
    /// off: turn it on only when the adapter in front of the engine fetches documents for
    /// [`crate::AuthorizeOutcome::NeedsClientMetadata`].
    pub fn client_metadata_documents(&mut self, enabled: bool) -> &mut Self {
        self.client_metadata_documents = enabled;
        self
    }

    /// Dynamic registration policy: initial access tokens, caps, rate limits, secret expiry.
    pub fn registration_policy(&mut self, policy: RegistrationPolicy) -> &mut Self {
        self.registration = policy;
        self
    }

    /// JWT (default) or opaque access tokens. Opaque tokens need a model that keeps them
    /// ([`ModelBase::opaque_tokens`](crate::ModelBase::opaque_tokens)); without one every
    /// issuance answers `server_error` and says why in the response's
    /// [`InternalError`](crate::InternalError).
    pub fn access_token_format(&mut self, format: AccessTokenFormat) -> &mut Self {
        self.access_token_format = format;
        self
    }

    /// Application code that adds claims to access tokens.
    pub fn token_customizer(&mut self, customizer: Arc<dyn TokenCustomizer>) -> &mut Self {
        self.customizer = Some(customizer);
        self
    }

    /// The application's users: consulted when consent or a device approval is recorded and
    /// when tokens are first issued from it, so a user disabled in between gets nothing.
    /// Without it, every subject counts as active (the application checks its users before
    /// calling [`crate::TokenEngine::approve`]).
    pub fn subject_status(&mut self, status: Arc<dyn SubjectStatus>) -> &mut Self {
        self.subject_status = Some(status);
        self
    }

    /// Lifetime of device codes and user codes in seconds (RFC 8628 §3.2 `expires_in`).
    pub fn device_code_ttl(&mut self, seconds: u64) -> &mut Self {
        self.device_code_ttl = seconds;
        self
    }

    /// Minimum seconds between device-code polls (RFC 8628 §3.2 `interval`, default 5).
    pub fn device_poll_interval(&mut self, seconds: u64) -> &mut Self {
        self.device_poll_interval = seconds;
        self
    }

    /// Path, below the issuer, of the page where users enter a user code (default `/device`).
    pub fn device_verification_path(&mut self, path: impl Into<String>) -> &mut Self {
        self.device_verification_path = path.into();
        self
    }

    /// Failed user-code entries allowed per minute and per caller key (RFC 8628 §5.1:
    /// "the authorization server SHOULD rate-limit user code attempts"), default 10. With 20^8
    /// possible codes, that makes guessing a live code hopeless.
    pub fn user_code_attempts_per_minute(&mut self, attempts: u32) -> &mut Self {
        self.user_code_attempts_per_minute = attempts;
        self
    }

    /// How long after a refresh token's rotation a second use of it is taken for a retry
    /// (default 10 seconds; 0 turns retries off).
    ///
    /// Inside the window, a replay of the token just rotated (its successor not rotated yet)
    /// gets the *same* successor again, with a fresh access token; the successor is kept for
    /// the window only, sealed with a key derived from the rotated token. After the window, or
    /// once the successor has itself been rotated, any replay revokes the family and every
    /// token issued from it (RFC 9700 §4.14.2).
    ///
    /// # Background
    ///
    /// Clients whose refresh response is lost (a timeout, a crash before the new token is
    /// saved) retry with the old token; strict reuse detection logs their user out. What a
    /// thief who replays a stolen token inside the window gains is what the legitimate
    /// client holds: the same successor, whose next use by one of them and later use by the
    /// other (after that rotation's own window) is caught as a replay, revoking the family.
    /// The window is fixed from the first rotation and never slides.
    pub fn refresh_reuse_grace(&mut self, seconds: u64) -> &mut Self {
        self.refresh_reuse_grace = seconds;
        self
    }

    /// Scopes the server knows. When not empty, requests for other scopes are
    /// `invalid_scope`, and the list is published in metadata.
    pub fn scopes_supported(&mut self, scopes: Vec<String>) -> &mut Self {
        self.scopes_supported = scopes;
        self
    }

    /// Scope granted when a request has none.
    pub fn default_scope(&mut self, scopes: Vec<String>) -> &mut Self {
        self.default_scope = scopes;
        self
    }

    /// Which resources tokens may be issued for.
    pub fn resources(&mut self, policy: ResourcePolicy) -> &mut Self {
        self.resources = policy;
        self
    }

    /// Audience used for requests without `resource` when [`Self::strict_resource`] is off.
    /// Ignored while it is on.
    pub fn default_resource(&mut self, resource: Option<String>) -> &mut Self {
        self.default_resource = resource;
        self
    }

    /// Whether requests must name their `resource` (default: no).
    ///
    /// On: an authorization, device or `client_credentials` request without `resource` is
    /// `invalid_target`, whatever else is configured. Off: such a request gets the
    /// [`Self::default_resource`], else the only resource of [`ResourcePolicy::Allowed`] when
    /// exactly one is listed, else `invalid_target`. Either way every token is bound to a
    /// resource this server serves.
    ///
    /// # Background
    ///
    /// The MCP authorization specification (2025-06-18 and later) says clients MUST send
    /// `resource` (RFC 8707) in authorization and token requests, so that tokens are bound to
    /// one MCP server. Clients built before it (early MCP SDK releases and hand-written
    /// clients for the 2025-03-26 specification) omit it; a server fronting one MCP server
    /// can still bind their tokens to it.
    pub fn strict_resource(&mut self, strict: bool) -> &mut Self {
        self.strict_resource = strict;
        self
    }

    /// Whether `private_key_jwt` assertions may name the token endpoint URL as `aud`, or
    /// carry `aud` as an array (default off: the issuer identifier, as a single string).
    ///
    /// # Background
    ///
    /// RFC 7523 §3 let the audience be the token endpoint URL, and JWT `aud` may be an array.
    /// Both let an assertion a client made for one server be accepted by another that shares
    /// an endpoint URL or appears in the array (the 2025 audience-injection findings behind
    /// draft-ietf-oauth-rfc7523bis, which requires the issuer identifier alone). Turn this on
    /// only for clients whose libraries still send the older forms.
    pub fn legacy_assertion_audience(&mut self, enabled: bool) -> &mut Self {
        self.legacy_assertion_audience = enabled;
        self
    }

    /// Clients that may introspect tokens (RFC 7662), besides those whose record is marked
    /// [`resource_server`](crate::ClientRecord::resource_server). Default none.
    pub fn introspection_clients(&mut self, client_ids: Vec<String>) -> &mut Self {
        self.introspection_clients = client_ids;
        self
    }

    /// Whether `/register` (RFC 7591) accepts registrations.
    pub fn dynamic_registration(&mut self, enabled: bool) -> &mut Self {
        self.dynamic_registration = enabled;
        self
    }

    /// The refresh-reuse grace window in seconds ([`Self::refresh_reuse_grace`]): a store
    /// may forget sealed successors of tokens rotated longer ago than this.
    #[must_use]
    pub fn refresh_reuse_grace_seconds(&self) -> u64 {
        self.refresh_reuse_grace
    }

    /// The issuer identifier.
    #[must_use]
    pub fn issuer(&self) -> &Url {
        &self.issuer
    }

    /// The URL of an endpoint at `path` below the issuer (`/token` under
    /// `https://as.example/tenant` is `https://as.example/tenant/token`).
    #[must_use]
    pub fn endpoint_url(&self, path: &str) -> String {
        let base = self.issuer.as_str().trim_end_matches('/');
        format!("{base}{path}")
    }
}

impl std::fmt::Debug for EngineConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EngineConfig")
            .field("issuer", &self.issuer.as_str())
            .field("access_token_ttl", &self.access_token_ttl)
            .field("refresh_token_ttl", &self.refresh_token_ttl)
            .field("code_ttl", &self.code_ttl)
            .field("device_code_ttl", &self.device_code_ttl)
            .field("refresh_reuse_grace", &self.refresh_reuse_grace)
            .field("resources", &self.resources)
            .field("strict_resource", &self.strict_resource)
            .field("dynamic_registration", &self.dynamic_registration)
            .field("customizer", &self.customizer.is_some())
            .field("subject_status", &self.subject_status.is_some())
            .field("dpop", &self.dpop)
            .field("trusted_issuers", &self.trusted_issuers)
            .finish_non_exhaustive()
    }
}

/// One permission to exchange tokens: `client_id` may exchange a token whose audience
/// includes `from_resource` for tokens whose audience is within `to_resources`.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExchangeRule {
    /// The client (typically an MCP server) that exchanges.
    pub client_id: String,
    /// The resource the subject token must be for (the MCP server's own URI).
    pub from_resource: String,
    /// Downstream resources it may obtain tokens for.
    pub to_resources: Vec<String>,
}

impl ExchangeRule {
    /// A rule for `client_id`.
    #[must_use]
    pub fn new(
        client_id: impl Into<String>,
        from_resource: impl Into<String>,
        to_resources: Vec<String>,
    ) -> Self {
        Self {
            client_id: client_id.into(),
            from_resource: from_resource.into(),
            to_resources,
        }
    }
}
