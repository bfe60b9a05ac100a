//! RFC 6238 TOTP written for the tests, independent of the service's implementation,
//! and checked against the RFC's own test vectors.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// The `digits`-digit code of `secret` for the 30-second step holding `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: u64, digits: u32) -> String {
    let counter = unix_secs / 30;
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&counter.to_be_bytes());
    let hash = mac.finalize().into_bytes();
    // RFC 4226 §5.3 dynamic truncation
    let offset = (hash[19] & 0x0f) as usize;
    let binary = (u32::from(hash[offset]) & 0x7f) << 24
        | u32::from(hash[offset + 1]) << 16
        | u32::from(hash[offset + 2]) << 8
        | u32::from(hash[offset + 3]);
    format!(
        "{:0width$}",
        binary % 10u32.pow(digits),
        width = digits as usize
    )
}

/// RFC 4648 base32 without padding (what an authenticator app reads).
pub fn base32_decode(text: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut bits: u64 = 0;
    let mut nbits = 0;
    let mut out = Vec::new();
    for c in text.trim_end_matches('=').bytes() {
        let v = ALPHABET
            .iter()
            .position(|a| *a == c.to_ascii_uppercase())
            .expect("base32") as u64;
        bits = (bits << 5) | v;
        nbits += 5;
        if nbits >= 8 {
            nbits -= 8;
            out.push((bits >> nbits) as u8);
            bits &= (1 << nbits) - 1;
        }
    }
    out
}

/// The six-digit code of a base32 secret at `unix_secs`.
pub fn code(secret_b32: &str, unix_secs: u64) -> String {
    code_at(&base32_decode(secret_b32), unix_secs, 6)
}

#[test]
fn rfc_6238_test_vectors_sha1() {
    // RFC 6238 Appendix B: the seed "12345678901234567890", 8 digits
    let seed = b"12345678901234567890";
    for (time, expected) in [
        (59, "94287082"),
        (1_111_111_109, "07081804"),
        (1_111_111_111, "14050471"),
        (1_234_567_890, "89005924"),
        (2_000_000_000, "69279037"),
        (20_000_000_000, "65353130"),
    ] {
        assert_eq!(code_at(seed, time, 8), expected, "T = {time}");
    }
    // base32 of the same seed
    assert_eq!(base32_decode("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"), seed);
}
