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
}

impl Example {
    pub(crate) fn binary(self) -> PathBuf {
        let name = match self {
            Self::Axum => "axum_mcp_server",
            Self::Actix => "actix_mcp_server",
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
        let mut child = tokio::process::Command::new(self.binary())
            .env("MCPAUTH_ISSUER", issuer)
            .env("EXAMPLE_LISTEN", "127.0.0.1:0")
            .env("MCPAUTH_LOG", "warn")
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

/// A fresh scratch directory for one test.
pub(crate) fn tempdir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "mcpauth-interop-{tag}-{}-{}",
        std::process::id(),
        mcpauth_http::now().0
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
