//! Content digests in the OCI form `algorithm:hex` (image-spec `descriptor.md#digests`), and
//! the streaming hashers that compute them while bytes pass through a reader or a writer.
//!
//! sha256 is what every registry serves; sha512 is parsed and verified too, as the spec
//! registers it. Other algorithms parse (the grammar allows them) but cannot be verified.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256, Sha512};

/// Why a digest string was refused, or a verification failed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DigestError {
    #[error("invalid digest {input:?}: {reason}")]
    Parse { input: String, reason: &'static str },
    #[error("unsupported digest algorithm {0:?}")]
    UnsupportedAlgorithm(String),
    #[error("digest mismatch: expected {expected}, got {actual}")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("size mismatch for {digest}: expected {expected} bytes, got {actual}")]
    SizeMismatch { digest: Digest, expected: u64, actual: u64 },
}

/// A content digest such as `sha256:e3b0c442…`. The hex part is kept in lowercase.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    text: String,
    split: usize,
}

impl Digest {
    /// The sha256 digest of `bytes`.
    pub fn sha256(bytes: &[u8]) -> Self {
        Self::from_parts("sha256", &hex::encode(Sha256::digest(bytes)))
    }

    fn from_parts(algorithm: &str, hex: &str) -> Self {
        Self { text: format!("{algorithm}:{hex}"), split: algorithm.len() }
    }

    pub fn algorithm(&self) -> &str {
        &self.text[..self.split]
    }

    /// The encoded part, without the algorithm.
    pub fn hex(&self) -> &str {
        &self.text[self.split + 1..]
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The first 12 hex characters, as image tables show an id.
    pub fn short(&self) -> &str {
        let hex = self.hex();
        &hex[..hex.len().min(12)]
    }

    /// A hasher of this digest's algorithm, to verify content against it.
    pub fn hasher(&self) -> Result<Hasher, DigestError> {
        Hasher::for_algorithm(self.algorithm())
    }

    /// Checks that `actual` (and, when given, `actual_size`) are what this digest promised.
    pub fn verify(
        &self,
        actual: &Digest,
        expected_size: Option<u64>,
        actual_size: u64,
    ) -> Result<(), DigestError> {
        if self != actual {
            return Err(DigestError::Mismatch { expected: self.clone(), actual: actual.clone() });
        }
        match expected_size {
            Some(expected) if expected != actual_size => Err(DigestError::SizeMismatch {
                digest: self.clone(),
                expected,
                actual: actual_size,
            }),
            _ => Ok(()),
        }
    }
}

impl FromStr for Digest {
    type Err = DigestError;

    /// Parses `algorithm:encoded` by the image spec's grammar:
    /// `algorithm ::= component (separator component)*`, `component ::= [a-z0-9]+`,
    /// `separator ::= [+._-]`, `encoded ::= [a-zA-Z0-9=_-]+`; for sha256 and sha512 the
    /// encoded part must be lowercase hex of 64 and 128 characters.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let fail = |reason| DigestError::Parse { input: truncate(input), reason };
        let (algorithm, encoded) = input.split_once(':').ok_or_else(|| fail("no ':'"))?;
        let mut previous_separator = true;
        for c in algorithm.chars() {
            let separator = matches!(c, '+' | '.' | '_' | '-');
            if separator && previous_separator {
                return Err(fail("bad algorithm"));
            }
            if !separator && !c.is_ascii_lowercase() && !c.is_ascii_digit() {
                return Err(fail("bad algorithm"));
            }
            previous_separator = separator;
        }
        if previous_separator {
            return Err(fail("bad algorithm"));
        }
        if encoded.is_empty()
            || !encoded.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '=' | '_' | '-'))
        {
            return Err(fail("bad encoded part"));
        }
        let hex_len = match algorithm {
            "sha256" => Some(64),
            "sha512" => Some(128),
            _ => None,
        };
        if let Some(len) = hex_len {
            if encoded.len() != len {
                return Err(fail("wrong length for its algorithm"));
            }
            if !encoded.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)) {
                return Err(fail("not lowercase hex"));
            }
        }
        Ok(Self::from_parts(algorithm, encoded))
    }
}

fn truncate(input: &str) -> String {
    // Input may come from a registry; keep error messages short whatever it sends.
    input.chars().take(160).collect()
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Digest({})", self.text)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An incremental hasher for one of the verifiable algorithms.
#[derive(Clone)]
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn sha256() -> Self {
        Self::Sha256(Sha256::new())
    }

    pub fn for_algorithm(algorithm: &str) -> Result<Self, DigestError> {
        match algorithm {
            "sha256" => Ok(Self::Sha256(Sha256::new())),
            "sha512" => Ok(Self::Sha512(Sha512::new())),
            other => Err(DigestError::UnsupportedAlgorithm(other.to_owned())),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Self::Sha256(h) => Digest::from_parts("sha256", &hex::encode(h.finalize())),
            Self::Sha512(h) => Digest::from_parts("sha512", &hex::encode(h.finalize())),
        }
    }
}

/// A reader that hashes and counts every byte read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Hasher,
    size: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, hasher: Hasher) -> Self {
        Self { inner, hasher, size: 0 }
    }

    /// Bytes read so far.
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn inner_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    /// The digest and size of everything read, and the inner reader.
    pub fn finish(self) -> (Digest, u64, R) {
        (self.hasher.finish(), self.size, self.inner)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
}

/// A writer that hashes and counts every byte written through it.
pub struct HashingWriter<W> {
    inner: W,
    hasher: Hasher,
    size: u64,
}

impl<W: Write> HashingWriter<W> {
    pub fn new(inner: W, hasher: Hasher) -> Self {
        Self { inner, hasher, size: 0 }
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn finish(self) -> (Digest, u64, W) {
        (self.hasher.finish(), self.size, self.inner)
    }
}

impl<W: Write> Write for HashingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hasher.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EMPTY: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_prints_the_digest_of_nothing() {
        let digest: Digest = EMPTY.parse().unwrap();
        assert_eq!(digest, Digest::sha256(b""));
        assert_eq!(digest.to_string(), EMPTY);
        assert_eq!(digest.algorithm(), "sha256");
        assert_eq!(digest.short(), "e3b0c44298fc");
    }

    #[test]
    fn refuses_malformed_digests() {
        for bad in [
            "",
            "sha256",
            "sha256:",
            ":abc",
            "sha256:abc",
            &EMPTY.to_uppercase(),
            &format!("{EMPTY}0"),
            "SHA256:abcd",
            "sha256+:abcd",
            "-sha:abcd",
            "foo:abc/def",
        ] {
            assert!(bad.parse::<Digest>().is_err(), "{bad:?} parsed");
        }
        assert!("multihash+base58:QmRZxt2b1FVZPNqd8hsiykDL3TdBDeTSPX9Kv46HmX4Gx8"
            .parse::<Digest>()
            .is_ok());
    }

    #[test]
    fn hashing_reader_verifies_streamed_content() {
        let data = vec![7u8; 100_000];
        let mut reader = HashingReader::new(&data[..], Hasher::sha256());
        io::copy(&mut reader, &mut io::sink()).unwrap();
        let (digest, size, _) = reader.finish();
        let expected = Digest::sha256(&data);
        expected.verify(&digest, Some(100_000), size).unwrap();
        let err = expected.verify(&digest, Some(99), size).unwrap_err();
        assert!(err.to_string().contains("expected 99 bytes, got 100000"), "{err}");
        let other = Digest::sha256(b"other");
        let err = other.verify(&digest, None, size).unwrap_err().to_string();
        assert!(err.contains(other.as_str()) && err.contains(expected.as_str()), "{err}");
    }

    proptest! {
        #[test]
        fn any_sha256_round_trips(bytes in proptest::collection::vec(any::<u8>(), 32)) {
            let text = format!("sha256:{}", hex::encode(&bytes));
            let digest: Digest = text.parse().unwrap();
            prop_assert_eq!(digest.to_string(), text);
            prop_assert_eq!(digest.hex().len(), 64);
        }

        #[test]
        fn parsing_never_panics(input in ".{0,80}") {
            let _ = input.parse::<Digest>();
        }
    }
}
