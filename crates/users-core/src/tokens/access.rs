//! Access tokens (docs/sessions-and-tokens.md): HS256 with `JWT_SECRET` in
//! fastapi-users' format, or signed by the asymmetric key ring (`keyring.rs`), with the
//! session's id as `sid`. Their check runs on every authenticated request.

use base64::Engine;
use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use users_domain::crypto::random_token;
use users_domain::{Timestamp, UserId};

use super::{JwtKeys, TokenError};

pub const AUTH_AUDIENCE: &str = "fastapi-users:auth";

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
    /// The names of the user's roles (RFC 9068 §2.2.3.1), only when there are any.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    roles: &'a [String],
    #[serde(skip_serializing_if = "Option::is_none")]
    iss: Option<&'a str>,
}

/// A present `nbf` as `decode` reads it (see [`numeric`]); `null` is kept, to be refused.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<serde_json::Value>, D::Error> {
    serde_json::Value::deserialize(d).map(Some)
}

/// `nbf` as `decode` reads it: an unsigned integer, or a finite non-negative float
/// rounded; anything else is refused.
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

/// `aud`: one audience, or several.
#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

/// The claims of an HS256 access token that the fast path reads.
#[derive(Deserialize)]
struct HsClaims {
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

impl JwtKeys {
    /// A new access token for `user` in session `sid`, issued at `now`, carrying the
    /// names of the user's `roles` (no `roles` claim when there are none).
    pub fn issue_access(
        &self,
        user: UserId,
        sid: Option<&str>,
        roles: &[String],
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
            roles,
            iss: None,
        };
        let Some(ring) = &self.ring else {
            return self.encode(&claims);
        };
        let key = ring
            .signer(now)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidKeyFormat)?;
        let mut header = Header::new(ring.algorithm.jwt());
        header.kid = Some(key.kid.clone());
        key.sign_jwt(
            &header,
            &AccessClaimsOut {
                iss: Some(&self.issuer),
                ..claims
            },
        )
        .map_err(|_| jsonwebtoken::errors::ErrorKind::InvalidKeyFormat.into())
    }

    /// Checks an access token: HS256 with `JWT_SECRET`, or, with an asymmetric
    /// `JWT_ALGORITHM`, the algorithm and a published key its `kid` names, and `iss`.
    pub fn decode_access(&self, token: &str, now: Timestamp) -> Result<AccessClaims, TokenError> {
        let Some(ring) = &self.ring else {
            return self.decode_access_hs256(token, now);
        };
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Invalid)?;
        // the provider's access tokens (RFC 9068) are for other services, never for ours
        if header.alg != ring.algorithm.jwt() || super::is_access_token_typ(header.typ.as_deref()) {
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
        if header.alg != Algorithm::HS256 || super::is_access_token_typ(header.typ.as_deref()) {
            return Err(TokenError::Invalid);
        }
        let payload = b64.decode(payload).map_err(|_| TokenError::Invalid)?;
        let claims: HsClaims = serde_json::from_slice(&payload).map_err(|_| TokenError::Invalid)?;
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
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::tokens::RESET_AUDIENCE;
    use jsonwebtoken::EncodingKey;
    use secrecy::SecretString;
    use serde_json::json;
    use users_domain::crypto::hmac256;

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

    /// The payload of a JWT, unverified.
    fn payload(token: &str) -> serde_json::Value {
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let part = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&b64.decode(part).unwrap()).unwrap()
    }

    #[test]
    fn roles_are_carried_only_when_there_are_some() {
        let k = keys();
        let roles = ["billing".to_owned(), "support".to_owned()];
        let with = k
            .issue_access(UserId::new_v4(), Some("s-1"), &roles, NOW)
            .unwrap();
        assert_eq!(payload(&with)["roles"], json!(["billing", "support"]));
        // and the token still checks out
        assert_eq!(
            k.decode_access(&with, NOW).unwrap().sid.as_deref(),
            Some("s-1")
        );
        let without = k
            .issue_access(UserId::new_v4(), Some("s-1"), &[], NOW)
            .unwrap();
        assert!(payload(&without).get("roles").is_none());
    }

    #[test]
    fn the_access_fast_path_answers_as_the_generic_decoder() {
        let secret = "test-secret-0123456789-0123456789";
        let k = keys();
        let hs = json!({"alg": "HS256", "typ": "JWT"});
        let exp = NOW_MS / 1000 + 60;
        let mut tokens = vec![
            k.issue_access(UserId::new_v4(), Some("s-1"), &[], NOW)
                .unwrap(),
            k.issue_access(UserId::new_v4(), None, &[], NOW).unwrap(),
            // signed with another secret
            JwtKeys::new(&SecretString::from("another secret"), 3600)
                .issue_access(UserId::new_v4(), None, &[], NOW)
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
            .issue_access(id, Some("s-1"), &[], NOW.plus_millis(123))
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
        let t = other
            .issue_access(UserId::new_v4(), None, &[], NOW)
            .unwrap();
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
