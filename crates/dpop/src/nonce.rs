//! Server-provided nonces (RFC 9449 §8 at an authorization server, §9 at a resource server): a
//! value the client must sign into its next proofs, which bounds how long a proof made ahead of
//! time (by someone who briefly had the use of the key) stays good.
//!
//! Stateless: a nonce is the number of a time period and a MAC over it, so every instance that
//! holds the same secret issues and accepts the same nonces, with nothing stored. A nonce is
//! accepted during its period and the next one, so a nonce handed out just before a period ends
//! still works for the request it was handed out for.

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq as _;

/// Bytes of the MAC kept in a nonce (128 bits).
const TAG_LEN: usize = 16;

/// Separates these MACs from any other use of the same secret.
const CONTEXT: &[u8] = b"mcpauth DPoP nonce v1\0";

/// Issues and accepts server nonces: a nonce is the number of a `period`-second window and a
/// MAC over it, accepted in its window and the next, the same on every instance holding the
/// secret.
#[derive(Clone)]
pub struct NonceSource {
    key: hmac::Key,
    period: u64,
}

impl std::fmt::Debug for NonceSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NonceSource")
            .field("key", &"[redacted]")
            .field("period", &self.period)
            .finish()
    }
}

impl NonceSource {
    /// Nonces MACed with `secret` (at least 32 random bytes, the same on every instance), each
    /// current for `period` seconds (at least 1) and accepted for up to twice that.
    #[must_use]
    pub fn new(secret: &[u8], period: u64) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
            period: period.max(1),
        }
    }

    /// The nonce to send in `DPoP-Nonce` at `now` (seconds since the Unix epoch).
    #[must_use]
    pub fn current(&self, now: u64) -> String {
        let index = now / self.period;
        let mut nonce = Vec::with_capacity(8 + TAG_LEN);
        nonce.extend_from_slice(&index.to_be_bytes());
        nonce.extend_from_slice(self.tag(index).get(..TAG_LEN).unwrap_or_default());
        URL_SAFE_NO_PAD.encode(nonce)
    }

    /// Whether `nonce` was issued by this source (this secret) in the current period or the one
    /// before, at `now`.
    #[must_use]
    pub fn accepts(&self, nonce: &str, now: u64) -> bool {
        let Ok(bytes) = URL_SAFE_NO_PAD.decode(nonce) else {
            return false;
        };
        let (Some(index), Some(tag)) = (bytes.get(..8), bytes.get(8..)) else {
            return false;
        };
        let Ok(index) = <[u8; 8]>::try_from(index).map(u64::from_be_bytes) else {
            return false;
        };
        let current = now / self.period;
        if tag.len() != TAG_LEN || (index != current && index.checked_add(1) != Some(current)) {
            return false;
        }
        let expected = self.tag(index);
        expected
            .get(..TAG_LEN)
            .is_some_and(|expected| bool::from(expected.ct_eq(tag)))
    }

    fn tag(&self, index: u64) -> Vec<u8> {
        let mut message = Vec::with_capacity(CONTEXT.len() + 8);
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(&index.to_be_bytes());
        hmac::sign(&self.key, &message).as_ref().to_vec()
    }
}

#[cfg(test)]
mod tests {
    use super::NonceSource;

    const SECRET: &[u8; 32] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_nonce_is_accepted_in_its_period_and_the_next_only() {
        let source = NonceSource::new(SECRET, 60);
        let now = 1_800_000_000;
        let nonce = source.current(now);
        assert!(source.accepts(&nonce, now));
        // Still in its period, then in the next.
        let period_end = (now / 60 + 1) * 60;
        assert!(source.accepts(&nonce, period_end - 1));
        assert!(source.accepts(&nonce, period_end));
        assert!(source.accepts(&nonce, period_end + 59));
        // Two periods on, and before it was issued.
        assert!(!source.accepts(&nonce, period_end + 60));
        assert!(!source.accepts(&nonce, now - 60));
        // The next period's nonce differs.
        assert_ne!(source.current(period_end), nonce);
    }

    #[test]
    fn only_this_secret_s_unaltered_nonces_are_accepted() {
        let source = NonceSource::new(SECRET, 60);
        let now = 1_800_000_000;
        let nonce = source.current(now);
        let other = NonceSource::new(b"another secret of thirty-two byt", 60);
        assert!(!other.accepts(&nonce, now));
        // Every one-character change, and shapes that are not nonces.
        for i in 0..nonce.len() {
            let mut changed = nonce.clone().into_bytes();
            changed[i] = if changed[i] == b'A' { b'B' } else { b'A' };
            let changed = String::from_utf8(changed).unwrap();
            assert!(!source.accepts(&changed, now), "{changed}");
        }
        for bad in [
            "",
            "!!!",
            "AAAA",
            &nonce[..nonce.len() - 2],
            &format!("{nonce}AA"),
        ] {
            assert!(!source.accepts(bad, now), "{bad}");
        }
    }

    #[test]
    fn instances_with_the_same_secret_agree_and_debug_hides_it() {
        let (a, b) = (NonceSource::new(SECRET, 60), NonceSource::new(SECRET, 60));
        assert!(b.accepts(&a.current(1_800_000_000), 1_800_000_030));
        let shown = format!("{a:?}");
        assert!(
            shown.contains("[redacted]") && !shown.contains("0123456789"),
            "{shown}"
        );
    }
}
