//! Secrets the service must read back (a TOTP secret) are sealed with AES-256-GCM under
//! a key only the servers hold, derived from `JWT_SECRET`: the database alone does not
//! reveal them. Secrets it only compares (recovery codes) are kept as keyed hashes.

use aes_gcm::aead::{Aead, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};

use users_domain::crypto::{hex, hmac256};

const NONCE_LEN: usize = 12;

#[derive(Clone)]
pub struct Sealer {
    cipher: Aes256Gcm,
    pepper: [u8; 32],
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sealer(..)")
    }
}

impl Sealer {
    /// Keys derived from the JWT secret, one per purpose.
    pub fn new(secret: &SecretString) -> Sealer {
        let bytes = secret.expose_secret().as_bytes();
        let key = hmac256(bytes, &[b"users/sealing/v1"]);
        let cipher = Aes256Gcm::new_from_slice(&key)
            .unwrap_or_else(|_| unreachable!("a 32-byte key is an AES-256 key"));
        Sealer {
            cipher,
            pepper: hmac256(bytes, &[b"users/recovery-codes/v1"]),
        }
    }

    /// `base64(nonce ‖ ciphertext ‖ tag)`.
    pub fn seal(&self, plaintext: &[u8]) -> Option<String> {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rngs::OsRng.fill_bytes(&mut nonce);
        let sealed = self.cipher.encrypt(&Nonce::from(nonce), plaintext).ok()?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&sealed);
        Some(base64::engine::general_purpose::STANDARD.encode(out))
    }

    /// The plaintext, if `sealed` was sealed with this key.
    pub fn open(&self, sealed: &str) -> Option<Vec<u8>> {
        let raw = base64::engine::general_purpose::STANDARD
            .decode(sealed)
            .ok()?;
        if raw.len() < NONCE_LEN {
            return None;
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
        self.cipher.decrypt(&Nonce::from(nonce), ciphertext).ok()
    }

    /// The keyed hash a recovery code is stored as (hex).
    pub fn code_hash(&self, code: &str) -> String {
        // case, separators and the letters Crockford's alphabet reads as digits (o for
        // 0, i and l for 1) do not matter: codes never hold o, i or l
        let normalised: String = code
            .chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| match c.to_ascii_lowercase() {
                'o' => '0',
                'i' | 'l' => '1',
                c => c,
            })
            .collect();
        hex(&hmac256(&self.pepper, &[normalised.as_bytes()]))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn sealer(secret: &str) -> Sealer {
        Sealer::new(&SecretString::from(secret.to_owned()))
    }

    #[test]
    fn sealed_secrets_open_only_with_their_key() {
        let s = sealer("a-test-secret-0123456789-0123456789");
        let sealed = s.seal(b"JBSWY3DPEHPK3PXP").unwrap();
        assert!(!sealed.contains("JBSWY3DP"));
        assert_eq!(s.open(&sealed).unwrap(), b"JBSWY3DPEHPK3PXP");
        assert_ne!(
            s.seal(b"JBSWY3DPEHPK3PXP").unwrap(),
            sealed,
            "a fresh nonce each time"
        );
        assert!(sealer("another-secret-0123456789-012345678")
            .open(&sealed)
            .is_none());
        let mut tampered = base64::engine::general_purpose::STANDARD
            .decode(&sealed)
            .unwrap();
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        let tampered = base64::engine::general_purpose::STANDARD.encode(tampered);
        assert!(s.open(&tampered).is_none());
        assert!(s.open("garbage").is_none());
        assert!(s.open("").is_none());
    }

    #[test]
    fn recovery_code_hashes_ignore_case_and_dashes() {
        let s = sealer("a-test-secret-0123456789-0123456789");
        assert_eq!(s.code_hash("abcd-efgh-jkmn"), s.code_hash("ABCDEFGHJKMN"));
        assert_ne!(s.code_hash("abcd-efgh-jkmn"), s.code_hash("abcd-efgh-jkmp"));
        assert_ne!(
            s.code_hash("abcd-efgh-jkmn"),
            sealer("another-secret-0123456789-012345678").code_hash("abcd-efgh-jkmn")
        );
    }

    #[test]
    fn recovery_codes_read_o_as_zero_and_i_l_as_one() {
        let s = sealer("a-test-secret-0123456789-0123456789");
        assert_eq!(s.code_hash("0a1b-c2d3-e4f5"), s.code_hash("oa-ib-c2d3e4f5"));
        assert_eq!(s.code_hash("1111-0000-1111"), s.code_hash("IlI1-OoO0-lili"));
        assert_ne!(s.code_hash("0a1b-c2d3-e4f5"), s.code_hash("0a1b-c2d3-e4f6"));
    }
}
