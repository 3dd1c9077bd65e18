//! Token verification against tokens minted by the real engine (and forged variants).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]
// The tests make their keys (a client's, another authorization server's) from the OS.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "test keys"
)]

use std::sync::Arc;

use base64::Engine as _;
use mcpauth_bearer::{TokenVerifier, VerifyError};
use mcpauth_oauth_types::ClientMetadata;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AuthorizeOutcome, EngineConfig, MemoryModel, SigningKey, TokenEngine, UnixTime,
};

const NOW: UnixTime = UnixTime(1_800_000_000);
const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";

fn key() -> SigningKey {
    SigningKey::generate(mcpauth_token_engine::KeyAlgorithm::Es256).unwrap()
}

async fn issue(engine: &TokenEngine<MemoryModel>, resource: &str) -> String {
    let mut metadata = ClientMetadata::default();
    metadata.redirect_uris = vec!["http://127.0.0.1/cb".into()];
    let client = engine.register_client(metadata, NOW).await.unwrap();
    let verifier = "v".repeat(43);
    let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(<sha2::Sha256 as sha2::Digest>::digest(verifier.as_bytes()));
    let query = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", &client.client_id),
            ("redirect_uri", "http://127.0.0.1/cb"),
            ("code_challenge", &challenge),
            ("code_challenge_method", "S256"),
            ("resource", resource),
            ("scope", "mcp:tools"),
        ])
        .finish();
    let AuthorizeOutcome::NeedsConsent(pending) = engine.authorize(query.as_bytes(), NOW).await
    else {
        panic!()
    };
    let redirect = engine.approve(pending, "alice", NOW).await.unwrap();
    let code = url::Url::parse(&redirect.location)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "code")
        .unwrap()
        .1
        .into_owned();
    let form = mcpauth_oauth_types::FormParams::from_pairs([
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1/cb"),
        ("code_verifier", &verifier),
        ("client_id", &client.client_id),
    ]);
    engine.token(None, &form, NOW).await.unwrap().access_token
}

fn engine() -> TokenEngine<MemoryModel> {
    let config = EngineConfig::new(ISSUER.parse().unwrap()).unwrap();
    TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        key(),
        Arc::new(SeededRandom::new(1)),
    )
}

fn verifier_for(engine: &TokenEngine<MemoryModel>) -> TokenVerifier {
    let mut verifier = TokenVerifier::new(ISSUER, RESOURCE);
    verifier
        .set_jwks(&serde_json::to_vec(&engine.jwks()).unwrap())
        .unwrap();
    verifier
}

#[tokio::test]
async fn verifies_tokens_issued_by_the_engine() {
    let engine = engine();
    let token = issue(&engine, RESOURCE).await;
    let verified = verifier_for(&engine).verify(&token, NOW.plus(10)).unwrap();
    assert_eq!(verified.subject, "alice");
    assert!(verified.scope.contains("mcp:tools"));
    assert_eq!(verified.audience, [RESOURCE]);
}

// MCP authorization "Token Audience Binding": a token for another resource is refused.
#[tokio::test]
async fn rejects_tokens_for_another_audience() {
    let engine = engine();
    let token = issue(&engine, "https://other.example.com/mcp").await;
    assert_eq!(
        verifier_for(&engine).verify(&token, NOW).unwrap_err(),
        VerifyError::WrongAudience
    );
}

#[tokio::test]
async fn rejects_expired_tokens_and_wrong_issuers() {
    let engine = engine();
    let token = issue(&engine, RESOURCE).await;
    assert_eq!(
        verifier_for(&engine)
            .verify(&token, NOW.plus(3600 + 31))
            .unwrap_err(),
        VerifyError::Expired
    );
    let mut other_issuer = TokenVerifier::new("https://evil.example.com", RESOURCE);
    other_issuer
        .set_jwks(&serde_json::to_vec(&engine.jwks()).unwrap())
        .unwrap();
    assert_eq!(
        other_issuer.verify(&token, NOW).unwrap_err(),
        VerifyError::WrongIssuer
    );
}

#[tokio::test]
async fn rejects_tokens_signed_by_another_key_or_tampered() {
    let engine = engine();
    let token = issue(&engine, RESOURCE).await;
    let stranger = self::engine();
    assert_eq!(
        verifier_for(&stranger).verify(&token, NOW).unwrap_err(),
        VerifyError::UnknownKey
    );
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["sub"] = "mallory".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    assert_eq!(
        verifier_for(&engine)
            .verify(&parts.join("."), NOW)
            .unwrap_err(),
        VerifyError::BadSignature
    );
}

// jsonwebtoken advisory (string `exp` bypass): a non-numeric exp is refused.
#[tokio::test]
async fn rejects_hs256_tokens_and_unsigned_tokens() {
    let engine = engine();
    let kid = serde_json::to_value(engine.jwks()).unwrap()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let encode = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let header = encode(serde_json::json!({"alg": "HS256", "typ": "at+jwt", "kid": kid}));
    let claims = encode(
        serde_json::json!({"iss": ISSUER, "aud": RESOURCE, "sub": "x", "client_id": "c", "exp": "9999999999"}),
    );
    let forged = format!("{header}.{claims}.c2ln");
    assert!(verifier_for(&engine).verify(&forged, NOW).is_err());
    let none = format!(
        "{}.{claims}.",
        encode(serde_json::json!({"alg": "none", "typ": "at+jwt"}))
    );
    assert!(verifier_for(&engine).verify(&none, NOW).is_err());
}

#[test]
fn rejects_id_tokens_and_other_jwt_types() {
    let encode = |v: serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(&v).unwrap())
    };
    let token = format!(
        "{}.{}.sig",
        encode(serde_json::json!({"alg": "ES256", "typ": "JWT"})),
        encode(serde_json::json!({}))
    );
    assert_eq!(
        TokenVerifier::new(ISSUER, RESOURCE)
            .verify(&token, UnixTime(0))
            .unwrap_err(),
        VerifyError::WrongType
    );
}

// RFC 8037: EdDSA-signed access tokens verify against an OKP key in the JWK Set.
#[tokio::test]
async fn verifies_eddsa_tokens() {
    let der = SigningKey::generate_pkcs8(mcpauth_token_engine::KeyAlgorithm::EdDsa).unwrap();
    let config = EngineConfig::new(ISSUER.parse().unwrap()).unwrap();
    let engine = TokenEngine::new(
        config,
        Arc::new(MemoryModel::new()),
        SigningKey::ed25519_from_pkcs8_der(der.as_ref()).unwrap(),
        Arc::new(SeededRandom::new(8)),
    );
    let token = issue(&engine, RESOURCE).await;
    let verified = verifier_for(&engine).verify(&token, NOW.plus(1)).unwrap();
    assert_eq!(verified.subject, "alice");
}

// RFC 7518 §3.3: RS256 tokens verify against an RSA key in the JWK Set.
#[tokio::test]
async fn verifies_rs256_tokens() {
    let key = SigningKey::rs256_from_pkcs1_der(include_bytes!(
        "../../token-engine/tests/data/rsa2048-test-key.pkcs1.der"
    ))
    .unwrap();
    let engine = TokenEngine::new(
        EngineConfig::new(ISSUER.parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(14)),
    );
    let token = issue(&engine, RESOURCE).await;
    assert_eq!(
        verifier_for(&engine)
            .verify(&token, NOW.plus(1))
            .unwrap()
            .subject,
        "alice"
    );
}

// RFC 7518 §3.2: HS256 tokens verify with the shared secret, and only with it.
#[tokio::test]
async fn verifies_hs256_tokens_with_the_shared_secret() {
    let secret = [42u8; 32];
    let key = SigningKey::hs256(&secret).unwrap();
    let kid = key.kid().to_owned();
    let engine = TokenEngine::new(
        EngineConfig::new(ISSUER.parse().unwrap()).unwrap(),
        Arc::new(MemoryModel::new()),
        key,
        Arc::new(SeededRandom::new(15)),
    );
    let token = issue(&engine, RESOURCE).await;
    let mut verifier = verifier_for(&engine);
    assert_eq!(
        verifier.verify(&token, NOW).unwrap_err(),
        VerifyError::UnknownKey,
        "not published, so unknown without the secret"
    );
    verifier.add_shared_secret(kid.clone(), &[1u8; 32]).unwrap();
    assert_eq!(
        verifier.verify(&token, NOW).unwrap_err(),
        VerifyError::BadSignature
    );
    verifier.add_shared_secret(kid, &secret).unwrap();
    assert_eq!(verifier.verify(&token, NOW).unwrap().subject, "alice");
}

/// RFC 9449 §7.1 (and RFC 8705): a token bound to a key is not a bearer token. Signed here by a
/// key of the test's own (the engine never puts `cnf` in a token, and refuses to let a
/// customizer add it).
#[test]
fn a_token_bound_to_a_key_is_refused_as_a_bearer_token() {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(
        &ECDSA_P256_SHA256_FIXED_SIGNING,
        &aws_lc_rs::rand::SystemRandom::new(),
    )
    .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    let b64 = |bytes: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes);
    let jwks = serde_json::json!({"keys": [{
        "kty": "EC", "crv": "P-256", "kid": "as-key", "alg": "ES256", "use": "sig",
        "x": b64(&point[1..33]), "y": b64(&point[33..65]),
    }]});
    let mut verifier = TokenVerifier::new(ISSUER, RESOURCE);
    verifier.set_jwks(jwks.to_string().as_bytes()).unwrap();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    header.typ = Some("at+jwt".into());
    header.kid = Some("as-key".into());
    let key = jsonwebtoken::EncodingKey::from_ec_der(pkcs8.as_ref());
    let token = |cnf: Option<serde_json::Value>| {
        let mut claims = serde_json::json!({
            "iss": ISSUER, "aud": RESOURCE, "sub": "alice", "client_id": "c",
            "scope": "mcp:tools", "iat": NOW.0, "exp": NOW.0 + 300,
        });
        if let Some(cnf) = cnf {
            claims["cnf"] = cnf;
        }
        jsonwebtoken::encode(&header, &claims, &key).unwrap()
    };
    verifier.verify(&token(None), NOW).unwrap();
    for cnf in [
        serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
        serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        serde_json::json!({}),
    ] {
        let refused = verifier.verify(&token(Some(cnf.clone())), NOW).unwrap_err();
        assert_eq!(refused, VerifyError::SenderConstrained, "{cnf}");
        assert!(refused.to_string().contains("bound to a key"));
    }

    // Presented with the DPoP scheme: the thumbprint comes back for the proof check; a token
    // bound otherwise, or not bound, is refused.
    let jkt = "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I";
    let (verified, bound_to) = verifier
        .verify_bound(&token(Some(serde_json::json!({"jkt": jkt}))), NOW)
        .unwrap();
    assert_eq!(bound_to, jkt);
    assert_eq!(verified.subject, "alice");
    assert_eq!(
        verifier.verify_bound(&token(None), NOW).unwrap_err(),
        VerifyError::NotBound
    );
    for cnf in [
        serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        serde_json::json!({"jkt": jkt, "x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        serde_json::json!({"jkt": 1}),
        serde_json::json!({}),
        serde_json::json!(null),
        serde_json::json!(jkt),
    ] {
        assert_eq!(
            verifier
                .verify_bound(&token(Some(cnf.clone())), NOW)
                .unwrap_err(),
            VerifyError::UnsupportedBinding,
            "{cnf}"
        );
    }
    // Every other check still applies.
    let mut expired = TokenVerifier::new(ISSUER, RESOURCE);
    expired.set_jwks(jwks.to_string().as_bytes()).unwrap();
    assert_eq!(
        expired
            .verify_bound(
                &token(Some(serde_json::json!({"jkt": jkt}))),
                UnixTime(NOW.0 + 3600)
            )
            .unwrap_err(),
        VerifyError::Expired
    );
}
