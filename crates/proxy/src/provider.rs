//! Upstream providers: the presets for the common identity providers, and generic OpenID
//! Connect and plain OAuth 2.0 providers.
//!
//! A [`ProviderConfig`] is what an operator writes (one `[[providers]]` table in the server's
//! TOML); [`Provider`] is the resolved form with every endpoint known. Presets resolve
//! without network access from the providers' documented endpoints; a generic OpenID
//! Connect provider resolves from its discovery document
//! ([`Provider::from_discovery`]).

use serde::Deserialize;
use url::Url;

use crate::identity::ClaimMapping;

/// Which kind of upstream a provider is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Preset {
    /// Google (OpenID Connect).
    Google,
    /// GitHub (OAuth 2.0 with its REST API for the identity).
    GitHub,
    /// Microsoft Entra ID / Azure AD v2.0 (OpenID Connect), one tenant or `common`,
    /// `organizations`, `consumers`.
    Azure,
    /// GitLab, gitlab.com or self-hosted (OpenID Connect).
    GitLab,
    /// Sign in with Slack (OpenID Connect).
    Slack,
    /// Discord (OAuth 2.0 with its REST API for the identity).
    Discord,
    /// Any OpenID Connect provider, from its issuer's discovery document.
    Oidc,
    /// Any OAuth 2.0 provider, from explicit endpoints and a userinfo mapping.
    OAuth2,
}

impl Preset {
    /// Whether this provider issues every server-side client a secret and refuses the token
    /// request without it (Google, GitHub, Microsoft, Slack, Discord). GitLab and the
    /// generic presets also take public clients (PKCE only).
    #[must_use]
    pub fn needs_client_secret(self) -> bool {
        matches!(
            self,
            Self::Google | Self::GitHub | Self::Azure | Self::Slack | Self::Discord
        )
    }

    fn name(self) -> &'static str {
        match self {
            Self::Google => "Google",
            Self::GitHub => "GitHub",
            Self::Azure => "Microsoft",
            Self::GitLab => "GitLab",
            Self::Slack => "Slack",
            Self::Discord => "Discord",
            Self::Oidc => "OpenID Connect",
            Self::OAuth2 => "OAuth 2.0",
        }
    }
}

/// One upstream provider as configured.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ProviderConfig {
    /// Short identifier, `[a-z0-9-]`: names the callback path (`/upstream/{id}/callback`,
    /// one per provider, which is the mix-up defence of RFC 9700 §4.4.2).
    pub id: String,
    /// Which provider.
    pub preset: Preset,
    /// The client id registered at the provider.
    pub client_id: String,
    /// The client secret registered at the provider (none: a public client, PKCE only).
    #[serde(default)]
    pub client_secret: Option<String>,
    /// The name on the sign-in button; defaults to the preset's ("Google", "GitHub", …).
    #[serde(default)]
    pub display_name: Option<String>,
    /// Scopes to ask the provider for; defaults to the preset's.
    #[serde(default)]
    pub scopes: Option<Vec<String>>,
    /// Azure: the tenant (a tenant id or domain, or `common`, `organizations`,
    /// `consumers`). Default `common`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// GitLab: the instance (default `https://gitlab.com`).
    #[serde(default)]
    pub base_url: Option<Url>,
    /// Generic OpenID Connect: the issuer, whose discovery document gives the endpoints.
    #[serde(default)]
    pub issuer: Option<Url>,
    /// Generic OAuth 2.0: the authorization endpoint.
    #[serde(default)]
    pub authorization_endpoint: Option<Url>,
    /// Generic OAuth 2.0: the token endpoint.
    #[serde(default)]
    pub token_endpoint: Option<Url>,
    /// Generic OAuth 2.0: the endpoint that returns the signed-in user as JSON.
    #[serde(default)]
    pub userinfo_endpoint: Option<Url>,
    /// Generic OAuth 2.0: where the user's id, email and name are in the userinfo JSON.
    #[serde(default)]
    pub userinfo: Option<ClaimMapping>,
    /// Send PKCE (S256) to the provider; defaults to what the provider documents.
    #[serde(default)]
    pub pkce: Option<bool>,
}

impl std::fmt::Debug for ProviderConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderConfig")
            .field("id", &self.id)
            .field("preset", &self.preset)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .finish_non_exhaustive()
    }
}

impl ProviderConfig {
    /// A configuration for `preset` with the client registered at the provider.
    #[must_use]
    pub fn new(id: &str, preset: Preset, client_id: &str) -> Self {
        Self {
            id: id.to_owned(),
            preset,
            client_id: client_id.to_owned(),
            client_secret: None,
            display_name: None,
            scopes: None,
            tenant: None,
            base_url: None,
            issuer: None,
            authorization_endpoint: None,
            token_endpoint: None,
            userinfo_endpoint: None,
            userinfo: None,
            pkce: None,
        }
    }

    /// Sets the client secret.
    #[must_use]
    pub fn client_secret(mut self, secret: &str) -> Self {
        self.client_secret = Some(secret.to_owned());
        self
    }

    /// Sets the Azure tenant.
    #[must_use]
    pub fn tenant(mut self, tenant: &str) -> Self {
        self.tenant = Some(tenant.to_owned());
        self
    }

    /// Sets the GitLab instance.
    #[must_use]
    pub fn base_url(mut self, base_url: Url) -> Self {
        self.base_url = Some(base_url);
        self
    }

    /// Sets the OpenID Connect issuer.
    #[must_use]
    pub fn issuer(mut self, issuer: Url) -> Self {
        self.issuer = Some(issuer);
        self
    }

    /// Sets the plain OAuth 2.0 endpoints and where the identity is in the userinfo JSON.
    #[must_use]
    pub fn oauth2_endpoints(
        mut self,
        authorization: Url,
        token: Url,
        userinfo: Url,
        mapping: ClaimMapping,
    ) -> Self {
        self.authorization_endpoint = Some(authorization);
        self.token_endpoint = Some(token);
        self.userinfo_endpoint = Some(userinfo);
        self.userinfo = Some(mapping);
        self
    }

    /// Sets the scopes to ask for.
    #[must_use]
    pub fn scopes(mut self, scopes: &[&str]) -> Self {
        self.scopes = Some(scopes.iter().map(|s| (*s).to_owned()).collect());
        self
    }
}

/// What is wrong with a provider's configuration or discovery document.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProviderError {
    /// A required setting is missing or invalid.
    #[error("provider `{provider}`: {reason}")]
    Config {
        /// The provider id.
        provider: String,
        /// What to fix.
        reason: String,
    },
    /// The provider needs its client secret ([`Preset::needs_client_secret`]) and has none.
    #[error(
        "provider `{provider}`: client_secret is required: {service} refuses the token request without one"
    )]
    MissingClientSecret {
        /// The provider id.
        provider: String,
        /// Who refuses (Google, GitHub, ...).
        service: &'static str,
    },
    /// The discovery document is unusable.
    #[error("provider `{provider}`: discovery document: {reason}")]
    Discovery {
        /// The provider id.
        provider: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// How the `iss` of the provider's ID tokens is checked.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IssuerRule {
    /// Exactly this issuer (OpenID Connect Core §3.1.3.7 step 2).
    Exact(String),
    /// Google: `https://accounts.google.com` or, as Google documents, `accounts.google.com`.
    Google,
    /// Azure multi-tenant (`common`, `organizations`, `consumers`): the issuer is
    /// `https://login.microsoftonline.com/{tid}/v2.0` with the token's own `tid` claim.
    AzureAnyTenant,
}

impl IssuerRule {
    /// Whether `iss` is acceptable for a token whose claims are `claims`.
    #[must_use]
    pub fn accepts(&self, iss: &str, claims: &serde_json::Value) -> bool {
        match self {
            Self::Exact(expected) => iss == expected,
            Self::Google => iss == "https://accounts.google.com" || iss == "accounts.google.com",
            Self::AzureAnyTenant => claims
                .get("tid")
                .and_then(serde_json::Value::as_str)
                .is_some_and(|tid| azure_tenant_of(iss) == Some(tid)),
        }
    }
}

/// The tenant id in an Azure v2.0 issuer, `https://login.microsoftonline.com/{tid}/v2.0`, if
/// `iss` has that form with a plausible tenant id.
pub(crate) fn azure_tenant_of(iss: &str) -> Option<&str> {
    iss.strip_prefix("https://login.microsoftonline.com/")
        .and_then(|rest| rest.strip_suffix("/v2.0"))
        .filter(|tid| {
            !tid.is_empty() && tid.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// Where the signed-in user's identity comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdentitySource {
    /// The ID token (OpenID Connect), completed by the userinfo endpoint when it has one.
    IdToken,
    /// GitHub's `GET /user`, and `GET /user/emails` for a verified primary email.
    GitHub,
    /// Discord's `GET /users/@me`.
    Discord,
    /// A userinfo endpoint read through a [`ClaimMapping`].
    Userinfo(ClaimMapping),
}

/// A provider with every endpoint resolved.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Provider {
    /// The id: names the callback path.
    pub id: String,
    /// The preset it came from.
    pub preset: Preset,
    /// Shown on the sign-in button.
    pub display_name: String,
    /// The client id at the provider.
    pub client_id: String,
    /// The client secret at the provider.
    pub(crate) client_secret: Option<mcpauth_oauth_types::ClientSecret>,
    /// Where the user is sent.
    pub authorization_endpoint: Url,
    /// Where the code is exchanged.
    pub token_endpoint: Url,
    /// Where the user's profile is read, if anywhere.
    pub userinfo_endpoint: Option<Url>,
    /// The ID-token signing keys (OpenID Connect providers).
    pub jwks_uri: Option<Url>,
    /// The issuer (OpenID Connect providers): checked in ID tokens and in the RFC 9207 `iss`
    /// of the authorization response.
    pub issuer: Option<String>,
    /// How ID tokens' `iss` is checked.
    pub issuer_rule: Option<IssuerRule>,
    /// Whether the provider promises `iss` in every authorization response (RFC 9207
    /// `authorization_response_iss_parameter_supported`): then a response without it is
    /// refused.
    pub requires_iss: bool,
    /// Scopes asked for.
    pub scopes: Vec<String>,
    /// Whether PKCE (S256) is sent.
    pub pkce: bool,
    /// Whether an ID token (and so a nonce) is expected.
    pub openid: bool,
    /// Where the identity comes from.
    pub identity: IdentitySource,
    /// ID-token signature algorithms accepted.
    pub id_token_algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Client authentication at the token endpoint: HTTP Basic (`client_secret_basic`)
    /// rather than the form body (`client_secret_post`).
    pub basic_auth: bool,
    /// The token endpoint answers errors with `200 OK` (GitHub; Slack's `"ok": false`).
    pub errors_with_200: bool,
}

fn parse_url(provider: &str, text: &str) -> Result<Url, ProviderError> {
    Url::parse(text).map_err(|e| ProviderError::Config {
        provider: provider.to_owned(),
        reason: format!("`{text}`: {e}"),
    })
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

const ASYMMETRIC: [jsonwebtoken::Algorithm; 4] = [
    jsonwebtoken::Algorithm::RS256,
    jsonwebtoken::Algorithm::PS256,
    jsonwebtoken::Algorithm::ES256,
    jsonwebtoken::Algorithm::EdDSA,
];

impl Provider {
    /// Resolves a preset (every preset but [`Preset::Oidc`], which needs its discovery
    /// document: [`Provider::from_discovery`]).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Config`] naming the setting to fix.
    pub fn from_config(config: &ProviderConfig) -> Result<Self, ProviderError> {
        let problem = |reason: &str| ProviderError::Config {
            provider: config.id.clone(),
            reason: reason.to_owned(),
        };
        if config.id.is_empty()
            || config.id.len() > 40
            || !config
                .id
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(problem("id must be 1 to 40 characters of a-z, 0-9 and -"));
        }
        if config.client_id.is_empty() {
            return Err(problem("client_id is required"));
        }
        // Say so at start, not at the first user's sign-in.
        if config.preset.needs_client_secret()
            && config.client_secret.as_deref().is_none_or(str::is_empty)
        {
            return Err(ProviderError::MissingClientSecret {
                provider: config.id.clone(),
                service: config.preset.name(),
            });
        }
        let mut provider = Self {
            id: config.id.clone(),
            preset: config.preset,
            display_name: config.preset.name().to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config
                .client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(mcpauth_oauth_types::ClientSecret::new),
            // Every arm of the match below sets both endpoints (or returns an error).
            authorization_endpoint: parse_url(&config.id, "https://invalid.invalid/")?,
            token_endpoint: parse_url(&config.id, "https://invalid.invalid/")?,
            userinfo_endpoint: None,
            jwks_uri: None,
            issuer: None,
            issuer_rule: None,
            requires_iss: false,
            scopes: strings(&["openid", "email", "profile"]),
            pkce: true,
            openid: true,
            identity: IdentitySource::IdToken,
            id_token_algorithms: vec![jsonwebtoken::Algorithm::RS256],
            basic_auth: false,
            errors_with_200: false,
        };
        match config.preset {
            // https://developers.google.com/identity/openid-connect/openid-connect
            Preset::Google => {
                provider.authorization_endpoint =
                    parse_url(&config.id, "https://accounts.google.com/o/oauth2/v2/auth")?;
                provider.token_endpoint =
                    parse_url(&config.id, "https://oauth2.googleapis.com/token")?;
                provider.userinfo_endpoint = Some(parse_url(
                    &config.id,
                    "https://openidconnect.googleapis.com/v1/userinfo",
                )?);
                provider.jwks_uri = Some(parse_url(
                    &config.id,
                    "https://www.googleapis.com/oauth2/v3/certs",
                )?);
                provider.issuer = Some("https://accounts.google.com".into());
                provider.issuer_rule = Some(IssuerRule::Google);
            }
            // https://docs.github.com/en/apps/oauth-apps/building-oauth-apps/authorizing-oauth-apps
            Preset::GitHub => {
                provider.authorization_endpoint =
                    parse_url(&config.id, "https://github.com/login/oauth/authorize")?;
                provider.token_endpoint =
                    parse_url(&config.id, "https://github.com/login/oauth/access_token")?;
                provider.userinfo_endpoint =
                    Some(parse_url(&config.id, "https://api.github.com/user")?);
                provider.scopes = strings(&["read:user", "user:email"]);
                provider.openid = false;
                provider.identity = IdentitySource::GitHub;
                provider.errors_with_200 = true;
            }
            // https://learn.microsoft.com/en-us/entra/identity-platform/v2-protocols-oidc
            Preset::Azure => {
                let tenant = config.tenant.as_deref().unwrap_or("common");
                if tenant.is_empty()
                    || !tenant
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                {
                    return Err(problem(
                        "tenant must be a tenant id, a domain, or common, organizations, consumers",
                    ));
                }
                let base = format!("https://login.microsoftonline.com/{tenant}");
                provider.authorization_endpoint =
                    parse_url(&config.id, &format!("{base}/oauth2/v2.0/authorize"))?;
                provider.token_endpoint =
                    parse_url(&config.id, &format!("{base}/oauth2/v2.0/token"))?;
                provider.userinfo_endpoint = None;
                provider.jwks_uri = Some(parse_url(
                    &config.id,
                    &format!("{base}/discovery/v2.0/keys"),
                )?);
                provider.display_name = "Microsoft".into();
                if matches!(tenant, "common" | "organizations" | "consumers") {
                    provider.issuer = None;
                    provider.issuer_rule = Some(IssuerRule::AzureAnyTenant);
                } else {
                    let issuer = format!("{base}/v2.0");
                    provider.issuer_rule = Some(IssuerRule::Exact(issuer.clone()));
                    provider.issuer = Some(issuer);
                }
            }
            // https://docs.gitlab.com/integration/openid_connect_provider/
            Preset::GitLab => {
                let base = match &config.base_url {
                    Some(base) => base.clone(),
                    None => parse_url(&config.id, "https://gitlab.com")?,
                };
                let base = base.as_str().trim_end_matches('/').to_owned();
                provider.authorization_endpoint =
                    parse_url(&config.id, &format!("{base}/oauth/authorize"))?;
                provider.token_endpoint = parse_url(&config.id, &format!("{base}/oauth/token"))?;
                provider.userinfo_endpoint =
                    Some(parse_url(&config.id, &format!("{base}/oauth/userinfo"))?);
                provider.jwks_uri = Some(parse_url(
                    &config.id,
                    &format!("{base}/oauth/discovery/keys"),
                )?);
                provider.scopes = strings(&["openid", "email", "profile"]);
                provider.issuer_rule = Some(IssuerRule::Exact(base.clone()));
                provider.issuer = Some(base);
            }
            // https://api.slack.com/authentication/sign-in-with-slack
            Preset::Slack => {
                provider.authorization_endpoint =
                    parse_url(&config.id, "https://slack.com/openid/connect/authorize")?;
                provider.token_endpoint =
                    parse_url(&config.id, "https://slack.com/api/openid.connect.token")?;
                provider.userinfo_endpoint = Some(parse_url(
                    &config.id,
                    "https://slack.com/api/openid.connect.userInfo",
                )?);
                provider.jwks_uri = Some(parse_url(
                    &config.id,
                    "https://slack.com/openid/connect/keys",
                )?);
                provider.issuer = Some("https://slack.com".into());
                provider.issuer_rule = Some(IssuerRule::Exact("https://slack.com".into()));
                provider.errors_with_200 = true;
                provider.pkce = false;
            }
            // https://discord.com/developers/docs/topics/oauth2
            Preset::Discord => {
                provider.authorization_endpoint =
                    parse_url(&config.id, "https://discord.com/oauth2/authorize")?;
                provider.token_endpoint =
                    parse_url(&config.id, "https://discord.com/api/oauth2/token")?;
                provider.userinfo_endpoint =
                    Some(parse_url(&config.id, "https://discord.com/api/users/@me")?);
                provider.scopes = strings(&["identify", "email"]);
                provider.openid = false;
                provider.identity = IdentitySource::Discord;
            }
            Preset::Oidc => {
                return Err(problem(
                    "an OpenID Connect provider is resolved from its discovery document \
                     (Provider::from_discovery)",
                ));
            }
            Preset::OAuth2 => {
                let (Some(authorization), Some(token), Some(userinfo), Some(mapping)) = (
                    &config.authorization_endpoint,
                    &config.token_endpoint,
                    &config.userinfo_endpoint,
                    &config.userinfo,
                ) else {
                    return Err(problem(
                        "a plain OAuth 2.0 provider needs authorization_endpoint, token_endpoint, \
                         userinfo_endpoint and a userinfo mapping",
                    ));
                };
                provider.authorization_endpoint = authorization.clone();
                provider.token_endpoint = token.clone();
                provider.userinfo_endpoint = Some(userinfo.clone());
                provider.scopes = Vec::new();
                provider.openid = false;
                provider.identity = IdentitySource::Userinfo(mapping.clone());
            }
        }
        provider.apply_overrides(config);
        provider.check_endpoints()?;
        Ok(provider)
    }

    /// Resolves a generic OpenID Connect provider from its discovery document (OpenID
    /// Connect Discovery §4), fetched by the caller from
    /// [`discovery_url`](Self::discovery_url).
    ///
    /// # Errors
    ///
    /// [`ProviderError::Discovery`] when the document's `issuer` is not the configured one
    /// (§4.3), an endpoint is missing or not https, or the provider cannot do the
    /// authorization code flow with an asymmetric ID-token signature.
    pub fn from_discovery(config: &ProviderConfig, document: &[u8]) -> Result<Self, ProviderError> {
        let fail = |reason: String| ProviderError::Discovery {
            provider: config.id.clone(),
            reason,
        };
        let Some(issuer) = &config.issuer else {
            return Err(ProviderError::Config {
                provider: config.id.clone(),
                reason: "issuer is required for an OpenID Connect provider".into(),
            });
        };
        let doc: serde_json::Value =
            serde_json::from_slice(document).map_err(|e| fail(format!("not JSON: {e}")))?;
        let text = |name: &str| doc.get(name).and_then(serde_json::Value::as_str);
        let endpoint = |name: &str| -> Result<Url, ProviderError> {
            let value = text(name).ok_or_else(|| fail(format!("{name} is missing")))?;
            Url::parse(value).map_err(|e| fail(format!("{name} `{value}`: {e}")))
        };
        let configured = issuer.as_str().trim_end_matches('/');
        let published = text("issuer").ok_or_else(|| fail("issuer is missing".into()))?;
        if published.trim_end_matches('/') != configured {
            return Err(fail(format!(
                "issuer `{published}` is not the configured `{issuer}` (OpenID Connect Discovery §4.3)"
            )));
        }
        let list = |name: &str| -> Option<Vec<String>> {
            doc.get(name)
                .and_then(serde_json::Value::as_array)
                .map(|items| {
                    items
                        .iter()
                        .filter_map(serde_json::Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
        };
        if let Some(types) = list("response_types_supported")
            && !types.iter().any(|t| t == "code")
        {
            return Err(fail(
                "the provider does not support response_type=code".into(),
            ));
        }
        let algorithms: Vec<jsonwebtoken::Algorithm> =
            list("id_token_signing_alg_values_supported")
                .unwrap_or_else(|| vec!["RS256".into()])
                .iter()
                .filter_map(|name| name.parse::<jsonwebtoken::Algorithm>().ok())
                .filter(|alg| ASYMMETRIC.contains(alg))
                .collect();
        if algorithms.is_empty() {
            return Err(fail(
                "no asymmetric ID-token signing algorithm we accept (RS256, PS256, ES256, EdDSA)"
                    .into(),
            ));
        }
        let pkce = list("code_challenge_methods_supported")
            .is_some_and(|methods| methods.iter().any(|m| m == "S256"));
        let basic_auth = list("token_endpoint_auth_methods_supported").is_none_or(|methods| {
            methods.iter().any(|m| m == "client_secret_basic")
                && !methods.iter().any(|m| m == "client_secret_post")
        });
        let mut provider = Self {
            id: config.id.clone(),
            preset: Preset::Oidc,
            display_name: issuer.host_str().unwrap_or("OpenID Connect").to_owned(),
            client_id: config.client_id.clone(),
            client_secret: config
                .client_secret
                .clone()
                .filter(|s| !s.is_empty())
                .map(mcpauth_oauth_types::ClientSecret::new),
            authorization_endpoint: endpoint("authorization_endpoint")?,
            token_endpoint: endpoint("token_endpoint")?,
            userinfo_endpoint: text("userinfo_endpoint").and_then(|u| Url::parse(u).ok()),
            jwks_uri: Some(endpoint("jwks_uri")?),
            issuer: Some(published.to_owned()),
            issuer_rule: Some(IssuerRule::Exact(published.to_owned())),
            requires_iss: doc
                .get("authorization_response_iss_parameter_supported")
                .and_then(serde_json::Value::as_bool)
                .unwrap_or(false),
            scopes: strings(&["openid", "email", "profile"]),
            pkce,
            openid: true,
            identity: IdentitySource::IdToken,
            id_token_algorithms: algorithms,
            basic_auth,
            errors_with_200: false,
        };
        provider.apply_overrides(config);
        provider.check_endpoints().map_err(|e| match e {
            ProviderError::Config { provider, reason }
            | ProviderError::Discovery { provider, reason } => {
                ProviderError::Discovery { provider, reason }
            }
            other @ ProviderError::MissingClientSecret { .. } => other,
        })?;
        Ok(provider)
    }

    /// Where a generic OpenID Connect provider's discovery document is (OpenID Connect
    /// Discovery §4: the issuer with `/.well-known/openid-configuration` appended).
    #[must_use]
    pub fn discovery_url(issuer: &Url) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            issuer.as_str().trim_end_matches('/')
        )
    }

    fn apply_overrides(&mut self, config: &ProviderConfig) {
        if let Some(name) = config
            .display_name
            .as_ref()
            .filter(|n| !n.trim().is_empty())
        {
            name.trim().clone_into(&mut self.display_name);
        }
        if let Some(scopes) = &config.scopes {
            self.scopes.clone_from(scopes);
            if self.openid && !self.scopes.iter().any(|s| s == "openid") {
                self.scopes.insert(0, "openid".into());
            }
        }
        if let Some(pkce) = config.pkce {
            self.pkce = pkce;
        }
    }

    /// Endpoints are https; plain http only on loopback (a provider running beside the
    /// server in development and tests).
    fn check_endpoints(&self) -> Result<(), ProviderError> {
        let endpoints = [
            Some(&self.authorization_endpoint),
            Some(&self.token_endpoint),
            self.userinfo_endpoint.as_ref(),
            self.jwks_uri.as_ref(),
        ];
        for endpoint in endpoints.into_iter().flatten() {
            if !secure_or_loopback(endpoint) {
                return Err(ProviderError::Config {
                    provider: self.id.clone(),
                    reason: format!("`{endpoint}` must be https (http only on loopback)"),
                });
            }
        }
        Ok(())
    }
}

/// `https`, or `http` to a loopback address.
pub(crate) fn secure_or_loopback(url: &Url) -> bool {
    match url.scheme() {
        "https" => true,
        "http" => match url.host() {
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            Some(url::Host::Domain(name)) => name == "localhost",
            None => false,
        },
        _ => false,
    }
}
