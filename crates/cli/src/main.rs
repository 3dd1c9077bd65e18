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

mod args;
mod browsers;
mod client;
mod commands;
mod conformance;
mod output;
mod probe;
mod registry;
mod stores;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{CommandFactory as _, Parser};
use mcpauth_client::TokenSet;

use crate::args::{Cli, Command, StoreKind};
use crate::browsers::FollowRedirects;
use crate::commands::run;
use crate::output::Output;

pub(crate) fn expires_text(tokens: &TokenSet, now: u64) -> String {
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

pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output {
        json: cli.json,
        color: cli.color.applies(std::io::stdout().is_terminal()),
        color_errors: cli.color.applies(std::io::stderr().is_terminal()),
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
