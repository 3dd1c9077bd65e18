//! Who signed in upstream: the ID token's claims completed by userinfo, or the provider's user API.

use serde_json::Value;
use url::Url;

use super::TransportError;
use crate::identity::{self, IdentityError, UpstreamIdentity};
use crate::provider::{IdentitySource, Provider};
use crate::{ProxyError, Transport, UpstreamTokens};

/// A GET with the upstream access token, returning the JSON body.
async fn get_json(
    transport: &dyn Transport,
    url: &Url,
    access_token: &str,
    endpoint: &'static str,
    github: bool,
) -> Result<Value, ProxyError> {
    let mut request = http::Request::get(url.as_str()).header(
        http::header::AUTHORIZATION,
        format!("Bearer {access_token}"),
    );
    request = if github {
        request
            .header(http::header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", "2022-11-28")
    } else {
        request.header(http::header::ACCEPT, "application/json")
    };
    let request = request
        .body(Vec::new())
        .map_err(|e| TransportError(e.to_string()))?;
    let response = transport.send(request).await?;
    if !response.status().is_success() {
        return Err(ProxyError::Upstream {
            endpoint,
            status: response.status().as_u16().to_string(),
        });
    }
    let value: Value = serde_json::from_slice(response.body())
        .map_err(|_| IdentityError::NotAnObject { what: endpoint })?;
    // Slack answers failures with 200 and `"ok": false`.
    if value.get("ok") == Some(&Value::Bool(false)) {
        return Err(ProxyError::Upstream {
            endpoint,
            status: value
                .get("error")
                .and_then(Value::as_str)
                .unwrap_or("ok: false")
                .chars()
                .take(64)
                .collect(),
        });
    }
    Ok(value)
}

/// Reads who signed in: the validated ID-token `claims` (OpenID Connect providers),
/// completed by the userinfo endpoint; or the provider's user API.
///
/// # Errors
///
/// [`ProxyError`] when a request fails or the identity is unusable.
pub async fn fetch_identity(
    provider: &Provider,
    tokens: &UpstreamTokens,
    id_token_claims: Option<&Value>,
    transport: &dyn Transport,
) -> Result<UpstreamIdentity, ProxyError> {
    let access_token = tokens.access_token.as_str();
    match &provider.identity {
        IdentitySource::IdToken => {
            let claims = id_token_claims
                .ok_or(ProxyError::Token("no ID token came with the tokens".into()))?;
            let userinfo = match &provider.userinfo_endpoint {
                Some(url) => {
                    Some(get_json(transport, url, access_token, "userinfo endpoint", false).await?)
                }
                None => None,
            };
            Ok(identity::from_id_token(
                &provider.id,
                claims,
                userinfo.as_ref(),
            )?)
        }
        IdentitySource::GitHub => {
            let user_url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no user endpoint".into()))?;
            let user = get_json(transport, &user_url, access_token, "user API", true).await?;
            let emails_url = user_url.join("user/emails").ok();
            let emails = match emails_url {
                // Without the `user:email` scope this answers 404: go on without it.
                Some(url) => get_json(transport, &url, access_token, "emails API", true)
                    .await
                    .ok(),
                None => None,
            };
            Ok(identity::from_github(&provider.id, &user, emails.as_ref())?)
        }
        IdentitySource::Discord => {
            let url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no user endpoint".into()))?;
            let me = get_json(transport, &url, access_token, "user API", false).await?;
            Ok(identity::from_discord(&provider.id, &me)?)
        }
        IdentitySource::Userinfo(mapping) => {
            let url = provider
                .userinfo_endpoint
                .clone()
                .ok_or(ProxyError::Token("no userinfo endpoint".into()))?;
            let info = get_json(transport, &url, access_token, "userinfo endpoint", false).await?;
            Ok(identity::from_mapping(&provider.id, mapping, &info)?)
        }
    }
}
