//! Client ID Metadata Documents: the sans-IO half (the engine asks for the document, the
//! caller fetches it, the engine validates and caches it).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

mod common;

use common::*;
use http::StatusCode;
use mcpauth_token_engine::{AuthorizeOutcome, ClientIdentity, DocumentFetch, UnixTime};
use serde_json::json;

const CLIENT_URL: &str = "https://app.example.com/oauth/client.json";

async fn with_documents() -> Harness {
    harness_with(|c| {
        c.client_metadata_documents(true);
    })
    .await
}

fn query_for(h: &Harness) -> Vec<(&'static str, String)> {
    let mut q = h.authorize_query(REDIRECT);
    q[1].1 = CLIENT_URL.into();
    q
}

fn document() -> serde_json::Value {
    json!({ "client_id": CLIENT_URL, "client_name": "Example App", "redirect_uris": [REDIRECT], "token_endpoint_auth_method": "none" })
}

fn fetch_for(redirect_uri: Option<&str>) -> DocumentFetch {
    DocumentFetch::for_authorization(CLIENT_URL.parse().unwrap(), redirect_uri.map(str::to_owned))
}

async fn accept(h: &Harness, doc: &serde_json::Value, until: UnixTime) -> Result<(), String> {
    accept_for(h, &fetch_for(Some(REDIRECT)), doc, until).await
}

async fn accept_for(
    h: &Harness,
    fetch: &DocumentFetch,
    doc: &serde_json::Value,
    until: UnixTime,
) -> Result<(), String> {
    h.engine
        .accept_client_metadata_document(fetch, &serde_json::to_vec(doc).unwrap(), NOW, until)
        .await
        .map_err(|e| e.code().as_str().to_owned())
}

// The engine asks for the document, validates it, caches it, and the flow completes with
// the URL as client_id.
#[tokio::test]
async fn metadata_document_clients_authorize_after_the_document_is_fetched() {
    let h = with_documents().await;
    assert!(h.engine.metadata().client_id_metadata_document_supported);
    let AuthorizeOutcome::NeedsClientMetadata(fetch) = h.authorize(&query_for(&h)).await else {
        panic!("the document is needed first")
    };
    assert_eq!(fetch.url().as_str(), CLIENT_URL);
    accept_for(&h, &fetch, &document(), NOW.plus(300))
        .await
        .unwrap();
    let AuthorizeOutcome::NeedsConsent(pending) = h.authorize(&query_for(&h)).await else {
        panic!("consent expected")
    };
    assert_eq!(
        pending.client_identity(),
        &ClientIdentity::MetadataDocument {
            host: "app.example.com".into()
        }
    );
    assert_eq!(pending.client_name(), Some("Example App"));
    let redirect = h.engine.approve(pending, "alice", NOW).await.unwrap();
    let code = code_of(&redirect.location);
    let (status, body, _) = h
        .post(
            Endpoint::Token,
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
                ("client_id", CLIENT_URL),
            ],
            None,
            NOW,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        jwt_part(body["access_token"].as_str().unwrap(), 1)["client_id"],
        CLIENT_URL
    );
}

// The cache honours its expiry: after it, the document is fetched again.
#[tokio::test]
async fn an_expired_cached_document_is_fetched_again() {
    let h = with_documents().await;
    accept(&h, &document(), NOW.plus(1)).await.unwrap();
    let mut q = query_for(&h);
    q.push(("prompt", "none".into()));
    let late = h
        .engine
        .authorize(
            &query(&q.iter().map(|(k, v)| (*k, v.as_str())).collect::<Vec<_>>()),
            NOW.plus(2),
        )
        .await;
    assert!(matches!(late, AuthorizeOutcome::NeedsClientMetadata(_)));
}

// The document must name itself, stay public, and follow the redirect-URI policy.
#[tokio::test]
async fn invalid_documents_are_refused() {
    let h = with_documents().await;
    let mut other_id = document();
    other_id["client_id"] = "https://evil.example.com/client.json".into();
    let mut secret = document();
    secret["client_secret"] = "s".into();
    let mut basic = document();
    basic["token_endpoint_auth_method"] = "client_secret_basic".into();
    let mut bad_redirect = document();
    bad_redirect["redirect_uris"] = json!(["http://evil.example.com/cb"]);
    let mut huge = document();
    huge["client_name"] = "x".repeat(6000).into();
    for (name, doc, code) in [
        ("client_id", other_id, "invalid_client_metadata"),
        ("secret", secret, "invalid_client_metadata"),
        ("auth method", basic, "invalid_client_metadata"),
        ("redirect", bad_redirect, "invalid_redirect_uri"),
        ("size", huge, "invalid_client_metadata"),
    ] {
        assert_eq!(
            accept(&h, &doc, NOW.plus(300)).await.unwrap_err(),
            code,
            "{name}"
        );
    }
    assert!(
        matches!(
            h.authorize(&query_for(&h)).await,
            AuthorizeOutcome::NeedsClientMetadata(_)
        ),
        "nothing was cached"
    );
}

// Off by default: a URL client_id is just an unknown client, shown and not redirected.
#[tokio::test]
async fn metadata_documents_are_off_by_default() {
    let h = harness().await;
    assert!(!h.engine.metadata().client_id_metadata_document_supported);
    assert!(matches!(
        h.authorize(&query_for(&h)).await,
        AuthorizeOutcome::ShowError(_)
    ));
}

// A document is validated against the authorization request before anything is stored: it
// must list the redirect_uri the request named (or, with none named, exactly one).
#[tokio::test]
async fn a_document_without_the_requested_redirect_uri_stores_nothing() {
    let h = with_documents().await;
    let refused = accept_for(
        &h,
        &fetch_for(Some("http://127.0.0.1/elsewhere")),
        &document(),
        NOW.plus(300),
    )
    .await;
    assert_eq!(refused.unwrap_err(), "invalid_redirect_uri");
    let mut two = document();
    two["redirect_uris"] = json!([REDIRECT, "https://app.example.com/cb"]);
    assert_eq!(
        accept_for(&h, &fetch_for(None), &two, NOW.plus(300))
            .await
            .unwrap_err(),
        "invalid_redirect_uri",
        "no redirect_uri named, and the document lists two"
    );
    assert!(
        matches!(
            h.authorize(&query_for(&h)).await,
            AuthorizeOutcome::NeedsClientMetadata(_)
        ),
        "nothing was cached"
    );
}

// A document that declares client_credentials (or token exchange) is refused: anyone can
// publish one, so it gets user-delegated grants only.
#[tokio::test]
async fn a_metadata_document_cannot_declare_client_credentials() {
    let h = with_documents().await;
    for grants in [
        json!(["client_credentials"]),
        json!([
            "authorization_code",
            "urn:ietf:params:oauth:grant-type:token-exchange"
        ]),
    ] {
        let mut doc = document();
        doc["grant_types"] = grants;
        doc["token_endpoint_auth_method"] = "private_key_jwt".into();
        assert_eq!(
            accept(&h, &doc, NOW.plus(300)).await.unwrap_err(),
            "invalid_client_metadata"
        );
    }
}

// A client_id on the issuer's own origin is never a metadata document: the server would
// fetch from itself.
#[tokio::test]
async fn a_client_id_on_the_issuers_own_origin_is_refused() {
    let h = with_documents().await;
    let own = "https://auth.example.com/oauth/client.json";
    let mut q = query_for(&h);
    q[1].1 = own.into();
    assert!(matches!(
        h.authorize(&q).await,
        AuthorizeOutcome::ShowError(_)
    ));
    let fetch = DocumentFetch::for_authorization(own.parse().unwrap(), Some(REDIRECT.into()));
    let mut doc = document();
    doc["client_id"] = own.into();
    assert_eq!(
        accept_for(&h, &fetch, &doc, NOW.plus(300))
            .await
            .unwrap_err(),
        "invalid_client_metadata"
    );
}

// Rows a document fetch stored count toward max_clients only once they completed an
// authorization: anyone can make the server fetch one.
#[tokio::test]
async fn unfinished_metadata_document_clients_do_not_count_toward_max_clients() {
    use mcpauth_token_engine::ClientStore as _;
    let h = with_documents().await;
    let before = h.engine.model().count_clients().await.unwrap();
    accept(&h, &document(), NOW.plus(300)).await.unwrap();
    assert_eq!(h.engine.model().count_clients().await.unwrap(), before);
    let AuthorizeOutcome::NeedsConsent(pending) = h.authorize(&query_for(&h)).await else {
        panic!("consent expected")
    };
    h.engine.approve(pending, "alice", NOW).await.unwrap();
    assert_eq!(
        h.engine.model().count_clients().await.unwrap(),
        before + 1,
        "it counts once a user authorized it"
    );
}

// The token endpoint re-fetches a stale document first (mcpauth-http does): the engine says
// which one.
#[tokio::test]
async fn a_stale_document_is_named_for_refetching_at_the_token_endpoint() {
    let h = with_documents().await;
    accept(&h, &document(), NOW.plus(60)).await.unwrap();
    assert_eq!(
        h.engine
            .stale_client_metadata_document(CLIENT_URL, NOW.plus(30))
            .await
            .unwrap(),
        None,
        "still fresh"
    );
    let stale = h
        .engine
        .stale_client_metadata_document(CLIENT_URL, NOW.plus(61))
        .await
        .unwrap()
        .expect("stale");
    assert_eq!(stale.url().as_str(), CLIENT_URL);
    // Re-fetched at the token endpoint, the document is checked without a redirect_uri.
    let mut changed = document();
    changed["client_name"] = "Renamed".into();
    h.engine
        .accept_client_metadata_document(
            &stale,
            &serde_json::to_vec(&changed).unwrap(),
            NOW.plus(61),
            NOW.plus(600),
        )
        .await
        .unwrap();
    assert_eq!(
        h.engine
            .stale_client_metadata_document(CLIENT_URL, NOW.plus(62))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        h.engine
            .stale_client_metadata_document("my-registered-client", NOW.plus(62))
            .await
            .unwrap(),
        None,
        "not a document client"
    );
}
