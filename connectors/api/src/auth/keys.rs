//! API keys: `drv_{id}_{secret}`. The id finds the key; only the SHA-256
//! of the whole key is stored, compared in constant time. A key has 256
//! random bits, so a fast digest is enough (unlike a password, it cannot be
//! guessed from a dictionary).

use sha2::{Digest, Sha256};

use super::secret::random_hex;

const PREFIX: &str = "drv_";
/// Random bytes in a key's id and in its secret.
const ID_BYTES: usize = 8;
const SECRET_BYTES: usize = 32;

/// A new key: its id, the full key (shown once) and the digest to store.
pub struct NewKey {
    pub id: String,
    pub key: String,
    pub digest: String,
}

pub fn generate() -> NewKey {
    let id = random_hex(ID_BYTES);
    let key = format!("{PREFIX}{id}_{}", random_hex(SECRET_BYTES));
    let digest = digest(&key);
    NewKey { id, key, digest }
}

/// Hex SHA-256 of a key.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// The id inside something that looks like a key.
pub fn id_of(key: &str) -> Option<&str> {
    let rest = key.strip_prefix(PREFIX)?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == ID_BYTES * 2 && secret.len() == SECRET_BYTES * 2).then_some(id)
}

/// Whether `key` hashes to `stored`, in time independent of where they differ.
pub fn matches(key: &str, stored: &str) -> bool {
    let actual = digest(key);
    actual.len() == stored.len()
        && actual
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_carry_their_id_and_match_only_their_digest() {
        let new = generate();
        assert_eq!(id_of(&new.key), Some(new.id.as_str()));
        assert!(matches(&new.key, &new.digest));
        let mut forged = new.key.clone();
        forged.pop();
        forged.push('x');
        assert!(!matches(&forged, &new.digest));
        assert_eq!(id_of("drv_short_key"), None);
        assert_eq!(id_of("eyJhbGciOiJIUzI1NiJ9.e30.x"), None);
    }
}
