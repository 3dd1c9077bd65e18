//! Holding tokens: a valid one on demand (one refresh at a time), step-up on `insufficient_scope`,
//! the answer to a `401`, and logout with revocation.

use std::time::Duration;

use url::Url;

use crate::Error;
use crate::challenge::BearerChallenge;
use crate::discovery::{Discovered, discover};
use crate::registration::ClientCredentials;
use crate::token::{TokenSet, refresh};

use super::*;

impl OAuthClient {
    /// The tokens held for this server, if any (no network).
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], or discovery's errors (the issuer names the entry).
    pub async fn held_tokens(&self) -> Result<Option<TokenSet>, Error> {
        let discovered = self.discover().await?;
        self.store
            .load_tokens(discovered.issuer(), &discovered.resource)
            .await
    }

    /// An access token good for at least [`REFRESH_LEEWAY`] more seconds: the one held,
    /// else a refreshed one, else (no tokens, or the refresh token refused) a new
    /// authorization in the browser. Concurrent callers share one refresh.
    ///
    /// # Errors
    ///
    /// Any [`Error`].
    pub async fn get_valid_token(&self) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        self.valid_token_locked(true)
            .await?
            .ok_or_else(|| Error::NotAuthorized {
                server: self.server.clone(),
            })
    }

    /// Like [`get_valid_token`](Self::get_valid_token), but never starts a new
    /// authorization: the held token (refreshed if needed), or `None`. An MCP client sends
    /// its first request with this and lets the server's `401` say what it needs.
    ///
    /// # Errors
    ///
    /// Discovery, storage and network errors.
    pub async fn held_or_refreshed_token(&self) -> Result<Option<String>, Error> {
        let _flight = self.flight.lock().await;
        self.valid_token_locked(false).await
    }

    /// Answers an MCP server's `401` (RFC 6750 §3 / RFC 9728 §5.1): rediscovers from its
    /// challenge (the server may have moved to another authorization server: credentials
    /// and tokens are never carried across), then refreshes the refused token `sent` or
    /// authorizes for the challenge's scope.
    ///
    /// # Errors
    ///
    /// Any [`Error`].
    pub async fn answer_unauthorized(
        &self,
        challenge: &BearerChallenge,
        sent: Option<&str>,
    ) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        let discovered = discover(&*self.http, &self.server, Some(challenge), self.policy).await?;
        *self.discovered.lock().await = Some(discovered.clone());
        let issuer = discovered.issuer().to_owned();
        if let Some(mut tokens) = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?
        {
            if Some(tokens.access_token.as_str()) != sent {
                // Another caller got a new token meanwhile.
                return Ok(tokens.access_token);
            }
            // Refused before its time: refresh it (or authorize again).
            tokens.expires_at = Some(0);
            self.store
                .save_tokens(&issuer, &discovered.resource, &tokens)
                .await?;
            return self
                .valid_token_locked(true)
                .await?
                .ok_or_else(|| Error::NotAuthorized {
                    server: self.server.clone(),
                });
        }
        Ok(self.authorize_locked(None).await?.access_token)
    }

    /// The held token, refreshed when it is about to expire; `authorize`: a new
    /// authorization when there is none (or the refresh token is dead).
    async fn valid_token_locked(&self, authorize: bool) -> Result<Option<String>, Error> {
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let held = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?;
        if let Some(tokens) = &held
            && !tokens.expires_within(now(), REFRESH_LEEWAY)
        {
            return Ok(Some(tokens.access_token.clone()));
        }
        // Other processes sharing the store wait here; after the wait the tokens may be
        // fresh already (another process refreshed them), so read them again.
        let _entry = self
            .store
            .lock_tokens(&issuer, &discovered.resource)
            .await?;
        let held = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?;
        let refreshed = match held {
            Some(tokens) if !tokens.expires_within(now(), REFRESH_LEEWAY) => {
                return Ok(Some(tokens.access_token));
            }
            Some(tokens) if tokens.refresh_token.is_some() => {
                match self.refresh_locked(&discovered, &tokens).await {
                    Ok(fresh) => return Ok(Some(fresh.access_token)),
                    Err(e) if e.needs_authorization() => {
                        // The refresh token is dead: forget it and ask the user again. A
                        // passing refusal (a server error, a rate limit) keeps it.
                        self.store
                            .delete_tokens(&issuer, &discovered.resource)
                            .await?;
                        false
                    }
                    Err(e) => return Err(e),
                }
            }
            _ => false,
        };
        if authorize && !refreshed {
            return Ok(Some(self.authorize_locked(None).await?.access_token));
        }
        Ok(None)
    }

    /// Refreshes `held`, retrying network failures (not refusals) with backoff.
    async fn refresh_locked(
        &self,
        discovered: &Discovered,
        held: &TokenSet,
    ) -> Result<TokenSet, Error> {
        let credentials = match self.configured_credentials(discovered.issuer())? {
            Some(configured) => configured,
            None => self
                .store
                .load_credentials(discovered.issuer())
                .await?
                .ok_or_else(|| Error::Refresh {
                    url: discovered.issuer().to_owned(),
                    error: None,
                    description: Some("no client identity is kept for this server".into()),
                })?,
        };
        let endpoint = self.token_endpoint(discovered)?;
        let mut delay = Duration::from_millis(250);
        let mut attempt = 0;
        let fresh = loop {
            attempt += 1;
            match refresh(
                &*self.http,
                &endpoint,
                &credentials,
                held,
                &discovered.resource,
                now(),
            )
            .await
            {
                Err(e) if e.is_transient() && attempt < 3 => {
                    tokio::time::sleep(delay).await;
                    delay *= 2;
                }
                other => break other?,
            }
        };
        self.store
            .save_tokens(discovered.issuer(), &discovered.resource, &fresh)
            .await?;
        Ok(fresh)
    }

    /// Marks the held access token as expired, so the next
    /// [`get_valid_token`](Self::get_valid_token) refreshes it: for when the MCP server
    /// refused it (`401 invalid_token`) before its time.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], discovery's errors.
    pub async fn expire_access_token(&self) -> Result<(), Error> {
        let _flight = self.flight.lock().await;
        let discovered = self.discover().await?;
        if let Some(mut tokens) = self
            .store
            .load_tokens(discovered.issuer(), &discovered.resource)
            .await?
        {
            tokens.expires_at = Some(0);
            self.store
                .save_tokens(discovered.issuer(), &discovered.resource, &tokens)
                .await?;
        }
        Ok(())
    }

    /// Step-up (RFC 6750 §3.1 `insufficient_scope`): authorizes again for the union of the
    /// scope held and the scope the challenge names. Callers stop after a few attempts (the
    /// MCP specification's conformance suite expects at most three).
    ///
    /// # Errors
    ///
    /// Any [`Error`] of [`authorize`](Self::authorize).
    pub async fn step_up(&self, challenge: &BearerChallenge) -> Result<String, Error> {
        let _flight = self.flight.lock().await;
        let held = self.held_tokens().await?;
        let mut union: Vec<String> = held
            .as_ref()
            .map(|t| t.scopes().map(str::to_owned).collect())
            .unwrap_or_default();
        for scope in challenge
            .scope
            .as_deref()
            .unwrap_or("")
            .split_ascii_whitespace()
        {
            if !union.iter().any(|s| s == scope) {
                union.push(scope.to_owned());
            }
        }
        let scope = union.join(" ");
        Ok(self
            .authorize_locked(Some(&scope).filter(|s| !s.is_empty()).map(String::as_str))
            .await?
            .access_token)
    }

    /// Logs out: revokes the refresh token and the access token where the server offers
    /// revocation (RFC 7009), then forgets them. Revocation failures do not keep the tokens;
    /// the answer says what happened, so a second logout can say there was nothing to do.
    ///
    /// # Errors
    ///
    /// [`Error::Storage`], discovery's errors.
    pub async fn logout(&self) -> Result<LoggedOut, Error> {
        let _flight = self.flight.lock().await;
        let discovered = self.discover().await?;
        let issuer = discovered.issuer().to_owned();
        let Some(tokens) = self
            .store
            .load_tokens(&issuer, &discovered.resource)
            .await?
        else {
            return Ok(LoggedOut::NothingHeld);
        };
        let endpoint = discovered
            .authorization_server
            .revocation_endpoint
            .as_deref()
            .map(|e| self.policy.check(e))
            .transpose()?;
        let credentials = match self.configured_credentials(&issuer)? {
            Some(configured) => Some(configured),
            None => self.store.load_credentials(&issuer).await?,
        };
        let outcome = match (endpoint, credentials) {
            (Some(endpoint), Some(credentials)) => {
                let hints = [
                    (tokens.refresh_token.as_deref(), "refresh_token"),
                    (Some(tokens.access_token.as_str()), "access_token"),
                ];
                let mut all_accepted = true;
                for (token, hint) in hints {
                    if let Some(token) = token {
                        all_accepted &= self.revoke(&endpoint, &credentials, token, hint).await;
                    }
                }
                if all_accepted {
                    LoggedOut::Revoked
                } else {
                    LoggedOut::RevocationFailed
                }
            }
            (None, _) => LoggedOut::NoRevocationEndpoint,
            (Some(_), None) => LoggedOut::RevocationFailed,
        };
        self.store
            .delete_tokens(&issuer, &discovered.resource)
            .await?;
        Ok(outcome)
    }

    /// Whether the server accepted the revocation request (RFC 7009 §2.2: 200 whether or not
    /// the token was still valid). On failure there is nothing to do but forget the token.
    async fn revoke(
        &self,
        endpoint: &Url,
        client: &ClientCredentials,
        token: &str,
        hint: &str,
    ) -> bool {
        let params = [("token", token), ("token_type_hint", hint)];
        let Ok(request) = crate::token::authenticated_form(endpoint, client, &params, now()) else {
            return false;
        };
        self.http
            .send(request)
            .await
            .is_ok_and(|response| response.status() == http::StatusCode::OK)
    }
}

/// What [`OAuthClient::logout`] did. The tokens are forgotten in every case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoggedOut {
    /// The authorization server accepted the revocation of every token held (RFC 7009).
    Revoked,
    /// The authorization server offers no revocation endpoint: the tokens were forgotten here
    /// and stay valid there until they expire.
    NoRevocationEndpoint,
    /// A revocation request failed (network, or refused): the tokens were forgotten here and
    /// may stay valid there until they expire.
    RevocationFailed,
    /// No tokens were held: nothing to revoke or forget.
    NothingHeld,
}
