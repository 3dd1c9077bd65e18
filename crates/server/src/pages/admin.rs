//! `{base}/admin`: the admin console (issue 27), for users the operator marked as
//! administrators (`mcpauth-server user add --admin`, `user grant-admin`). Server-rendered
//! pages without JavaScript, under the same headers as every page (CSP, no framing, no
//! caching): users (disable, enable, end a lockout, their grants), clients (remove), grants
//! (who holds what, since when, last refreshed; revoke), signing keys (rotate) and the audit
//! trail (filtered by user, client, address, event).
//!
//! `{base}/admin/api/…` is the same as JSON, with the same authorization. The console's pages
//! and the API read and act through the same functions ([`Console`]), so what one shows the
//! other answers.
//!
//! Authorization: a browser session of an enabled administrator. Anyone else gets `403` on
//! every route (a browser without a session gets the sign-in form on the pages it opens).
//! Every action is a POST carrying the form CSRF token (a hidden field on the pages, the
//! `X-CSRF-Token` header on the API: a cross-site form cannot set a header) and is audited
//! with the administrator as actor and their address.

use std::sync::Arc;

use askama::Template;
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mcpauth_store_sql::{AuditFilter, GrantFilter};
use mcpauth_token_engine::ClientStore as _;
use serde::{Deserialize, Serialize};

use super::sign_in::{Next, Peer, peer_ip, sign_in_page};
use super::{Pages, SessionBar, SignedIn, page, see_other};
use crate::StartError;
use crate::admin::{self, Actor};

/// The header that carries the form CSRF token on the API's POSTs.
const CSRF_HEADER: &str = "x-csrf-token";

/// Every console and API route, below `base`.
pub(super) fn routes(base: &str) -> Router<Arc<Pages>> {
    let at = |path: &str| format!("{base}/admin{path}");
    Router::new()
        .route(&at(""), get(home))
        .route(&at("/users"), get(users_page))
        .route(&at("/clients"), get(clients_page))
        .route(&at("/grants"), get(grants_page))
        .route(&at("/keys"), get(keys_page))
        .route(&at("/audit"), get(audit_page))
        .route(&at("/{section}/{action}"), post(console_post))
        .route(&at("/api/{list}"), get(api_read))
        .route(
            &at("/api/users/{user_id}/consents/{client_id}/withdraw"),
            post(api_withdraw_consent),
        )
        .route(&at("/api/users/{user_id}/{action}"), post(api_user_action))
        .route(&at("/api/grants/{grant_id}/revoke"), post(api_revoke_grant))
        .route(
            &at("/api/clients/{client_id}/remove"),
            post(api_remove_client),
        )
        .route(&at("/api/keys/rotate"), post(api_rotate_key))
        // The console's forms and the API's bodies are a few fields.
        .layer(DefaultBodyLimit::max(16 * 1024))
}

// ---------------------------------------------------------------------------------------
// What the console shows and does, for the pages and the API alike.

/// A user as the console lists it.
#[derive(Serialize)]
struct UserLine {
    user_id: String,
    email: String,
    disabled: bool,
    admin: bool,
    created_at: u64,
    /// Until when wrong passwords locked the account for everyone, if they do now.
    locked_until: Option<u64>,
}

/// A client as the console lists it.
#[derive(Serialize)]
struct ClientLine {
    client_id: String,
    name: Option<String>,
    kind: &'static str,
    grant_types: Vec<String>,
    /// When it last got tokens, as far as the audit trail remembers.
    last_issued_at: Option<u64>,
}

/// A grant as the console lists it.
#[derive(Serialize)]
struct GrantLine {
    grant_id: String,
    user_id: String,
    /// The user's email, when the user exists.
    email: Option<String>,
    client_id: String,
    client_name: Option<String>,
    scope: String,
    resources: Vec<String>,
    created_at: u64,
    last_refreshed_at: Option<u64>,
    revoked_at: Option<u64>,
}

/// A remembered approval (the consent page is skipped for it) as the console lists it.
#[derive(Serialize)]
struct ConsentLine {
    client_id: String,
    client_name: Option<String>,
    /// Per resource, the scope approved.
    approvals: Vec<ApprovalLine>,
    created_at: u64,
    updated_at: u64,
}

/// What a remembered approval covers at one resource.
#[derive(Serialize)]
struct ApprovalLine {
    resource: String,
    scope: String,
}

/// A signing key as the console lists it.
#[derive(Serialize)]
struct KeyLine {
    kid: String,
    algorithm: String,
    /// `next`, `signing` or `retired`.
    state: &'static str,
    created_at: u64,
}

/// An audit record as the console lists it.
#[derive(Serialize)]
struct AuditLine {
    id: i64,
    time: u64,
    event: String,
    outcome: &'static str,
    user: Option<String>,
    client: Option<String>,
    address: Option<String>,
    actor: Option<String>,
    detail: Option<String>,
    repeated: u64,
}

/// The fields of a form or query string (the first of each name), read only once the caller
/// is known to be an administrator: nobody else learns how a request is read.
fn fields(raw: Option<&[u8]>) -> std::collections::HashMap<String, String> {
    let mut fields = std::collections::HashMap::new();
    for (name, value) in url::form_urlencoded::parse(raw.unwrap_or_default()) {
        fields
            .entry(name.into_owned())
            .or_insert_with(|| value.into_owned());
    }
    fields
}

/// The grants list's filter, as the page's query and the API's take it.
#[derive(Default)]
struct GrantQuery {
    /// A user's email, subject or `provider:upstream-id`.
    user: Option<String>,
    client: Option<String>,
    /// `1`, `true` or `on`: revoked grants too.
    all: Option<String>,
}

impl GrantQuery {
    fn read(raw: Option<&str>) -> Self {
        let mut fields = fields(raw.map(str::as_bytes));
        Self {
            user: fields.remove("user"),
            client: fields.remove("client"),
            all: fields.remove("all"),
        }
    }

    fn include_revoked(&self) -> bool {
        self.all
            .as_deref()
            .is_some_and(|v| matches!(v, "1" | "true" | "on"))
    }
}

/// The audit trail's filter.
#[derive(Default)]
struct AuditQuery {
    user: Option<String>,
    client: Option<String>,
    address: Option<String>,
    event: Option<String>,
    before: Option<i64>,
}

impl AuditQuery {
    /// The filter; an error when `before` is not a record number.
    fn read(raw: Option<&str>) -> Result<Self, &'static str> {
        let mut fields = fields(raw.map(str::as_bytes));
        let before = match fields.remove("before").filter(|v| !v.is_empty()) {
            Some(before) => Some(
                before
                    .parse()
                    .map_err(|_| "before must be a record number (the # of the last one seen)")?,
            ),
            None => None,
        };
        Ok(Self {
            user: fields.remove("user"),
            client: fields.remove("client"),
            address: fields.remove("address"),
            event: fields.remove("event"),
            before,
        })
    }
}

/// An empty query field is no filter (a submitted blank input).
fn given(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

/// The console's reads and actions, for one request of the administrator `actor`.
struct Console<'a> {
    pages: &'a Pages,
    actor: Actor,
}

impl Console<'_> {
    async fn users(&self) -> Result<Vec<UserLine>, StartError> {
        let now = self.pages.now();
        let mut lines = Vec::new();
        for user in admin::list_users(&self.pages.store).await? {
            let locked_until = self
                .pages
                .store
                .login_locked_until(&admin::whole_account_lock(&user.email), now)
                .await?;
            lines.push(UserLine {
                user_id: user.user_id,
                email: user.email,
                disabled: user.disabled,
                admin: user.admin,
                created_at: user.created_at,
                locked_until,
            });
        }
        Ok(lines)
    }

    async fn clients(&self) -> Result<Vec<ClientLine>, StartError> {
        let mut lines = Vec::new();
        for client in admin::list_clients(&self.pages.store).await? {
            let last_issued_at = self
                .pages
                .store
                .client_last_issued(client.client_id.as_str())
                .await?;
            lines.push(ClientLine {
                client_id: client.client_id.as_str().to_owned(),
                name: client.metadata.client_name.clone(),
                kind: admin::client_kind(&client),
                grant_types: client.metadata.grant_types.clone(),
                last_issued_at,
            });
        }
        Ok(lines)
    }

    async fn grants(&self, query: &GrantQuery) -> Result<Vec<GrantLine>, StartError> {
        let store = &self.pages.store;
        let mut filter = GrantFilter::default();
        filter.subject = match given(query.user.as_ref()) {
            Some(user) => Some(admin::user_by_email(store, &user).await?.user_id),
            None => None,
        };
        filter.client_id = given(query.client.as_ref());
        filter.include_revoked = query.include_revoked();
        let mut lines = Vec::new();
        // Each user and client looked up once, however many grants name them.
        let mut emails: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        let mut names: std::collections::HashMap<String, Option<String>> =
            std::collections::HashMap::new();
        for grant in admin::list_grants(store, &filter, 500).await? {
            let email = match emails.get(&grant.subject) {
                Some(email) => email.clone(),
                None => {
                    let email = store
                        .find_user_by_id(&grant.subject)
                        .await?
                        .map(|u| u.email);
                    emails.insert(grant.subject.clone(), email.clone());
                    email
                }
            };
            let client_name = match names.get(&grant.client_id) {
                Some(name) => name.clone(),
                None => {
                    let name = store
                        .find_client(&mcpauth_token_engine::ClientId::from(
                            grant.client_id.as_str(),
                        ))
                        .await
                        .map_err(StartError::from)?
                        .and_then(|c| c.metadata.client_name);
                    names.insert(grant.client_id.clone(), name.clone());
                    name
                }
            };
            lines.push(GrantLine {
                grant_id: grant.grant_id,
                user_id: grant.subject,
                email,
                client_id: grant.client_id,
                client_name,
                scope: grant.scope,
                resources: grant.resources,
                created_at: grant.created_at,
                last_refreshed_at: grant.last_refreshed_at,
                revoked_at: grant.revoked_at,
            });
        }
        Ok(lines)
    }

    /// The user's remembered approvals.
    async fn consents(&self, user: &str) -> Result<(String, Vec<ConsentLine>), StartError> {
        let store = &self.pages.store;
        let user = admin::user_by_email(store, user).await?;
        let mut lines = Vec::new();
        for row in store.list_consents(&user.user_id).await? {
            let client_name = store
                .find_client(&mcpauth_token_engine::ClientId::from(
                    row.client_id.as_str(),
                ))
                .await
                .map_err(StartError::from)?
                .and_then(|c| c.metadata.client_name);
            lines.push(ConsentLine {
                client_id: row.client_id,
                client_name,
                approvals: row
                    .approvals
                    .into_iter()
                    .map(|a| ApprovalLine {
                        resource: a.resource,
                        scope: a.scope,
                    })
                    .collect(),
                created_at: row.created_at,
                updated_at: row.updated_at,
            });
        }
        Ok((user.user_id, lines))
    }

    /// Forgets the user's remembered approval of `client_id` and revokes the grants it holds
    /// for them, as the user's own Withdraw on `/account` does.
    async fn withdraw_consent(&self, user: &str, client_id: &str) -> Result<(), ActionError> {
        let store = &self.pages.store;
        let user = admin::user_by_email(store, user)
            .await
            .map_err(|_| ActionError::NotFound("no such user"))?;
        if !store
            .revoke_consent(&user.user_id, client_id, self.pages.now())
            .await
            .map_err(StartError::from)?
        {
            return Err(ActionError::NotFound(
                "this user has no remembered approval for this client",
            ));
        }
        admin::audited_by(
            store,
            &self.actor,
            crate::audit::events::CONSENT_WITHDRAWN,
            Some(&user.user_id),
            Some(client_id),
            Some("by an administrator"),
        )
        .await;
        Ok(())
    }

    async fn keys(&self) -> Result<Vec<KeyLine>, StartError> {
        Ok(self
            .pages
            .keys
            .list()
            .await?
            .into_iter()
            .map(|(row, state)| KeyLine {
                kid: row.kid,
                algorithm: row.algorithm,
                state: match state {
                    crate::keys::KeyState::Next => "next",
                    crate::keys::KeyState::Signing => "signing",
                    crate::keys::KeyState::Retired => "retired",
                },
                created_at: row.created_at,
            })
            .collect())
    }

    async fn audit(&self, query: &AuditQuery) -> Result<Vec<AuditLine>, StartError> {
        let store = &self.pages.store;
        let mut filter = AuditFilter::default();
        filter.user_id = match given(query.user.as_ref()) {
            // An email (or an upstream identity), else a subject identifier as given.
            Some(user) => match admin::user_by_email(store, &user).await {
                Ok(found) => Some(found.user_id),
                // Not a user (any more): a subject as recorded.
                Err(StartError::User(_)) => Some(user),
                Err(e) => return Err(e),
            },
            None => None,
        };
        filter.client_id = given(query.client.as_ref());
        filter.address = given(query.address.as_ref()).map(|address| {
            address
                .parse::<std::net::IpAddr>()
                .map_or(address, |a| a.to_canonical().to_string())
        });
        filter.event = given(query.event.as_ref());
        filter.before = query.before;
        Ok(store
            .audit_events(&filter, 200)
            .await?
            .into_iter()
            .map(|entry| {
                let r = entry.record;
                AuditLine {
                    id: entry.audit_id,
                    time: r.occurred_at,
                    event: r.event,
                    outcome: r.outcome.as_str(),
                    user: r.user_id,
                    client: r.client_id,
                    address: r.address,
                    actor: r.actor,
                    detail: r.detail,
                    repeated: r.repeated,
                }
            })
            .collect())
    }

    /// Disables, enables or unlocks the user `user_id`, or makes them an administrator or
    /// not. An administrator cannot disable themselves or take their own rights away (the
    /// console would lock its last user out).
    async fn user_action(&self, user_id: &str, action: &str) -> Result<(), ActionError> {
        let store = &self.pages.store;
        let user = admin::user_by_email(store, user_id)
            .await
            .map_err(|_| ActionError::NotFound("no such user"))?;
        let myself = self.actor.name == user.user_id;
        match action {
            "disable" if myself => Err(ActionError::Refused(
                "you cannot disable your own account here",
            )),
            "revoke-admin" if myself => Err(ActionError::Refused(
                "you cannot take your own administrator rights away here",
            )),
            "disable" => Ok(admin::disable_user_by(store, &user.user_id, &self.actor).await?),
            "enable" => Ok(admin::enable_user_by(store, &user.user_id, &self.actor).await?),
            "unlock" => Ok(admin::reset_lockout_by(store, &user.user_id, &self.actor).await?),
            "grant-admin" => {
                Ok(admin::set_admin_by(store, &user.user_id, true, &self.actor).await?)
            }
            "revoke-admin" => {
                Ok(admin::set_admin_by(store, &user.user_id, false, &self.actor).await?)
            }
            _ => Err(ActionError::NotFound("no such action")),
        }
    }

    async fn revoke_grant(&self, grant_id: &str) -> Result<(), ActionError> {
        if admin::revoke_grant_by(&self.pages.store, grant_id, &self.actor).await? {
            Ok(())
        } else {
            Err(ActionError::NotFound("no live grant has this id"))
        }
    }

    async fn remove_client(&self, client_id: &str) -> Result<(), ActionError> {
        if admin::remove_client_by(&self.pages.engine, client_id, &self.actor).await? {
            Ok(())
        } else {
            Err(ActionError::NotFound("no client has this id"))
        }
    }

    async fn rotate_key(&self, algorithm: Option<&str>) -> Result<String, ActionError> {
        let algorithm = algorithm.unwrap_or("ES256");
        if !matches!(algorithm, "ES256" | "EdDSA") {
            return Err(ActionError::Refused("algorithm must be ES256 or EdDSA"));
        }
        Ok(self.pages.keys.rotate(algorithm, &self.actor).await?)
    }
}

/// Why an action was not done.
enum ActionError {
    /// What it names does not exist (`404`).
    NotFound(&'static str),
    /// It is not allowed (`409`).
    Refused(&'static str),
    /// The form lacks this field (`400`).
    Missing(&'static str),
    /// Storage or keys failed (`500`, logged).
    Failed(StartError),
}

impl From<StartError> for ActionError {
    fn from(e: StartError) -> Self {
        Self::Failed(e)
    }
}

// ---------------------------------------------------------------------------------------
// Authorization.

/// Who asked, if an administrator.
enum Caller {
    Administrator(SignedIn, Actor),
    /// Signed in, not an administrator.
    NotAdministrator,
    /// No live session.
    Anonymous,
}

async fn caller(pages: &Pages, headers: &HeaderMap, peer: Peer) -> Caller {
    match pages.session_user(headers).await {
        Some(user) if user.admin => {
            let actor = Actor {
                name: user.id.clone(),
                address: peer_ip(peer),
            };
            Caller::Administrator(user, actor)
        }
        Some(_) => Caller::NotAdministrator,
        None => Caller::Anonymous,
    }
}

fn forbidden_page(pages: &Pages) -> Response {
    pages.message(
        StatusCode::FORBIDDEN,
        "Administrators only",
        "This account is not an administrator of this server. An operator makes one with `mcpauth-server user grant-admin EMAIL`.",
    )
}

fn api_error(status: StatusCode, error: &str, description: &str) -> Response {
    (
        status,
        [(header::CACHE_CONTROL, "no-store")],
        Json(serde_json::json!({ "error": error, "error_description": description })),
    )
        .into_response()
}

fn api_forbidden() -> Response {
    api_error(
        StatusCode::FORBIDDEN,
        "forbidden",
        "sign in as an administrator of this server (a browser session of a user marked with `mcpauth-server user grant-admin`)",
    )
}

fn api_json(value: &impl Serialize) -> Response {
    (
        StatusCode::OK,
        [(header::CACHE_CONTROL, "no-store")],
        Json(value),
    )
        .into_response()
}

fn api_failure(e: &ActionError) -> Response {
    match e {
        ActionError::NotFound(why) => api_error(StatusCode::NOT_FOUND, "not_found", why),
        ActionError::Refused(why) => api_error(StatusCode::CONFLICT, "refused", why),
        ActionError::Missing(field) => api_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            &format!("{field} is missing"),
        ),
        ActionError::Failed(e) => {
            tracing::error!(error = %crate::said(e), "an admin action failed");
            api_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "server_error",
                "the action failed; see the server's log",
            )
        }
    }
}

// ---------------------------------------------------------------------------------------
// The pages.

/// The navigation and session bar of every console page.
struct Frame<'a> {
    base: &'a str,
    /// Which page is shown: `users`, `clients`, `grants`, `keys`, `audit`.
    current: &'static str,
    csrf_token: &'a str,
}

#[derive(Template)]
#[template(path = "admin_users.html")]
struct UsersPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    frame: Frame<'a>,
    users: Vec<UserLine>,
    me: &'a str,
}

#[derive(Template)]
#[template(path = "admin_clients.html")]
struct ClientsPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    frame: Frame<'a>,
    clients: Vec<ClientLine>,
}

#[derive(Template)]
#[template(path = "admin_grants.html")]
struct GrantsPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    frame: Frame<'a>,
    grants: Vec<GrantLine>,
    /// With a user filter: the user's subject and remembered approvals.
    consents: Option<(String, Vec<ConsentLine>)>,
    user: String,
    client: String,
    all: bool,
}

#[derive(Template)]
#[template(path = "admin_keys.html")]
struct KeysPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    frame: Frame<'a>,
    keys: Vec<KeyLine>,
}

#[derive(Template)]
#[template(path = "admin_audit.html")]
struct AuditPage<'a> {
    base: &'a str,
    signed_in: SessionBar<'a>,
    frame: Frame<'a>,
    entries: Vec<AuditLine>,
    query: AuditQuery,
    /// The link to the next (older) page, when this one is full.
    older: Option<String>,
}

impl UserLine {
    fn created(&self) -> String {
        when(&self.created_at)
    }
    fn locked(&self) -> String {
        self.locked_until.as_ref().map(when).unwrap_or_default()
    }
}

impl ClientLine {
    fn last_issued(&self) -> String {
        self.last_issued_at
            .as_ref()
            .map_or_else(|| "not recorded".to_owned(), when)
    }
}

impl GrantLine {
    fn given(&self) -> String {
        when(&self.created_at)
    }
    fn refreshed(&self) -> String {
        self.last_refreshed_at.as_ref().map_or_else(
            || "no refresh token".to_owned(),
            |at| format!("refreshed {}", when(at)),
        )
    }
    fn revoked(&self) -> String {
        self.revoked_at.as_ref().map(when).unwrap_or_default()
    }
}

impl ConsentLine {
    fn since(&self) -> String {
        when(&self.created_at)
    }
}

impl KeyLine {
    fn created(&self) -> String {
        when(&self.created_at)
    }
}

impl AuditLine {
    fn at(&self) -> String {
        when(&self.time)
    }
}

/// `2026-12-06 04:12` (UTC) for Unix seconds.
fn when(unix: &u64) -> String {
    i64::try_from(*unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(
            || unix.to_string(),
            |t| format!("{} {:02}:{:02}", t.date(), t.hour(), t.minute()),
        )
}

/// Shows the console page `render` makes for an administrator; the sign-in form for a
/// browser without a session; `403` for anyone else.
async fn console_page<F, Fut>(
    pages: Arc<Pages>,
    headers: HeaderMap,
    peer: Peer,
    render: F,
) -> Response
where
    F: FnOnce(Arc<Pages>, SignedIn, Actor, String) -> Fut,
    Fut: std::future::Future<Output = Response>,
{
    let Some((csrf, new)) = pages.form_csrf(&headers) else {
        return pages.server_error(&"no randomness");
    };
    let response = match caller(&pages, &headers, peer).await {
        Caller::Administrator(user, actor) => {
            render(pages.clone(), user, actor, csrf.clone()).await
        }
        Caller::NotAdministrator => forbidden_page(&pages),
        Caller::Anonymous => {
            sign_in_page(&pages, StatusCode::OK, &csrf, Next::Admin, None, "", None)
        }
    };
    pages.with_form_csrf(response, &csrf, new)
}

fn frame<'a>(pages: &'a Pages, current: &'static str, csrf: &'a str) -> Frame<'a> {
    Frame {
        base: &pages.base,
        current,
        csrf_token: csrf,
    }
}

/// `GET {base}/admin`: the users page.
async fn home(State(pages): State<Arc<Pages>>) -> Response {
    see_other(&format!("{}/admin/users", pages.base))
}

async fn users_page(State(pages): State<Arc<Pages>>, peer: Peer, headers: HeaderMap) -> Response {
    console_page(
        pages,
        headers,
        peer,
        |pages, user, actor, csrf| async move {
            let console = Console {
                pages: &pages,
                actor,
            };
            match console.users().await {
                Ok(users) => page(
                    StatusCode::OK,
                    UsersPage {
                        base: &pages.base,
                        signed_in: pages.session_bar(&user.email, &csrf),
                        frame: frame(&pages, "users", &csrf),
                        users,
                        me: &user.id,
                    }
                    .render(),
                ),
                Err(e) => pages.server_error(&crate::said(&e)),
            }
        },
    )
    .await
}

async fn clients_page(State(pages): State<Arc<Pages>>, peer: Peer, headers: HeaderMap) -> Response {
    console_page(
        pages,
        headers,
        peer,
        |pages, user, actor, csrf| async move {
            let console = Console {
                pages: &pages,
                actor,
            };
            match console.clients().await {
                Ok(clients) => page(
                    StatusCode::OK,
                    ClientsPage {
                        base: &pages.base,
                        signed_in: pages.session_bar(&user.email, &csrf),
                        frame: frame(&pages, "clients", &csrf),
                        clients,
                    }
                    .render(),
                ),
                Err(e) => pages.server_error(&crate::said(&e)),
            }
        },
    )
    .await
}

async fn grants_page(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let query = GrantQuery::read(query.as_deref());
    console_page(
        pages,
        headers,
        peer,
        |pages, user, actor, csrf| async move {
            let console = Console {
                pages: &pages,
                actor,
            };
            let consents = match given(query.user.as_ref()) {
                Some(user) => match console.consents(&user).await {
                    Ok(consents) => Some(consents),
                    Err(StartError::User(e)) => {
                        return pages.message(
                            StatusCode::NOT_FOUND,
                            "No such user",
                            &e.to_string(),
                        );
                    }
                    Err(e) => return pages.server_error(&crate::said(&e)),
                },
                None => None,
            };
            match console.grants(&query).await {
                Ok(grants) => page(
                    StatusCode::OK,
                    GrantsPage {
                        base: &pages.base,
                        signed_in: pages.session_bar(&user.email, &csrf),
                        frame: frame(&pages, "grants", &csrf),
                        grants,
                        consents,
                        user: query.user.clone().unwrap_or_default(),
                        client: query.client.clone().unwrap_or_default(),
                        all: query.include_revoked(),
                    }
                    .render(),
                ),
                Err(StartError::User(e)) => {
                    pages.message(StatusCode::NOT_FOUND, "No such user", &e.to_string())
                }
                Err(e) => pages.server_error(&crate::said(&e)),
            }
        },
    )
    .await
}

async fn keys_page(State(pages): State<Arc<Pages>>, peer: Peer, headers: HeaderMap) -> Response {
    console_page(
        pages,
        headers,
        peer,
        |pages, user, actor, csrf| async move {
            let console = Console {
                pages: &pages,
                actor,
            };
            match console.keys().await {
                Ok(keys) => page(
                    StatusCode::OK,
                    KeysPage {
                        base: &pages.base,
                        signed_in: pages.session_bar(&user.email, &csrf),
                        frame: frame(&pages, "keys", &csrf),
                        keys,
                    }
                    .render(),
                ),
                Err(e) => pages.server_error(&crate::said(&e)),
            }
        },
    )
    .await
}

async fn audit_page(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(raw): RawQuery,
) -> Response {
    console_page(
        pages,
        headers,
        peer,
        |pages, user, actor, csrf| async move {
            let query = match AuditQuery::read(raw.as_deref()) {
                Ok(query) => query,
                Err(why) => {
                    return pages.message(StatusCode::BAD_REQUEST, "Not a valid filter", why);
                }
            };
            let console = Console {
                pages: &pages,
                actor,
            };
            match console.audit(&query).await {
                Ok(entries) => {
                    let older = (entries.len() == 200)
                        .then(|| entries.last().map(|e| e.id))
                        .flatten()
                        .map(|last| {
                            let mut link = url::form_urlencoded::Serializer::new(String::new());
                            for (name, value) in [
                                ("user", &query.user),
                                ("client", &query.client),
                                ("address", &query.address),
                                ("event", &query.event),
                            ] {
                                if let Some(value) = value {
                                    link.append_pair(name, value);
                                }
                            }
                            link.append_pair("before", &last.to_string());
                            format!("{}/admin/audit?{}", pages.base, link.finish())
                        });
                    page(
                        StatusCode::OK,
                        AuditPage {
                            base: &pages.base,
                            signed_in: pages.session_bar(&user.email, &csrf),
                            frame: frame(&pages, "audit", &csrf),
                            entries,
                            query,
                            older,
                        }
                        .render(),
                    )
                }
                Err(e) => pages.server_error(&crate::said(&e)),
            }
        },
    )
    .await
}

/// Runs a console form's action for an administrator whose form token matches, then returns
/// to `back`; `403` for anyone else or a forged token. The form is read only then.
async fn console_action<F, Fut>(
    pages: Arc<Pages>,
    headers: HeaderMap,
    peer: Peer,
    form: &[u8],
    back: String,
    act: F,
) -> Response
where
    F: FnOnce(Arc<Pages>, Actor, std::collections::HashMap<String, String>) -> Fut,
    Fut: std::future::Future<Output = Result<(), ActionError>>,
{
    let actor = match caller(&pages, &headers, peer).await {
        Caller::Administrator(_, actor) => actor,
        Caller::NotAdministrator | Caller::Anonymous => return forbidden_page(&pages),
    };
    let mut fields = fields(Some(form));
    let token = fields.remove("csrf_token").unwrap_or_default();
    if !pages.form_csrf_matches(&headers, &token) {
        return pages.form_expired();
    }
    match act(pages.clone(), actor, fields).await {
        Ok(()) => see_other(&back),
        Err(ActionError::NotFound(why)) => pages.message(StatusCode::NOT_FOUND, "Not found", why),
        Err(ActionError::Refused(why)) => pages.message(StatusCode::CONFLICT, "Not done", why),
        Err(ActionError::Missing(field)) => pages.message(
            StatusCode::BAD_REQUEST,
            "Incomplete form",
            &format!("the form has no {field}"),
        ),
        Err(ActionError::Failed(e)) => pages.server_error(&crate::said(&e)),
    }
}

/// A field the form must have.
fn required(
    fields: &mut std::collections::HashMap<String, String>,
    name: &'static str,
) -> Result<String, ActionError> {
    fields
        .remove(name)
        .filter(|v| !v.is_empty())
        .ok_or(ActionError::Missing(name))
}

/// `POST {base}/admin/{section}/{action}`: every form of the console, back to its page.
///
/// - `users/{disable,enable,unlock,grant-admin,revoke-admin}`, with `user_id`;
/// - `grants/revoke`, with `grant_id`;
/// - `consents/withdraw`, with `user_id` and `client_id` (back to the grants page);
/// - `clients/remove`, with `client_id`;
/// - `keys/rotate`, with `algorithm` (`ES256` when absent).
async fn console_post(
    State(pages): State<Arc<Pages>>,
    Path((section, action)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
    form: axum::body::Bytes,
) -> Response {
    let page = if section == "consents" {
        "grants"
    } else {
        section.as_str()
    };
    let back = format!("{}/admin/{page}", pages.base);
    console_action(
        pages,
        headers,
        peer,
        &form,
        back,
        |pages, actor, mut fields| async move {
            let console = Console {
                pages: &pages,
                actor,
            };
            match (section.as_str(), action.as_str()) {
                ("users", action) => {
                    let user_id = required(&mut fields, "user_id")?;
                    console.user_action(&user_id, action).await
                }
                ("grants", "revoke") => {
                    let grant_id = required(&mut fields, "grant_id")?;
                    console.revoke_grant(&grant_id).await
                }
                ("consents", "withdraw") => {
                    let user_id = required(&mut fields, "user_id")?;
                    let client_id = required(&mut fields, "client_id")?;
                    console.withdraw_consent(&user_id, &client_id).await
                }
                ("clients", "remove") => {
                    let client_id = required(&mut fields, "client_id")?;
                    console.remove_client(&client_id).await
                }
                ("keys", "rotate") => console
                    .rotate_key(fields.remove("algorithm").as_deref())
                    .await
                    .map(|_| ()),
                _ => Err(ActionError::NotFound("no such action")),
            }
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------
// The JSON API.

/// The administrator of an API request; for a POST, only with the form CSRF token in
/// `X-CSRF-Token`.
async fn api_caller<'a>(
    pages: &'a Pages,
    headers: &HeaderMap,
    peer: Peer,
    post: bool,
) -> Result<Console<'a>, Response> {
    if post {
        let token = headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if token.is_empty() || !pages.form_csrf_matches(headers, token) {
            return Err(api_error(
                StatusCode::FORBIDDEN,
                "invalid_csrf_token",
                "send the form CSRF cookie's value in the X-CSRF-Token header",
            ));
        }
    }
    match caller(pages, headers, peer).await {
        Caller::Administrator(_, actor) => Ok(Console { pages, actor }),
        Caller::NotAdministrator | Caller::Anonymous => Err(api_forbidden()),
    }
}

/// `GET {base}/admin/api/{users,clients,grants,keys,audit,consents}`: the console's lists as
/// JSON (`grants`: `?user=&client=&all=1`; `audit`: `?user=&client=&address=&event=&before=`;
/// `consents`: `?user=`).
async fn api_read(
    State(pages): State<Arc<Pages>>,
    Path(list): Path<String>,
    peer: Peer,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Response {
    let console = match api_caller(&pages, &headers, peer, false).await {
        Ok(console) => console,
        Err(refused) => return refused,
    };
    fn answer<T: Serialize>(read: Result<T, StartError>) -> Response {
        match read {
            Ok(value) => api_json(&value),
            Err(StartError::User(e)) => {
                api_error(StatusCode::NOT_FOUND, "not_found", &e.to_string())
            }
            Err(e) => api_failure(&ActionError::Failed(e)),
        }
    }
    let query = query.as_deref();
    match list.as_str() {
        "users" => answer(console.users().await),
        "clients" => answer(console.clients().await),
        "grants" => answer(console.grants(&GrantQuery::read(query)).await),
        "keys" => answer(console.keys().await),
        "audit" => match AuditQuery::read(query) {
            Ok(filter) => answer(console.audit(&filter).await),
            Err(why) => api_error(StatusCode::BAD_REQUEST, "invalid_request", why),
        },
        "consents" => match fields(query.map(str::as_bytes))
            .remove("user")
            .filter(|u| !u.is_empty())
        {
            Some(user) => answer(console.consents(&user).await.map(|(_, lines)| lines)),
            None => api_error(
                StatusCode::BAD_REQUEST,
                "invalid_request",
                "name the user: ?user=EMAIL or subject",
            ),
        },
        _ => api_error(StatusCode::NOT_FOUND, "not_found", "no such list"),
    }
}

/// The answer of an API action that was done.
fn done(what: &str) -> Response {
    api_json(&serde_json::json!({ "done": what }))
}

async fn api_withdraw_consent(
    State(pages): State<Arc<Pages>>,
    Path((user_id, client_id)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    match api_caller(&pages, &headers, peer, true).await {
        Ok(console) => match console.withdraw_consent(&user_id, &client_id).await {
            Ok(()) => done("withdrawn"),
            Err(e) => api_failure(&e),
        },
        Err(refused) => refused,
    }
}

async fn api_user_action(
    State(pages): State<Arc<Pages>>,
    Path((user_id, action)): Path<(String, String)>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    match api_caller(&pages, &headers, peer, true).await {
        Ok(console) => match console.user_action(&user_id, &action).await {
            Ok(()) => done(&action),
            Err(e) => api_failure(&e),
        },
        Err(refused) => refused,
    }
}

async fn api_revoke_grant(
    State(pages): State<Arc<Pages>>,
    Path(grant_id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    match api_caller(&pages, &headers, peer, true).await {
        Ok(console) => match console.revoke_grant(&grant_id).await {
            Ok(()) => done("revoked"),
            Err(e) => api_failure(&e),
        },
        Err(refused) => refused,
    }
}

async fn api_remove_client(
    State(pages): State<Arc<Pages>>,
    Path(client_id): Path<String>,
    peer: Peer,
    headers: HeaderMap,
) -> Response {
    match api_caller(&pages, &headers, peer, true).await {
        Ok(console) => match console.remove_client(&client_id).await {
            Ok(()) => done("removed"),
            Err(e) => api_failure(&e),
        },
        Err(refused) => refused,
    }
}

#[derive(Deserialize, Default)]
struct RotateRequest {
    algorithm: Option<String>,
}

async fn api_rotate_key(
    State(pages): State<Arc<Pages>>,
    peer: Peer,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    // Who asks first: nobody else learns anything from how their body is read.
    let console = match api_caller(&pages, &headers, peer, true).await {
        Ok(console) => console,
        Err(refused) => return refused,
    };
    let request: RotateRequest = if body.is_empty() {
        RotateRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(e) => {
                return api_error(
                    StatusCode::BAD_REQUEST,
                    "invalid_request",
                    &format!("the body must be JSON like {{\"algorithm\": \"ES256\"}}: {e}"),
                );
            }
        }
    };
    match console.rotate_key(request.algorithm.as_deref()).await {
        Ok(kid) => api_json(&serde_json::json!({ "done": "rotated", "kid": kid })),
        Err(e) => api_failure(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc() {
        assert_eq!(when(&0), "1970-01-01 00:00");
        assert_eq!(when(&1_796_531_497), "2026-12-06 04:31");
        assert_eq!(when(&951_825_600), "2000-02-29 12:00");
    }
}
