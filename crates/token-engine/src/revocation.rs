//! RFC 7009: token revocation.
//!
//! Refresh tokens are looked up by hash; access tokens are our own JWTs, whose `jti` names
//! their grant. Revoking either revokes the grant, so every refresh token of the family stops
//! working (RFC 7009 §2.1: "the authorization server SHOULD also invalidate all access tokens
//! based on the same authorization grant"). JWT access tokens stay valid at resource servers
//! that do not introspect until they expire; keep their lifetime short.
//!
//! A token obtained by token exchange (RFC 8693) descends from the grant a user gave another
//! client: revoking it never revokes that grant (an opaque one is deleted; a JWT one is
//! `unsupported_token_type`).
//!
//! An unknown or already-invalid token is answered with 200 (§2.2). A storage failure is
//! `server_error`, never 200.

use mcpauth_oauth_types::{OAuthError, RevocationErrorCode, RevocationRequest, TokenTypeHint};

use crate::UnixTime;
use crate::error::{RevocationError, internal};
use crate::model::{ClientId, ClientRecord, GrantId, OAuthServerModel};
use crate::{SecretHash, TokenEngine};

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Deletes an opaque access token, if the model keeps any.
    async fn forget_opaque(&self, token: &str) -> Result<(), M::Error> {
        match self.model.opaque_tokens() {
            Some(store) => store.delete_access_token(&SecretHash::of(token)).await,
            None => Ok(()),
        }
    }

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
        let storage = |e| internal("storage failure", e);
        let token = request.token.as_str();
        // (owner, grant); an access token of no grant (client_credentials) has `None`.
        let as_refresh = || async {
            let found = self
                .model
                .find_refresh(&SecretHash::of(token))
                .await
                .map_err(storage)?;
            Ok::<_, RevocationError>(found.map(|r| (r.client_id, Some(r.grant_id))))
        };
        let as_access = || async {
            let claims = self.decode_own_access_token(token).await.map_err(storage)?;
            Ok::<_, RevocationError>(claims.map(|c| {
                (
                    ClientId::from(c.client_id.as_str()),
                    c.grant_id().map(GrantId::from),
                )
            }))
        };
        // The hint only orders the search (§2.1).
        let found = if request.token_type_hint == Some(TokenTypeHint::AccessToken) {
            match as_access().await? {
                Some(found) => Some(found),
                None => as_refresh().await?,
            }
        } else {
            match as_refresh().await? {
                Some(found) => Some(found),
                None => as_access().await?,
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
        // A token this client obtained by exchange (RFC 8693) descends from a grant the user
        // gave *another* client: revoking it must not end that client's access.
        let own_grant = match &grant_id {
            Some(grant_id) => self
                .model
                .find_grant(grant_id)
                .await
                .map_err(storage)?
                .is_none_or(|grant| grant.client_id == client.client_id),
            None => false,
        };
        let opaque = token.bytes().filter(|b| *b == b'.').count() != 2;
        match grant_id {
            Some(grant_id) if own_grant => self
                .model
                .revoke_grant(&grant_id, now)
                .await
                .map_err(storage),
            Some(_) if opaque => self.forget_opaque(token).await.map_err(storage),
            Some(_) => Err(OAuthError::new(
                RevocationErrorCode::UnsupportedTokenType,
                "a JWT access token obtained by token exchange is self-contained and cannot be revoked without revoking the user's grant to another client; it expires on its own",
            )),
            // An opaque token of no grant is deleted; a self-contained JWT cannot be recalled.
            None if opaque => self.forget_opaque(token).await.map_err(storage),
            None => Err(OAuthError::new(
                RevocationErrorCode::UnsupportedTokenType,
                "client_credentials JWT access tokens are self-contained and cannot be revoked; they expire on their own",
            )),
        }
    }
}
