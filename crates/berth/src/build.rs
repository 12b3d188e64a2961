//! `berth build` (also `berth image build`): a Containerfile or Dockerfile and its context to
//! an image in the store, with Podman's flags and output, over berth-build's executor.
//!
//! The flags are resolved into one [`BuildOptions`] before any work starts, so every usage
//! error comes from here in one style. Progress (steps, the steps' own output, cache hits)
//! goes to standard output as Podman prints it; with `-q` only the image id does. A failing
//! RUN ends berth with that step's exit code, as Podman's build does; every other failure is
//! 125.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_build::args::{BuildArgs, Platform, Platforms};
use berth_build::exec::{self, BuildOptions, PullPolicy};
use berth_build::secrets::Secrets;
use berth_engine::build_steps::{self, ImageFormat};
use berth_engine::images::pull::RegistryOptions;
use berth_engine::images::Images;
use berth_engine::spec::NetworkMode;
use berth_image::reference::Reference;
use clap::Args;

use crate::cli::GlobalOptions;

#[derive(Debug, Args)]
pub struct BuildArgsCli {
    /// The build context directory (default: the current directory).
    pub context: Option<PathBuf>,
    /// The Containerfile or Dockerfile (default: CONTEXT/Containerfile, then CONTEXT/Dockerfile).
    #[arg(short, long, value_name = "FILE")]
    pub file: Option<PathBuf>,
    /// A name for the image (repeatable); `latest` when it has no tag.
    #[arg(short, long, value_name = "NAME")]
    pub tag: Vec<String>,
    /// Build up to this stage (a name or an index).
    #[arg(long, value_name = "STAGE")]
    pub target: Option<String>,
    /// A build argument, NAME=VALUE or NAME to take it from the environment (repeatable).
    #[arg(long = "build-arg", value_name = "NAME[=VALUE]")]
    pub build_arg: Vec<String>,
    /// A secret for RUN --mount=type=secret: id=ID,src=FILE or id=ID,env=VAR (repeatable).
    #[arg(long, value_name = "SPEC")]
    pub secret: Vec<String>,
    /// Build every step, using no cached layer.
    #[arg(long)]
    pub no_cache: bool,
    /// Use and record the layer cache (default true).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true", default_value = "true")]
    pub layers: bool,
    /// Pull base images: always (also `--pull` alone or true), missing (default) or never.
    #[arg(long, value_name = "POLICY", num_args = 0..=1, default_missing_value = "always")]
    pub pull: Option<String>,
    /// The platform to build for; only the host's is supported.
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// A label for the image, KEY=VALUE (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub label: Vec<String>,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// The manifest and config format: oci (default) or docker.
    #[arg(long, value_name = "FORMAT", default_value = "oci")]
    pub format: String,
    /// The network of RUN steps: bridge (a namespace of their own, connected as `berth run` connects containers: the default), host or none.
    #[arg(long, value_name = "MODE")]
    pub network: Option<String>,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// An ignore file instead of CONTEXT/.containerignore or .dockerignore.
    #[arg(long, value_name = "FILE")]
    pub ignorefile: Option<PathBuf>,
    /// Fixed time (seconds since the epoch) for reproducible builds; default
    /// SOURCE_DATE_EPOCH from the environment.
    #[arg(long, value_name = "SECONDS")]
    pub source_date_epoch: Option<u64>,
    /// Require HTTPS and verify certificates when pulling base images.
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
}

/// The full name an image built or committed here gets for `name` (given with `flag`): a
/// name without a registry is a local image, localhost/NAME, as Podman names it; `latest`
/// when it has no tag.
pub(crate) fn local_name(name: &str, flag: &str) -> Result<String> {
    let parse = |text: &str| {
        Reference::parse(text).with_context(|| format!("invalid image name {name:?} for {flag}"))
    };
    let mut reference = parse(name)?;
    if !reference.registry_explicit() {
        reference = parse(&format!("localhost/{name}"))?;
    }
    Ok(reference.with_default_tag().without_digest().to_string())
}

/// Resolves the flags into the executor's options, refusing bad ones before any work.
fn options(args: &BuildArgsCli) -> Result<BuildOptions> {
    let context = args.context.clone().unwrap_or_else(|| PathBuf::from("."));
    if !context.is_dir() {
        bail!("build context {} is not a directory", context.display());
    }
    let mut build_args = BuildArgs::new();
    for flag in &args.build_arg {
        build_args.add_flag(flag, &|name| std::env::var(name).ok()).map_err(anyhow::Error::from)?;
    }
    let mut secrets = Secrets::default();
    for spec in &args.secret {
        secrets.add(spec)?;
    }
    let mut tags = Vec::new();
    for tag in &args.tag {
        tags.push(local_name(tag, "-t")?);
    }
    let mut labels = Vec::new();
    for label in &args.label {
        let (key, value) = label.split_once('=').unwrap_or((label.as_str(), ""));
        if key.is_empty() {
            bail!("invalid --label {label:?}: KEY=VALUE expected");
        }
        labels.push((key.to_owned(), value.to_owned()));
    }
    let format = match args.format.as_str() {
        "oci" => ImageFormat::Oci,
        "docker" => ImageFormat::Docker,
        other => bail!("invalid --format {other:?}: oci or docker"),
    };
    let pull = match args.pull.as_deref() {
        None | Some("missing") | Some("false") => PullPolicy::Missing,
        Some("always") | Some("true") => PullPolicy::Always,
        Some("never") => PullPolicy::Never,
        Some("newer") => bail!("--pull=newer is not supported yet"),
        Some(other) => bail!("invalid --pull {other:?}: always, missing or never"),
    };
    let mut platforms = Platforms::default();
    if let Some(platform) = &args.platform {
        let wanted: Platform = platform.parse().map_err(anyhow::Error::from)?;
        let host = Platform::host();
        if wanted.os != host.os || wanted.architecture != host.architecture {
            bail!("--platform {platform}: only the host's platform ({host}) is supported yet");
        }
        platforms.target = wanted;
    }
    let network = match args.network.as_deref() {
        None => None,
        Some("host") => Some(NetworkMode::Host),
        Some("none") => Some(NetworkMode::None),
        Some("bridge" | "private" | "pasta") => Some(NetworkMode::Attached),
        Some(other) => bail!("--network {other} is not supported yet (bridge, host or none)"),
    };
    let source_date_epoch = match args.source_date_epoch {
        Some(epoch) => Some(epoch),
        None => match std::env::var("SOURCE_DATE_EPOCH") {
            Ok(text) if !text.is_empty() => {
                Some(text.parse().with_context(|| format!("invalid SOURCE_DATE_EPOCH {text:?}"))?)
            }
            _ => None,
        },
    };
    Ok(BuildOptions {
        context,
        dockerfile: args.file.clone(),
        ignore_file: args.ignorefile.clone(),
        target: args.target.clone(),
        build_args,
        platforms,
        secrets,
        tags,
        labels,
        format,
        no_cache: args.no_cache,
        layers: args.layers,
        pull,
        network,
        quiet: args.quiet,
        source_date_epoch,
        // Set by build() once berth's mounts are private: the rootless probe mounts.
        storage_driver: build_steps::Driver::Overlay,
        network_state: None,
    })
}

pub fn build(global: &GlobalOptions, args: BuildArgsCli) -> Result<ExitCode> {
    let mut options = options(&args)?;
    // Before any thread exists: the build's own mounts stay in berth's namespace.
    build_steps::private_mounts().context("preparing the build")?;
    build_steps::handle_interrupts();

    // Rootless, the process is in its per-user namespace already (main joined it) and the
    // store's driver is the one rootless containers use.
    let ctx = crate::containers::context(global)?;
    options.storage_driver = ctx.storage_driver;
    options.network_state = Some(build_steps::StepNetwork {
        paths: berth_engine::network::attach::NetworkPaths::new(&ctx.root, &ctx.runroot),
        rootless: ctx.rootless,
    });
    let root = ctx.root.clone();
    let images = Images::open(&root)
        .with_context(|| format!("opening the image store in {}", root.display()))?;
    let registry = RegistryOptions { tls_verify: args.tls_verify, ..RegistryOptions::default() };
    let pull = |reference: &str| -> Result<berth_engine::images::Image, String> {
        if !options.quiet {
            println!("Resolving {reference}");
        }
        images.pull(reference, &registry, &|_| {}).map_err(|e| exec::one_line(&e))
    };
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let built = match exec::build(&images, &options, &pull, &mut out) {
        Ok(built) => built,
        Err(error) => {
            drop(out);
            let code = error.exit_code();
            let error = anyhow::Error::new(error);
            if code == 125 {
                return Err(error);
            }
            // A failing RUN: its own exit code, as Podman's build gives it.
            eprintln!("berth: {}", crate::report::one_line(&error));
            return Ok(ExitCode::from(u8::try_from(code).unwrap_or(125)));
        }
    };
    let id = built.image.id().hex().to_owned();
    writeln!(out, "{id}").context("writing the image id")?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, format!("sha256:{id}"))
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    tracing::debug!(id, ran = built.ran, cached = built.cached, "build done");
    Ok(ExitCode::SUCCESS)
}
