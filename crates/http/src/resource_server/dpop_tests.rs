//! RFC 9449 §7 at the resource server: tokens bound to a key, presented with the DPoP scheme
//! and a proof, through the whole admission. The authorization server's key and the client's
//! are made here (mcpauth's own authorization server does not issue bound tokens yet).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed unwrap is a failed test"
)]

use std::sync::Arc;

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};
use jsonwebtoken::{Algorithm, EncodingKey};
use mcpauth_oauth_types::UnixTime;
use serde_json::{Value, json};

use crate::{
    Admission, IntrospectionClient, KeySource, KeySourceError, ResourceServer,
    ResourceServerConfig, RouteRules,
};

const NOW: u64 = 1_800_000_000;
const RESOURCE: &str = "https://mcp.example.com/mcp";
const ISSUER: &str = "https://auth.example.com";

pub(super) struct Key {
    pub(super) encoding: EncodingKey,
    pub(super) jwk: Value,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(super) fn es256_key() -> Key {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let point = pair.public_key().as_ref();
    Key {
        encoding: EncodingKey::from_ec_der(pkcs8.as_ref()),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
    }
}

/// The authorization server's JWK Set, served to the resource server.
#[derive(Debug)]
pub(super) struct StaticKeys(pub(super) Bytes);

#[async_trait::async_trait]
impl KeySource for StaticKeys {
    async fn jwk_set(&self, _: &str) -> Result<Bytes, KeySourceError> {
        Ok(self.0.clone())
    }

    async fn introspect(&self, _: &IntrospectionClient, _: &str) -> Result<Bytes, KeySourceError> {
        Err("no introspection here".into())
    }
}

struct Deployment {
    resource: ResourceServer,
    authorization_server: Key,
}

impl Deployment {
    fn new() -> Self {
        Self::configured(|config| config)
    }

    fn configured(configure: impl FnOnce(ResourceServerConfig) -> ResourceServerConfig) -> Self {
        let authorization_server = es256_key();
        let mut jwk = authorization_server.jwk.clone();
        jwk["kid"] = json!("as-key");
        jwk["alg"] = json!("ES256");
        jwk["use"] = json!("sig");
        let keys = Bytes::from(json!({"keys": [jwk]}).to_string());
        let config = configure(ResourceServerConfig::new(
            RESOURCE,
            ISSUER,
            "https://auth.example.com/jwks",
        ));
        let resource = ResourceServer::with_key_source(config, Arc::new(StaticKeys(keys))).unwrap();
        Self {
            resource,
            authorization_server,
        }
    }

    /// An access token for this resource, bound to `client`'s key when given.
    fn token(&self, bound_to: Option<&Key>) -> String {
        let mut header = jsonwebtoken::Header::new(Algorithm::ES256);
        header.typ = Some("at+jwt".into());
        header.kid = Some("as-key".into());
        let mut claims = json!({
            "iss": ISSUER, "aud": RESOURCE, "sub": "alice", "client_id": "c",
            "scope": "mcp:tools", "iat": NOW, "exp": NOW + 300, "sub_type": "user",
        });
        if let Some(key) = bound_to {
            claims["cnf"] = json!({"jkt": mcpauth_dpop::jwk_thumbprint(&key.jwk).unwrap()});
        }
        jsonwebtoken::encode(&header, &claims, &self.authorization_server.encoding).unwrap()
    }

    async fn send(
        &self,
        method: Method,
        authorization: &str,
        proofs: &[&str],
    ) -> Result<(), http::Response<Bytes>> {
        self.send_to(&RouteRules::new(), method, authorization, proofs)
            .await
    }

    async fn send_to(
        &self,
        rules: &RouteRules,
        method: Method,
        authorization: &str,
        proofs: &[&str],
    ) -> Result<(), http::Response<Bytes>> {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, authorization.parse().unwrap());
        for proof in proofs {
            headers.append("dpop", proof.parse().unwrap());
        }
        match self
            .resource
            .admit(&method, &headers, rules, UnixTime(NOW))
            .await
        {
            Admission::Admit(_) | Admission::NeedsBody(_) => Ok(()),
            Admission::Refuse(refusal) => Err(refusal),
            Admission::Preflight => panic!("not a preflight"),
        }
    }
}

/// A DPoP proof by `key` for `method` on the resource, carrying `token`'s hash.
fn proof(key: &Key, method: &str, token: &str, jti: &str) -> String {
    proof_at(key, method, token, jti, NOW)
}

fn proof_at(key: &Key, method: &str, token: &str, jti: &str, iat: u64) -> String {
    proof_with_nonce(key, method, token, jti, iat, None)
}

fn proof_with_nonce(
    key: &Key,
    method: &str,
    token: &str,
    jti: &str,
    iat: u64,
    nonce: Option<&str>,
) -> String {
    let header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": key.jwk});
    let mut claims = json!({
        "jti": jti, "htm": method, "htu": RESOURCE, "iat": iat,
        "ath": mcpauth_dpop::access_token_hash(token),
    });
    if let Some(nonce) = nonce {
        claims["nonce"] = json!(nonce);
    }
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature =
        jsonwebtoken::crypto::sign(message.as_bytes(), &key.encoding, Algorithm::ES256).unwrap();
    format!("{message}.{signature}")
}

fn challenge(refusal: &http::Response<Bytes>) -> String {
    refusal.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_bound_token_with_a_fresh_proof_of_its_key_is_admitted_once() {
    let deployment = Deployment::new();
    let client = es256_key();
    let token = deployment.token(Some(&client));
    let first = proof(&client, "POST", &token, "jti-1");
    deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&first])
        .await
        .unwrap();
    // The same proof again (RFC 9449 §11.1): refused; a new one is fine.
    let replayed = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&first])
        .await
        .unwrap_err();
    assert_eq!(replayed.status(), StatusCode::UNAUTHORIZED);
    let value = challenge(&replayed);
    assert!(
        value.starts_with("DPoP algs=\"ES256 EdDSA PS256 RS256\""),
        "{value}"
    );
    assert!(value.contains("error=\"invalid_dpop_proof\""), "{value}");
    assert!(value.contains("resource_metadata="), "{value}");
    deployment
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "jti-2")],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_stolen_bound_token_is_useless_without_its_key() {
    let deployment = Deployment::new();
    let (client, thief) = (es256_key(), es256_key());
    let token = deployment.token(Some(&client));
    // As a bearer token (RFC 9449 §7.1).
    let as_bearer = deployment
        .send(Method::POST, &format!("Bearer {token}"), &[])
        .await
        .unwrap_err();
    assert_eq!(as_bearer.status(), StatusCode::UNAUTHORIZED);
    let value = challenge(&as_bearer);
    assert!(value.starts_with("Bearer "), "{value}");
    assert!(value.contains("error=\"invalid_token\""), "{value}");
    // With the DPoP scheme and no proof, or a proof by the thief's own key.
    let no_proof = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[])
        .await
        .unwrap_err();
    assert!(challenge(&no_proof).starts_with("DPoP algs="));
    assert!(challenge(&no_proof).contains("error=\"invalid_dpop_proof\""));
    let other_key = deployment
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&thief, "POST", &token, "j")],
        )
        .await
        .unwrap_err();
    let value = challenge(&other_key);
    assert!(value.contains("error=\"invalid_dpop_proof\""), "{value}");
    assert!(value.contains("another key"), "{value}");
    // The thief's refused proof did not use up the jti for the key's holder.
    deployment
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "j")],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn a_proof_must_be_fresh() {
    let deployment = Deployment::new();
    let client = es256_key();
    let token = deployment.token(Some(&client));
    let stale = proof_at(&client, "POST", &token, "old", NOW - 301);
    let refused = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&stale])
        .await
        .unwrap_err();
    assert!(challenge(&refused).contains("error=\"invalid_dpop_proof\""));
    // The scheme is case-insensitive (RFC 7235 §2.1).
    deployment
        .send(
            Method::POST,
            &format!("dpop {token}"),
            &[&proof(&client, "POST", &token, "new")],
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn refusals_after_the_proof_answer_in_the_dpop_scheme() {
    let deployment = Deployment::new();
    let client = es256_key();
    let token = deployment.token(Some(&client));
    // Step-up: the token lacks a scope the route needs (403, naming it).
    let rules = RouteRules::new().requiring(&["admin"]);
    let step_up = deployment
        .send_to(
            &rules,
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "s")],
        )
        .await
        .unwrap_err();
    assert_eq!(step_up.status(), StatusCode::FORBIDDEN);
    let value = challenge(&step_up);
    assert!(value.starts_with("DPoP algs="), "{value}");
    assert!(value.contains("error=\"insufficient_scope\""), "{value}");
    // A refused request's proof takes no place in the memory: the same proof passes where the
    // route asks for nothing more.
    deployment
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "s")],
        )
        .await
        .unwrap();
    // An opaque token with the DPoP scheme.
    let refused = deployment
        .send(
            Method::POST,
            "DPoP opaque-token-value",
            &[&proof(&client, "POST", "opaque-token-value", "o")],
        )
        .await
        .unwrap_err();
    let value = challenge(&refused);
    assert!(value.contains("error=\"invalid_token\""), "{value}");
    assert!(value.contains("cnf.jkt"), "{value}");
}

#[tokio::test]
async fn a_proof_is_for_one_method_and_one_token() {
    let deployment = Deployment::new();
    let client = es256_key();
    let token = deployment.token(Some(&client));
    let for_get = proof(&client, "GET", &token, "j1");
    let refused = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&for_get])
        .await
        .unwrap_err();
    assert!(challenge(&refused).contains("error=\"invalid_dpop_proof\""));
    // A proof made for another token of the same key (`ath`).
    let mismatched = proof(&client, "POST", "a-different-access-token", "j2");
    let refused = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&mismatched])
        .await
        .unwrap_err();
    assert!(challenge(&refused).contains("error=\"invalid_dpop_proof\""));
    // Two proofs at once.
    let twice = proof(&client, "POST", &token, "j3");
    let refused = deployment
        .send(Method::POST, &format!("DPoP {token}"), &[&twice, &twice])
        .await
        .unwrap_err();
    assert!(challenge(&refused).contains("error=\"invalid_dpop_proof\""));
}

#[tokio::test]
async fn an_unbound_token_goes_with_the_bearer_scheme_only() {
    let deployment = Deployment::new();
    let client = es256_key();
    let token = deployment.token(None);
    deployment
        .send(Method::POST, &format!("Bearer {token}"), &[])
        .await
        .unwrap();
    let refused = deployment
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "j")],
        )
        .await
        .unwrap_err();
    let value = challenge(&refused);
    assert!(value.starts_with("DPoP "), "{value}");
    assert!(value.contains("error=\"invalid_token\""), "{value}");
}

#[test]
fn the_metadata_names_the_dpop_algorithms_accepted() {
    let deployment = Deployment::new();
    let metadata = serde_json::to_value(deployment.resource.metadata()).unwrap();
    assert_eq!(
        metadata["dpop_signing_alg_values_supported"],
        json!(["ES256", "EdDSA", "PS256", "RS256"])
    );
}

#[tokio::test]
async fn with_nonces_on_a_proof_carries_this_servers_current_nonce() {
    let nonces = mcpauth_dpop::NonceSource::new(b"a secret the instances share, 32+", 60);
    let deployment = Deployment::configured(|config| config.with_dpop_nonces(nonces.clone()));
    let client = es256_key();
    let token = deployment.token(Some(&client));
    let authorization = format!("DPoP {token}");
    // RFC 9449 §9: no nonce, a use_dpop_nonce challenge with one to use.
    let asked = deployment
        .send(
            Method::POST,
            &authorization,
            &[&proof(&client, "POST", &token, "n-1")],
        )
        .await
        .unwrap_err();
    assert_eq!(asked.status(), StatusCode::UNAUTHORIZED);
    let value = challenge(&asked);
    assert!(value.starts_with("DPoP algs="), "{value}");
    assert!(value.contains("error=\"use_dpop_nonce\""), "{value}");
    let nonce = asked.headers()["dpop-nonce"].to_str().unwrap().to_owned();
    assert_eq!(nonce, nonces.current(NOW));
    assert!(
        asked.headers()["access-control-expose-headers"]
            .to_str()
            .unwrap()
            .contains("dpop-nonce"),
        "browser clients can read the nonce"
    );
    // The refused proof was not remembered: with the nonce, the same jti is admitted, once.
    let with_nonce = proof_with_nonce(&client, "POST", &token, "n-1", NOW, Some(&nonce));
    deployment
        .send(Method::POST, &authorization, &[&with_nonce])
        .await
        .unwrap();
    let replayed = deployment
        .send(Method::POST, &authorization, &[&with_nonce])
        .await
        .unwrap_err();
    assert!(challenge(&replayed).contains("invalid_dpop_proof"));
    // The previous period's nonce is still accepted (a nonce lives one to two periods).
    let previous = nonces.current(NOW - 60);
    deployment
        .send(
            Method::POST,
            &authorization,
            &[&proof_with_nonce(
                &client,
                "POST",
                &token,
                "n-2",
                NOW,
                Some(&previous),
            )],
        )
        .await
        .unwrap();
    // A nonce this server did not issue, or one long expired: asked again.
    for (jti, stale) in [
        ("n-3", "made-up".to_owned()),
        ("n-4", nonces.current(NOW - 600)),
    ] {
        let refused = deployment
            .send(
                Method::POST,
                &authorization,
                &[&proof_with_nonce(
                    &client,
                    "POST",
                    &token,
                    jti,
                    NOW,
                    Some(&stale),
                )],
            )
            .await
            .unwrap_err();
        assert!(challenge(&refused).contains("use_dpop_nonce"), "{jti}");
        assert!(refused.headers().contains_key("dpop-nonce"));
    }
    // Off (the default), a proof without a nonce is fine.
    let plain = Deployment::new();
    let token = plain.token(Some(&client));
    plain
        .send(
            Method::POST,
            &format!("DPoP {token}"),
            &[&proof(&client, "POST", &token, "n-5")],
        )
        .await
        .unwrap();
}
