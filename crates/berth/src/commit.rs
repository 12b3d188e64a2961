//! `berth commit`: a container's changes to a new image, with Podman's flags — `-c/--change`
//! (Dockerfile instructions applied to the config), `-m/--message`, `-a/--author`,
//! `-p/--pause`, `--format`, `-q/--quiet`, `--iidfile`.
//!
//! The new image is the container's image plus one layer, its upper directory (the mount
//! points the runtime made for /etc/hosts and the like left out), with the config the
//! container was created with, the changes applied on top, and one more history entry.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_engine::build_steps::{self, CommitRequest, ImageFormat};
use berth_engine::containers::ops::Containers;
use berth_engine::images::Images;
use clap::Args;

use crate::cli::GlobalOptions;

#[derive(Debug, Args)]
pub struct CommitArgs {
    /// The container to commit.
    pub container: String,
    /// A name for the new image; without one it is dangling.
    pub image: Option<String>,
    /// The image's author.
    #[arg(short, long)]
    pub author: Option<String>,
    /// A Dockerfile instruction applied to the config: CMD, ENTRYPOINT, ENV, EXPOSE,
    /// HEALTHCHECK, LABEL, ONBUILD, SHELL, STOPSIGNAL, USER, VOLUME or WORKDIR (repeatable).
    #[arg(short, long, value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    /// The comment of the new history entry.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Pause the container while it is committed (`--pause=false` to say so).
    #[arg(short, long, value_name = "BOOL", num_args = 0..=1, require_equals = true, default_missing_value = "true", default_value = "false")]
    pub pause: bool,
    /// The manifest and config format: oci (default) or docker.
    #[arg(short, long, default_value = "oci")]
    pub format: String,
    /// Print only the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Squash the image's layers into one.
    #[arg(long)]
    pub squash: bool,
    /// Write the image id to this file.
    #[arg(long, value_name = "FILE")]
    pub iidfile: Option<PathBuf>,
    /// Include the container's volumes in the image.
    #[arg(long)]
    pub include_volumes: bool,
}

/// Unpauses the container when dropped, if this command paused it.
struct Paused<'a> {
    containers: &'a mut Containers,
    id: Option<String>,
}

impl Drop for Paused<'_> {
    fn drop(&mut self) {
        if let Some(id) = self.id.take() {
            if let Err(e) = self.containers.unpause(&id) {
                eprintln!("berth: unpausing container {id} after the commit: {e}");
            }
        }
    }
}

pub fn commit(global: &GlobalOptions, args: CommitArgs) -> Result<ExitCode> {
    let format = match args.format.as_str() {
        "oci" => ImageFormat::Oci,
        "docker" => ImageFormat::Docker,
        other => bail!("invalid --format {other:?}: oci or docker"),
    };
    if args.squash {
        bail!("commit --squash is not supported yet");
    }
    if args.include_volumes {
        bail!("commit --include-volumes is not supported yet");
    }
    let names = match &args.image {
        Some(name) => vec![crate::build::local_name(name, "the image name")?],
        None => Vec::new(),
    };

    let ctx = crate::containers::context(global)?;
    let mut containers = Containers::open(&ctx).context("opening the container store")?;
    let record = containers.lookup(&args.container)?;
    let images = Images::open(&ctx.root)
        .with_context(|| format!("opening the image store in {}", ctx.root.display()))?;
    // The config first: a bad --change fails before anything is paused or written.
    let base = build_steps::commit_base_config(&images, &record)
        .with_context(|| format!("committing container {}", record.name))?;
    let config = berth_build::config::apply_changes(&base, &args.change)?;

    let running = record.state == berth_engine::state::ContainerState::Running;
    let paused_id = if args.pause && running {
        containers.pause(&record.id)?;
        Some(record.id.clone())
    } else {
        None
    };
    let guard = Paused { containers: &mut containers, id: paused_id };
    if !args.quiet {
        eprintln!("Getting image source signatures");
    }
    let request = CommitRequest {
        config,
        author: args.author.as_deref(),
        message: args.message.as_deref(),
        format,
        names: &names,
    };
    let image = build_steps::commit_container(&ctx, &images, &record, &request)
        .with_context(|| format!("committing container {}", record.name))?;
    drop(guard);
    if !args.quiet {
        eprintln!("Writing manifest to image destination");
    }
    let id = image.id().hex().to_owned();
    writeln!(std::io::stdout(), "{id}").context("writing the image id")?;
    if let Some(path) = &args.iidfile {
        std::fs::write(path, format!("sha256:{id}"))
            .with_context(|| format!("writing --iidfile {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}
