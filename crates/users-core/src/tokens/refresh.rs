//! Refresh tokens (docs/sessions-and-tokens.md): opaque, keyed by a secret derived from
//! `JWT_SECRET` and the session's salt, never stored.

use base64::Engine;
use secrecy::{ExposeSecret, SecretString};
use users_domain::crypto::{constant_time_eq, hmac256, random_token};

/// Refresh tokens: opaque to clients, never stored. A token is
/// `base64url(1 ‖ session id ‖ counter ‖ MAC)`, the MAC (HMAC-SHA256, 256 bits) keyed by
/// a per-session key that is itself derived from this server key and the session's
/// random salt; the salt is in the database, the server key is not, so neither alone
/// can make a token. The session's counter says which token is current: rotation
/// moves it on by one.
#[derive(Clone)]
pub struct RefreshKey([u8; 32]);

impl std::fmt::Debug for RefreshKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RefreshKey(..)")
    }
}

/// What a refresh token names, before its MAC is checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshClaim {
    pub session_id: uuid::Uuid,
    pub counter: i64,
    mac: [u8; 32],
}

const REFRESH_VERSION: u8 = 1;
const REFRESH_LEN: usize = 1 + 16 + 8 + 32;

impl RefreshKey {
    /// Derived from the JWT secret (a different purpose, so a different key).
    pub fn new(secret: &SecretString) -> RefreshKey {
        RefreshKey(hmac256(
            secret.expose_secret().as_bytes(),
            &[b"users/refresh-token/v1"],
        ))
    }

    /// A fresh per-session salt (32 random bytes).
    pub fn new_salt() -> String {
        random_token(32)
    }

    fn mac(&self, session_id: uuid::Uuid, salt: &str, counter: i64) -> [u8; 32] {
        let session_key = hmac256(&self.0, &[session_id.as_bytes(), salt.as_bytes()]);
        hmac256(&session_key, &[&counter.to_be_bytes()])
    }

    /// The refresh token of `session_id` at `counter`.
    pub fn token(&self, session_id: uuid::Uuid, salt: &str, counter: i64) -> String {
        let mut raw = Vec::with_capacity(REFRESH_LEN);
        raw.push(REFRESH_VERSION);
        raw.extend_from_slice(session_id.as_bytes());
        raw.extend_from_slice(&counter.to_be_bytes());
        raw.extend_from_slice(&self.mac(session_id, salt, counter));
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
    }

    /// What a token claims to be; `None` for anything not shaped like one.
    pub fn parse(token: &str) -> Option<RefreshClaim> {
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token)
            .ok()?;
        if raw.len() != REFRESH_LEN || raw[0] != REFRESH_VERSION {
            return None;
        }
        let session_id = uuid::Uuid::from_slice(&raw[1..17]).ok()?;
        let counter = i64::from_be_bytes(raw[17..25].try_into().ok()?);
        let mac = raw[25..].try_into().ok()?;
        Some(RefreshClaim {
            session_id,
            counter,
            mac,
        })
    }

    /// Whether the claim was made by this server for a session with this salt.
    pub fn verify(&self, claim: &RefreshClaim, salt: &str) -> bool {
        constant_time_eq(&self.mac(claim.session_id, salt, claim.counter), &claim.mac)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn refresh_tokens_are_bound_to_their_session_salt_and_key() {
        let key = RefreshKey::new(&SecretString::from("test-secret-0123456789-0123456789"));
        let sid = uuid::Uuid::new_v4();
        let salt = RefreshKey::new_salt();
        let t = key.token(sid, &salt, 7);
        assert!(t.len() >= 43, "at least 256 bits: {t}");
        let claim = RefreshKey::parse(&t).unwrap();
        assert_eq!((claim.session_id, claim.counter), (sid, 7));
        assert!(key.verify(&claim, &salt));
        assert!(
            !key.verify(&claim, &RefreshKey::new_salt()),
            "another session's salt"
        );
        let other = RefreshKey::new(&SecretString::from("another-secret-0123456789-0123456"));
        assert!(!other.verify(&claim, &salt), "another server key");
        // a counter changed by hand breaks the MAC
        let mut raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&t)
            .unwrap();
        raw[24] ^= 1;
        let forged = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let forged = RefreshKey::parse(&forged).unwrap();
        assert_eq!(forged.counter, 6);
        assert!(!key.verify(&forged, &salt));
        assert_ne!(key.token(sid, &salt, 8), t);
        for junk in ["", "x", "eyJhbGciOiJIUzI1NiJ9.e30.x", &t[1..]] {
            assert!(RefreshKey::parse(junk).is_none(), "{junk}");
        }
    }
}
