//! Pull, push, login and remote manifest inspection through berth-image's registry client.
//!
//! A pull fetches the manifest (through an index to the platform's manifest), the config,
//! then every missing layer in parallel. Each layer streams from the network through a tee
//! into the content store's resumable ingest file and, in the same pass, through the
//! decompressor into berth-storage's unpacker: the compressed digest, the diff_id and the
//! unpacked tree all come from one read of the bytes, with no temporary copy of the layer.
//! The layer is committed only after both digests matched. A pull killed mid-layer leaves a
//! partial ingest file; the next pull re-reads it into the unpacker and continues the
//! download with a Range request after its last byte.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use berth_image::config::{chain_ids, ImageConfig};
use berth_image::digest::Digest;
use berth_image::manifest::{Compression, Descriptor, Manifest, ManifestError};
use berth_image::platform::{self, Platform, PlatformError};
use berth_image::reference::Reference;
use berth_image::registries_conf::{Registries, RegistriesError, ShortNameMode};
use berth_image::registry::auth::{AuthError, AuthFiles, Credentials};
use berth_image::registry::{download, ClientOptions, FetchedManifest, Registry, RegistryError};
use berth_image::store::{BlobWriter, StoreError};
use berth_storage::layers::LayerError;
use futures_util::StreamExt;
use tracing::{debug, info, warn};

use super::{ImageError, Images};

pub use berth_image::registry::RegistryError as RegistryFailure;

const PARALLEL_LAYERS: usize = 4;

#[derive(Debug, thiserror::Error)]
pub enum PullError {
    #[error("{action} {reference}")]
    Registry {
        action: &'static str,
        reference: String,
        #[source]
        source: RegistryError,
    },
    #[error(transparent)]
    Registries(#[from] RegistriesError),
    #[error("{reference}")]
    Manifest {
        reference: String,
        #[source]
        source: ManifestError,
    },
    #[error("{reference}")]
    Platform {
        reference: String,
        #[source]
        source: PlatformError,
    },
    #[error("parsing config {digest}")]
    Config {
        digest: Digest,
        #[source]
        source: serde_json::Error,
    },
    #[error("layer {digest}")]
    Blob {
        digest: Digest,
        #[source]
        source: StoreError,
    },
    #[error("layer {digest}")]
    Layer {
        digest: Digest,
        #[source]
        source: LayerError,
    },
    #[error("downloading layer {digest}")]
    Download {
        digest: Digest,
        #[source]
        source: io::Error,
    },
    #[error("{0}: an image index cannot be pushed yet")]
    PushIndex(String),
    #[error("{0}: a destination needs a registry (e.g. localhost:5000/{0})")]
    NoRegistry(String),
    #[error("starting the async runtime")]
    Runtime(#[source] io::Error),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("{0}")]
    Failed(String),
}

/// What a pull or push reports as it goes, for the command line to print.
#[derive(Debug, Clone)]
pub enum Event {
    Trying(String),
    Blob {
        digest: Digest,
        skipped: bool,
    },
    Config(Digest),
    WritingManifest,
    Resolved {
        reference: String,
        digest: Digest,
    },
    /// Bytes of layers downloaded so far, of `total`.
    Progress {
        done: u64,
        total: u64,
    },
    /// Bytes of one layer downloaded so far, of its compressed size; sent for every layer
    /// being fetched when its download starts, a few times a second, and when it ends.
    LayerProgress {
        digest: Digest,
        done: u64,
        total: u64,
    },
    /// A short name was recorded as an alias after the user chose it.
    AliasRecorded {
        short: String,
        name: String,
        path: PathBuf,
    },
}

/// Asks the user which of several full names a short name means (short-name-mode on a
/// terminal); returns the index chosen.
#[derive(Clone)]
pub struct Chooser(pub Arc<ChooseFn>);

/// Given the short name and the full names it may mean, returns the index of the one chosen.
pub type ChooseFn = dyn Fn(&str, &[String]) -> io::Result<usize> + Send + Sync;

impl std::fmt::Debug for Chooser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Chooser")
    }
}

/// Registry access settings (`--tls-verify`, `--authfile`, `--creds`, `--platform`).
#[derive(Debug, Clone, Default)]
pub struct RegistryOptions {
    pub tls_verify: Option<bool>,
    pub authfile: Option<PathBuf>,
    pub credentials: Option<(String, String)>,
    pub platform: Option<Platform>,
    /// Extra CA files trusted for every registry (`--cert-dir`'s `*.crt`).
    pub extra_ca: Vec<PathBuf>,
    /// Set when a user can be asked (standard input and output are a terminal): an
    /// ambiguous short name is then resolved by asking, as short-name-mode says.
    pub chooser: Option<Chooser>,
}

impl RegistryOptions {
    fn client(&self) -> Result<ClientOptions, PullError> {
        Ok(ClientOptions {
            tls_verify: self.tls_verify,
            auth_files: AuthFiles::new(self.authfile.as_deref()),
            credentials: self.credentials.as_ref().map(|(u, p)| Credentials {
                username: u.clone(),
                password: berth_image::registry::auth::Secret::new(p.clone()),
            }),
            cert_dirs: Default::default(),
            extra_ca: self.extra_ca.clone(),
            registries: Registries::load()?,
        })
    }
}

fn runtime() -> Result<tokio::runtime::Runtime, PullError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(PARALLEL_LAYERS + 2)
        .enable_all()
        .build()
        .map_err(PullError::Runtime)
}

/// A reader that copies what passes through it, past the first `skip` bytes, into the blob
/// writer: the bytes before `skip` are the resumed partial file's own.
struct Tee<R> {
    inner: R,
    writer: BlobWriter,
    skip: u64,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        let own = (self.skip.min(n as u64)) as usize;
        self.skip -= own as u64;
        self.writer.write_all(&buf[own..n])?;
        Ok(n)
    }
}

fn is_not_found(err: &RegistryError) -> bool {
    err.status().is_some_and(|s| s == reqwest::StatusCode::NOT_FOUND)
        || err.codes().iter().any(|c| matches!(*c, "MANIFEST_UNKNOWN" | "NAME_UNKNOWN"))
}

impl Images {
    /// Pulls `input` (short names through registries.conf) and returns the image; the
    /// resolved digest is reported through `progress`.
    pub fn pull(
        &self,
        input: &str,
        options: &RegistryOptions,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<super::Image, ImageError> {
        let reference = Reference::parse(input)?;
        let client = options.client()?;
        let (mut candidates, settled) =
            client.registries.resolve(&reference).map_err(PullError::from)?;
        // An ambiguous short name: short-name-mode decides whether to ask, fail or try all.
        let mut record = None;
        if !settled {
            let mode = client.registries.mode();
            match (&options.chooser, mode) {
                (Some(chooser), ShortNameMode::Enforcing | ShortNameMode::Permissive) => {
                    let names: Vec<String> = candidates
                        .iter()
                        .map(|c| c.clone().without_tag().without_digest().to_string())
                        .collect();
                    let chosen = (chooser.0)(reference.short_path(), &names)
                        .map_err(|e| PullError::Failed(format!("choosing an image: {e}")))?;
                    let Some(name) = names.get(chosen) else {
                        return Err(ImageError::Pull(PullError::Failed(format!(
                            "choosing an image: {} is not one of 1 to {}",
                            chosen + 1,
                            names.len()
                        ))));
                    };
                    record = Some((reference.short_path().to_owned(), name.clone()));
                    candidates = vec![candidates.swap_remove(chosen)];
                }
                (None, ShortNameMode::Enforcing) => {
                    return Err(ImageError::Pull(PullError::Registries(
                        RegistriesError::Ambiguous {
                            name: reference.short_path().to_owned(),
                            candidates: candidates.iter().map(ToString::to_string).collect(),
                        },
                    )));
                }
                _ => {}
            }
        }
        let rt = runtime()?;
        let mut last = None;
        for (i, candidate) in candidates.iter().enumerate() {
            let candidate = if candidate.digest().is_none() {
                candidate.clone().with_default_tag()
            } else {
                candidate.clone()
            };
            progress(Event::Trying(candidate.to_string()));
            match self.pull_from_sources(&rt, &candidate, &client, options, progress) {
                Ok(image) => {
                    if let Some((short, name)) = record {
                        let path =
                            Registries::record_alias(&short, &name).map_err(PullError::from)?;
                        info!(%short, %name, ?path, "recorded a short-name alias");
                        progress(Event::AliasRecorded { short, name, path });
                    }
                    return Ok(image);
                }
                Err(ImageError::Pull(PullError::Registry { action, reference, source }))
                    if i + 1 < candidates.len()
                        && (is_not_found(&source)
                            || matches!(source, RegistryError::Connect { .. })) =>
                {
                    debug!(%reference, error = %source, "not there; trying the next search registry");
                    last = Some(PullError::Registry { action, reference, source });
                }
                Err(e) => return Err(e),
            }
        }
        Err(last.map(ImageError::Pull).unwrap_or_else(|| ImageError::NotFound(input.to_owned())))
    }

    /// Pulls `reference` from its mirrors in order, then from its primary location
    /// (registries.conf `[[registry]]`); a registry failure at a mirror falls through to the
    /// next source. The image is named `reference` wherever it came from.
    fn pull_from_sources(
        &self,
        rt: &tokio::runtime::Runtime,
        reference: &Reference,
        client: &ClientOptions,
        options: &RegistryOptions,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<super::Image, ImageError> {
        let sources = client.registries.pull_sources(reference).map_err(PullError::from)?;
        let count = sources.len();
        for (i, source) in sources.into_iter().enumerate() {
            let result = self.pull_one(rt, reference, &source.reference, client, options, progress);
            match result {
                Err(ImageError::Pull(PullError::Registry {
                    reference: from, source: err, ..
                })) if source.mirror && i + 1 < count => {
                    info!(mirror = %from, error = %err, "mirror failed; trying the next source");
                }
                other => return other,
            }
        }
        unreachable!("pull_sources always ends with the primary")
    }

    fn pull_one(
        &self,
        rt: &tokio::runtime::Runtime,
        reference: &Reference,
        source: &Reference,
        client: &ClientOptions,
        options: &RegistryOptions,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<super::Image, ImageError> {
        let _gc = self.shared_gc_lock()?;
        // Errors name where the bytes came from (a mirror, or a rewritten location).
        let name = source.to_string();
        let registry_err = |source| {
            ImageError::Pull(PullError::Registry {
                action: "pulling",
                reference: name.clone(),
                source,
            })
        };
        if source != reference {
            debug!(%reference, from = %source, "pulling from a mirror or rewritten location");
        }
        let repo = source.repository().to_owned();
        let registry =
            rt.block_on(Registry::connect(source.registry(), client)).map_err(registry_err)?;

        // The manifest, through an index when the tag names one.
        let top = rt.block_on(registry.manifest(&repo, &source.target())).map_err(registry_err)?;
        let (wanted, explicit) = match &options.platform {
            Some(p) => (p.clone(), p.variant.is_some()),
            None => (Platform::host(), false),
        };
        let parse = |fetched: &FetchedManifest| {
            Manifest::parse(Some(&fetched.media_type), &fetched.bytes).map_err(|source| {
                ImageError::Pull(PullError::Manifest { reference: name.clone(), source })
            })
        };
        let mut repo_digests = vec![format!("{}@{}", reference.name(), top.digest)];
        let (fetched, manifest) = match parse(&top)? {
            Manifest::Index { index, .. } => {
                let chosen = platform::select(&index, &wanted, explicit).map_err(|source| {
                    ImageError::Pull(PullError::Platform { reference: name.clone(), source })
                })?;
                let fetched = rt
                    .block_on(registry.manifest(&repo, chosen.digest.as_str()))
                    .map_err(registry_err)?;
                self.blobs().put(&top.bytes)?;
                let Manifest::Image { manifest, .. } = parse(&fetched)? else {
                    return Err(ImageError::Pull(PullError::Failed(format!(
                        "{name}: an index inside an index is not supported yet"
                    ))));
                };
                repo_digests.push(format!("{}@{}", reference.name(), fetched.digest));
                (fetched, manifest)
            }
            Manifest::Image { manifest, .. } => (top.clone(), manifest),
        };

        // The config: small, fetched whole and verified.
        let config_digest = manifest.config.digest.clone();
        if !self.blobs().contains(&config_digest) {
            let bytes = rt
                .block_on(registry.blob_bytes(&repo, &config_digest, Some(manifest.config.size)))
                .map_err(registry_err)?;
            self.blobs().put(&bytes)?;
        }
        let config: ImageConfig = serde_json::from_slice(&self.blobs().read(&config_digest)?)
            .map_err(|source| {
                ImageError::Pull(PullError::Config { digest: config_digest.clone(), source })
            })?;
        // A tag naming one manifest has no choice to make; like Podman, say so when the
        // image is not for the platform asked for.
        if let Some(asked) = &options.platform {
            if fetched.digest == top.digest
                && (config.os != asked.os || config.architecture != asked.architecture)
            {
                warn!(
                    image = %name,
                    "image platform ({}/{}) does not match the expected platform ({}/{})",
                    config.os,
                    config.architecture,
                    asked.os,
                    asked.architecture
                );
            }
        }
        if config.rootfs.diff_ids.len() != manifest.layers.len() {
            return Err(ImageError::LayerCount {
                digest: config_digest,
                diff_ids: config.rootfs.diff_ids.len(),
                layers: manifest.layers.len(),
            });
        }

        // The layers, in parallel, each streamed, verified and unpacked in one pass.
        let chains = chain_ids(&config.rootfs.diff_ids);
        let downloaded = Arc::new(AtomicU64::new(0));
        // One counter per layer to fetch, for per-layer progress.
        let fetching: Vec<(Digest, u64, Arc<AtomicU64>)> = manifest
            .layers
            .iter()
            .filter(|l| !self.blobs().contains(&l.digest))
            .map(|l| (l.digest.clone(), l.size, Arc::new(AtomicU64::new(0))))
            .collect();
        let total: u64 = fetching.iter().map(|(_, size, _)| size).sum();
        let report_layers = || {
            for (digest, size, done) in &fetching {
                progress(Event::LayerProgress {
                    digest: digest.clone(),
                    done: done.load(Ordering::Relaxed).min(*size),
                    total: *size,
                });
            }
        };
        let jobs: Vec<_> = manifest
            .layers
            .iter()
            .enumerate()
            .map(|(i, layer)| {
                let images = self.clone();
                let registry = registry.clone();
                let repo = repo.clone();
                let layer = layer.clone();
                let chain = chains[i].clone();
                let parent = i.checked_sub(1).map(|p| chains[p].clone());
                let diff_id = config.rootfs.diff_ids[i].clone();
                let handle = rt.handle().clone();
                let counter = downloaded.clone();
                let layer_counter = fetching
                    .iter()
                    .find(|(d, _, _)| *d == layer.digest)
                    .map(|(_, _, c)| c.clone())
                    .unwrap_or_default();
                async move {
                    let digest = layer.digest.clone();
                    let result = tokio::task::spawn_blocking(move || {
                        images.fetch_layer(
                            &handle,
                            registry,
                            &repo,
                            &layer,
                            &chain,
                            parent.as_ref(),
                            &diff_id,
                            counter,
                            layer_counter,
                        )
                    })
                    .await
                    .unwrap_or_else(|e| {
                        Err(ImageError::Pull(PullError::Failed(format!("layer task failed: {e}"))))
                    });
                    (digest, result)
                }
            })
            .collect();
        report_layers();
        let results: Vec<(Digest, Result<bool, ImageError>)> = rt.block_on(async {
            let all = futures_util::stream::iter(jobs).buffer_unordered(PARALLEL_LAYERS).collect();
            tokio::pin!(all);
            // Progress a few times a second while the layers come in (the caller's callback
            // stays on this thread).
            loop {
                tokio::select! {
                    results = &mut all => break results,
                    _ = tokio::time::sleep(std::time::Duration::from_millis(200)) => {
                        progress(Event::Progress { done: downloaded.load(Ordering::Relaxed), total });
                        report_layers();
                    }
                }
            }
        });
        report_layers();
        let mut first_error = None;
        for (digest, result) in results {
            match result {
                Ok(skipped) => progress(Event::Blob { digest, skipped }),
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        progress(Event::Config(config_digest.clone()));

        progress(Event::WritingManifest);
        let manifest_digest = self.blobs().put(&fetched.bytes)?;
        let descriptor = Descriptor::new(
            manifest.media_type.as_deref().unwrap_or(&fetched.media_type),
            manifest_digest,
            fetched.bytes.len() as u64,
        );
        let names: Vec<String> = match reference.tag() {
            Some(_) => vec![reference.clone().without_digest().to_string()],
            None => Vec::new(),
        };
        info!(reference = %name, digest = %top.digest, "pulled");
        let image = self.commit_image(&descriptor, &names, &repo_digests)?;
        progress(Event::Resolved { reference: reference.to_string(), digest: top.digest.clone() });
        Ok(image)
    }

    /// Makes sure layer `layer` is both in the content store and unpacked. Returns true when
    /// nothing had to be done.
    #[allow(clippy::too_many_arguments)]
    fn fetch_layer(
        &self,
        handle: &tokio::runtime::Handle,
        registry: Arc<Registry>,
        repo: &str,
        layer: &Descriptor,
        chain: &Digest,
        parent: Option<&Digest>,
        diff_id: &Digest,
        downloaded: Arc<AtomicU64>,
        layer_downloaded: Arc<AtomicU64>,
    ) -> Result<bool, ImageError> {
        let digest = &layer.digest;
        let need_blob = !self.blobs().contains(digest);
        let need_layer = !self.layers().contains(chain);
        if !need_blob && !need_layer {
            return Ok(true);
        }
        let compression = Compression::of_layer(&layer.media_type).map_err(|source| {
            ImageError::Pull(PullError::Manifest { reference: digest.to_string(), source })
        })?;
        let layer_err =
            |source| ImageError::Pull(PullError::Layer { digest: digest.clone(), source });
        let blob_err =
            |source| ImageError::Pull(PullError::Blob { digest: digest.clone(), source });
        if !need_blob {
            let blob = io::BufReader::with_capacity(1 << 20, self.blobs().open_blob(digest)?);
            self.layers()
                .apply(chain, parent, diff_id, blob, compression, self.unpack_options())
                .map_err(layer_err)?;
            return Ok(false);
        }

        let (writer, have) =
            self.blobs().resumable_writer(digest, Some(layer.size)).map_err(blob_err)?;
        let partial: Box<dyn Read + Send> = if have > 0 {
            debug!(%digest, have, "resuming an interrupted download");
            layer_downloaded.fetch_add(have, Ordering::Relaxed);
            let mut file = File::open(writer.temp_path()).map_err(|source| {
                ImageError::Pull(PullError::Download { digest: digest.clone(), source })
            })?;
            file.seek(SeekFrom::Start(0)).map_err(|source| {
                ImageError::Pull(PullError::Download { digest: digest.clone(), source })
            })?;
            Box::new(file.take(have))
        } else {
            Box::new(io::empty())
        };
        let network = download::start(
            handle,
            registry,
            repo.to_owned(),
            digest.clone(),
            layer.size,
            have,
            Some(Arc::new(move |n| {
                downloaded.fetch_add(n, Ordering::Relaxed);
                layer_downloaded.fetch_add(n, Ordering::Relaxed);
            })),
        );
        let mut tee = Tee { inner: partial.chain(network), writer, skip: have };

        let staged = if need_layer {
            Some(self.layers().stage(
                chain,
                parent,
                diff_id,
                &mut tee,
                compression,
                self.unpack_options(),
            ))
        } else {
            None
        };
        // The rest of the blob (a gzip trailer, or everything when only the blob is
        // needed) goes into the store too; its digest is checked before anything commits.
        let drained = io::copy(&mut tee, &mut io::sink());
        let Tee { writer, .. } = tee;
        let committed = match drained {
            Ok(_) => writer.commit().map_err(blob_err),
            Err(source) => {
                Err(ImageError::Pull(PullError::Download { digest: digest.clone(), source }))
            }
        };
        match (committed, staged) {
            // A blob that does not match its digest explains any unpacking failure.
            (
                Err(e @ ImageError::Pull(PullError::Blob { source: StoreError::Verify(_), .. })),
                _,
            ) => Err(e),
            (_, Some(Err(e))) => Err(layer_err(e)),
            (Err(e), _) => Err(e),
            (Ok(_), Some(Ok(staged))) => {
                staged.commit().map_err(layer_err)?;
                Ok(false)
            }
            (Ok(_), None) => Ok(false),
        }
    }

    /// Pushes image `input` to `destination` (default: its own name). Blobs the registry
    /// has are skipped, ones in another repository of the same registry are mounted, the
    /// rest uploaded; then the manifest, byte for byte as stored, so its digest is kept.
    pub fn push(
        &self,
        input: &str,
        destination: Option<&str>,
        options: &RegistryOptions,
        progress: &(dyn Fn(Event) + Sync),
    ) -> Result<Digest, ImageError> {
        let image = self.find(input)?;
        let target = Reference::parse(destination.unwrap_or(input))?;
        if !target.registry_explicit() {
            return Err(ImageError::Pull(PullError::NoRegistry(target.short_path().to_owned())));
        }
        let target = if target.digest().is_none() { target.with_default_tag() } else { target };
        let name = target.to_string();
        let registry_err = |source| {
            ImageError::Pull(PullError::Registry {
                action: "pushing",
                reference: name.clone(),
                source,
            })
        };
        let client = options.client()?;
        let rt = runtime()?;
        let registry =
            rt.block_on(Registry::connect(target.registry(), &client)).map_err(registry_err)?;
        let repo = target.repository().to_owned();
        // Repositories on this registry that already hold this image's blobs.
        let mount_from: Vec<String> = image
            .record
            .repo_digests
            .iter()
            .filter_map(|d| Reference::parse(d).ok())
            .filter(|r| r.registry() == target.registry() && r.repository() != repo)
            .map(|r| r.repository().to_owned())
            .collect();

        let mut blobs: Vec<Descriptor> = image.manifest.layers.clone();
        blobs.push(image.manifest.config.clone());
        let jobs = blobs.into_iter().map(|blob| {
            let registry = registry.clone();
            let repo = repo.clone();
            let mount_from = mount_from.clone();
            let path = self.blobs().path(&blob.digest);
            async move {
                let digest = blob.digest.clone();
                if registry.blob_exists(&repo, &digest).await? {
                    return Ok((digest, true));
                }
                for from in &mount_from {
                    if registry.mount_blob(&repo, &digest, from).await? {
                        debug!(%digest, %from, "mounted from another repository");
                        return Ok((digest, true));
                    }
                }
                let read_range =
                    move |start: u64, end: u64| file_range_body(path.clone(), start, end);
                registry.upload_blob(&repo, &digest, blob.size, &read_range).await?;
                Ok::<_, RegistryError>((digest, false))
            }
        });
        let results: Vec<Result<(Digest, bool), RegistryError>> = rt
            .block_on(futures_util::stream::iter(jobs).buffer_unordered(PARALLEL_LAYERS).collect());
        for result in results {
            let (digest, skipped) = result.map_err(registry_err)?;
            progress(Event::Blob { digest, skipped });
        }

        progress(Event::WritingManifest);
        let bytes = self.blobs().read(&image.record.manifest.digest)?;
        let digest = rt
            .block_on(registry.put_manifest(
                &repo,
                &target.target(),
                &image.record.manifest.media_type,
                &bytes,
            ))
            .map_err(registry_err)?;
        let repo_digest = format!("{}@{digest}", target.name());
        self.index.update(|index| {
            if let Some(record) = index.images.iter_mut().find(|r| r.id == image.record.id) {
                if !record.repo_digests.contains(&repo_digest) {
                    record.repo_digests.push(repo_digest.clone());
                }
            }
        })?;
        progress(Event::Resolved { reference: name, digest: digest.clone() });
        Ok(digest)
    }

    /// Fetches the manifest (or index) a remote reference names, without pulling.
    pub fn inspect_remote(
        &self,
        input: &str,
        options: &RegistryOptions,
    ) -> Result<FetchedManifest, ImageError> {
        let reference = Reference::parse(input)?;
        let client = options.client()?;
        let candidates = client.registries.candidates(&reference).map_err(PullError::from)?;
        let rt = runtime()?;
        let mut last = None;
        for candidate in candidates {
            let name = candidate.to_string();
            let result = rt.block_on(async {
                let registry = Registry::connect(candidate.registry(), &client).await?;
                registry.manifest(candidate.repository(), &candidate.target()).await
            });
            match result {
                Ok(fetched) => return Ok(fetched),
                Err(source) => {
                    last =
                        Some(PullError::Registry { action: "inspecting", reference: name, source })
                }
            }
        }
        Err(last.map(ImageError::Pull).unwrap_or_else(|| ImageError::NotFound(input.to_owned())))
    }
}

/// Checks credentials against `registry` and stores them (`login`); returns the file.
pub fn login(
    registry: &str,
    username: &str,
    password: &str,
    options: &RegistryOptions,
) -> Result<PathBuf, ImageError> {
    let mut options = options.clone();
    options.credentials = Some((username.to_owned(), password.to_owned()));
    let client = options.client()?;
    let rt = runtime()?;
    let err = |source| {
        ImageError::Pull(PullError::Registry {
            action: "logging in to",
            reference: registry.to_owned(),
            source,
        })
    };
    let connection = rt.block_on(Registry::connect(registry, &client)).map_err(err)?;
    rt.block_on(connection.check_login()).map_err(err)?;
    let credentials = client.credentials.expect("set above");
    Ok(client.auth_files.store(registry, &credentials).map_err(PullError::from)?)
}

/// Removes stored credentials for `registry` (all with None).
pub fn logout(
    registry: Option<&str>,
    authfile: Option<&std::path::Path>,
) -> Result<(), ImageError> {
    AuthFiles::new(authfile).remove(registry).map_err(PullError::from)?;
    Ok(())
}

/// A request body of bytes `start..end` of the file at `path`, read as it is sent.
fn file_range_body(path: PathBuf, start: u64, end: u64) -> reqwest::Body {
    use tokio::io::{AsyncReadExt, AsyncSeekExt};
    struct State {
        path: PathBuf,
        file: Option<tokio::fs::File>,
        position: u64,
        end: u64,
    }
    let state = State { path, file: None, position: start, end };
    let stream = futures_util::stream::unfold(state, |mut state| async move {
        if state.position >= state.end {
            return None;
        }
        if state.file.is_none() {
            let opened = async {
                let mut file = tokio::fs::File::open(&state.path).await?;
                file.seek(SeekFrom::Start(state.position)).await?;
                Ok::<_, io::Error>(file)
            }
            .await;
            match opened {
                Ok(file) => state.file = Some(file),
                Err(e) => {
                    state.position = state.end;
                    return Some((Err(e), state));
                }
            }
        }
        let want = (state.end - state.position).min(256 << 10) as usize;
        let mut buf = vec![0u8; want];
        let file = state.file.as_mut().expect("opened above");
        match file.read(&mut buf).await {
            Ok(0) => {
                state.position = state.end;
                Some((
                    Err(io::Error::new(io::ErrorKind::UnexpectedEof, "blob shorter than its size")),
                    state,
                ))
            }
            Ok(n) => {
                buf.truncate(n);
                state.position += n as u64;
                Some((Ok(bytes::Bytes::from(buf)), state))
            }
            Err(e) => {
                state.position = state.end;
                Some((Err(e), state))
            }
        }
    });
    reqwest::Body::wrap_stream(stream)
}
