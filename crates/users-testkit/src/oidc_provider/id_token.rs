//! The ID tokens the provider issues, honest or spoiled the way [`Tamper`] says.

use super::keys::KEY_JWK;
use super::*;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

/// How the id_tokens issued from now on are spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tamper {
    None,
    WrongAudience,
    WrongIssuer,
    Expired,
    IssuedInFuture,
    WrongNonce,
    MissingNonce,
    /// `alg: none`, empty signature.
    Unsigned,
    /// A valid token with one signature byte flipped.
    BadSignature,
    /// Signed by a key other than the one its kid names.
    OtherKey,
    /// A kid the JWKS never lists.
    UnknownKid,
    /// HS256 keyed with the public key's modulus: the alg-confusion attack.
    Hs256WithPublicKey,
    /// The token response carries no id_token at all.
    NoIdToken,
    /// Signed with another key, under that key's own kid and alg (another provider's
    /// key, say): a valid signature by a key this provider does not publish.
    SignedWith(TestKey),
}

/// The claims of an untampered ID token of `grant`.
fn honest_claims(s: &State, grant: &Grant, now: i64) -> Value {
    let identity = &grant.identity;
    let mut claims = json!({
        "iss": s.base_url,
        "aud": OidcProvider::CLIENT_ID,
        "azp": OidcProvider::CLIENT_ID,
        "sub": identity.sub,
        "iat": now,
        "exp": now + 3600,
    });
    if let Some(nonce) = &grant.nonce {
        claims["nonce"] = json!(nonce);
    }
    if s.email_in_id_token {
        if let Some(email) = &identity.email {
            claims["email"] = json!(email);
        }
        claims["email_verified"] = json!(identity.email_verified);
    }
    claims
}

pub(super) fn id_token(s: &State, grant: &Grant) -> Option<String> {
    let now = unix_now();
    let mut claims = honest_claims(s, grant, now);
    let signing = if s.rotated { TestKey::OtherRsa } else { s.key };
    let mut key = signing.encoding_key();
    let mut kid = signing.kid();
    let mut alg = signing.alg();

    match s.tamper {
        Tamper::None | Tamper::BadSignature => {}
        Tamper::SignedWith(other) => {
            key = other.encoding_key();
            kid = other.kid();
            alg = other.alg();
        }
        Tamper::NoIdToken => return None,
        Tamper::WrongAudience => claims["aud"] = json!("someone-else.apps.example"),
        Tamper::WrongIssuer => claims["iss"] = json!("https://issuer.invalid"),
        Tamper::Expired => {
            claims["iat"] = json!(now - 7200);
            claims["exp"] = json!(now - 3600);
        }
        Tamper::IssuedInFuture => {
            claims["iat"] = json!(now + 3600);
            claims["exp"] = json!(now + 7200);
        }
        Tamper::WrongNonce => claims["nonce"] = json!("not-the-nonce"),
        Tamper::MissingNonce => {
            claims.as_object_mut().unwrap().remove("nonce");
        }
        Tamper::OtherKey => {
            let other = match signing {
                TestKey::Rsa => TestKey::OtherRsa,
                TestKey::OtherRsa | TestKey::Ec => TestKey::Rsa,
            };
            key = other.encoding_key();
            alg = other.alg();
        }
        Tamper::UnknownKid => kid = "no-such-kid",
        Tamper::Unsigned => {
            let header = json!({ "alg": "none", "typ": "JWT", "kid": kid });
            return Some(format!(
                "{}.{}.",
                URL_SAFE_NO_PAD.encode(header.to_string()),
                URL_SAFE_NO_PAD.encode(claims.to_string()),
            ));
        }
        Tamper::Hs256WithPublicKey => {
            let mut header = Header::new(Algorithm::HS256);
            header.kid = Some(kid.to_owned());
            let jwk: Value = serde_json::from_str(KEY_JWK).unwrap();
            let secret = jwk["n"].as_str().unwrap().as_bytes().to_vec();
            let key = EncodingKey::from_secret(&secret);
            return Some(jsonwebtoken::encode(&header, &claims, &key).unwrap());
        }
    }

    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    let token = jsonwebtoken::encode(&header, &claims, &key).unwrap();
    if s.tamper == Tamper::BadSignature {
        let (signed, signature) = token.rsplit_once('.').unwrap();
        let mut signature = URL_SAFE_NO_PAD.decode(signature).unwrap();
        signature[0] ^= 0x01;
        return Some(format!("{signed}.{}", URL_SAFE_NO_PAD.encode(signature)));
    }
    Some(token)
}
