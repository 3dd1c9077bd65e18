//! The client's identity at an authorization server, in the MCP specification's order of
//! preference: credentials registered beforehand, a Client ID Metadata Document URL (when the
//! server accepts them), or dynamic registration (RFC 7591), whose result is kept per
//! authorization server.

use mcpauth_metadata::AuthorizationServerMetadata;
use serde::{Deserialize, Serialize};

use crate::Error;
use crate::http::{HttpClient, UrlPolicy};

/// How the client identifies itself at one authorization server.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientCredentials {
    /// The authorization server these are for (client ids are per server, RFC 6749 §2.2).
    pub issuer: String,
    /// The client id (for a metadata document, its URL).
    pub client_id: String,
    /// The client secret, for a confidential client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// When the secret expires (RFC 7591 `client_secret_expires_at`; 0 or none: never).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// `none`, `client_secret_basic` or `client_secret_post`.
    pub token_endpoint_auth_method: String,
    /// The redirect URIs registered.
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    /// RFC 7592: the registration's management URI and token, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
    /// RFC 7592 registration access token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    /// For `private_key_jwt` (RFC 7523): the private key, PEM (PKCS#8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_key_pem: Option<String>,
    /// For `private_key_jwt`: the signing algorithm (`ES256`, `EdDSA`, `RS256`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_algorithm: Option<String>,
}

impl std::fmt::Debug for ClientCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCredentials")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field(
                "token_endpoint_auth_method",
                &self.token_endpoint_auth_method,
            )
            .field("redirect_uris", &self.redirect_uris)
            .finish_non_exhaustive()
    }
}

impl ClientCredentials {
    /// Credentials registered beforehand at `issuer`: a public client (`none`) without a
    /// secret, `client_secret_basic` with one.
    #[must_use]
    pub fn pre_registered(issuer: &str, client_id: &str, client_secret: Option<&str>) -> Self {
        Self {
            issuer: issuer.to_owned(),
            client_id: client_id.to_owned(),
            client_secret: client_secret.map(str::to_owned),
            client_secret_expires_at: None,
            token_endpoint_auth_method: if client_secret.is_some() {
                "client_secret_basic".into()
            } else {
                "none".into()
            },
            redirect_uris: Vec::new(),
            registration_client_uri: None,
            registration_access_token: None,
            private_key_pem: None,
            signing_algorithm: None,
        }
    }

    /// A client registered beforehand at `issuer` that authenticates with `private_key_jwt`
    /// (RFC 7523 §2.2): assertions signed by `private_key_pem` with `algorithm`.
    #[must_use]
    pub fn private_key_jwt(
        issuer: &str,
        client_id: &str,
        private_key_pem: &str,
        algorithm: &str,
    ) -> Self {
        let mut credentials = Self::pre_registered(issuer, client_id, None);
        credentials.token_endpoint_auth_method = "private_key_jwt".into();
        credentials.private_key_pem = Some(private_key_pem.to_owned());
        credentials.signing_algorithm = Some(algorithm.to_owned());
        credentials
    }

    /// Whether a dynamically issued secret has expired by `now` (register again).
    #[must_use]
    pub fn expired(&self, now: u64) -> bool {
        self.client_secret_expires_at
            .is_some_and(|at| at != 0 && at <= now)
    }
}

/// What the client says about itself when it registers (RFC 7591 §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegistrationRequest {
    /// Shown to the user on consent pages.
    pub client_name: String,
    /// Where the authorization response goes (the loopback listener).
    pub redirect_uris: Vec<String>,
    /// The grants the client will use.
    pub grant_types: Vec<String>,
    /// Always `code`.
    pub response_types: Vec<String>,
    /// `none`: a public client protected by PKCE.
    pub token_endpoint_auth_method: String,
    /// `native` (OpenID Connect Registration §2; the 2026-07-28 MCP revision sends it).
    pub application_type: String,
    /// The client's home page, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Scopes the client may ask for, if it wants to say.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The software's id and version (RFC 7591 §2).
    pub software_id: String,
    /// The software version.
    pub software_version: String,
}

impl RegistrationRequest {
    /// A native public client named `client_name`, redirecting to `redirect_uris`, using the
    /// authorization code (with refresh) and, when `device` is set, the device grant.
    #[must_use]
    pub fn native(client_name: &str, redirect_uris: Vec<String>, device: bool) -> Self {
        let mut grant_types = vec!["authorization_code".to_owned(), "refresh_token".to_owned()];
        if device {
            grant_types.push(mcpauth_oauth_types::DEVICE_CODE_GRANT.into());
        }
        Self {
            client_name: client_name.to_owned(),
            redirect_uris,
            grant_types,
            response_types: vec!["code".into()],
            token_endpoint_auth_method: "none".into(),
            application_type: "native".into(),
            client_uri: None,
            scope: None,
            software_id: "mcpauth-client".into(),
            software_version: env!("CARGO_PKG_VERSION").into(),
        }
    }
}

#[derive(Deserialize)]
struct RegistrationResponse {
    client_id: String,
    #[serde(default)]
    client_secret: Option<String>,
    #[serde(default)]
    client_secret_expires_at: Option<u64>,
    #[serde(default)]
    token_endpoint_auth_method: Option<String>,
    #[serde(default)]
    redirect_uris: Vec<String>,
    #[serde(default)]
    registration_client_uri: Option<String>,
    #[serde(default)]
    registration_access_token: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// Registers at `metadata`'s registration endpoint (RFC 7591 §3).
///
/// # Errors
///
/// [`Error::Registration`] naming the endpoint and the server's error (RFC 7591 §3.2.2), or
/// saying the server offers no registration.
pub async fn register(
    http: &dyn HttpClient,
    metadata: &AuthorizationServerMetadata,
    request: &RegistrationRequest,
    policy: UrlPolicy,
) -> Result<ClientCredentials, Error> {
    let endpoint =
        metadata
            .registration_endpoint
            .as_deref()
            .ok_or_else(|| Error::Registration {
                url: metadata.issuer.clone(),
                reason: "the authorization server offers no dynamic registration: configure a \
                     pre-registered client id"
                    .into(),
            })?;
    let url = policy.check(endpoint)?;
    let fail = |reason: String| Error::Registration {
        url: url.to_string(),
        reason,
    };
    let body = serde_json::to_vec(request).map_err(|e| fail(e.to_string()))?;
    let http_request = http::Request::post(url.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json")
        .body(body)
        .map_err(|e| fail(e.to_string()))?;
    let response = http.send(http_request).await?;
    let status = response.status();
    if !status.is_success() {
        let reason = serde_json::from_slice::<ErrorResponse>(response.body())
            .map(|e| match e.error_description {
                Some(d) => format!("{} ({d})", e.error),
                None => e.error,
            })
            .unwrap_or_else(|_| format!("status {status}"));
        return Err(fail(reason));
    }
    let registered: RegistrationResponse = serde_json::from_slice(response.body())
        .map_err(|e| fail(format!("the response does not parse: {e}")))?;
    if registered.client_id.is_empty() {
        return Err(fail("the response has an empty client_id".into()));
    }
    Ok(ClientCredentials {
        issuer: metadata.issuer.clone(),
        client_id: registered.client_id,
        token_endpoint_auth_method: registered.token_endpoint_auth_method.unwrap_or_else(|| {
            if registered.client_secret.is_some() {
                "client_secret_basic".into()
            } else {
                "none".into()
            }
        }),
        client_secret: registered.client_secret,
        client_secret_expires_at: registered.client_secret_expires_at,
        redirect_uris: if registered.redirect_uris.is_empty() {
            request.redirect_uris.clone()
        } else {
            registered.redirect_uris
        },
        registration_client_uri: registered.registration_client_uri,
        registration_access_token: registered.registration_access_token,
        private_key_pem: None,
        signing_algorithm: None,
    })
}
