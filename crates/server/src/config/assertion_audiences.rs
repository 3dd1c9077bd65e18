//! `[[identity_assertion_audiences]]`: this server as an enterprise identity provider, issuing
//! ID-JAGs (draft-ietf-oauth-identity-assertion-authz-grant §4.3) by token exchange to other
//! authorization servers.

use serde::Deserialize;

/// A client here that may obtain ID-JAGs for an audience
/// (`[[identity_assertion_audiences.clients]]`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AudienceClientConfig {
    /// The client here (it authenticates for the exchange).
    pub client_id: String,
    /// Its client id at the audience: the ID-JAG's `client_id`.
    pub client_id_there: String,
}

/// An authorization server this server issues ID-JAGs for.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AssertionAudienceConfig {
    /// Its issuer identifier: the `audience` clients name and the ID-JAG's `aud`.
    pub issuer: String,
    /// The resources there an ID-JAG may name.
    pub resources: Vec<String>,
    /// The scope there an ID-JAG may carry.
    #[serde(default)]
    pub scope: Vec<String>,
    /// The clients here that may ask, with their ids there.
    pub clients: Vec<AudienceClientConfig>,
    /// How long an ID-JAG lives, in seconds (default 300).
    #[serde(default)]
    pub lifetime: Option<u64>,
}

/// The longest lifetime accepted for an ID-JAG: it is a grant, used at once.
const MAX_LIFETIME: u64 = 600;

impl AssertionAudienceConfig {
    /// The engine's audience, or what is wrong with this entry.
    ///
    /// # Errors
    ///
    /// A sentence naming the entry and the fix.
    pub(crate) fn to_engine(&self) -> Result<mcpauth_token_engine::AssertionAudience, String> {
        let named =
            |problem: &str| format!("identity assertion audience {}: {problem}", self.issuer);
        if url::Url::parse(&self.issuer).is_err() {
            return Err(named(
                "issuer is not a URL (the authorization server's issuer identifier)",
            ));
        }
        if self.resources.is_empty() {
            return Err(named(
                "resources is empty: name the resources there an ID-JAG may be for",
            ));
        }
        if let Some(resource) = self.resources.iter().find(|r| url::Url::parse(r).is_err()) {
            return Err(named(&format!("resource {resource} is not a URL")));
        }
        if self.clients.is_empty() {
            return Err(named(
                "clients is empty: list [[identity_assertion_audiences.clients]] with client_id (here) and client_id_there",
            ));
        }
        let lifetime = self.lifetime.unwrap_or(300);
        if !(1..=MAX_LIFETIME).contains(&lifetime) {
            return Err(named(&format!(
                "lifetime must be 1 to {MAX_LIFETIME} seconds: an ID-JAG is used at once"
            )));
        }
        let mut audience = mcpauth_token_engine::AssertionAudience::new(
            &self.issuer,
            self.resources.clone(),
            self.scope.clone(),
        )
        .lifetime(lifetime);
        for client in &self.clients {
            audience = audience.client(&client.client_id, &client.client_id_there);
        }
        Ok(audience)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    #[test]
    fn an_audience_needs_resources_and_clients_and_a_short_lifetime() {
        #[derive(Deserialize)]
        struct File {
            identity_assertion_audiences: Vec<AssertionAudienceConfig>,
        }
        let entry = toml::from_str::<File>(
            r#"
            [[identity_assertion_audiences]]
            issuer = "https://auth.mcp.example.com"
            resources = ["https://mcp.example.com/mcp"]
            scope = ["mcp:tools"]
            lifetime = 120
            [[identity_assertion_audiences.clients]]
            client_id = "agent-7"
            client_id_there = "3f9c2b7e1d"
            "#,
        )
        .unwrap()
        .identity_assertion_audiences
        .remove(0);
        let engine = entry.to_engine().unwrap();
        assert_eq!(engine.lifetime, 120);
        assert_eq!(engine.clients[0].client_id_there, "3f9c2b7e1d");
        let mut default_lifetime = entry.clone();
        default_lifetime.lifetime = None;
        assert_eq!(default_lifetime.to_engine().unwrap().lifetime, 300);
        for (change, expected) in [
            (
                Box::new(|e: &mut AssertionAudienceConfig| e.resources.clear())
                    as Box<dyn Fn(&mut AssertionAudienceConfig)>,
                "resources",
            ),
            (Box::new(|e| e.clients.clear()), "clients"),
            (Box::new(|e| e.lifetime = Some(3600)), "lifetime"),
            (Box::new(|e| e.lifetime = Some(0)), "lifetime"),
            (Box::new(|e| e.issuer = "not a url".into()), "issuer"),
            (Box::new(|e| e.resources = vec!["nope".into()]), "resource"),
        ] {
            let mut wrong = entry.clone();
            change(&mut wrong);
            let error = wrong.to_engine().unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
