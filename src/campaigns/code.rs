//! Coupon codes: a prefix and ten random characters from an alphabet without
//! the look-alikes 0/O and 1/I, e.g. `BDAY-7K3M9QXPRT`. Ten characters of 32
//! give 50 bits: unguessable, and a collision among millions of codes is so
//! unlikely that the database's unique key (which would refuse it) is enough.

use rand::Rng;

/// Digits and capitals without 0, 1, I and O.
pub const ALPHABET: &[u8; 32] = b"23456789ABCDEFGHJKLMNPQRSTUVWXYZ";
/// Random characters per code.
pub const RANDOM_LEN: usize = 10;

/// A fresh code with `prefix` (may be empty), from the operating system's
/// cryptographically secure generator (through the thread-local CSPRNG).
pub fn new_code(prefix: &str) -> String {
    let mut rng = rand::rng();
    let mut out = String::with_capacity(prefix.len() + 1 + RANDOM_LEN);
    if !prefix.is_empty() {
        out.push_str(prefix);
        out.push('-');
    }
    for _ in 0..RANDOM_LEN {
        out.push(char::from(ALPHABET[rng.random_range(0..ALPHABET.len())]));
    }
    out
}

/// A `code_prefix` must be 1–12 capitals or digits so that codes read well
/// over the phone and on a receipt.
pub fn check_prefix(prefix: &str) -> Result<(), String> {
    let ok = (1..=12).contains(&prefix.len())
        && prefix
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "code_prefix {prefix:?} must be 1 to 12 capital letters or digits, e.g. BDAY"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_have_the_prefix_and_no_lookalikes() {
        for _ in 0..1000 {
            let c = new_code("BDAY");
            let (p, r) = c.split_once('-').unwrap();
            assert_eq!(p, "BDAY");
            assert_eq!(r.len(), RANDOM_LEN);
            assert!(!r.contains(['0', 'O', '1', 'I']), "{c}");
            assert!(r.bytes().all(|b| ALPHABET.contains(&b)));
        }
        assert_eq!(new_code("").len(), RANDOM_LEN);
    }

    #[test]
    fn codes_do_not_repeat() {
        let codes: HashSet<String> = (0..100_000).map(|_| new_code("X")).collect();
        assert_eq!(codes.len(), 100_000);
    }

    #[test]
    fn every_character_is_used() {
        let mut seen = HashSet::new();
        for _ in 0..2000 {
            seen.extend(new_code("").bytes());
        }
        assert_eq!(seen.len(), ALPHABET.len());
    }

    #[test]
    fn prefixes() {
        assert!(check_prefix("BDAY").is_ok());
        assert!(check_prefix("VIP2026").is_ok());
        for bad in ["", "bday", "B-DAY", "生日", "ABCDEFGHIJKLM"] {
            assert!(check_prefix(bad).is_err(), "{bad}");
        }
    }
}
