//! `mcpauth`: connect to OAuth-protected MCP servers from a terminal.
//!
//! ```text
//! mcpauth auth work https://mcp.example.com/mcp     # discover, register, sign in, keep tokens
//! mcpauth list                                      # servers and their token state
//! mcpauth get work [--show]                         # the token (refreshed when needed)
//! mcpauth test work                                 # call the server with it
//! mcpauth logout work                               # revoke at the server, then forget
//! mcpauth clear work                                # forget, without revoking
//! ```
//!
//! Tokens live in an encrypted file whose key is in the OS keychain (`--store keychain`, the
//! default; where there is no keychain, the file's key comes from a passphrase), in a
//! passphrase-encrypted file (`--store file`, passphrase from `MCPAUTH_STORE_PASSPHRASE` or
//! asked for), or nowhere (`--store memory`).

mod conformance;
mod registry;
mod stores;

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{CommandFactory as _, Parser, Subcommand, ValueEnum};
use mcpauth_client::{Browser, Error, OAuthClient, SystemBrowser, TokenSet, TokenStore};
use serde_json::json;
use url::Url;

use crate::registry::{Registry, ServerEntry};

/// Connect to OAuth-protected MCP servers and keep their tokens safe.
#[derive(Parser, Debug)]
#[command(name = "mcpauth", version, about, long_about = None)]
struct Cli {
    /// Where tokens are kept: `keychain` (an encrypted file whose key is in the OS
    /// keychain; a passphrase where there is none), `file` (encrypted with a passphrase), or
    /// `memory` (nothing is kept after this command).
    #[arg(long, value_enum, default_value_t = StoreKind::Keychain, env = "MCPAUTH_STORE", global = true)]
    store: StoreKind,
    /// The store's directory (default: the platform's data directory, `mcpauth`).
    #[arg(long, env = "MCPAUTH_STORE_DIR", global = true)]
    store_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

/// Where tokens are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum StoreKind {
    /// An encrypted file whose key is in the OS keychain.
    Keychain,
    /// An encrypted file whose key comes from a passphrase.
    File,
    /// Memory: nothing is kept.
    Memory,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Authorize at an MCP server and keep its tokens under NAME.
    Auth {
        /// A short name for the server (used by the other commands).
        name: String,
        /// The MCP server's URL, for example `https://mcp.example.com/mcp`.
        url: String,
        /// Use the device flow (RFC 8628): show a code to enter on another device.
        #[arg(long)]
        device: bool,
        /// Ask for this scope (space-separated) besides what the server needs.
        #[arg(long)]
        scope: Option<String>,
        /// A client id registered beforehand at the authorization server.
        #[arg(long)]
        client_id: Option<String>,
        /// Its secret, if it has one (better from the environment). Kept encrypted in the
        /// token store for later commands.
        #[arg(long, env = "MCPAUTH_CLIENT_SECRET", hide_env_values = true)]
        client_secret: Option<String>,
        /// The authorization server --client-id was registered at (its issuer). Without
        /// it, the one the MCP server names now; either way the client id and its secret are
        /// only ever sent there.
        #[arg(long, requires = "client_id")]
        issuer: Option<String>,
        /// A Client ID Metadata Document URL to use as the client id where the server
        /// accepts them.
        #[arg(long)]
        metadata_document: Option<String>,
        /// A machine client: tokens from the client_credentials grant with --client-id and
        /// its secret (MCPAUTH_CLIENT_SECRET) or --private-key; no user, no browser.
        #[arg(long, requires = "client_id")]
        client_credentials: bool,
        /// A PEM (PKCS#8) private key to authenticate --client-id with private_key_jwt.
        #[arg(long, requires = "client_id")]
        private_key: Option<PathBuf>,
        /// The private key's algorithm: ES256, EdDSA or RS256.
        #[arg(long, default_value = "ES256")]
        signing_algorithm: String,
        /// Accept plain http on loopback (development servers).
        #[arg(long)]
        allow_http: bool,
        /// Let the authorization server (and whatever discovery finds) be on a private
        /// network. By default only the MCP server's own host may resolve to a private or
        /// reserved address, so a server cannot send this client into your network.
        #[arg(long)]
        allow_private_network: bool,
        /// Print the authorization URL instead of opening a browser.
        #[arg(long)]
        no_browser: bool,
        /// Fetch the authorization URL over HTTP and follow its redirects, without a
        /// person (test servers that approve at once).
        #[arg(long, hide = true)]
        non_interactive: bool,
        /// Seconds to wait for the browser (or the device code).
        #[arg(long, default_value_t = 300)]
        timeout: u64,
    },
    /// List the servers and the state of their tokens.
    List,
    /// Print the token for NAME (refreshed when it is about to expire); redacted unless
    /// `--show`.
    Get {
        /// The server's name.
        name: String,
        /// Print the access token itself.
        #[arg(long)]
        show: bool,
    },
    /// Call the server with its token (MCP `server/discover`, or `initialize` for servers
    /// of revisions before 2026-07-28) and say what it answered.
    Test {
        /// The server's name.
        name: String,
    },
    /// Revoke NAME's tokens at the authorization server (RFC 7009), then forget them.
    Logout {
        /// The server's name.
        name: String,
    },
    /// Forget NAME and its tokens without telling the authorization server.
    Clear {
        /// The server's name.
        name: String,
    },
    /// The MCP conformance suite's client under test: authorize at the server the suite
    /// starts (its authorization endpoint approves at once), then connect, list the tools
    /// and call each one. Reads `MCP_CONFORMANCE_SCENARIO` and `MCP_CONFORMANCE_CONTEXT`.
    #[command(hide = true)]
    Conformance {
        /// The MCP server's URL (the suite appends it).
        url: String,
        /// The Client ID Metadata Document URL to offer where the server accepts them.
        #[arg(long, env = "MCPAUTH_METADATA_DOCUMENT")]
        metadata_document: Option<String>,
    },
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
}

/// The command's outcome for the terminal: text or JSON, and the exit code.
struct Output {
    json: bool,
    color: bool,
}

impl Output {
    fn ok(&self, text: &str, value: serde_json::Value) {
        if self.json {
            println!("{value}");
        } else if self.color {
            println!("\x1b[32m✓\x1b[0m {text}");
        } else {
            println!("✓ {text}");
        }
    }

    fn fail(&self, error: &str) -> ExitCode {
        if self.json {
            println!("{}", json!({ "error": error }));
        } else if std::io::stderr().is_terminal() {
            eprintln!("\x1b[31merror:\x1b[0m {error}");
        } else {
            eprintln!("error: {error}");
        }
        ExitCode::FAILURE
    }
}

/// Opens nothing: says where to go.
struct PrintUrl;

#[async_trait::async_trait]
impl Browser for PrintUrl {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        eprintln!("Open this URL in a browser to authorize:\n  {url}");
        Ok(())
    }
}

/// Opens the browser and says so, with the URL for when it does not open.
struct OpenAndPrint;

#[async_trait::async_trait]
impl Browser for OpenAndPrint {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        eprintln!("Opening your browser to authorize. If it does not open, visit:\n  {url}");
        if let Err(e) = SystemBrowser.open(url).await {
            eprintln!("({e})");
        }
        Ok(())
    }
}

/// Fetches the authorization URL and follows its redirects to the loopback listener, with
/// no person involved (conformance and test servers that approve at once).
pub(crate) struct FollowRedirects;

#[async_trait::async_trait]
impl Browser for FollowRedirects {
    async fn open(&self, url: &Url) -> Result<(), Error> {
        let url = url.clone();
        let client = mcpauth_client::ReqwestClient::new()?;
        tokio::spawn(async move {
            let mut next = url;
            for _ in 0..10 {
                let Ok(request) = http::Request::get(next.as_str()).body(Vec::new()) else {
                    return;
                };
                let Ok(response) = mcpauth_client::HttpClient::send(&client, request).await else {
                    return;
                };
                let Some(location) = response
                    .headers()
                    .get(http::header::LOCATION)
                    .and_then(|l| l.to_str().ok())
                    .and_then(|l| next.join(l).ok())
                else {
                    return;
                };
                next = location;
            }
        });
        Ok(())
    }
}

fn expires_text(tokens: &TokenSet, now: u64) -> String {
    match tokens.expires_at {
        None => "no expiry given".into(),
        Some(at) if at <= now => "expired".into(),
        Some(at) => {
            let left = at - now;
            if left >= 120 {
                format!("expires in {} min", left / 60)
            } else {
                format!("expires in {left} s")
            }
        }
    }
}

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The client of an entry `auth` set up, for commands that use what it holds and never sign
/// anyone in (a URL to open is printed, not opened).
async fn authorized_client(
    entry: &ServerEntry,
    store: Arc<dyn TokenStore>,
) -> Result<OAuthClient, String> {
    client_for(
        entry,
        store,
        Arc::new(PrintUrl),
        false,
        secret_from_environment().as_deref(),
    )
    .await
    .map_err(|e| e.to_string())
}

/// Where the secret of a client configured with `--client-id` is kept in the store: beside
/// the issuer's own slot (which holds the identity registered there for entries without a
/// client id), keyed by issuer and client id. An issuer identifier has no fragment (RFC 8414
/// §2), so no issuer's slot can have this name.
fn configured_secret_key(issuer: &str, client_id: &str) -> String {
    format!("{issuer}#client_id={client_id}")
}

/// The client for `entry`. A configured client id is bound to the authorization server it
/// was configured for (`entry.issuer`); its secret comes from `secret` (the command line or
/// `MCPAUTH_CLIENT_SECRET`), else from the encrypted store, where `auth` kept it.
async fn client_for(
    entry: &ServerEntry,
    store: Arc<dyn TokenStore>,
    browser: Arc<dyn Browser>,
    interactive: bool,
    secret: Option<&str>,
) -> Result<OAuthClient, Error> {
    let mut builder = OAuthClient::builder(&entry.url)
        .client_name("mcpauth CLI")
        .store(store.clone())
        .browser(browser);
    if entry.allow_http {
        builder = builder.allow_loopback_http();
    }
    if entry.allow_private_network {
        builder = builder.allow_private_network();
    }
    if let Some(id) = &entry.client_id {
        let issuer = entry.issuer.as_deref().ok_or_else(|| {
            Error::Storage(format!(
                "the client id {id} is not bound to an authorization server yet: run `mcpauth auth` again"
            ))
        })?;
        builder = match &entry.private_key {
            Some(path) => {
                let pem = std::fs::read_to_string(path).map_err(|e| {
                    Error::Storage(format!("reading the private key {}: {e}", path.display()))
                })?;
                builder.private_key_jwt(
                    issuer,
                    id,
                    &pem,
                    entry.signing_algorithm.as_deref().unwrap_or("ES256"),
                )
            }
            None => {
                let kept = match secret {
                    Some(secret) => Some(secret.to_owned()),
                    None => store
                        .load_credentials(&configured_secret_key(issuer, id))
                        .await?
                        .filter(|c| c.client_id == *id)
                        .and_then(|c| c.client_secret),
                };
                builder.pre_registered(issuer, id, kept.as_deref())
            }
        };
    }
    if entry.client_credentials {
        builder = builder.client_credentials();
    }
    if let Some(document) = &entry.metadata_document {
        builder = builder.metadata_document(document);
    }
    if let Some(scope) = &entry.scope {
        builder = builder.scope(scope);
    }
    if !interactive {
        builder = builder.non_interactive();
    }
    builder.build()
}

/// `MCPAUTH_CLIENT_SECRET`, when set.
fn secret_from_environment() -> Option<String> {
    std::env::var("MCPAUTH_CLIENT_SECRET")
        .ok()
        .filter(|s| !s.is_empty())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output {
        json: cli.json,
        color: std::io::stdout().is_terminal(),
    };
    if let Command::Completions { shell } = &cli.command {
        clap_complete::generate(
            *shell,
            &mut Cli::command(),
            "mcpauth",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    match run(&cli, &out).await {
        Ok(code) => code,
        Err(e) => out.fail(&e),
    }
}

async fn run(cli: &Cli, out: &Output) -> Result<ExitCode, String> {
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
                private_key: private_key.clone(),
                signing_algorithm: private_key.as_ref().map(|_| signing_algorithm.clone()),
                issuer: issuer.clone(),
                resource: None,
            };
            let browser: Arc<dyn Browser> = if *non_interactive {
                Arc::new(FollowRedirects)
            } else if *no_browser {
                Arc::new(PrintUrl)
            } else {
                Arc::new(OpenAndPrint)
            };
            // A configured client id belongs to one authorization server: the one named with
            // --issuer, else the one this server names now, kept from here on.
            if let (Some(id), None) = (client_id, &entry.issuer) {
                let mut probe = entry.clone();
                probe.client_id = None;
                let found = client_for(&probe, store.clone(), browser.clone(), true, None)
                    .await
                    .map_err(|e| e.to_string())?
                    .discover()
                    .await
                    .map_err(|e| e.to_string())?;
                eprintln!(
                    "client {id} is bound to the authorization server {}",
                    found.issuer()
                );
                entry.issuer = Some(found.issuer().to_owned());
            }
            let client = client_for(
                &entry,
                store.clone(),
                browser,
                true,
                client_secret.as_deref(),
            )
            .await
            .map_err(|e| e.to_string())?;
            let discovered = client.discover().await.map_err(|e| e.to_string())?;
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
                tokio::time::timeout(Duration::from_secs(*timeout + 5), client.authorize(None))
                    .await
                    .map_err(|_| format!("no answer within {timeout} s"))?
            }
            .map_err(|e| e.to_string())?;
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
                    .map_err(|e| e.to_string())?;
            }
            entry.issuer = Some(discovered.issuer().to_owned());
            entry.resource = Some(discovered.resource.clone());
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
            let held = store.list_tokens().await.map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for (name, entry) in registry.entries() {
                let tokens = held.iter().find(|(issuer, resource, _)| {
                    Some(issuer) == entry.issuer.as_ref()
                        && Some(resource) == entry.resource.as_ref()
                });
                let state = match tokens {
                    None => "not authorized".to_owned(),
                    Some((_, _, t)) if t.expires_within(now(), 0) && t.refresh_token.is_some() => {
                        "expired (will refresh)".into()
                    }
                    Some((_, _, t)) => expires_text(t, now()),
                };
                rows.push(json!({
                    "name": name, "url": entry.url, "issuer": entry.issuer,
                    "state": state,
                    "scope": tokens.and_then(|(_, _, t)| t.scope.clone()),
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
            let client = authorized_client(entry, store.clone()).await?;
            let token = client.get_valid_token().await.map_err(|e| e.to_string())?;
            let tokens = client
                .held_tokens()
                .await
                .map_err(|e| e.to_string())?
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
            let client = authorized_client(entry, store.clone()).await?;
            let token = client.get_valid_token().await.map_err(|e| e.to_string())?;
            let (status, server) = probe(&entry.url, &token).await?;
            if status == 200 {
                out.ok(
                    &format!(
                        "{name} answered: {}",
                        server.as_deref().unwrap_or("an MCP server")
                    ),
                    json!({ "name": name, "status": status, "server": server }),
                );
                Ok(ExitCode::SUCCESS)
            } else {
                Err(format!(
                    "{name} answered HTTP {status} to an authorized request"
                ))
            }
        }
        Command::Logout { name } => {
            let entry = registry.get(name)?;
            let client = authorized_client(entry, store.clone()).await?;
            client.logout().await.map_err(|e| e.to_string())?;
            out.ok(
                &format!("logged out of {name}: tokens revoked and forgotten"),
                json!({ "name": name, "logged_out": true }),
            );
            Ok(ExitCode::SUCCESS)
        }
        Command::Clear { name } => {
            let entry = registry.get(name)?.clone();
            if let (Some(issuer), Some(resource)) = (&entry.issuer, &entry.resource) {
                store
                    .delete_tokens(issuer, resource)
                    .await
                    .map_err(|e| e.to_string())?;
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

/// The revision `mcpauth test` asks for first.
const MODERN_REVISION: &str = "2026-07-28";

/// Asks the MCP server at `url` who it is, with `token`: `server/discover` (2026-07-28),
/// then the `initialize` handshake when the server answers as an older revision would.
/// Returns the HTTP status and the server's name.
async fn probe(url: &str, token: &str) -> Result<(u16, Option<String>), String> {
    let client = mcpauth_client::ReqwestClient::new().map_err(|e| e.to_string())?;
    let client_info = json!({ "name": "mcpauth", "version": env!("CARGO_PKG_VERSION") });
    let discover = json!({
        "jsonrpc": "2.0", "id": 1, "method": "server/discover",
        "params": { "_meta": {
            "io.modelcontextprotocol/protocolVersion": MODERN_REVISION,
            "io.modelcontextprotocol/clientInfo": client_info,
            "io.modelcontextprotocol/clientCapabilities": {}
        } }
    });
    let (status, body) = post_json(&client, url, token, &discover, Some(MODERN_REVISION)).await?;
    if status == 200 && body.as_ref().is_some_and(|b| b.get("result").is_some()) {
        let name = body.as_ref().and_then(|b| {
            b.pointer("/result/_meta/io.modelcontextprotocol~1serverInfo/name")
                .or_else(|| b.pointer("/result/serverInfo/name"))
                .and_then(|n| n.as_str())
                .map(str::to_owned)
        });
        return Ok((status, name));
    }
    // The token was refused: no point asking again in another revision.
    if status == 401 || status == 403 {
        return Ok((status, None));
    }
    let initialize = json!({
        "jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": { "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": client_info }
    });
    let (status, body) = post_json(&client, url, token, &initialize, None).await?;
    let name = body.and_then(|v| {
        v.pointer("/result/serverInfo/name")
            .and_then(|n| n.as_str())
            .map(str::to_owned)
    });
    Ok((status, name))
}

/// One JSON-RPC POST with `token`: the status and the JSON answer (plain, or the first
/// server-sent event carrying it).
async fn post_json(
    client: &mcpauth_client::ReqwestClient,
    url: &str,
    token: &str,
    body: &serde_json::Value,
    revision: Option<&str>,
) -> Result<(u16, Option<serde_json::Value>), String> {
    let mut request = http::Request::post(url)
        .header(http::header::AUTHORIZATION, format!("Bearer {token}"))
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, text/event-stream");
    if let Some(revision) = revision {
        request = request.header("MCP-Protocol-Version", revision);
        if let Some(method) = body.get("method").and_then(|m| m.as_str()) {
            request = request.header("Mcp-Method", method);
        }
    }
    let request = request
        .body(body.to_string().into_bytes())
        .map_err(|e| e.to_string())?;
    let response = mcpauth_client::HttpClient::send(client, request)
        .await
        .map_err(|e| e.to_string())?;
    let status = response.status().as_u16();
    let text = String::from_utf8_lossy(response.body());
    let json_text = text
        .lines()
        .find_map(|l| l.strip_prefix("data:"))
        .unwrap_or(&text);
    Ok((status, serde_json::from_str(json_text.trim()).ok()))
}
