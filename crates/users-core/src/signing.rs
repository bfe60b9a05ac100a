//! Asymmetric signing keys of access tokens (CONTRACT.md §11): `JWT_ALGORITHM` EdDSA
//! (Ed25519), ES256 (P-256) or RS256 (RSA ≥ 2048). A key is read from a PKCS#8 PEM
//! (`JWT_PRIVATE_KEY`) or generated; its public half is published as a JWK whose `kid`
//! is its RFC 7638 thumbprint.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs8::der::pem::LineEnding;
use pkcs8::{DecodePrivateKey, EncodePrivateKey, ObjectIdentifier, PrivateKeyInfo};

const OID_ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");
const OID_EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const OID_P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const OID_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");

/// The algorithms access tokens may be signed with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SigningAlgorithm {
    /// HMAC with `JWT_SECRET`: fastapi-users' tokens; nothing to publish.
    Hs256,
    EdDsa,
    Es256,
    Rs256,
}

impl SigningAlgorithm {
    pub fn parse(s: &str) -> Option<SigningAlgorithm> {
        match s {
            "HS256" => Some(SigningAlgorithm::Hs256),
            "EdDSA" => Some(SigningAlgorithm::EdDsa),
            "ES256" => Some(SigningAlgorithm::Es256),
            "RS256" => Some(SigningAlgorithm::Rs256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "HS256",
            SigningAlgorithm::EdDsa => "EdDSA",
            SigningAlgorithm::Es256 => "ES256",
            SigningAlgorithm::Rs256 => "RS256",
        }
    }

    pub fn jwt(self) -> Algorithm {
        match self {
            SigningAlgorithm::Hs256 => Algorithm::HS256,
            SigningAlgorithm::EdDsa => Algorithm::EdDSA,
            SigningAlgorithm::Es256 => Algorithm::ES256,
            SigningAlgorithm::Rs256 => Algorithm::RS256,
        }
    }

    /// The kind of key it takes, in words.
    fn key_kind(self) -> &'static str {
        match self {
            SigningAlgorithm::Hs256 => "a secret",
            SigningAlgorithm::EdDsa => "an Ed25519 key",
            SigningAlgorithm::Es256 => "a P-256 (prime256v1) key",
            SigningAlgorithm::Rs256 => "an RSA key",
        }
    }
}

/// Why a private key cannot be used; the message is for the operator.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not a PEM private key")]
    NotPem,
    #[error("an encrypted key; give an unencrypted PKCS#8 PEM (openssl pkcs8 -topk8 -nocrypt)")]
    Encrypted,
    #[error("a PKCS#1 RSA key; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)")]
    Pkcs1,
    #[error("a SEC1 EC key; convert it to PKCS#8 (openssl pkcs8 -topk8 -nocrypt)")]
    Sec1,
    #[error("a public key or certificate, not a private key")]
    Public,
    #[error("a PEM block `{0}`, not a PKCS#8 private key (`PRIVATE KEY`)")]
    OtherBlock(String),
    #[error("not a readable PKCS#8 key: {0}")]
    BadDer(String),
    #[error("an EC key on a curve other than P-256")]
    UnsupportedCurve,
    #[error("a key of an algorithm other than Ed25519, P-256 or RSA")]
    UnsupportedAlgorithm,
    #[error("JWT_ALGORITHM={configured} needs {needed}, but this is {found}")]
    Mismatch {
        configured: &'static str,
        needed: &'static str,
        found: &'static str,
    },
    #[error("an RSA key of {0} bits; at least 2048 are needed")]
    RsaTooSmall(usize),
    #[error("the key cannot be used: {0}")]
    Invalid(String),
}

/// A private key that signs access tokens, and its public JWK.
#[derive(Clone)]
pub struct SigningKey {
    pub kid: String,
    pub algorithm: SigningAlgorithm,
    pub encoding: EncodingKey,
    pub public_jwk: Jwk,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// What verifies this key's tokens.
    pub fn decoding_key(&self) -> Result<DecodingKey, KeyError> {
        DecodingKey::from_jwk(&self.public_jwk).map_err(|e| KeyError::Invalid(e.to_string()))
    }
}

/// Environment variables often carry a PEM with `\n` written out, or CRLFs.
fn normalise_pem(pem: &str) -> String {
    pem.trim()
        .trim_matches('"')
        .replace("\\n", "\n")
        .replace("\r\n", "\n")
}

/// Reads a PKCS#8 PEM private key for `algorithm`, telling apart every usual mistake.
pub fn load_private_key(pem: &str, algorithm: SigningAlgorithm) -> Result<SigningKey, KeyError> {
    let pem = normalise_pem(pem);
    let (label, der) = pkcs8::der::pem::decode_vec(pem.as_bytes()).map_err(|_| {
        if pem.contains("-----BEGIN ") {
            KeyError::BadDer("malformed PEM".into())
        } else {
            KeyError::NotPem
        }
    })?;
    match label {
        "PRIVATE KEY" => {}
        "ENCRYPTED PRIVATE KEY" => return Err(KeyError::Encrypted),
        "RSA PRIVATE KEY" => return Err(KeyError::Pkcs1),
        "EC PRIVATE KEY" => return Err(KeyError::Sec1),
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => return Err(KeyError::Public),
        other => return Err(KeyError::OtherBlock(other.to_owned())),
    }
    let info =
        PrivateKeyInfo::try_from(der.as_slice()).map_err(|e| KeyError::BadDer(e.to_string()))?;
    let found = if info.algorithm.oid == OID_ED25519 {
        SigningAlgorithm::EdDsa
    } else if info.algorithm.oid == OID_EC_PUBLIC_KEY {
        match info.algorithm.parameters_oid() {
            Ok(curve) if curve == OID_P256 => SigningAlgorithm::Es256,
            _ => return Err(KeyError::UnsupportedCurve),
        }
    } else if info.algorithm.oid == OID_RSA {
        SigningAlgorithm::Rs256
    } else {
        return Err(KeyError::UnsupportedAlgorithm);
    };
    if found != algorithm {
        return Err(KeyError::Mismatch {
            configured: algorithm.name(),
            needed: algorithm.key_kind(),
            found: found.key_kind(),
        });
    }
    let invalid = |e: &dyn std::fmt::Display| KeyError::Invalid(e.to_string());
    let (encoding, params) = match algorithm {
        SigningAlgorithm::EdDsa => {
            let key = ed25519_dalek::SigningKey::from_pkcs8_der(&der).map_err(|e| invalid(&e))?;
            (
                EncodingKey::from_ed_der(&der),
                ed25519_params(&key.verifying_key()),
            )
        }
        SigningAlgorithm::Es256 => {
            let key = p256::SecretKey::from_pkcs8_der(&der).map_err(|e| invalid(&e))?;
            (
                EncodingKey::from_ec_der(&der),
                p256_params(&key.public_key())?,
            )
        }
        SigningAlgorithm::Rs256 => {
            use rsa::pkcs1::EncodeRsaPrivateKey;
            use rsa::traits::PublicKeyParts;
            let key = rsa::RsaPrivateKey::from_pkcs8_der(&der).map_err(|e| invalid(&e))?;
            let bits = key.size() * 8;
            if bits < 2048 {
                return Err(KeyError::RsaTooSmall(bits));
            }
            // jsonwebtoken signs RS256 with a PKCS#1 key
            let pkcs1 = key.to_pkcs1_der().map_err(|e| invalid(&e))?;
            let public = key.to_public_key();
            let params = AlgorithmParameters::RSA(RSAKeyParameters {
                key_type: RSAKeyType::RSA,
                n: URL_SAFE_NO_PAD.encode(public.n().to_bytes_be()),
                e: URL_SAFE_NO_PAD.encode(public.e().to_bytes_be()),
            });
            (EncodingKey::from_rsa_der(pkcs1.as_bytes()), params)
        }
        SigningAlgorithm::Hs256 => return Err(KeyError::UnsupportedAlgorithm),
    };
    let public_jwk = jwk(algorithm, params);
    let kid = public_jwk.common.key_id.clone().unwrap_or_default();
    Ok(SigningKey {
        kid,
        algorithm,
        encoding,
        public_jwk,
    })
}

/// A new private key for `algorithm`, as an unencrypted PKCS#8 PEM.
pub fn generate_private_key(algorithm: SigningAlgorithm) -> Result<String, KeyError> {
    let mut rng = rand::rngs::OsRng;
    let invalid = |e: &dyn std::fmt::Display| KeyError::Invalid(e.to_string());
    let pem = match algorithm {
        SigningAlgorithm::EdDsa => ed25519_dalek::SigningKey::generate(&mut rng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| invalid(&e))?,
        SigningAlgorithm::Es256 => p256::SecretKey::random(&mut rng)
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| invalid(&e))?,
        SigningAlgorithm::Rs256 => rsa::RsaPrivateKey::new(&mut rng, 2048)
            .map_err(|e| invalid(&e))?
            .to_pkcs8_pem(LineEnding::LF)
            .map_err(|e| invalid(&e))?,
        SigningAlgorithm::Hs256 => return Err(KeyError::UnsupportedAlgorithm),
    };
    Ok(pem.to_string())
}

fn ed25519_params(key: &ed25519_dalek::VerifyingKey) -> AlgorithmParameters {
    AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
        key_type: OctetKeyPairType::OctetKeyPair,
        curve: EllipticCurve::Ed25519,
        x: URL_SAFE_NO_PAD.encode(key.as_bytes()),
    })
}

fn p256_params(key: &p256::PublicKey) -> Result<AlgorithmParameters, KeyError> {
    use p256::elliptic_curve::sec1::ToEncodedPoint;
    let point = key.to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err(KeyError::Invalid(
            "the P-256 point has no coordinates".into(),
        ));
    };
    Ok(AlgorithmParameters::EllipticCurve(
        EllipticCurveKeyParameters {
            key_type: EllipticCurveKeyType::EC,
            curve: EllipticCurve::P256,
            x: URL_SAFE_NO_PAD.encode(x),
            y: URL_SAFE_NO_PAD.encode(y),
        },
    ))
}

/// The public JWK: `use` sig, the JWS `alg`, and the RFC 7638 thumbprint as `kid`.
fn jwk(algorithm: SigningAlgorithm, params: AlgorithmParameters) -> Jwk {
    let mut jwk = Jwk {
        common: CommonParameters::default(),
        algorithm: params,
    };
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    let key_algorithm = match algorithm {
        SigningAlgorithm::EdDsa => KeyAlgorithm::EdDSA,
        SigningAlgorithm::Es256 => KeyAlgorithm::ES256,
        SigningAlgorithm::Rs256 | SigningAlgorithm::Hs256 => KeyAlgorithm::RS256,
    };
    jwk.common = CommonParameters {
        public_key_use: Some(PublicKeyUse::Signature),
        key_algorithm: Some(key_algorithm),
        key_id: Some(kid),
        ..Default::default()
    };
    jwk
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_load_sign_and_verify() {
        for alg in [
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
        ] {
            let pem = generate_private_key(alg).unwrap();
            assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"), "{pem}");
            let key = load_private_key(&pem, alg).unwrap();
            assert_eq!(key.kid.len(), 43, "a SHA-256 thumbprint");
            let token = jsonwebtoken::encode(
                &jsonwebtoken::Header::new(alg.jwt()),
                &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
                &key.encoding,
            )
            .unwrap();
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.validate_aud = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding_key().unwrap(), &v)
                .unwrap();
            let json = serde_json::to_value(&key.public_jwk).unwrap();
            assert_eq!(json["alg"], alg.name());
            assert_eq!(json["use"], "sig");
            assert!(json.get("d").is_none(), "never a private member: {json}");
            // literal \n and CRLF, as environment variables carry them
            let escaped = pem.replace('\n', "\\n");
            assert_eq!(load_private_key(&escaped, alg).unwrap().kid, key.kid);
            assert_eq!(
                load_private_key(&pem.replace('\n', "\r\n"), alg)
                    .unwrap()
                    .kid,
                key.kid
            );
        }
    }

    /// Signs a token with `key` and verifies it with its public JWK alone.
    fn signs_and_verifies(key: &SigningKey) {
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(key.algorithm.jwt()),
            &serde_json::json!({"sub": "x", "exp": 4_000_000_000u64}),
            &key.encoding,
        )
        .unwrap();
        let mut v = jsonwebtoken::Validation::new(key.algorithm.jwt());
        v.validate_aud = false;
        jsonwebtoken::decode::<serde_json::Value>(&token, &key.decoding_key().unwrap(), &v)
            .unwrap();
    }

    /// Keys an earlier version made and stored, and keys OpenSSL makes, load with the
    /// same kid (the thumbprint of the public members): a database keeps its keys and
    /// the tokens they signed, and a configured key keeps its kid, across a change of
    /// the library that parses them (fixtures/signing-keys/README.md).
    #[test]
    fn keys_made_earlier_or_elsewhere_keep_their_kid() {
        use SigningAlgorithm::{EdDsa, Es256, Rs256};
        for (name, pem, alg, kid) in [
            (
                "ed25519-dalek",
                include_str!("../fixtures/signing-keys/ed25519-dalek.pem"),
                EdDsa,
                "lzlXMDaLfSez1U5get5AEaSDMVBqUhlYVETDjGDzovY",
            ),
            (
                "p256-crate",
                include_str!("../fixtures/signing-keys/p256-crate.pem"),
                Es256,
                "4wJq728VYyN5HWnkekRapCqT48zwXek8uYXXiARll78",
            ),
            (
                "rsa-crate",
                include_str!("../fixtures/signing-keys/rsa-crate.pem"),
                Rs256,
                "ohG3xExCYhetEujDe7dludYNq9JNBTGOpSWyIb5eSOI",
            ),
            (
                "openssl-ed25519",
                include_str!("../fixtures/signing-keys/openssl-ed25519.pem"),
                EdDsa,
                "n1BfSqHxaSPWyyyUFGABXelbpPGg2XBMA80XIHtPSkw",
            ),
            (
                "openssl-p256",
                include_str!("../fixtures/signing-keys/openssl-p256.pem"),
                Es256,
                "dcZ8tSZ6vb3BOLtNFk4XxpHjh_jIVbYxDqR4oz3BZQk",
            ),
            (
                "openssl-rsa-3072",
                include_str!("../fixtures/signing-keys/openssl-rsa-3072.pem"),
                Rs256,
                "YUbQHTvOGCleTzJlyeppz6NYOfwQZQBukTywr2MUz5c",
            ),
            (
                "p256-no-public-key",
                include_str!("../fixtures/signing-keys/p256-no-public-key.pem"),
                Es256,
                "3auHhF2m8halQCEZoxwSt6zrHfxczRaQMuRNpOngRCA",
            ),
        ] {
            let key = load_private_key(pem, alg).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(key.kid, kid, "{name}");
            assert_eq!(key.public_jwk.common.key_id.as_deref(), Some(kid), "{name}");
            signs_and_verifies(&key);
        }
        for (name, pem, alg, error) in [
            (
                "openssl-rsa-1024",
                include_str!("../fixtures/signing-keys/openssl-rsa-1024.pem"),
                Rs256,
                KeyError::RsaTooSmall(1024),
            ),
            (
                "openssl-p384",
                include_str!("../fixtures/signing-keys/openssl-p384.pem"),
                Es256,
                KeyError::UnsupportedCurve,
            ),
            (
                "openssl-ed448",
                include_str!("../fixtures/signing-keys/openssl-ed448.pem"),
                EdDsa,
                KeyError::UnsupportedAlgorithm,
            ),
        ] {
            assert_eq!(load_private_key(pem, alg).unwrap_err(), error, "{name}");
        }
    }

    #[test]
    fn bad_keys_say_what_is_wrong() {
        let ed = generate_private_key(SigningAlgorithm::EdDsa).unwrap();
        assert!(matches!(
            load_private_key(&ed, SigningAlgorithm::Rs256),
            Err(KeyError::Mismatch {
                configured: "RS256",
                ..
            })
        ));
        let encrypted = ed.replace("PRIVATE KEY", "ENCRYPTED PRIVATE KEY");
        assert_eq!(
            load_private_key(&encrypted, SigningAlgorithm::EdDsa).unwrap_err(),
            KeyError::Encrypted
        );
        let pkcs1 = ed.replace("PRIVATE KEY", "RSA PRIVATE KEY");
        assert_eq!(
            load_private_key(&pkcs1, SigningAlgorithm::Rs256).unwrap_err(),
            KeyError::Pkcs1
        );
        let sec1 = ed.replace("PRIVATE KEY", "EC PRIVATE KEY");
        assert_eq!(
            load_private_key(&sec1, SigningAlgorithm::Es256).unwrap_err(),
            KeyError::Sec1
        );
        let public = ed.replace("PRIVATE KEY", "PUBLIC KEY");
        assert_eq!(
            load_private_key(&public, SigningAlgorithm::EdDsa).unwrap_err(),
            KeyError::Public
        );
        assert_eq!(
            load_private_key("garbage", SigningAlgorithm::EdDsa).unwrap_err(),
            KeyError::NotPem
        );
        assert!(matches!(
            load_private_key(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----",
                SigningAlgorithm::EdDsa
            ),
            Err(KeyError::BadDer(_))
        ));
        // a small RSA key
        let small = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, 1024)
            .unwrap()
            .to_pkcs8_pem(LineEnding::LF)
            .unwrap();
        assert_eq!(
            load_private_key(&small, SigningAlgorithm::Rs256).unwrap_err(),
            KeyError::RsaTooSmall(1024)
        );
    }
}
