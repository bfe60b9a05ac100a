//! The keys the provider signs with (tests/fixtures).

use super::OidcProvider;

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{json, Value};

const KEY_PEM: &str = include_str!("../../fixtures/oidc-test-key.pem");
pub(super) const KEY_JWK: &str = include_str!("../../fixtures/oidc-test-key.jwk.json");
const OTHER_KEY_PEM: &str = include_str!("../../fixtures/oidc-other-test-key.pem");
const OTHER_KEY_JWK: &str = include_str!("../../fixtures/oidc-other-test-key.jwk.json");
const EC_KEY_PEM: &str = include_str!("../../fixtures/oidc-ec-test-key.pem");
const EC_KEY_JWK: &str = include_str!("../../fixtures/oidc-ec-test-key.jwk.json");

/// The keys a provider can sign id_tokens with (tests/fixtures).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestKey {
    /// `oidc-test-key.pem`, RS256 (the default).
    Rsa,
    /// `oidc-other-test-key.pem`, RS256: the key after a rotation.
    OtherRsa,
    /// `oidc-ec-test-key.pem`, ES256 on P-256.
    Ec,
}

impl TestKey {
    pub fn kid(self) -> &'static str {
        match self {
            TestKey::Rsa => OidcProvider::KID,
            TestKey::OtherRsa => OidcProvider::ROTATED_KID,
            TestKey::Ec => OidcProvider::EC_KID,
        }
    }

    pub(super) fn alg(self) -> Algorithm {
        match self {
            TestKey::Rsa | TestKey::OtherRsa => Algorithm::RS256,
            TestKey::Ec => Algorithm::ES256,
        }
    }

    pub(super) fn alg_name(self) -> &'static str {
        match self {
            TestKey::Rsa | TestKey::OtherRsa => "RS256",
            TestKey::Ec => "ES256",
        }
    }

    pub(super) fn public_jwk(self) -> Value {
        let text = match self {
            TestKey::Rsa => KEY_JWK,
            TestKey::OtherRsa => OTHER_KEY_JWK,
            TestKey::Ec => EC_KEY_JWK,
        };
        let mut jwk: Value = serde_json::from_str(text).unwrap();
        jwk["kid"] = json!(self.kid());
        jwk["alg"] = json!(self.alg_name());
        jwk["use"] = json!("sig");
        jwk
    }

    pub(super) fn encoding_key(self) -> EncodingKey {
        match self {
            TestKey::Rsa => encoding_key(KEY_PEM),
            TestKey::OtherRsa => encoding_key(OTHER_KEY_PEM),
            TestKey::Ec => EncodingKey::from_ec_der(&der(EC_KEY_PEM)),
        }
    }
}

/// The DER inside a PEM: jsonwebtoken's PEM parsing is a feature this workspace
/// leaves off.
pub(super) fn der(pem: &str) -> Vec<u8> {
    let body: String = pem
        .lines()
        .filter(|line| !line.starts_with("-----"))
        .collect();
    STANDARD.decode(body).unwrap()
}

pub(super) fn encoding_key(pem: &str) -> EncodingKey {
    EncodingKey::from_rsa_der(&der(pem))
}
