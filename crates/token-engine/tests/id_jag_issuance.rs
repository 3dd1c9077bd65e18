//! One engine as the enterprise identity provider, another as the MCP server's authorization
//! server (draft-ietf-oauth-identity-assertion-authz-grant): the user signs in at the
//! provider once; the client exchanges the refresh token from that sign-in for an ID-JAG
//! (§4.3) and presents it at the other server (§4.4) for an access token, with no consent
//! there. The attacker's view: what a client that is not exactly the configured one, or a
//! subject token that is not exactly right, gets (nothing).
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "tests: a failed unwrap is a failed test; DPoP keys come from the OS random source"
)]

mod common;

use std::sync::Arc;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::testing::SeededRandom;
use mcpauth_token_engine::{
    AssertionAudience, AuthorizeOutcome, EngineConfig, GrantStore as _, ID_TOKEN_TYPE,
    KeyAlgorithm, KeySet, MemoryModel, REFRESH_TOKEN_TYPE, SigningKey, TOKEN_EXCHANGE_GRANT,
    TokenEngine, TrustedIssuer, TrustedIssuerKeys,
};
use serde_json::Value;

const IDP: &str = "https://idp.example.com";
const MCP_AS: &str = "https://auth.mcp.example.com";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";
const ID_JAG: &str = "urn:ietf:params:oauth:token-type:id-jag";

fn engine_at(issuer: &str, seed: u64, configure: impl FnOnce(&mut EngineConfig)) -> Harness {
    engine_with_key(issuer, seed, signing_key(), configure)
}

fn engine_with_key(
    issuer: &str,
    seed: u64,
    key: SigningKey,
    configure: impl FnOnce(&mut EngineConfig),
) -> Harness {
    let mut config = EngineConfig::new(issuer.parse().unwrap()).unwrap();
    configure(&mut config);
    Harness {
        engine: TokenEngine::new(
            config,
            Arc::new(MemoryModel::new()),
            key,
            Arc::new(SeededRandom::new(seed)),
        ),
        client_id: String::new(),
    }
}

/// The provider's JWK Set, as the MCP authorization server would fetch it (a mock of the
/// fetch: the server's fetcher is tested over HTTPS in mcpauth-server's tests).
struct ProviderKeys(Value);

#[async_trait::async_trait]
impl TrustedIssuerKeys for ProviderKeys {
    async fn jwk_set(
        &self,
        _jwks_uri: &str,
        _refresh: bool,
    ) -> Result<Value, Box<dyn std::error::Error + Send + Sync>> {
        Ok(self.0.clone())
    }
}

struct Enterprise {
    idp: Harness,
    mcp_as: Harness,
    /// The agent at the provider: signs the user in there, asks for ID-JAGs.
    agent_at_idp: (String, String),
    /// The same agent at the MCP authorization server.
    agent_at_as: (String, String),
    /// Another confidential client at the provider, allowed nothing.
    stranger_at_idp: (String, String),
    /// The refresh token from alice's sign-in at the provider.
    refresh_token: String,
    /// The grant of that sign-in.
    grant_id: String,
    /// The ID token from that sign-in (scope `openid`).
    id_token: String,
    /// The provider's signing key (PKCS#8), to rotate it in a test.
    idp_key: Vec<u8>,
}

async fn enterprise() -> Enterprise {
    enterprise_with_scope(vec!["mcp:tools".into()]).await
}

/// The provider's policy for the MCP authorization server names `scope`.
async fn enterprise_with_scope(scope: Vec<String>) -> Enterprise {
    // Client ids are random but seeded: a probe engine with the provider's seed tells the
    // ids before the provider is configured with them.
    let idp_clients = |h: Harness| async move {
        let grants = ["authorization_code", "refresh_token", TOKEN_EXCHANGE_GRANT];
        let agent = h.confidential_client(&grants, None).await;
        let stranger = h.confidential_client(&grants, None).await;
        (h, agent, stranger)
    };
    let (_, probe_agent, _) = idp_clients(engine_at(IDP, 11, |_| {})).await;
    let mut mcp_as = engine_at(MCP_AS, 12, |_| {});
    let agent_at_as = mcp_as
        .confidential_client(&[JWT_BEARER], Some("mcp:tools mcp:admin"))
        .await;
    let idp_key = SigningKey::generate_pkcs8(KeyAlgorithm::Es256).unwrap();
    let provider_key = SigningKey::es256_from_pkcs8_der(&idp_key).unwrap();
    let (idp, agent_at_idp, stranger_at_idp) =
        idp_clients(engine_with_key(IDP, 11, provider_key, |config| {
            config.identity_assertion_audiences(vec![
                AssertionAudience::new(MCP_AS, vec![RESOURCE.into()], scope)
                    .client(&probe_agent.0, &agent_at_as.0),
            ]);
        }))
        .await;
    assert_eq!(agent_at_idp.0, probe_agent.0, "same seed, same client id");
    // The MCP authorization server trusts the provider for that agent.
    let model = mcp_as.engine.model().clone();
    let mut config = EngineConfig::new(MCP_AS.parse().unwrap()).unwrap();
    config.trusted_issuers(
        vec![TrustedIssuer::identity_provider(
            IDP,
            &format!("{IDP}/jwks"),
            vec![agent_at_as.0.clone()],
        )],
        Arc::new(ProviderKeys(idp.engine.jwks())),
        None,
    );
    mcp_as.engine = TokenEngine::new(
        config,
        model,
        signing_key(),
        Arc::new(SeededRandom::new(13)),
    );

    // Alice signs in at the provider through the agent (the one consent, there), with
    // `openid` for an ID token.
    let tokens = sign_in(&idp, &agent_at_idp, "openid").await;
    // An access token's jti is `<grant_id>.<random>`.
    let access = jwt_part(tokens["access_token"].as_str().unwrap(), 1);
    let grant_id = access["jti"]
        .as_str()
        .unwrap()
        .split_once('.')
        .unwrap()
        .0
        .to_owned();
    Enterprise {
        grant_id,
        idp_key,
        id_token: tokens["id_token"].as_str().unwrap().to_owned(),
        refresh_token: tokens["refresh_token"].as_str().unwrap().to_owned(),
        idp,
        mcp_as,
        agent_at_idp,
        agent_at_as,
        stranger_at_idp,
    }
}

/// `client` signs alice in at `h` with `scope` (the consent given) and redeems the code:
/// the token response.
async fn sign_in(h: &Harness, client: &(String, String), scope: &str) -> Value {
    let mut q = h.authorize_query(REDIRECT);
    q[1].1.clone_from(&client.0);
    q.retain(|(name, _)| *name != "scope");
    q.push(("scope", scope.into()));
    let AuthorizeOutcome::NeedsConsent(pending) = h.authorize(&q).await else {
        panic!("consent expected");
    };
    let code = code_of(
        &h.engine
            .approve(pending, "alice", NOW)
            .await
            .unwrap()
            .location,
    );
    let (status, tokens, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
            Some((&client.0, &client.1)),
            NOW.plus(1),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{tokens}");
    tokens
}

/// `client` refreshes `refresh_token` at `h`.
async fn refresh_as(
    h: &Harness,
    client: &(String, String),
    refresh_token: &str,
) -> (StatusCode, Value) {
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", refresh_token),
            ],
            Some((&client.0, &client.1)),
            NOW.plus(1),
        )
        .await;
    (status, body)
}

impl Enterprise {
    async fn exchange_as(
        &self,
        client: &(String, String),
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut pairs = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("requested_token_type", ID_JAG),
            ("subject_token", self.refresh_token.as_str()),
            ("subject_token_type", REFRESH_TOKEN_TYPE),
            ("audience", MCP_AS),
            ("resource", RESOURCE),
        ];
        for (name, _) in extra {
            pairs.retain(|(n, _)| n != name);
        }
        pairs.extend(extra.iter().filter(|(_, v)| !v.is_empty()).copied());
        let (status, body, _) = self
            .idp
            .post(
                Endpoint::Token,
                &pairs,
                Some((&client.0, &client.1)),
                NOW.plus(2),
            )
            .await;
        (status, body)
    }

    async fn exchange(&self, extra: &[(&str, &str)]) -> (StatusCode, Value) {
        self.exchange_as(&self.agent_at_idp, extra).await
    }

    /// The agent's exchange at `now`.
    async fn exchange_at(
        &self,
        now: mcpauth_token_engine::UnixTime,
        extra: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut pairs = vec![
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("requested_token_type", ID_JAG),
            ("subject_token_type", REFRESH_TOKEN_TYPE),
            ("audience", MCP_AS),
        ];
        pairs.extend_from_slice(extra);
        let (status, body, _) = self
            .idp
            .post(
                Endpoint::Token,
                &pairs,
                Some((&self.agent_at_idp.0, &self.agent_at_idp.1)),
                now,
            )
            .await;
        (status, body)
    }

    async fn present(&self, assertion: &str) -> (StatusCode, Value) {
        let (status, body, _) = self
            .mcp_as
            .post(
                Endpoint::Token,
                &[("grant_type", JWT_BEARER), ("assertion", assertion)],
                Some((&self.agent_at_as.0, &self.agent_at_as.1)),
                NOW.plus(3),
            )
            .await;
        (status, body)
    }
}

#[tokio::test]
async fn a_signed_in_users_refresh_token_becomes_an_id_jag_and_the_id_jag_an_access_token() {
    let e = enterprise().await;
    let (status, body) = e.exchange(&[]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The draft's §4.3.2: the ID-JAG in access_token, token_type N_A, no refresh token.
    assert_eq!(body["issued_token_type"], ID_JAG);
    assert_eq!(body["token_type"], "N_A");
    assert_eq!(body["expires_in"], 300);
    assert!(body.get("refresh_token").is_none());
    let assertion = body["access_token"].as_str().unwrap();
    let header = jwt_part(assertion, 0);
    assert_eq!(header["typ"], "oauth-id-jag+jwt");
    assert!(header["kid"].is_string());
    let claims = jwt_part(assertion, 1);
    assert_eq!(claims["iss"], IDP);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], MCP_AS);
    assert_eq!(
        claims["client_id"],
        e.agent_at_as.0.as_str(),
        "the agent's id at the audience"
    );
    assert_eq!(claims["resource"], RESOURCE);
    assert_eq!(claims["scope"], "mcp:tools");
    assert!(claims["jti"].is_string());
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        300
    );

    // At the MCP authorization server: alice's token for the MCP server, no consent asked.
    let (status, token) = e.present(assertion).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    let access = jwt_part(token["access_token"].as_str().unwrap(), 1);
    assert_eq!(access["sub"], format!("{IDP}#alice"));
    assert_eq!(access["aud"], RESOURCE);
    assert_eq!(access["client_id"], e.agent_at_as.0.as_str());
    assert_eq!(access["scope"], "mcp:tools");
    // Replayed: refused.
    let (status, replay) = e.present(assertion).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of(&replay), "invalid_grant");
    // The exchange did not use the refresh token up: it still refreshes at the provider.
    let (status, _) = refresh_as(&e.idp, &e.agent_at_idp, &e.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn an_id_jag_carries_only_what_the_audiences_policy_grants() {
    let e = enterprise().await;
    // Asked for more scope than the policy has: the part it has.
    let (status, body) = e.exchange(&[("scope", "mcp:tools mcp:admin")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "mcp:tools");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["scope"],
        "mcp:tools"
    );
    // Only what it does not have: nothing.
    let (_, body) = e.exchange(&[("scope", "mcp:admin")]).await;
    assert_eq!(error_of(&body), "invalid_scope");
    // A resource the policy does not name, another audience, no audience.
    let (_, body) = e
        .exchange(&[("resource", "https://other.example.com/mcp")])
        .await;
    assert_eq!(error_of(&body), "invalid_target");
    let (_, body) = e
        .exchange(&[("audience", "https://evil-as.example.com")])
        .await;
    assert_eq!(error_of(&body), "invalid_target");
    let (_, body) = e.exchange(&[("audience", "")]).await;
    assert_eq!(error_of(&body), "invalid_request");
    // No resource asked: the policy's resources.
    let (status, body) = e.exchange(&[("resource", "")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["resource"],
        RESOURCE
    );
}

#[tokio::test]
async fn only_the_configured_client_with_its_own_live_refresh_token_gets_an_id_jag() {
    let e = enterprise().await;
    // Another confidential client of the provider, with alice's refresh token: nothing.
    let (status, body) = e.exchange_as(&e.stranger_at_idp, &[]).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "unauthorized_client");
    // Not a refresh token of this server, an ID token, an access token: nothing.
    let (_, body) = e
        .exchange(&[("subject_token", "not-a-refresh-token")])
        .await;
    assert_eq!(error_of(&body), "invalid_grant");
    let (_, body) = e.exchange(&[("subject_token_type", ID_TOKEN_TYPE)]).await;
    assert_eq!(
        error_of(&body),
        "invalid_grant",
        "a refresh token is no ID token"
    );
    let (_, body) = e
        .exchange(&[(
            "subject_token_type",
            "urn:ietf:params:oauth:token-type:access_token",
        )])
        .await;
    assert_eq!(error_of(&body), "invalid_request");
    // Wrong credentials: nothing.
    let (status, _) = e
        .exchange_as(&(e.agent_at_idp.0.clone(), "wrong".into()), &[])
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The user's grant revoked at the provider (signed out, consent withdrawn): nothing.
    let claims = jwt_part(e.exchange(&[]).await.1["access_token"].as_str().unwrap(), 1);
    assert_eq!(claims["sub"], "alice");
    e.idp
        .engine
        .model()
        .revoke_grant(&e.grant_id.as_str().into(), NOW.plus(1))
        .await
        .unwrap();
    let (_, body) = e.exchange(&[]).await;
    assert_eq!(error_of(&body), "invalid_grant");
}

#[tokio::test]
async fn a_mis_audienced_id_jag_is_refused_and_the_metadata_says_who_issues_and_who_takes_them() {
    let e = enterprise().await;
    // An ID-JAG the provider issued for the MCP authorization server, presented by the agent
    // to a third authorization server that trusts the same provider: refused there.
    let third = engine_at("https://third-as.example.com", 14, |_| {});
    let agent_there = third.confidential_client(&[JWT_BEARER], None).await;
    let model = third.engine.model().clone();
    let mut config = EngineConfig::new("https://third-as.example.com".parse().unwrap()).unwrap();
    config.trusted_issuers(
        vec![TrustedIssuer::identity_provider(
            IDP,
            &format!("{IDP}/jwks"),
            vec![agent_there.0.clone()],
        )],
        Arc::new(ProviderKeys(e.idp.engine.jwks())),
        None,
    );
    let third = Harness {
        engine: TokenEngine::new(
            config,
            model,
            signing_key(),
            Arc::new(SeededRandom::new(15)),
        ),
        client_id: String::new(),
    };
    let assertion = e.exchange(&[]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body, _) = third
        .post(
            Endpoint::Token,
            &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
            Some((&agent_there.0, &agent_there.1)),
            NOW.plus(3),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_grant");
    assert!(body["error_description"].as_str().unwrap().contains("aud"));
    // The provider's metadata says it issues ID-JAGs; the MCP authorization server's, that it
    // takes them (the draft's §7).
    assert_eq!(
        e.idp
            .engine
            .metadata()
            .identity_chaining_requested_token_types_supported,
        [ID_JAG]
    );
    assert_eq!(
        e.mcp_as
            .engine
            .metadata()
            .authorization_grant_profiles_supported,
        ["urn:ietf:params:oauth:grant-profile:id-jag"]
    );
    assert!(
        e.idp
            .engine
            .metadata()
            .authorization_grant_profiles_supported
            .is_empty()
    );
}

#[tokio::test]
async fn the_provider_never_takes_its_own_id_jag_for_an_access_token() {
    let e = enterprise().await;
    let assertion = e.exchange(&[]).await.1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Introspection at the provider: not an active token.
    let rs = e.idp.resource_server().await;
    let (_, body, _) = e
        .idp
        .post(
            Endpoint::Introspect,
            &[("token", &assertion)],
            Some((&rs.0, &rs.1)),
            NOW.plus(3),
        )
        .await;
    assert_eq!(body["active"], false, "{body}");
    // Ordinary token exchange at the provider, the ID-JAG as the subject access token: not
    // one of its access tokens (the draft's §8.3: no access token for its own ID-JAG).
    let (status, body) = e
        .exchange(&[
            ("requested_token_type", ""),
            ("subject_token", &assertion),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token",
            ),
            ("audience", ""),
            ("resource", "https://downstream.example.com/api"),
        ])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_of(&body), "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("not an access token issued by this server"),
        "{body}"
    );
}

#[tokio::test]
async fn another_clients_or_a_replaced_refresh_token_gets_no_id_jag() {
    let e = enterprise().await;
    // The stranger signs alice in too; its refresh token, presented by the agent: nothing.
    let theirs = sign_in(&e.idp, &e.stranger_at_idp, "mcp:tools").await;
    let foreign = theirs["refresh_token"].as_str().unwrap();
    let (_, body) = e.exchange(&[("subject_token", foreign)]).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client")
    );
    // The agent's own refresh token, once replaced by a refresh: nothing.
    let (status, refreshed) = refresh_as(&e.idp, &e.agent_at_idp, &e.refresh_token).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = e.exchange(&[]).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
    // Its successor works.
    let successor = refreshed["refresh_token"].as_str().unwrap();
    let (status, body) = e.exchange(&[("subject_token", successor)]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The replaced one again, past the reuse grace window: a replay, and the sign-in ends.
    let (_, body) = e
        .exchange_at(NOW.plus(120), &[("subject_token", &e.refresh_token)])
        .await;
    assert_eq!(error_of(&body), "invalid_grant");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("replay")
    );
    let (_, body) = e
        .exchange_at(NOW.plus(121), &[("subject_token", successor)])
        .await;
    assert_eq!(
        error_of(&body),
        "invalid_grant",
        "the successor is revoked too"
    );
}

/// POSTs `pairs` to `engine`'s token endpoint with Basic credentials and one DPoP proof.
async fn post_with_proof(
    h: &Harness,
    pairs: &[(&str, &str)],
    basic: (&str, &str),
    proof: Option<&str>,
    now: mcpauth_token_engine::UnixTime,
) -> Value {
    use base64::Engine as _;
    let mut request = http::Request::post("/token")
        .header("content-type", "application/x-www-form-urlencoded")
        .header(
            "authorization",
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD
                    .encode(format!("{}:{}", basic.0, basic.1))
            ),
        );
    if let Some(proof) = proof {
        request = request.header("dpop", proof);
    }
    let response = h
        .engine
        .token_endpoint(request.body(bytes::Bytes::from(query(pairs))).unwrap(), now)
        .await;
    serde_json::from_slice(response.body()).unwrap()
}

fn dpop_key() -> mcpauth_dpop::DpopKey {
    use aws_lc_rs::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    mcpauth_dpop::DpopKey::from_pkcs8(pkcs8.as_ref()).unwrap()
}

fn proof(key: &mcpauth_dpop::DpopKey, token_url: &str, jti: &str) -> String {
    key.proof(&mcpauth_dpop::ProofRequest::new(
        "POST",
        token_url,
        jti,
        NOW.0 + 2,
    ))
    .unwrap()
}

#[tokio::test]
async fn a_proof_at_the_exchange_binds_the_id_jag_and_only_that_key_redeems_it() {
    let e = enterprise().await;
    let key = dpop_key();
    let body = post_with_proof(
        &e.idp,
        &[
            ("grant_type", TOKEN_EXCHANGE_GRANT),
            ("requested_token_type", ID_JAG),
            ("subject_token", &e.refresh_token),
            ("subject_token_type", REFRESH_TOKEN_TYPE),
            ("audience", MCP_AS),
            ("resource", RESOURCE),
        ],
        (&e.agent_at_idp.0, &e.agent_at_idp.1),
        Some(&proof(&key, &format!("{IDP}/token"), "at-the-provider")),
        NOW.plus(2),
    )
    .await;
    let assertion = body["access_token"].as_str().unwrap().to_owned();
    assert_eq!(
        jwt_part(&assertion, 1)["cnf"]["jkt"],
        key.thumbprint(),
        "the draft's §8.6.1: bound to the proof's key"
    );
    let present = |proof: Option<String>| {
        let assertion = assertion.clone();
        let e = &e;
        async move {
            post_with_proof(
                &e.mcp_as,
                &[("grant_type", JWT_BEARER), ("assertion", &assertion)],
                (&e.agent_at_as.0, &e.agent_at_as.1),
                proof.as_deref(),
                NOW.plus(2),
            )
            .await
        }
    };
    let token_url = format!("{MCP_AS}/token");
    // No proof, or one by another key: invalid_grant (§8.6.2), and the assertion unused.
    let without = present(None).await;
    assert_eq!(error_of(&without), "invalid_grant", "{without}");
    let thief = present(Some(proof(&dpop_key(), &token_url, "thief"))).await;
    assert_eq!(error_of(&thief), "invalid_grant", "{thief}");
    let bound = present(Some(proof(&key, &token_url, "holder"))).await;
    assert_eq!(bound["token_type"], "DPoP", "{bound}");
    assert_eq!(
        jwt_part(bound["access_token"].as_str().unwrap(), 1)["cnf"]["jkt"],
        key.thumbprint()
    );
}

#[tokio::test]
async fn an_audience_with_no_scope_in_its_policy_gets_id_jags_without_scope() {
    let e = enterprise_with_scope(Vec::new()).await;
    let (status, body) = e.exchange(&[("scope", "mcp:tools")]).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("scope").is_none(), "{body}");
    let claims = jwt_part(body["access_token"].as_str().unwrap(), 1);
    assert!(claims.get("scope").is_none(), "{claims}");
}

/// The exchange with alice's ID token as the subject token, by `client` at `now`.
async fn exchange_id_token(
    e: &Enterprise,
    client: &(String, String),
    id_token: &str,
    now: mcpauth_token_engine::UnixTime,
) -> (StatusCode, Value) {
    let (status, body, _) = e
        .idp
        .post(
            Endpoint::Token,
            &[
                ("grant_type", TOKEN_EXCHANGE_GRANT),
                ("requested_token_type", ID_JAG),
                ("subject_token", id_token),
                ("subject_token_type", ID_TOKEN_TYPE),
                ("audience", MCP_AS),
                ("resource", RESOURCE),
            ],
            Some((&client.0, &client.1)),
            now,
        )
        .await;
    (status, body)
}

#[tokio::test]
async fn a_signed_in_users_id_token_becomes_an_id_jag_and_the_id_jag_an_access_token() {
    let e = enterprise().await;
    let (status, body) = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(2)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["issued_token_type"], ID_JAG);
    let assertion = body["access_token"].as_str().unwrap();
    let claims = jwt_part(assertion, 1);
    assert_eq!(claims["sub"], "alice");
    assert_eq!(claims["aud"], MCP_AS);
    assert_eq!(claims["client_id"], e.agent_at_as.0.as_str());
    let (status, token) = e.present(assertion).await;
    assert_eq!(status, StatusCode::OK, "{token}");
    assert_eq!(
        jwt_part(token["access_token"].as_str().unwrap(), 1)["sub"],
        format!("{IDP}#alice")
    );
}

#[tokio::test]
async fn an_id_token_is_taken_only_from_its_client_unexpired_and_while_its_sign_in_lives() {
    let e = enterprise().await;
    // The stranger's own ID token for alice, presented by the agent: its aud is not the
    // agent (the draft's §4.3: the IdP MUST check it).
    let theirs = sign_in(&e.idp, &e.stranger_at_idp, "openid").await;
    let foreign = theirs["id_token"].as_str().unwrap();
    let (_, body) = exchange_id_token(&e, &e.agent_at_idp, foreign, NOW.plus(2)).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("another client")
    );
    // The agent's ID token, by the stranger: the stranger may not ask at all.
    let (_, body) = exchange_id_token(&e, &e.stranger_at_idp, &e.id_token, NOW.plus(2)).await;
    assert_eq!(error_of(&body), "unauthorized_client", "{body}");
    // Expired (it lives as long as an access token, an hour).
    let (_, body) = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(3601)).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
    // Not an ID token of this server: an access token, an ID-JAG, a token signed by another
    // key with the same claims, a tampered one.
    let (_, tokens) = refresh_as(&e.idp, &e.agent_at_idp, &e.refresh_token).await;
    let access_token = tokens["access_token"].as_str().unwrap().to_owned();
    let id_jag = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(2))
        .await
        .1["access_token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Same issuer name, same claims, another key.
    let other_provider = engine_at(IDP, 11, |_| {});
    let forged = {
        let client = other_provider
            .confidential_client(&["authorization_code"], None)
            .await;
        sign_in(&other_provider, &client, "openid").await["id_token"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let tampered = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = e.id_token.split('.').map(str::to_owned).collect();
        let mut claims = jwt_part(&e.id_token, 1);
        claims["sub"] = "mallory".into();
        parts[1] = b64.encode(claims.to_string());
        parts.join(".")
    };
    for (what, token) in [
        ("an access token", access_token.as_str()),
        ("an ID-JAG", id_jag.as_str()),
        ("another server's ID token", forged.as_str()),
        ("a tampered ID token", tampered.as_str()),
    ] {
        let (_, body) = exchange_id_token(&e, &e.agent_at_idp, token, NOW.plus(2)).await;
        assert_eq!(error_of(&body), "invalid_grant", "{what}: {body}");
    }
    // The sign-in revoked (the user signed out, or withdrew consent): its ID token is dead
    // before it expires.
    e.idp
        .engine
        .model()
        .revoke_grant(&e.grant_id.as_str().into(), NOW.plus(1))
        .await
        .unwrap();
    let (_, body) = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(2)).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
    assert!(
        body["error_description"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
}

#[tokio::test]
async fn an_id_token_signed_before_a_key_rotation_is_taken_while_its_key_is_published() {
    let e = enterprise().await;
    let old_key = || SigningKey::es256_from_pkcs8_der(&e.idp_key).unwrap();
    e.idp
        .engine
        .replace_keys(KeySet::new(signing_key()).with_retired(old_key()));
    let (status, body) = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(2)).await;
    assert_eq!(status, StatusCode::OK, "retired, still published: {body}");
    // The retired key removed (no longer published): its ID tokens are no longer this
    // server's.
    e.idp.engine.replace_keys(KeySet::new(signing_key()));
    let (_, body) = exchange_id_token(&e, &e.agent_at_idp, &e.id_token, NOW.plus(2)).await;
    assert_eq!(error_of(&body), "invalid_grant", "{body}");
}
