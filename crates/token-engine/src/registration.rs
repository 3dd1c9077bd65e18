//! RFC 7591: dynamic client registration.
//!
//! Validates the metadata (§2), substitutes defaults the server chooses (§3.2.1 lets the
//! server "replace any of the client's requested metadata values"), stores the client and
//! answers with the registered metadata. A secret, when the client asks for a confidential
//! registration, is returned once and stored only as a hash.

use mcpauth_oauth_types::{ClientMetadata, OAuthError, RegistrationErrorCode, Scope};
use serde::Serialize;

use crate::error::{RegistrationError, internal};
use crate::grant::device_code::DEVICE_CODE_GRANT;
use crate::grant::token_exchange::TOKEN_EXCHANGE_GRANT;
use crate::model::{ClientRecord, OAuthServerModel, TokenEndpointAuthMethod};
use crate::redirect_uri::validate_redirect_uri;
use crate::time::UnixTime;
use crate::{TokenEngine, hash, random};

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

fn metadata_error(description: impl Into<std::borrow::Cow<'static, str>>) -> RegistrationError {
    OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, description)
}

/// Checks an informational URL member (`client_uri`, `logo_uri`, ...).
fn check_web_url(name: &'static str, value: Option<&str>) -> Result<(), RegistrationError> {
    match value {
        Some(v)
            if !url::Url::parse(v)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some()) =>
        {
            Err(metadata_error(format!(
                "{name} must be an absolute http(s) URL"
            )))
        }
        _ => Ok(()),
    }
}

const SUPPORTED_GRANTS: &[&str] = &[
    "authorization_code",
    "refresh_token",
    "client_credentials",
    DEVICE_CODE_GRANT,
    TOKEN_EXCHANGE_GRANT,
];

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Validates and registers a client (RFC 7591 §3).
    ///
    /// # Errors
    ///
    /// An RFC 7591 §3.2.2 error; nothing is stored.
    pub async fn register_client(
        &self,
        metadata: ClientMetadata,
        now: UnixTime,
    ) -> Result<RegisteredClient, RegistrationError> {
        let (method, metadata) = self.validate_client_metadata(metadata)?;
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
        let client_id =
            random::identifier(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        let registration_token =
            random::token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        let mut record = ClientRecord::new(client_id.clone(), method, metadata.clone(), now);
        record.registration_token_hash = Some(hash::secret_hash(&registration_token));
        let secret = self.new_secret_if_needed(&mut record)?;
        if secret.is_some() {
            record.secret_expires_at = self
                .config
                .registration
                .client_secret_ttl
                .map(|ttl| now.plus(ttl));
        }
        let secret_expires_at = record.secret_expires_at.map_or(0, |t| t.0);
        self.model
            .insert_client(record)
            .await
            .map_err(|e| internal("storage failure", e))?;
        Ok(RegisteredClient {
            registration_client_uri: Some(self.registration_client_uri(&client_id)),
            registration_access_token: Some(registration_token),
            client_id,
            client_id_issued_at: now.0,
            client_secret_expires_at: secret.as_ref().map(|_| secret_expires_at),
            client_secret: secret,
            metadata,
        })
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
            record.auth_method,
            TokenEndpointAuthMethod::None | TokenEndpointAuthMethod::PrivateKeyJwt
        ) {
            record.secret_hash = None;
            return Ok(None);
        }
        if record.secret_hash.is_some() {
            return Ok(None);
        }
        let secret = random::token(&*self.rng).map_err(|e| internal("randomness failure", e))?;
        record.secret_hash = Some(hash::secret_hash(&secret));
        Ok(Some(secret))
    }

    /// RFC 7591 §2: validates metadata and fills in the server's defaults.
    pub(crate) fn validate_client_metadata(
        &self,
        mut metadata: ClientMetadata,
    ) -> Result<(TokenEndpointAuthMethod, ClientMetadata), RegistrationError> {
        // The MCP specification has clients omit this and expect a public client; RFC 7591's
        // default (client_secret_basic) would hand every such client a secret it never sends.
        let method = match metadata.token_endpoint_auth_method.as_deref() {
            None if self.config.public_clients_by_default => TokenEndpointAuthMethod::None,
            None => TokenEndpointAuthMethod::ClientSecretBasic,
            Some(m) => TokenEndpointAuthMethod::from_wire(m).ok_or_else(|| {
                metadata_error("token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt")
            })?,
        };
        metadata.token_endpoint_auth_method = Some(method.as_str().to_owned());

        if metadata.grant_types.is_empty() {
            metadata.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
        }
        if let Some(unsupported) = metadata
            .grant_types
            .iter()
            .find(|g| !SUPPORTED_GRANTS.contains(&g.as_str()))
        {
            return Err(metadata_error(format!(
                "grant type `{}` is not supported here (supported: {})",
                unsupported.chars().take(64).collect::<String>(),
                SUPPORTED_GRANTS.join(", ")
            )));
        }
        let has = |grant: &str| metadata.grant_types.iter().any(|g| g == grant);
        let redirect_based = has("authorization_code");
        // RFC 7591 §2.1: `code` goes with authorization_code and nothing else does.
        if metadata.response_types.is_empty() && redirect_based {
            metadata.response_types = vec!["code".into()];
        }
        if metadata.response_types.iter().any(|r| r != "code") {
            return Err(metadata_error("only the response type `code` is supported"));
        }
        if redirect_based == metadata.response_types.is_empty() {
            return Err(metadata_error(
                "response type `code` and the authorization_code grant type go together",
            ));
        }
        if has("refresh_token") && !redirect_based && !has(DEVICE_CODE_GRANT) {
            return Err(metadata_error(
                "refresh_token needs a grant that issues refresh tokens (authorization_code or device_code)",
            ));
        }
        // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
        // clients."
        if (has("client_credentials") || has(TOKEN_EXCHANGE_GRANT))
            && method == TokenEndpointAuthMethod::None
        {
            return Err(metadata_error(
                "client_credentials and token exchange need a confidential client: set token_endpoint_auth_method to client_secret_basic, client_secret_post or private_key_jwt",
            ));
        }
        if redirect_based && metadata.redirect_uris.is_empty() {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRedirectUri,
                "redirect_uris is required for the authorization_code grant",
            ));
        }
        if metadata.redirect_uris.len() > 16 {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRedirectUri,
                "at most 16 redirect_uris may be registered",
            ));
        }
        for uri in &metadata.redirect_uris {
            validate_redirect_uri(uri).map_err(|reason| {
                OAuthError::new(RegistrationErrorCode::InvalidRedirectUri, reason)
            })?;
            if !self.config.allow_localhost_redirect_uris
                && url::Url::parse(uri)
                    .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some("localhost"))
            {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRedirectUri,
                    "use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)",
                ));
            }
        }
        if let Some(scope) = metadata.scope.as_deref() {
            let scope = Scope::parse(scope).map_err(|e| metadata_error(format!("scope: {e}")))?;
            let supported = &self.config.scopes_supported;
            if !supported.is_empty() && !scope.iter().all(|s| supported.iter().any(|x| x == s)) {
                return Err(metadata_error(
                    "scope includes a scope this server does not support",
                ));
            }
        }
        // RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present".
        if metadata.jwks.is_some() && metadata.jwks_uri.is_some() {
            return Err(metadata_error("jwks and jwks_uri must not both be present"));
        }
        if metadata.jwks_uri.is_some() {
            return Err(metadata_error(
                "jwks_uri is not supported by this server: register the public keys inline with jwks",
            ));
        }
        if let Some(jwks) = &metadata.jwks {
            let usable = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone())
                .map(|set| {
                    set.keys
                        .iter()
                        .filter(|k| jsonwebtoken::DecodingKey::from_jwk(k).is_ok())
                        .count()
                })
                .unwrap_or(0);
            if usable == 0 {
                return Err(metadata_error(
                    "jwks must be a JWK Set with at least one public key",
                ));
            }
            if serde_json::to_vec(jwks).map_or(0, |v| v.len()) > 8 * 1024 {
                return Err(metadata_error("jwks is larger than 8 KiB"));
            }
        }
        if method == TokenEndpointAuthMethod::PrivateKeyJwt && metadata.jwks.is_none() {
            return Err(metadata_error(
                "private_key_jwt needs the client's public keys in jwks",
            ));
        }
        check_web_url("client_uri", metadata.client_uri.as_deref())?;
        check_web_url("logo_uri", metadata.logo_uri.as_deref())?;
        check_web_url("tos_uri", metadata.tos_uri.as_deref())?;
        check_web_url("policy_uri", metadata.policy_uri.as_deref())?;
        for (name, value) in [
            ("client_name", &metadata.client_name),
            ("software_id", &metadata.software_id),
            ("software_version", &metadata.software_version),
        ] {
            if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
                return Err(metadata_error(format!(
                    "{name} is longer than 200 characters"
                )));
            }
        }

        Ok((method, metadata))
    }
}
