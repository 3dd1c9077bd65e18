//! RFC 7523 §2.1 assertions as any caller could present them at the token endpoint of an engine
//! that trusts an enterprise identity provider and a workload issuer: raw `assertion` values,
//! tokens built from arbitrary header and payload text, and arbitrary claims under each
//! issuer's valid header, signed with its fixed Ed25519 key (deterministic signatures), so the
//! claim checks are reached. Whatever comes in, the engine answers without panicking, and a
//! token is issued only for a claim set that names a trusted issuer, this server as its
//! audience, and (for the provider) the authenticated client.
#![no_main]

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair as _};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    ClientId, ClientRecord, ClientStore as _, EngineConfig, MemoryModel, SecretHash, SigningKey,
    TokenEndpointAuthMethod, TokenEngine, TrustedIssuer, TrustedIssuerKeys, UnixTime, WorkloadRule,
};

/// RFC 8032 §7.1's first test key.
const SEED: [u8; 32] = [
    0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a, 0xf4, 0x92, 0xec, 0x2c, 0xc4,
    0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32, 0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
];
const NOW: UnixTime = UnixTime(1_800_000_000);
const IDP: &str = "https://idp.example.com";
const CI: &str = "https://ci.example.com";
const CLIENT_SECRET: &str = "c1-secret-for-the-fuzz-target";

struct Keys(serde_json::Value);

#[async_trait::async_trait]
impl TrustedIssuerKeys for Keys {
    async fn jwk_set(
        &self,
        _: &str,
        _: bool,
    ) -> Result<serde_json::Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.clone())
    }
}

#[derive(Debug, arbitrary::Arbitrary)]
struct Input {
    raw: String,
    header: String,
    payload: String,
    signature: Vec<u8>,
    identity_provider: bool,
    authenticate: bool,
    extra_scope: Option<String>,
}

fuzz_target!(|input: Input| {
    let Ok(key) = Ed25519KeyPair::from_seed_unchecked(&SEED) else {
        return;
    };
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "kid": "k1", "alg": "EdDSA",
        "x": URL_SAFE_NO_PAD.encode(key.public_key().as_ref()),
    });
    let Ok(mut config) = EngineConfig::new("https://auth.example.com".parse().expect("url")) else {
        return;
    };
    config.trusted_issuers(
        vec![
            TrustedIssuer::identity_provider(
                IDP,
                "https://idp.example.com/jwks",
                vec!["c1".into()],
            ),
            TrustedIssuer::workloads(
                CI,
                "https://ci.example.com/jwks",
                vec![WorkloadRule::new("job:*", "ci-client", &["mcp:tools"])],
            ),
        ],
        Arc::new(Keys(serde_json::json!({ "keys": [jwk] }))),
        None,
    );
    let Ok(signing) = SigningKey::generate(mcpauth_token_engine::KeyAlgorithm::Es256) else {
        return;
    };
    // The clients the issuers' entries name, as an operator registers them: `c1` with a
    // secret (ID-JAGs), `ci-client` for the workloads; both with the grant.
    let model = Arc::new(MemoryModel::new());
    for (id, secret) in [("c1", Some(CLIENT_SECRET)), ("ci-client", None)] {
        let mut metadata = mcpauth_oauth_types::ClientMetadata::default();
        metadata.grant_types = vec!["urn:ietf:params:oauth:grant-type:jwt-bearer".into()];
        metadata.scope = Some("mcp:tools".into());
        let mut record = ClientRecord::new(
            ClientId::from(id),
            TokenEndpointAuthMethod::ClientSecretBasic,
            metadata,
            NOW,
        );
        record.secret_hash = secret.map(SecretHash::of);
        if futures::executor::block_on(model.insert_client(record)).is_err() {
            return;
        }
    }
    let engine = TokenEngine::new(config, model, signing, Arc::new(SeededRandom::new(1)));

    let encode = |text: &str| URL_SAFE_NO_PAD.encode(text.as_bytes());
    let typ = if input.identity_provider {
        "oauth-id-jag+jwt"
    } else {
        "JWT"
    };
    let header = serde_json::json!({"typ": typ, "alg": "EdDSA", "kid": "k1"});
    let message = format!("{}.{}", encode(&header.to_string()), encode(&input.payload));
    let signed = format!(
        "{message}.{}",
        URL_SAFE_NO_PAD.encode(key.sign(message.as_bytes()).as_ref())
    );
    let built = format!(
        "{}.{}.{}",
        encode(&input.header),
        encode(&input.payload),
        URL_SAFE_NO_PAD.encode(&input.signature)
    );
    for assertion in [input.raw.as_str(), built.as_str(), signed.as_str()] {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
            .append_pair("assertion", assertion)
            .append_pair("resource", "https://mcp.example.com/mcp");
        if let Some(scope) = &input.extra_scope {
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
            // Only the really signed assertion can have been accepted, and only one that
            // names a trusted issuer and this server.
            assert_eq!(assertion, signed);
            let claims: serde_json::Value =
                serde_json::from_str(&input.payload).expect("accepted claims are JSON");
            assert!(claims["iss"] == IDP || claims["iss"] == CI);
            let aud = &claims["aud"];
            assert!(
                aud == "https://auth.example.com"
                    || aud
                        .as_array()
                        .is_some_and(|a| a.iter().any(|v| v == "https://auth.example.com"))
            );
        }
    }
});
