//! RFC 9449 §4.3, check by check: proofs made with real keys (aws-lc-rs), each test named after
//! the requirement it holds the checker to.
#![allow(
    clippy::unwrap_used,
    clippy::indexing_slicing,
    reason = "tests: a failed unwrap is a failed test"
)]
// The tests make their keys (a client's, another authorization server's) from the OS.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    reason = "test keys"
)]

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _,
};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::EncodingKey;
use mcpauth_dpop::{
    Algorithm, NonceSource, ProofError, ProofPolicy, RequestContext, access_token_hash,
    jwk_thumbprint, verify_proof,
};
use serde_json::{Value, json};

const NOW: u64 = 1_800_000_000;
const TOKEN_URI: &str = "https://auth.example.com/token";

/// Signs a JWS signing input, returning the raw signature.
type Signer = Box<dyn Fn(&[u8]) -> Vec<u8>>;

struct Key {
    alg_name: &'static str,
    signer: Signer,
    jwk: Value,
}

/// Signs with `jsonwebtoken` (as a client library would), returning the raw signature.
fn jws_signer(encoding: EncodingKey, alg: Algorithm) -> Signer {
    Box::new(move |message| {
        let signature = jsonwebtoken::crypto::sign(message, &encoding, alg).unwrap();
        URL_SAFE_NO_PAD.decode(signature).unwrap()
    })
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn es256() -> Key {
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    // The uncompressed point: 0x04, x, y.
    let point = pair.public_key().as_ref().to_vec();
    Key {
        alg_name: "ES256",
        signer: jws_signer(EncodingKey::from_ec_der(pkcs8.as_ref()), Algorithm::ES256),
        jwk: json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..65])}),
    }
}

fn ed25519() -> Key {
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    Key {
        alg_name: "EdDSA",
        signer: jws_signer(EncodingKey::from_ed_der(pkcs8.as_ref()), Algorithm::EdDSA),
        jwk: json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())}),
    }
}

/// An RSA-2048 key signing with aws-lc-rs directly (`jsonwebtoken` takes RSA keys as PKCS#1,
/// aws-lc-rs writes PKCS#8).
fn rsa(alg_name: &'static str) -> Key {
    use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
    use aws_lc_rs::signature::{RSA_PKCS1_SHA256, RSA_PSS_SHA256, RsaEncoding};
    let pair = KeyPair::generate(KeySize::Rsa2048).unwrap();
    let public = PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let jwk = json!({"kty": "RSA", "n": b64(&public.n), "e": b64(&public.e)});
    let padding: &'static dyn RsaEncoding = match alg_name {
        "PS256" => &RSA_PSS_SHA256,
        _ => &RSA_PKCS1_SHA256,
    };
    Key {
        alg_name,
        signer: Box::new(move |message| {
            let mut signature = vec![0; pair.public_modulus_len()];
            pair.sign(padding, &SystemRandom::new(), message, &mut signature)
                .unwrap();
            signature
        }),
        jwk,
    }
}

fn claims() -> Value {
    json!({"jti": "e1j3V_bKic8-LAEB", "htm": "POST", "htu": TOKEN_URI, "iat": NOW})
}

/// A compact JWS over `header` and `claims`, signed by `key` whatever the header says.
fn sign(key: &Key, header: &Value, claims: &Value) -> String {
    let message = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = (key.signer)(message.as_bytes());
    format!("{message}.{}", b64(&signature))
}

fn header(key: &Key) -> Value {
    json!({"typ": "dpop+jwt", "alg": key.alg_name, "jwk": key.jwk})
}

fn proof(key: &Key) -> String {
    sign(key, &header(key), &claims())
}

fn check(
    proof: &str,
    request: &RequestContext<'_>,
) -> Result<mcpauth_dpop::VerifiedProof, ProofError> {
    verify_proof([proof.as_bytes()], request, &ProofPolicy::default(), NOW)
}

fn token_request() -> RequestContext<'static> {
    RequestContext::new("POST", TOKEN_URI)
}

#[test]
fn a_proof_signed_with_its_jwk_passes_and_names_the_keys_thumbprint() {
    for key in [es256(), ed25519(), rsa("PS256"), rsa("RS256")] {
        let verified = check(&proof(&key), &token_request()).unwrap();
        assert_eq!(
            verified.jkt,
            jwk_thumbprint(&key.jwk).unwrap(),
            "{}",
            key.alg_name
        );
        assert!(verified.is_bound_to(&verified.jkt));
        assert!(!verified.is_bound_to("another-thumbprint"));
        assert_eq!(verified.jti, "e1j3V_bKic8-LAEB");
        assert_eq!(verified.iat, NOW);
    }
}

#[test]
fn there_must_be_exactly_one_dpop_header() {
    let key = es256();
    let proof = proof(&key);
    let policy = ProofPolicy::default();
    assert_eq!(
        verify_proof(std::iter::empty(), &token_request(), &policy, NOW),
        Err(ProofError::Missing)
    );
    assert_eq!(
        verify_proof(
            [proof.as_bytes(), proof.as_bytes()],
            &token_request(),
            &policy,
            NOW
        ),
        Err(ProofError::Repeated)
    );
}

#[test]
fn the_proof_must_be_a_single_well_formed_jwt() {
    let key = es256();
    let proof = proof(&key);
    for bad in [
        String::new(),
        "not a jwt".to_owned(),
        format!("{proof}.extra"),
        proof.replacen('.', "", 1),
        format!("!!!.{}", proof.split_once('.').unwrap().1),
        "x".repeat(9000),
    ] {
        assert!(
            matches!(check(&bad, &token_request()), Err(ProofError::Malformed(_))),
            "{bad:.40}"
        );
    }
    // A header that is JSON but not an object.
    let array = format!("{}.e30.sig", b64(b"[1]"));
    assert!(matches!(
        check(&array, &token_request()),
        Err(ProofError::Malformed(_))
    ));
}

#[test]
fn typ_must_be_dpop_jwt() {
    let key = es256();
    for typ in [None, Some("JWT"), Some("at+jwt"), Some("dpop")] {
        let mut header = header(&key);
        match typ {
            Some(typ) => header["typ"] = json!(typ),
            None => {
                header.as_object_mut().unwrap().remove("typ");
            }
        }
        assert_eq!(
            check(&sign(&key, &header, &claims()), &token_request()),
            Err(ProofError::Type),
            "{typ:?}"
        );
    }
    // Media types compare without regard to case.
    let mut header = header(&key);
    header["typ"] = json!("DPoP+JWT");
    check(&sign(&key, &header, &claims()), &token_request()).unwrap();
}

#[test]
fn alg_must_be_an_accepted_asymmetric_algorithm_never_none() {
    let key = es256();
    for alg in ["none", "HS256", "ES384", "RS1", "", "es256"] {
        let mut header = header(&key);
        header["alg"] = json!(alg);
        let refused = check(&sign(&key, &header, &claims()), &token_request());
        assert!(
            matches!(refused, Err(ProofError::Algorithm(_))),
            "{alg}: {refused:?}"
        );
    }
    let mut header = header(&key);
    header.as_object_mut().unwrap().remove("alg");
    assert!(matches!(
        check(&sign(&key, &header, &claims()), &token_request()),
        Err(ProofError::Algorithm(_))
    ));
    // A policy names what it accepts; symmetric algorithms cannot be added to it.
    let only_es256 = ProofPolicy::default().algorithms([Algorithm::ES256, Algorithm::HS256]);
    assert_eq!(only_es256.algorithm_names(), ["ES256"]);
    let refused = verify_proof(
        [proof(&ed25519()).as_bytes()],
        &token_request(),
        &only_es256,
        NOW,
    );
    assert_eq!(refused, Err(ProofError::Algorithm("ES256".to_owned())));
    assert!(refused.unwrap_err().to_string().contains("ES256"));
}

#[test]
fn the_signature_must_verify_with_the_key_in_the_jwk_header() {
    let (signer, other) = (es256(), es256());
    // Signed by one key, naming another.
    let forged = sign(&signer, &header(&other), &claims());
    assert_eq!(check(&forged, &token_request()), Err(ProofError::Signature));
    // A claim changed after signing.
    let good = proof(&signer);
    let mut parts: Vec<String> = good.split('.').map(str::to_owned).collect();
    let mut changed = claims();
    changed["htu"] = json!("https://auth.example.com/token2");
    parts[1] = b64(changed.to_string().as_bytes());
    assert_eq!(
        check(&parts.join("."), &token_request()),
        Err(ProofError::Signature)
    );
}

#[test]
fn the_jwk_must_be_a_public_key_that_fits_the_alg() {
    let key = es256();
    // Private key material: any of the private members refuses the proof (RFC 9449 §4.3 (7)).
    for member in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let mut header = header(&key);
        header["jwk"][member] = json!("AAAA");
        assert_eq!(
            check(&sign(&key, &header, &claims()), &token_request()),
            Err(ProofError::Key("it holds private key material")),
            "{member}"
        );
    }
    let mut missing = header(&key);
    missing.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        check(&sign(&key, &missing, &claims()), &token_request()),
        Err(ProofError::Key("missing"))
    );
    // An EdDSA proof naming an EC key, an ES256 proof naming a P-384 one.
    let eddsa = ed25519();
    let mut mismatch = header(&eddsa);
    mismatch["jwk"] = key.jwk.clone();
    assert!(matches!(
        check(&sign(&eddsa, &mismatch, &claims()), &token_request()),
        Err(ProofError::Key(_))
    ));
    let mut curve = header(&key);
    curve["jwk"]["crv"] = json!("P-384");
    assert!(matches!(
        check(&sign(&key, &curve, &claims()), &token_request()),
        Err(ProofError::Key(_))
    ));
    // A symmetric "key".
    let mut oct = header(&key);
    oct["jwk"] = json!({"kty": "oct", "k": "c2VjcmV0"});
    assert!(matches!(
        check(&sign(&key, &oct, &claims()), &token_request()),
        Err(ProofError::Key(_))
    ));
}

#[test]
fn one_key_has_one_encoding_so_one_thumbprint() {
    // An EC point split differently between x and y makes the same 65-byte point.
    let key = es256();
    let x = URL_SAFE_NO_PAD
        .decode(key.jwk["x"].as_str().unwrap())
        .unwrap();
    let y = URL_SAFE_NO_PAD
        .decode(key.jwk["y"].as_str().unwrap())
        .unwrap();
    let mut split = header(&key);
    split["jwk"]["x"] = json!(b64(&x[..31]));
    split["jwk"]["y"] = json!(b64(&[&x[31..], &y[..]].concat()));
    assert_eq!(
        check(&sign(&key, &split, &claims()), &token_request()),
        Err(ProofError::Key("an EC coordinate of the wrong length"))
    );
    // An Ed25519 key wrapped in its DER SubjectPublicKeyInfo.
    let eddsa = ed25519();
    let raw = URL_SAFE_NO_PAD
        .decode(eddsa.jwk["x"].as_str().unwrap())
        .unwrap();
    let spki_prefix: &[u8] = &[
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    let mut wrapped = header(&eddsa);
    wrapped["jwk"]["x"] = json!(b64(&[spki_prefix, &raw].concat()));
    assert_eq!(
        check(&sign(&eddsa, &wrapped, &claims()), &token_request()),
        Err(ProofError::Key("an Ed25519 key that is not 32 bytes"))
    );
    // An RSA modulus with a leading zero byte.
    let rsa_key = rsa("RS256");
    let n = URL_SAFE_NO_PAD
        .decode(rsa_key.jwk["n"].as_str().unwrap())
        .unwrap();
    let mut padded = header(&rsa_key);
    padded["jwk"]["n"] = json!(b64(&[&[0u8][..], &n].concat()));
    assert!(matches!(
        check(&sign(&rsa_key, &padded, &claims()), &token_request()),
        Err(ProofError::Key(_))
    ));
}

#[test]
fn rsa_keys_are_2048_to_4096_bits_with_a_small_exponent() {
    let key = rsa("RS256");
    for (n, e) in [
        (vec![0xff; 513], "AQAB"),
        (vec![0x80; 256], "AQAAAAE"),
        (vec![0x80; 256], ""),
    ] {
        let mut header = header(&key);
        header["jwk"]["n"] = json!(b64(&n));
        header["jwk"]["e"] = json!(e);
        assert!(
            matches!(
                check(&sign(&key, &header, &claims()), &token_request()),
                Err(ProofError::Key(_))
            ),
            "{} bytes, e {e}",
            n.len()
        );
    }
}

#[test]
fn crit_and_unencoded_payloads_are_refused() {
    let key = es256();
    for (name, value) in [("crit", json!(["b64"])), ("b64", json!(false))] {
        let mut header = header(&key);
        header[name] = value;
        assert!(matches!(
            check(&sign(&key, &header, &claims()), &token_request()),
            Err(ProofError::Malformed(_))
        ));
    }
}

#[test]
fn a_header_with_a_repeated_member_is_refused() {
    // Read one way here and another by a different parser: refused, not guessed.
    let key = es256();
    let header = format!(
        r#"{{"typ":"dpop+jwt","alg":"ES256","alg":"ES256","jwk":{}}}"#,
        key.jwk
    );
    let message = format!(
        "{}.{}",
        b64(header.as_bytes()),
        b64(claims().to_string().as_bytes())
    );
    let proof = format!("{message}.{}", b64(&(key.signer)(message.as_bytes())));
    assert!(matches!(
        check(&proof, &token_request()),
        Err(ProofError::Malformed(_))
    ));
}

#[test]
fn a_header_value_is_text_around_which_whitespace_is_ignored() {
    let key = es256();
    check(&format!("  {} ", proof(&key)), &token_request()).unwrap();
    let not_text: &[u8] = &[0xff, 0xfe, b'.', b'a', b'.', b'b'];
    assert!(matches!(
        verify_proof([not_text], &token_request(), &ProofPolicy::default(), NOW),
        Err(ProofError::Malformed(_))
    ));
}

#[test]
fn the_signature_is_checked_before_the_nonce() {
    let (signer, other) = (es256(), es256());
    let forged = sign(&signer, &header(&other), &claims());
    assert_eq!(
        check(&forged, &token_request().nonce("required")),
        Err(ProofError::Signature)
    );
}

#[test]
fn an_rsa_key_shorter_than_2048_bits_is_refused() {
    let key = rsa("RS256");
    let mut header = header(&key);
    header["jwk"]["n"] = json!(b64(&[0xc5; 128]));
    assert_eq!(
        check(&sign(&key, &header, &claims()), &token_request()),
        Err(ProofError::Key(
            "an RSA modulus outside 2048 to 4096 bits, or with a leading zero"
        ))
    );
}

#[test]
fn every_required_claim_must_be_there_with_its_type() {
    let key = es256();
    for (claim, bad) in [
        ("jti", None),
        ("jti", Some(json!(7))),
        ("jti", Some(json!(""))),
        ("jti", Some(json!("j".repeat(257)))),
        ("htm", None),
        ("htu", None),
        ("htu", Some(json!(["https://auth.example.com/token"]))),
        ("iat", None),
        ("iat", Some(json!(NOW.to_string()))),
        ("iat", Some(json!(-1))),
        ("iat", Some(json!(-1.5))),
        ("iat", Some(json!(null))),
        ("nonce", Some(json!(1))),
        ("ath", Some(json!(false))),
    ] {
        let mut claims = claims();
        match bad {
            Some(value) => claims[claim] = value,
            None => {
                claims.as_object_mut().unwrap().remove(claim);
            }
        }
        let refused = check(&sign(&key, &header(&key), &claims), &token_request());
        assert_eq!(refused, Err(ProofError::Claim(claim)), "{claims}");
    }
}

#[test]
fn iat_may_be_a_fractional_numeric_date() {
    let key = es256();
    let mut claims = claims();
    claims["iat"] = json!(NOW as f64 + 0.25);
    let verified = check(&sign(&key, &header(&key), &claims), &token_request()).unwrap();
    assert_eq!(verified.iat, NOW);
}

#[test]
fn htm_must_be_the_requests_method() {
    let key = es256();
    assert_eq!(
        check(&proof(&key), &RequestContext::new("GET", TOKEN_URI)),
        Err(ProofError::Method)
    );
    let mut lower = claims();
    lower["htm"] = json!("post");
    assert_eq!(
        check(&sign(&key, &header(&key), &lower), &token_request()),
        Err(ProofError::Method)
    );
}

#[test]
fn htu_must_be_the_requests_uri_without_query_and_fragment() {
    let key = es256();
    let mut with_query = claims();
    with_query["htu"] = json!("https://AUTH.example.com:443/token?x=1#f");
    check(&sign(&key, &header(&key), &with_query), &token_request()).unwrap();
    for other in [
        "https://auth.example.com/register",
        "http://auth.example.com/token",
        "https://evil.example/token",
    ] {
        assert_eq!(
            check(&proof(&key), &RequestContext::new("POST", other)),
            Err(ProofError::Uri),
            "{other}"
        );
    }
}

#[test]
fn iat_must_be_within_the_accepted_window() {
    let key = es256();
    let at = |iat: u64| {
        let mut claims = claims();
        claims["iat"] = json!(iat);
        check(&sign(&key, &header(&key), &claims), &token_request())
    };
    at(NOW - 300).unwrap();
    at(NOW + 10).unwrap();
    assert_eq!(at(NOW - 301), Err(ProofError::Time));
    assert_eq!(at(NOW + 11), Err(ProofError::Time));
    // A stricter policy, and its replay window.
    let strict = ProofPolicy::default().max_age(30).max_future(0);
    assert_eq!(strict.replay_window(), 30);
    assert_eq!(ProofPolicy::default().replay_window(), 310);
    let old = {
        let mut claims = claims();
        claims["iat"] = json!(NOW - 31);
        sign(&key, &header(&key), &claims)
    };
    assert_eq!(
        verify_proof([old.as_bytes()], &token_request(), &strict, NOW),
        Err(ProofError::Time)
    );
    let ahead = {
        let mut claims = claims();
        claims["iat"] = json!(NOW + 1);
        sign(&key, &header(&key), &claims)
    };
    assert_eq!(
        verify_proof([ahead.as_bytes()], &token_request(), &strict, NOW),
        Err(ProofError::Time)
    );
}

#[test]
fn a_server_provided_nonce_must_be_in_the_proof() {
    let key = es256();
    let asking = token_request().nonce("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    let refused = check(&proof(&key), &asking).unwrap_err();
    assert_eq!(refused, ProofError::UseNonce);
    assert_eq!(refused.error_code(), "use_dpop_nonce");
    let mut wrong = claims();
    wrong["nonce"] = json!("another");
    assert_eq!(
        check(&sign(&key, &header(&key), &wrong), &asking),
        Err(ProofError::UseNonce)
    );
    let mut right = claims();
    right["nonce"] = json!("eyJ7S_zG.eyJH0-Z.HX4w-7v");
    check(&sign(&key, &header(&key), &right), &asking).unwrap();
    // A nonce the server did not ask for is harmless.
    check(&sign(&key, &header(&key), &right), &token_request()).unwrap();
}

#[test]
fn a_nonce_from_the_servers_source_must_be_current() {
    let key = es256();
    let source = NonceSource::new(b"a deployment-wide secret, 32 b..", 60);
    let asking = token_request().nonce_from(&source);
    assert_eq!(check(&proof(&key), &asking), Err(ProofError::UseNonce));
    let with = |nonce: &str| {
        let mut claims = claims();
        claims["nonce"] = json!(nonce);
        check(&sign(&key, &header(&key), &claims), &asking)
    };
    with(&source.current(NOW)).unwrap();
    with(&source.current(NOW - 60)).unwrap();
    assert_eq!(with(&source.current(NOW - 120)), Err(ProofError::UseNonce));
    let stranger = NonceSource::new(b"someone else's secret, 32 bytes.", 60);
    assert_eq!(with(&stranger.current(NOW)), Err(ProofError::UseNonce));
}

#[test]
fn with_an_access_token_ath_must_be_its_hash() {
    let key = es256();
    let token = "Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU";
    let resource = RequestContext::new("GET", "https://rs.example.com/mcp").access_token(token);
    let mut claims = claims();
    claims["htm"] = json!("GET");
    claims["htu"] = json!("https://rs.example.com/mcp");
    let without = sign(&key, &header(&key), &claims);
    let refused = check(&without, &resource).unwrap_err();
    assert_eq!(refused, ProofError::AccessTokenHash);
    assert_eq!(refused.error_code(), "invalid_dpop_proof");
    claims["ath"] = json!(access_token_hash("another token"));
    assert_eq!(
        check(&sign(&key, &header(&key), &claims), &resource),
        Err(ProofError::AccessTokenHash)
    );
    claims["ath"] = json!(access_token_hash(token));
    check(&sign(&key, &header(&key), &claims), &resource).unwrap();
}

#[test]
fn the_replay_key_is_per_key_and_jti() {
    let (a, b) = (es256(), es256());
    let first = check(&proof(&a), &token_request()).unwrap();
    let same_jti_other_key = check(&proof(&b), &token_request()).unwrap();
    assert_ne!(first.replay_key(), same_jti_other_key.replay_key());
    let mut again = claims();
    again["jti"] = json!("another-jti-value");
    let other_jti = check(&sign(&a, &header(&a), &again), &token_request()).unwrap();
    assert_ne!(first.replay_key(), other_jti.replay_key());
    assert_eq!(
        first.replay_key(),
        check(&proof(&a), &token_request()).unwrap().replay_key()
    );
}

#[test]
fn errors_describe_the_fix_without_echoing_the_input() {
    let key = es256();
    let mut claims = claims();
    claims["htm"] = json!("<script>");
    let refused = check(&sign(&key, &header(&key), &claims), &token_request()).unwrap_err();
    let text = refused.to_string();
    assert!(!text.contains("<script>"), "{text}");
    assert!(text.contains("htm"), "{text}");
}

proptest::proptest! {
    #[test]
    fn any_header_value_is_answered_without_panicking(value in ".{0,600}") {
        let _ = check(&value, &token_request());
    }

    #[test]
    fn any_three_part_value_is_answered_without_panicking(
        a in "[A-Za-z0-9_-]{0,200}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,200}",
    ) {
        let _ = check(&format!("{a}.{b}.{c}"), &token_request());
    }
}
