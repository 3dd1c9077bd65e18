//! RFC 7662 §2.2: reading an introspection response for a token presented to this resource,
//! with the same rules a JWT gets (RFC 9068 §4 by analogy, and MCP's audience requirement):
//! `active` must be `true`; `iss`, when given, must be the expected issuer; `aud` must contain
//! this resource; `exp`, `nbf`, `iat` are JSON numbers checked against the caller's `now`; a
//! `token_type` other than Bearer (a refresh token, say) is refused.

use mcpauth_oauth_types::{Scope, UnixTime};
use serde_json::Value;

use crate::verify::{SubjectType, VerifiedToken, VerifyError, number, string};

/// Clock skew tolerated on `exp`, `nbf` and `iat`, as for JWTs.
const LEEWAY: u64 = 60;

/// Checks an introspection response `body` for a token presented to `audience` (this
/// resource), issued by `issuer`.
///
/// # Errors
///
/// [`VerifyError::Inactive`] unless `active` is `true`; the other variants as for a JWT.
pub fn verify_introspection(
    body: &[u8],
    issuer: &str,
    audience: &str,
    now: UnixTime,
) -> Result<VerifiedToken, VerifyError> {
    let now = now.0;
    let claims: Value = serde_json::from_slice(body).map_err(|_| VerifyError::Malformed)?;
    if claims.get("active") != Some(&Value::Bool(true)) {
        return Err(VerifyError::Inactive);
    }
    if let Some(iss) = claims.get("iss")
        && iss.as_str() != Some(issuer)
    {
        return Err(VerifyError::WrongIssuer);
    }
    if let Some(token_type) = claims.get("token_type")
        && !token_type
            .as_str()
            .is_some_and(|t| t.eq_ignore_ascii_case("bearer") || t == "access_token")
    {
        return Err(VerifyError::WrongType);
    }
    let audiences: Vec<String> = match claims.get("aud") {
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(many)) => many
            .iter()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect(),
        // No audience: a token for anyone is not a token for us.
        _ => return Err(VerifyError::WrongAudience),
    };
    if !audiences.iter().any(|a| a == audience) {
        return Err(VerifyError::WrongAudience);
    }
    let exp = number(&claims, "exp")?.ok_or(VerifyError::Malformed)?;
    if exp.saturating_add(LEEWAY) <= now {
        return Err(VerifyError::Expired);
    }
    for name in ["nbf", "iat"] {
        if number(&claims, name)?.is_some_and(|t| t > now.saturating_add(LEEWAY)) {
            return Err(VerifyError::NotYetValid);
        }
    }
    let scope = match claims.get("scope") {
        None => Scope::default(),
        Some(Value::String(s)) if s.is_empty() => Scope::default(),
        Some(Value::String(s)) => Scope::parse(s).map_err(|_| VerifyError::Malformed)?,
        Some(_) => return Err(VerifyError::Malformed),
    };
    // RFC 9449 §6.2, RFC 8705 §3.2: a bound token's confirmation, which a bearer request
    // does not prove.
    if claims.get("cnf").is_some() {
        return Err(VerifyError::SenderConstrained);
    }
    let client_id = string(&claims, "client_id")?;
    Ok(VerifiedToken {
        // A machine client's token may have no `sub`: the client acts for itself.
        subject: string(&claims, "sub").unwrap_or_else(|_| client_id.clone()),
        client_id,
        scope,
        audience: audiences,
        expires_at: exp,
        jti: claims.get("jti").and_then(Value::as_str).map(str::to_owned),
        subject_type: SubjectType::from_claims(&claims),
        issued_at: claims.get("iat").and_then(Value::as_u64),
        key_id: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ISS: &str = "https://as.example";
    const AUD: &str = "https://rs.example/mcp";
    const NOW: u64 = 1_800_000_000;

    fn check(body: serde_json::Value) -> Result<VerifiedToken, VerifyError> {
        verify_introspection(body.to_string().as_bytes(), ISS, AUD, UnixTime(NOW))
    }

    fn active() -> serde_json::Value {
        serde_json::json!({
            "active": true, "iss": ISS, "aud": [AUD], "client_id": "c", "sub": "alice",
            "scope": "mcp read", "exp": NOW + 300, "iat": NOW, "token_type": "Bearer",
        })
    }

    #[test]
    fn an_active_token_for_this_resource_is_accepted() {
        let token = check(active()).unwrap();
        assert_eq!(token.subject, "alice");
        assert_eq!(token.client_id, "c");
        assert!(token.scope.contains("read"));
        assert_eq!(token.expires_at, NOW + 300);
    }

    #[test]
    fn a_token_bound_to_a_key_is_refused_as_a_bearer_token() {
        for cnf in [
            serde_json::json!({"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}),
            serde_json::json!({"x5t#S256": "bwcK0esc3ACC3DB2Y5_lESsXE8o9ltc05O89jdN-dg2"}),
        ] {
            let mut bound = active();
            bound["cnf"] = cnf;
            assert_eq!(check(bound), Err(VerifyError::SenderConstrained));
        }
        // A DPoP token type says the same.
        let mut dpop = active();
        dpop["token_type"] = "DPoP".into();
        assert!(check(dpop).is_err());
    }

    #[test]
    fn inactive_and_malformed_answers_are_refused() {
        assert_eq!(
            check(serde_json::json!({"active": false})),
            Err(VerifyError::Inactive)
        );
        assert_eq!(
            check(serde_json::json!({"active": "true"})),
            Err(VerifyError::Inactive)
        );
        assert_eq!(
            verify_introspection(b"not json", ISS, AUD, UnixTime(NOW)),
            Err(VerifyError::Malformed)
        );
    }

    #[test]
    fn another_issuer_audience_or_token_type_is_refused() {
        let mut other = active();
        other["iss"] = "https://evil.example".into();
        assert_eq!(check(other), Err(VerifyError::WrongIssuer));
        let mut other = active();
        other["aud"] = "https://other.example/mcp".into();
        assert_eq!(check(other), Err(VerifyError::WrongAudience));
        let mut other = active();
        other.as_object_mut().unwrap().remove("aud");
        assert_eq!(
            check(other),
            Err(VerifyError::WrongAudience),
            "no audience is not ours"
        );
        let mut other = active();
        other["token_type"] = "refresh_token".into();
        assert_eq!(check(other), Err(VerifyError::WrongType));
    }

    #[test]
    fn time_claims_are_numbers_checked_against_now() {
        let mut expired = active();
        expired["exp"] = (NOW - 61).into();
        assert_eq!(check(expired), Err(VerifyError::Expired));
        let mut early = active();
        early["nbf"] = (NOW + 61).into();
        assert_eq!(check(early), Err(VerifyError::NotYetValid));
        let mut text = active();
        text["exp"] = "1900000000".into();
        assert_eq!(check(text), Err(VerifyError::Malformed));
    }

    proptest! {
        #[test]
        fn never_panics_on_arbitrary_answers(body in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = verify_introspection(&body, ISS, AUD, UnixTime(NOW));
        }
    }
}
