//! MCP security best practices, "Server-Side Request Forgery": a URL the MCP server or its
//! authorization server hands the client may not lead it to private or reserved addresses;
//! only the MCP server's own host (the one the user chose) may be on one. Checked with the
//! real reqwest client against a local HTTP server: the same server is reachable by the MCP
//! server's host name and refused by another name for the same address.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use mcpauth_client::{Error, HttpClient, ReqwestClient, UrlPolicy};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server answering every request `200 ok`, on 127.0.0.1.
async fn answering_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buffer = [0u8; 4096];
                let _ = stream.read(&mut buffer).await;
                let _ = stream
                    .write_all(
                        b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
                    )
                    .await;
            });
        }
    });
    port
}

async fn get(client: &ReqwestClient, url: &str) -> Result<http::Response<Vec<u8>>, Error> {
    client
        .send(http::Request::get(url).body(Vec::new()).unwrap())
        .await
}

fn policy(loopback: bool, private: bool) -> UrlPolicy {
    let mut policy = UrlPolicy::https_only();
    policy.allow_loopback_http = loopback;
    policy.allow_private_network = private;
    policy
}

#[tokio::test]
async fn only_the_mcp_servers_own_host_may_be_on_a_non_public_address() {
    let port = answering_server().await;
    let server = url::Url::parse(&format!("http://127.0.0.1:{port}/mcp")).unwrap();
    let client = ReqwestClient::for_server(&server, policy(false, false)).unwrap();

    // The MCP server's own host: the user chose it.
    let own = get(&client, &format!("http://127.0.0.1:{port}/.well-known/x")).await;
    assert_eq!(own.unwrap().status(), 200);

    // Another host name for the same loopback address: refused before connecting.
    let Err(error @ Error::Network { .. }) =
        get(&client, &format!("http://localhost:{port}/")).await
    else {
        panic!("a name resolving to loopback was reached");
    };
    // The guard's refusal is the transport error's cause, for `said` to print.
    let said = mcpauth_client::said(&error);
    assert!(said.contains("private or reserved"), "{said}");
    assert!(said.contains("allow-private-network"), "{said}");

    // IP literals in private, link-local (cloud metadata) and unique-local ranges: refused
    // without any connection attempt.
    for url in [
        "https://10.0.0.1/token",
        "https://169.254.169.254/latest/meta-data/",
        "https://[fd00::1]/",
        "https://192.168.1.1/",
    ] {
        match get(&client, url).await {
            Err(Error::Insecure { reason, .. }) => assert!(reason.contains("private"), "{reason}"),
            other => panic!("{url}: {other:?}"),
        }
    }
}

#[tokio::test]
async fn loopback_and_private_networks_are_allowed_when_asked() {
    let port = answering_server().await;
    let server = url::Url::parse("https://mcp.example.com/mcp").unwrap();
    // Development servers on loopback: `allow_loopback_http`.
    let dev = ReqwestClient::for_server(&server, policy(true, false)).unwrap();
    assert_eq!(
        get(&dev, &format!("http://localhost:{port}/"))
            .await
            .unwrap()
            .status(),
        200
    );
    assert!(matches!(
        get(&dev, "https://10.0.0.1/").await,
        Err(Error::Insecure { .. })
    ));
    // An authorization server on the user's own network: `allow_private_network`.
    let corporate = ReqwestClient::for_server(&server, policy(false, true)).unwrap();
    assert_eq!(
        get(&corporate, &format!("http://localhost:{port}/"))
            .await
            .unwrap()
            .status(),
        200
    );
}
