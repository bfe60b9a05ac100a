//! id_token verification: the header (an alg the provider and we both accept, a `kid`
//! the JWKS knows, a key of that alg) and the signature, then the claims: `iss` (with
//! Google's bare issuer), `aud`/`azp`, `exp` and `iat` with leeway, `nonce`, `sub`, and
//! `email_verified` however it is spelled. It knows the provider only through what the
//! client hands it: the announced algorithms, the issuer, the key a kid names.

use jsonwebtoken::{Algorithm, AlgorithmFamily, Validation};
use serde::Deserialize;
use serde_json::Value;
use users_domain::crypto::constant_time_eq;

use crate::error::{invalid, jwt_error, OAuthError};
use crate::identity::{email_verified, Identity};
use crate::keys::PublishedKey;

/// Google's issuer, the default of `GOOGLE_ISSUER_URL`.
pub const GOOGLE_ISSUER: &str = "https://accounts.google.com";

/// Google documents that its id_tokens may carry the issuer without the scheme.
const GOOGLE_BARE_ISSUER: &str = "accounts.google.com";

/// Clock skew tolerated on `exp` and `iat`.
const LEEWAY_SECS: i64 = 60;

#[derive(Deserialize)]
#[serde(untagged)]
enum Audience {
    One(String),
    Many(Vec<String>),
}

#[derive(Deserialize)]
struct IdTokenClaims {
    iss: Option<String>,
    sub: Option<String>,
    aud: Option<Audience>,
    azp: Option<String>,
    exp: Option<i64>,
    iat: Option<i64>,
    nonce: Option<String>,
    email: Option<String>,
    email_verified: Option<Value>,
}

/// The algorithm and the key id an id_token's header names. Only asymmetric algorithms
/// the provider announced (`accepted`) are taken from the header; anything else opens
/// the alg-confusion attacks (HS256 keyed with the public key, "none").
pub(crate) fn header(
    id_token: &str,
    accepted: &[Algorithm],
) -> Result<(Algorithm, String), OAuthError> {
    let header = jsonwebtoken::decode_header(id_token)
        .map_err(|_| invalid("malformed header, or an unknown alg"))?;
    let alg = header.alg;
    if !accepted.contains(&alg) {
        return Err(invalid(format!("alg {alg:?} is not accepted")));
    }
    let kid = header.kid.ok_or_else(|| invalid("no kid in the header"))?;
    Ok((alg, kid))
}

/// What an id_token's claims must say: who issued it, for whom, the sign-in's nonce,
/// and the caller's clock (unix seconds).
pub(crate) struct Expected<'a> {
    pub(crate) issuer: &'a str,
    pub(crate) client_id: &'a str,
    pub(crate) nonce: &'a str,
    pub(crate) now_secs: i64,
}

/// Checks an id_token whose header [`header`] read: its signature with `published` (the
/// key its kid names), then its claims against `expected`.
pub(crate) fn verify(
    id_token: &str,
    alg: Algorithm,
    kid: &str,
    published: &PublishedKey,
    expected: &Expected<'_>,
) -> Result<Identity, OAuthError> {
    // A key published for one algorithm verifies no other (an RSA key announced
    // for RS256 does not verify PS256), and an RSA key never an ECDSA signature.
    let family_fits = match alg {
        Algorithm::ES256 => published.key.family() == AlgorithmFamily::Ec,
        _ => published.key.family() == AlgorithmFamily::Rsa,
    };
    if !family_fits || published.alg.is_some_and(|a| a != alg) {
        return Err(invalid(format!("the key {kid:?} is not for alg {alg:?}")));
    }

    // Time and audience checks use the caller's clock and rules, below.
    let mut validation = Validation::new(alg);
    validation.validate_exp = false;
    validation.validate_nbf = false;
    validation.validate_aud = false;
    validation.required_spec_claims.clear();
    let data = jsonwebtoken::decode::<IdTokenClaims>(id_token, &published.key, &validation)
        .map_err(|e| invalid(jwt_error(e.kind())))?;

    check_claims(
        data.claims,
        &accepted_issuers(expected.issuer),
        expected.client_id,
        expected.nonce,
        expected.now_secs,
    )
}

fn accepted_issuers(issuer: &str) -> Vec<String> {
    let mut issuers = vec![issuer.to_owned()];
    if issuer.trim_end_matches('/') == GOOGLE_ISSUER {
        issuers.push(GOOGLE_BARE_ISSUER.to_owned());
    }
    issuers
}

fn check_claims(
    claims: IdTokenClaims,
    issuers: &[String],
    client_id: &str,
    expected_nonce: &str,
    now: i64,
) -> Result<Identity, OAuthError> {
    match claims.iss.as_deref() {
        Some(iss) if issuers.iter().any(|i| i == iss) => {}
        Some(_) => return Err(invalid("iss is not the provider")),
        None => return Err(invalid("no iss")),
    }

    let audiences = match claims.aud {
        Some(Audience::One(aud)) => vec![aud],
        Some(Audience::Many(auds)) => auds,
        None => return Err(invalid("no aud")),
    };
    if !audiences.iter().any(|a| a == client_id) {
        return Err(invalid("aud is not this client"));
    }
    // OpenID Connect Core 3.1.3.7: with several audiences the authorized party must be
    // us, and when named it must be us anyway.
    match claims.azp.as_deref() {
        Some(azp) if azp != client_id => return Err(invalid("azp is not this client")),
        None if audiences.len() > 1 => return Err(invalid("several audiences and no azp")),
        _ => {}
    }

    let exp = claims.exp.ok_or_else(|| invalid("no exp"))?;
    if now > exp.saturating_add(LEEWAY_SECS) {
        return Err(invalid("expired"));
    }
    let iat = claims.iat.ok_or_else(|| invalid("no iat"))?;
    if iat > now.saturating_add(LEEWAY_SECS) {
        return Err(invalid("issued in the future"));
    }

    let nonce = claims.nonce.ok_or_else(|| invalid("no nonce"))?;
    if !constant_time_eq(nonce.as_bytes(), expected_nonce.as_bytes()) {
        return Err(invalid("nonce mismatch"));
    }

    let subject = claims.sub.filter(|s| !s.is_empty());
    let subject = subject.ok_or_else(|| invalid("no sub"))?;
    Ok(Identity {
        subject,
        email: claims.email,
        email_verified: email_verified(claims.email_verified.as_ref()),
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use serde_json::json;

    const CLIENT: &str = "client-1";
    const NOW: i64 = 1_700_000_000;

    fn claims(value: Value) -> IdTokenClaims {
        serde_json::from_value(value).unwrap()
    }

    fn good() -> Value {
        json!({
            "iss": "https://issuer.example",
            "aud": CLIENT,
            "sub": "42",
            "exp": NOW + 3600,
            "iat": NOW,
            "nonce": "n-1",
            "email": "a@example.com",
            "email_verified": true,
        })
    }

    fn check(value: Value) -> Result<Identity, OAuthError> {
        check_claims(
            claims(value),
            &accepted_issuers("https://issuer.example"),
            CLIENT,
            "n-1",
            NOW,
        )
    }

    fn with(key: &str, v: Value) -> Value {
        let mut c = good();
        c[key] = v;
        c
    }

    fn without(key: &str) -> Value {
        let mut c = good();
        c.as_object_mut().unwrap().remove(key);
        c
    }

    #[test]
    fn good_claims_give_the_identity() {
        assert_eq!(
            check(good()).unwrap(),
            Identity {
                subject: "42".into(),
                email: Some("a@example.com".into()),
                email_verified: true,
            }
        );
    }

    #[test]
    fn google_issuer_variants_accepted_only_for_google() {
        let google = accepted_issuers(GOOGLE_ISSUER);
        assert!(google.contains(&"https://accounts.google.com".to_owned()));
        assert!(google.contains(&"accounts.google.com".to_owned()));
        assert_eq!(accepted_issuers("https://accounts.google.com/").len(), 2);

        let other = accepted_issuers("http://127.0.0.1:4000");
        assert_eq!(other, vec!["http://127.0.0.1:4000".to_owned()]);

        let google_claims = |iss: &str| {
            let mut c = good();
            c["iss"] = json!(iss);
            check_claims(claims(c), &google, CLIENT, "n-1", NOW)
        };
        assert!(google_claims("https://accounts.google.com").is_ok());
        assert!(google_claims("accounts.google.com").is_ok());
        assert!(google_claims("http://accounts.google.com").is_err());
        assert!(check(with("iss", json!("accounts.google.com"))).is_err());
        assert!(check(with("iss", json!("issuer.example"))).is_err());
    }

    #[test]
    fn email_verified_as_bool_or_string() {
        let verified = |v: Value| check(with("email_verified", v)).unwrap().email_verified;
        assert!(verified(json!(true)));
        assert!(verified(json!("true")));
        assert!(!verified(json!(false)));
        assert!(!verified(json!("false")));
        assert!(!verified(json!("yes")));
        assert!(!verified(json!(1)));
        let absent = check(without("email_verified")).unwrap();
        assert!(!absent.email_verified);
        let no_email = check(without("email")).unwrap();
        assert_eq!(no_email.email, None);
    }

    #[test]
    fn audience_rules() {
        assert!(check(with("aud", json!("someone-else"))).is_err());
        assert!(check(without("aud")).is_err());
        assert!(check(with("aud", json!([CLIENT]))).is_ok());
        // Several audiences need azp naming us.
        assert!(check(with("aud", json!([CLIENT, "other"]))).is_err());
        let mut c = with("aud", json!([CLIENT, "other"]));
        c["azp"] = json!(CLIENT);
        assert!(check(c).is_ok());
        assert!(check(with("azp", json!("other"))).is_err());
    }

    #[test]
    fn time_rules_with_leeway() {
        assert!(check(with("exp", json!(NOW - 60))).is_ok());
        assert!(check(with("exp", json!(NOW - 61))).is_err());
        assert!(check(with("iat", json!(NOW + 60))).is_ok());
        assert!(check(with("iat", json!(NOW + 61))).is_err());
        assert!(check(without("exp")).is_err());
        assert!(check(without("iat")).is_err());
    }

    #[test]
    fn nonce_and_subject_required() {
        assert!(check(with("nonce", json!("n-2"))).is_err());
        assert!(check(with("nonce", json!("n-10"))).is_err());
        assert!(check(without("nonce")).is_err());
        assert!(check(without("sub")).is_err());
        assert!(check(with("sub", json!(""))).is_err());
        assert!(matches!(
            check(with("nonce", json!("x"))),
            Err(OAuthError::InvalidIdToken(_))
        ));
    }
}
