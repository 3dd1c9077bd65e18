//! RFC 6750 §3 / RFC 9728 §5.1 challenges and the refusals a resource server answers with:
//! `invalid_token`, `insufficient_scope` for step-up, and plain errors.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use mcpauth_bearer::{Challenge, VerifiedToken};

use crate::session_binding::Owner;
use crate::{HttpResponse, ResourceServer};

/// `503` when the authorization server cannot be asked: the token may be fine, so no
/// challenge that would send the client back to authorize.
pub(super) fn unavailable() -> HttpResponse {
    let body = serde_json::json!({
        "error": "temporarily_unavailable",
        "error_description": "the authorization server could not be reached to check the token; try again",
    });
    let mut response = http::Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
    response
}

pub(super) fn challenge_response(challenge: &Challenge) -> HttpResponse {
    let status = StatusCode::from_u16(challenge.status()).unwrap_or(StatusCode::UNAUTHORIZED);
    let value = HeaderValue::from_str(&challenge.header_value())
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer"));
    // RFC 6750 §3.1: a request that sent no credentials gets no error code, in the body as
    // in the challenge; it is told only what to do.
    let body = match challenge.error() {
        Some(error) => serde_json::json!({
            "error": error.as_str(),
            "error_description": "authorization is required: see the WWW-Authenticate header",
        }),
        None => serde_json::json!({
            "error_description": "this resource needs a bearer token: see the WWW-Authenticate header",
        }),
    };
    let mut response = http::Response::new(Bytes::from(body.to_string()));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::WWW_AUTHENTICATE, value);
    // Browser-based MCP clients must be able to read the challenge. It holds nothing secret,
    // so any origin may; a CORS layer the application wraps around this replaces the
    // headers with its own.
    headers.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        // The nonce of a `use_dpop_nonce` refusal (RFC 9449 §9) too.
        HeaderValue::from_static("www-authenticate, dpop-nonce"),
    );
    response
}

pub(super) fn owner_of(verified: &VerifiedToken) -> Owner {
    Owner {
        subject: verified.subject.clone(),
        client_id: verified.client_id.clone(),
    }
}

/// A plain-text refusal.
pub(super) fn plain_refusal(status: StatusCode, text: &'static str) -> HttpResponse {
    let mut response = http::Response::new(Bytes::from_static(text.as_bytes()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// JSON-RPC 2.0's answer to a body that is not JSON (§5.1, code -32700), as MCP servers send
/// it, with `400`.
pub(super) fn json_rpc_parse_error() -> HttpResponse {
    let mut response = http::Response::new(Bytes::from_static(
        br#"{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error: the body is not a JSON-RPC message"}}"#,
    ));
    *response.status_mut() = StatusCode::BAD_REQUEST;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl ResourceServer {
    pub(super) fn challenge(&self, scopes: &[&str]) -> Challenge {
        Challenge::new(self.metadata_url.clone()).with_scope(&scopes.join(" "))
    }

    /// A tool result that asks the MCP client for more authorization from inside a tool
    /// call, for servers whose HTTP answer is already `200`: `isError`, `message` as text, and
    /// the `insufficient_scope` challenge naming `scopes` under
    /// `_meta["mcp/www_authenticate"]` (the tool-level counterpart of the `403` challenge that
    /// MCP clients such as ChatGPT act on). Deserialize it into your MCP SDK's tool result
    /// type (for `rmcp`, `CallToolResult`).
    #[must_use]
    pub fn tool_authorization_required(&self, scopes: &[&str], message: &str) -> serde_json::Value {
        let challenge = Challenge::new(self.metadata_url.clone())
            .insufficient_scope(&scopes.join(" "))
            .header_value();
        serde_json::json!({
            "content": [{ "type": "text", "text": message }],
            "isError": true,
            "_meta": { "mcp/www_authenticate": [challenge] },
        })
    }

    /// The `403 insufficient_scope` answer naming `scopes`: for a handler that finds, while
    /// serving, that it needs more than the token grants.
    #[must_use]
    pub fn insufficient_scope(&self, scopes: &[&str]) -> HttpResponse {
        challenge_response(&self.insufficient_scope_challenge(scopes))
    }

    fn insufficient_scope_challenge(&self, scopes: &[&str]) -> Challenge {
        Challenge::new(self.metadata_url.clone()).insufficient_scope(&scopes.join(" "))
    }

    /// The `401 insufficient_user_authentication` answer (RFC 9470 §3) for a token with no
    /// user behind it, if `verified` is one: for routes and handlers where a person must
    /// have agreed.
    #[must_use]
    pub fn refuse_without_user(&self, verified: &VerifiedToken) -> Option<HttpResponse> {
        self.no_user_challenge(verified)
            .map(|challenge| challenge_response(&challenge))
    }

    /// [`refuse_without_user`](Self::refuse_without_user)'s challenge.
    pub(super) fn no_user_challenge(&self, verified: &VerifiedToken) -> Option<Challenge> {
        if verified.has_user() {
            return None;
        }
        tracing::info!(
            client_id = %verified.client_id,
            "refused a token with no user behind it where a user is required"
        );
        Some(
            Challenge::new(self.metadata_url.clone()).insufficient_user_authentication(
                "this request needs a token a user authorized; a client's own token (client_credentials) is not enough",
            ),
        )
    }

    /// The `403 insufficient_scope` for a token that lacks some of `needed`. The challenge
    /// names the scopes the token holds and the ones it lacks: MCP clients of the
    /// 2025-06-18 and 2025-11-25 revisions ask for exactly the challenge's scopes (and would
    /// lose what they hold otherwise), clients of 2026-07-28 ask for the union of what they
    /// hold and the challenge, which comes to the same set.
    pub(super) fn step_up(&self, verified: &VerifiedToken, needed: &[&str]) -> HttpResponse {
        challenge_response(&self.step_up_challenge(verified, needed))
    }

    /// [`step_up`](Self::step_up)'s challenge.
    pub(super) fn step_up_challenge(&self, verified: &VerifiedToken, needed: &[&str]) -> Challenge {
        let mut scopes: Vec<&str> = verified.scope.iter().collect();
        for scope in needed {
            if !scopes.contains(scope) {
                scopes.push(scope);
            }
        }
        self.insufficient_scope_challenge(&scopes)
    }
}
