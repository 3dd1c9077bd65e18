//! `[[trusted_issuers]]`: issuers whose JWTs the token endpoint accepts with the JWT bearer
//! grant (RFC 7523 §2.1): enterprise identity providers' ID-JAGs, and workload tokens.

use serde::Deserialize;

/// What an issuer's JWTs stand for.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TrustedIssuerKind {
    /// An enterprise identity provider's identity assertions (ID-JAG) for its users:
    /// enterprise-managed authorization.
    IdentityProvider,
    /// Workloads' own tokens (Kubernetes service accounts, CI jobs, SPIFFE): workload
    /// identity.
    Workloads,
}

/// Which workload acts as which client (`[[trusted_issuers.workloads]]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct WorkloadRuleConfig {
    /// The token's `sub`, exactly, or a prefix ending with `*`.
    pub subject: String,
    /// The client the workload's tokens are issued to.
    pub client_id: String,
    /// The most scope those tokens carry.
    #[serde(default)]
    pub scope: Vec<String>,
}

/// One trusted issuer.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct TrustedIssuerConfig {
    /// Its `iss`, compared exactly.
    pub issuer: String,
    /// Its JWK Set (https; fetched SSRF-safely, cached).
    pub jwks_uri: String,
    /// `identity_provider` or `workloads`.
    pub kind: TrustedIssuerKind,
    /// Identity providers: the clients (ids here) that may present its assertions.
    #[serde(default)]
    pub allowed_clients: Vec<String>,
    /// Workloads: the rules, first match wins.
    #[serde(default)]
    pub workloads: Vec<WorkloadRuleConfig>,
    /// The `aud` its JWTs must name (default: this server's issuer identifier).
    #[serde(default)]
    pub audience: Option<String>,
    /// The longest lifetime accepted, in seconds (default 600 for identity providers, 3700
    /// for workloads).
    #[serde(default)]
    pub max_lifetime: Option<u64>,
    /// Whether each JWT's `jti` is accepted once (default true; then a JWT without one is
    /// refused).
    #[serde(default)]
    pub single_use: Option<bool>,
}

impl TrustedIssuerConfig {
    /// The engine's issuer, or what is wrong with this entry.
    ///
    /// # Errors
    ///
    /// A sentence naming the entry and the fix.
    pub(crate) fn to_engine(&self) -> Result<mcpauth_token_engine::TrustedIssuer, String> {
        let named = |problem: &str| format!("trusted issuer {}: {problem}", self.issuer);
        match url::Url::parse(&self.jwks_uri) {
            Ok(url) if url.scheme() == "https" => {}
            Ok(_) => {
                return Err(named(
                    "jwks_uri must be an https URL: the keys that decide who gets tokens are not fetched in the clear",
                ));
            }
            Err(_) => return Err(named("jwks_uri is not a URL")),
        }
        let mut issuer = match self.kind {
            TrustedIssuerKind::IdentityProvider => {
                if self.allowed_clients.is_empty() {
                    return Err(named(
                        "an identity provider needs allowed_clients: the client ids here that may present its assertions",
                    ));
                }
                if !self.workloads.is_empty() {
                    return Err(named("workloads rules belong to kind = \"workloads\""));
                }
                mcpauth_token_engine::TrustedIssuer::identity_provider(
                    &self.issuer,
                    &self.jwks_uri,
                    self.allowed_clients.clone(),
                )
            }
            TrustedIssuerKind::Workloads => {
                if self.workloads.is_empty() {
                    return Err(named(
                        "workloads needs [[trusted_issuers.workloads]] rules: subject, client_id, scope",
                    ));
                }
                if !self.allowed_clients.is_empty() {
                    return Err(named(
                        "allowed_clients belongs to kind = \"identity_provider\"; a workload's client is its rule's client_id",
                    ));
                }
                if let Some(rule) = self
                    .workloads
                    .iter()
                    .find(|r| r.subject.is_empty() || r.subject == "*")
                {
                    return Err(named(&format!(
                        "the workload rule for client {} matches every subject: name the subject (a `*` may end a prefix)",
                        rule.client_id
                    )));
                }
                let rules = self
                    .workloads
                    .iter()
                    .map(|r| {
                        let scope: Vec<&str> = r.scope.iter().map(String::as_str).collect();
                        mcpauth_token_engine::WorkloadRule::new(&r.subject, &r.client_id, &scope)
                    })
                    .collect();
                mcpauth_token_engine::TrustedIssuer::workloads(&self.issuer, &self.jwks_uri, rules)
            }
        };
        if let Some(audience) = &self.audience {
            issuer = issuer.audience(audience);
        }
        if let Some(seconds) = self.max_lifetime {
            issuer = issuer.max_lifetime(seconds);
        }
        if let Some(single_use) = self.single_use {
            issuer = issuer.single_use(single_use);
        }
        Ok(issuer)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn entry(toml_text: &str) -> TrustedIssuerConfig {
        #[derive(Deserialize)]
        struct File {
            trusted_issuers: Vec<TrustedIssuerConfig>,
        }
        toml::from_str::<File>(toml_text)
            .unwrap()
            .trusted_issuers
            .remove(0)
    }

    #[test]
    fn each_kind_reads_its_own_fields_and_refuses_the_others() {
        let idp = entry(
            r#"
            [[trusted_issuers]]
            issuer = "https://idp.example.com"
            jwks_uri = "https://idp.example.com/jwks"
            kind = "identity_provider"
            allowed_clients = ["agent"]
            audience = "https://as.example.com/"
            max_lifetime = 120
            single_use = true
            "#,
        );
        let engine = idp.to_engine().unwrap();
        assert_eq!(engine.audience.as_deref(), Some("https://as.example.com/"));
        assert_eq!(engine.max_lifetime, 120);
        assert!(engine.single_use);

        let workloads = entry(
            r#"
            [[trusted_issuers]]
            issuer = "https://token.actions.githubusercontent.com"
            jwks_uri = "https://token.actions.githubusercontent.com/.well-known/jwks"
            kind = "workloads"
            single_use = false
            [[trusted_issuers.workloads]]
            subject = "repo:acme/deploy:ref:refs/heads/main"
            client_id = "deployer"
            scope = ["mcp:tools"]
            "#,
        );
        let engine = workloads.to_engine().unwrap();
        assert!(!engine.single_use);
        assert_eq!(engine.max_lifetime, 3700);

        let mut no_clients = idp.clone();
        no_clients.allowed_clients.clear();
        assert!(
            no_clients
                .to_engine()
                .unwrap_err()
                .contains("allowed_clients")
        );
        let mut no_rules = workloads.clone();
        no_rules.workloads.clear();
        assert!(no_rules.to_engine().unwrap_err().contains("rules"));
        let mut mixed = workloads.clone();
        mixed.allowed_clients = vec!["agent".into()];
        assert!(mixed.to_engine().is_err());
        let mut everyone = workloads.clone();
        everyone.workloads[0].subject = "*".into();
        assert!(everyone.to_engine().unwrap_err().contains("every subject"));
        let mut bad_uri = idp;
        bad_uri.jwks_uri = "not a url".into();
        assert!(bad_uri.to_engine().is_err());
        bad_uri.jwks_uri = "http://idp.example.com/jwks".into();
        assert!(bad_uri.to_engine().unwrap_err().contains("https"));
    }
}
