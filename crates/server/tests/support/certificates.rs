//! A certificate authority of the test's own and certificates it signs, as PEM files a
//! server or a proxy reads (rcgen).
#![allow(dead_code, unreachable_pub, reason = "each test file uses part of it")]

use base64::Engine as _;

/// `der` as a PEM block.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = base64::engine::general_purpose::STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|line| std::str::from_utf8(line).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// The test's certificate authority, and its certificate (DER) for clients to trust.
pub fn authority() -> (rcgen::CertifiedIssuer<'static, rcgen::KeyPair>, Vec<u8>) {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "mcpauth test CA");
    let issuer =
        rcgen::CertifiedIssuer::self_signed(params, rcgen::KeyPair::generate().unwrap()).unwrap();
    let der = issuer.der().to_vec();
    (issuer, der)
}

/// A certificate for 127.0.0.1 signed by `ca`: (chain PEM, key PEM, certificate DER).
pub fn leaf(ca: &rcgen::CertifiedIssuer<'static, rcgen::KeyPair>) -> (String, String, Vec<u8>) {
    let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()]).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let certificate = params.signed_by(&key, ca).unwrap();
    (
        pem("CERTIFICATE", certificate.der()),
        pem("PRIVATE KEY", &key.serialize_der()),
        certificate.der().to_vec(),
    )
}
