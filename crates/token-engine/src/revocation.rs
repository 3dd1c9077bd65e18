//! RFC 7009: token revocation.
//!
//! Refresh tokens are looked up by hash; access tokens are our own JWTs, whose `jti` names
//! their grant. Revoking either revokes the grant, so every refresh token of the family stops
//! working (RFC 7009 §2.1: "the authorization server SHOULD also invalidate all access tokens
//! based on the same authorization grant"). JWT access tokens stay valid at resource servers
//! that do not introspect until they expire; keep their lifetime short.
//!
//! An unknown or already-invalid token is answered with 200 (§2.2). A storage failure is
//! `server_error`, never 200.

use mcpauth_oauth_types::{OAuthError, RevocationErrorCode, RevocationRequest, TokenTypeHint};

use crate::error::{RevocationError, internal};
use crate::model::{ClientRecord, OAuthServerModel};
use crate::time::UnixTime;
use crate::{TokenEngine, hash};

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Revokes `request.token` on behalf of the authenticated `client`.
    ///
    /// # Errors
    ///
    /// `unauthorized_client` when the token belongs to another client; `server_error` on
    /// storage failure.
    pub(crate) async fn revoke(
        &self,
        client: &ClientRecord,
        request: &RevocationRequest,
        now: UnixTime,
    ) -> Result<(), RevocationError> {
        let as_refresh = || async {
            self.model
                .find_refresh(&hash::secret_hash(&request.token))
                .await
                .map(|r| r.map(|r| (r.client_id, r.grant_id)))
        };
        let as_access = || {
            self.decode_own_access_token(&request.token)
                .and_then(|c| c.grant_id().map(|g| (c.client_id.clone(), g.to_owned())))
        };
        // The hint only orders the search (§2.1).
        let found = if request.token_type_hint == Some(TokenTypeHint::AccessToken) {
            match as_access() {
                Some(found) => Some(found),
                None => as_refresh()
                    .await
                    .map_err(|e| internal("storage failure", e))?,
            }
        } else {
            match as_refresh()
                .await
                .map_err(|e| internal("storage failure", e))?
            {
                Some(found) => Some(found),
                None => as_access(),
            }
        };
        let Some((owner, grant_id)) = found else {
            return Ok(());
        };
        if owner != client.client_id {
            return Err(OAuthError::new(
                RevocationErrorCode::UnauthorizedClient,
                "the token was not issued to this client",
            ));
        }
        self.model
            .revoke_grant(&grant_id, now)
            .await
            .map_err(|e| internal("storage failure", e))
    }
}
