//! The form and JSON endpoints as typed calls: the `Authorization` header's value and the
//! parsed form (or the registration's JSON body) in; a typed answer or a typed refusal out.
//! The `http` entries ([`TokenEngine::token_endpoint`] and its siblings) frame these; an
//! embedder with framing of its own calls them directly. (RFC 7592's client configuration
//! has its typed call beside its rules, `TokenEngine::client_configuration` in
//! `client_management.rs`.)

use mcpauth_oauth_types::{
    ClientMetadata, DeviceAuthorizationRequest, FormParams, GrantType, IntrospectionErrorCode,
    OAuthError, RegistrationErrorCode, RevocationErrorCode, RevocationRequest, TokenErrorCode,
    TokenRequest, TokenResponse, parse_bearer_authorization,
};

use crate::UnixTime;
use crate::client_auth::ClientAuthError;
use crate::error::{ClientAuthCodes, RegistrationError, internal};
use crate::grant::Granted;
use crate::grant::authorization_code::CodeRedemption;
use crate::grant::id_jag_issuance::ID_JAG_TOKEN_TYPE;
use crate::grant::jwt_bearer::JwtBearerRequest;
use crate::grant::token_exchange::Exchange;
use crate::model::{ClientRecord, OAuthServerModel, RateLimitKey, SecretHash};
use crate::registration::Registrant;
use crate::{DeviceAuthorization, Introspection, RegisteredClient, TokenEngine};

/// An endpoint's refusal: the OAuth error, and whether the answer carries
/// `WWW-Authenticate: Basic` (RFC 6749 §5.2: a client that tried HTTP Basic and failed to
/// authenticate gets `401` with the challenge).
#[derive(Debug)]
#[non_exhaustive]
pub struct EndpointError<C> {
    /// The error the client gets.
    pub error: OAuthError<C>,
    /// Whether the client authenticated with HTTP Basic, so a failed authentication is
    /// answered with `WWW-Authenticate: Basic`.
    pub basic_challenge: bool,
}

impl<C> From<OAuthError<C>> for EndpointError<C> {
    fn from(error: OAuthError<C>) -> Self {
        Self {
            error,
            basic_challenge: false,
        }
    }
}

/// The token endpoint's refusal ([`TokenEngine::token`]).
pub type TokenEndpointError = EndpointError<TokenErrorCode>;

fn auth_failure<C: ClientAuthCodes>(error: ClientAuthError) -> EndpointError<C> {
    match error {
        ClientAuthError::Malformed(d) => {
            EndpointError::from(OAuthError::new(C::INVALID_REQUEST, d))
        }
        ClientAuthError::Failed { description, basic } => EndpointError {
            error: OAuthError::new(C::INVALID_CLIENT, description),
            basic_challenge: basic,
        },
        ClientAuthError::Storage(e) => {
            EndpointError::from(OAuthError::new(C::SERVER_ERROR, "storage failure").with_source(e))
        }
    }
}

/// A registration request (RFC 7591 §3.1), as [`TokenEngine::registration`] reads it.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct RegistrationRequest<'a> {
    /// The `Authorization` header's value, if any: an initial access token is presented as
    /// `Bearer <token>` (RFC 7591 §3).
    pub authorization: Option<&'a str>,
    /// Who is registering, for the per-caller limit (the adapter's
    /// [`CallerKey`](crate::CallerKey)).
    pub caller: &'a str,
    /// The client metadata, a JSON document; `None` when the request was not a `POST` of
    /// `application/json`.
    pub body: Option<&'a [u8]>,
}

impl<'a> RegistrationRequest<'a> {
    /// A registration by `caller` carrying `authorization` and `body`.
    #[must_use]
    pub fn new(authorization: Option<&'a str>, caller: &'a str, body: Option<&'a [u8]>) -> Self {
        Self {
            authorization,
            caller,
            body,
        }
    }
}

/// Why the registration endpoint refused ([`TokenEngine::registration`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum RegistrationRefusal {
    /// Initial access tokens are configured and none of them was presented: `401` with
    /// `WWW-Authenticate: Bearer error="invalid_token"` (RFC 7591 §3, RFC 6750 §3.1).
    InvalidInitialAccessToken,
    /// More registrations from this caller this hour than the policy allows: `429`, to be
    /// retried after `retry_after` seconds.
    TooManyRegistrations {
        /// Seconds until the caller's window starts over.
        retry_after: u64,
    },
    /// An RFC 7591 §3.2.2 error (or `server_error`).
    Refused(RegistrationError),
}

impl<M: OAuthServerModel + ?Sized> TokenEngine<M> {
    /// The token endpoint (RFC 6749 §3.2) as a typed call: the `Authorization` header value and
    /// the parsed form. The error says whether the answer must carry `WWW-Authenticate: Basic`
    /// (RFC 6749 §5.2).
    ///
    /// # Errors
    ///
    /// An RFC 6749 §5.2 error; nothing changed in storage unless tokens were issued.
    pub async fn token(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenEndpointError> {
        self.token_with_proof(authorization, &[], form, now).await
    }

    /// The token endpoint as a typed call, with the request's `DPoP` header values (RFC 9449
    /// §4.1, as bytes; more than one is refused): a valid proof binds the tokens issued to its
    /// key (`cnf.jkt`, `token_type: DPoP`). Send [`dpop_nonce`](Self::dpop_nonce) in
    /// `DPoP-Nonce` with the answer, whatever it is, when it is `Some`.
    ///
    /// # Errors
    ///
    /// An RFC 6749 §5.2 error, or RFC 9449's `invalid_dpop_proof` and `use_dpop_nonce`;
    /// nothing changed in storage unless tokens were issued (or the proof's `jti` was
    /// recorded as used).
    pub async fn token_with_proof(
        &self,
        authorization: Option<&str>,
        dpop: &[&[u8]],
        form: &FormParams,
        now: UnixTime,
    ) -> Result<TokenResponse, TokenEndpointError> {
        self.token_granted(authorization, dpop, form, now)
            .await
            .map(|(granted, _)| granted.response)
            .map_err(|(error, _)| error)
    }

    /// [`token_with_proof`](Self::token_with_proof), with whom the tokens stand for and the
    /// client they were issued to; a refusal with the client, when it had authenticated.
    pub(crate) async fn token_granted(
        &self,
        authorization: Option<&str>,
        dpop: &[&[u8]],
        form: &FormParams,
        now: UnixTime,
    ) -> Result<(Granted, String), (TokenEndpointError, Option<String>)> {
        let mut authenticated = None;
        self.token_for_client(authorization, dpop, form, now, &mut authenticated)
            .await
            .map_err(|error| (error, authenticated))
    }

    async fn token_for_client(
        &self,
        authorization: Option<&str>,
        dpop: &[&[u8]],
        form: &FormParams,
        now: UnixTime,
        authenticated: &mut Option<String>,
    ) -> Result<(Granted, String), TokenEndpointError> {
        let request = TokenRequest::from_form(form).map_err(|e| {
            EndpointError::from(OAuthError::new(
                TokenErrorCode::InvalidRequest,
                e.to_string(),
            ))
        })?;
        let unsupported = || {
            EndpointError::from(OAuthError::new(
                TokenErrorCode::UnsupportedGrantType,
                "grant_type is not supported by this server",
            ))
        };
        let grant_type = request.grant_type().ok_or_else(unsupported)?;
        if (grant_type == GrantType::DeviceCode && !self.serves_device_flow())
            || (grant_type == GrantType::JwtBearer && !self.serves_jwt_bearer())
        {
            return Err(unsupported());
        }
        if !matches!(
            grant_type,
            GrantType::AuthorizationCode
                | GrantType::RefreshToken
                | GrantType::ClientCredentials
                | GrantType::DeviceCode
                | GrantType::TokenExchange
                | GrantType::JwtBearer
        ) {
            return Err(unsupported());
        }
        // RFC 7523 §3.1: client authentication is optional with the JWT bearer grant; a
        // workload token is a credential of its own, so a request naming no client is read
        // as the workload's, for the client its rule names. Nothing is recorded (the proof's
        // jti included) until the token has been verified and its client found.
        let credentials = request.body_credentials();
        if grant_type == GrantType::JwtBearer
            && authorization.is_none()
            && credentials.client_id.is_none()
            && credentials.client_secret.is_none()
            && credentials.client_assertion.is_none()
            && let TokenRequest::JwtBearer {
                assertion,
                scope,
                resource,
                ..
            } = &request
        {
            let workload = async {
                let verified = self.verified_assertion(assertion, now).await?;
                let client = self.workload_client(&verified).await?;
                *authenticated = Some(client.client_id.as_str().to_owned());
                let dpop_jkt = self.token_request_proof(Some(&client), dpop, now).await?;
                let bearer = JwtBearerRequest {
                    scope: scope.as_ref(),
                    resource,
                    dpop_jkt: dpop_jkt.as_deref(),
                };
                let granted = self.jwt_bearer(&client, verified, bearer, now).await?;
                Ok::<_, crate::TokenError>((granted, client.client_id.as_str().to_owned()))
            };
            return workload.await.map_err(EndpointError::from);
        }
        let client = self
            .authenticate_client(authorization, credentials, now)
            .await
            .map_err(auth_failure)?;
        *authenticated = Some(client.client_id.as_str().to_owned());
        if !client.allows_grant(grant_type) {
            return Err(EndpointError::from(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "the client did not register this grant type",
            )));
        }
        // A client that registered itself without anyone vouching for it gets user-delegated
        // authority only, whatever its record says (records from before this rule included).
        if matches!(
            grant_type,
            GrantType::ClientCredentials | GrantType::TokenExchange
        ) && !client.may_act_for_itself()
        {
            return Err(EndpointError::from(OAuthError::new(
                TokenErrorCode::UnauthorizedClient,
                "client_credentials and token exchange are for clients the operator registered or vouched for; this client registered itself",
            )));
        }
        let dpop_jkt = self
            .token_request_proof(Some(&client), dpop, now)
            .await
            .map_err(EndpointError::from)?;
        let dpop_jkt = dpop_jkt.as_deref();
        let result = match request {
            TokenRequest::AuthorizationCode {
                code,
                redirect_uri,
                code_verifier,
                resource,
                ..
            } => {
                let redemption = CodeRedemption {
                    code,
                    redirect_uri: redirect_uri.as_deref(),
                    code_verifier,
                    resource: &resource,
                    dpop_jkt,
                };
                self.redeem_code(&client, redemption, now).await
            }
            TokenRequest::RefreshToken {
                refresh_token,
                scope,
                resource,
                ..
            } => {
                self.refresh(
                    &client,
                    &refresh_token,
                    scope.as_ref(),
                    &resource,
                    dpop_jkt,
                    now,
                )
                .await
            }
            TokenRequest::ClientCredentials {
                scope, resource, ..
            } => {
                self.client_credentials(&client, scope.as_ref(), &resource, dpop_jkt, now)
                    .await
            }
            TokenRequest::DeviceCode { device_code, .. } => {
                self.redeem_device_code(&client, &device_code, dpop_jkt, now)
                    .await
            }
            TokenRequest::TokenExchange {
                subject_token,
                subject_token_type,
                actor_token,
                requested_token_type,
                resource,
                audience,
                scope,
                ..
            } => {
                let mut targets = resource.clone();
                for name in &audience {
                    if !targets.contains(name) {
                        targets.push(name.clone());
                    }
                }
                let exchange = Exchange {
                    subject_token: &subject_token,
                    subject_token_type: &subject_token_type,
                    has_actor_token: actor_token.is_some(),
                    requested_token_type: requested_token_type.as_deref(),
                    targets,
                    resource: &resource,
                    audience: &audience,
                    scope: scope.as_ref(),
                    dpop_jkt,
                };
                if requested_token_type.as_deref() == Some(ID_JAG_TOKEN_TYPE) {
                    self.issue_identity_assertion(&client, exchange, now).await
                } else {
                    self.exchange(&client, exchange, now).await
                }
            }
            TokenRequest::JwtBearer {
                assertion,
                scope,
                resource,
                ..
            } => {
                let bearer = JwtBearerRequest {
                    scope: scope.as_ref(),
                    resource: &resource,
                    dpop_jkt,
                };
                match self.verified_assertion(&assertion, now).await {
                    Ok(verified) => self.jwt_bearer(&client, verified, bearer, now).await,
                    Err(refused) => Err(refused),
                }
            }
            _ => Err(unsupported().error),
        };
        result
            .map(|granted| (granted, client.client_id.as_str().to_owned()))
            .map_err(EndpointError::from)
    }

    /// The device authorization endpoint (RFC 8628 §3.1–§3.2) as a typed call: the
    /// `Authorization` header value and the parsed form.
    ///
    /// # Errors
    ///
    /// An RFC 6749 §5.2 error; nothing is stored unless the authorization was.
    pub async fn device_authorization(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<DeviceAuthorization, TokenEndpointError> {
        let parsed = DeviceAuthorizationRequest::from_form(form).map_err(|e| {
            EndpointError::from(OAuthError::new(
                TokenErrorCode::InvalidRequest,
                e.to_string(),
            ))
        })?;
        let client = self
            .authenticate_client(authorization, &parsed.body_credentials, now)
            .await
            .map_err(auth_failure)?;
        self.start_device_authorization(&client, &parsed, now)
            .await
            .map_err(EndpointError::from)
    }

    /// The revocation endpoint (RFC 7009 §2) as a typed call: the `Authorization` header
    /// value and the parsed form. An unknown token is not an error (§2.2).
    ///
    /// # Errors
    ///
    /// An RFC 7009 §2.2.1 error.
    pub async fn revocation(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<(), EndpointError<RevocationErrorCode>> {
        self.revocation_by(authorization, form, now)
            .await
            .map(|_| ())
    }

    /// [`revocation`](Self::revocation), answering which client revoked.
    pub(crate) async fn revocation_by(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<String, EndpointError<RevocationErrorCode>> {
        let (client, request) = self.token_request(authorization, form, now).await?;
        self.revoke(&client, &request, now)
            .await
            .map_err(EndpointError::from)?;
        Ok(client.client_id.as_str().to_owned())
    }

    /// The introspection endpoint (RFC 7662 §2) as a typed call: the `Authorization` header
    /// value and the parsed form. Only resource servers may introspect (§4).
    ///
    /// # Errors
    ///
    /// An RFC 7662 §2.3 error.
    pub async fn introspection(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<Introspection, EndpointError<IntrospectionErrorCode>> {
        let (client, request) = self.token_request(authorization, form, now).await?;
        self.introspect(&client, &request, now)
            .await
            .map_err(EndpointError::from)
    }

    /// Reads a revocation or introspection request (RFC 7009 §2.1, RFC 7662 §2.1) and
    /// authenticates its client.
    async fn token_request<C: ClientAuthCodes>(
        &self,
        authorization: Option<&str>,
        form: &FormParams,
        now: UnixTime,
    ) -> Result<(ClientRecord, RevocationRequest), EndpointError<C>> {
        let parsed = RevocationRequest::from_form(form)
            .map_err(|e| EndpointError::from(OAuthError::new(C::INVALID_REQUEST, e.to_string())))?;
        let client = self
            .authenticate_client(authorization, &parsed.body_credentials, now)
            .await
            .map_err(auth_failure)?;
        Ok((client, parsed))
    }

    /// The registration endpoint (RFC 7591 §3) as a typed call. In order: the initial access
    /// token (when the policy names any), the caller's hourly limit, whether dynamic
    /// registration is on, the body, the registration policy.
    ///
    /// # Errors
    ///
    /// [`RegistrationRefusal`]; nothing is stored unless the client was.
    pub async fn registration(
        &self,
        request: RegistrationRequest<'_>,
        now: UnixTime,
    ) -> Result<RegisteredClient, RegistrationRefusal> {
        let policy = &self.config.registration;
        let initial_access_token = if policy.initial_access_token_hashes.is_empty() {
            false
        } else {
            let presented = request
                .authorization
                .and_then(|value| parse_bearer_authorization(value).ok().flatten())
                .map(SecretHash::of);
            let valid = presented.is_some_and(|presented| {
                policy
                    .initial_access_token_hashes
                    .iter()
                    .any(|known| known.ct_eq(&presented))
            });
            if !valid {
                return Err(RegistrationRefusal::InvalidInitialAccessToken);
            }
            true
        };
        match self
            .model
            .hit(&RateLimitKey::new("register", request.caller), now, 3600)
            .await
        {
            Ok(hits) if hits > policy.per_caller_per_hour => {
                return Err(RegistrationRefusal::TooManyRegistrations {
                    retry_after: 3600 - now.0 % 3600,
                });
            }
            Ok(_) => {}
            Err(e) => {
                return Err(RegistrationRefusal::Refused(internal("storage failure", e)));
            }
        }
        let result: Result<_, RegistrationError> = async {
            if !self.config.dynamic_registration {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "dynamic client registration is disabled on this server",
                ));
            }
            let Some(body) = request.body else {
                return Err(OAuthError::new(
                    RegistrationErrorCode::InvalidRequest,
                    "POST an application/json body",
                ));
            };
            let metadata = ClientMetadata::from_json(body).map_err(|e| {
                OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, e.to_string())
            })?;
            let (metadata, vouched) = self
                .apply_registration_policy(metadata, initial_access_token, now)
                .await?;
            self.register(metadata, now, Registrant::Endpoint { vouched })
                .await
        }
        .await;
        result.map_err(RegistrationRefusal::Refused)
    }
}
