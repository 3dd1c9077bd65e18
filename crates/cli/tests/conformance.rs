//! The official MCP conformance suite (`@modelcontextprotocol/conformance` from npm, on the
//! Node 22 that the npm package `node` provides; `interop/conformance`) with the `mcpauth`
//! CLI as the client under test: every client authorization scenario of the 2025-11-25
//! suite, the 2025-03-26 back-compat fallbacks, the draft ones (resource mismatch, offline
//! access) and the client-credentials extension (`client_secret_basic`, `private_key_jwt`);
//! then the 2026-07-28 ones of the suite's prerelease, and its extension scenarios (DPoP,
//! enterprise-managed authorization, workload identity).
//! The suite starts its own MCP and authorization servers on loopback for each scenario.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

use std::path::{Path, PathBuf};
use std::time::Duration;

/// Every client authorization scenario of the suite's 0.1.16 release.
const SCENARIOS: &[&str] = &[
    "auth/metadata-default",
    "auth/metadata-var1",
    "auth/metadata-var2",
    "auth/metadata-var3",
    "auth/basic-cimd",
    "auth/scope-from-www-authenticate",
    "auth/scope-from-scopes-supported",
    "auth/scope-omitted-when-undefined",
    "auth/scope-step-up",
    "auth/scope-retry-limit",
    "auth/token-endpoint-auth-basic",
    "auth/token-endpoint-auth-post",
    "auth/token-endpoint-auth-none",
    "auth/pre-registration",
    "auth/2025-03-26-oauth-metadata-backcompat",
    "auth/2025-03-26-oauth-endpoint-fallback",
    "auth/resource-mismatch",
    "auth/offline-access-scope",
    "auth/offline-access-not-supported",
    "auth/client-credentials-jwt",
    "auth/client-credentials-basic",
];

/// The 2026-07-28 revision's client authorization scenarios, from the suite's 0.2.0
/// prerelease (`conformance-next`): every one of [`SCENARIOS`], re-run under the new revision,
/// and these: RFC 9207 `iss` handling, the metadata issuer check, authorization-server
/// migration. Their MCP servers speak the stateless revision (`server/discover`, `_meta` on
/// every request): the CLI's rmcp client probes for it and falls back to `initialize` on the
/// older servers.
const NEW_IN_2026: &[&str] = &[
    "auth/iss-supported-missing",
    "auth/iss-wrong-issuer",
    "auth/iss-unexpected",
    "auth/iss-normalized",
    "auth/metadata-issuer-mismatch",
    "auth/iss-supported",
    "auth/iss-not-advertised",
    "auth/authorization-server-migration",
];

/// The extension scenarios of the suite's prerelease: DPoP-bound tokens (SEP-1932, RFC 9449),
/// with nonces from both the authorization server and the MCP server; enterprise-managed
/// authorization (SEP-990: an ID-JAG from the identity provider by token exchange, then the
/// JWT bearer grant); workload identity (SEP-1933: the workload's token with the JWT bearer
/// grant).
const EXTENSIONS: &[&str] = &[
    "auth/dpop",
    "auth/dpop-nonce",
    "auth/enterprise-managed-authorization",
    "auth/wif-jwt-bearer",
];

/// The metadata-document URL the suite's CIMD scenario expects.
const METADATA_DOCUMENT: &str = "https://conformance-test.local/client-metadata.json";

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("interop/conformance"))
        .find(|dir| dir.is_dir())
        .expect("the workspace's interop/conformance folder")
}

async fn ensure_node_modules(dir: &Path) {
    if dir
        .join("node_modules/@modelcontextprotocol/conformance/package.json")
        .exists()
        && dir
            .join("node_modules/conformance-next/package.json")
            .exists()
        && dir.join("node_modules/.bin/node").exists()
    {
        return;
    }
    let status = tokio::process::Command::new("npm")
        .args(["ci", "--no-audit", "--no-fund"])
        .current_dir(dir)
        .status()
        .await
        .expect("npm must be installed to run the conformance suite");
    assert!(status.success(), "npm ci failed in {}", dir.display());
}

/// Runs one scenario of `package` (`@modelcontextprotocol/conformance` or
/// `conformance-next`); returns whether it passed and the suite's summary lines.
async fn scenario(dir: &Path, results: &Path, package: &str, name: &str) -> (bool, String) {
    // The default store: `conformance` keeps nothing and never asks for a passphrase.
    let command = format!(
        "{} conformance --metadata-document {METADATA_DOCUMENT}",
        env!("CARGO_BIN_EXE_mcpauth")
    );
    let output = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(dir.join("node_modules/.bin/node"))
            .arg(dir.join("node_modules").join(package).join("dist/index.js"))
            .args(["client", "--command", &command, "--scenario", name])
            .current_dir(results)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the scenario took over two minutes")
    .unwrap();
    // The suite prints its results on both streams.
    let stdout = format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let summary: Vec<&str> = stdout
        .lines()
        .filter(|l| {
            l.starts_with("Passed:")
                || l.contains("OVERALL")
                || l.contains("FAILURE")
                || l.contains("WARNING")
        })
        .collect();
    (
        output.status.success() && stdout.contains("OVERALL: PASSED"),
        if summary.is_empty() {
            stdout.chars().take(2000).collect()
        } else {
            summary.join("\n")
        },
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_client_authorization_scenario_of_the_conformance_suite_passes() {
    let dir = suite_dir();
    ensure_node_modules(&dir).await;
    let results = std::env::temp_dir().join(format!("mcpauth-conformance-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&results);
    std::fs::create_dir_all(&results).unwrap();

    // Four at a time: each scenario starts its own servers on free ports.
    let runs: Vec<(&str, &str)> = SCENARIOS
        .iter()
        .map(|s| ("@modelcontextprotocol/conformance", *s))
        .chain(
            SCENARIOS
                .iter()
                .chain(NEW_IN_2026)
                .chain(EXTENSIONS)
                .map(|s| ("conformance-next", *s)),
        )
        .collect();
    let mut failed = Vec::new();
    for chunk in runs.chunks(4) {
        let runs = chunk.iter().map(|(package, name)| {
            let (dir, results) = (dir.clone(), results.clone());
            async move {
                (
                    *package,
                    *name,
                    scenario(&dir, &results, package, name).await,
                )
            }
        });
        for (package, name, (passed, summary)) in futures::future::join_all(runs).await {
            eprintln!(
                "{package} {name}: {}",
                if passed { "passed" } else { "FAILED" }
            );
            if !passed {
                failed.push(format!("{package} {name}:\n{summary}"));
            }
        }
    }
    let _ = std::fs::remove_dir_all(&results);
    assert!(
        failed.is_empty(),
        "scenarios failed:\n{}",
        failed.join("\n\n")
    );
}
