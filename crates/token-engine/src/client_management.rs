//! RFC 7592: reading, updating and deleting a dynamic registration at its
//! `registration_client_uri`, authorized by the `registration_access_token` (stored hashed,
//! compared in constant time).
//!
//! - A missing or wrong token, or an unknown client, is 401 with
//!   `WWW-Authenticate: Bearer error="invalid_token"` (§2, RFC 6750 §3): the two are not told
//!   apart.
//! - PUT replaces the metadata (§2.2): the body must carry the same `client_id`, must not carry
//!   `registration_access_token`, `registration_client_uri`, `client_secret_expires_at` or
//!   `client_id_issued_at`, and a `client_secret` in it must be the current one. The same
//!   validation and policy as registration apply: software statements, the grant-type
//!   allow-list, and the lifetime of a secret issued on update.
//! - DELETE removes the client and revokes its grants, so its tokens stop working (§2.3).

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use mcpauth_oauth_types::{
    ClientMetadata, OAuthError, RegistrationErrorCode, parse_bearer_authorization,
};
use serde_json::Value;

use crate::TokenEngine;
use crate::UnixTime;
use crate::error::{RegistrationError, internal};
use crate::http_entry::authorization_header;
use crate::model::{ClientId, ClientRecord, OAuthServerModel, Voucher};
use crate::registration::RegisteredClient;

/// What an RFC 7592 request asks of a registration ([`TokenEngine::client_configuration`]).
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub enum ClientConfigurationRequest<'a> {
    /// §2.1: read the client's configuration.
    Read,
    /// §2.2: replace its metadata with this JSON document.
    Update {
        /// The client metadata, as sent.
        body: &'a [u8],
    },
    /// §2.3: delete the client (its grants are revoked first).
    Delete,
}

/// Why an RFC 7592 request was refused ([`TokenEngine::client_configuration`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum ClientConfigurationRefusal {
    /// The registration access token is missing or wrong, or the client is unknown: `401`
    /// with `WWW-Authenticate: Bearer error="invalid_token"` (§2; the cases are not told
    /// apart).
    InvalidToken,
    /// An RFC 7591 §3.2.2 error for an update, or `server_error`.
    Refused(RegistrationError),
}

/// Members a client must not send in an update (RFC 7592 §2.2).
const SERVER_OWNED: &[&str] = &[
    "registration_access_token",
    "registration_client_uri",
    "client_secret_expires_at",
    "client_id_issued_at",
];

fn json(status: StatusCode, body: &impl serde::Serialize) -> Response<Bytes> {
    let mut response = Response::new(
        serde_json::to_vec(body)
            .map(Bytes::from)
            .unwrap_or_default(),
    );
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn invalid_token() -> Response<Bytes> {
    let mut response = json(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({ "error": "invalid_token", "error_description": "the registration access token is missing or not valid for this client" }),
    );
    response.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Bearer error=\"invalid_token\""),
    );
    response
}

fn registration_error(error: &RegistrationError) -> Response<Bytes> {
    if let Some(source) = error.internal_source() {
        let mut response = json(StatusCode::INTERNAL_SERVER_ERROR, &error.body());
        response.extensions_mut().insert(crate::InternalError {
            description: error.description().to_owned(),
            cause: source.to_string(),
        });
        return response;
    }
    json(
        StatusCode::from_u16(error.code().http_status()).unwrap_or(StatusCode::BAD_REQUEST),
        &error.body(),
    )
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// Removes client `client_id` after revoking every grant it holds, so its refresh tokens
    /// (and opaque access tokens) stop working at once (RFC 7592 §2.3). Returns whether it
    /// existed. Used by the DELETE below and by operators' tools.
    ///
    /// # Errors
    ///
    /// The storage error.
    pub async fn remove_client(
        &self,
        client_id: &ClientId,
        now: UnixTime,
    ) -> Result<bool, M::Error> {
        self.model.revoke_client_grants(client_id, now).await?;
        self.model.delete_client(client_id).await
    }

    /// The client configuration endpoint (RFC 7592 §2) as a typed call: what the request
    /// asks, for `client_id`, with the `Authorization` header's value (the registration
    /// access token as `Bearer <token>`). A read or an update answers the client's
    /// configuration; a delete answers `None`.
    ///
    /// # Errors
    ///
    /// [`ClientConfigurationRefusal::InvalidToken`] for a missing or wrong token and for an
    /// unknown client alike (§2); [`ClientConfigurationRefusal::Refused`] for an update the
    /// registration policy refuses, or a storage failure. Nothing changes on an error.
    pub async fn client_configuration(
        &self,
        client_id: &str,
        authorization: Option<&str>,
        request: ClientConfigurationRequest<'_>,
        now: UnixTime,
    ) -> Result<Option<RegisteredClient>, ClientConfigurationRefusal> {
        let refused = ClientConfigurationRefusal::Refused;
        let client = self
            .model
            .find_client(&ClientId::from(client_id))
            .await
            .map_err(|e| refused(internal("storage failure", e)))?;
        let token =
            authorization.and_then(|value| parse_bearer_authorization(value).ok().flatten());
        // Unknown client and wrong token look alike (§2: "respond with ... invalid_token").
        let authorized = match (&client, token) {
            (Some(client), Some(token)) => client
                .registration_token_hash
                .as_ref()
                .is_some_and(|stored| stored.matches(token)),
            _ => false,
        };
        let Some(client) = client.filter(|_| authorized) else {
            return Err(ClientConfigurationRefusal::InvalidToken);
        };
        match request {
            ClientConfigurationRequest::Read => Ok(Some(self.configuration(&client, None))),
            ClientConfigurationRequest::Update { body } => self
                .update_registration(client, body, now)
                .await
                .map(Some)
                .map_err(refused),
            ClientConfigurationRequest::Delete => self
                .remove_client(&client.client_id, now)
                .await
                .map(|_| None)
                .map_err(|e| refused(internal("storage failure", e))),
        }
    }

    /// The client configuration endpoint (RFC 7592 §2) over HTTP, for `client_id`: GET, PUT
    /// or DELETE.
    pub async fn client_configuration_endpoint(
        &self,
        request: Request<Bytes>,
        client_id: &str,
        now: UnixTime,
    ) -> Response<Bytes> {
        let asked = match *request.method() {
            Method::GET => Some(ClientConfigurationRequest::Read),
            Method::PUT => Some(ClientConfigurationRequest::Update {
                body: request.body(),
            }),
            Method::DELETE => Some(ClientConfigurationRequest::Delete),
            _ => None,
        };
        // Another method is judged after the token (read as a read), so an unknown client
        // and a wrong token still look alike whatever the method.
        let answer = self
            .client_configuration(
                client_id,
                // A repeated header presents no registration access token.
                authorization_header(&request).ok().flatten(),
                asked.unwrap_or(ClientConfigurationRequest::Read),
                now,
            )
            .await;
        match (asked, answer) {
            (_, Err(ClientConfigurationRefusal::InvalidToken)) => invalid_token(),
            (_, Err(ClientConfigurationRefusal::Refused(error))) => registration_error(&error),
            (None, Ok(_)) => {
                let mut response = json(
                    StatusCode::METHOD_NOT_ALLOWED,
                    &serde_json::json!({ "error": "invalid_request", "error_description": "use GET, PUT or DELETE" }),
                );
                response
                    .headers_mut()
                    .insert(header::ALLOW, HeaderValue::from_static("GET, PUT, DELETE"));
                response
            }
            (Some(_), Ok(Some(view))) => json(StatusCode::OK, &view),
            (Some(_), Ok(None)) => {
                let mut response = Response::new(Bytes::new());
                *response.status_mut() = StatusCode::NO_CONTENT;
                response
                    .headers_mut()
                    .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
                response
            }
        }
    }

    /// §3: the client information response (no secret unless a new one was just issued).
    fn configuration(&self, client: &ClientRecord, new_secret: Option<String>) -> RegisteredClient {
        RegisteredClient {
            client_id: client.client_id.as_str().to_owned(),
            client_id_issued_at: client.created_at.0,
            client_secret_expires_at: new_secret
                .as_ref()
                .map(|_| client.secret_expires_at.map_or(0, |t| t.0)),
            client_secret: new_secret,
            registration_access_token: None,
            registration_client_uri: Some(self.registration_client_uri(client.client_id.as_str())),
            metadata: client.metadata.clone(),
        }
    }

    /// RFC 7592 §2.2 for a client the application registered: grant types beyond those it
    /// was registered with (other than those any self-registered client may have), or a
    /// scope beyond its registered scope, are `invalid_client_metadata`. Its registered scope
    /// is its ceiling (`client_credentials` included), so the client may not raise it.
    fn check_no_wider_than_registered(
        registered: &ClientMetadata,
        requested: &ClientMetadata,
        policy: &crate::RegistrationPolicy,
    ) -> Result<(), RegistrationError> {
        let allowed = |grant: &String| {
            registered.grant_types.contains(grant) || policy.grant_types.contains(grant)
        };
        if let Some(added) = requested.grant_types.iter().find(|g| !allowed(g)) {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidClientMetadata,
                format!(
                    "grant type `{}` was not registered for this client; ask the operator to change its registration",
                    added.chars().take(64).collect::<String>()
                ),
            ));
        }
        if let Some(ceiling) = &registered.scope {
            let ceiling: Vec<&str> = ceiling.split(' ').collect();
            let widened = match &requested.scope {
                None => true,
                Some(scope) => scope.split(' ').any(|s| !ceiling.contains(&s)),
            };
            if widened {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidClientMetadata,
                    "scope may only keep or narrow the registered scope; ask the operator to widen it",
                ));
            }
        }
        Ok(())
    }

    async fn update_registration(
        &self,
        mut client: ClientRecord,
        body: &[u8],
        now: UnixTime,
    ) -> Result<RegisteredClient, RegistrationError> {
        let raw: Value = serde_json::from_slice(body).map_err(|_| {
            OAuthError::new(
                RegistrationErrorCode::InvalidRequest,
                "the body is not a JSON object",
            )
        })?;
        let Some(object) = raw.as_object() else {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRequest,
                "the body is not a JSON object",
            ));
        };
        if object.get("client_id").and_then(Value::as_str) != Some(client.client_id.as_str()) {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRequest,
                "client_id must be present and equal to the registered client_id",
            ));
        }
        if let Some(owned) = SERVER_OWNED.iter().find(|name| object.contains_key(**name)) {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRequest,
                format!("{owned} is set by the server and must not be sent"),
            ));
        }
        if let Some(secret) = object.get("client_secret") {
            let matches = secret
                .as_str()
                .zip(client.secret_hash.as_ref())
                .is_some_and(|(given, stored)| stored.matches(given));
            if !matches {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "client_secret does not match the current secret",
                ));
            }
        }
        let metadata = ClientMetadata::from_json(body).map_err(|e| {
            OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, e.to_string())
        })?;
        // The same policy as registration: a software statement is verified (and required if
        // registration requires one), and the grant types stay within what a self-registered
        // client may have. A client someone vouched for stays vouched for; a new statement
        // from a trusted issuer vouches anew.
        let policy = &self.config.registration;
        let (metadata, statement_issuer) = mcpauth_dcr::verify_software_statement(
            metadata,
            &policy.software_statement_issuers,
            policy.require_software_statement,
            now,
        )?;
        // The application's voucher is the stronger: a statement never replaces it.
        let by_application = client.vouched == Some(Voucher::Application);
        if let Some(issuer) = statement_issuer
            && !by_application
        {
            client.vouched = Some(Voucher::SoftwareStatement { issuer });
        }
        // The validated metadata names the authentication method (its one home).
        let (_, metadata) = self.validate_client_metadata(metadata)?;
        if by_application {
            // The application chose this client's grants and scope when it registered it;
            // the client itself may keep or drop them, never add to them.
            Self::check_no_wider_than_registered(&client.metadata, &metadata, policy)?;
        } else {
            self.check_self_registered_grants(&metadata, client.vouched.is_some())?;
        }
        client.metadata = metadata;
        let new_secret = self.new_secret_if_needed(&mut client)?;
        if new_secret.is_some() {
            client.secret_expires_at = self.secret_expiry(now);
        }
        if !self
            .model
            .update_client(client.clone())
            .await
            .map_err(|e| internal("storage failure", e))?
        {
            return Err(internal(
                "client vanished during update",
                crate::model_error::Inconsistent,
            ));
        }
        Ok(self.configuration(&client, new_secret))
    }
}
