//! RFC 6750 §3 `WWW-Authenticate: Bearer` challenges, with RFC 9728 §5.1 `resource_metadata`
//! and the `scope` the MCP authorization specification uses for step-up; RFC 9449 §7.1's
//! `DPoP` challenges for requests that presented a DPoP-bound token.

use mcpauth_oauth_types::BearerErrorCode;

/// A `WWW-Authenticate` challenge for a 401 or 403 answer.
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
pub struct Challenge {
    resource_metadata: String,
    scope: Option<String>,
    error: Option<BearerErrorCode>,
    description: Option<String>,
    /// `Some(algs)`: a `DPoP` challenge naming the proof algorithms accepted.
    dpop_algs: Option<String>,
}

/// RFC 6750 §3: `error_description` and `scope` use %x20-21 / %x23-5B / %x5D-7E only.
fn sanitize(value: &str) -> String {
    value
        .chars()
        .map(|c| {
            if matches!(c, '\u{20}'..='\u{7E}') && c != '"' && c != '\\' {
                c
            } else {
                '\''
            }
        })
        .take(200)
        .collect()
}

impl Challenge {
    /// A challenge pointing at the protected-resource metadata URL (RFC 9728 §5.1). Without an
    /// error it is the answer to a request with no token (RFC 6750 §3.1: "the resource server
    /// SHOULD NOT include an error code").
    pub fn new(resource_metadata: impl Into<String>) -> Self {
        Self {
            resource_metadata: resource_metadata.into(),
            scope: None,
            error: None,
            description: None,
            dpop_algs: None,
        }
    }

    /// Makes it a `DPoP` challenge (RFC 9449 §7.1) naming `algs`, the proof algorithms
    /// accepted (space-separated): the answer to a request that presented its token with the
    /// DPoP scheme.
    pub fn dpop(mut self, algs: &str) -> Self {
        self.dpop_algs = Some(sanitize(algs));
        self
    }

    /// `invalid_dpop_proof` (401, RFC 9449 §7.1): the request's DPoP proof is missing or
    /// fails a check.
    pub fn invalid_dpop_proof(mut self, description: &str) -> Self {
        self.error = Some(BearerErrorCode::InvalidDpopProof);
        self.description = Some(sanitize(description));
        self
    }

    /// `use_dpop_nonce` (401, RFC 9449 §9): the proof must carry the nonce this server sends
    /// in the `DPoP-Nonce` header of the same answer.
    pub fn use_dpop_nonce(mut self, description: &str) -> Self {
        self.error = Some(BearerErrorCode::UseDpopNonce);
        self.description = Some(sanitize(description));
        self
    }

    /// Adds the scope needed for this resource.
    pub fn with_scope(mut self, scope: &str) -> Self {
        if !scope.is_empty() {
            self.scope = Some(sanitize(scope));
        }
        self
    }

    /// `invalid_token` (401): expired, revoked, malformed, or for another audience.
    pub fn invalid_token(mut self, description: &str) -> Self {
        self.error = Some(BearerErrorCode::InvalidToken);
        self.description = Some(sanitize(description));
        self
    }

    /// `invalid_request` (400).
    pub fn invalid_request(mut self, description: &str) -> Self {
        self.error = Some(BearerErrorCode::InvalidRequest);
        self.description = Some(sanitize(description));
        self
    }

    /// `insufficient_scope` (403) naming the scope required, so MCP clients can step up.
    pub fn insufficient_scope(mut self, required_scope: &str) -> Self {
        self.error = Some(BearerErrorCode::InsufficientScope);
        self.scope = Some(sanitize(required_scope));
        self.description =
            Some("the access token does not grant the scope this request needs".into());
        self
    }

    /// `insufficient_user_authentication` (401, RFC 9470 §3): the token has no user behind
    /// it (a client's own `client_credentials` token) where a user must have authorized the
    /// request.
    pub fn insufficient_user_authentication(mut self, description: &str) -> Self {
        self.error = Some(BearerErrorCode::InsufficientUserAuthentication);
        self.description = Some(sanitize(description));
        self
    }

    /// The HTTP status to answer with.
    #[must_use]
    pub fn status(&self) -> u16 {
        self.error.map_or(401, BearerErrorCode::http_status)
    }

    /// The error code, if any.
    #[must_use]
    pub fn error(&self) -> Option<BearerErrorCode> {
        self.error
    }

    /// The header value, e.g. `Bearer resource_metadata="…", scope="…", error="…"`.
    #[must_use]
    pub fn header_value(&self) -> String {
        let mut out = match &self.dpop_algs {
            Some(algs) => format!("DPoP algs=\"{algs}\", "),
            None => "Bearer ".to_owned(),
        };
        out.push_str(&format!(
            "resource_metadata=\"{}\"",
            sanitize(&self.resource_metadata)
        ));
        if let Some(scope) = &self.scope {
            out.push_str(&format!(", scope=\"{scope}\""));
        }
        if let Some(error) = self.error {
            out.push_str(&format!(", error=\"{}\"", error.as_str()));
        }
        if let Some(description) = &self.description {
            out.push_str(&format!(", error_description=\"{description}\""));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PRM: &str = "https://mcp.example.com/.well-known/oauth-protected-resource/mcp";

    // RFC 6750 §3.1: no error code when the request carried no token.
    #[test]
    fn missing_token_challenge_has_no_error_code() {
        let c = Challenge::new(PRM).with_scope("mcp:tools");
        assert_eq!(c.status(), 401);
        assert_eq!(
            c.header_value(),
            format!("Bearer resource_metadata=\"{PRM}\", scope=\"mcp:tools\"")
        );
    }

    // MCP authorization (2025-11-25) step-up: 403 insufficient_scope with the needed scope.
    #[test]
    fn insufficient_scope_is_403_with_the_needed_scope() {
        let c = Challenge::new(PRM).insufficient_scope("mcp:tools mcp:admin");
        assert_eq!(c.status(), 403);
        let value = c.header_value();
        assert!(value.contains("scope=\"mcp:tools mcp:admin\""), "{value}");
        assert!(value.contains("error=\"insufficient_scope\""), "{value}");
    }

    // RFC 9449 §7.1: a DPoP challenge names the algorithms its proofs may use.
    #[test]
    fn a_dpop_challenge_names_its_algorithms() {
        let c = Challenge::new(PRM)
            .dpop("ES256 EdDSA")
            .invalid_dpop_proof("the DPoP proof was already used");
        assert_eq!(c.status(), 401);
        assert_eq!(
            c.header_value(),
            format!(
                "DPoP algs=\"ES256 EdDSA\", resource_metadata=\"{PRM}\", error=\"invalid_dpop_proof\", error_description=\"the DPoP proof was already used\""
            )
        );
    }

    #[test]
    fn quotes_and_backslashes_cannot_break_out_of_a_parameter() {
        let value = Challenge::new(PRM)
            .invalid_token("bad \"token\" \\ here\r\n")
            .header_value();
        assert!(
            value.ends_with("error_description=\"bad 'token' ' here''\""),
            "{value}"
        );
    }
}
