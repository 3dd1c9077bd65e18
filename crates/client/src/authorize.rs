//! The authorization request (RFC 6749 §4.1.1 with PKCE S256, RFC 7636, and RFC 8707
//! `resource`) and the checks on its response: the `state` sent, RFC 9207 `iss`, and the
//! server's error (RFC 6749 §4.1.2.1).

use base64::Engine as _;
use mcpauth_metadata::AuthorizationServerMetadata;
use url::Url;

use crate::error::ErrorCode;

use crate::Error;

/// 32 random bytes, base64url: `state` and PKCE verifiers.
///
/// # Errors
///
/// [`Error::Browser`] when the operating system's random source fails.
pub fn random_value() -> Result<String, Error> {
    let mut bytes = [0u8; 32];
    aws_lc_rs::rand::fill(&mut bytes)
        .map_err(|_| Error::Browser("the random source failed".into()))?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// An authorization request ready to open in the browser, and what its response must match.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct AuthorizationRequest {
    /// The URL to open.
    pub url: Url,
    /// The `state` sent.
    pub state: String,
    /// The PKCE verifier, for the token request.
    pub verifier: String,
    /// The redirect URI sent, for the token request.
    pub redirect_uri: String,
}

/// Builds the request: `response_type=code`, `client_id`, `redirect_uri`, PKCE S256, a fresh
/// `state`, `scope` when given, and `resource` (always: the MCP specification requires it).
///
/// # Errors
///
/// [`Error::Discovery`] when the metadata has no authorization endpoint.
pub fn authorization_request(
    metadata: &AuthorizationServerMetadata,
    client_id: &str,
    redirect_uri: &str,
    scope: Option<&str>,
    resource: &str,
) -> Result<AuthorizationRequest, Error> {
    let endpoint = metadata
        .authorization_endpoint
        .as_deref()
        .ok_or_else(|| Error::Discovery {
            url: metadata.issuer.clone(),
            reason: "the metadata has no authorization_endpoint".into(),
        })?;
    let mut url = Url::parse(endpoint).map_err(|e| Error::Discovery {
        url: endpoint.to_owned(),
        reason: e.to_string(),
    })?;
    let state = random_value()?;
    let verifier = random_value()?;
    let challenge =
        mcpauth_pkce::challenge_for(&mcpauth_oauth_types::CodeVerifier::new(verifier.clone()))
            .map_err(|e| Error::Browser(e.to_string()))?;
    {
        let mut query = url.query_pairs_mut();
        query
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", redirect_uri)
            .append_pair("code_challenge", challenge.as_str())
            .append_pair("code_challenge_method", "S256")
            .append_pair("state", &state)
            .append_pair("resource", resource);
        if let Some(scope) = scope.filter(|s| !s.trim().is_empty()) {
            query.append_pair("scope", scope);
        }
    }
    Ok(AuthorizationRequest {
        url,
        state,
        verifier,
        redirect_uri: redirect_uri.to_owned(),
    })
}

/// Reads the authorization response's query: the code, once `state` and `iss` are right.
///
/// RFC 9207: an `iss` must name `issuer`; a server that promises `iss`
/// (`authorization_response_iss_parameter_supported`) must send it.
///
/// # Errors
///
/// [`Error::BadResponse`] for a wrong or missing `state` or `iss`, a repeated parameter or
/// no code; [`Error::Denied`] for the server's error.
pub fn read_authorization_response(
    query: &str,
    expected_state: &str,
    metadata: &AuthorizationServerMetadata,
) -> Result<String, Error> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    for (name, value) in url::form_urlencoded::parse(query.as_bytes()) {
        if pairs.iter().any(|(n, _)| *n == name) {
            return Err(Error::BadResponse(format!("`{name}` is repeated")));
        }
        pairs.push((name.into_owned(), value.into_owned()));
    }
    let get = |name: &str| {
        pairs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    };
    let state_matches = get("state").is_some_and(|state| {
        mcpauth_oauth_types::constant_time_eq(state.as_bytes(), expected_state.as_bytes())
    });
    if !state_matches {
        return Err(Error::BadResponse(
            "the `state` is not the one sent (a forged or stale response)".into(),
        ));
    }
    match get("iss") {
        Some(iss) if iss != metadata.issuer => {
            return Err(Error::BadResponse(format!(
                "`iss` is `{iss}`, not `{}` (RFC 9207: a mix-up attack?)",
                metadata.issuer
            )));
        }
        None if metadata.authorization_response_iss_parameter_supported => {
            return Err(Error::BadResponse(
                "`iss` is missing although the server promises it (RFC 9207)".into(),
            ));
        }
        _ => {}
    }
    if let Some(error) = get("error") {
        return Err(Error::Denied {
            error: ErrorCode::authorize(error),
            description: get("error_description").map(|d| d.chars().take(200).collect()),
        });
    }
    get("code")
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| Error::BadResponse("no `code` in the response".into()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn metadata(iss_supported: bool) -> AuthorizationServerMetadata {
        let mut m = AuthorizationServerMetadata::new("https://as.example");
        m.authorization_endpoint = Some("https://as.example/authorize?tenant=1".into());
        m.authorization_response_iss_parameter_supported = iss_supported;
        m
    }

    #[test]
    fn the_request_carries_pkce_state_and_resource() {
        let request = authorization_request(
            &metadata(true),
            "client",
            "http://127.0.0.1:5000/callback",
            Some("mcp:tools"),
            "https://mcp.example/mcp",
        )
        .unwrap();
        let q: std::collections::HashMap<_, _> = request.url.query_pairs().into_owned().collect();
        assert_eq!(
            q.get("tenant").map(String::as_str),
            Some("1"),
            "keeps the endpoint's query"
        );
        assert_eq!(
            q.get("code_challenge_method").map(String::as_str),
            Some("S256")
        );
        assert_eq!(
            q.get("resource").map(String::as_str),
            Some("https://mcp.example/mcp")
        );
        assert_eq!(q.get("state"), Some(&request.state));
        let challenge = mcpauth_pkce::challenge_for(&mcpauth_oauth_types::CodeVerifier::new(
            request.verifier.clone(),
        ))
        .unwrap();
        assert_eq!(
            q.get("code_challenge").map(String::as_str),
            Some(challenge.as_str())
        );
        let other = authorization_request(&metadata(true), "c", "r", None, "x").unwrap();
        assert_ne!(other.state, request.state);
        assert!(!other.url.as_str().contains("scope="));
    }

    // RFC 6749 §10.12 state; RFC 9207 iss.
    #[test]
    fn responses_with_a_wrong_state_or_issuer_are_refused() {
        let m = metadata(true);
        let ok = "code=abc&state=s1&iss=https%3A%2F%2Fas.example";
        assert_eq!(read_authorization_response(ok, "s1", &m).unwrap(), "abc");
        for bad in [
            "code=abc&state=s2&iss=https%3A%2F%2Fas.example",
            "code=abc&iss=https%3A%2F%2Fas.example",
            "code=abc&state=s1&iss=https%3A%2F%2Fevil.example",
            "code=abc&state=s1",
            "code=abc&code=def&state=s1&iss=https%3A%2F%2Fas.example",
            "state=s1&iss=https%3A%2F%2Fas.example",
        ] {
            assert!(
                matches!(
                    read_authorization_response(bad, "s1", &m),
                    Err(Error::BadResponse(_))
                ),
                "{bad}"
            );
        }
        // A server that does not promise `iss` may omit it.
        assert!(read_authorization_response("code=abc&state=s1", "s1", &metadata(false)).is_ok());
        let denied = read_authorization_response(
            "error=access_denied&error_description=no&state=s1&iss=https%3A%2F%2Fas.example",
            "s1",
            &m,
        );
        assert!(matches!(
            denied,
            Err(Error::Denied {
                error: ErrorCode::Authorize(mcpauth_oauth_types::AuthorizeErrorCode::AccessDenied),
                ..
            })
        ));
    }
}
