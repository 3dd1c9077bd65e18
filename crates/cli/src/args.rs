//! The command line: the commands and their options (clap).

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Connect to OAuth-protected MCP servers and keep their tokens safe.
#[derive(Parser, Debug)]
#[command(name = "mcpauth", version, about, long_about = None)]
pub(crate) struct Cli {
    /// Where tokens are kept: `keychain` (an encrypted file whose key is in the OS
    /// keychain; a passphrase where there is none), `file` (encrypted with a passphrase), or
    /// `memory` (nothing is kept after this command).
    #[arg(long, value_enum, default_value_t = StoreKind::Keychain, env = "MCPAUTH_STORE", global = true)]
    pub(crate) store: StoreKind,
    /// The store's directory (default: the platform's data directory, `mcpauth`).
    #[arg(long, env = "MCPAUTH_STORE_DIR", global = true)]
    pub(crate) store_dir: Option<PathBuf>,
    /// Print JSON instead of text.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// Colours: `auto` (on a terminal, unless NO_COLOR is set), `always` or `never`.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub(crate) color: Color,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// When to colour what is printed for people.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Color {
    /// On a terminal, unless `NO_COLOR` is set (to anything but the empty string).
    Auto,
    /// Always.
    Always,
    /// Never.
    Never,
}

impl Color {
    /// Whether to colour a stream that is (`terminal`) a terminal.
    pub(crate) fn applies(self, terminal: bool) -> bool {
        self.applies_with(terminal, std::env::var_os("NO_COLOR").as_deref())
    }

    /// [`applies`](Self::applies), with the value of `NO_COLOR` given (no-color.org: set to
    /// anything but the empty string, it turns automatic colours off).
    pub(crate) fn applies_with(self, terminal: bool, no_color: Option<&std::ffi::OsStr>) -> bool {
        match self {
            Self::Always => true,
            Self::Never => false,
            Self::Auto => terminal && no_color.is_none_or(|v| v.is_empty()),
        }
    }
}

/// Where tokens are kept.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum StoreKind {
    /// An encrypted file whose key is in the OS keychain.
    Keychain,
    /// An encrypted file whose key comes from a passphrase.
    File,
    /// Memory: nothing is kept.
    Memory,
}

#[derive(Subcommand, Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "parsed once per process: the size of a command line does not matter"
)]
pub(crate) enum Command {
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
        /// A client id registered beforehand at the authorization server (it may begin with
        /// `-`: random ids in base64url do).
        #[arg(long, allow_hyphen_values = true)]
        client_id: Option<String>,
        /// Its secret, if it has one (better from the environment). Kept encrypted in the
        /// token store for later commands.
        #[arg(
            long,
            env = "MCPAUTH_CLIENT_SECRET",
            hide_env_values = true,
            allow_hyphen_values = true
        )]
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
        /// Workload identity: tokens from this workload's own token with the JWT bearer grant
        /// (RFC 7523), no user, no browser. A file holding the token (read again at each
        /// authorization, as platforms rotate it; its audience must be the authorization
        /// server: in Kubernetes, a projected service-account token with that audience), or
        /// `github-actions` (the job's OIDC token, with the authorization server as its
        /// audience).
        #[arg(long, value_name = "SOURCE", conflicts_with_all = ["client_credentials", "device"])]
        workload_token: Option<String>,
        /// Enterprise-managed authorization: sign in once at your organization's identity
        /// provider (its issuer URL), which then vouches for you to the MCP server's
        /// authorization server with an identity assertion (ID-JAG): no sign-in or consent
        /// there. Needs --idp-client-id (this app's client at the provider, its secret in
        /// MCPAUTH_IDP_CLIENT_SECRET) and --client-id (its client at the MCP server's
        /// authorization server, its secret in MCPAUTH_CLIENT_SECRET).
        #[arg(
            long,
            value_name = "ISSUER",
            requires_all = ["idp_client_id", "client_id"],
            conflicts_with_all = ["client_credentials", "device", "workload_token"]
        )]
        idp: Option<String>,
        /// This app's client id at the identity provider (--idp).
        #[arg(long, value_name = "ID", requires = "idp")]
        idp_client_id: Option<String>,
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

#[cfg(test)]
mod tests {
    use clap::Parser as _;

    use super::*;

    #[test]
    fn automatic_colours_follow_the_terminal_and_no_color() {
        let set = Some(std::ffi::OsStr::new("1"));
        let empty = Some(std::ffi::OsStr::new(""));
        assert!(Color::Auto.applies_with(true, None));
        assert!(Color::Auto.applies_with(true, empty));
        assert!(!Color::Auto.applies_with(true, set));
        assert!(!Color::Auto.applies_with(false, None));
        assert!(Color::Always.applies_with(false, set));
        assert!(!Color::Never.applies_with(true, None));
    }

    // Server-made client ids and secrets are random base64url, so about one in 32 begins
    // with `-`; it is a value, not a flag.
    #[test]
    fn a_client_id_or_secret_beginning_with_a_hyphen_is_a_value() {
        let parsed = Cli::try_parse_from([
            "mcpauth",
            "auth",
            "bot",
            "https://mcp.example/mcp",
            "--client-id",
            "-Eabc",
            "--client-secret",
            "-secret",
            "--client-credentials",
        ]);
        let Ok(Cli {
            command:
                Command::Auth {
                    client_id,
                    client_secret,
                    ..
                },
            ..
        }) = parsed
        else {
            panic!("{parsed:?}");
        };
        assert_eq!(client_id.as_deref(), Some("-Eabc"));
        assert_eq!(client_secret.as_deref(), Some("-secret"));
    }
}
