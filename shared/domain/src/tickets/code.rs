//! Ticket codes: `TC-<year>-<suffix>`, the suffix 10 characters drawn from the OS's
//! CSPRNG over an alphabet without look-alikes (no 0/O, 1/I/L): 31^10 ≈ 8·10^14 codes
//! per year, so guessing one is hopeless and collisions are rare (and retried).

use rand::Rng;

const ALPHABET: &[u8] = b"23456789ABCDEFGHJKMNPQRSTUVWXYZ";
pub const SUFFIX_LEN: usize = 10;

pub fn generate(year: i32) -> String {
    let mut rng = rand::rng();
    let suffix: String = (0..SUFFIX_LEN)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())] as char)
        .collect();
    format!("TC-{year}-{suffix}")
}

/// Whether `s` has the shape of a ticket code (what a scanner may type by hand).
pub fn looks_like_code(s: &str) -> bool {
    let mut parts = s.splitn(3, '-');
    matches!(
        (parts.next(), parts.next(), parts.next()),
        (Some("TC"), Some(year), Some(suffix))
            if year.len() == 4 && year.bytes().all(|b| b.is_ascii_digit())
                && suffix.len() >= 8 && suffix.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_contract_shape() {
        let code = generate(2027);
        assert!(code.starts_with("TC-2027-"));
        assert_eq!(code.len(), "TC-2027-".len() + SUFFIX_LEN);
        assert!(looks_like_code(&code));
        assert!(!code[8..].contains(['0', 'O', '1', 'I', 'L']));
        assert!(!looks_like_code("TC-27-ABCDEFGH"));
        assert!(!looks_like_code("TC-2027-abc"));
    }

    #[test]
    fn codes_do_not_repeat() {
        let codes: std::collections::HashSet<_> = (0..10_000).map(|_| generate(2027)).collect();
        assert_eq!(codes.len(), 10_000);
    }
}
