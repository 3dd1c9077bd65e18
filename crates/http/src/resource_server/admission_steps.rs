//! The steps the admission state machine (`crate::admission`) takes: authenticate with the route's
//! scopes, the body's limits and encoding, session binding, tool calls' scopes.

use http::{HeaderMap, StatusCode, header};
use mcpauth_bearer::{VerifiedToken, extract_bearer};
use mcpauth_oauth_types::UnixTime;

use super::Refusal;
use super::challenge::{
    challenge_response, json_rpc_parse_error, owner_of, plain_refusal, unavailable,
};
use crate::session_binding::{SESSION_HEADER, SessionTicket};
use crate::{HttpResponse, ResourceServer};

impl ResourceServer {
    /// Verifies the request's bearer token and that it carries `scopes` (a route's needs). A
    /// token without them gets `403` with `error="insufficient_scope"` and `scope` naming
    /// every scope needed, so MCP clients can step up (MCP authorization, scope challenge
    /// handling).
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub(crate) async fn authenticate_with_scopes(
        &self,
        headers: &HeaderMap,
        scopes: &[&str],
        now: UnixTime,
    ) -> Result<VerifiedToken, HttpResponse> {
        let token = match extract_bearer(headers) {
            Ok(Some(token)) => token,
            Ok(None) => return Err(challenge_response(&self.challenge(scopes))),
            Err(e) => {
                return Err(challenge_response(
                    &self.challenge(scopes).invalid_request(&e.to_string()),
                ));
            }
        };
        let verified = match self.verify(token, now).await {
            Ok(verified) => verified,
            Err(Refusal::Invalid(e)) => {
                return Err(challenge_response(
                    &self.challenge(scopes).invalid_token(&e.to_string()),
                ));
            }
            Err(Refusal::Unavailable) => return Err(unavailable()),
        };
        if scopes.iter().any(|s| !verified.scope.contains(s)) {
            return Err(self.step_up(&verified, scopes));
        }
        if self.config.require_user
            && let Some(refusal) = self.refuse_without_user(&verified)
        {
            return Err(refusal);
        }
        Ok(verified)
    }

    /// Whether the body of a request with `method` is read before it goes on: a `POST` (a
    /// JSON-RPC message) when some tool has needs of its own.
    pub(crate) fn reads_body(&self, method: &http::Method) -> bool {
        method == http::Method::POST && !self.config.tool_scopes.is_empty()
    }

    /// [`ResourceServerConfig::max_body_bytes`].
    pub(crate) fn max_body_bytes(&self) -> usize {
        self.config.max_body_bytes
    }

    /// The `413` answer for a request that declares a body larger than
    /// [`max_body_bytes`](Self::max_body_bytes) in `Content-Length`, if it does; bodies that
    /// do not declare their length are cut off as they stream.
    pub(crate) fn refuse_declared_length(&self, headers: &HeaderMap) -> Option<HttpResponse> {
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())?;
        (declared > self.config.max_body_bytes as u64).then(crate::body_too_large)
    }

    /// Checks the MCP session a request names (`Mcp-Session-Id`) against the token that
    /// sent it (see [`ResourceServerConfig::bind_sessions`]): the `404` answer when another
    /// user or client opened it (rmcp's answer for an unknown session, so it tells nothing
    /// about others' sessions; the client starts one of its own), else what to remember
    /// until the MCP server answers, for [`record_session`](Self::record_session).
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub(crate) fn check_session(
        &self,
        method: &http::Method,
        headers: &HeaderMap,
        verified: &VerifiedToken,
    ) -> Result<SessionTicket, HttpResponse> {
        if !self.config.bind_sessions {
            return Ok(SessionTicket::default());
        }
        let Some(id) = headers.get(SESSION_HEADER).and_then(|v| v.to_str().ok()) else {
            // Only a request outside a session can open one: keep who sent it.
            return Ok(SessionTicket {
                ends: None,
                opener: Some(owner_of(verified)),
            });
        };
        if self.sessions.admit(id, &owner_of(verified)) {
            return Ok(SessionTicket {
                ends: (method == http::Method::DELETE).then(|| id.to_owned()),
                opener: None,
            });
        }
        tracing::info!(
            client_id = %verified.client_id,
            "refused a request naming an MCP session another user or client opened"
        );
        Err(plain_refusal(
            StatusCode::NOT_FOUND,
            "Not Found: Session not found",
        ))
    }

    /// Records what the MCP server's answer did to sessions: the session it opened (its
    /// `Mcp-Session-Id` response header, `response_session`) belongs to the subject and
    /// client that sent the request; a session a `DELETE` ended successfully is forgotten.
    /// [`Admitted::finish`](crate::Admitted::finish) calls it with every answer to a request
    /// [`check_session`](Self::check_session) let through.
    pub(crate) fn record_session(
        &self,
        ticket: SessionTicket,
        response_status: StatusCode,
        response_session: Option<&str>,
    ) {
        if let Some(id) = ticket.ends {
            if response_status.is_success() {
                self.sessions.ended(&id);
            }
        } else if let (Some(owner), Some(id)) = (ticket.opener, response_session) {
            self.sessions.opened(id, &owner);
        }
    }

    /// A body the tool check cannot read is refused rather than let through unchecked: `415`
    /// for a `Content-Encoding` other than `identity` (the MCP server might decompress what
    /// this check saw compressed).
    pub(crate) fn refuse_encoded_body(&self, headers: &HeaderMap) -> Option<HttpResponse> {
        headers
            .get_all(header::CONTENT_ENCODING)
            .iter()
            .any(|v| !v.as_bytes().trim_ascii().eq_ignore_ascii_case(b"identity"))
            .then(|| {
                plain_refusal(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type: send MCP messages without Content-Encoding",
                )
            })
    }

    /// Checks the tool calls in a request `body` (read because
    /// [`reads_body`](Self::reads_body) said so) against the verified token: the
    /// `403 insufficient_scope` answer when it calls a tool with scopes the token lacks, the
    /// `401 insufficient_user_authentication` answer when it calls a tool that needs a user
    /// with a token that has none, and a JSON-RPC parse error (`400`, code -32700) for a body
    /// that is not JSON here, whatever another parser makes of it.
    pub(crate) fn refuse_tool_calls(
        &self,
        verified: &VerifiedToken,
        body: &[u8],
    ) -> Option<HttpResponse> {
        let Some(needs) = self.config.tool_scopes.needs_of(body) else {
            return Some(json_rpc_parse_error());
        };
        if needs.user
            && let Some(refusal) = self.refuse_without_user(verified)
        {
            return Some(refusal);
        }
        needs
            .scopes
            .iter()
            .any(|s| !verified.scope.contains(s))
            .then(|| self.step_up(verified, &needs.scopes))
    }
}
