//! What an upstream identity provider sends back (`mcpauth-proxy`): the callback query
//! (RFC 6749 §4.1.2, RFC 9207 `iss`), an OpenID Connect discovery document, an ID token
//! checked against a JWK Set, and the userinfo, GitHub and Discord identity documents.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_proxy::identity::{from_discord, from_github, from_id_token, from_mapping};
use mcpauth_proxy::{ClaimMapping, Preset, Provider, ProviderConfig, id_token, upstream};

// Four parts separated by NUL bytes, so the seeds in `fuzz/seeds/upstream_responses` stay
// readable: a callback query, a discovery document or JWK Set, an ID token, an identity document.
fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(4, |b| *b == 0);
    let mut next = || parts.next().unwrap_or_default();
    let (query, document) = (String::from_utf8_lossy(next()), next());
    let (token, identity) = (String::from_utf8_lossy(next()), next());
    let (query, token) = (query.as_ref(), token.as_ref());
    if let Ok(callback) = upstream::parse_callback(query) {
        // A parsed callback always has a state to look the sign-in up by.
        assert!(
            !callback.state().is_empty(),
            "a callback without a state parsed"
        );
    }

    let mut oidc = ProviderConfig::new("oidc", Preset::Oidc, "client");
    oidc.issuer = "https://idp.example.com".parse().ok();
    if let Ok(provider) = Provider::from_discovery(&oidc, document) {
        // An accepted document's endpoints are https, or http on loopback only.
        let endpoint = &provider.authorization_endpoint;
        let loopback = matches!(
            endpoint.host_str(),
            Some("127.0.0.1" | "[::1]" | "localhost")
        ) || endpoint.host_str().is_some_and(|h| h.starts_with("127."));
        assert!(
            endpoint.scheme() == "https" || (endpoint.scheme() == "http" && loopback),
            "{endpoint}"
        );
        let _ = upstream::check_issuer(&provider, callback_iss(query).as_deref());
    }
    if let Ok(google) =
        Provider::from_config(&ProviderConfig::new("google", Preset::Google, "client"))
    {
        // The fuzzed bytes as the JWK Set: an ID token must never validate against garbage.
        let _ = id_token::validate(
            &google,
            document,
            token,
            "nonce",
            mcpauth_token_engine::UnixTime(1_800_000_000),
        );
    }

    if let Ok(value) = serde_json::from_slice::<serde_json::Value>(identity) {
        let _ = from_id_token("oidc", &value, Some(&value));
        let _ = from_github("github", &value, Some(&value));
        let _ = from_discord("discord", &value);
        if let Ok(mapping) = serde_json::from_value::<ClaimMapping>(serde_json::json!({
            "subject": "id", "email": "mail", "email_verified": "verified", "name": "name"
        })) {
            if let Ok(identity) = from_mapping("oauth2", &mapping, &value) {
                assert!(
                    !identity.subject.is_empty(),
                    "an identity without a subject"
                );
            }
        }
    }
});

fn callback_iss(query: &str) -> Option<String> {
    upstream::parse_callback(query)
        .ok()?
        .iss()
        .map(str::to_owned)
}
