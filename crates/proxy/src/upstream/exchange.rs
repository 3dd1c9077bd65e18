//! The code exchange and refresh at the upstream's token endpoint (through the `oauth2` crate),
//! with each provider's quirks normalised.

use oauth2::basic::{
    BasicErrorResponse, BasicRevocationErrorResponse, BasicTokenIntrospectionResponse,
    BasicTokenType,
};
use oauth2::{EndpointNotSet, EndpointSet, StandardRevocableToken, TokenResponse as _};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

use super::TransportError;
use crate::provider::Provider;
use crate::{ProxyError, Transport};

/// Extra token-response fields we read: the ID token.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct IdTokenField {
    /// The ID token (OpenID Connect Core §3.1.3.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl oauth2::ExtraTokenFields for IdTokenField {}

type UpstreamTokenResponse = oauth2::StandardTokenResponse<IdTokenField, BasicTokenType>;

type UpstreamClient = oauth2::Client<
    BasicErrorResponse,
    UpstreamTokenResponse,
    BasicTokenIntrospectionResponse,
    StandardRevocableToken,
    BasicRevocationErrorResponse,
    EndpointSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointNotSet,
    EndpointSet,
>;

pub(super) fn oauth_client(provider: &Provider, callback_url: &Url) -> UpstreamClient {
    let mut client = oauth2::Client::new(oauth2::ClientId::new(provider.client_id.clone()))
        .set_auth_uri(oauth2::AuthUrl::from_url(
            provider.authorization_endpoint.clone(),
        ))
        .set_token_uri(oauth2::TokenUrl::from_url(provider.token_endpoint.clone()))
        .set_redirect_uri(oauth2::RedirectUrl::from_url(callback_url.clone()))
        .set_auth_type(if provider.basic_auth {
            oauth2::AuthType::BasicAuth
        } else {
            oauth2::AuthType::RequestBody
        });
    if let Some(secret) = &provider.client_secret {
        client = client.set_client_secret(oauth2::ClientSecret::new(secret.secret().to_owned()));
    }
    client
}

/// The upstream's tokens. They stay on this side: the MCP client only ever gets ours.
#[derive(Clone)]
#[non_exhaustive]
pub struct UpstreamTokens {
    /// The upstream access token (for the identity requests, and for the application).
    pub access_token: String,
    /// The upstream refresh token, if issued.
    pub refresh_token: Option<String>,
    /// Seconds the access token lives, if said.
    pub expires_in: Option<u64>,
    /// The scope granted, if said.
    pub scope: Option<String>,
    /// The ID token, if issued.
    pub id_token: Option<String>,
}

impl std::fmt::Debug for UpstreamTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpstreamTokens")
            .field("access_token", &"[redacted]")
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Makes a token-endpoint response readable by the `oauth2` crate, whatever the provider's
/// habits: an error answered with `200 OK` (GitHub's `{"error": …}`, Slack's
/// `{"ok": false, "error": …}`) becomes a `400`; a form-encoded body (GitHub without
/// `Accept: application/json`, some older providers) becomes JSON.
#[must_use]
pub fn normalize_token_response(
    provider: &Provider,
    response: http::Response<Vec<u8>>,
) -> http::Response<Vec<u8>> {
    let (mut parts, body) = response.into_parts();
    let form_encoded = parts
        .headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
                || ct.to_ascii_lowercase().starts_with("text/plain")
        });
    let mut body = body;
    if form_encoded {
        let object: serde_json::Map<String, Value> = url::form_urlencoded::parse(&body)
            .map(|(k, v)| {
                let value = match (k.as_ref(), v.parse::<u64>()) {
                    ("expires_in", Ok(n)) => Value::from(n),
                    _ => Value::String(v.into_owned()),
                };
                (k.into_owned(), value)
            })
            .collect();
        body = serde_json::to_vec(&object).unwrap_or_default();
        parts.headers.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static("application/json"),
        );
    }
    if provider.errors_with_200
        && parts.status == http::StatusCode::OK
        && let Ok(Value::Object(mut object)) = serde_json::from_slice::<Value>(&body)
        && (object.contains_key("error") || object.get("ok") == Some(&Value::Bool(false)))
    {
        object
            .entry("error")
            .or_insert_with(|| Value::String("invalid_request".into()));
        body = serde_json::to_vec(&object).unwrap_or_default();
        parts.status = http::StatusCode::BAD_REQUEST;
    }
    http::Response::from_parts(parts, body)
}

/// Exchanges the upstream `code` (with the PKCE verifier when one was sent), through the
/// `oauth2` crate.
///
/// # Errors
///
/// [`ProxyError::Token`] with the upstream's error code, or [`ProxyError::Transport`].
pub async fn exchange_code(
    provider: &Provider,
    callback_url: &Url,
    code: &str,
    pkce_verifier: Option<&str>,
    transport: &dyn Transport,
) -> Result<UpstreamTokens, ProxyError> {
    let client = oauth_client(provider, callback_url);
    let mut request = client.exchange_code(oauth2::AuthorizationCode::new(code.to_owned()));
    if let Some(verifier) = pkce_verifier {
        request = request.set_pkce_verifier(oauth2::PkceCodeVerifier::new(verifier.to_owned()));
    }
    let response = request
        .request_async(&Via {
            provider,
            transport,
        })
        .await
        .map_err(token_error)?;
    Ok(tokens_from(&response))
}

/// Trades `refresh_token` at `provider` for new tokens (RFC 6749 §6) through the `oauth2`
/// crate. A response without a new refresh token keeps `refresh_token` (the provider does
/// not rotate it).
///
/// # Errors
///
/// [`ProxyError::Token`] with the upstream's error code (`invalid_grant`: the user must sign
/// in again), or [`ProxyError::Transport`].
pub async fn refresh_tokens(
    provider: &Provider,
    refresh_token: &str,
    transport: &dyn Transport,
) -> Result<UpstreamTokens, ProxyError> {
    // The refresh request sends no redirect URI; the client type needs one.
    let client = oauth_client(provider, &provider.token_endpoint);
    let refresh_token = oauth2::RefreshToken::new(refresh_token.to_owned());
    let response = client
        .exchange_refresh_token(&refresh_token)
        .request_async(&Via {
            provider,
            transport,
        })
        .await
        .map_err(token_error)?;
    let mut tokens = tokens_from(&response);
    if tokens.refresh_token.is_none() {
        tokens.refresh_token = Some(refresh_token.into_secret());
    }
    Ok(tokens)
}

/// The `oauth2` crate's HTTP client: our [`Transport`], with the provider's token-response
/// quirks smoothed. A named type rather than a closure, so the futures stay `Send` (a
/// closure returning a borrowing future defeats the compiler's `Send` inference).
struct Via<'a> {
    provider: &'a Provider,
    transport: &'a dyn Transport,
}

impl<'c> oauth2::AsyncHttpClient<'c> for Via<'_> {
    type Error = TransportError;
    type Future = std::pin::Pin<
        Box<dyn Future<Output = Result<oauth2::HttpResponse, TransportError>> + Send + 'c>,
    >;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        Box::pin(async move {
            self.transport
                .send(request)
                .await
                .map(|response| normalize_token_response(self.provider, response))
        })
    }
}

fn token_error<E: std::error::Error + 'static>(
    e: oauth2::RequestTokenError<E, oauth2::basic::BasicErrorResponse>,
) -> ProxyError {
    ProxyError::Token(match e {
        oauth2::RequestTokenError::ServerResponse(error) => {
            format!("it answered `{}`", error.error().as_ref())
        }
        oauth2::RequestTokenError::Request(e) => e.to_string(),
        oauth2::RequestTokenError::Parse(_, _) => "its response does not parse".into(),
        oauth2::RequestTokenError::Other(reason) => reason,
    })
}

fn tokens_from(response: &UpstreamTokenResponse) -> UpstreamTokens {
    UpstreamTokens {
        access_token: response.access_token().secret().clone(),
        refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        expires_in: response.expires_in().map(|d| d.as_secs()),
        scope: response.scopes().map(|scopes| {
            scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        }),
        id_token: response.extra_fields().id_token.clone(),
    }
}
