#![doc = include_str!("../README.md")]

mod auth_method;
mod redirect_uri;
mod software_statement;

use std::collections::BTreeMap;

use mcpauth_oauth_types::{ClientMetadata, GrantType, OAuthError, RegistrationErrorCode, Scope};
use serde_json::Value;

pub use auth_method::TokenEndpointAuthMethod;
pub use redirect_uri::{redirect_uri_matches, validate_redirect_uri};
pub use software_statement::{
    TrustedStatementIssuer, apply_software_statement, verify_software_statement,
};

/// An error of the registration endpoint (RFC 7591 §3.2.2).
pub type RegistrationError = OAuthError<RegistrationErrorCode>;

/// What the server accepts at registration.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RegistrationRules {
    /// Registrations without `token_endpoint_auth_method` become public clients (see
    /// `docs/compatibility.md`); off, they get RFC 7591's `client_secret_basic`.
    pub public_clients_by_default: bool,
    /// Whether `http://localhost` redirect URIs may be registered (RFC 8252 §8.3).
    pub allow_localhost_redirect_uris: bool,
    /// Scopes the server knows; empty accepts any syntactically valid scope.
    pub scopes_supported: Vec<String>,
}

impl Default for RegistrationRules {
    fn default() -> Self {
        Self {
            public_clients_by_default: true,
            allow_localhost_redirect_uris: true,
            scopes_supported: Vec::new(),
        }
    }
}

fn metadata_error(description: impl Into<std::borrow::Cow<'static, str>>) -> RegistrationError {
    OAuthError::new(RegistrationErrorCode::InvalidClientMetadata, description)
}

/// Checks an informational URL member (`client_uri`, `logo_uri`, ...).
fn check_web_url(name: &str, value: Option<&str>) -> Result<(), RegistrationError> {
    match value {
        Some(v)
            if !url::Url::parse(v)
                .is_ok_and(|u| matches!(u.scheme(), "https" | "http") && u.host().is_some()) =>
        {
            Err(metadata_error(format!(
                "{name} must be an absolute http(s) URL"
            )))
        }
        _ => Ok(()),
    }
}

const SUPPORTED_GRANTS: [&str; 6] = [
    GrantType::AuthorizationCode.as_str(),
    GrantType::RefreshToken.as_str(),
    GrantType::ClientCredentials.as_str(),
    GrantType::DeviceCode.as_str(),
    GrantType::TokenExchange.as_str(),
    GrantType::JwtBearer.as_str(),
];

/// Human-readable members that may come in language variants (RFC 7591 §2.2).
const LOCALIZABLE: &[&str] = &[
    "client_name",
    "client_uri",
    "logo_uri",
    "tos_uri",
    "policy_uri",
];

/// RFC 7591 §2.2: keeps `member#language-tag` variants of human-readable members (checked like
/// the member itself) and drops every other unknown member.
fn localized_variants(
    extra: BTreeMap<String, Value>,
) -> Result<BTreeMap<String, Value>, RegistrationError> {
    let mut kept = BTreeMap::new();
    for (key, value) in extra {
        let Some((member, tag)) = key.split_once('#') else {
            continue;
        };
        if !LOCALIZABLE.contains(&member) {
            continue;
        }
        if tag.is_empty()
            || tag.len() > 35
            || !tag.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        {
            return Err(metadata_error(format!(
                "`{}` is not a valid language tag",
                tag.chars().take(40).collect::<String>()
            )));
        }
        let Some(text) = value.as_str() else {
            return Err(metadata_error(format!("{member} variants must be strings")));
        };
        if member == "client_name" {
            if text.chars().count() > 200 {
                return Err(metadata_error("client_name is longer than 200 characters"));
            }
        } else {
            check_web_url(member, Some(text))?;
        }
        if kept.len() == 32 {
            return Err(metadata_error("too many language variants"));
        }
        kept.insert(key, value);
    }
    Ok(kept)
}

/// RFC 7591 §2: validates metadata and fills in the server's defaults (RFC 7591 §3.2.1 lets
/// the server "replace any of the client's requested metadata values"). Returns the
/// authentication method and the metadata as it will be registered.
///
/// # Errors
///
/// `invalid_redirect_uri` or `invalid_client_metadata` saying what is wrong.
pub fn validate_client_metadata(
    mut metadata: ClientMetadata,
    rules: &RegistrationRules,
) -> Result<(TokenEndpointAuthMethod, ClientMetadata), RegistrationError> {
    // The MCP specification has clients omit this and expect a public client; RFC 7591's
    // default (client_secret_basic) would hand every such client a secret it never sends.
    let method = match metadata.token_endpoint_auth_method.as_deref() {
            None if rules.public_clients_by_default => TokenEndpointAuthMethod::None,
            None => TokenEndpointAuthMethod::ClientSecretBasic,
            Some(m) => TokenEndpointAuthMethod::from_wire(m).ok_or_else(|| {
                metadata_error("token_endpoint_auth_method must be none, client_secret_basic, client_secret_post or private_key_jwt")
            })?,
        };
    metadata.token_endpoint_auth_method = Some(method.as_str().to_owned());

    if metadata.grant_types.is_empty() {
        metadata.grant_types = vec!["authorization_code".into(), "refresh_token".into()];
    }
    if let Some(unsupported) = metadata
        .grant_types
        .iter()
        .find(|g| !SUPPORTED_GRANTS.contains(&g.as_str()))
    {
        return Err(metadata_error(format!(
            "grant type `{}` is not supported here (supported: {})",
            unsupported.chars().take(64).collect::<String>(),
            SUPPORTED_GRANTS.join(", ")
        )));
    }
    let has = |grant: &str| metadata.grant_types.iter().any(|g| g == grant);
    let redirect_based = has("authorization_code");
    // RFC 7591 §2.1: `code` goes with authorization_code and nothing else does.
    if metadata.response_types.is_empty() && redirect_based {
        metadata.response_types = vec!["code".into()];
    }
    if metadata.response_types.iter().any(|r| r != "code") {
        return Err(metadata_error("only the response type `code` is supported"));
    }
    if redirect_based == metadata.response_types.is_empty() {
        return Err(metadata_error(
            "response type `code` and the authorization_code grant type go together",
        ));
    }
    if has("refresh_token") && !redirect_based && !has(GrantType::DeviceCode.as_str()) {
        return Err(metadata_error(
            "refresh_token needs a grant that issues refresh tokens (authorization_code or device_code)",
        ));
    }
    // RFC 6749 §4.4: "The client credentials grant type MUST only be used by confidential
    // clients."
    if (has("client_credentials") || has(GrantType::TokenExchange.as_str()))
        && method == TokenEndpointAuthMethod::None
    {
        return Err(metadata_error(
            "client_credentials and token exchange need a confidential client: set token_endpoint_auth_method to client_secret_basic, client_secret_post or private_key_jwt",
        ));
    }
    if redirect_based && metadata.redirect_uris.is_empty() {
        return Err(OAuthError::new(
            RegistrationErrorCode::InvalidRedirectUri,
            "redirect_uris is required for the authorization_code grant",
        ));
    }
    if metadata.redirect_uris.len() > 16 {
        return Err(OAuthError::new(
            RegistrationErrorCode::InvalidRedirectUri,
            "at most 16 redirect_uris may be registered",
        ));
    }
    for uri in &metadata.redirect_uris {
        validate_redirect_uri(uri)
            .map_err(|reason| OAuthError::new(RegistrationErrorCode::InvalidRedirectUri, reason))?;
        if !rules.allow_localhost_redirect_uris
            && url::Url::parse(uri)
                .is_ok_and(|u| u.scheme() == "http" && u.host_str() == Some("localhost"))
        {
            return Err(OAuthError::new(
                RegistrationErrorCode::InvalidRedirectUri,
                "use http://127.0.0.1 or http://[::1] instead of localhost (RFC 8252 §8.3)",
            ));
        }
    }
    if let Some(scope) = metadata.scope.as_deref() {
        let scope = Scope::parse(scope).map_err(|e| metadata_error(format!("scope: {e}")))?;
        let supported = &rules.scopes_supported;
        if !supported.is_empty() && !scope.iter().all(|s| supported.iter().any(|x| x == s)) {
            return Err(metadata_error(
                "scope includes a scope this server does not support",
            ));
        }
    }
    // RFC 7591 §2: "The jwks_uri and jwks parameters MUST NOT both be present".
    if metadata.jwks.is_some() && metadata.jwks_uri.is_some() {
        return Err(metadata_error("jwks and jwks_uri must not both be present"));
    }
    if metadata.jwks_uri.is_some() {
        return Err(metadata_error(
            "jwks_uri is not supported by this server: register the public keys inline with jwks",
        ));
    }
    if let Some(jwks) = &metadata.jwks {
        let usable = serde_json::from_value::<jsonwebtoken::jwk::JwkSet>(jwks.clone())
            .map(|set| {
                set.keys
                    .iter()
                    .filter(|k| jsonwebtoken::DecodingKey::from_jwk(k).is_ok())
                    .count()
            })
            .unwrap_or(0);
        if usable == 0 {
            return Err(metadata_error(
                "jwks must be a JWK Set with at least one public key",
            ));
        }
        if serde_json::to_vec(jwks).map_or(0, |v| v.len()) > 8 * 1024 {
            return Err(metadata_error("jwks is larger than 8 KiB"));
        }
    }
    if method == TokenEndpointAuthMethod::PrivateKeyJwt && metadata.jwks.is_none() {
        return Err(metadata_error(
            "private_key_jwt needs the client's public keys in jwks",
        ));
    }
    check_web_url("client_uri", metadata.client_uri.as_deref())?;
    check_web_url("logo_uri", metadata.logo_uri.as_deref())?;
    check_web_url("tos_uri", metadata.tos_uri.as_deref())?;
    check_web_url("policy_uri", metadata.policy_uri.as_deref())?;
    for (name, value) in [
        ("client_name", &metadata.client_name),
        ("software_id", &metadata.software_id),
        ("software_version", &metadata.software_version),
    ] {
        if value.as_ref().is_some_and(|v| v.chars().count() > 200) {
            return Err(metadata_error(format!(
                "{name} is longer than 200 characters"
            )));
        }
    }

    metadata.localized = localized_variants(std::mem::take(&mut metadata.localized))?;
    Ok((method, metadata))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn parse(json: &str) -> ClientMetadata {
        ClientMetadata::from_json(json.as_bytes()).unwrap_or_default()
    }

    // RFC 7591 §2.2: human-readable members may carry language tags; other unknown members
    // are ignored (§2: "the authorization server MUST ignore any client metadata ... that it
    // does not understand").
    #[test]
    fn keeps_language_variants_and_drops_other_unknown_members() {
        let metadata = parse(
            r#"{"redirect_uris":["https://a.example/cb"],"client_name":"Example","client_name#fr":"Exemple","logo_uri#ja-Jpan-JP":"https://a.example/logo-ja.png","vendor_extension":{"x":1}}"#,
        );
        let (_, registered) = validate_client_metadata(metadata, &RegistrationRules::default())
            .map_err(|e| e.to_string())
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(registered.localized.len(), 2);
        assert_eq!(
            registered
                .localized
                .get("client_name#fr")
                .and_then(Value::as_str),
            Some("Exemple")
        );
        let json = serde_json::to_value(&registered).unwrap_or_default();
        assert_eq!(
            json["client_name#fr"], "Exemple",
            "variants are echoed in the registration response"
        );
        assert!(json.get("vendor_extension").is_none());
    }

    #[test]
    fn refuses_bad_language_variants() {
        for bad in [
            r#"{"redirect_uris":["https://a.example/cb"],"client_name#":"x"}"#,
            r#"{"redirect_uris":["https://a.example/cb"],"client_name#fr":5}"#,
            r#"{"redirect_uris":["https://a.example/cb"],"logo_uri#fr":"javascript:alert(1)"}"#,
            r#"{"redirect_uris":["https://a.example/cb"],"client_name#f r":"x"}"#,
        ] {
            let result = validate_client_metadata(parse(bad), &RegistrationRules::default());
            assert_eq!(
                result.map(|_| ()).map_err(|e| e.code()),
                Err(RegistrationErrorCode::InvalidClientMetadata),
                "{bad}"
            );
        }
    }

    proptest! {
        #[test]
        fn validation_never_panics(json in "\\PC{0,300}") {
            if let Ok(metadata) = ClientMetadata::from_json(json.as_bytes()) {
                let _ = validate_client_metadata(metadata, &RegistrationRules::default());
            }
        }

        #[test]
        fn accepted_redirect_uris_have_no_fragment_or_userinfo(uri in "(https?|com\\.example\\.app|javascript)://?[a-z0-9.@:\\[\\]#/*?\\\\]{0,30}") {
            let metadata = parse(&serde_json::json!({ "redirect_uris": [uri.clone()], "token_endpoint_auth_method": "none" }).to_string());
            if validate_client_metadata(metadata, &RegistrationRules::default()).is_ok() {
                prop_assert!(!uri.contains('#') && !uri.contains('*') && !uri.contains('\\'));
                let parsed = url::Url::parse(&uri);
                prop_assert!(parsed.is_ok_and(|u| u.username().is_empty() && u.password().is_none()));
                prop_assert!(!uri.starts_with("javascript"));
            }
        }
    }
}
