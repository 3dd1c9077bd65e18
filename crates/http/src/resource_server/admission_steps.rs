//! The steps the admission state machine (`crate::admission`) takes: authenticate with the route's
//! scopes, the body's limits and encoding, session binding, tool calls' scopes.

use http::{HeaderMap, Method, StatusCode, header};
use mcpauth_bearer::{TokenScheme, VerifiedToken, extract_access_token};
use mcpauth_oauth_types::UnixTime;

use super::Refusal;
use super::challenge::{
    challenge_response, json_rpc_parse_error, owner_of, plain_refusal, unavailable,
};
use super::dpop_memory::Remembered;
use crate::session_binding::{SESSION_HEADER, SessionTicket};
use crate::{HttpResponse, ResourceServer};

impl ResourceServer {
    /// Verifies the request's access token and that it carries `scopes` (a route's needs). A
    /// token without them gets `403` with `error="insufficient_scope"` and `scope` naming
    /// every scope needed, so MCP clients can step up (MCP authorization, scope challenge
    /// handling). A token presented with the DPoP scheme (RFC 9449 §7.1) must be bound to a
    /// key and come with a fresh, unused proof of that key for this request.
    #[allow(
        clippy::result_large_err,
        reason = "the refusal is the response adapters send as is"
    )]
    pub(crate) async fn authenticate_with_scopes(
        &self,
        method: &Method,
        headers: &HeaderMap,
        scopes: &[&str],
        now: UnixTime,
    ) -> Result<VerifiedToken, HttpResponse> {
        let (scheme, token) = match extract_access_token(headers) {
            Ok(Some(presented)) => presented,
            Ok(None) => return Err(challenge_response(&self.challenge(scopes))),
            Err(e) => {
                return Err(challenge_response(
                    &self.challenge(scopes).invalid_request(&e.to_string()),
                ));
            }
        };
        let (verified, proof) = match scheme {
            TokenScheme::Bearer => match self.verify(token, now).await {
                Ok(verified) => (verified, None),
                Err(refusal) => {
                    return Err(self.refusal_response(
                        scheme,
                        scopes,
                        DpopRefusal::Token(refusal),
                        now,
                    ));
                }
            },
            TokenScheme::DPoP => {
                match self.verify_dpop_request(method, headers, token, now).await {
                    Ok((verified, proof)) => (verified, Some(proof)),
                    Err(refusal) => {
                        return Err(self.refusal_response(scheme, scopes, refusal, now));
                    }
                }
            }
            _ => {
                return Err(challenge_response(&self.challenge(scopes).invalid_request(
                    "an Authorization scheme this resource server does not take",
                )));
            }
        };
        let refusal = if scopes.iter().any(|s| !verified.scope.contains(s)) {
            Some(self.step_up_challenge(&verified, scopes))
        } else if self.config.require_user {
            self.no_user_challenge(&verified)
        } else {
            None
        };
        if let Some(challenge) = refusal {
            return Err(challenge_response(&match scheme {
                TokenScheme::DPoP => challenge.dpop(&self.dpop_algorithms()),
                _ => challenge,
            }));
        }
        // Only a request that passed every other check takes a place in the proof memory.
        if let Some(proof) = proof {
            self.remember_proof(&proof, now)
                .map_err(|refusal| self.refusal_response(scheme, scopes, refusal, now))?;
        }
        Ok(verified)
    }

    /// RFC 9449 §7.1–§7.2: the token must be bound to a key (`cnf.jkt`) and the request's
    /// DPoP proof must pass §4.3 for this method, this resource's URL and this token (`ath`),
    /// and be signed by that key. Whether it was seen before is asked last
    /// ([`remember_proof`](Self::remember_proof)).
    async fn verify_dpop_request(
        &self,
        method: &Method,
        headers: &HeaderMap,
        token: &str,
        now: UnixTime,
    ) -> Result<(VerifiedToken, mcpauth_dpop::VerifiedProof), DpopRefusal> {
        let (verified, jkt) = self
            .verify_bound(token, now)
            .await
            .map_err(DpopRefusal::Token)?;
        // The resource's URL: the MCP endpoint its identifier names (see CHANGELOG).
        let mut request = mcpauth_dpop::RequestContext::new(method.as_str(), &self.config.resource)
            .access_token(token);
        if let Some(nonces) = &self.config.dpop_nonces {
            request = request.nonce_from(nonces);
        }
        let proofs = headers
            .get_all("dpop")
            .iter()
            .map(http::HeaderValue::as_bytes);
        let proof = mcpauth_dpop::verify_proof(proofs, &request, &self.dpop_policy, now.0)
            .map_err(DpopRefusal::Proof)?;
        if !proof.is_bound_to(&jkt) {
            return Err(DpopRefusal::OtherKey);
        }
        Ok((verified, proof))
    }

    /// RFC 9449 §11.1: a proof is accepted once. Remembered until its `iat` is too old to
    /// pass again.
    fn remember_proof(
        &self,
        proof: &mcpauth_dpop::VerifiedProof,
        now: UnixTime,
    ) -> Result<(), DpopRefusal> {
        let until = proof.iat.saturating_add(self.dpop_policy.max_age_seconds());
        let remembered = self
            .dpop_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remember(&proof.jkt, &proof.jti, until, now.0);
        match remembered {
            Remembered::New => Ok(()),
            Remembered::Replayed => Err(DpopRefusal::Replayed),
            Remembered::KeyOverQuota => Err(DpopRefusal::KeyOverQuota),
            Remembered::Full => {
                let second = now.0;
                let last = self
                    .dpop_full_warned
                    .swap(second, std::sync::atomic::Ordering::Relaxed);
                if second.saturating_sub(last) >= 10 {
                    tracing::warn!(
                        "DPoP proofs arrive faster than this resource server remembers them; \
                         new ones are refused until older ones expire"
                    );
                }
                Err(DpopRefusal::Full)
            }
        }
    }

    /// The answer to a refused token: the scheme's challenge (`DPoP` naming the proof
    /// algorithms for a DPoP request, RFC 9449 §7.1), or `503` when the keys are unreachable.
    fn refusal_response(
        &self,
        scheme: TokenScheme,
        scopes: &[&str],
        refusal: DpopRefusal,
        now: UnixTime,
    ) -> HttpResponse {
        let mut challenge = self.challenge(scopes);
        if scheme == TokenScheme::DPoP {
            challenge = challenge.dpop(&self.dpop_algorithms());
        }
        challenge_response(&match refusal {
            DpopRefusal::Token(Refusal::Unavailable) => return unavailable(),
            DpopRefusal::Token(Refusal::Invalid(e)) => challenge.invalid_token(&e.to_string()),
            // RFC 9449 §9: the nonce to use comes with the refusal.
            DpopRefusal::Proof(e @ mcpauth_dpop::ProofError::UseNonce) => {
                let mut response = challenge_response(&challenge.use_dpop_nonce(&e.to_string()));
                if let Some(nonce) = self
                    .config
                    .dpop_nonces
                    .as_ref()
                    .and_then(|n| http::HeaderValue::from_str(&n.current(now.0)).ok())
                {
                    response.headers_mut().insert("dpop-nonce", nonce);
                }
                return response;
            }
            DpopRefusal::Proof(e) => challenge.invalid_dpop_proof(&e.to_string()),
            DpopRefusal::OtherKey => challenge.invalid_dpop_proof(
                "the DPoP proof is signed by another key than the one the token is bound to",
            ),
            DpopRefusal::Replayed => challenge.invalid_dpop_proof(
                "this DPoP proof was already used: make a new one for each request",
            ),
            DpopRefusal::KeyOverQuota => {
                return plain_refusal(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too Many Requests: this DPoP key sent more proofs than this server keeps for one key; slow down",
                );
            }
            DpopRefusal::Full => {
                return plain_refusal(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Service Unavailable: too many DPoP proofs to remember; retry shortly",
                );
            }
        })
    }

    fn dpop_algorithms(&self) -> String {
        self.dpop_policy.algorithm_names().join(" ")
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

/// Why a token (and its DPoP proof) was refused.
enum DpopRefusal {
    /// The token itself, or the keys to check it.
    Token(Refusal),
    /// The proof failed a check of RFC 9449 §4.3.
    Proof(mcpauth_dpop::ProofError),
    /// The proof is fine but signed by another key than the token's `cnf.jkt` (§4.3 check 12).
    OtherKey,
    /// The proof was seen before (§11.1).
    Replayed,
    /// The proof's key has as many proofs remembered as one key may.
    KeyOverQuota,
    /// As many proofs are remembered as this server keeps.
    Full,
}
