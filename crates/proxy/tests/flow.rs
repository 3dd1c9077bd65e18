//! The federated sign-in through the engine: an MCP client's request held, the user sent
//! upstream, the callback checked and finished with the engine's own code for the
//! mapper's subject. The upstream is a generic OpenID Connect provider answered by a
//! recording transport (the end-to-end test against a real provider lives beside the
//! server); every refusal the issue lists is here: an upstream error, a forged `state`, a
//! replayed callback, a mismatched `iss`, another browser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_proxy::upstream::{CallbackError, TransportError, UpstreamTokens};
use mcpauth_proxy::{
    CallbackOutcome, FederatedLogin, Mapping, MemoryUpstreamRequests, Preset, Provider,
    ProviderConfig, TokenMapper, Transport, UpstreamIdentity,
};
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, PendingAuthorization, SigningKey, TokenEngine,
    UnixTime,
};
use serde_json::{Value, json};
use url::Url;

const NOW: UnixTime = UnixTime(1_800_000_000);
const IDP: &str = "https://idp.example.com";
const VERIFIER: &str = "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk";
const CHALLENGE: &str = "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc";
const REDIRECT: &str = "http://127.0.0.1:53682/callback";
const RESOURCE: &str = "https://mcp.example.com/mcp";

/// The upstream: signs ID tokens for whatever nonce the last authorization request sent.
#[derive(Debug)]
struct Upstream {
    key: jsonwebtoken::EncodingKey,
    kid: String,
    jwks: Vec<u8>,
    /// The nonce to put in the next ID token, and the `sub`.
    next: Mutex<(String, String)>,
}

impl Upstream {
    fn new() -> Self {
        let der = std::fs::read(format!(
            "{}/tests/recorded/test_rsa_pkcs1.der",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap();
        let signing = SigningKey::rs256_from_pkcs1_der(&der).unwrap();
        Self {
            key: jsonwebtoken::EncodingKey::from_rsa_der(&der),
            kid: signing.kid().to_owned(),
            jwks: serde_json::to_vec(&json!({ "keys": [signing.public_jwk().unwrap()] })).unwrap(),
            next: Mutex::new((String::new(), "upstream-user-7".into())),
        }
    }
}

#[async_trait::async_trait]
impl Transport for Upstream {
    async fn send(
        &self,
        request: http::Request<Vec<u8>>,
    ) -> Result<http::Response<Vec<u8>>, TransportError> {
        let json = |value: Value| {
            Ok(http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .body(serde_json::to_vec(&value).unwrap())
                .unwrap())
        };
        match request.uri().path() {
            "/token" => {
                let form: HashMap<String, String> = url::form_urlencoded::parse(request.body())
                    .into_owned()
                    .collect();
                assert_eq!(form["code"], "upstream-code");
                assert_eq!(form["code_verifier"].len(), 43);
                let (nonce, sub) = self.next.lock().unwrap().clone();
                let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256);
                header.kid = Some(self.kid.clone());
                let id_token = jsonwebtoken::encode(
                    &header,
                    &json!({ "iss": IDP, "sub": sub, "aud": "our-client-id", "iat": NOW.0,
                             "exp": NOW.0 + 300, "nonce": nonce, "email": "ada@example.com",
                             "email_verified": true }),
                    &self.key,
                )
                .unwrap();
                json(
                    json!({ "access_token": "upstream-access", "token_type": "Bearer",
                             "expires_in": 300, "id_token": id_token }),
                )
            }
            "/jwks" => Ok(http::Response::builder()
                .status(200)
                .body(self.jwks.clone())
                .unwrap()),
            "/me" => {
                let sub = self.next.lock().unwrap().1.clone();
                json(json!({ "sub": sub, "name": "Ada" }))
            }
            other => Err(TransportError(format!("unexpected request to {other}"))),
        }
    }
}

/// Maps to `local-{sub}`, refusing `banned`; records what it saw.
#[derive(Debug, Default)]
struct Mapper(Mutex<Vec<(UpstreamIdentity, String)>>);

#[async_trait::async_trait]
impl TokenMapper for Mapper {
    async fn map(
        &self,
        identity: &UpstreamIdentity,
        tokens: &UpstreamTokens,
        _client: Option<&PendingAuthorization>,
    ) -> Mapping {
        self.0
            .lock()
            .unwrap()
            .push((identity.clone(), tokens.access_token.clone()));
        if identity.subject == "banned" {
            Mapping::Refuse("this account may not use MCP servers".into())
        } else {
            Mapping::Subject(format!("local-{}", identity.subject))
        }
    }
}

struct Setup {
    engine: Arc<TokenEngine<MemoryModel>>,
    login: FederatedLogin<MemoryModel, MemoryUpstreamRequests>,
    upstream: Arc<Upstream>,
    mapper: Arc<Mapper>,
    client_id: String,
}

fn discovery() -> Vec<u8> {
    serde_json::to_vec(&json!({
        "issuer": IDP,
        "authorization_endpoint": format!("{IDP}/authorize"),
        "token_endpoint": format!("{IDP}/token"),
        "userinfo_endpoint": format!("{IDP}/me"),
        "jwks_uri": format!("{IDP}/jwks"),
        "response_types_supported": ["code"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true
    }))
    .unwrap()
}

async fn setup() -> Setup {
    let model = Arc::new(MemoryModel::new());
    let der = {
        use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
        EcdsaKeyPair::generate_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            &aws_lc_rs::rand::SystemRandom::new(),
        )
        .unwrap()
        .as_ref()
        .to_vec()
    };
    let engine = Arc::new(TokenEngine::new(
        EngineConfig::new("https://auth.example.com/tenant".parse().unwrap()).unwrap(),
        model,
        SigningKey::es256_from_pkcs8_der(&der).unwrap(),
        Arc::new(SeededRandom::new(9)),
    ));
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    let client_id = engine
        .register_client(metadata, NOW)
        .await
        .unwrap()
        .client_id;
    let config = ProviderConfig::new("corp", Preset::Oidc, "our-client-id")
        .client_secret("our-secret")
        .issuer(Url::parse(IDP).unwrap());
    let provider = Provider::from_discovery(&config, &discovery()).unwrap();
    let upstream = Arc::new(Upstream::new());
    let mapper = Arc::new(Mapper::default());
    let login = FederatedLogin::new(
        engine.clone(),
        vec![provider],
        MemoryUpstreamRequests::default(),
        mapper.clone(),
        upstream.clone(),
        Arc::new(SeededRandom::new(11)),
    );
    Setup {
        engine,
        login,
        upstream,
        mapper,
        client_id,
    }
}

impl Setup {
    async fn pending(&self) -> PendingAuthorization {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", self.client_id.as_str()),
                ("redirect_uri", REDIRECT),
                ("code_challenge", CHALLENGE),
                ("code_challenge_method", "S256"),
                ("state", "mcp-client-state"),
                ("resource", RESOURCE),
            ])
            .finish();
        match self.engine.authorize(query.as_bytes(), NOW).await {
            AuthorizeOutcome::NeedsConsent(pending) => pending,
            other => panic!("{other:?}"),
        }
    }

    /// Sends a user upstream; returns (state, cookie header the browser holds).
    async fn begin(&self) -> (String, String) {
        let redirect = self
            .login
            .begin("corp", self.pending().await, NOW)
            .await
            .unwrap();
        let location = Url::parse(&redirect.location).unwrap();
        let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
        assert_eq!(
            q["redirect_uri"],
            "https://auth.example.com/tenant/upstream/corp/callback"
        );
        self.upstream.next.lock().unwrap().0 = q["nonce"].clone();
        // On an https issuer the binding cookie is a `__Host-` cookie: Secure, this host only,
        // and so at Path=/ (the prefix requires it).
        assert!(
            redirect.set_cookie.starts_with("__Host-mcpauth_upstream_")
                && redirect.set_cookie.contains("; Path=/;")
                && redirect.set_cookie.contains("HttpOnly")
                && redirect.set_cookie.contains("Secure")
                && redirect.set_cookie.contains("SameSite=Lax"),
            "{}",
            redirect.set_cookie
        );
        let cookie = redirect.set_cookie.split(';').next().unwrap().to_owned();
        (q["state"].clone(), cookie)
    }

    async fn callback(&self, query: &str, cookie: &str) -> CallbackOutcome {
        self.login.callback("corp", query, cookie, NOW).await
    }
}

fn client_redirect(outcome: &CallbackOutcome) -> HashMap<String, String> {
    match outcome {
        CallbackOutcome::ToClient { location, .. } => {
            assert!(location.starts_with(REDIRECT), "{location}");
            Url::parse(location)
                .unwrap()
                .query_pairs()
                .into_owned()
                .collect()
        }
        other => panic!("expected a redirect to the MCP client, got {other:?}"),
    }
}

fn ok_query(state: &str) -> String {
    format!("code=upstream-code&state={state}&iss={}", urlencode(IDP))
}

fn urlencode(text: &str) -> String {
    url::form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

// The whole way: the MCP client gets our code, which redeems for our token whose `sub` is
// the mapper's; the upstream tokens stayed with the mapper.
#[tokio::test]
async fn the_mcp_client_gets_our_code_for_the_mappers_subject() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    let outcome = setup.callback(&ok_query(&state), &cookie).await;
    let back = client_redirect(&outcome);
    assert_eq!(back["state"], "mcp-client-state");
    assert_eq!(back["iss"], "https://auth.example.com/tenant");
    let CallbackOutcome::ToClient { clear_cookie, .. } = &outcome else {
        unreachable!()
    };
    assert!(clear_cookie.contains("Max-Age=0"));

    let form = mcpauth_oauth_types::FormParams::from_pairs([
        ("grant_type", "authorization_code"),
        ("code", back["code"].as_str()),
        ("redirect_uri", REDIRECT),
        ("client_id", setup.client_id.as_str()),
        ("code_verifier", VERIFIER),
        ("resource", RESOURCE),
    ]);
    let tokens = setup.engine.token(None, &form, NOW).await.unwrap();
    assert_ne!(
        tokens.access_token, "upstream-access",
        "no token passthrough"
    );
    let payload = tokens.access_token.split('.').nth(1).unwrap();
    let claims: Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(payload)
            .unwrap(),
    )
    .unwrap();
    assert_eq!(claims["sub"], "local-upstream-user-7");
    assert_eq!(claims["aud"], RESOURCE);
    let seen = setup.mapper.0.lock().unwrap();
    assert_eq!(seen[0].0.email.as_deref(), Some("ada@example.com"));
    assert_eq!(
        seen[0].0.name.as_deref(),
        Some("Ada"),
        "userinfo completed the claims"
    );
    assert_eq!(seen[0].1, "upstream-access");
}

// A callback is single use: the replay finds nothing and redirects nowhere.
#[tokio::test]
async fn a_replayed_callback_is_refused() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    client_redirect(&setup.callback(&ok_query(&state), &cookie).await);
    assert!(matches!(
        setup.callback(&ok_query(&state), &cookie).await,
        CallbackOutcome::Refused(CallbackError::UnknownState)
    ));
}

// A forged `state` (no sign-in started it) is refused; so is a callback at another
// provider's URL and one that lacks `state`.
#[tokio::test]
async fn a_forged_state_is_refused() {
    let setup = setup().await;
    let (_state, cookie) = setup.begin().await;
    assert!(matches!(
        setup.callback(&ok_query("forged-state"), &cookie).await,
        CallbackOutcome::Refused(CallbackError::UnknownState)
    ));
    assert!(matches!(
        setup.callback("code=upstream-code", &cookie).await,
        CallbackOutcome::Refused(CallbackError::Malformed(_))
    ));
    assert!(matches!(
        setup
            .login
            .callback("github", &ok_query("x"), &cookie, NOW)
            .await,
        CallbackOutcome::Refused(CallbackError::WrongProvider)
    ));
    assert!(setup.mapper.0.lock().unwrap().is_empty());
}

// Login CSRF: the attacker's own callback, delivered to the victim's browser (which lacks
// the attacker's binding cookie), signs nobody in.
#[tokio::test]
async fn a_callback_from_another_browser_is_refused() {
    let setup = setup().await;
    let (state, _attackers_cookie) = setup.begin().await;
    let (_, victims_cookie) = setup.begin().await;
    assert!(matches!(
        setup.callback(&ok_query(&state), &victims_cookie).await,
        CallbackOutcome::Refused(CallbackError::WrongBrowser)
    ));
    assert!(setup.mapper.0.lock().unwrap().is_empty());
}

// RFC 9207: an `iss` naming another issuer (a mix-up) ends the sign-in; the MCP client hears
// `server_error`, nothing is exchanged.
#[tokio::test]
async fn a_mismatched_iss_is_refused() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    let query = format!(
        "code=upstream-code&state={state}&iss={}",
        urlencode("https://attacker.example")
    );
    let outcome = setup.callback(&query, &cookie).await;
    assert_eq!(client_redirect(&outcome)["error"], "server_error");
    assert!(!client_redirect(&outcome).contains_key("code"));
    assert!(setup.mapper.0.lock().unwrap().is_empty());
    // This provider promised `iss`: leaving it out is refused too.
    let (state, cookie) = setup.begin().await;
    let outcome = setup
        .callback(&format!("code=upstream-code&state={state}"), &cookie)
        .await;
    assert_eq!(client_redirect(&outcome)["error"], "server_error");
}

// An upstream error reaches the MCP client: `access_denied` stays `access_denied`, anything
// else is `server_error`.
#[tokio::test]
async fn an_upstream_error_is_passed_on_to_the_mcp_client() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    let query = format!("error=access_denied&state={state}&iss={}", urlencode(IDP));
    let back = client_redirect(&setup.callback(&query, &cookie).await);
    assert_eq!(back["error"], "access_denied");
    assert_eq!(back["state"], "mcp-client-state");
    let (state, cookie) = setup.begin().await;
    let query = format!("error=invalid_scope&state={state}&iss={}", urlencode(IDP));
    assert_eq!(
        client_redirect(&setup.callback(&query, &cookie).await)["error"],
        "server_error"
    );
}

// The mapper refuses a user: `access_denied`, no code.
#[tokio::test]
async fn a_user_the_mapper_refuses_gets_no_code() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    setup.upstream.next.lock().unwrap().1 = "banned".into();
    let outcome = setup.callback(&ok_query(&state), &cookie).await;
    let back = client_redirect(&outcome);
    assert_eq!(back["error"], "access_denied");
    assert!(!back.contains_key("code"));
    let CallbackOutcome::ToClient { failure, .. } = outcome else {
        unreachable!()
    };
    assert_eq!(
        failure.as_deref(),
        Some("this account may not use MCP servers")
    );
}

// An ID token carrying another sign-in's nonce is refused (a replayed or injected token).
#[tokio::test]
async fn an_id_token_for_another_sign_in_is_refused() {
    let setup = setup().await;
    let (state, cookie) = setup.begin().await;
    setup.upstream.next.lock().unwrap().0 = "someone else's nonce".into();
    let outcome = setup.callback(&ok_query(&state), &cookie).await;
    assert_eq!(client_redirect(&outcome)["error"], "server_error");
    let CallbackOutcome::ToClient { failure, .. } = outcome else {
        unreachable!()
    };
    assert!(failure.unwrap().contains("nonce"));
}

// Web frameworks run handlers on a multi-threaded runtime: the futures must be `Send`.
#[test]
fn the_flow_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    async fn check(login: &FederatedLogin<MemoryModel, MemoryUpstreamRequests>) {
        let callback = login.callback("p", "", "", mcpauth_token_engine::UnixTime(0));
        send(&callback);
        let pending = serde_json::from_value(json!({
            "client_id": "c", "client_name": null, "client_identity": "SelfRegistered",
            "redirect_uri": "http://127.0.0.1/cb", "redirect_uri_in_request": true,
            "scope": "", "resources": [], "state": null,
            "code_challenge": "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc"
        }))
        .unwrap();
        let begin = login.begin("p", pending, mcpauth_token_engine::UnixTime(0));
        send(&begin);
    }
    let _ = check;
}

// A plain sign-in (the application's device or account page): the same checks, the
// mapper's subject, no code for anyone, back to a path on this server only.
#[tokio::test]
async fn a_plain_sign_in_returns_the_subject_to_a_local_path_only() {
    let setup = setup().await;
    for bad in [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "device",
    ] {
        assert!(
            setup.login.begin_sign_in("corp", bad, NOW).await.is_err(),
            "{bad}"
        );
    }
    let redirect = setup
        .login
        .begin_sign_in("corp", "/tenant/device?user_code=WDJB-MJHT", NOW)
        .await
        .unwrap();
    let location = Url::parse(&redirect.location).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    setup.upstream.next.lock().unwrap().0 = q["nonce"].clone();
    let cookie = redirect.set_cookie.split(';').next().unwrap().to_owned();

    // Another browser cannot finish it.
    let other = setup
        .callback(&ok_query(&q["state"]), "mcpauth_upstream_x=y")
        .await;
    assert!(matches!(
        other,
        CallbackOutcome::Refused(CallbackError::WrongBrowser | CallbackError::UnknownState)
    ));

    let redirect = setup
        .login
        .begin_sign_in("corp", "/tenant/account", NOW)
        .await
        .unwrap();
    let location = Url::parse(&redirect.location).unwrap();
    let q: HashMap<String, String> = location.query_pairs().into_owned().collect();
    setup.upstream.next.lock().unwrap().0 = q["nonce"].clone();
    let cookie_2 = redirect.set_cookie.split(';').next().unwrap().to_owned();
    let outcome = setup.callback(&ok_query(&q["state"]), &cookie_2).await;
    match outcome {
        CallbackOutcome::SignedIn {
            subject,
            return_to,
            failure,
            clear_cookie,
        } => {
            assert_eq!(subject.as_deref(), Some("local-upstream-user-7"));
            assert_eq!(return_to, "/tenant/account");
            assert_eq!(failure, None);
            assert!(clear_cookie.contains("Max-Age=0"));
        }
        other => panic!("{other:?}"),
    }
    drop(cookie);
}
