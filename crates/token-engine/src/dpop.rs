//! RFC 9449 at the token endpoint: checking a token request's DPoP proof (§4.3, §5), its
//! `jti` single use across instances (§11.1, through the model's [`ReplayStore`]), server
//! nonces (§8), and the rules that say when a proof is required: a server-wide policy, a client
//! that registered `dpop_bound_access_tokens` (§5.2), a code bound with `dpop_jkt` (§10) and a
//! public client's bound refresh token (§5).
//!
//! A proof binds what the request issues to its key: the access token carries `cnf.jkt`
//! (§6.1) and is answered as `token_type: DPoP`; a public client's refresh token is bound too,
//! and every later refresh must prove the same key. A confidential client's refresh token is
//! not bound (§5: it is already sender-constrained by the client's authentication).
//!
//! [`ReplayStore`]: crate::ReplayStore

use mcpauth_dpop::{NonceSource, ProofError, ProofPolicy, RequestContext, verify_proof};
use mcpauth_oauth_types::{OAuthError, TokenErrorCode};
use subtle::ConstantTimeEq as _;

use crate::error::{TokenError, internal};
use crate::model::{ClientRecord, OAuthServerModel};
use crate::{TokenEngine, UnixTime, paths};

/// How the token endpoint treats DPoP proofs (RFC 9449).
///
/// The default accepts proofs with [`ProofPolicy::default`]'s algorithms and time window and
/// binds what it issues to their key, requires none (clients that registered
/// `dpop_bound_access_tokens` excepted), and asks for no nonce. [`DpopPolicy::disabled`] is
/// a server without DPoP: nothing advertised, proofs and `dpop_jkt` ignored, Bearer tokens
/// only (for resource servers that take Bearer tokens alone).
///
/// ```
/// use mcpauth_token_engine::{DpopPolicy, EngineConfig, NonceSource};
///
/// let mut config = EngineConfig::new("https://auth.example.com".parse()?)?;
/// // Every token request must carry a proof, signed over a nonce this server issued.
/// config.dpop(
///     DpopPolicy::default()
///         .required(true)
///         .nonces(NonceSource::new(b"32 random bytes, the same everywhere", 60)),
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct DpopPolicy {
    /// DPoP off altogether (`Default` is on).
    pub(crate) disabled: bool,
    pub(crate) proofs: ProofPolicy,
    pub(crate) required: bool,
    pub(crate) nonces: Option<NonceSource>,
}

impl DpopPolicy {
    /// No DPoP (RFC 9449 §5: a server that does not support it ignores the `DPoP` header):
    /// `dpop_signing_alg_values_supported` is not published, proofs and `dpop_jkt` are
    /// ignored, and every token is a Bearer token. Codes and refresh tokens bound while DPoP
    /// was on are refused (`invalid_grant`: their holders authorize again), and so are
    /// clients that registered `dpop_bound_access_tokens`: a binding is never dropped
    /// silently. [`required`](Self::required) and [`nonces`](Self::nonces) have no effect.
    /// For deployments whose resource servers do not take DPoP tokens.
    #[must_use]
    pub fn disabled() -> Self {
        Self {
            disabled: true,
            ..Self::default()
        }
    }

    /// Whether this server takes DPoP proofs at all.
    #[must_use]
    pub fn is_enabled(&self) -> bool {
        !self.disabled
    }

    /// Checks proofs against `proofs` (algorithms and `iat` window); the algorithms are
    /// published as `dpop_signing_alg_values_supported`.
    #[must_use]
    pub fn proofs(mut self, proofs: ProofPolicy) -> Self {
        self.proofs = proofs;
        self
    }

    /// Whether every token request must carry a proof, so that only sender-constrained
    /// tokens are issued (default off: then only clients that registered
    /// `dpop_bound_access_tokens` must).
    #[must_use]
    pub fn required(mut self, required: bool) -> Self {
        self.required = required;
        self
    }

    /// Requires proofs to carry a nonce from `source` (RFC 9449 §8): a proof without one, or
    /// with a stale one, is answered `use_dpop_nonce` with a fresh nonce in `DPoP-Nonce`.
    #[must_use]
    pub fn nonces(mut self, source: NonceSource) -> Self {
        self.nonces = Some(source);
        self
    }

    /// Whether every token request must carry a proof.
    #[must_use]
    pub fn is_required(&self) -> bool {
        self.required
    }

    /// The proof checks in force.
    #[must_use]
    pub fn proof_policy(&self) -> &ProofPolicy {
        &self.proofs
    }
}

fn invalid_proof(description: impl Into<std::borrow::Cow<'static, str>>) -> TokenError {
    OAuthError::new(TokenErrorCode::InvalidDpopProof, description)
}

/// Whether `jkt` is the thumbprint a code or refresh token was bound to.
pub(crate) fn same_key(jkt: &str, bound: &str) -> bool {
    bool::from(jkt.as_bytes().ct_eq(bound.as_bytes()))
}

/// What can be bound to a DPoP key before an access token is issued from it.
#[derive(Clone, Copy)]
pub(crate) enum BoundGrant {
    /// An authorization code, bound by `dpop_jkt` at the authorization endpoint (§10).
    Code,
    /// A public client's refresh token, bound when it was issued (§5).
    RefreshToken,
}

/// What a code or refresh token bound to `bound` (if to anything) says of a request whose
/// proof (if any) was made with `jkt` (RFC 9449 §5, §10), under `policy` (a server with DPoP
/// off holds nothing to a key).
pub(crate) fn check_binding(
    policy: &DpopPolicy,
    grant: BoundGrant,
    bound: Option<&str>,
    jkt: Option<&str>,
) -> Result<(), TokenError> {
    match (bound, jkt, grant) {
        (None, _, _) => Ok(()),
        // Bound while DPoP was on: with it off no proof is checked, so the binding cannot be
        // honoured; refused rather than let a stolen bound token pass as a bearer one.
        (Some(_), _, BoundGrant::Code) if policy.disabled => Err(OAuthError::new(
            TokenErrorCode::InvalidGrant,
            "the authorization code is bound to a DPoP key and this server has DPoP turned off: authorize again",
        )),
        (Some(_), _, BoundGrant::RefreshToken) if policy.disabled => Err(OAuthError::new(
            TokenErrorCode::InvalidGrant,
            "the refresh token is bound to a DPoP key and this server has DPoP turned off: authorize again",
        )),
        (Some(bound), Some(jkt), _) if same_key(jkt, bound) => Ok(()),
        (Some(_), Some(_), BoundGrant::Code) => Err(OAuthError::new(
            TokenErrorCode::InvalidGrant,
            "the authorization code is bound to another DPoP key (dpop_jkt)",
        )),
        (Some(_), Some(_), BoundGrant::RefreshToken) => Err(OAuthError::new(
            TokenErrorCode::InvalidGrant,
            "the refresh token is bound to another DPoP key",
        )),
        (Some(_), None, BoundGrant::Code) => Err(invalid_proof(
            "the authorization code is bound to a DPoP key (dpop_jkt): send a DPoP proof signed with that key",
        )),
        (Some(_), None, BoundGrant::RefreshToken) => Err(invalid_proof(
            "the refresh token is bound to a DPoP key: send a DPoP proof signed with the key that obtained it",
        )),
    }
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// The DPoP rules in force.
    #[must_use]
    pub fn dpop_policy(&self) -> &DpopPolicy {
        &self.config.dpop
    }

    /// The nonce to send in `DPoP-Nonce` with every token endpoint response at `now`, when
    /// this engine asks for nonces (RFC 9449 §8); `None` when it does not.
    #[must_use]
    pub fn dpop_nonce(&self, now: UnixTime) -> Option<String> {
        let policy = &self.config.dpop;
        (!policy.disabled)
            .then_some(policy.nonces.as_ref())
            .flatten()
            .map(|n| n.current(now.0))
    }

    /// Checks the `DPoP` header values of a token request from `client` and records the
    /// proof's `jti` as used; the proof's key thumbprint, or `None` when no proof was sent and
    /// none is required.
    pub(crate) async fn token_request_proof(
        &self,
        client: Option<&ClientRecord>,
        proofs: &[&[u8]],
        now: UnixTime,
    ) -> Result<Option<String>, TokenError> {
        let policy = &self.config.dpop;
        if policy.disabled {
            // RFC 9449 §5.2: such a client's requests without a proof MUST be refused, and
            // with DPoP off no proof counts: better no token than an unbound one.
            if client.is_some_and(|c| c.metadata.dpop_bound_access_tokens) {
                return Err(OAuthError::new(
                    TokenErrorCode::UnauthorizedClient,
                    "this client registered dpop_bound_access_tokens, and this server has DPoP turned off",
                ));
            }
            return Ok(None);
        }
        if proofs.is_empty() {
            if policy.required {
                return Err(invalid_proof(
                    "this server issues DPoP-bound tokens only: send a DPoP proof (RFC 9449) in the DPoP header",
                ));
            }
            if client.is_some_and(|c| c.metadata.dpop_bound_access_tokens) {
                return Err(invalid_proof(
                    "this client registered dpop_bound_access_tokens: send a DPoP proof (RFC 9449) in the DPoP header",
                ));
            }
            return Ok(None);
        }
        let htu = self.config.endpoint_url(paths::TOKEN);
        let mut request = RequestContext::new("POST", &htu);
        if let Some(nonces) = &policy.nonces {
            request = request.nonce_from(nonces);
        }
        let proof = verify_proof(proofs.iter().copied(), &request, &policy.proofs, now.0).map_err(
            |error| match error {
                ProofError::UseNonce => {
                    OAuthError::new(TokenErrorCode::UseDpopNonce, error.to_string())
                }
                other => invalid_proof(other.to_string()),
            },
        )?;
        // Remembered until its iat leaves the window (and a second more, so that a proof at
        // the window's last second is still caught).
        let until = UnixTime(
            proof
                .iat
                .saturating_add(policy.proofs.max_age_seconds())
                .saturating_add(1),
        );
        let first_use = self
            .model
            .remember_once(&proof.replay_key(), until.max(now.plus(1)), now)
            .await
            .map_err(|e| internal("storage failure", e))?;
        if !first_use {
            return Err(invalid_proof(
                "this DPoP proof was used before: make a fresh proof, with a new jti, for each request",
            ));
        }
        Ok(Some(proof.jkt))
    }
}
