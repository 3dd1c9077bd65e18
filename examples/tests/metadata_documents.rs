//! Client ID Metadata Documents at `mcpauth-server`, over real HTTPS on loopback: a client
//! whose cached document went stale has it fetched again at the token endpoint, and is
//! refused when it cannot be; document fetches are limited per caller.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod support;

use mcpauth_token_engine::DocumentFetch;
use reqwest::StatusCode;
use support::{serve_document_over_https, tempdir};

const REDIRECT: &str = "http://127.0.0.1:53682/callback";

async fn start(
    tag: &str,
    policy: mcpauth_fetch::FetchPolicy,
    configure: impl FnOnce(&mut mcpauth_server::Config),
) -> (
    String,
    std::sync::Arc<mcpauth_token_engine::TokenEngine<mcpauth_store_sql::SqlStore>>,
) {
    let dir = tempdir(tag);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", listener.local_addr().unwrap());
    let mut config = mcpauth_server::Config::default();
    config.listen = listener.local_addr().unwrap();
    config.issuer = Some(issuer.clone());
    config.database_url = format!("sqlite://{}", dir.join("mcpauth.db").display());
    configure(&mut config);
    let server = mcpauth_server::build_with(
        &config,
        mcpauth_server::BuildOptions::default().fetch_policy(policy),
    )
    .await
    .unwrap();
    let engine = server.engine.clone();
    tokio::spawn(mcpauth_server::serve_on(
        listener,
        server,
        std::future::pending(),
    ));
    (issuer, engine)
}

fn document(url: &str) -> serde_json::Value {
    serde_json::json!({
        "client_id": url,
        "client_name": "Document client",
        "redirect_uris": [REDIRECT],
        "token_endpoint_auth_method": "none",
    })
}

/// A token request of the document client `client_id` with a code that does not exist: a
/// client the server accepts hears `invalid_grant`.
async fn token_request(issuer: &str, client_id: &str) -> (StatusCode, serde_json::Value) {
    let response = reqwest::Client::new()
        .post(format!("{issuer}/token"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", "no-such-code"),
            (
                "code_verifier",
                "dBjftJeZ4CVP-mJ92K27uhbUJU1p1r_wW1gFWFOEjXk",
            ),
            ("redirect_uri", REDIRECT),
            ("client_id", client_id),
        ])
        .send()
        .await
        .unwrap();
    (response.status(), response.json().await.unwrap())
}

/// Caches `url`'s document as already stale, as if fetched long ago.
async fn cache_stale(
    engine: &mcpauth_token_engine::TokenEngine<mcpauth_store_sql::SqlStore>,
    url: &str,
) {
    let now = mcpauth_http::now();
    let fetch = DocumentFetch::for_authorization(url.parse().unwrap(), Some(REDIRECT.into()));
    engine
        .accept_client_metadata_document(
            &fetch,
            &serde_json::to_vec(&document(url)).unwrap(),
            mcpauth_token_engine::UnixTime(now.0 - 600),
            mcpauth_token_engine::UnixTime(now.0 - 300),
        )
        .await
        .unwrap();
}

// A stale document is fetched again at the token endpoint: served, the request goes on to
// the engine; gone, the client is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_document_is_fetched_again_at_the_token_endpoint_a_few_times_a_minute() {
    let (url, cert) = serve_document_over_https(document).await;
    let mut policy = mcpauth_fetch::FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.root_certificates_only = vec![cert];
    let (issuer, engine) = start("stale-served", policy.clone(), |_| {}).await;
    cache_stale(&engine, &url).await;
    let (status, body) = token_request(&issuer, &url).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some("invalid_grant")),
        "refreshed, the client is known: {body}"
    );

    // The publisher withdrew the document: its stale record is refused.
    let gone = "https://127.0.0.1:9/oauth/client.json";
    let (issuer, engine) = start("stale-gone", policy, |_| {}).await;
    cache_stale(&engine, gone).await;
    let (status, body) = token_request(&issuer, gone).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::UNAUTHORIZED, Some("invalid_client")),
        "{body}"
    );
    // A publisher that fails is not asked again on every request naming the client: a few
    // fetches a minute, then the server answers without fetching.
    for _ in 1..mcpauth_token_engine::DOCUMENT_REFETCHES_PER_MINUTE {
        let (status, _) = token_request(&issuer, gone).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let (status, body) = token_request(&issuer, gone).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Some("temporarily_unavailable")
        ),
        "{body}"
    );
}

// Every fetch can make the server store a client: an anonymous caller gets a handful per
// hour (`registrations_per_ip_per_hour`), then an error page, with nothing fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn document_fetches_are_limited_per_caller() {
    let (issuer, _) = start(
        "fetch-limit",
        mcpauth_fetch::FetchPolicy::default(),
        |config| {
            config.registrations_per_ip_per_hour = 2;
        },
    )
    .await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut statuses = Vec::new();
    for n in 0..3 {
        let url = format!("https://documents.invalid/{n}/client.json");
        let authorize = url::Url::parse_with_params(
            &format!("{issuer}/authorize"),
            &[
                ("response_type", "code"),
                ("client_id", url.as_str()),
                ("redirect_uri", REDIRECT),
                (
                    "code_challenge",
                    "ngF5GsXcbwljx6u133FFr3Xht9xooA_DuaX_3QwODtc",
                ),
                ("code_challenge_method", "S256"),
            ],
        )
        .unwrap();
        let response = http.get(authorize).send().await.unwrap();
        statuses.push((response.status(), response.text().await.unwrap()));
    }
    assert!(
        statuses[..2]
            .iter()
            .all(|(_, page)| page.contains("could not be fetched")),
        "{statuses:?}"
    );
    assert!(
        statuses[2].1.contains("too many client metadata documents"),
        "{statuses:?}"
    );
    assert!(statuses.iter().all(|(_, page)| !page.is_empty()));
}
