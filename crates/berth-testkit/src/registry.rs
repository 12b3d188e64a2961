//! Debian's docker-registry (the reference distribution server) on a free loopback port with a
//! throwaway storage root, in one of three modes: open, htpasswd basic auth, or TLS with a CA
//! and server certificate generated for the run.
//!
//! The server is killed and its directory removed when the [`Registry`] is dropped, which also
//! happens when the test that owns it panics.

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use tempfile::TempDir;

/// Where Debian's docker-registry package installs the server.
pub const DOCKER_REGISTRY: &str = "/usr/bin/docker-registry";

/// How the registry admits clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Plain HTTP, anyone may pull and push.
    Open,
    /// Plain HTTP with basic auth against an htpasswd file ([`Registry::username`]).
    Htpasswd,
    /// HTTPS with a certificate signed by a CA made for this run ([`Registry::ca_cert`]).
    Tls,
}

/// A running registry. Dropping it stops the server and removes its files.
pub struct Registry {
    mode: Mode,
    addr: SocketAddr,
    child: Child,
    dir: TempDir,
}

impl Registry {
    /// The user the htpasswd mode admits.
    pub const USERNAME: &'static str = "berth";
    /// That user's password.
    pub const PASSWORD: &'static str = "berth-test-password";

    /// Starts a registry in `mode` and waits until it accepts connections.
    pub fn start(mode: Mode) -> Result<Self> {
        ensure!(
            Path::new(DOCKER_REGISTRY).exists(),
            "{DOCKER_REGISTRY} is missing: install Debian's docker-registry"
        );
        let dir = tempfile::Builder::new().prefix("berth-registry-").tempdir()?;
        let storage = dir.path().join("storage");
        fs::create_dir(&storage)?;
        let addr = free_loopback_port()?;

        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n\
             storage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\n\
             http:\n  addr: {addr}\n  secret: berth-testkit\n",
            storage.display()
        );
        match mode {
            Mode::Open => {}
            Mode::Htpasswd => {
                let htpasswd = dir.path().join("htpasswd");
                write_htpasswd(&htpasswd)?;
                config.push_str(&format!(
                    "auth:\n  htpasswd:\n    realm: berth-test\n    path: {}\n",
                    htpasswd.display()
                ));
            }
            Mode::Tls => {
                let (cert, key) = make_certificates(dir.path())?;
                config.push_str(&format!(
                    "  tls:\n    certificate: {}\n    key: {}\n",
                    cert.display(),
                    key.display()
                ));
            }
        }
        let config_path = dir.path().join("config.yml");
        fs::write(&config_path, config)?;

        let log = fs::File::create(dir.path().join("registry.log"))?;
        let child = Command::new(DOCKER_REGISTRY)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("starting {DOCKER_REGISTRY}"))?;
        let mut registry = Self { mode, addr, child, dir };
        registry.wait_ready()?;
        Ok(registry)
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// `127.0.0.1:PORT`, as a reference's registry part.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// The base URL, `http://` or `https://` by mode.
    pub fn url(&self) -> String {
        let scheme = if self.mode == Mode::Tls { "https" } else { "http" };
        format!("{scheme}://{}", self.addr)
    }

    /// The PEM file of the CA that signed the server's certificate (TLS mode only).
    pub fn ca_cert(&self) -> Option<PathBuf> {
        (self.mode == Mode::Tls).then(|| self.dir.path().join("ca.pem"))
    }

    /// The registry's storage root, for tests that inspect or corrupt what it serves.
    pub fn storage(&self) -> PathBuf {
        self.dir.path().join("storage")
    }

    /// The server's own log, for a failing test's message.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("docker-registry exited with {status} before serving: {}", self.log());
            }
            if TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "docker-registry did not listen on {} within 15 s: {}",
                    self.addr,
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback address with a port that was free a moment ago. The kernel hands out ports
/// in sequence, so the race with another process taking it is small; a test that loses it
/// sees a clear start-up error.
pub fn free_loopback_port() -> Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    Ok(listener.local_addr()?)
}

/// The status code of a plain-HTTP `GET path` on `addr`, with optional basic credentials.
/// Enough for probing a registry without pulling an HTTP client into the harness.
pub fn http_status(addr: &str, path: &str, basic: Option<(&str, &str)>) -> Result<u16> {
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some((user, password)) = basic {
        request.push_str(&format!(
            "Authorization: Basic {}\r\n",
            base64(&format!("{user}:{password}"))
        ));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes())?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let status = response.split(' ').nth(1).context("empty HTTP response")?;
    status.parse().with_context(|| format!("bad HTTP status line: {response:.80}"))
}

fn base64(input: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let bytes = input.as_bytes();
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk.iter().enumerate().fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn write_htpasswd(path: &Path) -> Result<()> {
    // The registry accepts bcrypt entries only; apache2-utils' htpasswd makes them.
    let out = Command::new("htpasswd")
        .args(["-Bbn", Registry::USERNAME, Registry::PASSWORD])
        .output()
        .context("running htpasswd: install Debian's apache2-utils")?;
    ensure!(out.status.success(), "htpasswd failed: {}", String::from_utf8_lossy(&out.stderr));
    fs::write(path, out.stdout)?;
    Ok(())
}

/// Makes a CA and a server certificate for 127.0.0.1 and localhost signed by it, with
/// openssl. Returns the server's certificate and key paths; the CA is `ca.pem` beside them.
fn make_certificates(dir: &Path) -> Result<(PathBuf, PathBuf)> {
    let openssl = |args: &[&str]| -> Result<()> {
        let out = Command::new("openssl").args(args).current_dir(dir).output()?;
        ensure!(
            out.status.success(),
            "openssl {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=berth-testkit CA",
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign",
    ])?;
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        "-subj",
        "/CN=127.0.0.1",
    ])?;
    fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
    )?;
    openssl(&[
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "server.pem",
        "-days",
        "2",
        "-extfile",
        "server.ext",
    ])?;
    Ok((dir.join("server.pem"), dir.join("server.key")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn curl(args: &[&str]) -> (bool, String) {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-w", "%{http_code}"])
            .args(args)
            .output()
            .expect("curl is installed by scripts/setup-host");
        (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    #[test]
    fn open_registry_answers_v2() {
        let registry = Registry::start(Mode::Open).unwrap();
        assert_eq!(http_status(&registry.addr(), "/v2/", None).unwrap(), 200, "{}", registry.log());
    }

    // Without credentials the auth mode refuses with 401; with the right ones it serves.
    #[test]
    fn htpasswd_registry_demands_credentials() {
        let registry = Registry::start(Mode::Htpasswd).unwrap();
        let addr = registry.addr();
        assert_eq!(http_status(&addr, "/v2/", None).unwrap(), 401);
        assert_eq!(http_status(&addr, "/v2/", Some(("berth", "wrong"))).unwrap(), 401);
        let good = Some((Registry::USERNAME, Registry::PASSWORD));
        assert_eq!(http_status(&addr, "/v2/", good).unwrap(), 200);
    }

    // The server's certificate verifies against the generated CA, and only against it.
    #[test]
    fn tls_registry_is_verified_against_the_generated_ca() {
        let registry = Registry::start(Mode::Tls).unwrap();
        let url = format!("{}/v2/", registry.url());
        let ca = registry.ca_cert().unwrap();
        let (ok, code) = curl(&["--cacert", ca.to_str().unwrap(), &url]);
        assert!(ok && code == "200", "curl with the CA: ok={ok} code={code}");
        let (ok, _) = curl(&[&url]);
        assert!(!ok, "curl without the CA must fail verification");
    }

    // Dropping the registry, as a panicking test does, stops the server and removes its root.
    #[test]
    fn drop_stops_the_server_and_removes_its_files() {
        let registry = Registry::start(Mode::Open).unwrap();
        let addr = registry.addr;
        let root = registry.dir.path().to_path_buf();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _owned = registry;
            panic!("a test failing while it holds the registry");
        }));
        assert!(outcome.is_err());
        assert!(!root.exists(), "{} is left behind", root.display());
        assert!(TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err());
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, output) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(input), output);
        }
    }
}
