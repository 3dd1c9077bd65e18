//! The operator's commands (`mcpauth-server user …` and `client …`): user accounts and
//! pre-registered clients, straight on the store.

use mcpauth_oauth_types::ClientMetadata;
use mcpauth_store_sql::{SqlStore, UserRow};
use mcpauth_token_engine::{ClientRecord, RegisteredClient};

use crate::{StartError, now, users};

/// Every user, by email.
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn list_users(store: &SqlStore) -> Result<Vec<UserRow>, StartError> {
    Ok(store.list_users().await?)
}

/// The user with `email` (normalised), or [`StartError::User`] naming it.
///
/// # Errors
///
/// [`StartError::User`] for an unknown email, [`StartError::Store`].
pub async fn user_by_email(store: &SqlStore, email: &str) -> Result<UserRow, StartError> {
    let normalized = users::normalize_email(email);
    if let Ok(email) = &normalized
        && let Some(user) = store.find_user_by_email(email).await?
    {
        return Ok(user);
    }
    // Federated users may have no email of their own: they are named by their subject
    // (`user_…`) or by `provider:upstream-id`, as `user list` shows them.
    let raw = email.trim();
    if let Some(user) = store.find_user_by_id(raw).await? {
        return Ok(user);
    }
    if let Some(user) = store.find_user_by_email(raw).await? {
        return Ok(user);
    }
    // `provider:upstream-id` names every federated user, also those whose account holds an
    // email: through the link, not the email column.
    if let Some((provider, subject)) = raw.split_once(':')
        && let Some(link) = store.find_federated_identity(provider, subject).await?
        && let Some(user) = store.find_user_by_id(&link.user_id).await?
    {
        return Ok(user);
    }
    Err(StartError::User(match normalized {
        Ok(email) => users::UserError::UnknownUser(email),
        Err(bad) => bad,
    }))
}

/// Disables the user with `email`: it can no longer sign in, its sessions end and every
/// grant it made is revoked, at once.
///
/// # Errors
///
/// [`StartError::User`] for an unknown email, [`StartError::Store`].
pub async fn disable_user(store: &SqlStore, email: &str) -> Result<(), StartError> {
    disable_user_by(store, email, &Actor::command_line()).await
}

pub(crate) async fn disable_user_by(
    store: &SqlStore,
    email: &str,
    actor: &Actor,
) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    store.disable_user(&user.user_id, now()).await?;
    audited_by(
        store,
        actor,
        crate::audit::events::USER_DISABLED,
        Some(&user.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}

/// Who performs an administrator's action, as the audit trail names them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Actor {
    /// `admin` for `mcpauth-server`'s commands; the administrator's subject in the console.
    pub(crate) name: String,
    /// The console's caller address (after `trusted_proxies`); none on the command line.
    pub(crate) address: Option<std::net::IpAddr>,
}

impl Actor {
    /// `mcpauth-server`'s commands (and the functions of this module): `admin`, no address.
    pub(crate) fn command_line() -> Self {
        Self {
            name: crate::audit::ADMIN.to_owned(),
            address: None,
        }
    }
}

/// Audits one of the administrator's actions (the actor `admin`, no address).
pub(crate) async fn audited(
    store: &SqlStore,
    event: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    detail: Option<&str>,
) {
    audited_by(
        store,
        &Actor::command_line(),
        event,
        user_id,
        client_id,
        detail,
    )
    .await;
}

/// Audits one of the administrator's actions by `actor`.
pub(crate) async fn audited_by(
    store: &SqlStore,
    actor: &Actor,
    event: &str,
    user_id: Option<&str>,
    client_id: Option<&str>,
    detail: Option<&str>,
) {
    let mut record =
        crate::audit::AuditRecord::new(event, crate::audit::AuditOutcome::Success, now())
            .actor(&actor.name)
            .address(actor.address);
    if let Some(user_id) = user_id {
        record = record.user(user_id);
    }
    if let Some(client_id) = client_id {
        record = record.client(client_id);
    }
    if let Some(detail) = detail {
        record = record.detail(detail);
    }
    crate::audit::record(store, record).await;
}

/// Lets the disabled user with `email` sign in again (revoked grants stay revoked).
///
/// # Errors
///
/// [`StartError::User`] for an unknown email, [`StartError::Store`].
pub async fn enable_user(store: &SqlStore, email: &str) -> Result<(), StartError> {
    enable_user_by(store, email, &Actor::command_line()).await
}

pub(crate) async fn enable_user_by(
    store: &SqlStore,
    email: &str,
    actor: &Actor,
) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    store.enable_user(&user.user_id).await?;
    audited_by(
        store,
        actor,
        crate::audit::events::USER_ENABLED,
        Some(&user.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}

/// Sets a new password (checked against the policy) for the user with `email`, and signs it
/// out of every browser session.
///
/// # Errors
///
/// [`StartError::User`] for an unknown email or a password the policy refuses,
/// [`StartError::Store`].
pub async fn change_password(
    store: &SqlStore,
    email: &str,
    password: &str,
) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    users::check_password_policy(password, &user.email)?;
    let hash = hash_off_thread(password).await?;
    store.set_user_password(&user.user_id, &hash).await?;
    audited(
        store,
        crate::audit::events::PASSWORD_CHANGED,
        Some(&user.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}

/// argon2id takes tens of milliseconds: off the async threads.
pub(crate) async fn hash_off_thread(password: &str) -> Result<String, StartError> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || users::hash_password(&password))
        .await
        .map_err(|e| StartError::User(users::UserError::Hash(e.to_string())))?
        .map_err(StartError::User)
}

/// A client the operator registers.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct NewClient {
    /// Shown on the consent page.
    pub name: String,
    /// Redirect URIs, for the authorization code grant.
    pub redirect_uris: Vec<String>,
    /// A public client (no secret: native and browser apps, with PKCE); otherwise a
    /// confidential one authenticating with `client_secret_basic`.
    pub public: bool,
    /// A confidential client that sends its secret in the request body
    /// (`client_secret_post`) instead of HTTP Basic. Refused together with `public`.
    pub secret_in_body: bool,
    /// Grant types; empty means `authorization_code` and `refresh_token` when there are
    /// redirect URIs, `client_credentials` otherwise.
    pub grant_types: Vec<String>,
    /// The most it may ask for (space-separated); none: any scope the server supports.
    pub scope: Option<String>,
    /// A resource server (an MCP server): it may introspect tokens (RFC 7662).
    pub resource_server: bool,
}

impl NewClient {
    /// A client named `name`.
    #[must_use]
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            ..Self::default()
        }
    }
}

/// Registers a client the operator vouches for: validated like any registration (RFC 7591
/// rules for redirect URIs, grants and auth method), bounded by its `scope`, without a
/// registration access token. A confidential client's secret is in the answer, once.
///
/// # Errors
///
/// [`StartError::Client`] with the RFC 7591 reason.
pub async fn add_client(
    engine: &mcpauth_token_engine::TokenEngine<SqlStore>,
    client: NewClient,
) -> Result<RegisteredClient, StartError> {
    if client.public && client.secret_in_body {
        return Err(StartError::client(
            "a public client has no secret to send: drop secret_in_body (--client-secret-post) or public (--public)",
        ));
    }
    let mut metadata = ClientMetadata::default();
    metadata.client_name = Some(client.name);
    metadata.grant_types = if client.grant_types.is_empty() {
        if client.redirect_uris.is_empty() {
            vec!["client_credentials".into()]
        } else {
            vec!["authorization_code".into(), "refresh_token".into()]
        }
    } else {
        client.grant_types
    };
    if metadata
        .grant_types
        .iter()
        .any(|g| g == "authorization_code")
    {
        metadata.response_types = vec!["code".into()];
    }
    metadata.redirect_uris = client.redirect_uris;
    metadata.scope = client.scope;
    metadata.token_endpoint_auth_method = Some(
        if client.public {
            "none"
        } else if client.secret_in_body {
            "client_secret_post"
        } else {
            "client_secret_basic"
        }
        .into(),
    );
    let registered = engine
        .preregister_client(metadata, now())
        .await
        .map_err(|e| StartError::client_caused("registering the client failed", e))?;
    if client.resource_server {
        use mcpauth_token_engine::ClientStore as _;
        let model = engine.model();
        let mut record = model
            .find_client(&mcpauth_token_engine::ClientId::from(
                registered.client_id.as_str(),
            ))
            .await?
            .ok_or_else(|| StartError::client("the client vanished after registering"))?;
        record.resource_server = true;
        model.update_client(record).await?;
    }
    audited(
        engine.model(),
        crate::audit::events::CLIENT_ADDED,
        None,
        Some(&registered.client_id),
        client.resource_server.then_some("resource server"),
    )
    .await;
    Ok(registered)
}

/// Every registered client, oldest first (pre-registered, dynamically registered and
/// metadata-document clients alike).
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn list_clients(store: &SqlStore) -> Result<Vec<ClientRecord>, StartError> {
    Ok(store.list_clients().await?)
}

/// Removes a client and revokes every grant it holds, so its refresh tokens (and opaque
/// access tokens) stop working at once. Returns whether it existed.
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn remove_client(
    engine: &mcpauth_token_engine::TokenEngine<SqlStore>,
    client_id: &str,
) -> Result<bool, StartError> {
    remove_client_by(engine, client_id, &Actor::command_line()).await
}

pub(crate) async fn remove_client_by(
    engine: &mcpauth_token_engine::TokenEngine<SqlStore>,
    client_id: &str,
    actor: &Actor,
) -> Result<bool, StartError> {
    let removed = engine
        .remove_client(&mcpauth_token_engine::ClientId::from(client_id), now())
        .await?;
    if removed {
        audited_by(
            engine.model(),
            actor,
            crate::audit::events::CLIENT_REMOVED,
            None,
            Some(client_id),
            None,
        )
        .await;
    }
    Ok(removed)
}

/// Up to `limit` grants matching `filter` (newest first): which client holds what for whom.
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn list_grants(
    store: &SqlStore,
    filter: &mcpauth_store_sql::GrantFilter,
    limit: u32,
) -> Result<Vec<mcpauth_store_sql::GrantSummary>, StartError> {
    Ok(store.list_grants(filter, limit).await?)
}

/// Revokes the grant `grant_id`: its refresh tokens and opaque access tokens stop working,
/// and resource servers hear of it (Shared Signals). Answers whether a live grant was
/// revoked (`false` for an unknown or already revoked one, which changes nothing).
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn revoke_grant(store: &SqlStore, grant_id: &str) -> Result<bool, StartError> {
    revoke_grant_by(store, grant_id, &Actor::command_line()).await
}

pub(crate) async fn revoke_grant_by(
    store: &SqlStore,
    grant_id: &str,
    actor: &Actor,
) -> Result<bool, StartError> {
    use mcpauth_token_engine::GrantStore as _;
    let id = mcpauth_token_engine::GrantId::from(grant_id);
    let Some(grant) = store.find_grant(&id).await? else {
        return Ok(false);
    };
    if !store.revoke_live_grant(grant_id, now()).await? {
        return Ok(false);
    }
    audited_by(
        store,
        actor,
        crate::audit::events::GRANT_REVOKED,
        Some(&grant.subject),
        Some(grant.client_id.as_str()),
        Some(grant_id),
    )
    .await;
    Ok(true)
}

/// Lets the user `email` (or subject) use the admin console and its API, or no longer.
///
/// # Errors
///
/// [`StartError::User`] for an unknown user, [`StartError::Store`].
pub async fn set_admin(store: &SqlStore, email: &str, admin: bool) -> Result<(), StartError> {
    set_admin_by(store, email, admin, &Actor::command_line()).await
}

pub(crate) async fn set_admin_by(
    store: &SqlStore,
    email: &str,
    admin: bool,
    actor: &Actor,
) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    store.set_user_admin(&user.user_id, admin).await?;
    audited_by(
        store,
        actor,
        if admin {
            crate::audit::events::ADMIN_GRANTED
        } else {
            crate::audit::events::ADMIN_REVOKED
        },
        Some(&user.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}

/// The key under which wrong passwords lock `email`'s account for everyone (the sign-in
/// page's `login_lockout_account_after`).
pub(crate) fn whole_account_lock(email: &str) -> mcpauth_token_engine::SecretHash {
    // No address is "*", so this key is the account's alone (the sign-in page's).
    mcpauth_token_engine::SecretHash::of(&format!("{email}\n*"))
}

/// Ends the lock wrong passwords put on the user `email`'s account for everyone, and forgets
/// the failures counted toward it. Locks of single addresses (which only lock out the
/// address that guessed) run out by themselves.
///
/// # Errors
///
/// [`StartError::User`] for an unknown user, [`StartError::Store`].
pub async fn reset_lockout(store: &SqlStore, email: &str) -> Result<(), StartError> {
    reset_lockout_by(store, email, &Actor::command_line()).await
}

pub(crate) async fn reset_lockout_by(
    store: &SqlStore,
    email: &str,
    actor: &Actor,
) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    store
        .clear_login_failures(&whole_account_lock(&user.email))
        .await?;
    audited_by(
        store,
        actor,
        crate::audit::events::LOCKOUT_RESET,
        Some(&user.user_id),
        None,
        None,
    )
    .await;
    Ok(())
}

/// How a client came to be registered: `metadata-doc` (a Client ID Metadata Document),
/// `self-registered` (RFC 7591), `resource-server` or `pre-registered` (by the operator).
#[must_use]
pub fn client_kind(client: &ClientRecord) -> &'static str {
    if client.document_expires_at.is_some() {
        "metadata-doc"
    } else if client.is_self_registered() {
        "self-registered"
    } else if client.resource_server {
        "resource-server"
    } else {
        "pre-registered"
    }
}

/// Removes the user `email` (or subject, or `provider:upstream-id`): signed out, every grant
/// revoked (resource servers hear it), remembered consent and upstream links deleted, then
/// the account. The audit trail keeps its subject. A federated user who signs in upstream
/// again gets a new account: [`disable_user`] keeps someone out.
///
/// # Errors
///
/// [`StartError::User`] for an unknown user, [`StartError::Store`].
pub async fn remove_user(store: &SqlStore, email: &str) -> Result<(), StartError> {
    let user = user_by_email(store, email).await?;
    if store.remove_user(&user.user_id, now()).await? {
        audited(
            store,
            crate::audit::events::USER_REMOVED,
            Some(&user.user_id),
            None,
            None,
        )
        .await;
    }
    Ok(())
}
