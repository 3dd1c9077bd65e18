//! What the example-binary tests share: starting the example MCP servers and scratch
//! directories.
#![allow(dead_code, reason = "each test binary uses its own part")]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncBufReadExt;

/// The example MCP servers.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Example {
    /// `examples/axum_mcp_server.rs`.
    Axum,
    /// `examples/actix_mcp_server.rs`.
    Actix,
    /// `examples/hyper_mcp_server.rs`: bare hyper, no adapter crate.
    Hyper,
}

impl Example {
    pub(crate) fn binary(self) -> PathBuf {
        let name = match self {
            Self::Axum => "axum_mcp_server",
            Self::Actix => "actix_mcp_server",
            Self::Hyper => "hyper_mcp_server",
        };
        // Test binaries live in target/<profile>/deps, examples in target/<profile>/examples.
        let exe = std::env::current_exe().unwrap();
        let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
        let binary = profile_dir
            .join("examples")
            .join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
        assert!(
            binary.exists(),
            "{} is missing: run `cargo test -p mcpauth-examples`, which builds the examples",
            binary.display()
        );
        binary
    }

    /// Starts the example on a free loopback port; returns the process and its resource URL.
    pub(crate) async fn start(self, issuer: &str) -> (tokio::process::Child, String) {
        self.start_with(issuer, &[]).await
    }

    /// [`start`](Self::start) with more environment (`EXAMPLE_DPOP_NONCES`, …).
    pub(crate) async fn start_with(
        self,
        issuer: &str,
        env: &[(&str, &str)],
    ) -> (tokio::process::Child, String) {
        let mut child = tokio::process::Command::new(self.binary())
            .env("EXAMPLE_LISTEN", "127.0.0.1:0")
            .env("MCPAUTH_LOG", "warn")
            // Last, so a test may choose the port (EXAMPLE_LISTEN) or the log level.
            .envs(env.iter().copied())
            .env("MCPAUTH_ISSUER", issuer)
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        let resource = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(resource) = line.strip_prefix("listening on ") {
                    return resource.to_owned();
                }
            }
            panic!("{self:?} example exited before listening");
        })
        .await
        .expect("the example did not start");
        (child, resource)
    }
}

/// The initial access token that lets a test register machine clients (the operator's
/// opt-in, `registration_token` with `vouched_registration_grant_types`).
pub(crate) const REGISTRATION_TOKEN: &str = "example-tests-initial-access-token-0123456789";

/// A self-registered confidential client's `client_credentials` token for `resource`, at an
/// authorization server configured with [`REGISTRATION_TOKEN`].
pub(crate) async fn machine_token(http: &reqwest::Client, issuer: &str, resource: &str) -> String {
    let registered: serde_json::Value = http
        .post(format!("{issuer}/register"))
        .bearer_auth(REGISTRATION_TOKEN)
        .json(&serde_json::json!({
            "client_name": "example test",
            "grant_types": ["client_credentials"],
            "token_endpoint_auth_method": "client_secret_basic",
            "scope": "mcp:tools",
        }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let id = registered
        .get("client_id")
        .and_then(|v| v.as_str())
        .unwrap();
    let secret = registered
        .get("client_secret")
        .and_then(|v| v.as_str())
        .unwrap();
    let token: serde_json::Value = http
        .post(format!("{issuer}/token"))
        .basic_auth(id, Some(secret))
        .form(&[
            ("grant_type", "client_credentials"),
            ("scope", "mcp:tools"),
            ("resource", resource),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    token
        .get("access_token")
        .and_then(|v| v.as_str())
        .unwrap_or_else(|| panic!("no token: {token}"))
        .to_owned()
}

/// A fresh scratch directory for one test.
pub(crate) fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcpauth-interop-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Serves one JSON document over HTTPS on loopback with a self-signed certificate; returns
/// the document's URL and the certificate (DER) to trust.
pub(crate) async fn serve_document_over_https(
    build: impl FnOnce(&str) -> serde_json::Value,
) -> (String, Vec<u8>) {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let certified = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()]).unwrap();
    let cert_der = certified.cert.der().to_vec();
    let key_der = certified.signing_key.serialize_der();
    let config = tokio_rustls::rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(
            vec![cert_der.clone().into()],
            tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key_der.into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "https://{}/oauth/client.json",
        listener.local_addr().unwrap()
    );
    let body = serde_json::to_vec(&build(&url)).unwrap();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let (acceptor, body) = (acceptor.clone(), body.clone());
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(socket).await else {
                    return;
                };
                let mut request = [0u8; 4096];
                let _ = tls.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncache-control: max-age=300\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                );
                let _ = tls.write_all(head.as_bytes()).await;
                let _ = tls.write_all(&body).await;
                let _ = tls.shutdown().await;
            });
        }
    });
    (url, cert_der)
}

/// A free loopback port (closed again: the process under test binds it).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}
