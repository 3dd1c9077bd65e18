//! Production mode: what it refuses (an http issuer, the default database, missing or weak
//! secrets), each problem named with its fix.

use std::path::Path;

use crate::Config;

/// Shortest bearer secret production mode accepts.
const MIN_SECRET_LENGTH: usize = 32;

/// The file of a `sqlite:` URL (`None` for other databases and in-memory SQLite).
pub(super) fn sqlite_path(url: &str) -> Option<&Path> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| Path::new(path))
}

/// A 32-byte key with fewer than 12 distinct byte values is not random (a random one has
/// about 31): `AAAA…`, a repeated word, a counting sequence's first bytes.
fn looks_like_a_placeholder(base64_key: &str) -> bool {
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let Some(bytes) = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(base64_key.trim()).ok())
    else {
        // Not base64 at all: the key loader refuses it with its own message.
        return false;
    };
    let mut seen = [false; 256];
    for b in &bytes {
        if let Some(slot) = seen.get_mut(usize::from(*b)) {
            *slot = true;
        }
    }
    seen.iter().filter(|s| **s).count() < 12
}

impl Config {
    /// What production mode refuses in this configuration, each with how to fix it; empty
    /// when it may start. `database_exists` tells whether a SQLite database file is present.
    #[must_use]
    pub fn production_problems(&self, database_exists: impl Fn(&Path) -> bool) -> Vec<String> {
        let mut problems = Vec::new();
        match &self.issuer {
            None => problems.push(
                "issuer is not set: set it to the public https URL clients reach this server at"
                    .to_owned(),
            ),
            Some(issuer) if !issuer.starts_with("https://") => problems.push(format!(
                "issuer `{issuer}` is not https: tokens, codes and passwords would cross the network in clear"
            )),
            Some(_) => {}
        }
        if self.database_url == Config::default().database_url {
            problems.push(
                "database_url is the default `sqlite://mcpauth.db`, relative to the working directory: \
                 set an absolute sqlite path or a postgres URL"
                    .to_owned(),
            );
        } else if let Some(path) = sqlite_path(&self.database_url) {
            if !path.is_absolute() {
                problems.push(format!(
                    "database_url `{}` is relative to the working directory: use an absolute path",
                    self.database_url
                ));
            } else if !database_exists(path) {
                problems.push(format!(
                    "the database {} does not exist: production mode does not create an empty one \
                     (a typo would lose every user and key). Create it with \
                     `mcpauth-server --create user add <email>`, or start once without production mode",
                    path.display()
                ));
            }
        }
        match &self.signing_key_encryption_key {
            None => problems.push(
                "signing_key_encryption_key is not set: signing keys would sit in the database \
                 in plain text; generate one with `openssl rand -base64 32`"
                    .to_owned(),
            ),
            Some(key) if looks_like_a_placeholder(key.expose()) => problems.push(
                "signing_key_encryption_key looks like a placeholder (too few distinct bytes): \
                 generate one with `openssl rand -base64 32`"
                    .to_owned(),
            ),
            Some(_) => {}
        }
        // On an address of its own, private to the host or its network, /metrics may be
        // open; anywhere else it needs its token.
        let private_listener = self
            .metrics_listen
            .is_some_and(|address| match address.ip() {
                std::net::IpAddr::V4(ip) => ip.is_loopback() || ip.is_private(),
                std::net::IpAddr::V6(ip) => ip.is_loopback() || ip.is_unique_local(),
            });
        if self.metrics && self.metrics_token.is_none() && !private_listener {
            problems.push(
                "metrics is on without metrics_token: /metrics would tell anyone who can reach \
                 it how the server is used; set metrics_token (`openssl rand -base64 32`), serve \
                 it on a loopback or private address of its own (metrics_listen), or metrics = false"
                    .to_owned(),
            );
        }
        for (name, secret) in [
            ("registration_token", &self.registration_token),
            ("metrics_token", &self.metrics_token),
        ] {
            if let Some(secret) = secret
                && secret.expose().len() < MIN_SECRET_LENGTH
            {
                problems.push(format!(
                    "{name} is shorter than {MIN_SECRET_LENGTH} characters: use a random value, \
                     for example `openssl rand -base64 32`"
                ));
            }
        }
        problems
    }
}
