//! Container ids and generated names.
//!
//! An id is 32 random bytes in lowercase hex, as Podman makes them; like Podman (and Docker)
//! an id whose 12-character short form is all decimal digits is drawn again, so the short
//! form never reads as a number. A name, when the user gives none, is `adjective_noun` in the
//! manner of Docker's generator, from lists of berth's own.

use std::fs::File;
use std::io::Read;

use super::StateError;

const ADJECTIVES: &[&str] = &[
    "amber",
    "ardent",
    "brave",
    "brisk",
    "calm",
    "candid",
    "clever",
    "cosmic",
    "crisp",
    "curious",
    "daring",
    "dapper",
    "eager",
    "earnest",
    "elated",
    "fancy",
    "fearless",
    "festive",
    "gentle",
    "gleaming",
    "golden",
    "happy",
    "hardy",
    "hopeful",
    "humble",
    "jolly",
    "keen",
    "kind",
    "lively",
    "lucid",
    "lucky",
    "merry",
    "mellow",
    "modest",
    "nimble",
    "noble",
    "patient",
    "placid",
    "plucky",
    "polite",
    "proud",
    "quick",
    "quiet",
    "quirky",
    "radiant",
    "rapid",
    "serene",
    "sharp",
    "shiny",
    "silent",
    "sleepy",
    "smooth",
    "snug",
    "spry",
    "steady",
    "stoic",
    "sturdy",
    "sunny",
    "swift",
    "tender",
    "tidy",
    "upbeat",
    "vivid",
    "wandering",
    "warm",
    "wise",
    "witty",
    "zealous",
    "zesty",
];

const NOUNS: &[&str] = &[
    "anchor",
    "atoll",
    "barge",
    "beacon",
    "bollard",
    "bosun",
    "breaker",
    "buoy",
    "cabin",
    "canal",
    "capstan",
    "cargo",
    "channel",
    "compass",
    "coral",
    "cove",
    "crane",
    "current",
    "dinghy",
    "dock",
    "dolphin",
    "estuary",
    "ferry",
    "fjord",
    "galley",
    "gull",
    "harbor",
    "hawser",
    "heron",
    "hull",
    "inlet",
    "island",
    "jetty",
    "keel",
    "kelp",
    "lagoon",
    "lighthouse",
    "lock",
    "mast",
    "mooring",
    "narwhal",
    "otter",
    "oyster",
    "pelican",
    "pier",
    "pilot",
    "quay",
    "reef",
    "rudder",
    "sail",
    "schooner",
    "seal",
    "shoal",
    "skiff",
    "sloop",
    "sound",
    "starfish",
    "tide",
    "tugboat",
    "walrus",
    "wave",
    "wharf",
    "whale",
    "yacht",
];

/// Reads `N` random bytes from the kernel.
fn random_bytes<const N: usize>() -> Result<[u8; N], StateError> {
    let mut buf = [0u8; N];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .map_err(StateError::ReadRandom)?;
    Ok(buf)
}

/// A fresh container id: 64 lowercase hex digits.
pub fn generate_id() -> Result<String, StateError> {
    loop {
        let bytes: [u8; 32] = random_bytes()?;
        let id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        if !id[..12].bytes().all(|b| b.is_ascii_digit()) {
            return Ok(id);
        }
    }
}

/// A generated name, `adjective_noun`; with `retry > 0` (the name was taken) a digit is
/// appended, as Docker does, which makes a second collision much less likely.
pub fn generate_name(retry: u32) -> Result<String, StateError> {
    let bytes: [u8; 3] = random_bytes()?;
    let adjective = ADJECTIVES[usize::from(bytes[0]) % ADJECTIVES.len()];
    let noun = NOUNS[usize::from(bytes[1]) % NOUNS.len()];
    if retry == 0 {
        Ok(format!("{adjective}_{noun}"))
    } else {
        Ok(format!("{adjective}_{noun}{}", bytes[2] % 10))
    }
}

/// Whether `id` is a full container id (64 lowercase hex digits).
pub fn is_full_id(id: &str) -> bool {
    id.len() == 64 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Checks a user-given name by Podman's rule: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`. A name that is a
/// full 64-hex id is refused too, since lookups could not tell it from an id.
pub fn validate_name(name: &str) -> Result<(), StateError> {
    let mut bytes = name.bytes();
    let first_ok = bytes.next().is_some_and(|b| b.is_ascii_alphanumeric());
    let rest_ok = bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
    if first_ok && rest_ok && name.len() <= 253 && !is_full_id(name) {
        Ok(())
    } else {
        Err(StateError::InvalidName { name: name.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_64_hex_and_not_numeric_when_short() {
        for _ in 0..200 {
            let id = generate_id().unwrap();
            assert!(is_full_id(&id), "{id}");
            assert!(!id[..12].bytes().all(|b| b.is_ascii_digit()), "{id}");
        }
        assert_ne!(generate_id().unwrap(), generate_id().unwrap());
    }

    #[test]
    fn generated_names_are_valid_adjective_noun() {
        for retry in [0, 1] {
            let name = generate_name(retry).unwrap();
            validate_name(&name).unwrap();
            let (adjective, noun) = name.split_once('_').unwrap();
            assert!(ADJECTIVES.contains(&adjective), "{name}");
            let noun =
                if retry == 0 { noun } else { noun.trim_end_matches(|c: char| c.is_ascii_digit()) };
            assert!(NOUNS.contains(&noun), "{name}");
        }
    }

    #[test]
    fn names_follow_podmans_rule() {
        for good in ["web", "a", "Web-1.2_x", "0abc"] {
            validate_name(good).unwrap();
        }
        for bad in ["", "-web", "_web", ".web", "we b", "web/1", "wéb", &"a".repeat(254)] {
            assert!(validate_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(validate_name(&"ab".repeat(32)).is_err(), "a full id was accepted as a name");
    }
}
