//! Scope strings and PKCE challenges/verifiers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mcpauth_oauth_types::{CodeVerifier, Scope};
use mcpauth_pkce::{CodeChallenge, challenge_for};

fuzz_target!(|input: (&str, &str, Option<&str>)| {
    let (text, verifier, method) = input;
    if let Ok(scope) = Scope::parse(text) {
        assert_eq!(Scope::parse(&scope.to_string()).ok(), Some(scope));
    }
    if let Ok(challenge) = CodeChallenge::parse(text, method) {
        let _ = challenge.verify(&CodeVerifier::new(verifier.to_owned()));
    }
    let _ = challenge_for(&CodeVerifier::new(verifier.to_owned()));
});
