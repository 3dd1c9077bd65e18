//! The two hashes DPoP binds with: the key's JWK thumbprint (RFC 7638, SHA-256), which a bound
//! token carries as `cnf.jkt` (RFC 9449 §6), and the access token's hash, which a proof sent
//! with it carries as `ath` (§4.2).
//!
//! The thumbprint is computed here, not by `jsonwebtoken`, whose version inserts members into
//! the hashed JSON unescaped: two different member sets could then hash alike.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest as _, Sha256};

/// The RFC 7638 SHA-256 thumbprint of a public JWK (a JSON object), base64url without padding:
/// the `jkt` a token is bound to. `None` unless it is an `EC`, `OKP` or `RSA` key whose required
/// members are all base64url strings.
#[must_use]
pub fn jwk_thumbprint(jwk: &serde_json::Value) -> Option<String> {
    let member = |name: &str| {
        jwk.get(name)
            .and_then(serde_json::Value::as_str)
            .filter(|value| URL_SAFE_NO_PAD.decode(value).is_ok())
    };
    let text = |name: &str| jwk.get(name).and_then(serde_json::Value::as_str);
    // The required members only, in lexicographic order, no whitespace (RFC 7638 §3.2, §3.3).
    // Base64url strings need no escaping; `crv` and `kty` are checked against known names.
    let canonical = match text("kty")? {
        "EC" => {
            let crv = text("crv").filter(|c| matches!(*c, "P-256" | "P-384" | "P-521"))?;
            format!(
                r#"{{"crv":"{crv}","kty":"EC","x":"{}","y":"{}"}}"#,
                member("x")?,
                member("y")?
            )
        }
        "OKP" => {
            let crv = text("crv").filter(|c| matches!(*c, "Ed25519" | "Ed448"))?;
            format!(r#"{{"crv":"{crv}","kty":"OKP","x":"{}"}}"#, member("x")?)
        }
        "RSA" => format!(
            r#"{{"e":"{}","kty":"RSA","n":"{}"}}"#,
            member("e")?,
            member("n")?
        ),
        _ => return None,
    };
    Some(URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes())))
}

/// `ath`: base64url (no padding) of the SHA-256 of the access token's ASCII characters.
#[must_use]
pub fn access_token_hash(access_token: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(access_token.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7638 §3.1's example key and thumbprint.
    #[test]
    fn the_thumbprint_is_rfc_7638s() {
        let jwk = serde_json::json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB",
            "alg": "RS256",
            "kid": "2011-04-29"
        });
        assert_eq!(
            jwk_thumbprint(&jwk).as_deref(),
            Some("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
        );
    }

    #[test]
    fn members_that_are_not_base64url_have_no_thumbprint() {
        // Were they inserted as they are, these two would hash alike.
        let a = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "A\",\"y\":\"B", "y": "C"});
        let b = serde_json::json!({"kty": "EC", "crv": "P-256", "x": "A", "y": "B\",\"y\":\"C"});
        assert_eq!(jwk_thumbprint(&a), None);
        assert_eq!(jwk_thumbprint(&b), None);
        for jwk in [
            serde_json::json!({"kty": "oct", "k": "c2VjcmV0"}),
            serde_json::json!({"kty": "EC", "crv": "P-256\"", "x": "AA", "y": "AA"}),
            serde_json::json!({"kty": "RSA", "n": 7, "e": "AQAB"}),
            serde_json::json!("not an object"),
        ] {
            assert_eq!(jwk_thumbprint(&jwk), None, "{jwk}");
        }
    }

    /// RFC 9449 §7.1's example: the token `Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU` has the
    /// `ath` `fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo`.
    #[test]
    fn the_access_token_hash_is_rfc_9449s() {
        assert_eq!(
            access_token_hash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"),
            "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo"
        );
    }
}
