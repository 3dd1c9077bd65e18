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

use std::sync::Arc;

use askama::Template;
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use mcpauth_http::{HttpResponse, Interaction};
use mcpauth_store_sql::InteractionRow;
use mcpauth_token_engine::{ClientIdentity, PendingAuthorization, SecretHash};
use serde::Deserialize;

use super::sign_in::{PasswordCheck, Peer, check_password, peer_ip, start_session};
use super::{
    LoginPage, Pages, ProviderButton, ScopeLine, SessionBar, SignedIn, cookie, page, random_token,
    see_other,
};

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

#[derive(Template)]
#[template(path = "consent.html")]
struct ConsentPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    client_name: &'a str,
    client_id: &'a str,
    identity: String,
    resources: &'a [String],
    scopes: Vec<ScopeLine<'a>>,
    redirect_host: String,
    redirect_warning: Option<String>,
    /// Whether the page offers to remember the decision (RFC 8252 §8.6: not for a client
    /// whose identity cannot be assured).
    remember_offered: bool,
    action: String,
    csrf_token: &'a str,
}

/// The chooser of a server with upstream providers: the MCP client's request, and a button
/// per provider that approves it and signs in there. Consent comes first, before the user
/// is sent upstream (the MCP confused-deputy rule: the upstream may remember an earlier
/// sign-in and answer at once, so its consent says nothing about this client).
#[derive(Template)]
#[template(path = "choose.html")]
struct ChooserPage<'a> {
    base: &'a str,
    client_name: &'a str,
    client_id: &'a str,
    identity: String,
    resources: &'a [String],
    scopes: Vec<ScopeLine<'a>>,
    redirect_host: String,
    redirect_warning: Option<String>,
    providers: Vec<ProviderButton<'a>>,
    deny_action: String,
    password_login: bool,
    login_action: String,
    csrf_token: &'a str,
}

/// How the pages describe the client of a request.
struct ClientDescription {
    name: String,
    identity: String,
    redirect_host: String,
    /// Said plainly when the answer goes to a program on this device, which any program
    /// could be (a loopback or private-use redirect URI).
    redirect_warning: Option<String>,
}

/// The warning for a redirect URI that any local program could receive, if it is one.
fn redirect_warning(redirect_uri: &str) -> Option<String> {
    let url = url::Url::parse(redirect_uri).ok()?;
    if url.scheme() == "http" && mcpauth_metadata::is_loopback_http(&url) {
        return Some(
            "The answer goes to a program on this computer (localhost), not to a website: any program running here could be the one listening. Approve only if you just started this from an application you trust."
                .to_owned(),
        );
    }
    if url.scheme() != "https" {
        return Some(format!(
            "The answer goes to an application on this device through the `{}:` link type, which any installed application can claim. Approve only if you just started this from an application you trust.",
            url.scheme()
        ));
    }
    None
}

fn describe_client(pending: &PendingAuthorization) -> ClientDescription {
    ClientDescription {
        name: pending.client_name().unwrap_or("An application").to_owned(),
        identity: match &pending.client_identity() {
            ClientIdentity::MetadataDocument { host } => format!("published by {host}"),
            ClientIdentity::SelfRegistered => "unverified: it registered itself".to_owned(),
            _ => "registered by this server's operator".to_owned(),
        },
        redirect_host: url::Url::parse(pending.redirect_uri())
            .ok()
            .map(|u| {
                u.host_str()
                    .map_or_else(|| u.scheme().to_owned(), str::to_owned)
            })
            .unwrap_or_default(),
        redirect_warning: redirect_warning(pending.redirect_uri()),
    }
}

impl Pages {
    fn chooser_page(
        &self,
        id: &str,
        pending: &PendingAuthorization,
        federation: &crate::federation::Federation,
        csrf: &str,
    ) -> Response {
        let client = describe_client(pending);
        let path = self.interaction_path(id);
        page(
            StatusCode::OK,
            ChooserPage {
                base: &self.base,
                client_name: &client.name,
                client_id: pending.client_id(),
                identity: client.identity,
                resources: pending.resources(),
                scopes: self.scope_lines(pending.scope()),
                redirect_host: client.redirect_host,
                redirect_warning: client.redirect_warning,
                providers: federation
                    .login
                    .providers()
                    .iter()
                    .map(|p| ProviderButton {
                        name: &p.display_name,
                        action: format!("{path}/upstream/{}", p.id),
                    })
                    .collect(),
                deny_action: format!("{path}/consent"),
                password_login: self.password_login,
                login_action: format!("{path}/login"),
                csrf_token: csrf,
            }
            .render(),
        )
    }

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

    fn login_page(
        &self,
        status: StatusCode,
        id: &str,
        pending: &str,
        csrf: &str,
        email: &str,
        error: Option<&str>,
    ) -> Response {
        let client_name = PendingAuthorization::restore(pending)
            .ok()
            .and_then(|p| p.client_name().map(str::to_owned))
            .unwrap_or_else(|| "An application".into());
        page(
            status,
            LoginPage {
                base: &self.base,
                client_name: Some(&client_name),
                purpose: "",
                action: format!("{}/login", self.interaction_path(id)),
                csrf_token: csrf,
                hidden: Vec::new(),
                email,
                error,
                // Shown only without providers (which get the chooser instead).
                providers: Vec::new(),
                password_login: true,
            }
            .render(),
        )
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

/// The [`Interaction`] the authorization server calls for a valid authorization request.
pub(crate) struct BuiltInInteraction(pub(crate) Arc<Pages>);

#[async_trait::async_trait]
impl Interaction for BuiltInInteraction {
    async fn begin(
        &self,
        pending: PendingAuthorization,
        _request: &axum::http::request::Parts,
    ) -> HttpResponse {
        super::into_http(self.start(pending).await).await
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

/// `GET {base}/interaction/{id}`: the sign-in page, the consent page, or (consent
/// remembered) straight back to the client.
pub(super) async fn show(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    let (row, csrf) = match pages.load(&id, &headers).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    let user = match &row.user_id {
        Some(user_id) => pages
            .store
            .find_user_by_id(user_id)
            .await
            .ok()
            .flatten()
            .filter(|u| !u.disabled)
            .map(|u| SignedIn {
                id: u.user_id,
                email: u.email,
            }),
        None => pages.session_user(&headers).await,
    };
    let Some(user) = user else {
        if let Some(federation) = &pages.federation {
            return pages.chooser_page(&id, &pending, federation, &csrf);
        }
        return pages.login_page(StatusCode::OK, &id, &row.pending, &csrf, "", None);
    };
    if row.user_id.is_none()
        && let Err(e) = pages
            .store
            .set_interaction_user(&SecretHash::of(&id), &user.id)
            .await
    {
        return pages.server_error(&e);
    }
    // RFC 8252 §8.6: only a client whose identity is assured may skip the page, and only for
    // exactly what the user approved before at the same redirect URI.
    if pending.consent_may_be_remembered() {
        match pages
            .store
            .consent_covers(
                &user.id,
                pending.client_id(),
                pending.redirect_uri(),
                pending.scope(),
                pending.resources(),
            )
            .await
        {
            Ok(true) => {
                tracing::debug!(client_id = %pending.client_id(), "consent remembered: not asking again");
                return pages
                    .decide(&id, pending, &user.id, Decision::Approve)
                    .await;
            }
            Ok(false) => {}
            Err(e) => return pages.server_error(&e),
        }
    }
    let client = describe_client(&pending);
    page(
        StatusCode::OK,
        ConsentPage {
            base: &pages.base,
            signed_in: SessionBar {
                email: &user.email,
                sign_out_action: format!("{}/sign-out", pages.interaction_path(&id)),
                csrf_token: &csrf,
            },
            client_name: &client.name,
            client_id: pending.client_id(),
            identity: client.identity,
            resources: pending.resources(),
            scopes: pages.scope_lines(pending.scope()),
            redirect_host: client.redirect_host,
            redirect_warning: client.redirect_warning,
            remember_offered: pending.consent_may_be_remembered(),
            action: format!("{}/consent", pages.interaction_path(&id)),
            csrf_token: &csrf,
        }
        .render(),
    )
}

#[derive(Deserialize)]
pub(super) struct LoginForm {
    csrf_token: String,
    email: String,
    password: String,
}

/// `POST {base}/interaction/{id}/login`.
pub(super) async fn login(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    if !pages.password_login {
        return pages.password_login_off();
    }
    let (row, csrf) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let user = match check_password(&pages, peer_ip(peer), &form.email, form.password).await {
        PasswordCheck::Accepted(user) => user,
        PasswordCheck::Wrong(email) => {
            return pages.login_page(
                StatusCode::UNAUTHORIZED,
                &id,
                &row.pending,
                &csrf,
                &email,
                Some("Wrong email or password."),
            );
        }
        PasswordCheck::Refused(response) => return response,
    };
    if let Err(e) = pages
        .store
        .set_interaction_user(&SecretHash::of(&id), &user.user_id)
        .await
    {
        return pages.server_error(&e);
    }
    start_session(
        &pages,
        &user.user_id,
        see_other(&pages.interaction_path(&id)),
    )
    .await
}

#[derive(Deserialize)]
pub(super) struct ConsentForm {
    csrf_token: String,
    decision: String,
    #[serde(default)]
    remember: Option<String>,
}

/// `POST {base}/interaction/{id}/consent`: approve or deny, optionally remembered.
pub(super) async fn consent(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<ConsentForm>,
) -> Response {
    let (row, _) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    let approve = form.decision == "approve";
    let Some(user_id) = row.user_id else {
        // Anyone holding the form may refuse (the chooser's Deny); approving needs a user.
        if approve {
            return see_other(&pages.interaction_path(&id));
        }
        return pages.decide(&id, pending, "", Decision::Deny).await;
    };
    let decision = match (
        approve,
        form.remember.is_some() && pending.consent_may_be_remembered(),
    ) {
        (false, _) => Decision::Deny,
        (true, false) => Decision::Approve,
        (true, true) => Decision::ApproveAndRemember,
    };
    pages.decide(&id, pending, &user_id, decision).await
}

/// What the user decided on the consent page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Decision {
    Approve,
    ApproveAndRemember,
    Deny,
}

#[derive(Deserialize)]
pub(super) struct SignOutForm {
    csrf_token: String,
}

/// `POST {base}/interaction/{id}/sign-out`: "not you?" — ends the session and shows the
/// sign-in page for the same request.
pub(super) async fn sign_out(
    State(pages): State<Arc<Pages>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    if let Err(response) = pages.load_posted(&id, &headers, &form.csrf_token).await {
        return response;
    }
    if let Err(e) = pages
        .store
        .clear_interaction_user(&SecretHash::of(&id))
        .await
    {
        return pages.server_error(&e);
    }
    let mut response = see_other(&pages.interaction_path(&id));
    pages.end_session(&headers, &mut response).await;
    response
}

/// `POST {base}/interaction/{id}/upstream/{provider}`: the user approved the request on the
/// chooser and picked `provider`. The interaction is taken (once), its request is held by
/// the federated sign-in, and the browser goes upstream with a cookie binding the callback
/// to it.
pub(super) async fn upstream(
    State(pages): State<Arc<Pages>>,
    Path((id, provider)): Path<(String, String)>,
    headers: HeaderMap,
    Form(form): Form<SignOutForm>,
) -> Response {
    let Some(federation) = pages.federation.clone() else {
        return pages.message(
            StatusCode::NOT_FOUND,
            "No identity providers",
            "This server signs users in with a password only.",
        );
    };
    let (row, _) = match pages.load_posted(&id, &headers, &form.csrf_token).await {
        Ok(loaded) => loaded,
        Err(response) => return response,
    };
    if federation.login.provider(&provider).is_none() {
        return pages.message(
            StatusCode::NOT_FOUND,
            "Unknown identity provider",
            "Go back and choose one of the providers listed.",
        );
    }
    let Ok(pending) = PendingAuthorization::restore(&row.pending) else {
        return pages.server_error(&"stored interaction does not parse");
    };
    match pages.store.take_interaction(&SecretHash::of(&id)).await {
        Ok(true) => {}
        Ok(false) => return pages.expired(),
        Err(e) => return pages.server_error(&e),
    }
    let redirect = match federation
        .login
        .begin(&provider, pending, pages.now())
        .await
    {
        Ok(redirect) => redirect,
        Err(e) => return pages.server_error(&e),
    };
    let mut response = see_other(&redirect.location);
    if let Ok(value) = axum::http::HeaderValue::from_str(&redirect.set_cookie) {
        response
            .headers_mut()
            .append(axum::http::header::SET_COOKIE, value);
    }
    pages.set_cookie(
        &mut response,
        &csrf_cookie(&id),
        "",
        &pages.interaction_path(&id),
        0,
    );
    response
}
