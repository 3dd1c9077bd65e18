//! Sign-in and consent for an authorization request: the server's [`Interaction`].
//!
//! An interaction is the pending authorization stored server-side under a random id (hashed
//! at rest), for ten minutes. Its forms carry a CSRF token that must equal both the one whose
//! hash is stored and a cookie scoped to the interaction's path, so the decision is bound to
//! the browser that started it and an attacker cannot post it cross-site. A decision is taken
//! once: the interaction is deleted atomically before the code is issued.
//!
//! When the user already approved at least the requested scopes and resources for this
//! client and asked to remember it, the consent page is skipped.

mod forms;
mod render;

pub(in crate::pages) use forms::{consent, login, show, sign_out, upstream};

use std::sync::Arc;

use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcpauth_http::{HttpResponse, Interaction};
use mcpauth_store_sql::InteractionRow;
use mcpauth_token_engine::{PendingAuthorization, SecretHash};

use crate::pages::{Pages, cookie, random_token, see_other};

const INTERACTION_TTL: u64 = 600;
/// The interaction's CSRF cookie: one per interaction (named after it), so concurrent
/// sign-ins in one browser do not clash.
fn csrf_cookie(id: &str) -> String {
    let key = SecretHash::of(id);
    format!(
        "mcpauth_csrf_{}",
        key.as_str().get(..16).unwrap_or(key.as_str())
    )
}

/// The [`Interaction`] the authorization server calls for a valid authorization request.
pub(crate) struct BuiltInInteraction(pub(crate) Arc<Pages>);

#[async_trait::async_trait]
impl Interaction for BuiltInInteraction {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &axum::http::request::Parts,
    ) -> HttpResponse {
        crate::pages::into_http(self.start(pending).await).await
    }
}

impl BuiltInInteraction {
    /// Keeps `pending` and sends the browser to the sign-in and consent page.
    async fn start(&self, pending: PendingAuthorization) -> Response {
        let pages = &self.0;
        let (Some(id), Some(csrf)) = (random_token(), random_token()) else {
            return pages.server_error(&"no randomness");
        };
        let persisted = match pending.persist() {
            Ok(persisted) => persisted,
            Err(e) => return pages.server_error(&e),
        };
        let stored = pages
            .store
            .insert_interaction(
                &SecretHash::of(&id),
                &persisted,
                &SecretHash::of(&csrf),
                pages.now().plus(INTERACTION_TTL).0,
            )
            .await;
        if let Err(e) = stored {
            return pages.server_error(&e);
        }
        let path = pages.interaction_path(&id);
        let mut response = see_other(&path);
        // Scoped to this interaction's path: concurrent sign-ins in one browser do not clash.
        pages.set_cookie(
            &mut response,
            &csrf_cookie(&id),
            &csrf,
            &path,
            INTERACTION_TTL,
        );
        response
    }
}

/// What the user decided on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(in crate::pages) enum Decision {
    Approve,
    ApproveAndRemember,
    Deny,
}

impl Pages {
    fn interaction_path(&self, id: &str) -> String {
        format!("{}/interaction/{id}", self.base)
    }

    fn expired(&self) -> Response {
        self.message(
            StatusCode::BAD_REQUEST,
            "This sign-in request has expired",
            "It was already completed, or it is more than ten minutes old. Return to the application and start again.",
        )
    }

    /// Loads the interaction and checks that the browser holds its CSRF cookie.
    async fn load(
        &self,
        id: &str,
        headers: &HeaderMap,
    ) -> Result<(InteractionRow, String), Response> {
        let row = match self
            .store
            .find_interaction(&SecretHash::of(id), self.now())
            .await
        {
            Ok(Some(row)) => row,
            Ok(None) => return Err(self.expired()),
            Err(e) => return Err(self.server_error(&e)),
        };
        let Some(csrf) = cookie(headers, &self.cookie_name(&csrf_cookie(id))) else {
            return Err(self.message(
                StatusCode::FORBIDDEN,
                "Open this page in the browser that started sign-in",
                "This sign-in request belongs to another browser session (or cookies are blocked). Return to the application and start again.",
            ));
        };
        if !row.csrf_hash.matches(csrf) {
            return Err(self.message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Return to the application and start again.",
            ));
        }
        Ok((row, csrf.to_owned()))
    }

    /// Like [`load`](Self::load), for a posted form: its token must match too.
    async fn load_posted(
        &self,
        id: &str,
        headers: &HeaderMap,
        submitted: &str,
    ) -> Result<(InteractionRow, String), Response> {
        let (row, csrf) = self.load(id, headers).await?;
        if !mcpauth_oauth_types::constant_time_eq(submitted.as_bytes(), csrf.as_bytes()) {
            return Err(self.message(
                StatusCode::FORBIDDEN,
                "This form has expired",
                "Return to the application and start again.",
            ));
        }
        Ok((row, csrf))
    }

    /// Decides the interaction `id` once: deletes it, then approves or denies, and sends the
    /// browser back to the client. An approval the user asked to remember is remembered only
    /// once the engine granted it (not for a user disabled meanwhile, nor twice).
    async fn decide(
        &self,
        id: &str,
        pending: PendingAuthorization,
        user_id: &str,
        decision: Decision,
    ) -> Response {
        // Only the request that deletes the interaction may decide.
        match self.store.take_interaction(&SecretHash::of(id)).await {
            Ok(true) => {}
            Ok(false) => return self.expired(),
            Err(e) => return self.server_error(&e),
        }
        let remembered = (decision == Decision::ApproveAndRemember).then(|| {
            (
                pending.client_id().to_owned(),
                pending.redirect_uri().to_owned(),
                pending.scope().to_owned(),
                pending.resources().to_vec(),
            )
        });
        let decided = if decision == Decision::Deny {
            self.engine.deny(pending)
        } else {
            self.engine.approve(pending, user_id, self.now()).await
        };
        if let (Ok(_), Some((client_id, redirect_uri, scope, resources))) = (&decided, remembered)
            && let Err(e) = self
                .store
                .remember_consent(
                    user_id,
                    &client_id,
                    &redirect_uri,
                    &scope,
                    &resources,
                    self.now(),
                )
                .await
        {
            // The client has its code; only the shortcut next time is lost.
            tracing::warn!(error = %e, "remembering a consent failed");
        }
        let mut response = match decided {
            Ok(redirect) => see_other(&redirect.location),
            Err(e) => mcpauth_adapter_axum::show_error_page(&e),
        };
        self.set_cookie(
            &mut response,
            &csrf_cookie(id),
            "",
            &self.interaction_path(id),
            0,
        );
        response
    }
}
