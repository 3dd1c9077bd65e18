//! Each command, run.

use std::io::IsTerminal as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use mcpauth_client::{AccountStore, Browser, LoggedOut, TokenStore as _};
use serde_json::json;

use super::{conformance, stores};
use crate::args::{Cli, Command, StoreKind};
use crate::browsers::{FollowRedirects, PrintUrl};
use crate::client::{
    authorized_client, client_for, configured_secret_key, forget_idp_sign_in,
    sign_in_at_identity_provider,
};
use crate::output::Output;
use crate::probe::{check_is_protected_mcp_server, probe};
use crate::registry::{Registry, ServerEntry};
use crate::{expires_text, now};
use mcpauth_client::said;

pub(crate) async fn run(cli: &Cli, out: &Output) -> Result<ExitCode, String> {
    // Commands that keep nothing open no store (and never ask for its passphrase).
    match &cli.command {
        Command::Conformance {
            url,
            metadata_document,
        } => {
            return conformance::run(url, metadata_document.as_deref())
                .await
                .map(|()| ExitCode::SUCCESS);
        }
        Command::Completions { .. } => return Ok(ExitCode::SUCCESS),
        _ => {}
    }
    let dir = match &cli.store_dir {
        Some(dir) => dir.clone(),
        None => {
            mcpauth_client::FileStore::default_dir().ok_or("no home directory: pass --store-dir")?
        }
    };
    let store = stores::open(cli.store, &dir).await?;
    let mut registry =
        Registry::load(&dir, cli.store == StoreKind::Memory).map_err(|e| e.to_string())?;
    for name in registry.forget_tokens_kept_per_server(&store).await? {
        eprintln!(
            "note: tokens are now kept per name, and those an earlier version kept per server \
             were set aside (they could be another name's identity): `mcpauth auth {name} URL` \
             authorizes `{name}` again"
        );
    }
    match &cli.command {
        Command::Auth {
            name,
            url,
            device,
            scope,
            client_id,
            client_secret,
            issuer,
            client_credentials,
            workload_token,
            idp,
            idp_client_id,
            private_key,
            signing_algorithm,
            metadata_document,
            allow_http,
            allow_private_network,
            no_browser,
            non_interactive,
            timeout,
        } => {
            let mut entry = ServerEntry {
                url: url.clone(),
                allow_http: *allow_http,
                allow_private_network: *allow_private_network,
                client_id: client_id.clone(),
                metadata_document: metadata_document.clone(),
                scope: scope.clone(),
                client_credentials: *client_credentials,
                workload_token: workload_token.clone(),
                idp: None,
                private_key: private_key.clone(),
                signing_algorithm: private_key.as_ref().map(|_| signing_algorithm.clone()),
                issuer: issuer.clone(),
                resource: None,
                tokens_per_name: true,
            };
            // The URL's scheme first (the flag that fixes it named), then whether there is an
            // MCP server there that wants authorization, before anyone signs in.
            let policy = if *allow_http {
                mcpauth_client::UrlPolicy::allowing_loopback_http()
            } else {
                mcpauth_client::UrlPolicy::https_only()
            };
            policy.check(url).map_err(|e| said(&e))?;
            check_is_protected_mcp_server(url).await?;
            let browser: Arc<dyn Browser> = if *non_interactive {
                Arc::new(FollowRedirects)
            } else if *no_browser {
                Arc::new(PrintUrl)
            } else {
                Arc::new(mcpauth_client::SystemBrowser)
            };
            // A configured client id belongs to one authorization server: the one named with
            // --issuer, else the one this server names now, kept from here on.
            if let (Some(id), None) = (client_id, &entry.issuer) {
                let mut probe = entry.clone();
                probe.client_id = None;
                let found = client_for(name, &probe, store.clone(), browser.clone(), true, None)
                    .await
                    .map_err(|e| said(&e))?
                    .discover()
                    .await
                    .map_err(|e| said(&e))?;
                eprintln!(
                    "client {id} is bound to the authorization server {}",
                    found.issuer()
                );
                entry.issuer = Some(found.issuer().to_owned());
            }
            // A machine client authenticates: with a secret given now or kept from an earlier
            // `auth` for this authorization server, or a private key.
            if let (true, None, None, Some(id), Some(bound)) = (
                *client_credentials,
                client_secret,
                private_key,
                client_id,
                &entry.issuer,
            ) && store
                .load_credentials(&configured_secret_key(bound, id))
                .await
                .map_err(|e| said(&e))?
                .and_then(|kept| kept.client_secret)
                .is_none()
            {
                return Err(format!(
                    "--client-credentials needs how {id} authenticates: its secret in \
                     MCPAUTH_CLIENT_SECRET (or --client-secret), or --private-key KEY.pem for \
                     private_key_jwt"
                ));
            }
            // A sign-in at an identity provider this name kept from an earlier `auth` ends
            // here: the new `auth` replaces it.
            if let Ok(previous) = registry.get(name)
                && let Some(previous_idp) = &previous.idp
                && let Err(e) = forget_idp_sign_in(name, previous, previous_idp, &store, true).await
            {
                eprintln!("warning: {}", said(&e));
            }
            // Enterprise-managed authorization: the one sign-in, at the identity provider.
            if let (Some(idp_issuer), Some(idp_client)) = (idp, idp_client_id) {
                entry.idp = Some(
                    sign_in_at_identity_provider(
                        name,
                        idp_issuer,
                        idp_client,
                        policy,
                        &*browser,
                        &store,
                        Duration::from_secs(*timeout),
                    )
                    .await?,
                );
            }
            let client = client_for(
                name,
                &entry,
                store.clone(),
                browser,
                true,
                client_secret.as_deref(),
            )
            .await
            .map_err(|e| said(&e))?;
            let discovered = client.discover().await.map_err(|e| said(&e))?;
            let tokens = if *device {
                // A spinner on a terminal while the client polls, once the code is shown.
                let spinner: Arc<std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>> =
                    Arc::default();
                let show = {
                    let spinner = spinner.clone();
                    move |code: &mcpauth_client::device::DeviceCode| {
                        eprintln!(
                            "To authorize, visit {} and enter the code\n\n    {}\n",
                            code.verification_uri, code.user_code
                        );
                        if let Some(complete) = &code.verification_uri_complete {
                            eprintln!("(or open {complete})");
                        }
                        if std::io::stderr().is_terminal() {
                            let task = tokio::spawn(async {
                                let frames = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];
                                for frame in frames.iter().cycle() {
                                    eprint!("\r{frame} waiting for you to approve…");
                                    tokio::time::sleep(Duration::from_millis(120)).await;
                                }
                            });
                            if let Ok(mut slot) = spinner.lock() {
                                *slot = Some(task);
                            }
                        } else {
                            eprintln!("Waiting for you to approve…");
                        }
                    }
                };
                let result = client.authorize_device(None, &show).await;
                if let Some(task) = spinner.lock().ok().and_then(|mut slot| slot.take()) {
                    task.abort();
                    eprint!("\r\x1b[2K");
                }
                result
            } else {
                match tokio::time::timeout(
                    Duration::from_secs(*timeout + 5),
                    client.authorize(None),
                )
                .await
                {
                    Ok(result) => result,
                    Err(_) => Err(mcpauth_client::Error::Timeout { seconds: *timeout }),
                }
            };
            let tokens = match tokens {
                Ok(tokens) => tokens,
                Err(e) => {
                    // The sign-in at the identity provider this `auth` made is of no use now:
                    // ended there, not left behind in the store.
                    if let Some(new_idp) = &entry.idp
                        && let Err(cleanup) =
                            forget_idp_sign_in(name, &entry, new_idp, &store, true).await
                    {
                        eprintln!("warning: {}", said(&cleanup));
                    }
                    return Err(said(&e));
                }
            };
            // The secret of a configured client is kept encrypted in the store, bound to its
            // issuer, for the commands that come later: under a key of its own, never in the
            // slot of the identity the client registered there for other entries.
            if let (Some(id), Some(secret), None) = (client_id, client_secret, private_key) {
                store
                    .save_credentials(&mcpauth_client::ClientCredentials::pre_registered(
                        &configured_secret_key(discovered.issuer(), id),
                        id,
                        Some(secret),
                    ))
                    .await
                    .map_err(|e| said(&e))?;
            }
            entry.issuer = Some(discovered.issuer().to_owned());
            entry.resource = Some(discovered.resource.clone());
            // The name now stands for this server: tokens it held for another are forgotten.
            if let Ok(previous) = registry.get(name)
                && let (Some(issuer), Some(resource)) = (&previous.issuer, &previous.resource)
                && (entry.issuer.as_ref(), entry.resource.as_ref())
                    != (Some(issuer), Some(resource))
            {
                AccountStore::new(store.clone(), name)
                    .delete_tokens(issuer, resource)
                    .await
                    .map_err(|e| said(&e))?;
            }
            registry.insert(name, entry);
            registry.save().map_err(|e| e.to_string())?;
            out.ok(
                &format!(
                    "authorized {name} at {} (scope: {}; {})",
                    discovered.issuer(),
                    tokens.scope.as_deref().unwrap_or("none"),
                    expires_text(&tokens, now())
                ),
                json!({
                    "name": name, "url": url, "issuer": discovered.issuer(),
                    "resource": discovered.resource, "scope": tokens.scope,
                    "expires_at": tokens.expires_at,
                }),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::List => {
            let mut rows = Vec::new();
            for (name, entry) in registry.entries() {
                let tokens = match (&entry.issuer, &entry.resource) {
                    (Some(issuer), Some(resource)) => AccountStore::new(store.clone(), name)
                        .load_tokens(issuer, resource)
                        .await
                        .map_err(|e| said(&e))?,
                    _ => None,
                };
                let state = match &tokens {
                    None => "not authorized".to_owned(),
                    Some(t) if t.expires_within(now(), 0) && t.refresh_token.is_some() => {
                        "expired (will refresh)".into()
                    }
                    Some(t) => expires_text(t, now()),
                };
                rows.push(json!({
                    "name": name, "url": entry.url, "issuer": entry.issuer,
                    "state": state,
                    "scope": tokens.and_then(|t| t.scope),
                }));
                if !out.json {
                    println!("{name}\t{}\t{state}", entry.url);
                }
            }
            if out.json {
                println!("{}", serde_json::Value::Array(rows));
            } else if registry.entries().next().is_none() {
                println!("no servers yet: `mcpauth auth NAME URL` adds one");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Get { name, show } => {
            let entry = registry.get(name)?;
            let client = authorized_client(name, entry, store.clone()).await?;
            let token = match valid_token(&client, name, &entry.url, out).await? {
                Ok(token) => token,
                Err(status) => return Ok(status),
            };
            let tokens = client
                .held_tokens()
                .await
                .map_err(|e| said(&e))?
                .ok_or("no tokens are held")?;
            if *show {
                if out.json {
                    println!(
                        "{}",
                        json!({ "name": name, "access_token": token, "expires_at": tokens.expires_at, "scope": tokens.scope })
                    );
                } else {
                    println!("{token}");
                }
            } else {
                out.ok(
                    &format!(
                        "{name}: access token [redacted, {} characters] ({}; scope: {}); --show prints it",
                        token.len(),
                        expires_text(&tokens, now()),
                        tokens.scope.as_deref().unwrap_or("none"),
                    ),
                    json!({ "name": name, "access_token": "[redacted]", "expires_at": tokens.expires_at, "scope": tokens.scope }),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Test { name } => {
            let entry = registry.get(name)?;
            let client = authorized_client(name, entry, store.clone()).await?;
            let token = match valid_token(&client, name, &entry.url, out).await? {
                Ok(token) => token,
                Err(status) => return Ok(status),
            };
            let answer = probe(&entry.url, Some((&client, &token))).await?;
            let server = answer.server_name();
            match answer.status {
                200 if answer.is_mcp() => {
                    out.ok(
                        &format!(
                            "{name} answered: {}",
                            server
                                .as_deref()
                                .unwrap_or("an MCP server (it gave no name)")
                        ),
                        json!({ "name": name, "status": 200, "server": server }),
                    );
                    Ok(ExitCode::SUCCESS)
                }
                200 => Err(format!(
                    "{name} ({}) answered {} to an authorized MCP request, not a JSON-RPC \
                     answer: it is not an MCP server, or not at this URL",
                    entry.url,
                    answer.described()
                )),
                401 | 403 => Ok(out.fail_with(
                    &format!(
                        "{name} refused the token with HTTP {} ({}); `mcpauth auth {name} {}` \
                         authorizes again",
                        answer.status,
                        answer.refusal(),
                        entry.url
                    ),
                    crate::output::EXIT_AUTHORIZATION_NEEDED,
                )),
                _ => Err(format!(
                    "{name} ({}) answered {} to an authorized MCP request",
                    entry.url,
                    answer.described()
                )),
            }
        }
        Command::Logout { name } => {
            let entry = registry.get(name)?.clone();
            // The sign-in at the identity provider ends first: otherwise it would go on
            // vouching for this name. When that fails, nothing is forgotten: run it again.
            let idp_revoked = match &entry.idp {
                Some(idp) => {
                    forget_idp_sign_in(name, &entry, idp, &store, true)
                        .await
                        .map_err(|e| said(&e))?;
                    true
                }
                None => false,
            };
            let client = authorized_client(name, &entry, store.clone()).await?;
            let outcome = client.logout().await.map_err(|e| said(&e))?;
            // Logged out means the name is gone too, as `clear` does: a second logout says
            // there is no such name instead of claiming to revoke again.
            registry.remove(name);
            registry.save().map_err(|e| e.to_string())?;
            let (said_text, revoked) = match outcome {
                LoggedOut::Revoked => ("tokens revoked at the authorization server", true),
                LoggedOut::NothingHeld => ("it held no tokens, so nothing was revoked", false),
                LoggedOut::NoRevocationEndpoint => (
                    "the authorization server offers no revocation, so the tokens stay valid \
                     there until they expire",
                    false,
                ),
                LoggedOut::RevocationFailed => (
                    "revocation failed at the authorization server, so the tokens may stay \
                     valid there until they expire",
                    false,
                ),
                _ => ("the tokens were forgotten here", false),
            };
            let idp_text = if idp_revoked {
                "; the sign-in at the identity provider was revoked"
            } else {
                ""
            };
            out.ok(
                &format!("logged out of {name}: {said_text}{idp_text}; {name} is forgotten"),
                json!({
                    "name": name, "logged_out": true, "revoked": revoked,
                    "identity_provider_revoked": idp_revoked,
                }),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Clear { name } => {
            let entry = registry.get(name)?.clone();
            if let (Some(issuer), Some(resource)) = (&entry.issuer, &entry.resource) {
                AccountStore::new(store.clone(), name)
                    .delete_tokens(issuer, resource)
                    .await
                    .map_err(|e| said(&e))?;
            }
            if let Some(idp) = &entry.idp {
                forget_idp_sign_in(name, &entry, idp, &store, false)
                    .await
                    .map_err(|e| said(&e))?;
            }
            registry.remove(name);
            registry.save().map_err(|e| e.to_string())?;
            out.ok(
                &format!("forgot {name} (its tokens were not revoked; `logout` revokes)"),
                json!({ "name": name, "cleared": true }),
            );
            Ok(ExitCode::SUCCESS)
        }
        // Answered before any store is opened (they need none); never reached here.
        Command::Conformance { .. } | Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

/// A valid access token for `name` (refreshed when needed); when the user must authorize
/// again, that reported with its exit status.
async fn valid_token(
    client: &mcpauth_client::OAuthClient,
    name: &str,
    url: &str,
    out: &Output,
) -> Result<Result<String, ExitCode>, String> {
    match client.get_valid_token().await {
        Ok(token) => Ok(Ok(token)),
        Err(e) if e.needs_authorization() => Ok(Err(out.fail_with(
            &format!("{}; `mcpauth auth {name} {url}` authorizes again", said(&e)),
            crate::output::EXIT_AUTHORIZATION_NEEDED,
        ))),
        Err(e) => Err(said(&e)),
    }
}
