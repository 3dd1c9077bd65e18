//! Token requests (RFC 6749 §4.1.3 code, §6 refresh) with `resource` on each (RFC 8707),
//! client authentication as registered, and responses read per §5.1 / §5.2.

use serde::{Deserialize, Serialize};
use url::Url;

use crate::Error;
use crate::dpop::DpopKeyMaterial;
use crate::error::ErrorCode;
use crate::http::{HttpClient, post_form};
use crate::registration::ClientCredentials;

/// Tokens for one resource, as kept.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TokenSet {
    /// The access token.
    pub access_token: String,
    /// The refresh token, if issued.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// When the access token expires (seconds since the epoch), if said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// The scope granted (space-separated), if known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// The token type: `Bearer`, or `DPoP` for tokens bound to [`dpop_key`](Self::dpop_key)
    /// (RFC 9449).
    pub token_type: String,
    /// The key the tokens are bound to (RFC 9449): every request that carries them carries a
    /// proof made with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_key: Option<DpopKeyMaterial>,
}

impl std::fmt::Debug for TokenSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenSet")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_at", &self.expires_at)
            .field("scope", &self.scope)
            .field("token_type", &self.token_type)
            .field("dpop_key", &self.dpop_key)
            .finish_non_exhaustive()
    }
}

impl TokenSet {
    /// Whether the access token expires within `leeway` seconds of `now`.
    #[must_use]
    pub fn expires_within(&self, now: u64, leeway: u64) -> bool {
        self.expires_at
            .is_some_and(|at| at <= now.saturating_add(leeway))
    }

    /// Whether the tokens are bound to a DPoP key (RFC 9449): sent as `Authorization: DPoP`
    /// with a proof.
    #[must_use]
    pub fn is_dpop_bound(&self) -> bool {
        self.dpop_key.is_some()
    }

    /// The granted scope tokens.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or("").split_ascii_whitespace()
    }
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    token_type: String,
    #[serde(default)]
    expires_in: Option<u64>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct ErrorResponse {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// An OAuth error from the token endpoint (RFC 6749 §5.2), or a response that is not one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TokenFailure {
    /// The server's OAuth error.
    Refused {
        error: ErrorCode,
        description: Option<String>,
    },
    /// What was wrong with an answer that is not a usable token response.
    Unusable(String),
}

impl TokenFailure {
    /// What an error `status` with `body` from the token or device authorization endpoint
    /// says (RFC 6749 §5.2).
    pub(crate) fn of_error_response(status: http::StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<ErrorResponse>(body) {
            Ok(e) => Self::Refused {
                error: ErrorCode::token(&e.error),
                description: e.error_description.map(|d| d.chars().take(200).collect()),
            },
            Err(_) => Self::Unusable(format!("status {status} without an OAuth error")),
        }
    }

    /// The error for a request to `url`.
    pub(crate) fn into_error(self, url: &Url) -> Error {
        match self {
            Self::Refused { error, description } => Error::Token {
                url: url.to_string(),
                error,
                description,
            },
            Self::Unusable(reason) => Error::BadTokenResponse {
                url: url.to_string(),
                reason,
            },
        }
    }
}

/// A form POST of `params` to `endpoint`, authenticated as `client` registered (RFC 6749
/// §2.3.1 `client_secret_basic` or `client_secret_post`, RFC 7523 `private_key_jwt`, or
/// `client_id` alone for a public client): the one place the token, device and revocation
/// requests get their client authentication.
pub(crate) fn authenticated_form(
    endpoint: &Url,
    client: &ClientCredentials,
    params: &[(&str, &str)],
    now: u64,
) -> Result<http::Request<Vec<u8>>, Error> {
    let mut pairs: Vec<(&str, &str)> = params.to_vec();
    let secret = client.client_secret.as_deref();
    let assertion;
    let basic = match (client.token_endpoint_auth_method.as_str(), secret) {
        ("private_key_jwt", _) => {
            assertion = client_assertion(client, now)?;
            pairs.push(("client_id", &client.client_id));
            pairs.push(("client_assertion_type", CLIENT_ASSERTION_TYPE));
            pairs.push(("client_assertion", &assertion));
            None
        }
        ("client_secret_basic", Some(secret)) => Some((client.client_id.as_str(), secret)),
        ("client_secret_post", Some(secret)) => {
            pairs.push(("client_id", &client.client_id));
            pairs.push(("client_secret", secret));
            None
        }
        // No client id at all: a grant whose assertion is the credential (a workload token).
        _ if client.client_id.is_empty() => None,
        _ => {
            pairs.push(("client_id", &client.client_id));
            None
        }
    };
    post_form(endpoint, &pairs, basic)
}

/// Sends a token request with `params`, authenticating as `client`; `requested_scope` fills
/// in the scope when the response omits it (RFC 6749 §5.1: then it is the one requested).
/// With `dpop`, each request carries a proof made with that key (RFC 9449 §5), and a
/// `use_dpop_nonce` answer is retried once with the nonce the server sent (§8); tokens the
/// server bound (`token_type: DPoP`) keep the key.
pub(crate) async fn token_request(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    params: &[(&str, &str)],
    requested_scope: Option<&str>,
    now: u64,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<Result<TokenSet, TokenFailure>, Error> {
    let response = post_with_proof(http, endpoint, dpop, || {
        authenticated_form(endpoint, client, params, now)
    })
    .await?;
    let status = response.status();
    if status.is_success() {
        return Ok(read_tokens(response.body(), requested_scope, now, dpop));
    }
    Ok(Err(TokenFailure::of_error_response(
        status,
        response.body(),
    )))
}

/// Sends the POST to `endpoint` that `build` makes, with a proof by `dpop`'s key when given
/// (RFC 9449 §5), and once more with a fresh proof carrying the server's nonce when it answers
/// `use_dpop_nonce` (§8). The last response, whatever it is.
pub(crate) async fn post_with_proof(
    http: &dyn HttpClient,
    endpoint: &Url,
    dpop: Option<&DpopKeyMaterial>,
    build: impl Fn() -> Result<http::Request<Vec<u8>>, Error>,
) -> Result<http::Response<Vec<u8>>, Error> {
    let key = dpop.map(DpopKeyMaterial::key).transpose()?;
    let mut nonce: Option<String> = None;
    loop {
        let mut request = build()?;
        if let Some(key) = &key {
            let proof = crate::dpop::proof(key, "POST", endpoint.as_str(), nonce.as_deref(), None)?;
            request.headers_mut().insert(
                http::HeaderName::from_static("dpop"),
                http::HeaderValue::from_str(&proof)
                    .map_err(|_| Error::Dpop("the proof is not a header value".into()))?,
            );
        }
        let response = http.send(request).await?;
        let status = response.status();
        if status.is_success() || key.is_none() || nonce.is_some() {
            return Ok(response);
        }
        let server_nonce = response
            .headers()
            .get("dpop-nonce")
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 512)
            .map(str::to_owned);
        match (
            server_nonce,
            TokenFailure::of_error_response(status, response.body()),
        ) {
            (Some(server_nonce), TokenFailure::Refused { error, .. })
                if error.as_str() == "use_dpop_nonce" =>
            {
                // RFC 9449 §8: sign a new proof with the nonce, once.
                nonce = Some(server_nonce);
            }
            _ => return Ok(response),
        }
    }
}

/// A successful token response (RFC 6749 §5.1): `Bearer`, or `DPoP` when this request carried
/// a proof with `dpop` (RFC 9449 §5).
fn read_tokens(
    body: &[u8],
    requested_scope: Option<&str>,
    now: u64,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<TokenSet, TokenFailure> {
    let parsed: TokenResponse = serde_json::from_slice(body)
        .map_err(|e| TokenFailure::Unusable(format!("the response does not parse: {e}")))?;
    let (token_type, dpop_key) = if parsed.token_type.eq_ignore_ascii_case("bearer") {
        ("Bearer", None)
    } else if parsed.token_type.eq_ignore_ascii_case("dpop") && dpop.is_some() {
        ("DPoP", dpop.cloned())
    } else {
        return Err(TokenFailure::Unusable(format!(
            "unsupported token_type `{}`",
            parsed.token_type.chars().take(64).collect::<String>()
        )));
    };
    Ok(TokenSet {
        access_token: parsed.access_token,
        refresh_token: parsed.refresh_token,
        expires_at: parsed.expires_in.map(|s| now.saturating_add(s)),
        scope: parsed.scope.or_else(|| requested_scope.map(str::to_owned)),
        token_type: token_type.into(),
        dpop_key,
    })
}

/// RFC 7523 §2.2.
const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

/// A `private_key_jwt` client assertion (RFC 7523 §3): `iss` and `sub` the client, `aud` the
/// authorization server's issuer, a minute to live, a fresh `jti`.
fn client_assertion(client: &ClientCredentials, now: u64) -> Result<String, Error> {
    let fail = Error::ClientAssertion;
    let pem = client
        .private_key_pem
        .as_deref()
        .ok_or_else(|| fail("no private key is configured".into()))?;
    let algorithm = match client.signing_algorithm.as_deref().unwrap_or("ES256") {
        "ES256" => jsonwebtoken::Algorithm::ES256,
        "ES384" => jsonwebtoken::Algorithm::ES384,
        "EdDSA" => jsonwebtoken::Algorithm::EdDSA,
        "RS256" => jsonwebtoken::Algorithm::RS256,
        other => return Err(fail(format!("unsupported algorithm {other}"))),
    };
    let key = match algorithm {
        jsonwebtoken::Algorithm::ES256 | jsonwebtoken::Algorithm::ES384 => {
            jsonwebtoken::EncodingKey::from_ec_pem(pem.as_bytes())
        }
        jsonwebtoken::Algorithm::EdDSA => jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()),
        _ => jsonwebtoken::EncodingKey::from_rsa_pem(pem.as_bytes()),
    }
    .map_err(|e| fail(e.to_string()))?;
    let claims = serde_json::json!({
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": client.issuer,
        "iat": now,
        "exp": now.saturating_add(60),
        "jti": crate::authorize::random_value()?,
    });
    jsonwebtoken::encode(&jsonwebtoken::Header::new(algorithm), &claims, &key)
        .map_err(|e| fail(e.to_string()))
}

/// RFC 6749 §4.4: tokens for the client itself (machine clients), with `resource`. With
/// `dpop`, the request carries a proof made with that key and the tokens come back bound to it
/// where the server binds them (RFC 9449 §5).
///
/// # Errors
///
/// [`Error::Token`] with the server's error; [`Error::Network`].
pub async fn client_credentials(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    scope: Option<&str>,
    resource: &str,
    now: u64,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<TokenSet, Error> {
    let mut params = vec![("grant_type", "client_credentials"), ("resource", resource)];
    if let Some(scope) = scope {
        params.push(("scope", scope));
    }
    token_request(http, endpoint, client, &params, scope, now, dpop)
        .await?
        .map_err(|f| f.into_error(endpoint))
}

/// RFC 6749 §4.1.3: the code for tokens. With `dpop`, as for [`client_credentials`] (use the
/// key whose thumbprint the authorization request sent as `dpop_jkt`).
///
/// # Errors
///
/// [`Error::Token`] with the server's error; [`Error::Network`].
#[allow(
    clippy::too_many_arguments,
    reason = "each is one parameter of the request"
)]
pub async fn exchange_code(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    code: &str,
    redirect_uri: &str,
    verifier: &str,
    resource: &str,
    requested_scope: Option<&str>,
    now: u64,
    dpop: Option<&DpopKeyMaterial>,
) -> Result<TokenSet, Error> {
    let params = [
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", redirect_uri),
        ("code_verifier", verifier),
        ("resource", resource),
    ];
    token_request(http, endpoint, client, &params, requested_scope, now, dpop)
        .await?
        .map_err(|f| f.into_error(endpoint))
}

/// RFC 6749 §6: a refresh; tokens bound to a DPoP key refresh with a proof made with it
/// (RFC 9449 §5). A response without a refresh token keeps the one held (the
/// server does not rotate it); without a scope, the scope held.
///
/// # Errors
///
/// [`Error::Refresh`] when the server refuses the refresh token (authorize again);
/// [`Error::Network`].
pub async fn refresh(
    http: &dyn HttpClient,
    endpoint: &Url,
    client: &ClientCredentials,
    held: &TokenSet,
    resource: &str,
    now: u64,
) -> Result<TokenSet, Error> {
    let refresh_token = held
        .refresh_token
        .as_deref()
        .ok_or_else(|| Error::Refresh {
            url: endpoint.to_string(),
            error: None,
            description: Some("no refresh token is held".into()),
        })?;
    let params = [
        ("grant_type", "refresh_token"),
        ("refresh_token", refresh_token),
        ("resource", resource),
    ];
    // Bound tokens refresh with a proof by their key (RFC 9449 §5), and stay bound to it.
    let mut fresh = token_request(
        http,
        endpoint,
        client,
        &params,
        held.scope.as_deref(),
        now,
        held.dpop_key.as_ref(),
    )
    .await?
    .map_err(|f| match f {
        TokenFailure::Refused { error, description } => Error::Refresh {
            url: endpoint.to_string(),
            error: Some(error),
            description,
        },
        unusable @ TokenFailure::Unusable(_) => unusable.into_error(endpoint),
    })?;
    if fresh.refresh_token.is_none() {
        fresh.refresh_token = held.refresh_token.clone();
    }
    Ok(fresh)
}
