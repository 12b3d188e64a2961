//! Image references in the docker/distribution grammar (`reference/reference.go` of the
//! distribution project), normalised the way Docker and Podman normalise them: a name without
//! a registry is on docker.io, a one-component name on docker.io is under `library/`, and
//! `index.docker.io` is docker.io.
//!
//! ```text
//! reference  := name [ ":" tag ] [ "@" digest ]
//! name       := [ domain "/" ] path-component ( "/" path-component )*
//! domain     := host [ ":" port ]           host := domain-name | IPv4 | "[" IPv6 "]"
//! path-component := [a-z0-9]+ ( ( "." | "_" | "__" | "-"+ ) [a-z0-9]+ )*
//! tag        := [A-Za-z0-9_] [A-Za-z0-9_.-]{0,127}
//! ```
//!
//! Whether the registry was written by the user is kept, so short names can be resolved
//! through registries.conf instead of always going to docker.io.

use std::fmt;
use std::str::FromStr;

use crate::digest::{Digest, DigestError};

/// The registry a name without one is on.
pub const DOCKER_HUB: &str = "docker.io";
/// The tag a reference without tag or digest means.
pub const DEFAULT_TAG: &str = "latest";
const NAME_MAX: usize = 255;

/// Why a reference string was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ReferenceError {
    #[error("invalid reference format: {0:?} is empty")]
    Empty(String),
    #[error("invalid reference format: repository name {0:?} must be lowercase")]
    Uppercase(String),
    #[error("invalid reference format: {input:?}: {reason}")]
    Format { input: String, reason: &'static str },
    #[error("invalid reference format: {input:?}: name longer than 255 characters")]
    TooLong { input: String },
    #[error(
        "invalid repository name {0:?}: a 64-character hexadecimal name looks like an image id"
    )]
    LooksLikeId(String),
    #[error("invalid reference format: {input:?}: {source}")]
    Digest {
        input: String,
        #[source]
        source: DigestError,
    },
}

/// A parsed, normalised image reference. Two references are equal when they name the same
/// registry, repository, tag and digest, however they were written.
#[derive(Clone)]
pub struct Reference {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
    registry_explicit: bool,
    library_added: bool,
}

impl Reference {
    /// Parses `input` and normalises it (docker.io, `library/`).
    pub fn parse(input: &str) -> Result<Self, ReferenceError> {
        input.parse()
    }

    /// A reference to `repository` on `registry`, as given.
    pub fn new(registry: &str, repository: &str) -> Self {
        Self {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag: None,
            digest: None,
            registry_explicit: true,
            library_added: false,
        }
    }

    /// The registry host, with its port when it has one (`localhost:5000`).
    pub fn registry(&self) -> &str {
        &self.registry
    }

    /// The repository path inside the registry (`library/busybox`).
    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The repository as the user wrote it: without the `library/` docker.io added.
    pub fn short_path(&self) -> &str {
        if self.library_added {
            &self.repository["library/".len()..]
        } else {
            &self.repository
        }
    }

    /// True when the user wrote the registry; false when docker.io was assumed.
    pub fn registry_explicit(&self) -> bool {
        self.registry_explicit
    }

    /// `registry/repository`, without tag or digest.
    pub fn name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// What the registry is asked for: the digest when there is one, else the tag (`latest`
    /// when neither was given).
    pub fn target(&self) -> String {
        match (&self.digest, &self.tag) {
            (Some(digest), _) => digest.to_string(),
            (None, Some(tag)) => tag.clone(),
            (None, None) => DEFAULT_TAG.to_owned(),
        }
    }

    /// This reference with `latest` as its tag when it has neither tag nor digest.
    pub fn with_default_tag(mut self) -> Self {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some(DEFAULT_TAG.to_owned());
        }
        self
    }

    pub fn with_tag(mut self, tag: &str) -> Self {
        self.tag = Some(tag.to_owned());
        self
    }

    pub fn with_digest(mut self, digest: Digest) -> Self {
        self.digest = Some(digest);
        self
    }

    pub fn without_digest(mut self) -> Self {
        self.digest = None;
        self
    }

    pub fn without_tag(mut self) -> Self {
        self.tag = None;
        self
    }

    /// The same repository on another registry (short-name resolution), marked explicit.
    pub fn on_registry(mut self, registry: &str) -> Self {
        if self.library_added && registry != DOCKER_HUB {
            // `library/` was added for docker.io; elsewhere the name is as the user wrote it.
            self.repository = self.repository["library/".len()..].to_owned();
            self.library_added = false;
        }
        self.registry = registry.to_owned();
        self.registry_explicit = true;
        self
    }

    /// `registry/repository:tag` (the tag `latest` when none), as image tables list names.
    pub fn tagged_name(&self) -> String {
        format!("{}:{}", self.name(), self.tag.as_deref().unwrap_or(DEFAULT_TAG))
    }
}

impl PartialEq for Reference {
    fn eq(&self, other: &Self) -> bool {
        (&self.registry, &self.repository, &self.tag, &self.digest)
            == (&other.registry, &other.repository, &other.tag, &other.digest)
    }
}

impl Eq for Reference {}

impl std::hash::Hash for Reference {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (&self.registry, &self.repository, &self.tag, &self.digest).hash(state);
    }
}

impl FromStr for Reference {
    type Err = ReferenceError;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        if input.is_empty() {
            return Err(ReferenceError::Empty(input.to_owned()));
        }
        let format = |reason| ReferenceError::Format { input: truncate(input), reason };

        let (rest, digest) = match input.split_once('@') {
            Some((rest, digest)) => {
                let digest = digest
                    .parse::<Digest>()
                    .map_err(|source| ReferenceError::Digest { input: truncate(input), source })?;
                (rest, Some(digest))
            }
            None => (input, None),
        };

        // A tag is after the last ':' that follows the last '/'; a ':' before it is a port.
        let last_slash = rest.rfind('/');
        let (name, tag) = match rest.rfind(':') {
            Some(colon) if last_slash.is_none_or(|slash| colon > slash) => {
                (&rest[..colon], Some(&rest[colon + 1..]))
            }
            _ => (rest, None),
        };
        if let Some(tag) = tag {
            if !valid_tag(tag) {
                return Err(format("invalid tag"));
            }
        }
        if name.is_empty() {
            return Err(format("empty name"));
        }
        if name.len() > NAME_MAX {
            return Err(ReferenceError::TooLong { input: truncate(input) });
        }

        let (registry, path, explicit) = split_domain(name);
        if explicit && !valid_domain(registry) {
            return Err(format("invalid registry host"));
        }
        if path.chars().any(|c| c.is_ascii_uppercase()) {
            return Err(ReferenceError::Uppercase(truncate(name)));
        }
        if !path.split('/').all(valid_path_component) {
            return Err(format("invalid repository path"));
        }

        let mut registry = registry.to_owned();
        if registry == "index.docker.io" {
            registry = DOCKER_HUB.to_owned();
        }
        let mut repository = path.to_owned();
        let library_added = registry == DOCKER_HUB && !repository.contains('/');
        if library_added {
            if !explicit
                && repository.len() == 64
                && repository.chars().all(|c| c.is_ascii_hexdigit())
            {
                return Err(ReferenceError::LooksLikeId(repository));
            }
            repository = format!("library/{repository}");
        }
        Ok(Self {
            registry,
            repository,
            tag: tag.map(str::to_owned),
            digest,
            registry_explicit: explicit,
            library_added,
        })
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Reference({self})")
    }
}

fn truncate(input: &str) -> String {
    input.chars().take(300).collect()
}

/// Splits off the registry as Docker does: the first component is a registry when it holds a
/// '.' or a ':' or is `localhost`, or has an uppercase letter (which a path cannot).
fn split_domain(name: &str) -> (&str, &str, bool) {
    match name.split_once('/') {
        Some((first, rest))
            if first.contains(['.', ':'])
                || first == "localhost"
                || first.chars().any(|c| c.is_ascii_uppercase()) =>
        {
            (first, rest, true)
        }
        _ => (DOCKER_HUB, name, false),
    }
}

fn valid_tag(tag: &str) -> bool {
    let mut chars = tag.chars();
    let Some(first) = chars.next() else { return false };
    tag.len() <= 128
        && (first.is_ascii_alphanumeric() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

fn valid_path_component(component: &str) -> bool {
    // alnum ( sep alnum )*, sep = "." | "_" | "__" | "-"+
    let bytes = component.as_bytes();
    if bytes.is_empty() {
        return false;
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return false;
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &component[start..i];
        let ok = matches!(sep, "." | "_" | "__") || sep.bytes().all(|b| b == b'-');
        if !ok {
            return false;
        }
    }
    true
}

fn valid_domain(domain: &str) -> bool {
    let (host, port) = if let Some(rest) = domain.strip_prefix('[') {
        // [IPv6]:port
        let Some((inside, after)) = rest.split_once(']') else { return false };
        if inside.is_empty() || !inside.chars().all(|c| c.is_ascii_hexdigit() || c == ':') {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => ("", Some(port)),
                None => return false,
            },
        }
    } else {
        match domain.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (domain, None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || !port.chars().all(|c| c.is_ascii_digit()) {
            return false;
        }
    }
    if host.is_empty() {
        return domain.starts_with('[');
    }
    host.split('.').all(|component| {
        let bytes = component.as_bytes();
        !bytes.is_empty()
            && bytes[0].is_ascii_alphanumeric()
            && bytes[bytes.len() - 1].is_ascii_alphanumeric()
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'-')
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const DIGEST: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    fn parts(input: &str) -> (String, String, Option<String>, Option<String>) {
        let r = Reference::parse(input).unwrap();
        (
            r.registry().to_owned(),
            r.repository().to_owned(),
            r.tag().map(str::to_owned),
            r.digest().map(ToString::to_string),
        )
    }

    #[test]
    fn normalises_like_docker() {
        let s = |x: &str| x.to_owned();
        assert_eq!(parts("busybox"), (s("docker.io"), s("library/busybox"), None, None));
        assert_eq!(
            parts("busybox:1.36"),
            (s("docker.io"), s("library/busybox"), Some(s("1.36")), None)
        );
        assert_eq!(parts("user/app"), (s("docker.io"), s("user/app"), None, None));
        assert_eq!(
            parts("index.docker.io/busybox"),
            (s("docker.io"), s("library/busybox"), None, None)
        );
        assert_eq!(parts("localhost/app"), (s("localhost"), s("app"), None, None));
        assert_eq!(
            parts("localhost:5000/a/b:v1"),
            (s("localhost:5000"), s("a/b"), Some(s("v1")), None)
        );
        assert_eq!(
            parts(&format!("127.0.0.1:5000/app@{DIGEST}")),
            (s("127.0.0.1:5000"), s("app"), None, Some(s(DIGEST)))
        );
        assert_eq!(
            parts(&format!("quay.io/org/app:v2@{DIGEST}")),
            (s("quay.io"), s("org/app"), Some(s("v2")), Some(s(DIGEST)))
        );
        assert_eq!(parts("[::1]:5000/app"), (s("[::1]:5000"), s("app"), None, None));
        assert_eq!(
            parts("a__b/c-d--e.f:T_1.x-"),
            (s("docker.io"), s("a__b/c-d--e.f"), Some(s("T_1.x-")), None)
        );
        assert!(!Reference::parse("busybox").unwrap().registry_explicit());
        assert!(Reference::parse("docker.io/busybox").unwrap().registry_explicit());
    }

    #[test]
    fn prints_the_full_name() {
        let r = Reference::parse("busybox").unwrap();
        assert_eq!(r.to_string(), "docker.io/library/busybox");
        assert_eq!(r.target(), "latest");
        assert_eq!(r.clone().with_default_tag().to_string(), "docker.io/library/busybox:latest");
        let r = Reference::parse(&format!("busybox:1@{DIGEST}")).unwrap();
        assert_eq!(r.target(), DIGEST);
    }

    #[test]
    fn refuses_bad_references() {
        for bad in [
            "",
            ":tag",
            "Busybox",
            "busybox:",
            "busybox:-x",
            "busy//box",
            "busybox/",
            "-busybox",
            "busybox-",
            "bu...sy",
            "a@sha256:abc",
            "localhost:port/app",
            "[::1/app",
            "example.com:/app",
            "app:tag:tag2",
            &"a".repeat(256),
            &format!("a:{}", "t".repeat(129)),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        ] {
            assert!(Reference::parse(bad).is_err(), "{bad:?} parsed");
        }
        assert!(matches!(Reference::parse("Busybox"), Err(ReferenceError::Uppercase(_))));
    }

    #[test]
    fn short_names_move_to_another_registry_without_library() {
        let r = Reference::parse("busybox:1").unwrap().on_registry("quay.io");
        assert_eq!(r.to_string(), "quay.io/busybox:1");
        let r = Reference::parse("docker.io/library/busybox").unwrap().on_registry("quay.io");
        assert_eq!(r.to_string(), "quay.io/library/busybox");
    }

    fn component() -> impl Strategy<Value = String> {
        "[a-z0-9]{1,5}((\\.|_|__|-{1,3})[a-z0-9]{1,5}){0,2}"
    }

    fn domain() -> impl Strategy<Value = String> {
        ("[a-z0-9]{1,8}(\\.[a-z0-9]{1,8}){1,2}", proptest::option::of(1u16..)).prop_map(
            |(host, port)| match port {
                Some(port) => format!("{host}:{port}"),
                None => host,
            },
        )
    }

    proptest! {
        // Whatever valid reference is written with its registry, printing gives it back.
        #[test]
        fn qualified_references_round_trip(
            domain in domain(),
            path in proptest::collection::vec(component(), 1..4),
            tag in proptest::option::of("[A-Za-z0-9_][A-Za-z0-9_.-]{0,20}"),
            digest in proptest::option::of(proptest::collection::vec(any::<u8>(), 32)),
        ) {
            let mut text = format!("{domain}/{}", path.join("/"));
            if let Some(tag) = &tag {
                text.push(':');
                text.push_str(tag);
            }
            if let Some(digest) = &digest {
                text.push_str("@sha256:");
                text.push_str(&hex::encode(digest));
            }
            let parsed = Reference::parse(&text).unwrap();
            prop_assert_eq!(parsed.to_string(), text.clone());
            prop_assert_eq!(parsed.registry(), domain.as_str());
            prop_assert_eq!(parsed.tag(), tag.as_deref());
            prop_assert_eq!(Reference::parse(&parsed.to_string()).unwrap(), parsed);
        }

        // Normalising is idempotent: a normalised name parses to itself.
        #[test]
        fn normalisation_is_idempotent(path in proptest::collection::vec(component(), 1..3)) {
            let parsed = Reference::parse(&path.join("/"));
            if let Ok(parsed) = parsed {
                let again = Reference::parse(&parsed.to_string()).unwrap();
                prop_assert_eq!(again.to_string(), parsed.to_string());
                prop_assert_eq!(again.registry(), parsed.registry());
            }
        }

        #[test]
        fn parsing_never_panics(input in "[a-zA-Z0-9:/@._\\[\\]-]{0,60}") {
            let _ = Reference::parse(&input);
        }
    }
}
