//! The identity provider's side of the ID-JAG (draft-ietf-oauth-identity-assertion-authz-grant
//! §4.3): token exchange with `requested_token_type …:id-jag`, whose subject token is an ID
//! token or a refresh token, as any caller could send it: raw subject tokens, tokens built
//! from arbitrary header and payload text, and arbitrary claims under a valid ID-token header
//! signed with the engine's own (fixed Ed25519) key, so the claim checks are reached. Whatever
//! comes in, the engine answers without panicking, and an ID-JAG is issued only to the
//! authenticated, configured client, for an ID token this engine signed whose claims name this
//! issuer, that client as `aud`, a future `exp` and the live grant of the user it vouches for.
#![no_main]

use std::sync::Arc;

use aws_lc_rs::signature::Ed25519KeyPair;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AssertionAudience, ClientId, ClientRecord, ClientStore as _, EngineConfig, GrantId,
    GrantRecord, GrantStore as _, MemoryModel, Scope, SecretHash, SigningKey,
    TokenEndpointAuthMethod, TokenEngine, UnixTime,
};

/// RFC 8032 §7.1's first test key.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const NOW: UnixTime = UnixTime(1_800_000_000);
const IDP: &str = "https://idp.example.com";
const AUDIENCE: &str = "https://auth.mcp.example.com";
const CLIENT_SECRET: &str = "c1-secret-for-the-fuzz-target";

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    raw: String,
    header: String,
    payload: String,
    signature: Vec<u8>,
    /// `…:id_token` or `…:refresh_token`.
    id_token_type: bool,
    authenticate: bool,
    audience: Option<String>,
    scope: Option<String>,
}

fuzz_target!(|input: Input| {
    let Ok(pair) = Ed25519KeyPair::from_seed_unchecked(&SEED) else {
        return;
    };
    let Ok(pkcs8) = pair.to_pkcs8() else {
        return;
    };
    let Ok(signing) = SigningKey::ed25519_from_pkcs8_der(pkcs8.as_ref()) else {
        return;
    };
    let kid = signing.kid().to_owned();
    let Ok(mut config) = EngineConfig::new(IDP.parse().expect("url")) else {
        return;
    };
    config.identity_assertion_audiences(vec![
        AssertionAudience::new(
            AUDIENCE,
            vec!["https://mcp.example.com/mcp".into()],
            vec!["mcp:tools".into()],
        )
        .client("c1", "c1-there"),
    ]);
    // The configured client (confidential, with the exchange grant), another one, and alice's
    // live sign-in with c1 (grant `g1`).
    let model = Arc::new(MemoryModel::new());
    for id in ["c1", "c2"] {
        let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
        metadata.grant_types = vec!["urn:ietf:params:oauth:grant-type:token-exchange".into()];
        let mut record = ClientRecord::new(
            ClientId::from(id),
            TokenEndpointAuthMethod::ClientSecretBasic,
            metadata,
            NOW,
        );
        record.secret_hash = Some(SecretHash::of(CLIENT_SECRET));
        if futures::executor::block_on(model.insert_client(record)).is_err() {
            return;
        }
    }
    let grant = GrantRecord {
        grant_id: GrantId::from("g1"),
        client_id: ClientId::from("c1"),
        subject: "alice".into(),
        scope: Scope::from_tokens(["openid"]),
        resources: Vec::new(),
        created_at: NOW,
        revoked_at: None,
    };
    if futures::executor::block_on(model.insert_grant(grant)).is_err() {
        return;
    }
    let engine = TokenEngine::new(config, model, signing, Arc::new(SeededRandom::new(1)));

    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text.as_bytes());
    let header = serde_json::json!({"typ": "JWT", "alg": "EdDSA", "kid": kid});
    let message = format!("{}.{}", encode(&header.to_string()), encode(&input.payload));
    let signed = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(pair.sign(message.as_bytes()).as_ref())
    );
    let built = format!(
        "{}.{}.{}",
        encode(&input.header),
        encode(&input.payload),
        URL_SAFE_NO_PAD.encode(&input.signature)
    );
    let subject_type = if input.id_token_type {
        "urn:ietf:params:oauth:token-type:id_token"
    } else {
        "urn:ietf:params:oauth:token-type:refresh_token"
    };
    for subject in [input.raw.as_str(), built.as_str(), signed.as_str()] {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair(
            "grant_type",
            "urn:ietf:params:oauth:grant-type:token-exchange",
        )
        .append_pair(
            "requested_token_type",
            "urn:ietf:params:oauth:token-type:id-jag",
        )
        .append_pair("subject_token", subject)
        .append_pair("subject_token_type", subject_type)
        .append_pair("audience", input.audience.as_deref().unwrap_or(AUDIENCE));
        if let Some(scope) = &input.scope {
            form.append_pair("scope", scope);
        }
        let mut request = http::Request::post("/token")
            .header("content-type", "application/x-www-form-urlencoded");
        if input.authenticate {
            request = request.header(
                "authorization",
                format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD.encode(format!("c1:{CLIENT_SECRET}"))
                ),
            );
        }
        let Ok(request) = request.body(Bytes::from(form.finish())) else {
            continue;
        };
        let response = futures::executor::block_on(engine.token_endpoint(request, NOW));
        if response.status() == http::StatusCode::OK {
            // No refresh token exists here: only the really signed ID token can have been
            // taken, from the configured client, naming what the grant holds.
            assert!(input.authenticate && input.id_token_type);
            assert_eq!(subject, signed);
            let claims: serde_json::Value =
                serde_json::from_str(&input.payload).expect("accepted claims are JSON");
            assert_eq!(claims["iss"], IDP);
            assert_eq!(claims["sub"], "alice");
            let aud = &claims["aud"];
            assert!(aud == "c1" || aud.as_array().is_some_and(|a| a.iter().any(|v| v == "c1")));
            assert!(claims["exp"].as_u64().is_some_and(|exp| exp > NOW.0));
            assert!(
                claims["jti"]
                    .as_str()
                    .is_some_and(|jti| jti.starts_with("g1."))
            );
            let answer: serde_json::Value =
                serde_json::from_slice(response.body()).expect("a JSON answer");
            let id_jag = answer["access_token"].as_str().expect("the ID-JAG");
            let id_jag_claims: serde_json::Value = serde_json::from_slice(
                &URL_SAFE_NO_PAD
                    .decode(id_jag.split('.').nth(1).expect("a JWS"))
                    .expect("base64url"),
            )
            .expect("JSON claims");
            assert_eq!(id_jag_claims["sub"], "alice");
            assert_eq!(id_jag_claims["aud"], AUDIENCE);
            assert_eq!(id_jag_claims["client_id"], "c1-there");
        }
    }
});
