//! Signing keys: created once per deployment, shared by every instance through the database,
//! and encrypted there with AES-256-GCM under the configured `signing_key_encryption_key`.
//!
//! A stored key is either PKCS#8/PKCS#1 DER (plain, SQLite without an encryption key) or
//! `SEALED_PREFIX || nonce || ciphertext+tag`, sealed with the key's id and algorithm as
//! associated data so a sealed key cannot be moved to another row. DER always starts with
//! `0x30`, so the prefix cannot be mistaken for a plain key.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use mcpauth_store_sql::SqlStore;
use mcpauth_token_engine::UnixTime;
use mcpauth_token_engine::{KeySet, SigningKey};

use crate::StartError;

const SEALED_PREFIX: &[u8] = b"mcpauth-sealed-key-v1:";

/// The AES-256-GCM key that seals signing keys at rest, and the previous ones that still open
/// what they sealed while the operator rotates it.
pub struct KeyEncryption {
    current: LessSafeKey,
    previous: Vec<LessSafeKey>,
}

impl std::fmt::Debug for KeyEncryption {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("KeyEncryption(<redacted>)")
    }
}

fn associated_data(kid: &str, algorithm: &str) -> Vec<u8> {
    format!("{kid}\n{algorithm}").into_bytes()
}

/// The 32 bytes of `signing_key_encryption_key`: base64, standard or URL-safe, padded or not.
pub(crate) fn key_bytes(text: &str) -> Result<[u8; 32], StartError> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let text = text.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(text).ok())
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| {
            StartError::key(
                "signing_key_encryption_key must be 32 random bytes in base64 \
                 (for example the output of `openssl rand -base64 32`)",
            )
        })
}

impl KeyEncryption {
    /// Reads 32 bytes of base64 (standard or URL-safe, padded or not).
    pub(crate) fn from_base64(text: &str) -> Result<Self, StartError> {
        Ok(Self {
            current: aes_key(text)?,
            previous: Vec::new(),
        })
    }

    /// Also opens what the `previous` keys (base64, as the current one) sealed; seals under
    /// the current one only.
    pub(crate) fn with_previous(mut self, previous: &[&str]) -> Result<Self, StartError> {
        for text in previous {
            self.previous.push(aes_key(text).map_err(|_| {
                StartError::key(
                    "each of previous_signing_key_encryption_keys must be 32 random bytes in \
                     base64, as signing_key_encryption_key",
                )
            })?);
        }
        Ok(self)
    }

    fn seal(&self, kid: &str, algorithm: &str, der: &[u8]) -> Result<Vec<u8>, StartError> {
        let mut nonce = [0u8; NONCE_LEN];
        aws_lc_rs::rand::fill(&mut nonce).map_err(|_| StartError::key("no randomness"))?;
        let mut in_out = der.to_vec();
        self.current
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(associated_data(kid, algorithm).as_slice()),
                &mut in_out,
            )
            .map_err(|_| StartError::key("encrypting a signing key failed"))?;
        let mut sealed = Vec::with_capacity(SEALED_PREFIX.len() + NONCE_LEN + in_out.len());
        sealed.extend_from_slice(SEALED_PREFIX);
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    /// The DER of a sealed key, and whether a previous key opened it (it is to be sealed
    /// again under the current one).
    fn open(
        &self,
        kid: &str,
        algorithm: &str,
        sealed: &[u8],
    ) -> Result<(Vec<u8>, bool), StartError> {
        let wrong = || {
            StartError::key(format!(
                "cannot decrypt stored signing key {kid}: neither signing_key_encryption_key \
                 nor any of previous_signing_key_encryption_keys is the key it was encrypted with"
            ))
        };
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(wrong)?;
        let (nonce, ciphertext) = body.split_at_checked(NONCE_LEN).ok_or_else(wrong)?;
        for (at, key) in std::iter::once(&self.current)
            .chain(&self.previous)
            .enumerate()
        {
            let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| wrong())?;
            let mut in_out = ciphertext.to_vec();
            if let Ok(plain) = key.open_in_place(
                nonce,
                Aad::from(associated_data(kid, algorithm).as_slice()),
                &mut in_out,
            ) {
                return Ok((plain.to_vec(), at > 0));
            }
        }
        Err(wrong())
    }
}

fn aes_key(text: &str) -> Result<LessSafeKey, StartError> {
    let bytes = key_bytes(text)?;
    let key = UnboundKey::new(&AES_256_GCM, &bytes)
        .map_err(|_| StartError::key("signing_key_encryption_key is unusable"))?;
    Ok(LessSafeKey::new(key))
}

fn parse(algorithm: &str, der: &[u8]) -> Result<SigningKey, StartError> {
    let key = match algorithm {
        "ES256" => SigningKey::es256_from_pkcs8_der(der),
        "EdDSA" => SigningKey::ed25519_from_pkcs8_der(der),
        "RS256" => SigningKey::rs256_from_pkcs1_der(der),
        other => {
            return Err(StartError::key(format!(
                "stored key has unknown algorithm {other}"
            )));
        }
    };
    key.map_err(|e| StartError::key_caused(format!("a stored {algorithm} key does not load"), e))
}

/// A new key of `algorithm` (`ES256` or `EdDSA`) as PKCS#8 DER, with its kid.
fn generate(algorithm: &str) -> Result<(String, Vec<u8>), StartError> {
    let kind = match algorithm {
        "ES256" => mcpauth_token_engine::KeyAlgorithm::Es256,
        "EdDSA" => mcpauth_token_engine::KeyAlgorithm::EdDsa,
        other => {
            return Err(StartError::key(format!(
                "cannot generate {other} keys: choose ES256 or EdDSA"
            )));
        }
    };
    let der = mcpauth_token_engine::SigningKey::generate_pkcs8(kind)
        .map_err(|e| StartError::key_caused(format!("a new {algorithm} key"), e))?;
    let kid = parse(algorithm, &der)?.kid().to_owned();
    Ok((kid, der))
}

/// Which stored key signs at `now`: the newest one published for at least `lead` seconds
/// (so every instance and every resource server's JWKS cache knows it before tokens carry
/// it), or the oldest key while none is (the deployment's first key signs at once).
/// `rows` are newest first.
fn signer_index(rows: &[mcpauth_store_sql::SigningKeyRow], lead: u64, now: u64) -> usize {
    rows.iter()
        .position(|row| row.created_at.saturating_add(lead) <= now)
        .unwrap_or(rows.len().saturating_sub(1))
}

/// The state of a stored key, as `key list` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet (within the rotation lead).
    Next,
    /// Signs new tokens.
    Signing,
    /// Published and accepted, no longer signing.
    Retired,
}

/// Every stored key with its state at `now`, newest first.
///
/// # Errors
///
/// [`StartError::Store`].
pub async fn list_signing_keys(
    store: &SqlStore,
    lead: u64,
    now: u64,
) -> Result<Vec<(mcpauth_store_sql::SigningKeyRow, KeyState)>, StartError> {
    let rows = store.signing_keys().await?;
    let signer = signer_index(&rows, lead, now);
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(i, row)| {
            let state = match i.cmp(&signer) {
                std::cmp::Ordering::Less => KeyState::Next,
                std::cmp::Ordering::Equal => KeyState::Signing,
                std::cmp::Ordering::Greater => KeyState::Retired,
            };
            (row, state)
        })
        .collect())
}

/// Stores a new key of `algorithm`: published at once, signing after `lead` seconds.
pub(crate) async fn rotate_signing_key(
    store: &SqlStore,
    encryption: Option<&KeyEncryption>,
    algorithm: &str,
    now: UnixTime,
) -> Result<String, StartError> {
    let (kid, der) = generate(algorithm)?;
    let material = match encryption {
        Some(encryption) => encryption.seal(&kid, algorithm, &der)?,
        None => der,
    };
    store
        .insert_signing_key(&kid, algorithm, &material, now)
        .await?;
    tracing::info!(%kid, algorithm, "stored a new signing key");
    Ok(kid)
}

/// Loads the stored keys ([`signer_index`] decides which signs; the others stay published
/// for the tokens they signed or will sign), creating an ES256 key on the deployment's first
/// start when `create` is set. Instances starting together agree on one first key (the store
/// decides). With `encryption`, plain stored keys are encrypted in place.
pub(crate) async fn load_signing_keys(
    store: &SqlStore,
    encryption: Option<&KeyEncryption>,
    lead: u64,
    now: UnixTime,
) -> Result<KeySet, StartError> {
    let mut rows = store.signing_keys().await?;
    if rows.is_empty() {
        let (kid, der) = generate("ES256")?;
        let material = match encryption {
            Some(encryption) => encryption.seal(&kid, "ES256", &der)?,
            None => der,
        };
        if store
            .insert_first_signing_key(&kid, "ES256", &material, now)
            .await?
        {
            tracing::info!(%kid, encrypted = encryption.is_some(), "generated a new ES256 signing key");
        }
        // Another instance may have stored the first key instead of this one.
        rows = store.signing_keys().await?;
    }
    let signer = signer_index(&rows, lead, now.0);
    let mut loaded = Vec::with_capacity(rows.len());
    for row in rows {
        let der = if row.material.starts_with(SEALED_PREFIX) {
            let encryption = encryption.ok_or_else(|| {
                StartError::key(
                    "the stored signing keys are encrypted: set signing_key_encryption_key \
                     (MCPAUTH_SIGNING_KEY_ENCRYPTION_KEY) to the key they were encrypted with",
                )
            })?;
            let (der, with_previous) = encryption.open(&row.kid, &row.algorithm, &row.material)?;
            if with_previous {
                // A rotation of the encryption key: from now on under the current one.
                let sealed = encryption.seal(&row.kid, &row.algorithm, &der)?;
                store
                    .replace_signing_key_material(&row.kid, &sealed)
                    .await?;
                tracing::info!(
                    kid = %row.kid,
                    "sealed a signing key again under the current signing_key_encryption_key"
                );
            }
            der
        } else {
            if let Some(encryption) = encryption {
                let sealed = encryption.seal(&row.kid, &row.algorithm, &row.material)?;
                store
                    .replace_signing_key_material(&row.kid, &sealed)
                    .await?;
                tracing::info!(kid = %row.kid, "encrypted a signing key stored in plain text");
            }
            row.material
        };
        loaded.push(parse(&row.algorithm, &der)?);
    }
    if signer >= loaded.len() {
        return Err(StartError::key("no key after creation"));
    }
    let current = loaded.remove(signer);
    Ok(loaded
        .into_iter()
        .fold(KeySet::new(current), KeySet::with_retired))
}

/// The stored signing keys as one instance uses them: reloaded from the database, rotated by
/// the administrator (command line or console). Shared by [`crate::Server`] and the console.
pub(crate) struct KeyRing {
    pub(crate) store: SqlStore,
    pub(crate) engine: std::sync::Arc<mcpauth_token_engine::TokenEngine<SqlStore>>,
    pub(crate) encryption: Option<std::sync::Arc<KeyEncryption>>,
    pub(crate) rotation_lead: u64,
    /// Cleared when the stored keys could not be loaded: `/ready` then answers 503.
    pub(crate) loaded: std::sync::Arc<std::sync::atomic::AtomicBool>,
    pub(crate) clock: std::sync::Arc<dyn mcpauth_token_engine::Clock>,
}

impl std::fmt::Debug for KeyRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyRing")
            .field("encrypted", &self.encryption.is_some())
            .field("rotation_lead", &self.rotation_lead)
            .finish_non_exhaustive()
    }
}

impl KeyRing {
    /// Loads the stored keys again (see [`crate::Server::reload_keys`]).
    pub(crate) async fn reload(&self) -> Result<(), StartError> {
        use std::sync::atomic::Ordering;
        match load_signing_keys(
            &self.store,
            self.encryption.as_deref(),
            self.rotation_lead,
            self.clock.now(),
        )
        .await
        {
            Ok(keys) => {
                self.engine.replace_keys(keys);
                self.loaded.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => {
                // A database outage is `/ready`'s other check; only a key problem is ours.
                if matches!(e, StartError::Key { .. }) {
                    self.loaded.store(false, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    /// Stores a new key of `algorithm` (audited as `actor`'s) and reloads.
    pub(crate) async fn rotate(
        &self,
        algorithm: &str,
        actor: &crate::admin::Actor,
    ) -> Result<String, StartError> {
        let kid = rotate_signing_key(
            &self.store,
            self.encryption.as_deref(),
            algorithm,
            self.clock.now(),
        )
        .await?;
        // Stored: recorded, whatever the reload says.
        crate::admin::audited_by(
            &self.store,
            actor,
            crate::audit::events::KEY_ROTATED,
            None,
            None,
            Some(&kid),
        )
        .await;
        self.reload().await?;
        Ok(kid)
    }

    /// Every stored key with its state now, newest first.
    pub(crate) async fn list(
        &self,
    ) -> Result<Vec<(mcpauth_store_sql::SigningKeyRow, KeyState)>, StartError> {
        list_signing_keys(&self.store, self.rotation_lead, self.clock.now().0).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encryption() -> KeyEncryption {
        KeyEncryption::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=").unwrap()
    }

    #[test]
    fn sealed_keys_open_only_for_their_own_row() {
        let encryption = encryption();
        let sealed = encryption.seal("kid-1", "ES256", b"0\x82der").unwrap();
        assert!(sealed.starts_with(SEALED_PREFIX));
        assert!(!sealed.windows(6).any(|w| w == b"0\x82der"));
        assert_eq!(
            encryption.open("kid-1", "ES256", &sealed).unwrap(),
            (b"0\x82der".to_vec(), false)
        );
        assert!(encryption.open("kid-2", "ES256", &sealed).is_err());
        assert!(encryption.open("kid-1", "EdDSA", &sealed).is_err());
        let other = KeyEncryption::from_base64(&"A".repeat(43)).unwrap();
        assert!(other.open("kid-1", "ES256", &sealed).is_err());
        assert!(encryption.open("kid-1", "ES256", SEALED_PREFIX).is_err());
    }

    fn row(kid: &str, created_at: u64) -> mcpauth_store_sql::SigningKeyRow {
        let mut row = mcpauth_store_sql::SigningKeyRow::default();
        row.kid = kid.into();
        row.created_at = created_at;
        row
    }

    #[test]
    fn a_new_key_signs_only_after_the_rotation_lead() {
        // Newest first.
        let rows = [row("new", 1_000), row("old", 100)];
        assert_eq!(
            signer_index(&rows, 600, 1_200),
            1,
            "published, not signing yet"
        );
        assert_eq!(
            signer_index(&rows, 600, 1_600),
            0,
            "lead over: the new key signs"
        );
        assert_eq!(signer_index(&rows, 0, 1_000), 0);
        // The deployment's first key signs at once.
        assert_eq!(signer_index(&[row("first", 1_000)], 600, 1_000), 0);
        // Two keys both within the lead: the older one still signs.
        let rows = [row("c", 1_100), row("b", 1_000), row("a", 0)];
        assert_eq!(signer_index(&rows, 600, 1_200), 2);
        assert_eq!(signer_index(&rows, 600, 1_650), 1);
    }

    #[test]
    fn the_encryption_key_must_be_32_bytes_of_base64() {
        assert!(KeyEncryption::from_base64("c2hvcnQ=").is_err());
        assert!(KeyEncryption::from_base64("not base64 at all!").is_err());
        // URL-safe without padding is accepted too.
        assert!(KeyEncryption::from_base64("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8").is_ok());
    }
}
