//! The `mcpauth-server` command.

use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mcpauth_server::Config;

/// An OAuth 2.1 authorization server for MCP.
#[derive(Parser, Debug)]
#[command(name = "mcpauth-server", version, about)]
struct Cli {
    /// TOML configuration file (MCPAUTH_* environment variables override it).
    #[arg(long, env = "MCPAUTH_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
}

#[derive(Subcommand, Debug)]
enum UserCommand {
    /// Add a user. The password is read from standard input when it is not a terminal,
    /// otherwise prompted for twice.
    Add {
        /// The user's email address.
        email: String,
    },
}

fn read_password() -> Result<String, String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ").map_err(|e| e.to_string())?;
        let second = rpassword::prompt_password("Repeat password: ").map_err(|e| e.to_string())?;
        if first != second {
            return Err("the passwords do not match".into());
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| e.to_string())?;
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

async fn run(cli: Cli) -> Result<(), String> {
    let config = Config::load(cli.config.as_deref(), |name| std::env::var(name).ok())
        .map_err(|e| e.to_string())?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => mcpauth_server::serve(config, shutdown_signal())
            .await
            .map_err(|e| e.to_string()),
        Command::User {
            command: UserCommand::Add { email },
        } => {
            let password = read_password()?;
            let store = mcpauth_server::open_store(&config)
                .await
                .map_err(|e| e.to_string())?;
            let user_id = mcpauth_server::add_user(&store, &email, &password)
                .await
                .map_err(|e| e.to_string())?;
            let email = mcpauth_server::users::normalize_email(&email).unwrap_or(email);
            println!("added {email} as {user_id}");
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MCPAUTH_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
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
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
