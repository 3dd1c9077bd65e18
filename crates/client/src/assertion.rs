//! Tokens without a browser from a JWT the client presents (the JWT bearer grant, RFC 7523
//! §2.1): an identity assertion from the user's enterprise identity provider (ID-JAG,
//! draft-ietf-oauth-identity-assertion-authz-grant, MCP's enterprise-managed authorization), or
//! a workload's own token (a Kubernetes service-account token, a CI job's OIDC token, a SPIFFE
//! JWT-SVID; MCP's workload identity).
//!
//! For ID-JAG the client first exchanges the user's token at the identity provider (RFC 8693)
//! for an ID-JAG addressed to the MCP server's authorization server and naming the MCP server
//! as `resource`, then presents it there.

use std::path::PathBuf;

use url::Url;

use crate::Error;
use crate::dpop::DpopKeyMaterial;
use crate::http::{HttpClient, post_form};
use crate::registration::ClientCredentials;
use crate::token::{TokenFailure, TokenSet, token_request};

pub use mcpauth_oauth_types::{JWT_BEARER_GRANT, TOKEN_EXCHANGE_GRANT};
/// The token type of an identity assertion JWT authorization grant.
pub const ID_JAG_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id-jag";
/// RFC 8693 §3: an OpenID Connect ID token.
pub const ID_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:id_token";
/// RFC 8693 §3: an OAuth access token.
pub const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// RFC 8693 §3: a refresh token (the ID-JAG draft's §4.3: a provider may take the refresh
/// token from the user's sign-in; `mcpauth-server` as a provider takes only this).
pub const REFRESH_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:refresh_token";

/// The user's enterprise identity provider, and the user's token there, for enterprise-managed
/// authorization (ID-JAG).
#[derive(Clone)]
#[non_exhaustive]
pub struct EnterpriseIdp {
    /// The identity provider's token endpoint (where the token exchange goes).
    pub token_endpoint: String,
    /// This client's id at the identity provider.
    pub client_id: String,
    /// Its secret there (`client_secret_basic`), if it has one.
    pub client_secret: Option<String>,
    /// The user's token at the identity provider (an ID token from the user's sign-in, or an
    /// access token the provider issued).
    pub subject_token: String,
    /// [`ID_TOKEN_TYPE`], [`REFRESH_TOKEN_TYPE`] or [`ACCESS_TOKEN_TYPE`].
    pub subject_token_type: String,
}

impl EnterpriseIdp {
    /// The identity provider at `token_endpoint`, where this client is `client_id` (with
    /// `client_secret`, if any), and the user's `id_token` from signing in there.
    #[must_use]
    pub fn with_id_token(
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<&str>,
        id_token: &str,
    ) -> Self {
        Self {
            token_endpoint: token_endpoint.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            subject_token: id_token.to_owned(),
            subject_token_type: ID_TOKEN_TYPE.to_owned(),
        }
    }

    /// Like [`with_id_token`](Self::with_id_token), with an access token the identity
    /// provider issued to this client for the user.
    #[must_use]
    pub fn with_access_token(
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<&str>,
        access_token: &str,
    ) -> Self {
        Self {
            subject_token_type: ACCESS_TOKEN_TYPE.to_owned(),
            ..Self::with_id_token(token_endpoint, client_id, client_secret, access_token)
        }
    }
}

impl EnterpriseIdp {
    /// Like [`with_id_token`](Self::with_id_token), with the refresh token the identity
    /// provider issued to this client when the user signed in there (the provider must take
    /// refresh tokens as subject tokens, as `mcpauth-server` does).
    #[must_use]
    pub fn with_refresh_token(
        token_endpoint: &str,
        client_id: &str,
        client_secret: Option<&str>,
        refresh_token: &str,
    ) -> Self {
        Self {
            subject_token_type: REFRESH_TOKEN_TYPE.to_owned(),
            ..Self::with_id_token(token_endpoint, client_id, client_secret, refresh_token)
        }
    }
}

impl std::fmt::Debug for EnterpriseIdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnterpriseIdp")
            .field("token_endpoint", &self.token_endpoint)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("subject_token", &"[redacted]")
            .field("subject_token_type", &self.subject_token_type)
            .finish()
    }
}

/// Where the JWT a client presents with the JWT bearer grant comes from.
#[derive(Clone)]
#[non_exhaustive]
pub enum AssertionSource {
    /// Enterprise-managed authorization: an ID-JAG from the user's identity provider.
    EnterpriseIdp(EnterpriseIdp),
    /// A workload token in a file, read again at each authorization (platforms rotate them:
    /// Kubernetes' projected service-account tokens). Its `aud` must name the authorization
    /// server.
    WorkloadTokenFile(PathBuf),
    /// A workload token given as it is.
    WorkloadToken(String),
    /// A GitHub Actions OIDC token, requested from the runner for each authorization with the
    /// authorization server's issuer as its audience (`ACTIONS_ID_TOKEN_REQUEST_URL` and
    /// `ACTIONS_ID_TOKEN_REQUEST_TOKEN`, set in jobs with `permissions: id-token: write`).
    GitHubActions,
}

impl std::str::FromStr for AssertionSource {
    type Err = std::convert::Infallible;

    /// A workload token source as the CLI names it: `github-actions`, or a file. (No
    /// shortcut for Kubernetes' default service-account token: its audience is the cluster's
    /// API server, and a token for one party is never presented to another; project one with
    /// the authorization server as its audience and name its file.)
    fn from_str(source: &str) -> Result<Self, Self::Err> {
        Ok(match source {
            "github-actions" => Self::GitHubActions,
            path => Self::WorkloadTokenFile(PathBuf::from(path)),
        })
    }
}

impl std::fmt::Debug for AssertionSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::EnterpriseIdp(idp) => f.debug_tuple("EnterpriseIdp").field(idp).finish(),
            Self::WorkloadTokenFile(path) => {
                f.debug_tuple("WorkloadTokenFile").field(path).finish()
            }
            Self::WorkloadToken(_) => f.write_str("WorkloadToken([redacted])"),
            Self::GitHubActions => f.write_str("GitHubActions"),
        }
    }
}

impl AssertionSource {
    /// The workload token, read now.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`] when the file cannot be read or is empty.
    pub(crate) fn workload_token(&self) -> Result<Option<String>, Error> {
        match self {
            Self::EnterpriseIdp(_) | Self::GitHubActions => Ok(None),
            Self::WorkloadToken(token) => Ok(Some(token.trim().to_owned())),
            Self::WorkloadTokenFile(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    Error::Storage(format!(
                        "the workload token file {} cannot be read: {e}",
                        path.display()
                    ))
                })?;
                let token = text.trim();
                if token.is_empty() {
                    return Err(Error::Storage(format!(
                        "the workload token file {} is empty",
                        path.display()
                    )));
                }
                Ok(Some(token.to_owned()))
            }
        }
    }
}

/// Refuses to present `jwt` to the authorization server `issuer` unless its `aud` names
/// `issuer`: a token addressed to someone else (a cluster's API server, another service) is a
/// credential there, and the authorization server could replay it (RFC 7523 §3, RFC 8725
/// §3.9). Read without checking the signature: the authorization server checks that.
///
/// # Errors
///
/// [`Error::Insecure`] naming the audience found and the one needed.
pub(crate) fn check_audience(jwt: &str, issuer: &str) -> Result<(), Error> {
    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Audience {
        One(String),
        Many(Vec<String>),
    }
    #[derive(serde::Deserialize)]
    struct Claims {
        aud: Option<Audience>,
    }
    let refused = |found: &str| Error::Insecure {
        url: issuer.to_owned(),
        reason: format!(
            "the workload token's audience is {found}, not this authorization server; get one \
             whose aud is {issuer} (Kubernetes: a projected serviceAccountToken with that \
             audience; SPIFFE: a JWT-SVID for it)"
        ),
    };
    let claims =
        unverified_claims::<Claims>(jwt).ok_or_else(|| refused("unreadable (it is not a JWT)"))?;
    let audiences = match claims.aud {
        Some(Audience::One(one)) => vec![one],
        Some(Audience::Many(many)) => many,
        None => return Err(refused("missing")),
    };
    // Every audience must be this server: a token also addressed to someone else is a
    // credential there too, and this server could replay it.
    if !audiences.is_empty()
        && audiences
            .iter()
            .all(|aud| crate::discovery::same_issuer(aud, issuer))
    {
        Ok(())
    } else {
        Err(refused(&audiences.join(", ")))
    }
}

#[derive(serde::Deserialize)]
struct RunnerToken {
    value: String,
}

/// A GitHub Actions OIDC token for `audience` from the runner that runs this job: `GET
/// $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with `Authorization: Bearer
/// $ACTIONS_ID_TOKEN_REQUEST_TOKEN`, checked against `policy` (https).
///
/// # Errors
///
/// [`Error::Storage`] outside a job with `id-token: write`; [`Error::BadTokenResponse`] when
/// the runner answers something else; [`Error::Network`].
pub async fn github_actions_token(
    http: &dyn HttpClient,
    policy: crate::UrlPolicy,
    audience: &str,
) -> Result<String, Error> {
    let (Ok(url), Ok(bearer)) = (
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_URL"),
        std::env::var("ACTIONS_ID_TOKEN_REQUEST_TOKEN"),
    ) else {
        return Err(Error::Storage(
            "ACTIONS_ID_TOKEN_REQUEST_URL and ACTIONS_ID_TOKEN_REQUEST_TOKEN are not set: run in a \
             GitHub Actions job with `permissions: id-token: write`"
                .into(),
        ));
    };
    runner_token(http, policy, &url, &bearer, audience).await
}

/// [`github_actions_token`] with the runner's URL and bearer token given.
async fn runner_token(
    http: &dyn HttpClient,
    policy: crate::UrlPolicy,
    url: &str,
    bearer: &str,
    audience: &str,
) -> Result<String, Error> {
    let mut url = policy.check(url)?;
    url.query_pairs_mut().append_pair("audience", audience);
    let request = http::Request::get(url.as_str())
        .header(http::header::AUTHORIZATION, format!("Bearer {bearer}"))
        .header(http::header::ACCEPT, "application/json")
        .body(Vec::new())
        .map_err(|e| Error::Network {
            url: url.to_string(),
            reason: "the request could not be built".into(),
            source: Some(Box::new(e)),
        })?;
    let response = http.send(request).await?;
    let unusable = |reason: String| Error::BadTokenResponse {
        url: url.to_string(),
        reason,
    };
    if !response.status().is_success() {
        return Err(unusable(format!(
            "the runner answered {} to the OIDC token request",
            response.status()
        )));
    }
    serde_json::from_slice::<RunnerToken>(response.body())
        .map(|t| t.value)
        .map_err(|e| unusable(format!("the runner's answer does not parse: {e}")))
}

#[derive(serde::Deserialize)]
struct ExchangeResponse {
    access_token: String,
    #[serde(default)]
    issued_token_type: Option<String>,
}

/// RFC 8693 at the identity provider: the user's token for an ID-JAG addressed to
/// `audience` (the MCP server's authorization server, by its issuer identifier), for
/// `resource` (the MCP server) and `scope`. With `dpop`, the request carries a proof by that
/// key (answering the provider's nonce request once), so that a provider that binds ID-JAGs
/// (the ID-JAG draft's §8.6) binds this one to the key the client then proves at the
/// authorization server: a stolen ID-JAG is then useless without it.
///
/// # Errors
///
/// [`Error::Token`] with the provider's refusal; [`Error::BadTokenResponse`] when it answers
/// something other than an ID-JAG; [`Error::Network`].
pub async fn request_identity_assertion(
    http: &dyn HttpClient,
    idp_token_endpoint: &Url,
    idp: &EnterpriseIdp,
    audience: &str,
    resource: &str,
    scope: Option<&str>,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<String, Error> {
    let mut params = vec![
        ("grant_type", TOKEN_EXCHANGE_GRANT),
        ("requested_token_type", ID_JAG_TOKEN_TYPE),
        ("audience", audience),
        ("resource", resource),
        ("subject_token", idp.subject_token.as_str()),
        ("subject_token_type", idp.subject_token_type.as_str()),
    ];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let basic = idp
        .client_secret
        .as_deref()
        .map(|secret| (idp.client_id.as_str(), secret));
    if basic.is_none() {
        params.push(("client_id", idp.client_id.as_str()));
    }
    let response = crate::token::post_with_proof(http, idp_token_endpoint, dpop, || {
        post_form(idp_token_endpoint, &params, basic)
    })
    .await?;
    let status = response.status();
    if !status.is_success() {
        return Err(
            TokenFailure::of_error_response(status, response.body()).into_error(idp_token_endpoint)
        );
    }
    let unusable = |reason: String| Error::BadTokenResponse {
        url: idp_token_endpoint.to_string(),
        reason,
    };
    let parsed: ExchangeResponse = serde_json::from_slice(response.body())
        .map_err(|e| unusable(format!("the response does not parse: {e}")))?;
    if parsed.issued_token_type.as_deref() != Some(ID_JAG_TOKEN_TYPE) {
        return Err(unusable(format!(
            "issued_token_type is {:?}, not {ID_JAG_TOKEN_TYPE}",
            parsed
                .issued_token_type
                .map(|t| t.chars().take(80).collect::<String>())
        )));
    }
    // The draft's §8.6.1: a provider that bound the ID-JAG bound it to this client's key; one
    // bound to another key would be refused at the authorization server anyway, so say why
    // here. (Unbound: the provider does not take DPoP, and the access token is bound all the
    // same.)
    if let (Some(key), Some(bound)) = (
        dpop.map(DpopKeyMaterial::key).transpose()?,
        bound_key(&parsed.access_token),
    ) && bound != key.thumbprint()
    {
        return Err(unusable(
            "the identity assertion is bound to another DPoP key than the one this client proved"
                .into(),
        ));
    }
    Ok(parsed.access_token)
}

/// A JWT's claims, read without checking its signature: for what the client compares with
/// what it knows (its audience, its key), never to trust.
fn unverified_claims<T: serde::de::DeserializeOwned>(jwt: &str) -> Option<T> {
    use base64::Engine as _;
    let payload = jwt.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// The `cnf.jkt` of a JWT (the client only compares it with its own key's thumbprint).
fn bound_key(jwt: &str) -> Option<String> {
    let claims: serde_json::Value = unverified_claims(jwt)?;
    claims.get("cnf")?.get("jkt")?.as_str().map(str::to_owned)
}

/// A sign-in at the enterprise identity provider: its token endpoint (where ID-JAGs are
/// asked for) and the tokens it issued, whose refresh token
/// [`EnterpriseIdp::with_refresh_token`] exchanges.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct IdentityProviderSignIn {
    /// The provider's token endpoint, from its metadata.
    pub token_endpoint: String,
    /// Its revocation endpoint (RFC 7009), where signing out ends the sign-in, if it has one.
    pub revocation_endpoint: Option<String>,
    /// The provider's tokens for this client (with a refresh token).
    pub tokens: TokenSet,
}

/// The metadata of the identity provider `idp_issuer` (RFC 8414), its `issuer` checked to be
/// exactly that one (a mix-up defence: the endpoints it names are where the client's secret
/// and the user's refresh token go).
///
/// # Errors
///
/// [`Error::Discovery`] when it publishes none, or names another issuer; [`Error::Insecure`];
/// [`Error::Network`].
pub async fn identity_provider_metadata(
    http: &dyn HttpClient,
    policy: crate::UrlPolicy,
    idp_issuer: &str,
) -> Result<mcpauth_metadata::AuthorizationServerMetadata, Error> {
    use crate::discovery::{
        ExpectedIssuer, Fetched, authorization_server_candidates, check_authorization_server,
        fetch_document,
    };
    let issuer = policy.check(idp_issuer)?;
    for url in authorization_server_candidates(&issuer) {
        if let Fetched::Found(metadata) =
            fetch_document::<mcpauth_metadata::AuthorizationServerMetadata>(http, &url).await?
        {
            check_authorization_server(
                &metadata,
                ExpectedIssuer::Exactly(&issuer),
                &url,
                policy,
                &issuer,
            )?;
            return Ok(metadata);
        }
    }
    Err(Error::Discovery {
        url: idp_issuer.to_owned(),
        reason: "the identity provider publishes no authorization server metadata".into(),
    })
}

/// Signs the user in at the enterprise identity provider `idp_issuer`, once (SSO), as the
/// client `client` registered there: the provider's metadata (RFC 8414, its issuer checked),
/// the authorization code flow with PKCE through `browser` and a loopback redirect, the code
/// exchanged with the client's credentials. The sign-in names the provider's own issuer as
/// its `resource` (it is for the provider, not for an MCP server).
///
/// # Errors
///
/// [`Error::Discovery`] when the provider publishes no usable metadata; [`Error::Denied`],
/// [`Error::Timeout`] from the sign-in; [`Error::BadTokenResponse`] when the provider issues
/// no refresh token (nothing to exchange later); [`Error::Token`], [`Error::Network`].
pub async fn sign_in_at_identity_provider(
    http: &dyn HttpClient,
    policy: crate::UrlPolicy,
    browser: &dyn crate::Browser,
    idp_issuer: &str,
    client: &ClientCredentials,
    timeout: std::time::Duration,
) -> Result<IdentityProviderSignIn, Error> {
    let metadata = identity_provider_metadata(http, policy, idp_issuer).await?;
    let token_endpoint =
        policy.check(
            metadata
                .token_endpoint
                .as_deref()
                .ok_or_else(|| Error::Discovery {
                    url: idp_issuer.to_owned(),
                    reason: "the identity provider's metadata has no token_endpoint".into(),
                })?,
        )?;
    let listener = crate::loopback::LoopbackListener::bind(None).await?;
    let redirect_uri = listener.redirect_uri();
    let request = crate::authorize::authorization_request(
        &metadata,
        &client.client_id,
        &redirect_uri,
        None,
        &metadata.issuer,
    )?;
    browser.open(&request.url).await?;
    let query = listener.wait(&request.state, timeout).await?;
    let code = crate::authorize::read_authorization_response(&query, &request.state, &metadata)?;
    let tokens = crate::token::exchange_code(
        http,
        &token_endpoint,
        client,
        &code,
        &request.redirect_uri,
        &request.verifier,
        &metadata.issuer,
        None,
        mcpauth_oauth_types::now().0,
        None,
    )
    .await?;
    if tokens.refresh_token.is_none() {
        return Err(Error::BadTokenResponse {
            url: token_endpoint.to_string(),
            reason: "the identity provider issued no refresh token: there is nothing to exchange for identity assertions later (is the client allowed the refresh_token grant there?)".into(),
        });
    }
    let revocation_endpoint = metadata
        .revocation_endpoint
        .as_deref()
        .map(|e| policy.check(e))
        .transpose()?
        .map(|e| e.to_string());
    Ok(IdentityProviderSignIn {
        token_endpoint: token_endpoint.to_string(),
        revocation_endpoint,
        tokens,
    })
}

/// Ends a sign-in at the identity provider: revokes its refresh token at `revocation_endpoint`
/// (RFC 7009), authenticating as `client`, so that no more identity assertions are issued
/// for it. Whether the provider accepted the request (RFC 7009 §2.2: 200).
///
/// # Errors
///
/// [`Error::Network`] when the provider cannot be reached.
pub async fn revoke_identity_provider_sign_in(
    http: &dyn HttpClient,
    revocation_endpoint: &Url,
    client: &ClientCredentials,
    refresh_token: &str,
) -> Result<bool, Error> {
    let params = [
        ("token", refresh_token),
        ("token_type_hint", "refresh_token"),
    ];
    let request = crate::token::authenticated_form(
        revocation_endpoint,
        client,
        &params,
        mcpauth_oauth_types::now().0,
    )?;
    Ok(http.send(request).await?.status() == http::StatusCode::OK)
}

/// RFC 7523 §2.1 at the authorization server: `assertion` for tokens for `resource`, the
/// client authenticating as `client` registered (or not at all when `client` is `None`: a
/// workload token is its own credential), bound to `dpop` where the server binds.
///
/// # Errors
///
/// [`Error::Token`] with the server's refusal; [`Error::Network`].
#[allow(
    clippy::too_many_arguments,
    reason = "each is one parameter of the request"
)]
pub async fn jwt_bearer(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: Option<&ClientCredentials>,
    assertion: &str,
    resource: &str,
    scope: Option<&str>,
    now: u64,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<TokenSet, Error> {
    let mut params = vec![
        ("grant_type", JWT_BEARER_GRANT),
        ("assertion", assertion),
        ("resource", resource),
    ];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    let anonymous;
    let client = match client {
        Some(client) => client,
        None => {
            anonymous = ClientCredentials::pre_registered(endpoint.as_str(), "", None);
            &anonymous
        }
    };
    token_request(http, endpoint, client, &params, scope, now, dpop)
        .await?
        .map_err(|f| f.into_error(endpoint))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    /// The runner, as a mock: no GitHub Actions runner can run here. Answers with a token and
    /// keeps the request it got.
    struct Runner(std::sync::Mutex<Option<http::Request<Vec<u8>>>>);

    #[async_trait::async_trait]
    impl HttpClient for Runner {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, Error> {
            *self.0.lock().unwrap() = Some(request);
            Ok(http::Response::new(
                br#"{"count":1,"value":"eyJ.workload.jwt"}"#.to_vec(),
            ))
        }
    }

    /// An identity provider that asks for its nonce once, then answers with an ID-JAG; keeps
    /// the requests (a mock: what is checked is what the client sends; the round trip with a
    /// real provider is examples/tests/enterprise_idp.rs).
    struct Provider(std::sync::Mutex<Vec<http::Request<Vec<u8>>>>);

    #[async_trait::async_trait]
    impl HttpClient for Provider {
        async fn send(
            &self,
            request: http::Request<Vec<u8>>,
        ) -> Result<http::Response<Vec<u8>>, Error> {
            let mut seen = self.0.lock().unwrap();
            seen.push(request);
            if seen.len() == 1 {
                return Ok(http::Response::builder()
                    .status(400)
                    .header("dpop-nonce", "provider-nonce-1")
                    .body(br#"{"error":"use_dpop_nonce"}"#.to_vec())
                    .unwrap());
            }
            Ok(http::Response::new(
                br#"{"access_token":"eyJ.id-jag.sig","token_type":"N_A","issued_token_type":"urn:ietf:params:oauth:token-type:id-jag","expires_in":300}"#.to_vec(),
            ))
        }
    }

    #[tokio::test]
    async fn the_id_jag_request_carries_a_proof_of_the_clients_key_and_answers_the_nonce() {
        let provider = Provider(std::sync::Mutex::new(Vec::new()));
        let key = DpopKeyMaterial::generate().unwrap();
        let endpoint = Url::parse("https://idp.example.com/token").unwrap();
        let idp = EnterpriseIdp::with_refresh_token(endpoint.as_str(), "agent", Some("s"), "rt");
        let assertion = request_identity_assertion(
            &provider,
            &endpoint,
            &idp,
            "https://auth.example.com",
            "https://mcp.example.com/mcp",
            None,
            Some(&key),
        )
        .await
        .unwrap();
        assert_eq!(assertion, "eyJ.id-jag.sig");
        let seen = provider.0.lock().unwrap();
        assert_eq!(seen.len(), 2, "asked for the nonce, then retried once");
        let claims = |request: &http::Request<Vec<u8>>| {
            use base64::Engine as _;
            let proof = request.headers()["dpop"].to_str().unwrap().to_owned();
            let payload = proof.split('.').nth(1).unwrap().to_owned();
            serde_json::from_slice::<serde_json::Value>(
                &base64::engine::general_purpose::URL_SAFE_NO_PAD
                    .decode(payload)
                    .unwrap(),
            )
            .unwrap()
        };
        let (first, second) = (claims(&seen[0]), claims(&seen[1]));
        assert_eq!(first["htu"], endpoint.as_str());
        assert_eq!(first["htm"], "POST");
        assert!(first.get("nonce").is_none());
        assert_eq!(second["nonce"], "provider-nonce-1");
        assert_ne!(first["jti"], second["jti"], "a fresh proof for the retry");
    }

    #[tokio::test]
    async fn the_runner_is_asked_for_a_token_for_the_authorization_server() {
        let runner = Runner(std::sync::Mutex::new(None));
        let token = runner_token(
            &runner,
            crate::UrlPolicy::https_only(),
            "https://pipelines.example/idtoken?api-version=2.0",
            "runner-secret",
            "https://auth.example.com",
        )
        .await
        .unwrap();
        assert_eq!(token, "eyJ.workload.jwt");
        let request = runner.0.lock().unwrap().take().unwrap();
        assert_eq!(request.method(), http::Method::GET);
        assert_eq!(
            request.uri().to_string(),
            "https://pipelines.example/idtoken?api-version=2.0&audience=https%3A%2F%2Fauth.example.com"
        );
        assert_eq!(request.headers()["authorization"], "Bearer runner-secret");
        // Plain http is refused like any URL the client did not choose.
        assert!(
            runner_token(
                &runner,
                crate::UrlPolicy::https_only(),
                "http://pipelines.example/idtoken",
                "s",
                "a"
            )
            .await
            .is_err()
        );
    }

    #[test]
    fn workload_sources_read_as_the_cli_names_them_and_never_print_a_token() {
        let parse = |s: &str| s.parse::<AssertionSource>().unwrap();
        assert!(matches!(
            parse("github-actions"),
            AssertionSource::GitHubActions
        ));
        assert!(matches!(
            parse("/run/token"),
            AssertionSource::WorkloadTokenFile(_)
        ));
        let shown = format!("{:?}", AssertionSource::WorkloadToken("secret-jwt".into()));
        assert!(!shown.contains("secret-jwt"));
        let idp = EnterpriseIdp::with_id_token(
            "https://idp/token",
            "c",
            Some("s3cr3t"),
            "id-token-value",
        );
        let shown = format!("{idp:?}");
        assert!(!shown.contains("s3cr3t") && !shown.contains("id-token-value"));
    }

    #[test]
    fn a_workload_token_is_presented_only_to_the_authorization_server_it_names() {
        use base64::Engine as _;
        let jwt = |claims: serde_json::Value| {
            let encode = |v: &serde_json::Value| {
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
            };
            format!(
                "{}.{}.sig",
                encode(&serde_json::json!({"alg": "ES256"})),
                encode(&claims)
            )
        };
        let issuer = "https://auth.example.com";
        assert!(check_audience(&jwt(serde_json::json!({"aud": issuer})), issuer).is_ok());
        assert!(
            check_audience(
                &jwt(serde_json::json!({"aud": "https://auth.example.com/"})),
                issuer
            )
            .is_ok()
        );
        assert!(check_audience(&jwt(serde_json::json!({"aud": [issuer]})), issuer).is_ok());
        assert!(
            check_audience(
                &jwt(serde_json::json!({"aud": ["https://kubernetes.default.svc", issuer]})),
                issuer
            )
            .is_err(),
            "a token also for the API server is a credential there"
        );
        assert!(check_audience(&jwt(serde_json::json!({"aud": []})), issuer).is_err());
        let refused = check_audience(
            &jwt(serde_json::json!({"aud": "https://kubernetes.default.svc"})),
            issuer,
        )
        .unwrap_err()
        .to_string();
        assert!(
            refused.contains("https://kubernetes.default.svc"),
            "{refused}"
        );
        assert!(check_audience(&jwt(serde_json::json!({"sub": "x"})), issuer).is_err());
        assert!(check_audience("not-a-jwt", issuer).is_err());
        assert!(
            check_audience(
                &jwt(serde_json::json!({"aud": "https://auth.example.com.evil"})),
                issuer
            )
            .is_err()
        );
    }

    #[test]
    fn an_empty_or_missing_token_file_is_an_error_naming_it() {
        let dir = std::env::temp_dir().join(format!("mcpauth-wif-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty");
        std::fs::write(&empty, "\n").unwrap();
        let error = AssertionSource::WorkloadTokenFile(empty.clone())
            .workload_token()
            .unwrap_err();
        assert!(error.to_string().contains("is empty"));
        let missing = AssertionSource::WorkloadTokenFile(dir.join("missing"))
            .workload_token()
            .unwrap_err();
        assert!(missing.to_string().contains("cannot be read"));
        let written = dir.join("token");
        std::fs::write(&written, "eyJ.jwt\n").unwrap();
        assert_eq!(
            AssertionSource::WorkloadTokenFile(written)
                .workload_token()
                .unwrap()
                .as_deref(),
            Some("eyJ.jwt")
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
