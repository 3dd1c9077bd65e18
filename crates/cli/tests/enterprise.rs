//! `mcpauth auth NAME URL --idp ISSUER`: enterprise-managed authorization from the command
//! line. Two `mcpauth-server`s on loopback, one the enterprise identity provider and one the
//! MCP server's authorization server, and the example MCP server: the person signs in once,
//! at the provider (the browser step played over HTTP from the URL the CLI prints); the CLI
//! exchanges that sign-in for an ID-JAG and the ID-JAG for the MCP server's token with no page
//! at the MCP authorization server; `mcpauth test` then uses it, and a later command gets a
//! new token the same way, with no browser.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    reason = "tests"
)]

use std::path::Path;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _};

#[path = "../../client/tests/support/mod.rs"]
mod support;
use support::*;

#[path = "../../../examples/tests/support/mod.rs"]
mod examples_support;

const PASSPHRASE: &str = "a passphrase for the enterprise test";
const TOKEN_EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

fn mcpauth(store_dir: &Path) -> tokio::process::Command {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_mcpauth"));
    command
        .arg("--store")
        .arg("file")
        .arg("--store-dir")
        .arg(store_dir)
        .env("MCPAUTH_STORE_PASSPHRASE", PASSPHRASE)
        .kill_on_drop(true);
    command
}

/// Runs `mcpauth auth` with `args` and `env`; the person opens the URL it prints, which must
/// be the identity provider's, and signs in or approves there. Stdout and the rest of stderr.
async fn auth_with_idp<const A: usize, const E: usize>(
    store_dir: &Path,
    person: &FormFillingBrowser,
    args: [&str; A],
    env: [(&str, &str); E],
    idp_issuer: &str,
) -> (String, String) {
    let mut child = mcpauth(store_dir)
        .args(args)
        .envs(env)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
    let printed = tokio::time::timeout(Duration::from_secs(30), async {
        let mut said = String::new();
        while let Some(line) = stderr.next_line().await.unwrap() {
            // The URL to open, on a line of its own.
            if line.trim().starts_with("http://") {
                return line.trim().to_owned();
            }
            said.push_str(&line);
            said.push('\n');
        }
        panic!("mcpauth printed no URL:\n{said}");
    })
    .await
    .unwrap();
    assert!(
        printed.starts_with(idp_issuer),
        "the one browser step is at the provider: {printed}"
    );
    person.walk(printed.parse().unwrap()).await;
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .await
        .unwrap();
    let mut rest = String::new();
    while let Ok(Some(line)) = stderr.next_line().await {
        rest.push_str(&line);
        rest.push('\n');
    }
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{stdout}\n{rest}");
    (stdout, rest)
}

async fn added(
    config: &mcpauth_server::Config,
    client: mcpauth_server::admin::NewClient,
) -> (String, String) {
    let server = mcpauth_server::build(config).await.unwrap();
    let added = mcpauth_server::admin::add_client(&server.engine, client)
        .await
        .unwrap();
    server.store.close().await;
    (added.client_id, added.client_secret.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auth_with_idp_signs_in_once_at_the_provider_and_gets_the_mcp_token_by_id_jag() {
    let dir = examples_support::tempdir("cli-enterprise");
    let store_dir = dir.join("store");
    let mcp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let resource = format!("http://{}/mcp", mcp_listener.local_addr().unwrap());

    // The MCP authorization server, with the agent (this CLI) registered by its operator.
    let as_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let mcp_issuer = format!("http://{}", as_listener.local_addr().unwrap());
    let mut as_config = mcpauth_server::Config::default();
    as_config.listen = as_listener.local_addr().unwrap();
    as_config.issuer = Some(mcp_issuer.clone());
    as_config.database_url = format!("sqlite://{}", dir.join("as.db").display());
    as_config.resources = vec![resource.clone()];
    // Tokens that live 30 s are renewed by every command (the client renews a minute before
    // expiry): each `get` goes to the provider and back, with no time passing in the test.
    as_config.access_token_ttl = 30;
    let mut agent = mcpauth_server::admin::NewClient::new("mcpauth CLI");
    agent.grant_types = vec![JWT_BEARER.into()];
    let agent_at_as = added(&as_config, agent).await;

    // The identity provider: the person, the same agent (sign-in and exchange), its policy.
    let idp_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let idp_issuer = format!("http://{}", idp_listener.local_addr().unwrap());
    let mut idp_config = mcpauth_server::Config::default();
    idp_config.listen = idp_listener.local_addr().unwrap();
    idp_config.issuer = Some(idp_issuer.clone());
    idp_config.database_url = format!("sqlite://{}", dir.join("idp.db").display());
    let first = mcpauth_server::build(&idp_config).await.unwrap();
    mcpauth_server::add_user(&first.store, EMAIL, PASSWORD)
        .await
        .unwrap();
    let idp_keys = first.engine.jwks();
    first.store.close().await;
    let mut agent = mcpauth_server::admin::NewClient::new("mcpauth CLI");
    agent.redirect_uris = vec!["http://127.0.0.1/callback".into()];
    agent.grant_types = vec![
        "authorization_code".into(),
        "refresh_token".into(),
        TOKEN_EXCHANGE.into(),
    ];
    let agent_at_idp = added(&idp_config, agent).await;
    idp_config.identity_assertion_audiences = vec![
        serde_json::from_value(json!({
            "issuer": mcp_issuer, "resources": [resource], "scope": ["mcp:tools"],
            "clients": [{ "client_id": agent_at_idp.0, "client_id_there": agent_at_as.0 }],
        }))
        .unwrap(),
    ];
    let idp = mcpauth_server::build(&idp_config).await.unwrap();
    let (stop_idp, idp_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(idp_listener, idp, async {
        let _ = idp_stopped.await;
    }));

    // The MCP authorization server trusts the provider (its keys over HTTPS), and serves.
    let (jwks_uri, certificate) =
        examples_support::serve_document_over_https(move |_| idp_keys).await;
    let mut policy = mcpauth_fetch::FetchPolicy::default();
    policy.insecure_allow_loopback = true;
    policy.root_certificates_only = vec![certificate];
    as_config.trusted_issuers = vec![
        serde_json::from_value(json!({
            "issuer": idp_issuer, "jwks_uri": jwks_uri, "kind": "identity_provider",
            "allowed_clients": [agent_at_as.0],
        }))
        .unwrap(),
    ];
    let mcp_as = mcpauth_server::build_with(
        &as_config,
        mcpauth_server::BuildOptions::default().fetch_policy(policy),
    )
    .await
    .unwrap();
    let (stop_as, as_stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(mcpauth_server::serve_on(as_listener, mcp_as, async {
        let _ = as_stopped.await;
    }));
    let stop_mcp = serve_mcp(mcp_listener, &resource, &mcp_issuer);

    // `mcpauth auth … --idp`: the URL it prints is the provider's; the person signs in there.
    let person = Arc::new(FormFillingBrowser::default());
    let auth = || {
        auth_with_idp(
            &store_dir,
            &person,
            [
                "auth",
                "work",
                &resource,
                "--allow-http",
                "--no-browser",
                "--idp",
                &idp_issuer,
                "--idp-client-id",
                &agent_at_idp.0,
                "--client-id",
                &agent_at_as.0,
            ],
            [
                ("MCPAUTH_IDP_CLIENT_SECRET", agent_at_idp.1.as_str()),
                ("MCPAUTH_CLIENT_SECRET", agent_at_as.1.as_str()),
            ],
            &idp_issuer,
        )
    };
    let (stdout, rest) = auth().await;
    assert!(
        stdout.contains(&format!("authorized work at {mcp_issuer}")),
        "{stdout}"
    );
    assert!(
        rest.contains("signed in at the identity provider"),
        "{rest}"
    );
    assert_eq!(person.sign_ins.load(Ordering::SeqCst), 1);

    // The token works at the MCP server; the secrets and tokens stay out of the registry.
    let tested = mcpauth(&store_dir)
        .args(["test", "work"])
        .output()
        .await
        .unwrap();
    assert!(
        tested.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&tested.stdout),
        String::from_utf8_lossy(&tested.stderr)
    );
    let registry = std::fs::read_to_string(store_dir.join("servers.json")).unwrap();
    assert!(registry.contains(&idp_issuer), "{registry}");
    assert!(!registry.contains(&agent_at_idp.1) && !registry.contains(&agent_at_as.1));

    // Later commands, with no secret in the environment (the kept ones are used) and no
    // browser: each renewal is a new exchange at the provider and a new grant here.
    let mut tokens = Vec::new();
    for _ in 0..2 {
        let got = mcpauth(&store_dir)
            .args(["get", "work", "--show"])
            .env_remove("MCPAUTH_IDP_CLIENT_SECRET")
            .env_remove("MCPAUTH_CLIENT_SECRET")
            .output()
            .await
            .unwrap();
        assert!(
            got.status.success(),
            "{}",
            String::from_utf8_lossy(&got.stderr)
        );
        let shown = String::from_utf8_lossy(&got.stdout).trim().to_owned();
        let token = shown.lines().last().unwrap().to_owned();
        let access = claims(&token);
        assert_eq!(access["sub_type"], "user");
        assert_eq!(access["client_id"], agent_at_as.0.as_str());
        tokens.push(token);
    }
    assert_ne!(
        tokens[0], tokens[1],
        "each command renewed the token by ID-JAG"
    );
    assert_eq!(
        person.sign_ins.load(Ordering::SeqCst),
        1,
        "no second sign-in"
    );

    // The provider's refresh token, as the CLI keeps it (encrypted).
    let kept = || async {
        use mcpauth_client::TokenStore as _;
        let store = mcpauth_client::FileStore::open(
            &store_dir,
            mcpauth_client::KeySource::Passphrase(PASSPHRASE.into()),
        )
        .unwrap();
        store
            .load_tokens(&format!("{idp_issuer}#idp-sign-in=work"), &idp_issuer)
            .await
            .unwrap()
            .and_then(|tokens| tokens.refresh_token)
    };
    let exchange = |refresh_token: String| {
        reqwest::Client::new()
            .post(format!("{idp_issuer}/token"))
            .basic_auth(&agent_at_idp.0, Some(&agent_at_idp.1))
            .form(&[
                ("grant_type", TOKEN_EXCHANGE),
                (
                    "requested_token_type",
                    "urn:ietf:params:oauth:token-type:id-jag",
                ),
                ("subject_token", refresh_token.as_str()),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:refresh_token",
                ),
                ("audience", mcp_issuer.as_str()),
            ])
            .send()
    };
    let first = kept().await.unwrap();
    assert_eq!(exchange(first.clone()).await.unwrap().status(), 200);
    // `auth` again replaces the sign-in: the earlier one is revoked at the provider.
    auth().await;
    let idp_refresh_token = kept().await.unwrap();
    assert_ne!(idp_refresh_token, first);
    let replaced: serde_json::Value = exchange(first).await.unwrap().json().await.unwrap();
    assert_eq!(replaced["error"], "invalid_grant", "{replaced}");
    assert_eq!(
        exchange(idp_refresh_token.clone()).await.unwrap().status(),
        200
    );
    // `logout` ends the sign-in at the provider too: it vouches for no one any more.
    let logged_out = mcpauth(&store_dir)
        .args(["logout", "work"])
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&logged_out.stdout);
    assert!(logged_out.status.success(), "{said}");
    assert!(
        said.contains("the sign-in at the identity provider was revoked"),
        "{said}"
    );
    let refused: serde_json::Value = exchange(idp_refresh_token)
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(refused["error"], "invalid_grant", "{refused}");
    assert_eq!(kept().await, None, "forgotten here too");

    drop((stop_idp, stop_as, stop_mcp));
    let _ = std::fs::remove_dir_all(&dir);
}
