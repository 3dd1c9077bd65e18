//! RFC 7591 §2: client metadata in a dynamic registration request.
//!
//! This module reads the JSON document; the policy (which redirect URIs, which methods) is
//! the engine's. Unknown members are ignored, as RFC 7591 §2 requires.

use serde::{Deserialize, Serialize};

use crate::form::ParseError;

/// Largest registration request body accepted, in bytes.
pub const MAX_REGISTRATION_BYTES: usize = 16 * 1024;

/// Client metadata (RFC 7591 §2). Every member is optional on the wire.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// Redirection URIs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub redirect_uris: Vec<String>,
    /// `none`, `client_secret_basic`, `client_secret_post`, `private_key_jwt`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_endpoint_auth_method: Option<String>,
    /// Grant types the client will use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub grant_types: Vec<String>,
    /// Response types the client will use.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub response_types: Vec<String>,
    /// Human-readable name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_name: Option<String>,
    /// Home page of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_uri: Option<String>,
    /// Logo of the client.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo_uri: Option<String>,
    /// Space-separated scopes the client may request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    /// Contacts for the client.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub contacts: Vec<String>,
    /// Terms of service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tos_uri: Option<String>,
    /// Privacy policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy_uri: Option<String>,
    /// Identifier of the client software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_id: Option<String>,
    /// Version of the client software.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_version: Option<String>,
    /// The client's public keys, inline (RFC 7591 §2; for `private_key_jwt`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks: Option<serde_json::Value>,
    /// URL of the client's public keys (RFC 7591 §2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwks_uri: Option<String>,
    /// A signed JWT asserting metadata about the client software (RFC 7591 §2.3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub software_statement: Option<String>,
    /// Whether the client always uses DPoP (RFC 9449 §5.2): the server refuses its token
    /// requests without a proof.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub dpop_bound_access_tokens: bool,
    /// Members this type does not name. Validation keeps only the RFC 7591 §2.2 language
    /// variants of human-readable members (`client_name#fr`, `logo_uri#ja-Jpan-JP`, ...).
    #[serde(flatten)]
    pub localized: std::collections::BTreeMap<String, serde_json::Value>,
}

impl ClientMetadata {
    /// Parses a registration request body.
    ///
    /// # Errors
    ///
    /// [`ParseError::TooLarge`] or [`ParseError::Json`] (an RFC 7591 `invalid_client_metadata`).
    pub fn from_json(body: &[u8]) -> Result<Self, ParseError> {
        if body.len() > MAX_REGISTRATION_BYTES {
            return Err(ParseError::TooLarge {
                limit: MAX_REGISTRATION_BYTES,
            });
        }
        if json_depth_exceeds(body, MAX_REGISTRATION_DEPTH) {
            return Err(ParseError::Json(format!(
                "the document nests objects and arrays deeper than {MAX_REGISTRATION_DEPTH} levels"
            )));
        }
        let value: serde_json::Value = serde_json::from_slice(body)
            .map_err(|_| ParseError::Json("not a JSON document".into()))?;
        if !value.is_object() {
            return Err(ParseError::Json(
                "expected a JSON object of client metadata".into(),
            ));
        }
        serde_json::from_value(value).map_err(|e| ParseError::Json(classify(&e)))
    }
}

/// Deepest nesting of objects and arrays a registration may have: client metadata is flat
/// but for `jwks` (a set of keys, each an object: four levels).
const MAX_REGISTRATION_DEPTH: usize = 8;

/// Whether `body` nests `{`/`[` deeper than `limit`, counting outside strings only. A cheap
/// scan before parsing, so a deeply nested document costs nothing to refuse.
fn json_depth_exceeds(body: &[u8], limit: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in body {
        if in_string {
            match (escaped, byte) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > limit {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

/// serde's messages can quote input; keep only the shape of the problem.
fn classify(error: &serde_json::Error) -> String {
    let text = error.to_string();
    let field = text
        .split('`')
        .nth(1)
        .filter(|f| f.len() <= 40 && f.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match field {
        Some(field) if text.starts_with("missing") || text.starts_with("unknown") => {
            format!("member `{field}` is not valid")
        }
        _ => {
            "a member has the wrong JSON type (strings, or arrays of strings, are expected)".into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    // RFC 7591 §3.1 example request.
    #[test]
    fn parses_the_rfc_7591_example() -> Result<(), ParseError> {
        let body = br#"{
          "redirect_uris": ["https://client.example.org/callback", "https://client.example.org/callback2"],
          "client_name": "My Example Client",
          "token_endpoint_auth_method": "client_secret_basic",
          "logo_uri": "https://client.example.org/logo.png",
          "jwks_uri": "https://client.example.org/my_public_keys.jwks",
          "example_extension_parameter": "example_value"
        }"#;
        let metadata = ClientMetadata::from_json(body)?;
        assert_eq!(metadata.redirect_uris.len(), 2);
        assert_eq!(metadata.client_name.as_deref(), Some("My Example Client"));
        Ok(())
    }

    #[test]
    fn rejects_documents_that_are_not_objects() {
        assert!(ClientMetadata::from_json(b"[]").is_err());
        assert!(ClientMetadata::from_json(b"{\"redirect_uris\": \"https://a\"}").is_err());
        assert!(ClientMetadata::from_json(b"not json").is_err());
    }

    proptest! {
        #[test]
        fn registration_parser_never_panics(input in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = ClientMetadata::from_json(&input);
        }
    }
}
