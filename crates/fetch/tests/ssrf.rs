//! SSRF defences of the fetcher, against servers on loopback only (no other network).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::time::Duration;

use mcpauth_fetch::{FetchError, FetchPolicy, SafeFetcher};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use url::Url;

/// A loopback server that answers every request with `response` (or never, if `None`).
async fn serve(response: Option<Vec<u8>>) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let response = response.clone();
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = socket.read(&mut buffer).await;
                match response {
                    Some(bytes) => {
                        let _ = socket.write_all(&bytes).await;
                        let _ = socket.shutdown().await;
                    }
                    None => tokio::time::sleep(Duration::from_secs(30)).await,
                }
            });
        }
    });
    port
}

fn loopback_policy() -> FetchPolicy {
    let mut policy = FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.timeout = Duration::from_millis(500);
    policy
}

fn url(s: &str) -> Url {
    Url::parse(s).unwrap()
}

#[tokio::test]
async fn refuses_plain_http_and_private_ip_literals() {
    let fetcher = SafeFetcher::new(FetchPolicy::default()).unwrap();
    assert!(matches!(
        fetcher.fetch(&url("http://example.com/client.json")).await,
        Err(FetchError::BadUrl)
    ));
    for private in [
        "https://10.0.0.1/c.json",
        "https://127.0.0.1/c.json",
        "https://[::1]/c.json",
        "https://169.254.169.254/latest/meta-data",
        "https://192.168.0.10/c.json",
        "https://[::ffff:10.0.0.1]/c.json",
    ] {
        assert!(
            matches!(
                fetcher.fetch(&url(private)).await,
                Err(FetchError::ForbiddenAddress)
            ),
            "{private}"
        );
    }
}

// A name that resolves to loopback is refused after resolution, before any connection.
#[tokio::test]
async fn refuses_names_that_resolve_to_loopback() {
    let port = serve(Some(
        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}".to_vec(),
    ))
    .await;
    let fetcher = SafeFetcher::new(FetchPolicy::default()).unwrap();
    let result = fetcher
        .fetch(&url(&format!("https://localhost:{port}/client.json")))
        .await;
    assert!(
        matches!(result, Err(FetchError::ForbiddenAddress)),
        "{result:?}"
    );
}

#[tokio::test]
async fn fetches_a_document_and_reads_its_cache_lifetime() {
    let port = serve(Some(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=600\r\ncontent-length: 2\r\n\r\n{}".to_vec())).await;
    let fetched = SafeFetcher::new(loopback_policy())
        .unwrap()
        .fetch(&url(&format!("http://127.0.0.1:{port}/client.json")))
        .await
        .unwrap();
    assert_eq!(&fetched.body[..], b"{}");
    assert_eq!(fetched.max_age, Some(600));
}

// Redirects are never followed, wherever they point.
#[tokio::test]
async fn does_not_follow_redirects() {
    let port = serve(Some(
        b"HTTP/1.1 302 Found\r\nlocation: http://10.0.0.1/internal\r\ncontent-length: 0\r\n\r\n"
            .to_vec(),
    ))
    .await;
    let result = SafeFetcher::new(loopback_policy())
        .unwrap()
        .fetch(&url(&format!("http://127.0.0.1:{port}/client.json")))
        .await;
    assert!(matches!(result, Err(FetchError::Redirect)), "{result:?}");
}

// Oversized documents are cut off, whether or not they announce their length.
#[tokio::test]
async fn refuses_oversized_documents() {
    let mut announced = b"HTTP/1.1 200 OK\r\ncontent-length: 6000\r\n\r\n".to_vec();
    announced.extend(vec![b'a'; 6000]);
    let mut unannounced = b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n".to_vec();
    unannounced.extend(vec![b'a'; 6000]);
    for response in [announced, unannounced] {
        let port = serve(Some(response)).await;
        let result = SafeFetcher::new(loopback_policy())
            .unwrap()
            .fetch(&url(&format!("http://127.0.0.1:{port}/c.json")))
            .await;
        assert!(
            matches!(result, Err(FetchError::TooLarge(5120))),
            "{result:?}"
        );
    }
}

// A server that never answers hits the time limit.
#[tokio::test]
async fn gives_up_on_slow_servers() {
    let port = serve(None).await;
    let started = std::time::Instant::now();
    let result = SafeFetcher::new(loopback_policy())
        .unwrap()
        .fetch(&url(&format!("http://127.0.0.1:{port}/c.json")))
        .await;
    assert!(matches!(result, Err(FetchError::Timeout)), "{result:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}
