//! RFC 7523 §2.1 and §3 with trusted issuers: an enterprise identity provider's ID-JAGs
//! (draft-ietf-oauth-identity-assertion-authz-grant) and workload tokens. The attacker's view
//! first: what an assertion that is not exactly right gets (nothing, `invalid_grant`).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests: a failed unwrap is a failed test; keys come from the OS random source"
)]

mod common;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use common::*;
use http::StatusCode;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::{
    ClientId, ClientRecord, ClientStore as _, EnterpriseUsers, GrantId, GrantStore as _,
    MemoryModel, TokenEndpointAuthMethod, TrustedIssuer, TrustedIssuerKeys, WorkloadRule,
};
use serde_json::{Value, json};

const IDP: &str = "https://idp.example.com";
const CI: &str = "https://token.actions.example.com";
const AS: &str = "https://auth.example.com";

/// An issuer's signing key and its public JWK.
struct IssuerKey {
    encoding: EncodingKey,
    jwk: Value,
}

fn issuer_key(kid: &str) -> IssuerKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    IssuerKey {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({
            "kty": "EC", "crv": "P-256", "kid": kid, "alg": "ES256", "use": "sig",
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]), "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        }),
    }
}

fn sign(key: &IssuerKey, typ: Option<&str>, claims: &Value) -> String {
    let mut header = Header::new(Algorithm::ES256);
    header.typ = typ.map(str::to_owned);
    header.kid = key.jwk["kid"].as_str().map(str::to_owned);
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

/// Serves each issuer's JWK Set from memory (a mock: the server's fetcher is tested against
/// a real HTTPS JWKS endpoint in mcpauth-server's tests).
struct Keys(Vec<(String, Value)>);

#[async_trait::async_trait]
impl TrustedIssuerKeys for Keys {
    async fn jwk_set(
        &self,
        jwks_uri: &str,
        _refresh: bool,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        self.0
            .iter()
            .find(|(uri, _)| uri == jwks_uri)
            .map(|(_, set)| set.clone())
            .ok_or_else(|| "no such JWK Set".into())
    }
}

/// alice@corp is the local user `user-alice`; nobody else has an account.
struct Users;

#[async_trait::async_trait]
impl EnterpriseUsers for Users {
    async fn local_subject(
        &self,
        issuer: &str,
        subject: &str,
        _email: Option<&str>,
    ) -> Result<Option<String>, Box<dyn std::error::Error + Send + Sync>> {
        Ok((issuer == IDP && subject == "alice@corp").then(|| "user-alice".to_owned()))
    }
}

struct World {
    h: Harness,
    idp: IssuerKey,
    ci: IssuerKey,
    /// A confidential client allowed to present the IdP's assertions.
    client: (String, String),
    /// A confidential client registered for the grant but not allowed for the IdP.
    other: (String, String),
}

async fn world_with(single_use_workloads: bool) -> World {
    let idp = issuer_key("idp-1");
    let ci = issuer_key("ci-1");
    let keys = Arc::new(Keys(vec![
        (format!("{IDP}/jwks"), json!({ "keys": [idp.jwk.clone()] })),
        (format!("{CI}/jwks"), json!({ "keys": [ci.jwk.clone()] })),
    ]));
    // Client ids are random: the IdP's allowed list is filled in after registration, so the
    // engine is built twice (the model is the harness's own, kept).
    let h = harness_with(|_| {}).await;
    let client = h
        .confidential_client(
            &["urn:ietf:params:oauth:grant-type:jwt-bearer"],
            Some("mcp:tools mcp:admin"),
        )
        .await;
    let other = h
        .confidential_client(&["urn:ietf:params:oauth:grant-type:jwt-bearer"], None)
        .await;
    let allowed = vec![client.0.clone()];
    let model = h.engine.model().clone();
    // The clients the workload rules name, registered by the operator with the ids the
    // rules use.
    for id in ["deployer", "prod-agents"] {
        register_workload_client(&model, id, &[JWT_BEARER]).await;
    }
    let mut config = mcpauth_token_engine::EngineConfig::new(AS.parse().unwrap()).unwrap();
    config.trusted_issuers(
        vec![
            TrustedIssuer::identity_provider(IDP, &format!("{IDP}/jwks"), allowed),
            TrustedIssuer::workloads(
                CI,
                &format!("{CI}/jwks"),
                vec![
                    WorkloadRule::new(
                        "repo:acme/deploy:ref:refs/heads/main",
                        "deployer",
                        &["mcp:tools"],
                    ),
                    WorkloadRule::new(
                        "system:serviceaccount:prod:*",
                        "prod-agents",
                        &["mcp:tools", "mcp:read"],
                    ),
                ],
            )
            .single_use(single_use_workloads),
        ],
        keys,
        Some(Arc::new(Users)),
    );
    let engine = mcpauth_token_engine::TokenEngine::new(
        config,
        model,
        signing_key(),
        Arc::new(mcpauth_token_engine::testing::SeededRandom::new(9)),
    );
    World {
        h: Harness {
            engine,
            client_id: h.client_id,
        },
        idp,
        ci,
        client,
        other,
    }
}

async fn world() -> World {
    world_with(true).await
}

const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Registers, as the operator would, the client `id` that a workload rule names: it has no
/// secret, so the workload token is its only way in.
async fn register_workload_client(model: &MemoryModel, id: &str, grant_types: &[&str]) {
    let mut metadata = ClientMetadata::default();
    metadata.grant_types = grant_types.iter().map(|g| (*g).to_owned()).collect();
    model
        .insert_client(ClientRecord::new(
            ClientId::from(id.to_owned()),
            TokenEndpointAuthMethod::ClientSecretBasic,
            metadata,
            NOW,
        ))
        .await
        .unwrap();
}

static JTI: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn jti() -> String {
    format!(
        "jti-{}",
        JTI.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    )
}

impl World {
    /// An ID-JAG from the IdP for `client`, with `changes` applied to its claims.
    fn id_jag(&self, changes: &[(&str, Value)]) -> String {
        let mut claims = json!({
            "iss": IDP, "sub": "alice@corp", "aud": AS, "client_id": self.client.0,
            "resource": RESOURCE, "scope": "mcp:tools", "email": "alice@corp.example",
            "iat": NOW.0, "exp": NOW.0 + 300, "jti": jti(),
        });
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        sign(&self.idp, Some("oauth-id-jag+jwt"), &claims)
    }

    fn workload(&self, sub: &str, changes: &[(&str, Value)]) -> String {
        let mut claims = json!({
            "iss": CI, "sub": sub, "aud": AS, "iat": NOW.0, "exp": NOW.0 + 600, "jti": jti(),
        });
        for (name, value) in changes {
            if value.is_null() {
                claims.as_object_mut().unwrap().remove(*name);
            } else {
                claims[*name] = value.clone();
            }
        }
        sign(&self.ci, None, &claims)
    }

    async fn present(
        &self,
        assertion: &str,
        client: Option<&(String, String)>,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut pairs = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
            ("assertion", assertion),
        ];
        pairs.extend_from_slice(extra);
        let (status, body, _) = self
            .h
            .post(
                Endpoint::Token,
                &pairs,
                client.map(|(id, secret)| (id.as_str(), secret.as_str())),
                NOW.plus(1),
            )
            .await;
        (status, body)
    }
}

#[tokio::test]
async fn an_id_jag_from_a_trusted_provider_gets_the_users_token_for_its_resource() {
    let w = world().await;
    let assertion = w.id_jag(&[]);
    let (status, body) = w.present(&assertion, Some(&w.client), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "user-alice");
    assert_eq!(claims["aud"], RESOURCE);
    assert_eq!(claims["client_id"], w.client.0.as_str());
    assert_eq!(claims["scope"], "mcp:tools");
    assert_eq!(claims["sub_type"], "user");
    assert!(
        body.get("refresh_token").is_none(),
        "the client asks the IdP again"
    );
    // A second presentation of the same assertion: a replay.
    let (status, body) = w.present(&assertion, Some(&w.client), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "invalid_grant");
}

#[tokio::test]
async fn an_id_jag_that_is_not_exactly_right_gets_nothing() {
    let w = world().await;
    let stranger = issuer_key("idp-1");
    let forged = sign(
        &stranger,
        Some("oauth-id-jag+jwt"),
        &json!({
            "iss": IDP, "sub": "alice@corp", "aud": AS, "client_id": w.client.0,
            "resource": RESOURCE, "iat": NOW.0, "exp": NOW.0 + 300, "jti": jti(),
        }),
    );
    let untyped = sign(
        &w.idp,
        None,
        &json!({"iss": IDP, "sub": "alice@corp", "aud": AS, "client_id": w.client.0, "iat": NOW.0, "exp": NOW.0 + 300, "jti": jti()}),
    );
    let cases: Vec<(&str, String, &str)> = vec![
        ("signed by another key", forged, "invalid_grant"),
        ("without typ oauth-id-jag+jwt", untyped, "invalid_grant"),
        (
            "for another authorization server",
            w.id_jag(&[("aud", json!("https://other-as.example.com"))]),
            "invalid_grant",
        ),
        (
            "for this server and another at once (the draft: one aud only)",
            w.id_jag(&[("aud", json!([AS, "https://other-as.example.com"]))]),
            "invalid_grant",
        ),
        (
            "issued to another client",
            w.id_jag(&[("client_id", json!(w.other.0))]),
            "invalid_grant",
        ),
        (
            "expired",
            w.id_jag(&[("iat", json!(NOW.0 - 400)), ("exp", json!(NOW.0 - 100))]),
            "invalid_grant",
        ),
        (
            "living longer than ten minutes",
            w.id_jag(&[("exp", json!(NOW.0 + 3600))]),
            "invalid_grant",
        ),
        (
            "without jti",
            w.id_jag(&[("jti", Value::Null)]),
            "invalid_grant",
        ),
        (
            "without iat (the draft requires it)",
            w.id_jag(&[("iat", Value::Null)]),
            "invalid_grant",
        ),
        (
            "for a user with no account here",
            w.id_jag(&[("sub", json!("mallory@corp"))]),
            "invalid_grant",
        ),
        (
            "from an issuer nobody trusts",
            w.id_jag(&[("iss", json!("https://evil.example.com"))]),
            "invalid_grant",
        ),
        ("not a JWT", "not-a-jwt".to_owned(), "invalid_grant"),
    ];
    for (what, assertion, expected) in cases {
        let (status, body) = w.present(&assertion, Some(&w.client), &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(error_of(&body), expected, "{what}: {body}");
    }
    // An HMAC-signed assertion (alg confusion with a public key) is refused before any key.
    let hmac = jsonwebtoken::encode(
        &Header {
            typ: Some("oauth-id-jag+jwt".into()),
            ..Header::new(Algorithm::HS256)
        },
        &json!({"iss": IDP, "sub": "alice@corp", "aud": AS, "client_id": w.client.0, "exp": NOW.0 + 300, "jti": jti()}),
        &EncodingKey::from_secret(b"guess"),
    )
    .unwrap();
    let (_, body) = w.present(&hmac, Some(&w.client), &[]).await;
    assert_eq!(error_of(&body), "invalid_grant");
    // One right assertion, presented wrongly: by a client the provider did not name, with
    // nobody authenticating, asking for more scope or another resource. Each refusal leaves
    // it unused, so the right request with it still works.
    let kept = w.id_jag(&[]);
    let (status, body) = w.present(&kept, Some(&w.other), &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_grant");
    let (status, body) = w.present(&kept, None, &[]).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(error_of(&body), "invalid_client");
    let (_, body) = w
        .present(&kept, Some(&w.client), &[("scope", "mcp:admin")])
        .await;
    assert_eq!(error_of(&body), "invalid_scope");
    let (_, body) = w
        .present(
            &kept,
            Some(&w.client),
            &[("resource", "https://other.example.com/mcp")],
        )
        .await;
    assert_eq!(error_of(&body), "invalid_target");
    let (status, body) = w.present(&kept, Some(&w.client), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn an_id_jag_is_not_accepted_from_a_public_client() {
    let w = world().await;
    // A public client the operator listed by mistake: its id proves nothing.
    let mut metadata = ClientMetadata::default();
    metadata.grant_types = vec![JWT_BEARER.to_owned()];
    let model = w.h.engine.model();
    let public = ClientRecord::new(
        ClientId::from(w.client.0.clone()),
        TokenEndpointAuthMethod::None,
        metadata,
        NOW,
    );
    assert!(model.update_client(public).await.unwrap());
    let (status, body) = w
        .present(&w.id_jag(&[]), None, &[("client_id", w.client.0.as_str())])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "unauthorized_client");
}

#[tokio::test]
async fn an_id_jags_scope_is_bounded_by_what_the_client_registered() {
    let w = world().await;
    // The provider grants more than the client registered (mcp:tools mcp:admin): asked for
    // nothing, the client gets the part it may have; asked for the rest, nothing.
    let wide = [("scope", json!("mcp:tools mcp:other"))];
    let (status, body) = w.present(&w.id_jag(&wide), Some(&w.client), &[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    let (status, body) = w
        .present(&w.id_jag(&wide), Some(&w.client), &[("scope", "mcp:other")])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_scope");
    // Nothing of what the provider granted may be given here: nothing, not an empty token.
    let (status, body) = w
        .present(
            &w.id_jag(&[("scope", json!("mcp:other"))]),
            Some(&w.client),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_scope");
}

#[tokio::test]
async fn assertions_for_the_same_user_client_and_scope_share_one_grant_until_it_is_revoked() {
    let w = world().await;
    let grant_of = |body: &Value| {
        // The access token's jti is `<grant_id>.<random>`.
        let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
        let jti = claims["jti"].as_str().unwrap();
        jti.split_once('.').unwrap().0.to_owned()
    };
    let (_, first) = w.present(&w.id_jag(&[]), Some(&w.client), &[]).await;
    let (_, second) = w.present(&w.id_jag(&[]), Some(&w.client), &[]).await;
    assert_eq!(
        grant_of(&first),
        grant_of(&second),
        "no grant per assertion"
    );
    let (_, wider) = w
        .present(
            &w.id_jag(&[("scope", json!("mcp:tools mcp:admin"))]),
            Some(&w.client),
            &[],
        )
        .await;
    assert_ne!(
        grant_of(&first),
        grant_of(&wider),
        "another scope, another grant"
    );
    // The user withdraws it: the next assertion starts a new grant, and so on.
    let model = w.h.engine.model();
    let mut seen = vec![grant_of(&first)];
    for _ in 0..10 {
        let last = seen.last().unwrap().clone();
        model
            .revoke_grant(&GrantId::from(last), NOW.plus(1))
            .await
            .unwrap();
        let (status, next) = w.present(&w.id_jag(&[]), Some(&w.client), &[]).await;
        assert_eq!(status, StatusCode::OK, "{next}");
        let id = grant_of(&next);
        assert!(!seen.contains(&id), "a revoked grant is never reused");
        seen.push(id);
    }
}

#[tokio::test]
async fn without_a_user_mapping_a_providers_subject_stays_in_its_namespace() {
    let idp = issuer_key("idp-1");
    let keys = Arc::new(Keys(vec![(
        format!("{IDP}/jwks"),
        json!({ "keys": [idp.jwk.clone()] }),
    )]));
    let h = harness().await;
    let client = h.confidential_client(&[JWT_BEARER], None).await;
    let mut config = mcpauth_token_engine::EngineConfig::new(AS.parse().unwrap()).unwrap();
    config.trusted_issuers(
        vec![TrustedIssuer::identity_provider(
            IDP,
            &format!("{IDP}/jwks"),
            vec![client.0.clone()],
        )],
        keys,
        None,
    );
    let engine = mcpauth_token_engine::TokenEngine::new(
        config,
        h.engine.model().clone(),
        signing_key(),
        Arc::new(mcpauth_token_engine::testing::SeededRandom::new(3)),
    );
    let w = Harness {
        engine,
        client_id: h.client_id,
    };
    // The provider names a local user's id as its subject: the token is not that user's.
    let assertion = sign(
        &idp,
        Some("oauth-id-jag+jwt"),
        &json!({
            "iss": IDP, "sub": "user-alice", "aud": AS, "client_id": client.0,
            "resource": RESOURCE, "iat": NOW.0, "exp": NOW.0 + 300, "jti": jti(),
        }),
    );
    let (status, body, _) = w
        .post(
            Endpoint::Token,
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
            Some((client.0.as_str(), client.1.as_str())),
            NOW.plus(1),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["sub"],
        format!("{IDP}#user-alice")
    );
}

#[tokio::test]
async fn a_workload_gets_tokens_only_as_a_registered_client_that_took_the_grant() {
    let w = world().await;
    let model = w.h.engine.model();
    let token = || w.workload("system:serviceaccount:prod:a", &[]);
    let resource = [("resource", RESOURCE)];
    // The rule's client removed: nothing.
    assert!(
        model
            .delete_client(&ClientId::from("prod-agents".to_owned()))
            .await
            .unwrap()
    );
    let (status, body) = w.present(&token(), None, &resource).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "unauthorized_client");
    // Registered without the JWT bearer grant: nothing.
    register_workload_client(model, "prod-agents", &["client_credentials"]).await;
    let (_, body) = w.present(&token(), None, &resource).await;
    assert_eq!(error_of(&body), "unauthorized_client");
    // A client that registered itself, whatever its id: nothing either.
    let mut record = model
        .find_client(&ClientId::from("prod-agents".to_owned()))
        .await
        .unwrap()
        .unwrap();
    record.metadata.grant_types = vec![JWT_BEARER.to_owned()];
    record.document_expires_at = Some(NOW.plus(3600));
    assert!(model.update_client(record.clone()).await.unwrap());
    let (_, body) = w.present(&token(), None, &resource).await;
    assert_eq!(error_of(&body), "unauthorized_client");
    // The operator's client with the grant: the token.
    record.document_expires_at = None;
    assert!(model.update_client(record).await.unwrap());
    let (status, body) = w.present(&token(), None, &resource).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_not_yet_valid_assertion_gets_nothing() {
    let w = world().await;
    let (status, body) = w
        .present(
            &w.workload(
                "system:serviceaccount:prod:a",
                &[("nbf", json!(NOW.0 + 120))],
            ),
            None,
            &[("resource", RESOURCE)],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_grant");
}

#[tokio::test]
async fn a_workload_token_for_a_configured_subject_gets_its_clients_token() {
    let w = world().await;
    let (status, body) = w
        .present(
            &w.workload("system:serviceaccount:prod:agent-7", &[]),
            None,
            &[("scope", "mcp:read"), ("resource", RESOURCE)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["client_id"], "prod-agents");
    assert_eq!(claims["sub"], "prod-agents");
    assert_eq!(claims["sub_type"], "client");
    assert_eq!(claims["scope"], "mcp:read");
    assert!(body.get("refresh_token").is_none());

    let (status, body) = w
        .present(
            &w.workload("repo:acme/deploy:ref:refs/heads/main", &[]),
            None,
            &[("resource", RESOURCE)],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["scope"],
        "mcp:tools"
    );
}

#[tokio::test]
async fn a_workload_token_for_any_other_subject_audience_or_time_gets_nothing() {
    let w = world().await;
    for (what, token) in [
        (
            "another subject",
            w.workload("repo:acme/deploy:ref:refs/heads/feature", &[]),
        ),
        (
            "a subject only sharing a prefix without the rule's *",
            w.workload("repo:acme/deploy:ref:refs/heads/main-evil", &[]),
        ),
        (
            "another audience",
            w.workload(
                "system:serviceaccount:prod:a",
                &[("aud", json!("https://elsewhere.example.com"))],
            ),
        ),
        (
            "expired",
            w.workload(
                "system:serviceaccount:prod:a",
                &[("iat", json!(NOW.0 - 700)), ("exp", json!(NOW.0 - 60))],
            ),
        ),
        (
            "living longer than the issuer's limit",
            w.workload(
                "system:serviceaccount:prod:a",
                &[("exp", json!(NOW.0 + 365 * 86400))],
            ),
        ),
    ] {
        let (status, body) = w.present(&token, None, &[]).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{what}: {body}");
        assert_eq!(error_of(&body), "invalid_grant", "{what}");
    }
    // Beyond the rule's scope.
    let (_, body) = w
        .present(
            &w.workload("system:serviceaccount:prod:a", &[]),
            None,
            &[("scope", "mcp:admin")],
        )
        .await;
    assert_eq!(error_of(&body), "invalid_scope");
    // Authenticated as a client other than the one the rule names.
    let (_, body) = w
        .present(
            &w.workload("system:serviceaccount:prod:a", &[]),
            Some(&w.client),
            &[],
        )
        .await;
    assert_eq!(error_of(&body), "unauthorized_client");
}

#[tokio::test]
async fn workload_tokens_are_used_once_unless_the_issuer_is_trusted_to_reuse_them() {
    for single_use in [true, false] {
        let w = world_with(single_use).await;
        let token = w.workload("system:serviceaccount:prod:a", &[]);
        let resource = [("resource", RESOURCE)];
        assert_eq!(w.present(&token, None, &resource).await.0, StatusCode::OK);
        let (status, body) = w.present(&token, None, &resource).await;
        if single_use {
            assert_eq!(status, StatusCode::BAD_REQUEST);
            assert_eq!(error_of(&body), "invalid_grant");
        } else {
            assert_eq!(status, StatusCode::OK, "{body}");
        }
        let without_jti = w.workload("system:serviceaccount:prod:a", &[("jti", Value::Null)]);
        let (status, _) = w.present(&without_jti, None, &resource).await;
        assert_eq!(
            status,
            if single_use {
                StatusCode::BAD_REQUEST
            } else {
                StatusCode::OK
            }
        );
    }
}

#[tokio::test]
async fn the_jwt_bearer_grant_is_served_and_advertised_only_with_trusted_issuers() {
    let w = world().await;
    assert!(
        w.h.engine
            .metadata()
            .grant_types_supported
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let plain = harness().await;
    assert!(
        !plain
            .engine
            .metadata()
            .grant_types_supported
            .iter()
            .any(|g| g == "urn:ietf:params:oauth:grant-type:jwt-bearer")
    );
    let (status, body, _) = plain
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                (
                    "assertion",
                    &w.workload("system:serviceaccount:prod:a", &[]),
                ),
            ],
            None,
            NOW.plus(1),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&body), "unsupported_grant_type");
}

#[tokio::test]
async fn an_issuers_audience_and_lifetime_settings_replace_the_defaults() {
    let ci = issuer_key("ci-1");
    let keys = Arc::new(Keys(vec![(
        format!("{CI}/jwks"),
        json!({ "keys": [ci.jwk.clone()] }),
    )]));
    let h = harness_with(|config| {
        config.trusted_issuers(
            vec![
                TrustedIssuer::workloads(
                    CI,
                    &format!("{CI}/jwks"),
                    vec![WorkloadRule::new("job", "ci-client", &["mcp:tools"])],
                )
                .audience("urn:mcpauth:test")
                .max_lifetime(120),
            ],
            keys,
            None,
        );
    })
    .await;
    register_workload_client(h.engine.model(), "ci-client", &[JWT_BEARER]).await;
    let token = |aud: &str, lifetime: u64| {
        sign(
            &ci,
            None,
            &json!({"iss": CI, "sub": "job", "aud": aud, "iat": NOW.0, "exp": NOW.0 + lifetime, "jti": jti()}),
        )
    };
    let present = |assertion: String| {
        let h = &h;
        async move {
            let (status, body, _) = h
                .post(
                    Endpoint::Token,
                    &[
                        ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                        ("assertion", &assertion),
                        ("resource", RESOURCE),
                    ],
                    None,
                    NOW.plus(1),
                )
                .await;
            (status, body)
        }
    };
    assert_eq!(
        present(token("urn:mcpauth:test", 100)).await.0,
        StatusCode::OK
    );
    let (_, body) = present(token(AS, 100)).await;
    assert_eq!(
        error_of(&body),
        "invalid_grant",
        "the default audience no longer"
    );
    let (_, body) = present(token("urn:mcpauth:test", 200)).await;
    assert_eq!(error_of(&body), "invalid_grant", "longer than max_lifetime");
}
