//! The `mcpauth-server` command.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcpauth_server::{Config, said};

/// mimalloc rather than glibc's allocator: allocation was about 9% of the CPU of a token request
/// under load (docs/performance.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// An OAuth 2.1 authorization server for MCP.
#[derive(Parser, Debug)]
#[command(name = "mcpauth-server", version, about)]
struct Cli {
    /// TOML configuration file (MCPAUTH_* environment variables override it).
    #[arg(long, env = "MCPAUTH_CONFIG", global = true)]
    config: Option<PathBuf>,
    /// With `user`, `client` or `key`: create the database when it does not exist yet.
    /// Without it they refuse and name the database they would have made (the server's own
    /// database is likely elsewhere: pass its --config).
    #[arg(long, global = true)]
    create: bool,
    /// Apply no database migration: refuse a database that lacks any this version needs
    /// (run `mcpauth-server migrate` first). The same as `migrate = false`.
    #[arg(long, global = true)]
    no_migrate: bool,
    /// Lists and additions as JSON on standard output, for scripts (`user list`, `user add`,
    /// `client list`, `client add`, `key list`, `key rotate`, `grant list`, `audit`).
    #[arg(long, global = true)]
    json: bool,
    /// Colours in the text logs: `auto` (on a terminal, unless NO_COLOR is set), `always` or
    /// `never`.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    color: Color,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users (who can sign in).
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage pre-registered clients.
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// See and revoke grants: which client holds access to what, for whom, since when.
    Grant {
        #[command(subcommand)]
        command: GrantCommand,
    },
    /// Manage token-signing keys (rotation).
    Key {
        #[command(subcommand)]
        command: KeyCommand,
    },
    /// Print a shell completion script (`mcpauth-server completions bash >
    /// /etc/bash_completion.d/mcpauth-server`).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Apply the database migrations this version has that the database lacks, and say where
    /// it stands. Servers do this at start unless `migrate = false` (`--no-migrate`).
    Migrate,
    /// Write a consistent copy of the SQLite database to FILE while the server runs (online:
    /// requests go on). PostgreSQL: use pg_dump (docs/deployment.md).
    Backup {
        /// The copy to write; must not exist.
        file: PathBuf,
    },
    /// Restore a backup: check FILE is a whole mcpauth database and copy it to where the
    /// configuration's SQLite database goes, which must not exist (stop the server and move
    /// the old database away first).
    Restore {
        /// The backup `mcpauth-server backup` wrote.
        file: PathBuf,
    },
    /// Check the configuration (the file, then the MCPAUTH_* variables) as the server does
    /// before it opens its database, and print it with secrets redacted. Exits with 78 when
    /// it is not valid.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Show the audit trail, newest first: sign-ins, consent, and the administrator's
    /// actions, with the caller's address.
    Audit {
        /// Only this user's (an email address or a subject identifier).
        #[arg(long)]
        user: Option<String>,
        /// Only this client's.
        #[arg(long)]
        client: Option<String>,
        /// Only from this address.
        #[arg(long)]
        address: Option<String>,
        /// Only this event (sign_in, account_locked, consent, consent_withdrawn,
        /// device_approval, user_added, user_disabled, user_enabled, password_changed,
        /// client_added, client_removed, key_rotated, key_removed).
        #[arg(long)]
        event: Option<String>,
        /// How many records at most (1 to 1000).
        #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
        /// Only records older than this number (the `#` column): the next page.
        #[arg(long)]
        before: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
enum KeyCommand {
    /// List signing keys: kid, algorithm, creation time, state (next, signing, retired).
    List,
    /// Add a new signing key. It is published in the JWKS at once (running instances reload
    /// keys every minute) and signs new tokens after `key_rotation_lead` seconds; the old key
    /// stays published, so tokens it signed keep verifying.
    Rotate {
        /// The new key's algorithm.
        #[arg(long, default_value = "ES256", value_parser = ["ES256", "EdDSA"])]
        algorithm: String,
    },
    /// Remove a retired key. Tokens it signed stop verifying: wait until they have expired
    /// (`access_token_ttl` after the key stopped signing).
    Remove {
        /// The key's id (`kid`). It may start with `-` (base64url).
        #[arg(allow_hyphen_values = true)]
        kid: String,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user. The password is read from standard input when it is not a terminal,
    /// otherwise prompted for twice. At least 8 characters, not a common password, not the
    /// email address.
    Add {
        /// The user's email address (case and surrounding spaces do not matter).
        email: String,
        /// An administrator: may use the admin console (`/admin` below the issuer) and its
        /// JSON API.
        #[arg(long)]
        admin: bool,
    },
    /// List users: email, subject identifier, state, administrator or not, creation date.
    List,
    /// Let a user use the admin console and its JSON API.
    GrantAdmin {
        /// The user's email address, subject (`user_…`) or `provider:upstream-id`.
        email: String,
    },
    /// Take a user's use of the admin console away.
    RevokeAdmin {
        /// The user's email address, subject (`user_…`) or `provider:upstream-id`.
        email: String,
    },
    /// End the lock repeated wrong passwords put on an account (for every address).
    Unlock {
        /// The user's email address, subject (`user_…`) or `provider:upstream-id`.
        email: String,
    },
    /// Disable a user: it can no longer sign in, its sessions end, its grants are revoked.
    Disable {
        /// The user's email address, or its subject (`user_…`); federated users without an
        /// email of their own are also named `provider:upstream-id`.
        email: String,
    },
    /// Remove a user: signed out, grants revoked, remembered consent and upstream links
    /// deleted, then the account (the audit trail keeps its subject). A federated user who
    /// signs in upstream again gets a new account: to keep someone out, use `disable`.
    Remove {
        /// The user's email address, subject (`user_…`) or `provider:upstream-id`.
        email: String,
    },
    /// Let a disabled user sign in again (revoked grants stay revoked).
    Enable {
        /// The user's email address, subject (`user_…`) or `provider:upstream-id`.
        email: String,
    },
    /// Set a new password (read like `add` does); signs the user out everywhere.
    Passwd {
        /// The user's email address.
        email: String,
    },
}

#[derive(Subcommand, Debug)]
enum ConfigCommand {
    /// Validate the configuration and print the effective one (secrets shown as `[redacted]`).
    Check,
}

#[derive(Subcommand, Debug)]
enum GrantCommand {
    /// List grants, newest first: id, user, client, resources and scope, when given, when
    /// last refreshed.
    List {
        /// Only this user's (an email address or a subject identifier).
        #[arg(long)]
        user: Option<String>,
        /// Only this client's.
        #[arg(long, allow_hyphen_values = true)]
        client: Option<String>,
        /// Revoked grants too.
        #[arg(long)]
        all: bool,
        /// At most this many (1 to 1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
    /// Revoke a grant: its refresh tokens stop working at once, and resource servers hear of
    /// it.
    Revoke {
        /// The grant's id, as `grant list` shows it.
        #[arg(allow_hyphen_values = true)]
        grant_id: String,
    },
}

#[derive(Subcommand, Debug)]
enum ClientCommand {
    /// Register a client. A confidential client's secret is printed once: store it now.
    Add {
        /// The name shown on the consent page.
        #[arg(long)]
        name: String,
        /// A redirect URI (repeat for several). With one, the client uses the authorization
        /// code grant.
        #[arg(long = "redirect-uri")]
        redirect_uris: Vec<String>,
        /// A public client (no secret; PKCE only), such as a desktop or browser app.
        #[arg(long)]
        public: bool,
        /// The client sends its secret in the request body (`client_secret_post`, RFC 6749
        /// §2.3.1), as the MCP TypeScript SDK's cross-app access does at its identity
        /// provider; by default it uses HTTP Basic (`client_secret_basic`).
        #[arg(long, conflicts_with = "public")]
        client_secret_post: bool,
        /// A grant type (repeat for several); by default `authorization_code` and
        /// `refresh_token` with redirect URIs, `client_credentials` without.
        #[arg(long = "grant-type")]
        grant_types: Vec<String>,
        /// The most this client may ask for (space-separated scopes).
        #[arg(long)]
        scope: Option<String>,
        /// A resource server (an MCP server checking opaque tokens): it may introspect
        /// tokens. Other clients may not.
        #[arg(long)]
        resource_server: bool,
    },
    /// List clients: id, name, kind, grant types.
    List,
    /// Remove a client and revoke every grant it holds.
    Remove {
        /// The client id. It may start with `-` (generated ids are base64url).
        #[arg(allow_hyphen_values = true)]
        client_id: String,
    },
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| said(&e))?;
        let second = rpassword::prompt_password("Repeat password: ").map_err(|e| said(&e))?;
        if first != second {
            return Err("the passwords do not match".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| said(&e))?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(term) => term,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
    tracing::info!("shutting down");
}

/// The exit status of a configuration that is not valid (`EX_CONFIG`, sysexits.h): a service
/// manager or a deployment script can tell it from a failure at run time (1).
const EXIT_CONFIG: u8 = 78;

/// Why a command failed, and the exit status that says so.
struct Failure {
    message: String,
    status: u8,
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Self { message, status: 1 }
    }
}

impl Failure {
    fn start(e: &mcpauth_server::StartError) -> Self {
        Self {
            message: said(e),
            status: if e.is_configuration() { EXIT_CONFIG } else { 1 },
        }
    }
}

async fn run(cli: Cli, mut config: Config) -> Result<(), Failure> {
    let command = cli.command.unwrap_or(Command::Serve);
    let json = cli.json;
    if let Command::Completions { shell } = command {
        use clap::CommandFactory as _;
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "mcpauth-server",
            &mut std::io::stdout(),
        );
        return Ok(());
    }
    if cli.no_migrate {
        config.migrate = false;
    }
    if let Command::Config {
        command: ConfigCommand::Check,
    } = command
    {
        return match mcpauth_server::check_config(&config) {
            Ok(()) => {
                println!("{:#?}", config.redacted());
                eprintln!(
                    "the configuration is valid (stored keys and upstream providers are checked at start)"
                );
                Ok(())
            }
            Err(e) => Err(Failure {
                message: said(&e),
                status: EXIT_CONFIG,
            }),
        };
    }
    if let Command::Restore { file } = &command {
        return Ok(restore_command(&config, file).await?);
    }
    if !matches!(command, Command::Serve)
        && !cli.create
        && let Some(path) = config.sqlite_file()
        && !path.exists()
    {
        return Err(Failure::from(format!(
            "no database at {}: the server creates it when it first starts. If your server \
             keeps its data elsewhere, pass its --config (or MCPAUTH_DATABASE_URL); to start \
             a new database here, add --create",
            path.display()
        )));
    }
    match command {
        Command::Serve => mcpauth_server::serve(config, shutdown_signal())
            .await
            .map_err(|e| Failure::start(&e)),
        // Answered above.
        Command::Config { .. } | Command::Restore { .. } | Command::Completions { .. } => Ok(()),
        Command::Migrate => Ok(migrate_command(&config).await?),
        Command::Backup { file } => Ok(backup_command(&config, &file).await?),
        Command::User { command } => Ok(user_command(&config, command, json).await?),
        Command::Client { command } => Ok(client_command(&config, command, json).await?),
        Command::Key { command } => Ok(key_command(&config, command, json).await?),
        Command::Grant { command } => Ok(grant_command(&config, command, json).await?),
        Command::Audit {
            user,
            client,
            address,
            event,
            limit,
            before,
        } => {
            let mut filter = mcpauth_store_sql::AuditFilter::default();
            filter.client_id = client;
            filter.address = address;
            filter.event = event;
            filter.before = before;
            Ok(audit_command(&config, user, filter, limit, json).await?)
        }
    }
}

async fn audit_command(
    config: &Config,
    user: Option<String>,
    mut filter: mcpauth_store_sql::AuditFilter,
    limit: u32,
    json: bool,
) -> Result<(), String> {
    let store = open_store(config).await?;
    let done = async {
        filter.user_id = match user {
            // An email (or an upstream identity), else a subject identifier as given.
            Some(user) => match mcpauth_server::admin::user_by_email(&store, &user).await {
                Ok(found) => Some(found.user_id),
                Err(e) if user.contains('@') => return Err(said(&e)),
                Err(_) => Some(user),
            },
            None => None,
        };
        // As recorded: an IPv4 address mapped into IPv6 is the IPv4 one.
        if let Some(address) = &mut filter.address
            && let Ok(parsed) = address.parse::<std::net::IpAddr>()
        {
            *address = parsed.to_canonical().to_string();
        }
        let entries = store
            .audit_events(&filter, limit)
            .await
            .map_err(|e| said(&e))?;
        if json {
            let list: Vec<serde_json::Value> = entries
                .iter()
                .map(|entry| {
                    let r = &entry.record;
                    serde_json::json!({
                        "id": entry.audit_id,
                        "time": r.occurred_at,
                        "event": r.event,
                        "outcome": r.outcome.as_str(),
                        "user": r.user_id,
                        "client": r.client_id,
                        "address": r.address,
                        "actor": r.actor,
                        "detail": r.detail,
                        "repeated": r.repeated,
                    })
                })
                .collect();
            return print_json(&serde_json::Value::Array(list));
        }
        println!(
            "{:<6} {:<19} {:<18} {:<7} {:<30} {:<24} {:<15} detail",
            "#", "time (UTC)", "event", "outcome", "user", "client", "address"
        );
        for entry in &entries {
            let r = &entry.record;
            // Stored text holds no control characters; escaped all the same.
            let dash = |v: &Option<String>| {
                v.as_deref()
                    .map_or_else(|| "-".to_owned(), |v| v.escape_debug().to_string())
            };
            println!(
                "{:<6} {:<19} {:<18} {:<7} {:<30} {:<24} {:<15} {}",
                entry.audit_id,
                format_time(r.occurred_at),
                r.event,
                r.outcome.as_str(),
                dash(&r.user_id),
                dash(&r.client_id),
                // An address, an actor (`admin` on the command line), or both (the console).
                dash(&match (&r.address, &r.actor) {
                    (Some(address), Some(actor)) => Some(format!("{address} by {actor}")),
                    (address, actor) => address.clone().or_else(|| actor.clone()),
                }),
                match (r.detail.as_deref(), r.repeated) {
                    (detail, 1) => dash(&detail.map(str::to_owned)),
                    // Identical records of one second, stored once.
                    (Some(detail), n) => format!("{} (×{n})", detail.escape_debug()),
                    (None, n) => format!("×{n}"),
                }
            );
        }
        Ok(())
    }
    .await;
    store.close().await;
    done
}

async fn open_store(config: &Config) -> Result<mcpauth_store_sql::SqlStore, String> {
    mcpauth_server::open_store(config)
        .await
        .map_err(|e| said(&e))
}

async fn user_command(config: &Config, command: UserCommand, json: bool) -> Result<(), String> {
    use mcpauth_server::admin;
    let store = open_store(config).await?;
    // Inside a block, so an early error still closes the store.
    let done = async {
        match command {
            UserCommand::Add { email, admin } => {
                let password = read_password()?;
                let user_id = mcpauth_server::add_user(&store, &email, &password)
                    .await
                    .map_err(|e| said(&e))?;
                if admin {
                    admin::set_admin(&store, &user_id, true)
                        .await
                        .map_err(|e| said(&e))?;
                }
                let email = mcpauth_server::users::normalize_email(&email).unwrap_or(email);
                if json {
                    return print_json(&serde_json::json!({
                        "user_id": user_id,
                        "email": email,
                        "admin": admin,
                    }));
                }
                println!(
                    "added {email} as {user_id}{}",
                    if admin { ", an administrator" } else { "" }
                );
                Ok(())
            }
            UserCommand::List => {
                let users = admin::list_users(&store).await.map_err(|e| said(&e))?;
                if json {
                    return print_json(&serde_json::Value::Array(
                        users
                            .iter()
                            .map(|user| {
                                serde_json::json!({
                                    "user_id": user.user_id,
                                    "email": user.email,
                                    "disabled": user.disabled,
                                    "admin": user.admin,
                                    "created_at": user.created_at,
                                })
                            })
                            .collect(),
                    ));
                }
                println!(
                    "{:<40} {:<30} {:<9} {:<6} created",
                    "email", "subject", "state", "admin"
                );
                for user in users {
                    let state = if user.disabled { "disabled" } else { "active" };
                    println!(
                        "{:<40} {:<30} {state:<9} {:<6} {}",
                        user.email,
                        user.user_id,
                        if user.admin { "yes" } else { "-" },
                        format_date(user.created_at)
                    );
                }
                Ok(())
            }
            UserCommand::GrantAdmin { email } => admin::set_admin(&store, &email, true)
                .await
                .map(|()| println!("{email} is an administrator"))
                .map_err(|e| said(&e)),
            UserCommand::RevokeAdmin { email } => admin::set_admin(&store, &email, false)
                .await
                .map(|()| println!("{email} is no longer an administrator"))
                .map_err(|e| said(&e)),
            UserCommand::Remove { email } => admin::remove_user(&store, &email)
                .await
                .map(|()| println!("removed {email}: signed out, grants revoked, account deleted"))
                .map_err(|e| said(&e)),
            UserCommand::Unlock { email } => admin::reset_lockout(&store, &email)
                .await
                .map(|()| println!("unlocked {email}"))
                .map_err(|e| said(&e)),
            UserCommand::Disable { email } => admin::disable_user(&store, &email)
                .await
                .map(|()| println!("disabled {email}: signed out, grants revoked"))
                .map_err(|e| said(&e)),
            UserCommand::Enable { email } => admin::enable_user(&store, &email)
                .await
                .map(|()| println!("enabled {email}"))
                .map_err(|e| said(&e)),
            UserCommand::Passwd { email } => {
                let password = read_password()?;
                admin::change_password(&store, &email, &password)
                    .await
                    .map(|()| println!("changed the password of {email}; its sessions ended"))
                    .map_err(|e| said(&e))
            }
        }
    }
    .await;
    store.close().await;
    done
}

/// The server as the operator's commands need it: its store, engine and keys, without
/// contacting upstream identity providers.
async fn admin_server(config: &Config) -> Result<mcpauth_server::Server, String> {
    mcpauth_server::build_with(
        config,
        mcpauth_server::BuildOptions::default().for_commands(),
    )
    .await
    .map_err(|e| said(&e))
}

async fn backup_command(config: &Config, file: &std::path::Path) -> Result<(), String> {
    // Created first, empty and readable by its owner only: the copy holds password hashes and
    // the sealed signing keys (`VACUUM INTO` fills an empty file).
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(file).map_err(|e| {
        format!(
            "backup: {}: {e} (backups never overwrite a file)",
            file.display()
        )
    })?;
    match mcpauth_store_sql::backup_sqlite(&config.database_url, file).await {
        Ok(()) => {
            println!("wrote a backup of the database to {}", file.display());
            Ok(())
        }
        Err(e) => {
            let _ = std::fs::remove_file(file);
            Err(format!("backup: {}", said(&e)))
        }
    }
}

async fn migrate_command(config: &Config) -> Result<(), String> {
    let mut migrating = config.clone();
    migrating.migrate = true;
    let store = open_store(&migrating).await?;
    let versions = store.schema_versions().await.map_err(|e| said(&e));
    store.close().await;
    let versions = versions?;
    println!(
        "the database has all {} migrations of this version (the latest: {})",
        versions.len(),
        versions.last().copied().unwrap_or_default()
    );
    Ok(())
}

async fn restore_command(config: &Config, file: &std::path::Path) -> Result<(), String> {
    let Some(target) = config.sqlite_file() else {
        return Err(
            "restore is for SQLite databases (database_url = sqlite://PATH): restore \
             PostgreSQL with pg_restore (docs/deployment.md)"
                .into(),
        );
    };
    // The database, and any file SQLite would read as part of it (a write-ahead log left
    // behind would be replayed onto the restored copy).
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = target.as_os_str().to_owned();
        name.push(suffix);
        let path = std::path::PathBuf::from(name);
        if path.symlink_metadata().is_ok() {
            return Err(format!(
                "{} exists: stop the server and move the database and its -wal and -shm \
                 files away first; restore never overwrites a database",
                path.display()
            ));
        }
    }
    let versions = mcpauth_store_sql::check_sqlite_backup(file)
        .await
        .map_err(|e| format!("{}: {}", file.display(), said(&e)))?;
    let known = mcpauth_store_sql::sqlite_migration_versions();
    if let Some(newer) = versions.iter().find(|v| !known.contains(v)) {
        return Err(format!(
            "{} was made by a newer mcpauth-server (migration {newer} is unknown to this \
             version): restore it with that version or newer",
            file.display()
        ));
    }
    copy_new(file, target)
        .map_err(|e| format!("restoring {} to {}: {e}", file.display(), target.display()))?;
    println!(
        "restored {} to {} ({} migrations; this version applies its own at start)",
        file.display(),
        target.display(),
        versions.len()
    );
    Ok(())
}

/// Copies `from` to `to`, which must not exist: into a new file beside it (readable by its
/// owner only, synced), then linked into place, which fails rather than replace anything
/// that appeared meanwhile. A copy cut short leaves no half database at `to`.
fn copy_new(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    use std::io::Write as _;
    let mut partial_name = to.as_os_str().to_owned();
    partial_name.push(format!(".restoring-{}", std::process::id()));
    let partial = std::path::PathBuf::from(partial_name);
    let copied = (|| {
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut out = options.open(&partial)?;
        std::io::copy(&mut std::fs::File::open(from)?, &mut out)?;
        out.flush()?;
        out.sync_all()?;
        std::fs::hard_link(&partial, to)
    })();
    let _ = std::fs::remove_file(&partial);
    copied?;
    if let Some(dir) = to.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

async fn grant_command(config: &Config, command: GrantCommand, json: bool) -> Result<(), String> {
    let store = open_store(config).await?;
    let done = async {
        match command {
            GrantCommand::List {
                user,
                client,
                all,
                limit,
            } => {
                let mut filter = mcpauth_store_sql::GrantFilter::default();
                filter.subject = match user {
                    Some(user) => Some(
                        mcpauth_server::admin::user_by_email(&store, &user)
                            .await
                            .map_err(|e| said(&e))?
                            .user_id,
                    ),
                    None => None,
                };
                filter.client_id = client;
                filter.include_revoked = all;
                let grants = mcpauth_server::admin::list_grants(&store, &filter, limit)
                    .await
                    .map_err(|e| said(&e))?;
                if json {
                    let list: Vec<_> = grants
                        .iter()
                        .map(|g| {
                            serde_json::json!({
                                "grant_id": g.grant_id,
                                "user_id": g.subject,
                                "client_id": g.client_id,
                                "scope": g.scope,
                                "resources": g.resources,
                                "created_at": g.created_at,
                                "revoked_at": g.revoked_at,
                                "last_refreshed_at": g.last_refreshed_at,
                            })
                        })
                        .collect();
                    return print_json(&serde_json::Value::Array(list));
                }
                println!(
                    "{:<24} {:<30} {:<24} {:<19} {:<19} resources / scope",
                    "grant", "user", "client", "given (UTC)", "last refresh (UTC)"
                );
                for g in &grants {
                    // Client ids of self-registered clients are the caller's words: escaped.
                    println!(
                        "{:<24} {:<30} {:<24} {:<19} {:<19} {} / {}{}",
                        g.grant_id.escape_debug(),
                        g.subject.escape_debug(),
                        g.client_id.escape_debug(),
                        format_time(g.created_at),
                        g.last_refreshed_at
                            .map_or_else(|| "-".to_owned(), format_time),
                        g.resources.join(" ").escape_debug(),
                        g.scope.escape_debug(),
                        g.revoked_at
                            .map(|at| format!(" (revoked {})", format_time(at)))
                            .unwrap_or_default(),
                    );
                }
                Ok(())
            }
            GrantCommand::Revoke { grant_id } => {
                if mcpauth_server::admin::revoke_grant(&store, &grant_id)
                    .await
                    .map_err(|e| said(&e))?
                {
                    println!("revoked grant {grant_id}");
                    Ok(())
                } else {
                    Err(format!(
                        "no live grant {grant_id} (see mcpauth-server grant list --all)"
                    ))
                }
            }
        }
    }
    .await;
    store.close().await;
    done
}

/// `value` as pretty JSON on standard output.
fn print_json(value: &serde_json::Value) -> Result<(), String> {
    println!(
        "{}",
        serde_json::to_string_pretty(value).map_err(|e| e.to_string())?
    );
    Ok(())
}

async fn client_command(config: &Config, command: ClientCommand, json: bool) -> Result<(), String> {
    use mcpauth_server::admin;
    match command {
        ClientCommand::Add {
            name,
            redirect_uris,
            public,
            client_secret_post,
            grant_types,
            scope,
            resource_server,
        } => {
            let server = admin_server(config).await?;
            let mut client = admin::NewClient::new(name);
            client.redirect_uris = redirect_uris;
            client.public = public;
            client.secret_in_body = client_secret_post;
            client.grant_types = grant_types;
            client.scope = scope;
            client.resource_server = resource_server;
            let registered = admin::add_client(&server.engine, client).await;
            server.store.close().await;
            let registered = registered.map_err(|e| said(&e))?;
            if json {
                // The secret is shown only now, as in the table.
                return print_json(&serde_json::json!({
                    "client_id": registered.client_id,
                    "client_secret": registered.client_secret,
                }));
            }
            println!("client_id:     {}", registered.client_id);
            if let Some(secret) = &registered.client_secret {
                println!("client_secret: {secret}");
                println!("(the secret is shown only now; mcpauth keeps only its hash)");
            }
            Ok(())
        }
        ClientCommand::List => {
            let store = open_store(config).await?;
            let clients = admin::list_clients(&store).await;
            store.close().await;
            let clients = clients.map_err(|e| said(&e))?;
            if json {
                return print_json(&serde_json::Value::Array(
                    clients
                        .iter()
                        .map(|client| {
                            serde_json::json!({
                                "client_id": client.client_id.as_str(),
                                "name": client.metadata.client_name,
                                "kind": admin::client_kind(client),
                                "grant_types": client.metadata.grant_types,
                            })
                        })
                        .collect(),
                ));
            }
            println!(
                "{:<36} {:<30} {:<16} grant types",
                "client_id", "name", "kind"
            );
            for client in clients {
                let kind = admin::client_kind(&client);
                println!(
                    "{:<36} {:<30} {kind:<16} {}",
                    client.client_id,
                    client.metadata.client_name.as_deref().unwrap_or("-"),
                    client.metadata.grant_types.join(" ")
                );
            }
            Ok(())
        }
        ClientCommand::Remove { client_id } => {
            let server = admin_server(config).await?;
            let removed = admin::remove_client(&server.engine, &client_id).await;
            server.store.close().await;
            if removed.map_err(|e| said(&e))? {
                println!(
                    "removed {client_id}; its grants are revoked (running servers refuse it within client_cache_ttl seconds)"
                );
                Ok(())
            } else {
                Err(format!("no client has the id `{client_id}`"))
            }
        }
    }
}

async fn key_command(config: &Config, command: KeyCommand, json: bool) -> Result<(), String> {
    use mcpauth_server::keys::KeyState;
    let server = admin_server(config).await?;
    let done = match command {
        KeyCommand::List if json => server.list_keys().await.map(|keys| {
            let list: Vec<_> = keys
                .into_iter()
                .map(|(row, state)| {
                    serde_json::json!({
                        "kid": row.kid,
                        "algorithm": row.algorithm,
                        "created_at": row.created_at,
                        "state": match state {
                            KeyState::Next => "next",
                            KeyState::Signing => "signing",
                            KeyState::Retired => "retired",
                        },
                    })
                })
                .collect();
            let _ = print_json(&serde_json::Value::Array(list));
        }),
        KeyCommand::Rotate { algorithm } if json => {
            server.rotate_key(&algorithm).await.map(|kid| {
                let _ = print_json(&serde_json::json!({
                    "kid": kid,
                    "algorithm": algorithm,
                    "signs_after_seconds": config.key_rotation_lead,
                }));
            })
        }
        KeyCommand::List => server.list_keys().await.map(|keys| {
            println!("{:<45} {:<9} {:<20} state", "kid", "algorithm", "created");
            for (row, state) in keys {
                let state = match state {
                    KeyState::Next => "next (published, signs after the lead)",
                    KeyState::Signing => "signing",
                    KeyState::Retired => "retired (published, verifying)",
                };
                println!(
                    "{:<45} {:<9} {:<20} {state}",
                    row.kid,
                    row.algorithm,
                    format_time(row.created_at)
                );
            }
        }),
        KeyCommand::Rotate { algorithm } => server.rotate_key(&algorithm).await.map(|kid| {
            println!("added {algorithm} key {kid}");
            println!(
                "it is published now and signs new tokens in {} seconds; running instances pick it up within a minute",
                config.key_rotation_lead
            );
        }),
        KeyCommand::Remove { kid } => server
            .remove_key(&kid)
            .await
            .map(|()| println!("removed key {kid}")),
    };
    server.store.close().await;
    done.map_err(|e| said(&e))
}

/// `YYYY-MM-DD HH:MM:SS` (UTC) of a Unix time.
fn format_time(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(
            || unix.to_string(),
            |t| {
                format!(
                    "{} {:02}:{:02}:{:02}",
                    t.date(),
                    t.hour(),
                    t.minute(),
                    t.second()
                )
            },
        )
}

/// `YYYY-MM-DD` (UTC) of a Unix time.
fn format_date(unix: u64) -> String {
    i64::try_from(unix)
        .ok()
        .and_then(|t| time::OffsetDateTime::from_unix_timestamp(t).ok())
        .map_or_else(|| unix.to_string(), |t| t.date().to_string())
}

/// Logs to standard error, as text or JSON lines; `MCPAUTH_LOG` filters (default `info`).
/// Nothing secret is logged: tokens, codes, secrets and passwords never reach a log call.
/// When to colour what is written for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Color {
    /// On a terminal, unless `NO_COLOR` is set (to anything but the empty string).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour standard error.
    fn on_stderr(self) -> bool {
        self.applies(
            std::io::stderr().is_terminal(),
            std::env::var_os("NO_COLOR").as_deref(),
        )
    }

    /// Whether to colour a stream that is (`terminal`) a terminal, `NO_COLOR` being
    /// `no_color` (no-color.org: set to anything but the empty string, it turns automatic
    /// colours off).
    fn applies(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

fn init_logging(format: mcpauth_server::LogFormat, color: Color) {
    let builder = tracing_subscriber::fmt()
        .with_ansi(color.on_stderr())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr);
    match format {
        mcpauth_server::LogFormat::Json => builder.json().flatten_event(true).init(),
        _ => builder.init(),
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(cli.config.as_deref(), |name| std::env::var(name).ok()) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(EXIT_CONFIG);
        }
    };
    init_logging(config.log_format, cli.color);
    let names: Vec<String> = std::env::vars_os()
        .filter_map(|(name, _)| name.into_string().ok())
        .collect();
    for name in config.unread_variables(names.iter().map(String::as_str)) {
        tracing::warn!(
            variable = %name,
            "{name} is set but mcpauth-server reads no such variable (a misspelling?); docs/configuration.md lists them"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            eprintln!("error: {}", failure.message);
            ExitCode::from(failure.status)
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn automatic_colours_follow_the_terminal_and_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        assert!(Color::Auto.applies(true, None));
        assert!(Color::Auto.applies(true, Some(std::ffi::OsStr::new(""))));
        assert!(!Color::Auto.applies(true, set));
        assert!(!Color::Auto.applies(false, None));
        assert!(Color::Always.applies(false, set));
        assert!(!Color::Never.applies(true, None));
    }

    // Generated client ids and key ids are base64url, so one in 32 starts with `-`: the
    // commands that take them must not read it as an option.
    #[test]
    fn ids_starting_with_a_hyphen_are_accepted() {
        let cli = Cli::try_parse_from([
            "mcpauth-server",
            "client",
            "remove",
            "-acOz4IQb4pIS05sEyWQA",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Client { command: ClientCommand::Remove { client_id } })
                if client_id == "-acOz4IQb4pIS05sEyWQA"
        ));
        let cli = Cli::try_parse_from(["mcpauth-server", "key", "remove", "-kid"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Key { command: KeyCommand::Remove { kid } }) if kid == "-kid"
        ));
    }
}
