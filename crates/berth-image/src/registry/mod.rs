//! The registry client: the OCI distribution spec's pull and push API over HTTP(S), async
//! on tokio, with reqwest on rustls (ring) underneath.
//!
//! reqwest was chosen over oci-client because berth needs what oci-client leaves out or gets
//! wrong here — registries.conf and auth.json, a Range resume that feeds the same verifying
//! pipeline, a platform matcher with variants, cross-repository mounts that fall back — and
//! the client is small: one type per registry host holding the HTTP client, the challenge
//! the registry answered `/v2/` with, and a token cache per scope.
//!
//! Every request goes through [`Registry::send`]: it adds credentials for the request's
//! scope, answers a 401 challenge once (Basic, or Bearer with a token fetched from the
//! realm, anonymous when no credentials are known), and retries 5xx answers, 429 and
//! connection failures with exponential backoff. A registry's JSON error body
//! (`errors[].code` and `message`) becomes part of the error the user sees.

pub mod auth;
pub mod download;
pub mod tls;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::{
    HeaderMap, HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION, RANGE,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, StatusCode};
use serde::Deserialize;
use tracing::{debug, warn};

use crate::digest::{Digest, DigestError};
use crate::manifest;
use crate::registries_conf::Registries;
use auth::{AuthError, AuthFiles, Challenge, Credentials};
use tls::CertDirs;

const RETRIES: u32 = 4;
/// A chunk of a chunked upload.
pub const CHUNK_SIZE: u64 = 32 << 20;
/// Blobs larger than this are uploaded in chunks.
pub const MONOLITHIC_MAX: u64 = 64 << 20;
const ERROR_BODY_MAX: usize = 64 << 10;

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("pinging registry {registry}")]
    Connect {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("TLS handshake with {registry} failed (it may serve plain HTTP or a certificate not trusted here)")]
    Tls {
        registry: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}")]
    Request {
        method: Method,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("{method} {url}: {status}{body}")]
    Status { method: Method, url: String, status: StatusCode, body: ErrorBody },
    #[error("authenticating to {registry}: {status}{body}")]
    Unauthorized { registry: String, status: StatusCode, body: ErrorBody },
    #[error("getting a token from {realm}")]
    Token {
        realm: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("getting a token from {realm}: {status}")]
    TokenStatus { realm: String, status: StatusCode },
    #[error("credentials")]
    Credentials(#[from] AuthError),
    #[error("{url}: content does not match its digest")]
    Digest {
        url: String,
        #[source]
        source: DigestError,
    },
    #[error("{url}: answer without Location header")]
    NoLocation { url: String },
    #[error("{url}: manifest larger than {max} bytes")]
    ManifestTooLarge { url: String, max: usize },
}

/// The distribution spec's error body, shown after the status: `: CODE: message`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorBody {
    #[serde(default)]
    pub errors: Vec<ErrorEntry>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ErrorEntry {
    #[serde(default)]
    pub code: String,
    #[serde(default)]
    pub message: String,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Registry-controlled text: a few entries, each cut short, one line.
        for entry in self.errors.iter().take(3) {
            let message: String =
                entry.message.chars().take(200).collect::<String>().replace('\n', " ");
            let code: String = entry.code.chars().take(60).collect();
            write!(f, ": {code}: {message}")?;
        }
        Ok(())
    }
}

impl RegistryError {
    /// The registry's error codes, for callers that react to one (`MANIFEST_UNKNOWN`).
    pub fn codes(&self) -> Vec<&str> {
        match self {
            Self::Status { body, .. } | Self::Unauthorized { body, .. } => {
                body.errors.iter().map(|e| e.code.as_str()).collect()
            }
            _ => Vec::new(),
        }
    }

    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Status { status, .. } | Self::Unauthorized { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// How to reach registries.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// `--tls-verify`; None means verify unless registries.conf marks the registry insecure.
    pub tls_verify: Option<bool>,
    pub auth_files: AuthFiles,
    /// `--creds`: used instead of the auth files.
    pub credentials: Option<Credentials>,
    pub cert_dirs: CertDirs,
    /// `--cert-dir`-like extra CA files, trusted for every registry.
    pub extra_ca: Vec<PathBuf>,
    pub registries: Registries,
}

/// A connection to one registry host.
#[derive(Debug)]
pub struct Registry {
    host: String,
    base: String,
    http: reqwest::Client,
    credentials: Option<Credentials>,
    challenge: Mutex<Option<Challenge>>,
    /// Bearer tokens by scope. An async lock held across a fetch, so concurrent requests of
    /// one scope fetch one token.
    tokens: tokio::sync::Mutex<HashMap<String, String>>,
}

/// What a manifest request returned.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub media_type: String,
    pub digest: Digest,
}

impl Registry {
    /// Connects to `host` (`host[:port]`) and pings `/v2/`. With verification off (the flag
    /// or registries.conf), HTTPS is tried first and plain HTTP after it.
    pub async fn connect(host: &str, options: &ClientOptions) -> Result<Arc<Self>, RegistryError> {
        let insecure = match options.tls_verify {
            Some(verify) => !verify,
            None => options.registries.insecure(host),
        };
        let tls = tls::client_config(host, !insecure, &options.cert_dirs, &options.extra_ca);
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .connect_timeout(Duration::from_secs(30))
            .read_timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(16)
            .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|source| RegistryError::Connect { registry: host.to_owned(), source })?;
        let credentials = match &options.credentials {
            Some(c) => Some(c.clone()),
            None => options.auth_files.lookup(host)?,
        };
        let mut registry = Self {
            host: host.to_owned(),
            base: format!("https://{host}"),
            http,
            credentials,
            challenge: Mutex::new(None),
            tokens: tokio::sync::Mutex::new(HashMap::new()),
        };
        match registry.ping().await {
            Ok(()) => {}
            Err(err) if insecure => {
                debug!(registry = host, error = %err, "HTTPS ping failed; trying plain HTTP");
                registry.base = format!("http://{host}");
                registry.ping().await?;
            }
            Err(err) => return Err(err),
        }
        Ok(Arc::new(registry))
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    async fn ping(&self) -> Result<(), RegistryError> {
        let url = format!("{}/v2/", self.base);
        let response = self.http.get(&url).send().await.map_err(|source| {
            if is_tls_failure(&source) {
                RegistryError::Tls { registry: self.host.clone(), source }
            } else {
                RegistryError::Connect { registry: self.host.clone(), source }
            }
        })?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            let challenge = response
                .headers()
                .get_all(WWW_AUTHENTICATE)
                .iter()
                .filter_map(|v| v.to_str().ok())
                .find_map(Challenge::parse);
            debug!(registry = %self.host, ?challenge, "registry wants authentication");
            *self.challenge.lock().expect("not poisoned") = challenge;
            return Ok(());
        }
        if status.is_success() {
            return Ok(());
        }
        let body = error_body(response).await;
        Err(RegistryError::Status { method: Method::GET, url, status, body })
    }

    /// Checks that the known credentials are accepted (for `login`).
    pub async fn check_login(&self) -> Result<(), RegistryError> {
        let challenge = self.challenge.lock().expect("not poisoned").clone();
        match challenge {
            None => Ok(()),
            Some(challenge) => {
                let header = self.authorization(&challenge, "registry:catalog:*", true).await?;
                let url = format!("{}/v2/", self.base);
                let mut request = self.http.get(&url);
                if let Some(header) = header {
                    request = request.header(AUTHORIZATION, header);
                }
                let response = request.send().await.map_err(|source| RegistryError::Request {
                    method: Method::GET,
                    url: url.clone(),
                    source,
                })?;
                if response.status().is_success() {
                    Ok(())
                } else {
                    let status = response.status();
                    Err(RegistryError::Unauthorized {
                        registry: self.host.clone(),
                        status,
                        body: error_body(response).await,
                    })
                }
            }
        }
    }

    /// The Authorization header for `scope` under `challenge`, fetching a token if needed.
    async fn authorization(
        &self,
        challenge: &Challenge,
        scope: &str,
        fresh: bool,
    ) -> Result<Option<String>, RegistryError> {
        match challenge {
            Challenge::Basic { .. } => Ok(self.credentials.as_ref().map(Credentials::basic_header)),
            Challenge::Bearer { realm, service, .. } => {
                let mut tokens = self.tokens.lock().await;
                if !fresh {
                    if let Some(token) = tokens.get(scope) {
                        return Ok(Some(format!("Bearer {token}")));
                    }
                }
                let mut url =
                    reqwest::Url::parse(realm).map_err(|_| RegistryError::TokenStatus {
                        realm: realm.clone(),
                        status: StatusCode::BAD_REQUEST,
                    })?;
                {
                    let mut query = url.query_pairs_mut();
                    for part in scope.split(' ') {
                        query.append_pair("scope", part);
                    }
                    if let Some(service) = service {
                        query.append_pair("service", service);
                    }
                    if let Some(credentials) = &self.credentials {
                        query.append_pair("account", &credentials.username);
                    }
                }
                let mut request = self.http.get(url);
                if let Some(credentials) = &self.credentials {
                    request = request.header(AUTHORIZATION, credentials.basic_header());
                }
                let response = request
                    .send()
                    .await
                    .map_err(|source| RegistryError::Token { realm: realm.clone(), source })?;
                if !response.status().is_success() {
                    return Err(RegistryError::TokenStatus {
                        realm: realm.clone(),
                        status: response.status(),
                    });
                }
                #[derive(Deserialize)]
                struct TokenResponse {
                    token: Option<String>,
                    access_token: Option<String>,
                }
                let bytes = response
                    .bytes()
                    .await
                    .map_err(|source| RegistryError::Token { realm: realm.clone(), source })?;
                let body: TokenResponse =
                    serde_json::from_slice(&bytes).map_err(|_| RegistryError::TokenStatus {
                        realm: realm.clone(),
                        status: StatusCode::UNPROCESSABLE_ENTITY,
                    })?;
                let Some(token) = body.token.or(body.access_token) else {
                    return Err(RegistryError::TokenStatus {
                        realm: realm.clone(),
                        status: StatusCode::UNAUTHORIZED,
                    });
                };
                debug!(registry = %self.host, scope, "got a bearer token");
                tokens.insert(scope.to_owned(), token.clone());
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Sends a request built by `build` for `scope`, with authentication and retries.
    /// Statuses other than success (and those `accept` lists) become errors.
    pub async fn send(
        &self,
        method: Method,
        url: &str,
        scope: &str,
        headers: HeaderMap,
        body: Option<&(dyn Fn() -> reqwest::Body + Sync)>,
        accept: &[StatusCode],
    ) -> Result<reqwest::Response, RegistryError> {
        let mut attempt = 0;
        let mut fresh_token = false;
        let mut answered_challenge = false;
        loop {
            let challenge = self.challenge.lock().expect("not poisoned").clone();
            let mut request = self.http.request(method.clone(), url).headers(headers.clone());
            if let Some(challenge) = &challenge {
                if let Some(header) = self.authorization(challenge, scope, fresh_token).await? {
                    request = request.header(AUTHORIZATION, header);
                }
            }
            if let Some(body) = body {
                request = request.body(body());
            }
            let outcome = request.send().await;
            let retry_after = Duration::from_millis(250 << attempt);
            match outcome {
                Err(source) => {
                    if attempt < RETRIES
                        && (source.is_connect() || source.is_timeout() || source.is_request())
                    {
                        warn!(%url, error = %source, attempt, "request failed; retrying");
                        attempt += 1;
                        tokio::time::sleep(retry_after).await;
                        continue;
                    }
                    return Err(RegistryError::Request { method, url: url.to_owned(), source });
                }
                Ok(response) => {
                    let status = response.status();
                    if status.is_success() || accept.contains(&status) {
                        return Ok(response);
                    }
                    if status == StatusCode::UNAUTHORIZED && !answered_challenge {
                        // A new or changed challenge (another scope, an expired token).
                        if let Some(next) = response
                            .headers()
                            .get_all(WWW_AUTHENTICATE)
                            .iter()
                            .filter_map(|v| v.to_str().ok())
                            .find_map(Challenge::parse)
                        {
                            *self.challenge.lock().expect("not poisoned") = Some(next);
                            answered_challenge = true;
                            fresh_token = true;
                            continue;
                        }
                    }
                    if (status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS)
                        && attempt < RETRIES
                    {
                        warn!(%url, %status, attempt, "registry error; retrying");
                        attempt += 1;
                        tokio::time::sleep(retry_after).await;
                        continue;
                    }
                    let body = error_body(response).await;
                    if matches!(status, StatusCode::UNAUTHORIZED | StatusCode::FORBIDDEN) {
                        return Err(RegistryError::Unauthorized {
                            registry: self.host.clone(),
                            status,
                            body,
                        });
                    }
                    return Err(RegistryError::Status {
                        method,
                        url: url.to_owned(),
                        status,
                        body,
                    });
                }
            }
        }
    }

    fn url(&self, repository: &str, rest: &str) -> String {
        format!("{}/v2/{repository}/{rest}", self.base)
    }

    /// Fetches a manifest by tag or digest. A digest reference is verified; the digest of a
    /// tag is computed from the bytes (and compared with Docker-Content-Digest when sent).
    pub async fn manifest(
        &self,
        repository: &str,
        reference: &str,
    ) -> Result<FetchedManifest, RegistryError> {
        const MAX: usize = 4 << 20;
        let url = self.url(repository, &format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers
            .insert(ACCEPT, HeaderValue::from_str(&manifest::ACCEPTED.join(", ")).expect("ascii"));
        let response =
            self.send(Method::GET, &url, &pull_scope(repository), headers, None, &[]).await?;
        let media_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let header_digest = response
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<Digest>().ok());
        if response.content_length().is_some_and(|n| n > MAX as u64) {
            return Err(RegistryError::ManifestTooLarge { url, max: MAX });
        }
        let bytes = response.bytes().await.map_err(|source| RegistryError::Request {
            method: Method::GET,
            url: url.clone(),
            source,
        })?;
        if bytes.len() > MAX {
            return Err(RegistryError::ManifestTooLarge { url, max: MAX });
        }
        let expected = reference.parse::<Digest>().ok().or(header_digest);
        let digest = match &expected {
            Some(expected) => {
                let mut hasher = expected
                    .hasher()
                    .map_err(|source| RegistryError::Digest { url: url.clone(), source })?;
                hasher.update(&bytes);
                let actual = hasher.finish();
                expected
                    .verify(&actual, None, 0)
                    .map_err(|source| RegistryError::Digest { url: url.clone(), source })?;
                actual
            }
            None => Digest::sha256(&bytes),
        };
        Ok(FetchedManifest { bytes: bytes.to_vec(), media_type, digest })
    }

    /// Starts a blob download at byte `offset` (a Range request when not 0). Returns the
    /// response and whether the registry honoured the range (206).
    pub async fn blob(
        &self,
        repository: &str,
        digest: &Digest,
        offset: u64,
    ) -> Result<(reqwest::Response, bool), RegistryError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let mut headers = HeaderMap::new();
        if offset > 0 {
            headers
                .insert(RANGE, HeaderValue::from_str(&format!("bytes={offset}-")).expect("ascii"));
        }
        let response =
            self.send(Method::GET, &url, &pull_scope(repository), headers, None, &[]).await?;
        let ranged = response.status() == StatusCode::PARTIAL_CONTENT;
        Ok((response, ranged))
    }

    /// A whole small blob (a config), verified.
    pub async fn blob_bytes(
        &self,
        repository: &str,
        digest: &Digest,
        size: Option<u64>,
    ) -> Result<Vec<u8>, RegistryError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let (response, _) = self.blob(repository, digest, 0).await?;
        let bytes = response.bytes().await.map_err(|source| RegistryError::Request {
            method: Method::GET,
            url: url.clone(),
            source,
        })?;
        let mut hasher =
            digest.hasher().map_err(|source| RegistryError::Digest { url: url.clone(), source })?;
        hasher.update(&bytes);
        digest
            .verify(&hasher.finish(), size, bytes.len() as u64)
            .map_err(|source| RegistryError::Digest { url, source })?;
        Ok(bytes.to_vec())
    }

    /// Whether the repository has blob `digest`.
    pub async fn blob_exists(
        &self,
        repository: &str,
        digest: &Digest,
    ) -> Result<bool, RegistryError> {
        let url = self.url(repository, &format!("blobs/{digest}"));
        let response = self
            .send(
                Method::HEAD,
                &url,
                &push_scope(repository),
                HeaderMap::new(),
                None,
                &[StatusCode::NOT_FOUND],
            )
            .await?;
        Ok(response.status().is_success())
    }

    /// Tries a cross-repository mount of `digest` from `from` on the same registry. Returns
    /// false when the registry started an upload instead (the blob must then be sent).
    pub async fn mount_blob(
        &self,
        repository: &str,
        digest: &Digest,
        from: &str,
    ) -> Result<bool, RegistryError> {
        let url = format!("{}?mount={digest}&from={from}", self.url(repository, "blobs/uploads/"));
        let scope = format!("{} repository:{from}:pull", push_scope(repository));
        let response = self.send(Method::POST, &url, &scope, HeaderMap::new(), None, &[]).await?;
        if response.status() == StatusCode::CREATED {
            return Ok(true);
        }
        // An upload session was opened instead; cancel it so it does not linger.
        if let Some(location) = response.headers().get(LOCATION).and_then(|v| v.to_str().ok()) {
            let location = self.absolute(location);
            let _ = self
                .send(
                    Method::DELETE,
                    &location,
                    &push_scope(repository),
                    HeaderMap::new(),
                    None,
                    &[StatusCode::NOT_FOUND],
                )
                .await;
        }
        Ok(false)
    }

    fn absolute(&self, location: &str) -> String {
        if location.starts_with("http://") || location.starts_with("https://") {
            location.to_owned()
        } else {
            format!("{}{}", self.base, location)
        }
    }

    /// Uploads a blob whose bytes `open` produces (called again on a retry): monolithic up
    /// to [`MONOLITHIC_MAX`], in [`CHUNK_SIZE`] chunks above it (monolithic again when the
    /// registry refuses chunks).
    pub async fn upload_blob(
        &self,
        repository: &str,
        digest: &Digest,
        size: u64,
        read_range: &(dyn Fn(u64, u64) -> reqwest::Body + Sync),
    ) -> Result<(), RegistryError> {
        let scope = push_scope(repository);
        let start_url = self.url(repository, "blobs/uploads/");
        let response =
            self.send(Method::POST, &start_url, &scope, HeaderMap::new(), None, &[]).await?;
        let mut location = self.location(&response, &start_url)?;

        if size > MONOLITHIC_MAX {
            let mut offset = 0;
            let mut chunked = true;
            while offset < size && chunked {
                let end = (offset + CHUNK_SIZE).min(size);
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
                headers.insert(CONTENT_LENGTH, HeaderValue::from(end - offset));
                headers.insert(
                    "content-range",
                    HeaderValue::from_str(&format!("{offset}-{}", end - 1)).expect("ascii"),
                );
                let body = || read_range(offset, end);
                debug!(%digest, offset, end, "uploading a chunk");
                match self.send(Method::PATCH, &location, &scope, headers, Some(&body), &[]).await {
                    Ok(response) => {
                        location = self.location(&response, &location)?;
                        offset = end;
                    }
                    Err(err)
                        if offset == 0 && err.status().is_some_and(|s| s.is_client_error()) =>
                    {
                        warn!(registry = %self.host, error = %err, "registry refused a chunked upload; sending the blob whole");
                        chunked = false;
                    }
                    Err(err) => return Err(err),
                }
            }
            if chunked {
                let url = with_digest(&location, digest);
                let mut headers = HeaderMap::new();
                headers.insert(CONTENT_LENGTH, HeaderValue::from(0));
                self.send(Method::PUT, &url, &scope, headers, None, &[]).await?;
                return Ok(());
            }
            let response =
                self.send(Method::POST, &start_url, &scope, HeaderMap::new(), None, &[]).await?;
            location = self.location(&response, &start_url)?;
        }

        let url = with_digest(&location, digest);
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from(size));
        let body = || read_range(0, size);
        self.send(Method::PUT, &url, &scope, headers, Some(&body), &[]).await?;
        Ok(())
    }

    fn location(&self, response: &reqwest::Response, url: &str) -> Result<String, RegistryError> {
        response
            .headers()
            .get(LOCATION)
            .and_then(|v| v.to_str().ok())
            .map(|l| self.absolute(l))
            .ok_or_else(|| RegistryError::NoLocation { url: url.to_owned() })
    }

    /// Puts a manifest under `reference` (a tag or its digest); returns its digest.
    pub async fn put_manifest(
        &self,
        repository: &str,
        reference: &str,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let url = self.url(repository, &format!("manifests/{reference}"));
        let mut headers = HeaderMap::new();
        headers.insert(
            CONTENT_TYPE,
            HeaderValue::from_str(media_type)
                .unwrap_or(HeaderValue::from_static(manifest::OCI_MANIFEST)),
        );
        let owned = bytes.to_vec();
        let body = move || reqwest::Body::from(owned.clone());
        self.send(Method::PUT, &url, &push_scope(repository), headers, Some(&body), &[]).await?;
        Ok(Digest::sha256(bytes))
    }
}

fn with_digest(location: &str, digest: &Digest) -> String {
    let separator = if location.contains('?') { '&' } else { '?' };
    format!("{location}{separator}digest={digest}")
}

pub fn pull_scope(repository: &str) -> String {
    format!("repository:{repository}:pull")
}

pub fn push_scope(repository: &str) -> String {
    format!("repository:{repository}:pull,push")
}

fn is_tls_failure(err: &reqwest::Error) -> bool {
    let mut source: Option<&dyn std::error::Error> = Some(err);
    while let Some(e) = source {
        let text = e.to_string();
        if text.contains("certificate")
            || text.contains("InvalidContentType")
            || text.contains("corrupt message")
            || text.contains("tls")
        {
            return true;
        }
        source = e.source();
    }
    false
}

async fn error_body(response: reqwest::Response) -> ErrorBody {
    let Ok(bytes) = response.bytes().await else { return ErrorBody::default() };
    let bytes = &bytes[..bytes.len().min(ERROR_BODY_MAX)];
    serde_json::from_slice(bytes).unwrap_or_default()
}
