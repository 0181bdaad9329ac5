//! Session ids and identity tokens.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io::Read;
use std::sync::atomic::{AtomicU64, Ordering};

/// Shortest and longest token accepted in `hello`.
const TOKEN_LEN: std::ops::RangeInclusive<usize> = 16..=128;

/// 128 random bits as 32 hex characters: an unguessable identity token.
pub fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if !os_random(&mut bytes) {
        fallback_random(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a client-presented token has a plausible shape (the store then
/// maps it to its user, or registers it).
pub fn is_valid_token(token: &str) -> bool {
    TOKEN_LEN.contains(&token.len())
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// A random stream epoch in [1, 2^53): exact as a JavaScript number.
pub fn new_epoch() -> u64 {
    let mut bytes = [0u8; 8];
    if !os_random(&mut bytes) {
        fallback_random(&mut bytes);
    }
    (u64::from_le_bytes(bytes) & ((1 << 53) - 1)).max(1)
}

/// A session id for a connection, unique across restarts in practice.
pub fn session_id(conn: u64) -> String {
    let mut bytes = [0u8; 4];
    if !os_random(&mut bytes) {
        fallback_random(&mut bytes);
    }
    let salt: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("s{conn}-{salt}")
}

fn os_random(buf: &mut [u8]) -> bool {
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(buf))
        .is_ok()
}

/// Without /dev/urandom: std's per-process random hash keys, a counter and
/// the clock. Good enough for a demo's identities, not for secrets.
fn fallback_random(buf: &mut [u8]) {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    for chunk in buf.chunks_mut(8) {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
        h.write_i64(crate::now_ms());
        let v = h.finish().to_le_bytes();
        chunk.copy_from_slice(&v[..chunk.len()]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_unique_and_valid() {
        let a = new_token();
        let b = new_token();
        assert_ne!(a, b);
        assert_eq!(a.len(), 32);
        assert!(is_valid_token(&a));
        assert!(!is_valid_token("short"));
        assert!(!is_valid_token("0123456789abcdef0123456789abcdef'; --"));
        let mut buf = [0u8; 12];
        fallback_random(&mut buf);
        assert_ne!(buf, [0u8; 12]);
        let (e1, e2) = (new_epoch(), new_epoch());
        assert_ne!(e1, e2);
        assert!((1..1 << 53).contains(&e1));
    }
}
