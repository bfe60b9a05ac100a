//! Asymmetric signing keys of access tokens (docs/sessions-and-tokens.md): `JWT_ALGORITHM`
//! EdDSA (Ed25519), ES256 (P-256) or RS256 (RSA ≥ 2048). A key is read from a PKCS#8 PEM
//! (`JWT_PRIVATE_KEY`) or generated; its public half is published as a JWK whose `kid`
//! is its RFC 7638 thumbprint.
//!
//! Keys are generated, checked and used to sign by aws-lc-rs (jsonwebtoken's `aws_lc_rs`
//! backend signs with the same parser that checks them here). The RustCrypto `rsa`
//! crate is not used: its private-key operations leak timing (RUSTSEC-2023-0071, the
//! Marvin attack), and a test keeps it out of the dependencies. `pkcs8` only reads the
//! PEM and the PKCS#8 envelope (which algorithm, the RSA key inside); no key arithmetic.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, RsaPublicKeyComponents,
    ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::crypto::CryptoProvider;
use jsonwebtoken::jwk::{
    AlgorithmParameters, CommonParameters, EllipticCurve, EllipticCurveKeyParameters,
    EllipticCurveKeyType, Jwk, KeyAlgorithm, OctetKeyPairParameters, OctetKeyPairType,
    PublicKeyUse, RSAKeyParameters, RSAKeyType, ThumbprintHash,
};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey};
use pkcs8::der::asn1::UintRef;
use pkcs8::der::pem::{self, LineEnding};
use pkcs8::der::{Decode, Header, SliceReader, Tag};
use pkcs8::{ObjectIdentifier, PrivateKeyInfoRef};

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
    /// aws-lc-rs signs with RSA keys of at most 8192 bits.
    #[error("an RSA key of {0} bits; at most 8192 are supported")]
    RsaTooLarge(usize),
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
    /// The key as aws-lc-rs signs with it, read once when the key is loaded
    /// (`jsonwebtoken::encode` reads the DER again for every signature: for RSA a key
    /// check that costs a good part of a signature).
    prepared: std::sync::Arc<Prepared>,
}

/// A private key ready to sign.
enum Prepared {
    Ed(Ed25519KeyPair),
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
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
    /// Signs `claims` as a compact JWS (RFC 7515 §7.1) with `header`, whose `alg` must be
    /// this key's: the same bytes `jsonwebtoken::encode` makes (the header and the
    /// claims as JSON, base64url without padding, and the signature of the two), with
    /// the key read once rather than for every signature.
    pub fn sign_jwt<T: serde::Serialize>(
        &self,
        header: &jsonwebtoken::Header,
        claims: &T,
    ) -> Result<String, KeyError> {
        if header.alg != self.algorithm.jwt() {
            return Err(KeyError::Invalid(format!(
                "a header of {:?} for {} key",
                header.alg,
                self.algorithm.key_kind()
            )));
        }
        let bad_json = |e: serde_json::Error| KeyError::Invalid(e.to_string());
        let head = serde_json::to_vec(header).map_err(bad_json)?;
        let body = serde_json::to_vec(claims).map_err(bad_json)?;
        let mut out = String::with_capacity(
            (head.len() + body.len()) * 4 / 3 + 8 + self.signature_len() * 4 / 3,
        );
        URL_SAFE_NO_PAD.encode_string(&head, &mut out);
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&body, &mut out);
        let failed = |e: aws_lc_rs::error::Unspecified| KeyError::Invalid(e.to_string());
        let signature = match &*self.prepared {
            Prepared::Ed(pair) => pair.sign(out.as_bytes()).as_ref().to_vec(),
            Prepared::Ec(pair) => pair
                .sign(&SystemRandom::new(), out.as_bytes())
                .map_err(failed)?
                .as_ref()
                .to_vec(),
            Prepared::Rsa(pair) => {
                let mut sig = vec![0; pair.public_modulus_len()];
                pair.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    out.as_bytes(),
                    &mut sig,
                )
                .map_err(failed)?;
                sig
            }
        };
        out.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut out);
        Ok(out)
    }

    fn signature_len(&self) -> usize {
        match &*self.prepared {
            Prepared::Ed(_) | Prepared::Ec(_) => 64,
            Prepared::Rsa(pair) => pair.public_modulus_len(),
        }
    }

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

/// The DER of a PEM `PRIVATE KEY` block (PKCS#8); any other block is named.
fn pkcs8_der(pem: &str) -> Result<Vec<u8>, KeyError> {
    let pem = normalise_pem(pem);
    let (label, der) = pem::decode_vec(pem.as_bytes()).map_err(|_| {
        if pem.contains("-----BEGIN ") {
            KeyError::BadDer("malformed PEM".into())
        } else {
            KeyError::NotPem
        }
    })?;
    match label {
        "PRIVATE KEY" => Ok(der),
        "ENCRYPTED PRIVATE KEY" => Err(KeyError::Encrypted),
        "RSA PRIVATE KEY" => Err(KeyError::Pkcs1),
        "EC PRIVATE KEY" => Err(KeyError::Sec1),
        "PUBLIC KEY" | "RSA PUBLIC KEY" | "CERTIFICATE" => Err(KeyError::Public),
        other => Err(KeyError::OtherBlock(other.to_owned())),
    }
}

/// Reads a PKCS#8 PEM private key for `algorithm`, telling apart every usual mistake.
pub fn load_private_key(pem: &str, algorithm: SigningAlgorithm) -> Result<SigningKey, KeyError> {
    let der = pkcs8_der(pem)?;
    let info =
        PrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| KeyError::BadDer(e.to_string()))?;
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
    // Each key is checked by the very call jsonwebtoken makes on its bytes for every
    // signature, so a key that loads here also signs.
    let (encoding, params, prepared) = match algorithm {
        SigningAlgorithm::EdDsa => {
            // PKCS#8 v1 (OpenSSL) and v2 (with the public key, which must match)
            let pair = Ed25519KeyPair::from_pkcs8(&der).map_err(|e| invalid(&e))?;
            let params = ed25519_params(pair.public_key().as_ref());
            (EncodingKey::from_ed_der(&der), params, Prepared::Ed(pair))
        }
        SigningAlgorithm::Es256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der)
                .map_err(|e| invalid(&e))?;
            let params = p256_params(pair.public_key().as_ref())?;
            (EncodingKey::from_ec_der(&der), params, Prepared::Ec(pair))
        }
        // jsonwebtoken signs RS256 with a PKCS#1 key: the one inside the envelope
        SigningAlgorithm::Rs256 => rsa_key(info.private_key.as_bytes())?,
        SigningAlgorithm::Hs256 => return Err(KeyError::UnsupportedAlgorithm),
    };
    let public_jwk = jwk(algorithm, params);
    let kid = public_jwk.common.key_id.clone().unwrap_or_default();
    Ok(SigningKey {
        kid,
        algorithm,
        encoding,
        public_jwk,
        prepared: std::sync::Arc::new(prepared),
    })
}

/// An RS256 signing key and its public parameters, from a PKCS#1 `RSAPrivateKey`.
fn rsa_key(pkcs1: &[u8]) -> Result<(EncodingKey, AlgorithmParameters, Prepared), KeyError> {
    let pair = RsaKeyPair::from_der(pkcs1).map_err(|e| {
        // aws-lc-rs refuses a key of another size without saying its size; the
        // operator is told it
        match rsa_modulus_bits(pkcs1) {
            Some(bits) if bits < 2048 => KeyError::RsaTooSmall(bits),
            Some(bits) if bits > 8192 => KeyError::RsaTooLarge(bits),
            _ => KeyError::Invalid(e.to_string()),
        }
    })?;
    // aws-lc-rs takes 2048 to 8192 bits; the rule is ours all the same
    let bits = pair.public_modulus_len() * 8;
    if bits < 2048 {
        return Err(KeyError::RsaTooSmall(bits));
    }
    let public = RsaPublicKeyComponents::<Vec<u8>>::from(pair.public_key());
    let params = AlgorithmParameters::RSA(RSAKeyParameters {
        key_type: RSAKeyType::RSA,
        n: URL_SAFE_NO_PAD.encode(&public.n),
        e: URL_SAFE_NO_PAD.encode(&public.e),
    });
    Ok((
        EncodingKey::from_rsa_der(pkcs1),
        params,
        Prepared::Rsa(pair),
    ))
}

/// The size in bits of the modulus of a PKCS#1 `RSAPrivateKey` (`SEQUENCE { version,
/// modulus, … }`), read from the DER alone: for a key aws-lc-rs refuses.
fn rsa_modulus_bits(pkcs1: &[u8]) -> Option<usize> {
    let mut reader = SliceReader::new(pkcs1).ok()?;
    if Header::decode(&mut reader).ok()?.tag() != Tag::Sequence {
        return None;
    }
    let _version = UintRef::decode(&mut reader).ok()?;
    let modulus = UintRef::decode(&mut reader).ok()?;
    Some(modulus.as_bytes().len() * 8)
}

/// A new private key for `algorithm`, as an unencrypted PKCS#8 PEM (Ed25519 in v2,
/// with its public key; RSA of 2048 bits).
pub fn generate_private_key(algorithm: SigningAlgorithm) -> Result<String, KeyError> {
    let failed =
        |e: aws_lc_rs::error::Unspecified| KeyError::Invalid(format!("cannot generate a key: {e}"));
    let to_pem = |der: &[u8]| {
        pem::encode_string("PRIVATE KEY", LineEnding::LF, der)
            .map_err(|e| KeyError::Invalid(e.to_string()))
    };
    let rng = SystemRandom::new();
    match algorithm {
        SigningAlgorithm::EdDsa => to_pem(
            Ed25519KeyPair::generate_pkcs8(&rng)
                .map_err(failed)?
                .as_ref(),
        ),
        SigningAlgorithm::Es256 => to_pem(
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                .map_err(failed)?
                .as_ref(),
        ),
        SigningAlgorithm::Rs256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(failed)?;
            let der: Pkcs8V1Der<'static> = pair.as_der().map_err(failed)?;
            to_pem(der.as_ref())
        }
        SigningAlgorithm::Hs256 => Err(KeyError::UnsupportedAlgorithm),
    }
}

/// Makes aws-lc-rs the crypto of jsonwebtoken in this process, and says whether it is.
/// jsonwebtoken infers its provider from its features, and this workspace enables only
/// `aws_lc_rs` (a test holds the resolved graph to that). Were another dependency to
/// enable `rust_crypto` as well, jsonwebtoken would pick no provider and panic at the
/// first token; a process that calls this before any key is read has aws-lc-rs anyway,
/// and one that cannot have it learns so here rather than in a request.
pub fn install_crypto_provider() -> bool {
    let ours = &jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER;
    match CryptoProvider::install_default(ours) {
        Ok(()) => true,
        // already chosen (by an earlier call, or inferred at a first use): the same static?
        Err(current) => std::ptr::eq(current, ours),
    }
}

fn ed25519_params(public_key: &[u8]) -> AlgorithmParameters {
    AlgorithmParameters::OctetKeyPair(OctetKeyPairParameters {
        key_type: OctetKeyPairType::OctetKeyPair,
        curve: EllipticCurve::Ed25519,
        x: URL_SAFE_NO_PAD.encode(public_key),
    })
}

/// `point`: an uncompressed SEC1 point (0x04, x, y), as aws-lc-rs gives it.
fn p256_params(point: &[u8]) -> Result<AlgorithmParameters, KeyError> {
    let xy = match point.split_first() {
        Some((4, xy)) if xy.len() == 64 => xy,
        _ => {
            return Err(KeyError::Invalid(
                "the P-256 public key is not an uncompressed point".into(),
            ))
        }
    };
    let (x, y) = xy.split_at(32);
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

    /// A token signed with the prepared key is the one `jsonwebtoken::encode` makes
    /// (Ed25519 and RSA PKCS#1 v1.5 are deterministic: byte for byte; ECDSA is not: it
    /// verifies), and a header of another algorithm is refused.
    #[test]
    fn prepared_signatures_are_jsonwebtokens() {
        let claims = serde_json::json!({"sub": "x", "exp": 4_000_000_000u64, "n": "é\"<"});
        for alg in [
            SigningAlgorithm::EdDsa,
            SigningAlgorithm::Es256,
            SigningAlgorithm::Rs256,
        ] {
            let key = load_private_key(&generate_private_key(alg).unwrap(), alg).unwrap();
            let mut header = jsonwebtoken::Header::new(alg.jwt());
            header.kid = Some(key.kid.clone());
            header.typ = Some("at+jwt".into());
            let ours = key.sign_jwt(&header, &claims).unwrap();
            let theirs = jsonwebtoken::encode(&header, &claims, &key.encoding).unwrap();
            if alg == SigningAlgorithm::Es256 {
                let signed = |t: &str| t.rsplit_once('.').unwrap().0.to_owned();
                assert_eq!(signed(&ours), signed(&theirs), "{alg:?}");
            } else {
                assert_eq!(ours, theirs, "{alg:?}");
            }
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.validate_aud = false;
            let got =
                jsonwebtoken::decode::<serde_json::Value>(&ours, &key.decoding_key().unwrap(), &v)
                    .unwrap();
            assert_eq!(got.claims, claims, "{alg:?}");
            let other = if alg == SigningAlgorithm::Rs256 {
                SigningAlgorithm::EdDsa
            } else {
                SigningAlgorithm::Rs256
            };
            let wrong = jsonwebtoken::Header::new(other.jwt());
            assert!(key.sign_jwt(&wrong, &claims).is_err(), "{alg:?}");
        }
    }

    /// The provider jsonwebtoken signs with in this process is aws-lc-rs, whether this
    /// test runs before or after others have used jsonwebtoken (and so let it infer it).
    #[test]
    fn jsonwebtoken_signs_with_aws_lc_rs() {
        assert!(install_crypto_provider());
        assert!(install_crypto_provider(), "and says so again");
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
                "openssl-rsa-8200",
                include_str!("../fixtures/signing-keys/openssl-rsa-8200.pem"),
                Rs256,
                KeyError::RsaTooLarge(8200),
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
        // a small RSA key (aws-lc-rs generates none under 2048 bits)
        let small = include_str!("../fixtures/signing-keys/openssl-rsa-1024.pem");
        assert_eq!(
            load_private_key(small, SigningAlgorithm::Rs256).unwrap_err(),
            KeyError::RsaTooSmall(1024)
        );
    }
}
