//! Bearer-token auth against the real registry: docker-registry configured for token auth,
//! with a token issuer written here (ES256 JWTs with an x5c header, signed by a key whose
//! self-signed certificate is the registry's root bundle). Anonymous clients get pull
//! rights only; the test user gets pull and push.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use base64::Engine as _;

use super::pull::{Event, RegistryOptions};
use super::*;

const USER: &str = "berth";
const PASSWORD: &str = "token-test-password";
const SERVICE: &str = "berth-token-test";
const ISSUER: &str = "berth-token-issuer";

fn b64url(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl").args(args).current_dir(dir).output().unwrap();
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

struct TokenRegistry {
    dir: tempfile::TempDir,
    registry: Child,
    addr: String,
    token_requests: Arc<AtomicUsize>,
}

impl Drop for TokenRegistry {
    fn drop(&mut self) {
        let _ = self.registry.kill();
        let _ = self.registry.wait();
    }
}

impl TokenRegistry {
    fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        openssl(
            dir.path(),
            &["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "key.pem"],
        );
        openssl(
            dir.path(),
            &["pkcs8", "-topk8", "-nocrypt", "-in", "key.pem", "-outform", "DER", "-out", "key.p8"],
        );
        openssl(
            dir.path(),
            &[
                "req",
                "-x509",
                "-new",
                "-key",
                "key.pem",
                "-out",
                "cert.pem",
                "-days",
                "2",
                "-subj",
                "/CN=berth token issuer",
            ],
        );
        openssl(dir.path(), &["x509", "-in", "cert.pem", "-outform", "DER", "-out", "cert.der"]);
        let pkcs8 = fs::read(dir.path().join("key.p8")).unwrap();
        let cert = fs::read(dir.path().join("cert.der")).unwrap();

        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let realm = format!("http://{}/token", listener.local_addr().unwrap());
        let token_requests = Arc::new(AtomicUsize::new(0));
        let counter = token_requests.clone();
        std::thread::spawn(move || {
            let rng = ring::rand::SystemRandom::new();
            let key = ring::signature::EcdsaKeyPair::from_pkcs8(
                &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
                &pkcs8,
                &rng,
            )
            .unwrap();
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                counter.fetch_add(1, Ordering::SeqCst);
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap();
                let mut authorized = false;
                loop {
                    let mut line = String::new();
                    reader.read_line(&mut line).unwrap();
                    if line.trim().is_empty() {
                        break;
                    }
                    if let Some(value) = line
                        .strip_prefix("authorization: ")
                        .or_else(|| line.strip_prefix("Authorization: "))
                    {
                        let expected = base64::engine::general_purpose::STANDARD
                            .encode(format!("{USER}:{PASSWORD}"));
                        authorized = value.trim() == format!("Basic {expected}");
                    }
                }
                let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
                let query = path.split_once('?').map(|(_, q)| q).unwrap_or("");
                let mut access = Vec::new();
                for pair in query.split('&') {
                    let Some(scope) = pair.strip_prefix("scope=") else { continue };
                    let scope = scope.replace("%3A", ":").replace("%2F", "/").replace("%2C", ",");
                    let parts: Vec<&str> = scope.split(':').collect();
                    if parts.len() == 3 {
                        let actions: Vec<&str> =
                            parts[2].split(',').filter(|a| *a == "pull" || authorized).collect();
                        access.push(serde_json::json!({"type": parts[0], "name": parts[1], "actions": actions}));
                    }
                }
                let now = time::now();
                let header = serde_json::json!({"alg": "ES256", "typ": "JWT",
                    "x5c": [base64::engine::general_purpose::STANDARD.encode(&cert)]});
                let claims = serde_json::json!({"iss": ISSUER, "sub": if authorized { USER } else { "" },
                    "aud": SERVICE, "exp": now + 300, "nbf": now - 10, "iat": now,
                    "jti": format!("{now}-{}", counter.load(Ordering::SeqCst)), "access": access});
                let input = format!(
                    "{}.{}",
                    b64url(header.to_string().as_bytes()),
                    b64url(claims.to_string().as_bytes())
                );
                let signature = key.sign(&rng, input.as_bytes()).unwrap();
                let token = format!("{input}.{}", b64url(signature.as_ref()));
                let body = serde_json::json!({"token": token}).to_string();
                let _ = write!(stream, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            }
        });

        let port = berth_testkit::registry::free_loopback_port().unwrap();
        let config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {port}\nauth:\n  token:\n    realm: {realm}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
            dir.path().join("storage").display(),
            dir.path().join("cert.pem").display(),
        );
        fs::write(dir.path().join("config.yml"), config).unwrap();
        let log = File::create(dir.path().join("registry.log")).unwrap();
        let registry = Command::new(berth_testkit::registry::DOCKER_REGISTRY)
            .arg("serve")
            .arg(dir.path().join("config.yml"))
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .unwrap();
        for _ in 0..200 {
            if std::net::TcpStream::connect(port).is_ok() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { dir, registry, addr: port.to_string(), token_requests }
    }

    fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

// Anonymous tokens pull but cannot push; credentials get a push token, which is fetched once
// per scope and reused for every request of the push.
#[test]
fn bearer_tokens_from_an_issuer() {
    let registry = TokenRegistry::start();
    let name = format!("{}/bearer/bb:1", registry.addr);
    let src = tempfile::tempdir().unwrap();
    berth_testkit::busybox::image_layout(src.path()).unwrap();
    let root = tempfile::tempdir().unwrap();
    let images = Images::open(root.path()).unwrap();
    let image = images.load(src.path()).unwrap().remove(0);
    images.tag(image.id().as_str(), std::slice::from_ref(&name)).unwrap();
    let quiet = |_: Event| {};

    let anonymous = RegistryOptions {
        tls_verify: Some(false),
        authfile: Some(root.path().join("none.json")),
        ..Default::default()
    };
    let err = images.push(&name, None, &anonymous, &quiet).unwrap_err();
    let mut chain = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(s) = source {
        chain.push_str(&format!(": {s}"));
        source = s.source();
    }
    assert!(chain.contains("401") || chain.contains("403"), "{chain}\n{}", registry.log());

    let user =
        RegistryOptions { credentials: Some((USER.into(), PASSWORD.into())), ..anonymous.clone() };
    let before = registry.token_requests.load(Ordering::SeqCst);
    images
        .push(&name, None, &user, &quiet)
        .unwrap_or_else(|e| panic!("{e}: {:?}\n{}", std::error::Error::source(&e), registry.log()));
    let used = registry.token_requests.load(Ordering::SeqCst) - before;
    assert_eq!(used, 1, "one token for the push scope, reused for every blob and the manifest");

    let other_root = tempfile::tempdir().unwrap();
    let other = Images::open(other_root.path()).unwrap();
    let pulled = other.pull(&name, &anonymous, &quiet).unwrap();
    assert_eq!(pulled.id(), image.id());
}
