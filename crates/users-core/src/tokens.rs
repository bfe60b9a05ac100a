//! Every token the service makes and checks, in one place: access tokens, password
//! reset and email verification tokens, and the OAuth state. JSON Web Tokens, HS256
//! with `JWT_SECRET`, in fastapi-users' formats (docs/sessions-and-tokens.md,
//! docs/password-reset-and-verification.md, docs/providers.md); opaque random tokens
//! and the hashes they are stored as; one constant-time comparison.
//!
//! Every purpose has its own audience, so a token minted for one purpose is refused for
//! every other. Only HS256 is accepted: `none`, HS512, RS256, … all fail to decode.
//! Expiry is checked against a `now` passed in, so time is testable.

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use users_domain::{Timestamp, UserId};

pub const AUTH_AUDIENCE: &str = "fastapi-users:auth";
pub const RESET_AUDIENCE: &str = "fastapi-users:reset";
pub const VERIFY_AUDIENCE: &str = "fastapi-users:verify";
pub const STATE_AUDIENCE: &str = "fastapi-users:oauth-state";

/// A password-reset token: `password_fgpt` is an argon2 hash of the user's current
/// password hash (as fastapi-users makes it), so any password change kills the token.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResetClaims {
    pub sub: String,
    pub password_fgpt: String,
    #[serde(default = "reset_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn reset_aud() -> String {
    RESET_AUDIENCE.to_owned()
}

/// An email-verification token, bound to the address it was sent to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct VerifyClaims {
    pub sub: String,
    pub email: String,
    #[serde(default = "verify_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn verify_aud() -> String {
    VERIFY_AUDIENCE.to_owned()
}

/// The OAuth state: `csrftoken` equals the browser's cookie; `jti` names the
/// server-side row with the PKCE verifier and the nonce; `sub` is the user an
/// association was started for; `provider` the provider it was started with (a state
/// of one provider is refused by another's callback).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StateClaims {
    pub csrftoken: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    #[serde(default = "state_aud", skip_deserializing)]
    pub aud: String,
    pub exp: i64,
}

fn state_aud() -> String {
    STATE_AUDIENCE.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Bad signature, wrong algorithm, wrong audience, missing claims, not a JWT at all.
    #[error("the token cannot be decoded")]
    Invalid,
    #[error("the token has expired")]
    Expired,
    /// Signed with a key this replica does not know (yet): reload the keys, then retry.
    #[error("the token names an unknown key")]
    UnknownKey,
}

/// Signing and verification keys, and the access-token lifetime.
#[derive(Clone)]
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_lifetime_seconds: i64,
    /// An asymmetric `JWT_ALGORITHM`: access tokens are signed and checked with these
    /// keys (with `kid` and `iss`); every other token stays HS256.
    pub ring: Option<std::sync::Arc<crate::keyring::KeyRing>>,
    /// `iss` of asymmetric access tokens: `PUBLIC_URL`.
    issuer: String,
    /// HMAC-SHA256 keyed with `JWT_SECRET`, its key schedule computed once: the check of
    /// an HS256 access token clones it (see [`JwtKeys::decode_access_hs256`]).
    hs256: HmacSha256,
}

impl std::fmt::Debug for JwtKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtKeys")
            .field("access_lifetime_seconds", &self.access_lifetime_seconds)
            .field("ring", &self.ring)
            .finish_non_exhaustive()
    }
}

/// What an access token says, as far as the server needs it.
#[derive(Debug, Clone, Deserialize)]
pub struct AccessClaims {
    pub sub: String,
    pub exp: i64,
    /// The session the token belongs to; absent in tokens minted by fastapi-users.
    #[serde(default)]
    pub sid: Option<String>,
    #[serde(default)]
    pub iat: Option<f64>,
    /// Issue time in milliseconds (our tokens only): revocation by password change
    /// must tell apart tokens issued within the same second.
    #[serde(default)]
    pub iat_ms: Option<i64>,
}

impl AccessClaims {
    /// When the token was issued, in milliseconds. A token minted by fastapi-users has
    /// no `iat`: it is derived from `exp` minus the configured lifetime.
    pub fn issued_at_ms(&self, lifetime_seconds: i64) -> i64 {
        if let Some(ms) = self.iat_ms {
            return ms;
        }
        match self.iat {
            Some(iat) if iat.is_finite() => (iat * 1000.0) as i64,
            _ => (self.exp - lifetime_seconds).saturating_mul(1000),
        }
    }
}

#[derive(Serialize)]
struct AccessClaimsOut<'a> {
    sub: String,
    aud: [&'a str; 1],
    exp: i64,
    iat: i64,
    iat_ms: i64,
    jti: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    sid: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

impl JwtKeys {
    pub fn new(secret: &SecretString, access_lifetime_seconds: i64) -> Self {
        let bytes = secret.expose_secret().as_bytes();
        use hmac::Mac;
        JwtKeys {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            access_lifetime_seconds,
            ring: None,
            issuer: String::new(),
            hs256: <HmacSha256 as Mac>::new_from_slice(bytes)
                .unwrap_or_else(|_| unreachable!("HMAC accepts every key length")),
        }
    }

    /// Access tokens signed by `ring`'s keys, with `iss` = `issuer`.
    pub fn with_ring(
        mut self,
        ring: std::sync::Arc<crate::keyring::KeyRing>,
        issuer: &str,
    ) -> Self {
        self.ring = Some(ring);
        self.issuer = issuer.to_owned();
        self
    }

    /// A new access token for `user` in session `sid`, issued at `now`.
    pub fn issue_access(
        &self,
        user: UserId,
        sid: Option<&str>,
        now: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        let claims = AccessClaimsOut {
            sub: user.to_string(),
            aud: [AUTH_AUDIENCE],
            exp: now.secs() + self.access_lifetime_seconds,
            iat: now.secs(),
            iat_ms: now.millis(),
            jti: random_token(16),
            sid,
            iss: None,
        };
        let Some(ring) = &self.ring else {
            return self.encode(&claims);
        };
        let (kid, key) = ring
            .signer(now)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(ring.algorithm.jwt());
        header.kid = Some(kid);
        jsonwebtoken::encode(
            &header,
            &AccessClaimsOut {
                iss: Some(&self.issuer),
                ..claims
            },
            &key,
        )
    }

    /// Checks an access token: HS256 with `JWT_SECRET`, or, with an asymmetric
    /// `JWT_ALGORITHM`, the algorithm and a published key its `kid` names, and `iss`.
    pub fn decode_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let Some(ring) = &self.ring else {
            return self.decode_access_hs256(token, now);
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        if header.alg != ring.algorithm.jwt() {
            return Err(TokenError::Invalid);
        }
        let kid = header.kid.ok_or(TokenError::Invalid)?;
        let key = ring.verifier(&kid, now).ok_or(TokenError::UnknownKey)?;
        let mut validation = Validation::new(ring.algorithm.jwt());
        validation.set_audience(&[AUTH_AUDIENCE]);
        validation.set_issuer(&[&self.issuer]);
        validation.set_required_spec_claims(&["exp", "aud", "iss"]);
        validation.validate_exp = false; // checked below against `now`
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|_| TokenError::Invalid)?;
        if now.secs() >= data.claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(data.claims)
    }

    /// An HS256 access token checked the way [`JwtKeys::decode`] checks it (signature
    /// first, then `alg` HS256, `aud` holding `fastapi-users:auth`, `exp` and `nbf`
    /// against `now`), in one pass: the HMAC key schedule is reused, and the claims are
    /// read once into their struct. This runs on every authenticated request; a test
    /// holds it to `decode`'s answers. Two differences, both on tokens that carry our
    /// own valid MAC: `nbf` is compared with `now` (the injected clock) where `decode`
    /// asks the system clock, and a payload naming one of our claims twice is refused
    /// where `decode` keeps the last.
    fn decode_access_hs256(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        use hmac::Mac;
        /// A present `nbf` as `decode` reads it: an unsigned integer, or a finite
        /// non-negative float rounded; anything else (`null` included) is refused.
        fn present<'de, D: serde::Deserializer<'de>>(
            d: D,
        ) -> Result<Option<serde_json::Value>, D::Error> {
            serde_json::Value::deserialize(d).map(Some)
        }
        fn numeric(value: &serde_json::Value) -> Option<u64> {
            let number = value.as_number()?;
            if let Some(n) = number.as_u64() {
                return Some(n);
            }
            if number.is_f64() {
                let f = number.as_f64()?;
                if f.is_finite() && f >= 0.0 && f < u64::MAX as f64 {
                    return Some(f.round() as u64);
                }
            }
            None
        }
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Audience {
            One(String),
            Many(Vec<String>),
        }
        #[derive(Deserialize)]
        struct Claims {
            aud: Audience,
            #[serde(default, deserialize_with = "present")]
            nbf: Option<serde_json::Value>,
            sub: String,
            exp: i64,
            #[serde(default)]
            sid: Option<String>,
            #[serde(default)]
            iat: Option<f64>,
            #[serde(default)]
            iat_ms: Option<i64>,
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let (message, signature) = token.rsplit_once('.').ok_or(TokenError::Invalid)?;
        let (header, payload) = message.split_once('.').ok_or(TokenError::Invalid)?;
        if payload.contains('.') {
            return Err(TokenError::Invalid);
        }
        let signature = b64.decode(signature).map_err(|_| TokenError::Invalid)?;
        let mut mac = self.hs256.clone();
        mac.update(message.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Invalid)?;
        let header = b64.decode(header).map_err(|_| TokenError::Invalid)?;
        let header: jsonwebtoken::Header =
            serde_json::from_slice(&header).map_err(|_| TokenError::Invalid)?;
        if header.alg != Algorithm::HS256 {
            return Err(TokenError::Invalid);
        }
        let payload = b64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let claims: Claims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
        let audience_ok = match &claims.aud {
            Audience::One(a) => a == AUTH_AUDIENCE,
            Audience::Many(all) => all.iter().any(|a| a == AUTH_AUDIENCE),
        };
        if !audience_ok || claims.exp < 0 {
            return Err(TokenError::Invalid);
        }
        if let Some(nbf) = &claims.nbf {
            match numeric(nbf) {
                Some(nbf) if (nbf as i128) <= now.secs() as i128 => {}
                _ => return Err(TokenError::Invalid),
            }
        }
        if now.secs() >= claims.exp {
            return Err(TokenError::Expired);
        }
        Ok(AccessClaims {
            sub: claims.sub,
            exp: claims.exp,
            sid: claims.sid,
            iat: claims.iat,
            iat_ms: claims.iat_ms,
        })
    }

    /// A password-reset token bound to the user's current password hash through
    /// `password_fgpt` (see [`ResetClaims`]).
    pub fn issue_reset(
        &self,
        user: UserId,
        password_fgpt: String,
        expires: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(&ResetClaims {
            sub: user.to_string(),
            password_fgpt,
            aud: RESET_AUDIENCE.to_owned(),
            exp: expires.secs(),
        })
    }

    pub fn decode_reset(&self, token: &str, now: Timestamp) -> Result<ResetClaims, TokenError> {
        self.decode(token, RESET_AUDIENCE, now)
    }

    /// An email-verification token for the address the user has now.
    pub fn issue_verify(
        &self,
        user: UserId,
        email: &str,
        expires: Timestamp,
    ) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(&VerifyClaims {
            sub: user.to_string(),
            email: email.to_owned(),
            aud: VERIFY_AUDIENCE.to_owned(),
            exp: expires.secs(),
        })
    }

    pub fn decode_verify(&self, token: &str, now: Timestamp) -> Result<VerifyClaims, TokenError> {
        self.decode(token, VERIFY_AUDIENCE, now)
    }

    pub fn issue_state(&self, claims: &StateClaims) -> Result<String, jsonwebtoken::errors::Error> {
        self.encode(claims)
    }

    pub fn decode_state(&self, token: &str, now: Timestamp) -> Result<StateClaims, TokenError> {
        self.decode(token, STATE_AUDIENCE, now)
    }

    pub fn encode<T: Serialize>(&self, claims: &T) -> Result<String, jsonwebtoken::errors::Error> {
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), claims, &self.encoding)
    }

    /// Decodes a token of `audience` (a string or an array holding it), checking
    /// signature, algorithm and audience first, then `exp` against `now`.
    pub fn decode<T: DeserializeOwned>(
        &self,
        token: &str,
        audience: &str,
        now: Timestamp,
    ) -> Result<T, TokenError> {
        #[derive(Deserialize)]
        struct Exp {
            exp: i64,
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "aud"]);
        validation.validate_exp = false; // checked below against `now_ms`
        validation.validate_nbf = true;
        validation.leeway = 0;
        let data = jsonwebtoken::decode::<serde_json::Value>(token, &self.decoding, &validation)
            .map_err(|_| TokenError::Invalid)?;
        let exp: Exp =
            serde_json::from_value(data.claims.clone()).map_err(|_| TokenError::Invalid)?;
        if now.secs() >= exp.exp {
            return Err(TokenError::Expired);
        }
        serde_json::from_value(data.claims).map_err(|_| TokenError::Invalid)
    }
}

/// `n` random bytes from the OS CSPRNG, base64url without padding.
pub fn random_token(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

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

type HmacSha256 = hmac::Hmac<Sha256>;

/// HMAC-SHA256 of the concatenated `parts`.
pub(crate) fn hmac256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    use hmac::Mac;
    // HMAC takes keys of any length
    let mut mac = <HmacSha256 as Mac>::new_from_slice(key)
        .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

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

/// Compares without an early exit, so the time taken does not reveal a matching prefix.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// What is stored to revoke a token: its SHA-256, never the token itself.
pub fn token_hash(token: &str) -> String {
    hex(&Sha256::digest(token.as_bytes()))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0x0f)] as char);
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys() -> JwtKeys {
        JwtKeys::new(
            &SecretString::from("test-secret-0123456789-0123456789"),
            3600,
        )
    }

    const NOW_MS: i64 = 1_800_000_000_000;
    const NOW: Timestamp = Timestamp::from_millis(NOW_MS);

    /// A JWT of this header and payload, HS256-signed with `secret` (whatever `alg` says).
    fn signed(secret: &str, header: &serde_json::Value, payload: &str) -> String {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let message = format!("{}.{}", b64.encode(header.to_string()), b64.encode(payload));
        let mac = hmac256(secret.as_bytes(), &[message.as_bytes()]);
        format!("{message}.{}", b64.encode(mac))
    }

    /// The fast path of access tokens answers as the generic decoder does: the same
    /// claims, or an error (the same kind for a token that is valid at some time).
    fn same_answer(k: &JwtKeys, token: &str) {
        let well_formed = k
            .decode::<AccessClaims>(token, AUTH_AUDIENCE, Timestamp::from_millis(0))
            .is_ok();
        // after every `nbf` in the past of the system clock, before every one in its future
        for now in [
            NOW,
            NOW.plus_secs(7200),
            Timestamp::from_millis(1_500_000_000_000),
        ] {
            let fast = k.decode_access_hs256(token, now);
            let slow = k.decode::<AccessClaims>(token, AUTH_AUDIENCE, now);
            match (&fast, &slow) {
                (Ok(f), Ok(s)) => assert_eq!(
                    (&f.sub, f.exp, &f.sid, f.iat, f.iat_ms),
                    (&s.sub, s.exp, &s.sid, s.iat, s.iat_ms),
                    "{token}"
                ),
                (Err(f), Err(s)) if well_formed => assert_eq!(f, s, "{token}"),
                (Err(_), Err(_)) => {}
                _ => panic!("{token} at {now:?}: fast {fast:?}, generic {slow:?}"),
            }
        }
    }

    #[test]
    fn the_access_fast_path_answers_as_the_generic_decoder() {
        let secret = "test-secret-0123456789-0123456789";
        let k = keys();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let exp = NOW_MS / 1000 + 60;
        let mut tokens = vec![
            k.issue_access(UserId::new_v4(), Some("s-1"), NOW).unwrap(),
            k.issue_access(UserId::new_v4(), None, NOW).unwrap(),
            // signed with another secret
            JwtKeys::new(&SecretString::from("another secret"), 3600)
                .issue_access(UserId::new_v4(), None, NOW)
                .unwrap(),
            // other algorithms, and none
            jsonwebtoken::encode(
                &Header::new(Algorithm::HS512),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}),
                &EncodingKey::from_secret(secret.as_bytes()),
            )
            .unwrap(),
            signed(
                secret,
                &json!({"alg": "none"}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            signed(
                secret,
                &json!({"typ": "JWT"}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            signed(
                secret,
                &json!({"alg": "HS256", "kid": "x"}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            // headers jsonwebtoken's `Header` refuses: a typed member of the wrong type,
            // an unknown member that is not a string
            signed(
                secret,
                &json!({"alg": "HS256", "typ": 1}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            signed(
                secret,
                &json!({"alg": "HS256", "x": 1}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            signed(
                secret,
                &json!({"alg": "HS256", "x": "y", "cty": "c"}),
                &json!({"sub": "u", "exp": exp, "aud": AUTH_AUDIENCE}).to_string(),
            ),
            // not JSON, not a JWT
            signed(secret, &hs, "not json"),
            "a.b".to_owned(),
            "a.b.c.d".to_owned(),
            String::new(),
            "...".to_owned(),
        ];
        let audiences = [
            json!(AUTH_AUDIENCE),
            json!([AUTH_AUDIENCE]),
            json!(["other", AUTH_AUDIENCE]),
            json!(["other"]),
            json!("fastapi-users:reset"),
            json!(42),
            json!(null),
        ];
        let exps = [
            json!(exp),
            json!(NOW_MS / 1000 - 1),
            json!(-5),
            json!(1.5e9),
            json!("9999999999"),
            json!(null),
        ];
        let subs = [json!("u-1"), json!(7), json!(null)];
        let extras = [
            json!({}),
            json!({"sid": "s"}),
            json!({"sid": 3}),
            json!({"iat": 1.7e9, "iat_ms": 1_700_000_000_123_i64}),
            json!({"iat": "x"}),
            // (the generic decoder reads the system clock for `nbf`: values far from
            // both clocks)
            json!({"nbf": 1_000_000_000}),
            json!({"nbf": 4_000_000_000_u64}),
            json!({"nbf": 1.0e9}),
            json!({"nbf": 4.0e9}),
            json!({"nbf": null}),
            json!({"nbf": -1}),
            json!({"nbf": "1000000000"}),
            json!({"jti": "j", "extra": [1, 2]}),
        ];
        for aud in &audiences {
            for e in &exps {
                for sub in &subs {
                    for extra in &extras {
                        let mut claims = extra.as_object().unwrap().clone();
                        for (name, value) in [("aud", aud), ("exp", e), ("sub", sub)] {
                            if !value.is_null() {
                                claims.insert(name.into(), value.clone());
                            }
                        }
                        tokens.push(signed(
                            secret,
                            &hs,
                            &serde_json::Value::Object(claims).to_string(),
                        ));
                    }
                }
            }
        }
        // tampered: a payload under another token's signature, padding, a cut signature
        let good = tokens[0].clone();
        let (head, _) = good.rsplit_once('.').unwrap();
        let (_, other_sig) = tokens[1].rsplit_once('.').unwrap();
        tokens.push(format!("{head}.{other_sig}"));
        tokens.push(format!("{good}="));
        tokens.push(good[..good.len() - 2].to_owned());
        tokens.push(format!("{good}.x"));
        for t in &tokens {
            same_answer(&k, t);
        }
        assert!(k.decode_access_hs256(&tokens[0], NOW).is_ok());
    }

    #[test]
    fn access_tokens_round_trip() {
        let k = keys();
        let id = UserId::new_v4();
        let t = k
            .issue_access(id, Some("s-1"), NOW.plus_millis(123))
            .unwrap();
        let c = k.decode_access(&t, NOW.plus_millis(1000)).unwrap();
        assert_eq!(c.sub, id.to_string());
        assert_eq!(c.sid.as_deref(), Some("s-1"));
        assert_eq!(c.exp, NOW_MS / 1000 + 3600);
        assert_eq!(c.issued_at_ms(3600), NOW_MS + 123);
        assert_eq!(
            k.decode_access(&t, NOW.plus_secs(3600)).unwrap_err(),
            TokenError::Expired
        );
    }

    #[test]
    fn fastapi_users_tokens_derive_iat_from_exp() {
        let k = keys();
        let t = k
            .encode(&json!({"sub": "x", "aud": ["fastapi-users:auth"], "exp": NOW_MS / 1000 + 100}))
            .unwrap();
        let c = k.decode_access(&t, NOW).unwrap();
        assert_eq!(c.issued_at_ms(3600), (NOW_MS / 1000 + 100 - 3600) * 1000);
        // a plain-string audience is accepted too
        let t = k
            .encode(&json!({"sub": "x", "aud": "fastapi-users:auth", "exp": NOW_MS / 1000 + 100}))
            .unwrap();
        assert!(k.decode_access(&t, NOW).is_ok());
    }

    #[test]
    fn other_audiences_secrets_and_algorithms_are_refused() {
        let k = keys();
        let exp = NOW_MS / 1000 + 100;
        let wrong_aud = k
            .encode(&json!({"sub": "x", "aud": "fastapi-users:reset", "exp": exp}))
            .unwrap();
        assert_eq!(
            k.decode_access(&wrong_aud, NOW).unwrap_err(),
            TokenError::Invalid
        );
        let no_aud = k.encode(&json!({"sub": "x", "exp": exp})).unwrap();
        assert_eq!(
            k.decode_access(&no_aud, NOW).unwrap_err(),
            TokenError::Invalid
        );
        let other = JwtKeys::new(
            &SecretString::from("another-secret-0123456789-01234567"),
            3600,
        );
        let t = other.issue_access(UserId::new_v4(), None, NOW).unwrap();
        assert_eq!(k.decode_access(&t, NOW).unwrap_err(), TokenError::Invalid);
        let hs512 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS512),
            &json!({"sub": "x", "aud": "fastapi-users:auth", "exp": exp}),
            &EncodingKey::from_secret(b"test-secret-0123456789-0123456789"),
        )
        .unwrap();
        assert_eq!(
            k.decode_access(&hs512, NOW).unwrap_err(),
            TokenError::Invalid
        );
        let b64 = |v: serde_json::Value| {
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
        };
        let none = format!(
            "{}.{}.",
            b64(json!({"alg": "none", "typ": "JWT"})),
            b64(json!({"sub": "x", "aud": "fastapi-users:auth", "exp": exp}))
        );
        assert_eq!(
            k.decode_access(&none, NOW).unwrap_err(),
            TokenError::Invalid
        );
        assert_eq!(
            k.decode_access("garbage", NOW).unwrap_err(),
            TokenError::Invalid
        );
    }

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

    #[test]
    fn token_hashes_are_hex_sha256() {
        assert_eq!(
            token_hash("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(random_token(32).len(), 43);
    }

    mod fuzz {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(512))]

            #[test]
            fn arbitrary_strings_are_never_accepted(s in ".{0,300}") {
                let k = keys();
                prop_assert!(k.decode_access(&s, NOW).is_err());
                prop_assert!(k.decode::<serde_json::Value>(&s, RESET_AUDIENCE, NOW).is_err());
            }

            #[test]
            fn jwt_shaped_garbage_is_never_accepted(a in "[A-Za-z0-9_-]{0,80}", b in "[A-Za-z0-9_-]{0,200}", c in "[A-Za-z0-9_-]{0,90}") {
                let k = keys();
                let token = format!("{a}.{b}.{c}");
                prop_assert!(k.decode_access(&token, NOW).is_err());
            }

            #[test]
            fn any_claims_signed_with_another_key_are_refused(sub in ".{0,40}", exp in any::<i64>(), extra in ".{0,20}") {
                let other = JwtKeys::new(&SecretString::from("a-different-secret-0123456789-012345"), 3600);
                let t = other.encode(&json!({"sub": sub, "aud": AUTH_AUDIENCE, "exp": exp, "x": extra})).unwrap();
                prop_assert!(keys().decode_access(&t, NOW).is_err());
            }

            #[test]
            fn any_claims_signed_with_our_key_decode_or_fail_cleanly(sub in ".{0,40}", exp in any::<i64>(), aud in prop_oneof![Just(AUTH_AUDIENCE.to_owned()), ".{0,20}"]) {
                let k = keys();
                let t = k.encode(&json!({"sub": sub, "aud": aud, "exp": exp})).unwrap();
                let r = k.decode_access(&t, NOW);
                // a negative `exp` is no NumericDate at all: malformed, not expired
                if aud != AUTH_AUDIENCE || exp < 0 {
                    prop_assert_eq!(r.unwrap_err(), TokenError::Invalid);
                } else if exp <= NOW_MS / 1000 {
                    prop_assert_eq!(r.unwrap_err(), TokenError::Expired);
                } else {
                    prop_assert_eq!(r.unwrap().sub, sub);
                }
            }
        }
    }
}
