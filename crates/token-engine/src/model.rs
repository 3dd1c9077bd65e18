//! The storage trait, split per concern (fosite style): what a database must do, not how the
//! protocol works.
//!
//! Every state change that must be atomic is one call, so races are decided by the store:
//! [`CodeStore::consume_code`] and [`RefreshTokenStore::rotate_refresh`]. Secrets arrive
//! already hashed ([`crate::secret_hash`]); a model never sees a raw code, token or client
//! secret. Times are absolute [`UnixTime`]s.
//!
//! Run [`crate::testing`] (feature `testing`) against your own model.

use async_trait::async_trait;
use mcpauth_oauth_types::{ClientMetadata, GrantType, Scope};
use serde::{Deserialize, Serialize};

use crate::UnixTime;
pub use crate::hash::SecretHash;
pub use crate::ids::{ClientId, GrantId};

/// The error type every model concern shares. Never `()` or `String`: keep the source so
/// the engine can log it when it answers `server_error`.
pub trait ModelBase: Send + Sync {
    /// A storage failure.
    type Error: std::error::Error + Send + Sync + 'static;

    /// Where device authorizations (RFC 8628) are kept, if this model keeps them. Without
    /// a [`DeviceStore`] the engine neither advertises nor serves the device flow. A model
    /// that implements one returns `Some(self)`.
    fn devices(&self) -> Option<&dyn DeviceStore<Error = Self::Error>> {
        None
    }

    /// Where opaque access tokens are kept, if this model keeps them. Without an
    /// [`AccessTokenStore`] the engine issues JWT access tokens only (an engine configured
    /// for opaque tokens answers `server_error` and says why in its logs). A model that
    /// implements one returns `Some(self)`.
    fn opaque_tokens(&self) -> Option<&dyn AccessTokenStore<Error = Self::Error>> {
        None
    }
}

pub use mcpauth_dcr::TokenEndpointAuthMethod;

/// A registered client.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "StoredClientRecord")]
#[non_exhaustive]
pub struct ClientRecord {
    /// The client identifier.
    pub client_id: ClientId,
    /// SHA-256 of the client secret, for confidential clients.
    pub secret_hash: Option<SecretHash>,
    /// When the secret stops working (`None`: never).
    pub secret_expires_at: Option<UnixTime>,
    /// The registered metadata (redirect URIs, grant types, name, how it authenticates, ...),
    /// as registered and normalised: `token_endpoint_auth_method` is always set (see
    /// [`auth_method`](Self::auth_method)).
    pub metadata: ClientMetadata,
    /// When the client was registered.
    pub created_at: UnixTime,
    /// SHA-256 of the RFC 7592 registration access token, for dynamically registered
    /// clients.
    #[serde(default)]
    pub registration_token_hash: Option<SecretHash>,
    /// For a Client ID Metadata Document client: when the cached document must be fetched
    /// again.
    #[serde(default)]
    pub document_expires_at: Option<UnixTime>,
    /// Who vouched for a self-registered client, if anyone did: only then may it use the
    /// grants in which it acts for itself (`client_credentials`, token exchange).
    #[serde(default)]
    pub vouched: Option<Voucher>,
    /// The operator marked it as a resource server: it may introspect tokens (RFC 7662 §4).
    /// Never set by registration.
    #[serde(default)]
    pub resource_server: bool,
}

/// A client record as stored, read: records stored before the authentication method lived
/// in the metadata alone carried it beside it, and that field was what the engine enforced,
/// so reading one writes it into the metadata (where it wins).
#[derive(Deserialize)]
struct StoredClientRecord {
    client_id: ClientId,
    secret_hash: Option<SecretHash>,
    secret_expires_at: Option<UnixTime>,
    #[serde(default)]
    auth_method: Option<TokenEndpointAuthMethod>,
    metadata: ClientMetadata,
    created_at: UnixTime,
    #[serde(default)]
    registration_token_hash: Option<SecretHash>,
    #[serde(default)]
    document_expires_at: Option<UnixTime>,
    #[serde(default)]
    vouched: Option<Voucher>,
    #[serde(default)]
    resource_server: bool,
}

impl From<StoredClientRecord> for ClientRecord {
    fn from(stored: StoredClientRecord) -> Self {
        let mut metadata = stored.metadata;
        if let Some(method) = stored.auth_method {
            metadata.token_endpoint_auth_method = Some(method.as_str().to_owned());
        }
        Self {
            client_id: stored.client_id,
            secret_hash: stored.secret_hash,
            secret_expires_at: stored.secret_expires_at,
            metadata,
            created_at: stored.created_at,
            registration_token_hash: stored.registration_token_hash,
            document_expires_at: stored.document_expires_at,
            vouched: stored.vouched,
            resource_server: stored.resource_server,
        }
    }
}

/// Who vouched for a self-registered client (see [`ClientRecord::vouched`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Voucher {
    /// The application embedding the engine registered it through
    /// [`TokenEngine::register_client`](crate::TokenEngine::register_client).
    Application,
    /// Its registration presented one of the operator's initial access tokens (RFC 7591 §3).
    InitialAccessToken,
    /// Its registration carried a software statement signed by this trusted issuer
    /// (RFC 7591 §2.3).
    SoftwareStatement {
        /// The statement's `iss`.
        issuer: String,
    },
}

impl ClientRecord {
    /// Whether the client registered itself, through RFC 7591 registration (it holds a
    /// registration access token) or a Client ID Metadata Document: its metadata is its own
    /// claim, not an administrator's decision.
    #[must_use]
    pub fn is_self_registered(&self) -> bool {
        self.registration_token_hash.is_some() || self.document_expires_at.is_some()
    }

    /// Whether the client may use the grants in which it acts for itself, with no user
    /// behind the token (`client_credentials`, token exchange): the operator registered it,
    /// or someone the operator trusts vouched for its registration. An anonymous
    /// registration or a metadata document never may.
    #[must_use]
    pub fn may_act_for_itself(&self) -> bool {
        !self.is_self_registered() || (self.vouched.is_some() && self.document_expires_at.is_none())
    }

    /// How the client authenticates at the token endpoint: its metadata's
    /// `token_endpoint_auth_method` (RFC 7591 §2; a record stored with the method beside its
    /// metadata reads with that method in it). A record that names no method is taken as
    /// `client_secret_basic`, RFC 7591's default, which needs a secret it may not have: never
    /// as a public client.
    #[must_use]
    pub fn auth_method(&self) -> TokenEndpointAuthMethod {
        self.metadata
            .token_endpoint_auth_method
            .as_deref()
            .and_then(TokenEndpointAuthMethod::from_wire)
            .unwrap_or(TokenEndpointAuthMethod::ClientSecretBasic)
    }

    /// A record for a client with the given metadata, authenticating with `auth_method`
    /// (written into the metadata).
    #[must_use]
    pub fn new(
        client_id: ClientId,
        auth_method: TokenEndpointAuthMethod,
        mut metadata: ClientMetadata,
        created_at: UnixTime,
    ) -> Self {
        metadata.token_endpoint_auth_method = Some(auth_method.as_str().to_owned());
        Self {
            client_id,
            secret_hash: None,
            secret_expires_at: None,
            metadata,
            created_at,
            registration_token_hash: None,
            document_expires_at: None,
            vouched: None,
            resource_server: false,
        }
    }

    /// Whether the client registered `grant_type` (RFC 7591 §2 default: `authorization_code`).
    #[must_use]
    pub fn allows_grant(&self, grant_type: GrantType) -> bool {
        if self.metadata.grant_types.is_empty() {
            grant_type == GrantType::AuthorizationCode
        } else {
            self.metadata
                .grant_types
                .iter()
                .any(|g| g == grant_type.as_str())
        }
    }
}

/// One authorization a user gave a client. Every code and token carries the `grant_id` it
/// descends from, so revoking the grant revokes all of them.
// Not `non_exhaustive`: model implementations in other crates build these from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrantRecord {
    /// Random identifier (not a secret).
    pub grant_id: GrantId,
    /// The client the grant was given to.
    pub client_id: ClientId,
    /// The user (subject) who gave it.
    pub subject: String,
    /// The scope granted.
    pub scope: Scope,
    /// The resources (RFC 8707) the grant is for.
    pub resources: Vec<String>,
    /// When it was given.
    pub created_at: UnixTime,
    /// When it was revoked, if it was.
    pub revoked_at: Option<UnixTime>,
}

/// An authorization code, stored by hash (RFC 6749 §4.1.2).
// Not `non_exhaustive`: model implementations in other crates build these from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthorizationCodeRecord {
    /// SHA-256 of the code.
    pub code_hash: SecretHash,
    /// The grant it belongs to.
    pub grant_id: GrantId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The redirect URI used in the authorization request.
    pub redirect_uri: String,
    /// Whether `redirect_uri` was in the authorization request, in which case the token
    /// request must repeat it (RFC 6749 §4.1.3).
    pub redirect_uri_in_request: bool,
    /// The S256 `code_challenge`.
    pub code_challenge: String,
    /// The user.
    pub subject: String,
    /// The granted scope.
    pub scope: Scope,
    /// The granted resources.
    pub resources: Vec<String>,
    /// When the code stops working.
    pub expires_at: UnixTime,
    /// When the code was redeemed, if it was.
    pub consumed_at: Option<UnixTime>,
    /// The JWK thumbprint of the DPoP key the client bound the code to with `dpop_jkt` (RFC
    /// 9449 §10): the token request must carry a proof made with that key.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
    /// The `nonce` of an OpenID Connect request (Core §3.1.2.1), echoed in the ID token
    /// issued when the code is redeemed.
    #[serde(default)]
    pub nonce: Option<String>,
}

/// A refresh token, stored by hash (RFC 6749 §6).
// Not `non_exhaustive`: model implementations in other crates build these from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshTokenRecord {
    /// SHA-256 of the token.
    pub token_hash: SecretHash,
    /// The grant (family) it belongs to.
    pub grant_id: GrantId,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The user.
    pub subject: String,
    /// The scope of the grant (a refresh may narrow the access token, never this).
    pub scope: Scope,
    /// The resources of the grant.
    pub resources: Vec<String>,
    /// When it was issued.
    pub issued_at: UnixTime,
    /// When it stops working.
    pub expires_at: UnixTime,
    /// When it was exchanged for a new one, if it was.
    pub rotated_at: Option<UnixTime>,
    /// The token that replaced it, sealed with a key derived from *this* token (which is
    /// stored only as a hash, so only its holder can open it). Kept from the rotation until
    /// the refresh-reuse grace window closes, so that a retry inside the window gets the same
    /// successor again; `None` before rotation, with no grace window, and once swept.
    pub sealed_successor: Option<String>,
    /// The JWK thumbprint of the DPoP key this token is bound to (RFC 9449 §5: a public
    /// client's refresh token, bound to the key that obtained it): every refresh must carry a
    /// proof made with that key. Kept by its successors.
    #[serde(default)]
    pub dpop_jkt: Option<String>,
}

/// Where a device authorization stands (RFC 8628 §3.3–§3.5).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DeviceState {
    /// Waiting for the user.
    Pending,
    /// The user approved; tokens not issued yet.
    Approved,
    /// The user denied.
    Denied,
    /// Tokens were issued.
    Consumed,
}

impl DeviceState {
    /// The stored name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Denied => "denied",
            Self::Consumed => "consumed",
        }
    }

    /// Parses a stored name.
    #[must_use]
    pub fn from_stored(value: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Denied, Self::Consumed]
            .into_iter()
            .find(|s| s.as_str() == value)
    }
}

/// A device authorization (RFC 8628 §3.2), stored by the hashes of its two codes.
// Not `non_exhaustive`: model implementations in other crates build these from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceAuthorizationRecord {
    /// SHA-256 of the device code.
    pub device_code_hash: SecretHash,
    /// SHA-256 of the normalised user code.
    pub user_code_hash: SecretHash,
    /// The client polling.
    pub client_id: ClientId,
    /// The scope requested.
    pub scope: Scope,
    /// The resources requested.
    pub resources: Vec<String>,
    /// When both codes stop working.
    pub expires_at: UnixTime,
    /// The minimum polling interval in seconds (grows by 5 on each `slow_down`).
    pub interval: u64,
    /// When the client last polled.
    pub last_polled_at: Option<UnixTime>,
    /// Where the authorization stands.
    pub state: DeviceState,
    /// The user who decided, once approved.
    pub subject: Option<String>,
    /// The grant created on approval.
    pub grant_id: Option<GrantId>,
}

/// The user's decision on a device authorization.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeviceDecision {
    /// Approved by `grant.subject`: the model stores `grant` in the same atomic step that
    /// records the approval (and only if it is recorded); tokens will descend from it.
    Approve {
        /// The grant the approval creates.
        grant: GrantRecord,
    },
    /// Denied.
    Deny,
}

/// The result of [`CodeStore::consume_code`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum ConsumeCode {
    /// The code was unused and is now consumed: the caller MUST issue tokens from it.
    Fresh(AuthorizationCodeRecord),
    /// The code had already been consumed: the caller MUST refuse and SHOULD revoke the grant
    /// (RFC 6749 §4.1.2).
    Reused(AuthorizationCodeRecord),
    /// No such code.
    NotFound,
}

/// The result of [`RefreshTokenStore::rotate_refresh`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[must_use]
#[non_exhaustive]
pub enum RotateRefresh {
    /// The old token was live, is now marked rotated, and the new one is stored.
    Rotated,
    /// The old token had already been rotated at `rotated_at`: the new one was NOT stored.
    Reused {
        /// The family of the reused token.
        grant_id: GrantId,
        /// When it was first rotated.
        rotated_at: UnixTime,
    },
    /// No such token.
    NotFound,
}

/// Registered clients.
#[async_trait]
pub trait ClientStore: ModelBase {
    /// Finds a client by id.
    async fn find_client(&self, client_id: &ClientId) -> Result<Option<ClientRecord>, Self::Error>;
    /// Stores a new client. The id is random and fresh.
    async fn insert_client(&self, client: ClientRecord) -> Result<(), Self::Error>;
    /// Replaces a client's record (RFC 7592 §2.2). Returns whether the client existed.
    async fn update_client(&self, client: ClientRecord) -> Result<bool, Self::Error>;
    /// Deletes a client (RFC 7592 §2.3). Returns whether it existed.
    async fn delete_client(&self, client_id: &ClientId) -> Result<bool, Self::Error>;
    /// How many clients count toward the registration cap: every client but
    /// metadata-document clients that never completed an authorization (no grant), which
    /// anyone can make the server store by starting one.
    async fn count_clients(&self) -> Result<u64, Self::Error>;
}

/// Grants: the families codes and tokens descend from.
#[async_trait]
pub trait GrantStore: ModelBase {
    /// Stores a new grant. A grant with the same id already stored is never overwritten: fail
    /// (or store nothing). Revoked grants are kept, revoked, while their tokens may live (the
    /// JWT bearer grant derives grant ids, and must never find a revoked one live again).
    async fn insert_grant(&self, grant: GrantRecord) -> Result<(), Self::Error>;
    /// Finds a grant by id.
    async fn find_grant(&self, grant_id: &GrantId) -> Result<Option<GrantRecord>, Self::Error>;
    /// Marks a grant revoked (idempotent: an earlier `revoked_at` is kept). Every code and
    /// refresh token of the grant stops working.
    async fn revoke_grant(&self, grant_id: &GrantId, now: UnixTime) -> Result<(), Self::Error>;
    /// Marks every grant of a client revoked (RFC 7592 §2.3: a deleted client's grants and
    /// tokens stop working).
    async fn revoke_client_grants(
        &self,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<(), Self::Error>;
}

/// Authorization codes.
#[async_trait]
pub trait CodeStore: GrantStore {
    /// Stores a new code.
    async fn insert_code(&self, code: AuthorizationCodeRecord) -> Result<(), Self::Error>;
    /// Reads a code without changing it (the engine validates before consuming).
    async fn find_code(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<AuthorizationCodeRecord>, Self::Error>;
    /// Reads a code and whether its grant is live (stored and not revoked): what a redemption
    /// checks before it consumes. The provided implementation reads the code, then the grant;
    /// a store that can join them overrides it with one read (one round trip fewer per
    /// redemption).
    async fn find_code_and_grant(
        &self,
        code_hash: &SecretHash,
    ) -> Result<Option<(AuthorizationCodeRecord, bool)>, Self::Error> {
        let Some(code) = self.find_code(code_hash).await? else {
            return Ok(None);
        };
        let live = self
            .find_grant(&code.grant_id)
            .await?
            .is_some_and(|grant| grant.revoked_at.is_none());
        Ok(Some((code, live)))
    }
    /// Atomically marks the code consumed and, only if it was unused, stores `refresh` (the
    /// refresh token issued from it) in the same atomic step: an outage or crash leaves either
    /// the code unused and no token, or the code consumed and its token stored, never one
    /// without the other. Of any number of concurrent calls for one code, exactly one may
    /// return [`ConsumeCode::Fresh`].
    async fn consume_code(
        &self,
        code_hash: &SecretHash,
        now: UnixTime,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<ConsumeCode, Self::Error>;
}

/// Refresh tokens.
#[async_trait]
pub trait RefreshTokenStore: GrantStore {
    /// Stores a new refresh token.
    async fn insert_refresh(&self, token: RefreshTokenRecord) -> Result<(), Self::Error>;
    /// Reads a refresh token without changing it.
    async fn find_refresh(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<RefreshTokenRecord>, Self::Error>;
    /// Reads a refresh token and whether its grant is live (stored and not revoked): what a
    /// refresh checks before it rotates. The provided implementation reads the token, then the
    /// grant; a store that can join them overrides it with one read.
    async fn find_refresh_and_grant(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<(RefreshTokenRecord, bool)>, Self::Error> {
        let Some(token) = self.find_refresh(token_hash).await? else {
            return Ok(None);
        };
        let live = self
            .find_grant(&token.grant_id)
            .await?
            .is_some_and(|grant| grant.revoked_at.is_none());
        Ok(Some((token, live)))
    }
    /// Atomically marks `old_hash` rotated at `now`, keeps `sealed_successor` on it (see
    /// [`RefreshTokenRecord::sealed_successor`]) and stores `new`, if and only if `old_hash`
    /// was not rotated yet. Of any number of concurrent calls for one token, exactly one may
    /// return [`RotateRefresh::Rotated`].
    async fn rotate_refresh(
        &self,
        old_hash: &SecretHash,
        new: RefreshTokenRecord,
        sealed_successor: Option<String>,
        now: UnixTime,
    ) -> Result<RotateRefresh, Self::Error>;
}

/// Device authorizations (RFC 8628).
#[async_trait]
pub trait DeviceStore: ModelBase {
    /// Stores a new device authorization. User codes are unique: a record whose
    /// `user_code_hash` is already held must be refused with an error (the engine then draws
    /// another code), never stored over the other.
    async fn insert_device(&self, record: DeviceAuthorizationRecord) -> Result<(), Self::Error>;
    /// Finds a device authorization by the hash of its user code.
    async fn find_device_by_user_code(
        &self,
        user_code_hash: &SecretHash,
    ) -> Result<Option<DeviceAuthorizationRecord>, Self::Error>;
    /// Atomically records a poll: returns the record as it was *before* this poll and sets
    /// `last_polled_at = now`.
    async fn poll_device(
        &self,
        device_code_hash: &SecretHash,
        now: UnixTime,
    ) -> Result<Option<DeviceAuthorizationRecord>, Self::Error>;
    /// Sets the polling interval (seconds) the device must keep from now on. (The engine
    /// decides it: RFC 8628 §3.5's `slow_down` adds 5 seconds to the interval it polled
    /// under; polls that race each other set the same interval, each answered `slow_down`.)
    async fn set_device_interval(
        &self,
        device_code_hash: &SecretHash,
        interval: u64,
    ) -> Result<(), Self::Error>;
    /// Atomically records the user's decision, only if the authorization is still pending and
    /// not expired at `now`; an approval stores its grant in the same atomic step. Returns
    /// whether it was recorded: when not, nothing was written.
    async fn decide_device(
        &self,
        user_code_hash: &SecretHash,
        decision: DeviceDecision,
        now: UnixTime,
    ) -> Result<bool, Self::Error>;
    /// Atomically moves an approved authorization to consumed and, only then, stores
    /// `refresh` (the refresh token issued from it) in the same atomic step. Of any number of
    /// concurrent calls, exactly one may return `true`.
    async fn consume_device(
        &self,
        device_code_hash: &SecretHash,
        refresh: Option<RefreshTokenRecord>,
    ) -> Result<bool, Self::Error>;
}

/// An opaque access token, stored by hash with the claims it stands for.
// Not `non_exhaustive`: model implementations in other crates build these from rows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRecord {
    /// SHA-256 of the token.
    pub token_hash: SecretHash,
    /// The grant it descends from, if any (`client_credentials` tokens have none).
    pub grant_id: Option<GrantId>,
    /// The client it was issued to.
    pub client_id: ClientId,
    /// The RFC 9068 claims the token stands for, as JSON.
    pub claims: serde_json::Value,
    /// When it stops working.
    pub expires_at: UnixTime,
}

/// Opaque access tokens (when the engine issues them instead of JWTs).
#[async_trait]
pub trait AccessTokenStore: ModelBase {
    /// Stores a new opaque access token.
    async fn insert_access_token(&self, record: AccessTokenRecord) -> Result<(), Self::Error>;
    /// Finds an opaque access token by hash.
    async fn find_access_token(
        &self,
        token_hash: &SecretHash,
    ) -> Result<Option<AccessTokenRecord>, Self::Error>;
    /// Deletes an opaque access token (revocation of a token without a grant).
    async fn delete_access_token(&self, token_hash: &SecretHash) -> Result<(), Self::Error>;
}

/// One-time values (the `jti` of client assertions, RFC 7523 §3 item 7).
#[async_trait]
pub trait ReplayStore: ModelBase {
    /// Records `key` until `expires_at`. Returns `true` the first time, `false` if it was
    /// already recorded and has not expired: of concurrent calls, exactly one sees `true`.
    async fn remember_once(
        &self,
        key: &str,
        expires_at: UnixTime,
        now: UnixTime,
    ) -> Result<bool, Self::Error>;
}

/// What one rate limit counts: a named bucket (registrations per caller, metadata-document
/// fetches, device polls, sign-ins, ...) and who or what is counted in it. A store keeps it
/// as the opaque string [`RateLimitKey::as_str`]; two different keys never share a string.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RateLimitKey(String);

impl RateLimitKey {
    /// The counter of `subject` in `bucket`. The first `:` separates the bucket from the
    /// subject (a `:` or `%` in a bucket name is percent-encoded), so no subject can reach
    /// another bucket's counters.
    #[must_use]
    pub fn new(bucket: &'static str, subject: &str) -> Self {
        let bucket = if bucket.contains([':', '%']) {
            std::borrow::Cow::Owned(bucket.replace('%', "%25").replace(':', "%3A"))
        } else {
            std::borrow::Cow::Borrowed(bucket)
        };
        Self(format!("{bucket}:{subject}"))
    }

    /// The key as a store keeps it.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Counters for rate limits, shared by every instance that uses the store.
#[async_trait]
pub trait RateLimitStore: ModelBase {
    /// Counts one hit for `key` in the fixed window of `window` seconds that contains `now`,
    /// and returns the number of hits in that window, this one included. A hit for a window
    /// older than the one stored (a late call from an instance whose clock or request lagged)
    /// changes nothing and returns the stored window's count.
    async fn hit(&self, key: &RateLimitKey, now: UnixTime, window: u64)
    -> Result<u32, Self::Error>;

    /// Counts `hits` hits at once (a limiter that counts locally and adds its count to the
    /// shared counter every few seconds); returns the window's total, these included.
    ///
    /// The provided implementation calls [`hit`](Self::hit) once per hit; a store overrides it
    /// with one write.
    async fn add_hits(
        &self,
        key: &RateLimitKey,
        now: UnixTime,
        window: u64,
        hits: u32,
    ) -> Result<u32, Self::Error> {
        let mut total = 0;
        for _ in 0..hits {
            total = self.hit(key, now, window).await?;
        }
        Ok(total)
    }
}

/// Everything the engine needs from storage. Implemented automatically for any type that
/// implements every concern; object safe (`Arc<dyn OAuthServerModel<Error = E>>`). The
/// device flow's and opaque tokens' stores are optional: see [`ModelBase::devices`] and
/// [`ModelBase::opaque_tokens`].
pub trait OAuthServerModel:
    ClientStore + GrantStore + CodeStore + RefreshTokenStore + RateLimitStore + ReplayStore
{
}

impl<T> OAuthServerModel for T where
    T: ClientStore
        + GrantStore
        + CodeStore
        + RefreshTokenStore
        + RateLimitStore
        + ReplayStore
        + ?Sized
{
}

#[cfg(test)]
mod record_tests {
    use super::*;

    // No subject can reach another bucket's counter, whatever either name holds.
    #[test]
    fn rate_limit_keys_of_different_buckets_never_share_a_string() {
        assert_eq!(
            RateLimitKey::new("register", "1.2.3.4").as_str(),
            "register:1.2.3.4"
        );
        assert_ne!(
            RateLimitKey::new("a:b", "c").as_str(),
            RateLimitKey::new("a", "b:c").as_str()
        );
        assert_ne!(
            RateLimitKey::new("a%3Ab", "c").as_str(),
            RateLimitKey::new("a:b", "c").as_str()
        );
    }

    // One fact, one home: the authentication method lives in the metadata alone.
    #[test]
    fn a_client_records_authentication_method_is_its_metadatas() {
        let record = ClientRecord::new(
            "c".into(),
            TokenEndpointAuthMethod::PrivateKeyJwt,
            ClientMetadata::default(),
            UnixTime(1),
        );
        assert_eq!(record.auth_method(), TokenEndpointAuthMethod::PrivateKeyJwt);
        assert_eq!(
            record.metadata.token_endpoint_auth_method.as_deref(),
            Some("private_key_jwt")
        );
        let json = serde_json::to_value(&record).unwrap();
        assert!(json.get("auth_method").is_none(), "{json}");
    }

    #[test]
    fn records_stored_with_the_method_beside_the_metadata_still_read() {
        let mut json = serde_json::to_value(ClientRecord::new(
            "c".into(),
            TokenEndpointAuthMethod::None,
            ClientMetadata::default(),
            UnixTime(1),
        ))
        .unwrap();
        json["metadata"]
            .as_object_mut()
            .unwrap()
            .remove("token_endpoint_auth_method");
        json["auth_method"] = "client_secret_post".into();
        let record: ClientRecord = serde_json::from_value(json.clone()).unwrap();
        assert_eq!(
            record.auth_method(),
            TokenEndpointAuthMethod::ClientSecretPost
        );
        // What the engine enforced before stays enforced, whatever the metadata says.
        let mut public_metadata = json.clone();
        public_metadata["metadata"]["token_endpoint_auth_method"] = "none".into();
        let record: ClientRecord = serde_json::from_value(public_metadata).unwrap();
        assert_eq!(
            record.auth_method(),
            TokenEndpointAuthMethod::ClientSecretPost
        );
        json.as_object_mut().unwrap().remove("auth_method");
        let record: ClientRecord = serde_json::from_value(json).unwrap();
        assert_eq!(
            record.auth_method(),
            TokenEndpointAuthMethod::ClientSecretBasic,
            "no method named: RFC 7591's default, never a public client"
        );
    }
}
