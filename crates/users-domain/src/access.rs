//! Roles, permissions and API keys as values (docs/roles-and-api-keys.md): what a role
//! name and a permission may be, and the format of an API key, which is checked here,
//! without any I/O, before anything is looked up.
//!
//! A key is `usr_` followed by 40 base62 characters (`0-9A-Za-z`): 34 random ones, then
//! the CRC-32 (IEEE) of those 34 in base62, left-padded with `0` to 6 characters. A
//! secret scanner recognises a leaked key by its prefix and checksum; the service
//! refuses a mistyped or made-up one without a database query.

use rand::Rng;

/// What every key starts with.
pub const KEY_PREFIX: &str = "usr_";
/// The length of a key, prefix included.
pub const KEY_LEN: usize = 44;
/// How many characters of a key are shown as its `prefix`.
pub const SHOWN_PREFIX_LEN: usize = 12;
const RANDOM_LEN: usize = 34;
const CHECKSUM_LEN: usize = 6;
const BASE62: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// Whether `s` is a role name, or a permission: `[a-z0-9][a-z0-9_.:-]{0,63}`.
pub fn is_valid_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let Some((first, rest)) = bytes.split_first() else {
        return false;
    };
    let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    bytes.len() <= 64
        && alnum(first)
        && rest
            .iter()
            .all(|b| alnum(b) || matches!(b, b'_' | b'.' | b':' | b'-'))
}

/// CRC-32 (IEEE 802.3, reflected, as zlib computes it).
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

/// `n` in base62, left-padded with `0` to `width`.
fn base62(mut n: u64, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for slot in digits.iter_mut().rev() {
        *slot = BASE62[(n % 62) as usize];
        n /= 62;
    }
    String::from_utf8(digits).unwrap_or_default()
}

fn checksum(random: &str) -> String {
    base62(u64::from(crc32(random.as_bytes())), CHECKSUM_LEN)
}

/// A new API key, from the OS CSPRNG.
pub fn new_api_key() -> String {
    let mut rng = rand::rngs::OsRng;
    let random: String = (0..RANDOM_LEN)
        .map(|_| char::from(BASE62[rng.gen_range(0..BASE62.len())]))
        .collect();
    let sum = checksum(&random);
    format!("{KEY_PREFIX}{random}{sum}")
}

/// Whether `s` looks like an API key at all (the service tells keys from JWTs by this).
pub fn looks_like_api_key(s: &str) -> bool {
    s.starts_with(KEY_PREFIX)
}

/// Whether `key` is well formed: the prefix, the length, the alphabet and the checksum.
pub fn is_well_formed_api_key(key: &str) -> bool {
    let Some(body) = key.strip_prefix(KEY_PREFIX) else {
        return false;
    };
    if body.len() != RANDOM_LEN + CHECKSUM_LEN || !body.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let (random, sum) = body.split_at(RANDOM_LEN);
    checksum(random) == sum
}

/// What a key is shown by: its first characters.
pub fn shown_prefix(key: &str) -> String {
    key.chars().take(SHOWN_PREFIX_LEN).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_zlibs() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
    }

    #[test]
    fn base62_pads_and_counts() {
        assert_eq!(base62(0, 6), "000000");
        assert_eq!(base62(61, 6), "00000z");
        assert_eq!(base62(62, 6), "000010");
        assert_eq!(base62(u64::from(u32::MAX), 6), "4gfFC3");
    }

    #[test]
    fn new_keys_are_well_formed_and_differ() {
        let a = new_api_key();
        let b = new_api_key();
        assert_ne!(a, b);
        for key in [&a, &b] {
            assert_eq!(key.len(), KEY_LEN);
            assert!(key.starts_with("usr_"));
            assert!(is_well_formed_api_key(key), "{key}");
            let body = &key[4..];
            assert_eq!(&body[34..], checksum(&body[..34]));
            assert_eq!(shown_prefix(key).len(), 12);
        }
    }

    #[test]
    fn a_changed_character_breaks_the_checksum() {
        let key = new_api_key();
        let mut broken = key.clone().into_bytes();
        broken[10] = if broken[10] == b'a' { b'b' } else { b'a' };
        assert!(!is_well_formed_api_key(&String::from_utf8(broken).unwrap()));
        assert!(!is_well_formed_api_key(&key[..43]));
        assert!(!is_well_formed_api_key(&format!("{key}0")));
        assert!(!is_well_formed_api_key(&key.replacen("usr_", "usx_", 1)));
    }

    #[test]
    fn names_follow_the_alphabet() {
        for ok in [
            "admin",
            "invoices:read",
            "a",
            "0",
            "a.b_c-d:e",
            &"a".repeat(64),
        ] {
            assert!(is_valid_name(ok), "{ok}");
        }
        for bad in ["", "Admin", "_a", "-a", "a b", "é", "a/b", &"a".repeat(65)] {
            assert!(!is_valid_name(bad), "{bad}");
        }
    }
}
