//! RFC 9449 at the token endpoint: proofs bind what they obtain (§5, §6.1), a public client's
//! refresh token stays bound to its key (§5), `dpop_jkt` binds the code (§10), a proof is used
//! once (§11.1, across engines sharing a model), nonces (§8), and the policies that require
//! proofs (server-wide, and a client's `dpop_bound_access_tokens`, §5.2).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests: a failed unwrap is a failed test; DPoP keys come from the OS random source"
)]

mod common;

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use bytes::Bytes;
use common::*;
use http::{Request, StatusCode};
use mcpauth_dpop::{DpopKey, ProofRequest};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, DpopPolicy, EngineConfig, MemoryModel, NonceSource, ProofPolicy, TokenEngine,
    UnixTime,
};
use serde_json::Value;

const TOKEN_URL: &str = "https://auth.example.com/token";

fn dpop_key() -> DpopKey {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    DpopKey::from_pkcs8(pkcs8.as_ref()).unwrap()
}

/// A fresh proof for the token endpoint: a new `jti` each time.
fn proof(key: &DpopKey, now: UnixTime, nonce: Option<&str>) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let jti = format!(
        "jti-{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    let mut request = ProofRequest::new("POST", TOKEN_URL, &jti, now.0);
    if let Some(nonce) = nonce {
        request = request.nonce(nonce);
    }
    key.proof(&request).unwrap()
}

struct Answer {
    status: StatusCode,
    body: Value,
    nonce: Option<String>,
}

/// POSTs `pairs` to `engine`'s token endpoint with these `DPoP` headers.
async fn post(
    engine: &TokenEngine<MemoryModel>,
    pairs: &[(&str, &str)],
    proofs: &[&str],
    basic: Option<(&str, &str)>,
    now: UnixTime,
) -> Answer {
    let mut request =
        Request::post("/token").header("content-type", "application/x-www-form-urlencoded");
    for proof in proofs {
        request = request.header("dpop", *proof);
    }
    if let Some((id, secret)) = basic {
        use base64::Engine as _;
        request = request.header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
            ),
        );
    }
    let response = engine
        .token_endpoint(request.body(Bytes::from(query(pairs))).unwrap(), now)
        .await;
    Answer {
        status: response.status(),
        nonce: response
            .headers()
            .get("dpop-nonce")
            .map(|v| v.to_str().unwrap().to_owned()),
        body: serde_json::from_slice(response.body()).unwrap_or(Value::Null),
    }
}

impl Harness {
    async fn redeem_with(&self, code: &str, proofs: &[&str]) -> Answer {
        post(
            &self.engine,
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", "http://127.0.0.1:49152/callback"),
                ("code_verifier", VERIFIER),
                ("client_id", &self.client_id),
            ],
            proofs,
            None,
            NOW.plus(1),
        )
        .await
    }

    async fn refresh_with(&self, refresh_token: &str, proofs: &[&str], now: UnixTime) -> Answer {
        post(
            &self.engine,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
                ("client_id", &self.client_id),
            ],
            proofs,
            None,
            now,
        )
        .await
    }

    /// A code for the harness client, its authorization request carrying `dpop_jkt`.
    async fn code_bound_to(&self, jkt: &str) -> String {
        let mut pairs = self.authorize_query("http://127.0.0.1:49152/callback");
        pairs.push(("dpop_jkt", jkt.to_owned()));
        let AuthorizeOutcome::NeedsConsent(pending) = self.authorize(&pairs).await else {
            panic!("consent expected");
        };
        code_of(
            &self
                .engine
                .approve(pending, "alice", NOW)
                .await
                .unwrap()
                .location,
        )
    }
}

fn cnf_of(access_token: &str) -> Value {
    jwt_part(access_token, 1)["cnf"].clone()
}

#[tokio::test]
async fn a_proof_binds_the_access_token_and_the_public_clients_refresh_token() {
    let h = harness().await;
    let key = dpop_key();
    let code = h.code().await;
    let answer = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "DPoP");
    let access = answer.body["access_token"].as_str().unwrap();
    assert_eq!(cnf_of(access)["jkt"], key.thumbprint());
    let refresh = answer.body["refresh_token"].as_str().unwrap().to_owned();

    // RFC 9449 §5: the refresh token of a public client is bound to the key.
    let later = NOW.plus(20);
    let without = h.refresh_with(&refresh, &[], later).await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&without.body), "invalid_dpop_proof");
    let thief = dpop_key();
    let stolen = h
        .refresh_with(&refresh, &[&proof(&thief, later, None)], later)
        .await;
    assert_eq!(stolen.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&stolen.body), "invalid_grant");

    // Neither refusal used the token up: its holder refreshes, and the successor stays bound.
    let refreshed = h
        .refresh_with(&refresh, &[&proof(&key, later, None)], later)
        .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "DPoP");
    assert_eq!(
        cnf_of(refreshed.body["access_token"].as_str().unwrap())["jkt"],
        key.thumbprint()
    );
    let successor = refreshed.body["refresh_token"].as_str().unwrap();
    let stolen_successor = h
        .refresh_with(
            successor,
            &[&proof(&thief, later.plus(1), None)],
            later.plus(1),
        )
        .await;
    assert_eq!(error_of(&stolen_successor.body), "invalid_grant");
}

#[tokio::test]
async fn a_request_without_a_proof_gets_bearer_tokens_by_default() {
    let h = harness().await;
    let answer = h.redeem_with(&h.code().await, &[]).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(
        cnf_of(answer.body["access_token"].as_str().unwrap()),
        Value::Null
    );
    assert_eq!(answer.nonce, None, "no nonces unless configured");
    // An unbound refresh token refreshes without a proof.
    let refreshed = h
        .refresh_with(
            answer.body["refresh_token"].as_str().unwrap(),
            &[],
            NOW.plus(5),
        )
        .await;
    assert_eq!(refreshed.status, StatusCode::OK);
    assert_eq!(refreshed.body["token_type"], "Bearer");
}

#[tokio::test]
async fn a_proof_is_used_once_even_across_engines_that_share_a_model() {
    let model = Arc::new(MemoryModel::new());
    let engine = |seed| {
        TokenEngine::new(
            EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap(),
            model.clone(),
            signing_key(),
            Arc::new(SeededRandom::new(seed)),
        )
    };
    let first = Harness {
        client_id: String::new(),
        engine: engine(1),
    };
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec![REDIRECT.into()];
    metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
    metadata.grant_types = vec!["client_credentials".into()];
    let client = first.engine.register_client(metadata, NOW).await.unwrap();
    let basic = (
        client.client_id.as_str(),
        client.client_secret.as_deref().unwrap(),
    );
    let second = engine(2);
    let key = dpop_key();
    let one_proof = proof(&key, NOW, None);
    let form = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
    let answer = post(&first.engine, &form, &[&one_proof], Some(basic), NOW).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "DPoP");
    for engine in [&first.engine, &second] {
        let replay = post(engine, &form, &[&one_proof], Some(basic), NOW.plus(1)).await;
        assert_eq!(replay.status, StatusCode::BAD_REQUEST);
        assert_eq!(error_of(&replay.body), "invalid_dpop_proof");
        assert!(
            replay.body["error_description"]
                .as_str()
                .unwrap()
                .contains("used before")
        );
    }
}

#[tokio::test]
async fn a_code_bound_with_dpop_jkt_is_redeemed_only_with_a_proof_by_that_key() {
    let h = harness().await;
    let key = dpop_key();
    let code = h.code_bound_to(key.thumbprint()).await;
    let without = h.redeem_with(&code, &[]).await;
    assert_eq!(error_of(&without.body), "invalid_dpop_proof");
    let other = h
        .redeem_with(&code, &[&proof(&dpop_key(), NOW.plus(1), None)])
        .await;
    assert_eq!(error_of(&other.body), "invalid_grant");
    // Both refusals left the code usable for its client.
    let answer = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "DPoP");
}

#[tokio::test]
async fn a_dpop_jkt_that_is_not_a_thumbprint_is_refused_at_the_authorization_endpoint() {
    let h = harness().await;
    let mut pairs = h.authorize_query("http://127.0.0.1:49152/callback");
    pairs.push(("dpop_jkt", "not-a-thumbprint".into()));
    let outcome = h.authorize(&pairs).await;
    let params = redirect_params(&outcome);
    assert!(
        params
            .iter()
            .any(|(k, v)| k == "error" && v == "invalid_request"),
        "{params:?}"
    );
}

#[tokio::test]
async fn the_server_wide_requirement_refuses_token_requests_without_a_proof() {
    let h = harness_with(|c| {
        c.dpop(DpopPolicy::default().required(true));
    })
    .await;
    assert!(h.engine.dpop_policy().is_required());
    let code = h.code().await;
    let without = h.redeem_with(&code, &[]).await;
    assert_eq!(without.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&without.body), "invalid_dpop_proof");
    let with = h
        .redeem_with(&code, &[&proof(&dpop_key(), NOW.plus(1), None)])
        .await;
    assert_eq!(with.status, StatusCode::OK, "{}", with.body);
    assert_eq!(with.body["token_type"], "DPoP");
}

#[tokio::test]
async fn a_client_registered_with_dpop_bound_access_tokens_must_send_proofs() {
    for bound in [true, false] {
        let h = harness().await;
        let mut metadata = ClientMetadata::default();
        metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
        metadata.grant_types = vec!["client_credentials".into()];
        metadata.dpop_bound_access_tokens = bound;
        let client = h.engine.register_client(metadata, NOW).await.unwrap();
        let basic = (
            client.client_id.as_str(),
            client.client_secret.as_deref().unwrap(),
        );
        let form = [("grant_type", "client_credentials"), ("resource", RESOURCE)];
        let without = post(&h.engine, &form, &[], Some(basic), NOW).await;
        if bound {
            assert_eq!(error_of(&without.body), "invalid_dpop_proof");
        } else {
            assert_eq!(without.status, StatusCode::OK);
            assert_eq!(without.body["token_type"], "Bearer");
        }
        let with = post(
            &h.engine,
            &form,
            &[&proof(&dpop_key(), NOW, None)],
            Some(basic),
            NOW,
        )
        .await;
        assert_eq!(with.body["token_type"], "DPoP", "bound={bound}");
    }
}

#[tokio::test]
async fn with_nonces_on_a_proof_without_the_servers_nonce_is_answered_use_dpop_nonce() {
    let h = harness_with(|c| {
        c.dpop(DpopPolicy::default().nonces(NonceSource::new(&[9; 32], 60)));
    })
    .await;
    let key = dpop_key();
    let code = h.code().await;
    let first = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    assert_eq!(first.status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&first.body), "use_dpop_nonce");
    let nonce = first.nonce.expect("a DPoP-Nonce with the error");
    let second = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), Some(&nonce))])
        .await;
    assert_eq!(second.status, StatusCode::OK, "{}", second.body);
    assert!(second.nonce.is_some(), "a fresh nonce with every answer");
    // A nonce from another secret (another server) is not this server's.
    let foreign = NonceSource::new(&[1; 32], 60).current(NOW.0);
    let refresh = second.body["refresh_token"].as_str().unwrap();
    let refused = h
        .refresh_with(
            refresh,
            &[&proof(&key, NOW.plus(2), Some(&foreign))],
            NOW.plus(2),
        )
        .await;
    assert_eq!(error_of(&refused.body), "use_dpop_nonce");
}

#[tokio::test]
async fn a_proof_for_another_uri_or_method_or_an_algorithm_not_accepted_is_refused() {
    let h = harness_with(|c| {
        c.dpop(
            DpopPolicy::default()
                .proofs(ProofPolicy::default().algorithms([mcpauth_dpop::Algorithm::EdDSA])),
        );
    })
    .await;
    let metadata = h.engine.metadata();
    assert_eq!(metadata.dpop_signing_alg_values_supported, ["EdDSA"]);
    let key = dpop_key();
    let code = h.code().await;
    let es256 = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    assert_eq!(error_of(&es256.body), "invalid_dpop_proof");

    let h = harness().await;
    let code = h.code().await;
    for (method, uri) in [
        ("GET", TOKEN_URL),
        ("POST", "https://auth.example.com/other"),
        ("POST", "https://evil.example.com/token"),
    ] {
        let bad = key
            .proof(&ProofRequest::new(method, uri, "jti-x", NOW.0 + 1))
            .unwrap();
        let answer = h.redeem_with(&code, &[&bad]).await;
        assert_eq!(
            error_of(&answer.body),
            "invalid_dpop_proof",
            "{method} {uri}"
        );
    }
    let twice = h
        .redeem_with(
            &code,
            &[
                &proof(&key, NOW.plus(1), None),
                &proof(&key, NOW.plus(1), None),
            ],
        )
        .await;
    assert_eq!(error_of(&twice.body), "invalid_dpop_proof");
    // None of those used the code.
    assert_eq!(
        h.redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
            .await
            .status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn a_confidential_clients_refresh_token_is_not_bound_but_its_access_tokens_are() {
    let h = harness().await;
    let (id, secret) = h
        .confidential_client(&["authorization_code", "refresh_token"], None)
        .await;
    let code = h.code_for(&id, "alice").await;
    let key = dpop_key();
    let answer = post(
        &h.engine,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", REDIRECT),
            ("code_verifier", VERIFIER),
        ],
        &[&proof(&key, NOW.plus(1), None)],
        Some((&id, &secret)),
        NOW.plus(1),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "DPoP");
    let refresh = answer.body["refresh_token"].as_str().unwrap();
    // RFC 9449 §5: the client's credentials already constrain its refresh token.
    let refreshed = post(
        &h.engine,
        &[("grant_type", "refresh_token"), ("refresh_token", refresh)],
        &[],
        Some((&id, &secret)),
        NOW.plus(2),
    )
    .await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "Bearer");
}

#[tokio::test]
async fn introspection_names_the_key_a_token_is_bound_to() {
    let h = harness().await;
    let key = dpop_key();
    let answer = h
        .redeem_with(&h.code().await, &[&proof(&key, NOW.plus(1), None)])
        .await;
    let access = answer.body["access_token"].as_str().unwrap();
    let (rs, rs_secret) = h.resource_server().await;
    let (status, body, _) = h
        .post(
            Endpoint::Introspect,
            &[("token", access)],
            Some((&rs, &rs_secret)),
            NOW.plus(2),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["active"], true);
    assert_eq!(body["token_type"], "DPoP");
    assert_eq!(body["cnf"]["jkt"], key.thumbprint());
}

#[tokio::test]
async fn metadata_lists_the_proof_algorithms_accepted() {
    let h = harness().await;
    assert_eq!(
        h.engine.metadata().dpop_signing_alg_values_supported,
        ["ES256", "EdDSA", "PS256", "RS256"]
    );
}

#[tokio::test]
async fn with_dpop_disabled_nothing_is_advertised_and_proofs_and_dpop_jkt_are_ignored() {
    let h = harness_with(|config| {
        config.dpop(DpopPolicy::disabled());
    })
    .await;
    assert!(!h.engine.dpop_policy().is_enabled());
    assert!(
        h.engine
            .metadata()
            .dpop_signing_alg_values_supported
            .is_empty(),
        "a server without DPoP publishes no proof algorithms"
    );
    // A client that binds the code and sends a proof anyway gets a plain Bearer token, and
    // its refresh token works without a proof (RFC 9449 §5: the header is ignored).
    let key = dpop_key();
    let code = h.code_bound_to("not-even-a-thumbprint").await;
    let answer = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.body);
    assert_eq!(answer.body["token_type"], "Bearer");
    assert_eq!(answer.nonce, None);
    let access = answer.body["access_token"].as_str().unwrap();
    assert_eq!(cnf_of(access), Value::Null);
    let refresh = answer.body["refresh_token"].as_str().unwrap();
    let refreshed = h.refresh_with(refresh, &[], NOW.plus(20)).await;
    assert_eq!(refreshed.status, StatusCode::OK, "{}", refreshed.body);
    assert_eq!(refreshed.body["token_type"], "Bearer");
}

#[tokio::test]
async fn turning_dpop_off_refuses_what_was_bound_while_it_was_on() {
    // Bound while DPoP was on: a public client's refresh token, and a client that registered
    // dpop_bound_access_tokens.
    let h = harness().await;
    let key = dpop_key();
    let code = h.code().await;
    let answer = h
        .redeem_with(&code, &[&proof(&key, NOW.plus(1), None)])
        .await;
    let refresh = answer.body["refresh_token"].as_str().unwrap().to_owned();
    let bound_code = h.code_bound_to(key.thumbprint()).await;
    let mut metadata = ClientMetadata::default();
    metadata.grant_types = vec!["client_credentials".into()];
    metadata.token_endpoint_auth_method = Some("client_secret_basic".into());
    metadata.dpop_bound_access_tokens = true;
    let bound_client = h.engine.register_client(metadata, NOW).await.unwrap();

    // The same database, DPoP now off.
    let mut config = EngineConfig::new("https://auth.example.com".parse().unwrap()).unwrap();
    config.dpop(DpopPolicy::disabled());
    let off = TokenEngine::new(
        config,
        h.engine.model().clone(),
        signing_key(),
        Arc::new(SeededRandom::new(21)),
    );
    let refused = post(
        &off,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &h.client_id),
        ],
        &[],
        None,
        NOW.plus(20),
    )
    .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST, "{}", refused.body);
    assert_eq!(error_of(&refused.body), "invalid_grant");
    // A proof changes nothing: with DPoP off it is not read.
    let with_proof = post(
        &off,
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &refresh),
            ("client_id", &h.client_id),
        ],
        &[&proof(&key, NOW.plus(20), None)],
        None,
        NOW.plus(20),
    )
    .await;
    assert_eq!(error_of(&with_proof.body), "invalid_grant");
    let machine = post(
        &off,
        &[("grant_type", "client_credentials")],
        &[],
        Some((
            &bound_client.client_id,
            bound_client.client_secret.as_deref().unwrap(),
        )),
        NOW.plus(20),
    )
    .await;
    assert_eq!(machine.status, StatusCode::BAD_REQUEST, "{}", machine.body);
    assert_eq!(error_of(&machine.body), "unauthorized_client");
    // A code bound with dpop_jkt while DPoP was on: refused, proof or not.
    let code = post(
        &off,
        &[
            ("grant_type", "authorization_code"),
            ("code", &bound_code),
            ("redirect_uri", "http://127.0.0.1:49152/callback"),
            ("code_verifier", VERIFIER),
            ("client_id", &h.client_id),
        ],
        &[&proof(&key, NOW.plus(20), None)],
        None,
        NOW.plus(20),
    )
    .await;
    assert_eq!(error_of(&code.body), "invalid_grant", "{}", code.body);
}
