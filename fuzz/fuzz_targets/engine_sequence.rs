//! Arbitrary sequences of requests through every engine entry point on the memory model:
//! authorization (raw and approved), every grant at the token endpoint (raw and well-formed),
//! device authorization with the user's lookup, approval and denial, client credentials,
//! introspection, revocation, registration and RFC 7592 management. After each request it
//! checks the invariants the engine promises:
//!
//! - nothing panics, and no input is answered `5xx` (the memory model never fails, so a
//!   `5xx` could only be bad input mistaken for a fault);
//! - token and device-authorization responses carry `Cache-Control: no-store`;
//! - every `400` carries a JSON body with an `error` code;
//! - no response but the registration itself shows the client secret or the registration
//!   access token;
//! - an authorization code, or an approved device authorization, yields tokens at most once;
//!   a denied device authorization never does;
//! - a refresh token that was revoked never works again, nor introspects as active;
//! - `client_credentials` never issues a refresh token (RFC 6749 §4.4.3);
//! - once the confidential client's registration is deleted (RFC 7592), none of its refresh
//!   tokens works.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::Arbitrary;
use bytes::Bytes;
use http::{Method, Response, StatusCode};
use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime,
};

const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const RESOURCE: &str = "https://mcp.example.com/mcp";

#[derive(Arbitrary, Debug)]
enum Operation {
    /// A raw authorization query.
    AuthorizeRaw(Vec<u8>),
    /// A well-formed authorization request, approved or denied.
    Authorize {
        loopback_port: u16,
        state: String,
        approve: bool,
    },
    /// A raw token request body, with or without the confidential client's credentials.
    TokenRaw { body: Vec<u8>, authenticated: bool },
    /// Redeem the n-th code seen so far, with the right verifier or a wrong one.
    Redeem { n: u8, right_verifier: bool },
    /// Refresh with the n-th refresh token seen so far.
    Refresh(u8),
    /// Revoke the n-th refresh token seen so far.
    Revoke(u8),
    /// Introspect the n-th refresh token seen so far, as the confidential client.
    Introspect(u8),
    /// A raw introspection or revocation body from the confidential client.
    IntrospectOrRevokeRaw { body: Vec<u8>, revoke: bool },
    /// The confidential client asks for a token for itself.
    ClientCredentials { scope: String },
    /// The confidential client starts a device authorization.
    DeviceAuthorize { scope: String },
    /// A raw device authorization body.
    DeviceAuthorizeRaw { body: Vec<u8>, authenticated: bool },
    /// The user types something on the device page.
    DeviceLookupRaw(String),
    /// The user approves (or denies) the n-th device authorization.
    DeviceDecide { n: u8, approve: bool },
    /// The device polls for the n-th device authorization.
    DevicePoll(u8),
    /// Let time pass.
    Wait(u16),
    /// A raw registration body.
    RegisterRaw(Vec<u8>),
    /// A raw RFC 7592 request for the confidential client, with its token or another.
    Configure {
        method: u8,
        body: Vec<u8>,
        right_token: bool,
    },
}

fn key_der() -> &'static [u8] {
    static DER: OnceLock<Vec<u8>> = OnceLock::new();
    DER.get_or_init(|| {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .map(|d| d.as_ref().to_vec())
        .unwrap_or_default()
    })
}

fn request(method: Method, path: &str, content_type: &str, body: Vec<u8>) -> http::Request<Bytes> {
    let mut request = http::Request::new(Bytes::from(body));
    *request.method_mut() = method;
    *request.uri_mut() = path.parse().unwrap_or_default();
    if let Ok(value) = http::HeaderValue::from_str(content_type) {
        request
            .headers_mut()
            .insert(http::header::CONTENT_TYPE, value);
    }
    request
}

fn form(path: &str, body: Vec<u8>) -> http::Request<Bytes> {
    request(
        Method::POST,
        path,
        "application/x-www-form-urlencoded",
        body,
    )
}

fn encode(pairs: &[(&str, &str)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

/// Prepends `client_id` and `client_secret` (RFC 6749 §2.3.1 `client_secret_post`).
fn with_credentials(client: &Confidential, body: &[u8]) -> Vec<u8> {
    let mut out = encode(&[("client_id", &client.id), ("client_secret", &client.secret)]);
    if !body.is_empty() {
        out.push(b'&');
        out.extend_from_slice(body);
    }
    out
}

fn json(response: &Response<Bytes>) -> Option<serde_json::Value> {
    serde_json::from_slice(response.body()).ok()
}

fn string_field(response: &Response<Bytes>, name: &str) -> Option<String> {
    json(response)?.get(name)?.as_str().map(str::to_owned)
}

struct Confidential {
    id: String,
    secret: String,
    registration_token: String,
    deleted: bool,
    /// Its registration was replaced (RFC 7592 PUT): its authentication method may differ.
    updated: bool,
}

struct Code {
    code: String,
    redirect_uri: String,
    redeemed: bool,
}

struct RefreshToken {
    token: String,
    /// Issued to the confidential client (device flow) rather than the public one.
    confidential: bool,
    revoked: bool,
}

struct Device {
    device_code: String,
    user_code: String,
    denied: bool,
    redeemed: bool,
}

#[derive(Default)]
struct World {
    codes: Vec<Code>,
    refresh: Vec<RefreshToken>,
    devices: Vec<Device>,
}

impl World {
    fn pick<T>(items: &mut [T], n: u8) -> Option<&mut T> {
        let len = items.len();
        items.get_mut(usize::from(n) % len.max(1))
    }
}

/// Every byte the fuzzer chose. libFuzzer learns the strings the engine compares, so it can
/// find the (seeded, so always the same) client secret and send it as, say, a scope, which is
/// then rightly echoed back; secrets it chose are not checked.
fn fuzzer_bytes(operations: &[Operation]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for operation in operations {
        match operation {
            Operation::AuthorizeRaw(b)
            | Operation::TokenRaw { body: b, .. }
            | Operation::IntrospectOrRevokeRaw { body: b, .. }
            | Operation::DeviceAuthorizeRaw { body: b, .. }
            | Operation::RegisterRaw(b)
            | Operation::Configure { body: b, .. } => bytes.extend_from_slice(b),
            Operation::Authorize { state: t, .. }
            | Operation::ClientCredentials { scope: t }
            | Operation::DeviceAuthorize { scope: t }
            | Operation::DeviceLookupRaw(t) => bytes.extend_from_slice(t.as_bytes()),
            _ => {}
        }
        bytes.push(0);
    }
    bytes
}

/// Invariants every response keeps, whatever the input.
fn check_response(response: &Response<Bytes>, token_like: bool, secrets: &[&str]) {
    assert!(
        !response.status().is_server_error(),
        "bad input was answered {}: {:?}",
        response.status(),
        String::from_utf8_lossy(response.body())
    );
    if token_like {
        assert_eq!(
            response
                .headers()
                .get(http::header::CACHE_CONTROL)
                .and_then(|v| v.to_str().ok()),
            Some("no-store"),
            "a token endpoint response without Cache-Control: no-store"
        );
    }
    if response.status() == StatusCode::BAD_REQUEST {
        let error = string_field(response, "error");
        assert!(
            error.is_some_and(|e| !e.is_empty()),
            "a 400 without an error code"
        );
    }
    for secret in secrets {
        assert!(
            !response
                .body()
                .windows(secret.len())
                .any(|w| w == secret.as_bytes()),
            "a response shows a client secret or registration access token"
        );
    }
}

fuzz_target!(|operations: Vec<Operation>| {
    let operations: Vec<Operation> = operations.into_iter().take(64).collect();
    let chosen = fuzzer_bytes(&operations);
    let Ok(key) = SigningKey::es256_from_pkcs8_der(key_der()) else {
        return;
    };
    let Ok(issuer) = "https://auth.example.com".parse() else {
        return;
    };
    let Ok(mut config) = EngineConfig::new(issuer) else {
        return;
    };
    config.refresh_reuse_grace(5);
    let engine = TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(3)),
    );
    futures::executor::block_on(async {
        let mut now = UnixTime(1_800_000_000);
        let mut public = mcpauth_oauth_types::ClientMetadata::default();
        public.redirect_uris = vec!["http://127.0.0.1/cb".into()];
        let Ok(public) = engine.register_client(public, now).await else {
            return;
        };
        let public_id = public.client_id;

        let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
        metadata.token_endpoint_auth_method = Some("client_secret_post".into());
        metadata.grant_types = [
            "client_credentials",
            "urn:ietf:params:oauth:grant-type:device_code",
            "refresh_token",
        ]
        .map(str::to_owned)
        .to_vec();
        let Ok(registered) = engine.register_client(metadata, now).await else {
            return;
        };
        let (Some(secret), Some(registration_token)) = (
            registered.client_secret,
            registered.registration_access_token,
        ) else {
            return;
        };
        // It is a resource server too, so introspection answers it (RFC 7662 §4).
        {
            use mcpauth_token_engine::ClientStore as _;
            let Ok(Some(mut record)) = engine
                .model()
                .find_client(&registered.client_id.as_str().into())
                .await
            else {
                return;
            };
            record.resource_server = true;
            if engine.model().update_client(record).await.is_err() {
                return;
            }
        }
        let mut confidential = Confidential {
            id: registered.client_id,
            secret,
            registration_token,
            deleted: false,
            updated: false,
        };
        let secrets = [
            confidential.secret.clone(),
            confidential.registration_token.clone(),
        ];
        let secrets: Vec<&str> = secrets
            .iter()
            .map(String::as_str)
            .filter(|s| !chosen.windows(s.len()).any(|w| w == s.as_bytes()))
            .collect();

        let mut world = World::default();
        let mut page_visits = 0u64;
        for operation in operations {
            match operation {
                Operation::AuthorizeRaw(query) => {
                    let _ = engine.authorize(&query, now).await;
                }
                Operation::Authorize {
                    loopback_port,
                    state,
                    approve,
                } => {
                    let redirect_uri = format!("http://127.0.0.1:{loopback_port}/cb");
                    let query = encode(&[
                        ("response_type", "code"),
                        ("client_id", &public_id),
                        ("redirect_uri", &redirect_uri),
                        ("code_challenge", CHALLENGE),
                        ("code_challenge_method", "S256"),
                        ("resource", RESOURCE),
                        ("state", &state),
                    ]);
                    let AuthorizeOutcome::NeedsConsent(pending) =
                        engine.authorize(&query, now).await
                    else {
                        continue;
                    };
                    if !approve {
                        if let Ok(denied) = engine.deny(pending) {
                            assert!(
                                !denied.location.contains("code="),
                                "a denial carried a code"
                            );
                        }
                        continue;
                    }
                    let Ok(redirect) = engine.approve(pending, "user", now).await else {
                        continue;
                    };
                    let code = url::Url::parse(&redirect.location).ok().and_then(|u| {
                        u.query_pairs()
                            .find(|(k, _)| k == "code")
                            .map(|(_, v)| v.into_owned())
                    });
                    if let Some(code) = code {
                        world.codes.push(Code {
                            code,
                            redirect_uri,
                            redeemed: false,
                        });
                    }
                }
                Operation::TokenRaw {
                    body,
                    authenticated,
                } => {
                    let body = if authenticated {
                        with_credentials(&confidential, &body)
                    } else {
                        body
                    };
                    let response = engine.token_endpoint(form("/token", body), now).await;
                    check_response(&response, true, &secrets);
                }
                Operation::Redeem { n, right_verifier } => {
                    let Some(code) = World::pick(&mut world.codes, n) else {
                        continue;
                    };
                    let verifier = if right_verifier {
                        VERIFIER.to_owned()
                    } else {
                        "w".repeat(43)
                    };
                    let body = encode(&[
                        ("grant_type", "authorization_code"),
                        ("code", &code.code),
                        ("redirect_uri", &code.redirect_uri),
                        ("code_verifier", &verifier),
                        ("client_id", &public_id),
                    ]);
                    let response = engine.token_endpoint(form("/token", body), now).await;
                    check_response(&response, true, &secrets);
                    if response.status() == StatusCode::OK {
                        assert!(right_verifier, "a wrong code_verifier redeemed a code");
                        assert!(!code.redeemed, "an authorization code yielded tokens twice");
                        code.redeemed = true;
                        if let Some(token) = string_field(&response, "refresh_token") {
                            world.refresh.push(RefreshToken {
                                token,
                                confidential: false,
                                revoked: false,
                            });
                        }
                    }
                }
                Operation::Refresh(n) => {
                    let Some(refresh) = World::pick(&mut world.refresh, n) else {
                        continue;
                    };
                    let pairs = [
                        ("grant_type", "refresh_token"),
                        ("refresh_token", refresh.token.as_str()),
                    ];
                    let body = if refresh.confidential {
                        with_credentials(&confidential, &encode(&pairs))
                    } else {
                        let mut pairs = pairs.to_vec();
                        pairs.push(("client_id", &public_id));
                        encode(&pairs)
                    };
                    let response = engine.token_endpoint(form("/token", body), now).await;
                    check_response(&response, true, &secrets);
                    if response.status() == StatusCode::OK {
                        assert!(!refresh.revoked, "a revoked refresh token worked again");
                        assert!(
                            !(refresh.confidential && confidential.deleted),
                            "a deleted client's refresh token worked"
                        );
                        let issued_to_confidential = refresh.confidential;
                        if let Some(token) = string_field(&response, "refresh_token") {
                            world.refresh.push(RefreshToken {
                                token,
                                confidential: issued_to_confidential,
                                revoked: false,
                            });
                        }
                    }
                }
                Operation::Revoke(n) => {
                    let Some(refresh) = World::pick(&mut world.refresh, n) else {
                        continue;
                    };
                    let body = if refresh.confidential {
                        with_credentials(&confidential, &encode(&[("token", &refresh.token)]))
                    } else {
                        encode(&[("token", &refresh.token), ("client_id", &public_id)])
                    };
                    let response = engine.revocation_endpoint(form("/revoke", body), now).await;
                    check_response(&response, false, &secrets);
                    if response.status() == StatusCode::OK {
                        refresh.revoked = true;
                    } else {
                        // Only a deleted client may be refused: RFC 7009 §2.2 answers 200 even
                        // for tokens that are already invalid.
                        assert!(
                            refresh.confidential && (confidential.deleted || confidential.updated),
                            "revocation refused: {}",
                            response.status()
                        );
                    }
                }
                Operation::Introspect(n) => {
                    let Some(refresh) = World::pick(&mut world.refresh, n) else {
                        continue;
                    };
                    let body =
                        with_credentials(&confidential, &encode(&[("token", &refresh.token)]));
                    let response = engine
                        .introspection_endpoint(form("/introspect", body), now)
                        .await;
                    check_response(&response, false, &secrets);
                    let active = json(&response)
                        .and_then(|j| j.get("active").and_then(serde_json::Value::as_bool));
                    if active == Some(true) {
                        assert!(
                            !refresh.revoked,
                            "a revoked refresh token introspected as active"
                        );
                        assert!(
                            refresh.confidential,
                            "another client's refresh token introspected as active"
                        );
                    }
                }
                Operation::IntrospectOrRevokeRaw { body, revoke } => {
                    let body = with_credentials(&confidential, &body);
                    let response = if revoke {
                        engine.revocation_endpoint(form("/revoke", body), now).await
                    } else {
                        engine
                            .introspection_endpoint(form("/introspect", body), now)
                            .await
                    };
                    check_response(&response, false, &secrets);
                }
                Operation::ClientCredentials { scope } => {
                    let mut pairs =
                        vec![("grant_type", "client_credentials"), ("resource", RESOURCE)];
                    if !scope.is_empty() {
                        pairs.push(("scope", &scope));
                    }
                    let response = engine
                        .token_endpoint(
                            form("/token", with_credentials(&confidential, &encode(&pairs))),
                            now,
                        )
                        .await;
                    check_response(&response, true, &secrets);
                    if response.status() == StatusCode::OK {
                        assert!(!confidential.deleted, "a deleted client got a token");
                        assert!(
                            string_field(&response, "refresh_token").is_none(),
                            "client_credentials issued a refresh token"
                        );
                    }
                }
                Operation::DeviceAuthorize { scope } => {
                    let mut pairs = vec![("resource", RESOURCE)];
                    if !scope.is_empty() {
                        pairs.push(("scope", &scope));
                    }
                    let body = with_credentials(&confidential, &encode(&pairs));
                    let response = engine
                        .device_authorization_endpoint(form("/device_authorization", body), now)
                        .await;
                    check_response(&response, true, &secrets);
                    if let (Some(device_code), Some(user_code)) = (
                        string_field(&response, "device_code"),
                        string_field(&response, "user_code"),
                    ) {
                        world.devices.push(Device {
                            device_code,
                            user_code,
                            denied: false,
                            redeemed: false,
                        });
                    }
                }
                Operation::DeviceAuthorizeRaw {
                    body,
                    authenticated,
                } => {
                    let body = if authenticated {
                        with_credentials(&confidential, &body)
                    } else {
                        body
                    };
                    let response = engine
                        .device_authorization_endpoint(form("/device_authorization", body), now)
                        .await;
                    check_response(&response, true, &secrets);
                }
                Operation::DeviceLookupRaw(user_code) => {
                    let _ = engine.device_lookup(&user_code, "fuzzer", now).await;
                }
                Operation::DeviceDecide { n, approve } => {
                    let Some(device) = World::pick(&mut world.devices, n) else {
                        continue;
                    };
                    // The verification page looks the code up, then decides on what it
                    // showed (each visit its own caller, so the lookup limit never hides one).
                    page_visits += 1;
                    let caller = format!("page-{page_visits}");
                    let Ok(pending) = engine.device_lookup(&device.user_code, &caller, now).await
                    else {
                        continue;
                    };
                    if approve {
                        let _ = engine.approve_device(pending, "user", now).await;
                    } else if engine.deny_device(pending, now).await.is_ok() {
                        device.denied = true;
                    }
                }
                Operation::DevicePoll(n) => {
                    let Some(device) = World::pick(&mut world.devices, n) else {
                        continue;
                    };
                    let body = with_credentials(
                        &confidential,
                        &encode(&[
                            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                            ("device_code", &device.device_code),
                        ]),
                    );
                    let response = engine.token_endpoint(form("/token", body), now).await;
                    check_response(&response, true, &secrets);
                    if response.status() == StatusCode::OK {
                        assert!(
                            !device.denied,
                            "a denied device authorization yielded tokens"
                        );
                        assert!(
                            !device.redeemed,
                            "a device authorization yielded tokens twice"
                        );
                        device.redeemed = true;
                        if let Some(token) = string_field(&response, "refresh_token") {
                            world.refresh.push(RefreshToken {
                                token,
                                confidential: true,
                                revoked: false,
                            });
                        }
                    }
                }
                Operation::Wait(seconds) => now = now.plus(u64::from(seconds)),
                Operation::RegisterRaw(body) => {
                    let response = engine
                        .registration_endpoint(
                            request(Method::POST, "/register", "application/json", body),
                            now,
                        )
                        .await;
                    check_response(&response, false, &secrets);
                }
                Operation::Configure {
                    method,
                    body,
                    right_token,
                } => {
                    let method = match method % 4 {
                        0 => Method::GET,
                        1 => Method::PUT,
                        2 => Method::DELETE,
                        _ => Method::POST,
                    };
                    let deleting = method == Method::DELETE;
                    let updating = method == Method::PUT;
                    let mut configure =
                        request(method, "/register/client", "application/json", body);
                    let token = if right_token {
                        confidential.registration_token.as_str()
                    } else {
                        "not-the-token"
                    };
                    if let Ok(value) = http::HeaderValue::from_str(&format!("Bearer {token}")) {
                        configure
                            .headers_mut()
                            .insert(http::header::AUTHORIZATION, value);
                    }
                    let response = engine
                        .client_configuration_endpoint(configure, &confidential.id, now)
                        .await;
                    check_response(&response, false, &secrets);
                    if response.status().is_success() {
                        assert!(
                            right_token,
                            "RFC 7592 request succeeded with a wrong registration access token"
                        );
                        confidential.deleted |= deleting;
                        confidential.updated |= updating;
                    }
                }
            }
        }
    });
});
