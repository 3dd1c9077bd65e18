//! RFC 7591: dynamic client registration.
//!
//! Validates the metadata (§2), substitutes defaults the server chooses (§3.2.1 lets the
//! server "replace any of the client's requested metadata values"), stores the client and
//! answers with the registered metadata. A secret, when the client asks for a confidential
//! registration, is returned once and stored only as a hash.

use mcpauth_oauth_types::{ClientMetadata, OAuthError, RegistrationErrorCode};
use serde::Serialize;

use crate::UnixTime;
use crate::error::{RegistrationError, internal};
use crate::model::{ClientId, ClientRecord, OAuthServerModel, TokenEndpointAuthMethod, Voucher};
use crate::{SecretHash, TokenEngine, random};

/// The registration response (RFC 7591 §3.2.1).
#[derive(Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct RegisteredClient {
    /// The new client identifier.
    pub client_id: String,
    /// When it was issued (seconds since the epoch).
    pub client_id_issued_at: u64,
    /// The client secret, for confidential clients. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    /// 0: the secret does not expire (RFC 7591 §3.2.1). Present with a secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret_expires_at: Option<u64>,
    /// The RFC 7592 registration access token, for managing this registration. Shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_access_token: Option<String>,
    /// Where to read, update or delete this registration (RFC 7592 §3).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub registration_client_uri: Option<String>,
    /// The metadata as registered (with defaults filled in).
    #[serde(flatten)]
    pub metadata: ClientMetadata,
}

impl std::fmt::Debug for RegisteredClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegisteredClient")
            .field("client_id", &self.client_id)
            .field(
                "client_secret",
                &self.client_secret.as_ref().map(|_| "[redacted]"),
            )
            .field("metadata", &self.metadata)
            .finish_non_exhaustive()
    }
}

/// Who is registering a client, which decides what it may do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Registrant {
    /// The operator (`mcpauth-server client add`): no RFC 7592 token, registered scope is
    /// the ceiling.
    Operator,
    /// The embedding application, through [`TokenEngine::register_client`].
    Application,
    /// The client itself at the registration endpoint; `vouched` says who vouched for it, if
    /// anyone. The grant-type allow-list applies.
    Endpoint { vouched: Option<Voucher> },
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Validates and registers a client (RFC 7591 §3). This is the trusted, programmatic path
    /// (the embedding application): the dynamic-registration policy applies to requests at
    /// [`Self::registration_endpoint`]. The client gets an RFC 7592 registration access token
    /// and counts as self-registered (its registered `scope` is its own claim), vouched for
    /// by the application ([`Voucher::Application`]), so it may use `client_credentials`
    /// within its registered scope.
    ///
    /// # Errors
    ///
    /// An RFC 7591 §3.2.2 error; nothing is stored.
    pub async fn register_client(
        &self,
        metadata: ClientMetadata,
        now: UnixTime,
    ) -> Result<RegisteredClient, RegistrationError> {
        self.register(metadata, now, Registrant::Application).await
    }

    /// Registers a client an operator vouches for (`mcpauth-server client add`): validated like
    /// any registration, but without a registration access token (it cannot manage itself
    /// over RFC 7592), with a secret that does not expire, and with its registered `scope` as
    /// the ceiling of what it may ask for.
    ///
    /// # Errors
    ///
    /// An RFC 7591 §3.2.2 error; nothing is stored.
    pub async fn preregister_client(
        &self,
        metadata: ClientMetadata,
        now: UnixTime,
    ) -> Result<RegisteredClient, RegistrationError> {
        self.register(metadata, now, Registrant::Operator).await
    }

    pub(crate) async fn register(
        &self,
        metadata: ClientMetadata,
        now: UnixTime,
        registrant: Registrant,
    ) -> Result<RegisteredClient, RegistrationError> {
        let (method, metadata) = self.validate_client_metadata(metadata)?;
        // After validation, so the defaults it fills in (grant types) are checked too.
        if let Registrant::Endpoint { vouched } = &registrant {
            self.check_self_registered_grants(&metadata, vouched.is_some())?;
        }
        let client_id = ClientId::from(
            random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?,
        );
        let mut record = ClientRecord::new(client_id.clone(), method, metadata.clone(), now);
        let vouched = match registrant {
            Registrant::Operator => None,
            Registrant::Application => Some(Some(Voucher::Application)),
            Registrant::Endpoint { vouched } => Some(vouched),
        };
        let self_registered = vouched.is_some();
        let registration_token = if let Some(vouched) = vouched {
            let token =
                random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
            record.registration_token_hash = Some(SecretHash::of(&token));
            record.vouched = vouched;
            Some(token)
        } else {
            None
        };
        let secret = self.new_secret_if_needed(&mut record)?;
        if secret.is_some() && self_registered {
            record.secret_expires_at = self.secret_expiry(now);
        }
        let secret_expires_at = record.secret_expires_at.map_or(0, |t| t.0);
        self.model
            .insert_client(record)
            .await
            .map_err(|e| internal("storage failure", e))?;
        Ok(RegisteredClient {
            registration_client_uri: registration_token
                .as_ref()
                .map(|_| self.registration_client_uri(client_id.as_str())),
            registration_access_token: registration_token,
            client_id: client_id.into_string(),
            client_id_issued_at: now.0,
            client_secret_expires_at: secret.as_ref().map(|_| secret_expires_at),
            client_secret: secret,
            metadata,
        })
    }

    /// When a secret issued now to a self-registered client expires (`client_secret_ttl`).
    pub(crate) fn secret_expiry(&self, now: UnixTime) -> Option<UnixTime> {
        self.config
            .registration
            .client_secret_ttl
            .map(|ttl| now.plus(ttl))
    }

    /// The operator's policy for registrations arriving at the endpoint (programmatic
    /// [`Self::register_client`] calls are trusted and skip it): software statements
    /// (RFC 7591 §2.3), the grant-type allow-list and the cap on registered clients.
    /// `initial_access_token` says whether the request presented a valid one. Returns the
    /// metadata (with the statement's claims overlaid) and who vouched for the client.
    pub(crate) async fn apply_registration_policy(
        &self,
        metadata: ClientMetadata,
        initial_access_token: bool,
        now: UnixTime,
    ) -> Result<(ClientMetadata, Option<Voucher>), RegistrationError> {
        let policy = &self.config.registration;
        let (metadata, statement_issuer) = mcpauth_dcr::verify_software_statement(
            metadata,
            &policy.software_statement_issuers,
            policy.require_software_statement,
            now,
        )?;
        let vouched = match statement_issuer {
            Some(issuer) => Some(Voucher::SoftwareStatement { issuer }),
            None => initial_access_token.then_some(Voucher::InitialAccessToken),
        };
        self.check_client_capacity().await?;
        Ok((metadata, vouched))
    }

    /// The cap on registered clients (`max_clients`).
    pub(crate) async fn check_client_capacity(&self) -> Result<(), RegistrationError> {
        if let Some(max) = self.config.registration.max_clients {
            let count = self
                .model
                .count_clients()
                .await
                .map_err(|e| internal("storage failure", e))?;
            if count >= max {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "this server has reached its limit of registered clients; ask its operator",
                ));
            }
        }
        Ok(())
    }

    /// The grant-type allow-list for clients that register themselves (RFC 7591 §2 lets the
    /// server refuse grant types; §3.2.2 `invalid_client_metadata`), checked on validated
    /// metadata (defaults filled in). `vouched`: the registration presented an initial
    /// access token or a trusted software statement.
    pub(crate) fn check_self_registered_grants(
        &self,
        metadata: &ClientMetadata,
        vouched: bool,
    ) -> Result<(), RegistrationError> {
        let policy = &self.config.registration;
        let requested = metadata.grant_types.as_slice();
        let allowed = |grant: &str| {
            policy.grant_types.iter().any(|g| g == grant)
                || (vouched && policy.vouched_grant_types.iter().any(|g| g == grant))
        };
        if let Some(refused) = requested.iter().find(|g| !allowed(g)) {
            let how = if policy.vouched_grant_types.iter().any(|g| g == refused) {
                "present the operator's initial access token or a trusted software statement, or ask the operator to register the client (mcpauth-server client add)"
            } else {
                "ask the operator to register the client (mcpauth-server client add)"
            };
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidClientMetadata,
                format!(
                    "grant type `{}` is not available to clients that register themselves; {how}",
                    refused.chars().take(64).collect::<String>()
                ),
            ));
        }
        Ok(())
    }

    /// RFC 7592 §3: `registration_client_uri`.
    pub(crate) fn registration_client_uri(&self, client_id: &str) -> String {
        let encoded: String = url::form_urlencoded::byte_serialize(client_id.as_bytes()).collect();
        self.config
            .endpoint_url(&format!("{}/{encoded}", crate::paths::REGISTER))
    }

    /// Gives a client that authenticates with a secret a fresh one (stored hashed) unless it
    /// has one; drops the secret of clients that do not use one. Returns a new secret.
    pub(crate) fn new_secret_if_needed(
        &self,
        record: &mut ClientRecord,
    ) -> Result<Option<String>, RegistrationError> {
        if matches!(
            record.auth_method(),
            TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt
        ) {
            record.secret_hash = None;
            return Ok(None);
        }
        if record.secret_hash.is_some() {
            return Ok(None);
        }
        let secret =
            random::random_token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        record.secret_hash = Some(SecretHash::of(&secret));
        Ok(Some(secret))
    }

    /// RFC 7591 §2: validates metadata and fills in the server's defaults.
    pub(crate) fn validate_client_metadata(
        &self,
        metadata: ClientMetadata,
    ) -> Result<(TokenEndpointAuthMethod, ClientMetadata), RegistrationError> {
        let mut rules = mcpauth_dcr::RegistrationRules::default();
        rules.public_clients_by_default = self.config.public_clients_by_default;
        rules.allow_localhost_redirect_uris = self.config.allow_localhost_redirect_uris;
        rules
            .scopes_supported
            .clone_from(&self.config.scopes_supported);
        let (method, metadata) = mcpauth_dcr::validate_client_metadata(metadata, &rules)?;
        // A grant this engine does not serve is not registered (RFC 7591 §2).
        if !self.serves_device_flow()
            && metadata
                .grant_types
                .iter()
                .any(|g| g == crate::DEVICE_CODE_GRANT)
        {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidClientMetadata,
                "this server does not offer the device authorization grant",
            ));
        }
        Ok((method, metadata))
    }
}
