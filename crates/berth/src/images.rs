//! The image commands — pull, push, images, rmi, tag, untag, image inspect, history, login,
//! logout, save, load, import, image prune, manifest inspect — with Podman's names, flags
//! and output, over berth-engine's image operations.
//!
//! Progress goes to standard error as Podman's quiet lines ("Copying blob … done"); what a
//! script reads (ids, tables, JSON) goes to standard output.

use std::collections::BTreeMap;
use std::io::{self, IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use berth_engine::images::pull::{self, Event, RegistryOptions};
use berth_engine::images::time::{ago, format_rfc3339, human_size, now};
use berth_engine::images::{Image, Images};
use clap::{Args, Subcommand};
use serde::Serialize;

use crate::cli::GlobalOptions;
use crate::format::{write_table, Format};

/// Where images live: `--root`, else CONTAINERS_STORAGE_CONF's graphroot (see paths.rs),
/// else /var/lib/berth for root and `$XDG_DATA_HOME/berth` (~/.local/share/berth) for
/// other users.
pub fn root_dir(global: &GlobalOptions) -> Result<PathBuf> {
    Ok(crate::paths::dirs(global.root.as_deref(), global.runroot.as_deref())?.root)
}

fn open(global: &GlobalOptions) -> Result<Images> {
    let root = root_dir(global)?;
    Images::open(&root).with_context(|| format!("opening the image store in {}", root.display()))
}

// Registry flags shared by pull, push, login and manifest inspect.
#[derive(Debug, Args, Clone, Default)]
pub struct RegistryFlags {
    /// Require HTTPS and verify certificates (default true, unless registries.conf marks
    /// the registry insecure).
    #[arg(long, value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tls_verify: Option<bool>,
    /// The auth file to read and write credentials (default REGISTRY_AUTH_FILE, else
    /// ${XDG_RUNTIME_DIR}/containers/auth.json).
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
    /// Credentials as USERNAME[:PASSWORD] for this command only.
    #[arg(long, value_name = "USER[:PASS]")]
    pub creds: Option<String>,
    /// A directory of CA certificates (*.crt) to trust.
    #[arg(long, value_name = "DIR")]
    pub cert_dir: Option<PathBuf>,
}

impl RegistryFlags {
    fn options(&self, platform: Option<&str>) -> Result<RegistryOptions> {
        let credentials = match &self.creds {
            None => None,
            Some(creds) => {
                let (user, pass) = match creds.split_once(':') {
                    Some((u, p)) => (u.to_owned(), p.to_owned()),
                    None => (creds.clone(), read_password_prompt()?),
                };
                Some((user, pass))
            }
        };
        let mut extra_ca = Vec::new();
        if let Some(dir) = &self.cert_dir {
            for entry in std::fs::read_dir(dir)
                .with_context(|| format!("reading --cert-dir {}", dir.display()))?
            {
                let path = entry?.path();
                if path.extension().is_some_and(|e| e == "crt") {
                    extra_ca.push(path);
                }
            }
        }
        let platform = match platform {
            Some(p) => Some(p.parse().context("--platform")?),
            None => None,
        };
        Ok(RegistryOptions {
            tls_verify: self.tls_verify,
            authfile: self.authfile.clone(),
            credentials,
            platform,
            extra_ca,
            chooser: None,
        })
    }
}

fn read_password_prompt() -> Result<String> {
    if !io::stdin().is_terminal() {
        let mut password = String::new();
        io::stdin().read_line(&mut password)?;
        return Ok(password.trim_end_matches(['\n', '\r']).to_owned());
    }
    bail!("reading a password from the terminal is not supported yet: use --password-stdin")
}

/// Pull and push progress on standard error: on a terminal, a bar per layer (indicatif)
/// with the quiet lines printed above the bars; otherwise Podman's quiet lines only
/// ("Copying blob sha256:… done", "Writing manifest to image destination", the digest).
struct Progress {
    quiet: bool,
    bars: Option<Bars>,
}

struct Bars {
    multi: indicatif::MultiProgress,
    /// Each layer's bar, by digest, created when its download starts.
    layers: std::sync::Mutex<BTreeMap<String, indicatif::ProgressBar>>,
}

impl Progress {
    fn new(quiet: bool) -> Self {
        let bars = (!quiet && io::stderr().is_terminal()).then(|| Bars {
            multi: indicatif::MultiProgress::with_draw_target(
                indicatif::ProgressDrawTarget::stderr_with_hz(10),
            ),
            layers: Default::default(),
        });
        Self { quiet, bars }
    }

    /// Leaves the terminal clean: bars of layers that never finished (a failed pull) go.
    fn finish(&self) {
        if let Some(bars) = &self.bars {
            let mut layers = bars.layers.lock().expect("not poisoned");
            for (_, bar) in std::mem::take(&mut *layers) {
                bar.finish_and_clear();
                bars.multi.remove(&bar);
            }
        }
    }

    /// Prints a line: above the layer bars while some are drawn, else plainly.
    fn line(&self, text: &str) {
        if let Some(bars) = &self.bars {
            if !bars.layers.lock().expect("not poisoned").is_empty()
                && bars.multi.println(text).is_ok()
            {
                return;
            }
        }
        let _ = writeln!(io::stderr().lock(), "{text}");
    }

    fn event(&self, event: Event) {
        if self.quiet {
            return;
        }
        match event {
            // The total is for callers without per-layer bars; the bars show it here.
            Event::Progress { .. } => {}
            Event::LayerProgress { digest, done, total } => {
                let Some(bars) = &self.bars else { return };
                let mut layers = bars.layers.lock().expect("not poisoned");
                let bar = layers.entry(digest.to_string()).or_insert_with(|| {
                    let bar = bars.multi.add(indicatif::ProgressBar::new(total));
                    bar.set_style(
                        indicatif::ProgressStyle::with_template(
                            "Copying blob {prefix} [{bar:30}] {bytes} / {total_bytes}",
                        )
                        .expect("a valid template")
                        .progress_chars("=> "),
                    );
                    bar.set_prefix(digest.short().to_owned());
                    bar
                });
                if !bar.is_finished() {
                    bar.set_position(done);
                }
            }
            Event::Blob { digest, skipped } => {
                let text = if skipped {
                    format!("Copying blob {digest} skipped: already exists")
                } else {
                    format!("Copying blob {digest} done")
                };
                // A finished layer's bar gives way to its quiet line, printed above the
                // bars still running, so the screen reads in order when all are done.
                if let Some(bars) = &self.bars {
                    let bar = bars.layers.lock().expect("not poisoned").remove(digest.as_str());
                    if let Some(bar) = bar {
                        bar.finish_and_clear();
                        bars.multi.remove(&bar);
                    }
                }
                self.line(&text);
            }
            Event::Trying(name) => {
                self.line(&format!("Trying to pull {name}..."));
                self.line("Getting image source signatures");
            }
            Event::Config(digest) => self.line(&format!("Copying config {digest} done")),
            Event::WritingManifest => self.line("Writing manifest to image destination"),
            Event::Resolved { reference, digest } => {
                self.line(&format!("{reference}: digest: {digest}"))
            }
            Event::AliasRecorded { short, name, path } => self.line(&format!(
                "Recorded the short-name alias {short:?} = {name:?} in {}",
                path.display()
            )),
        }
    }
}

/// Asks on the terminal which full name a short name means (short-name-mode), when both
/// standard input and output are a terminal, as Podman does.
fn chooser() -> Option<pull::Chooser> {
    if !(io::stdin().is_terminal() && io::stdout().is_terminal()) {
        return None;
    }
    Some(pull::Chooser(std::sync::Arc::new(|short: &str, names: &[String]| {
        let mut out = io::stdout().lock();
        writeln!(out, "? Please select an image for {short:?}:")?;
        for (i, name) in names.iter().enumerate() {
            writeln!(out, "  {}) {name}", i + 1)?;
        }
        write!(out, "Enter a number (1-{}): ", names.len())?;
        out.flush()?;
        let mut answer = String::new();
        io::stdin().read_line(&mut answer)?;
        match answer.trim().parse::<usize>() {
            Ok(n) if (1..=names.len()).contains(&n) => Ok(n - 1),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{:?} is not a number from 1 to {}", answer.trim(), names.len()),
            )),
        }
    })))
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// The image to pull (a short name is resolved through registries.conf).
    pub image: String,
    /// Print nothing but the image id.
    #[arg(short, long)]
    pub quiet: bool,
    /// Choose this platform from an index (os/arch[/variant]; default the host's).
    #[arg(long, value_name = "OS/ARCH")]
    pub platform: Option<String>,
    /// Pull every tag of the repository.
    #[arg(short = 'a', long)]
    pub all_tags: bool,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn pull(global: &GlobalOptions, args: PullArgs) -> Result<ExitCode> {
    if args.all_tags {
        bail!("pull --all-tags is not supported yet");
    }
    let images = open(global)?;
    let mut options = args.registry.options(args.platform.as_deref())?;
    options.chooser = chooser();
    // The engine's error names the reference it tried (a short name may try several).
    let progress = Progress::new(args.quiet);
    let pulled = images.pull(&args.image, &options, &|event| progress.event(event));
    progress.finish();
    println!("{}", pulled?.id().hex());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// The local image.
    pub image: String,
    /// Where to push it (default: the image's name).
    pub destination: Option<String>,
    #[arg(short, long)]
    pub quiet: bool,
    /// Write the pushed manifest's digest to this file.
    #[arg(long, value_name = "PATH")]
    pub digestfile: Option<PathBuf>,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn push(global: &GlobalOptions, args: PushArgs) -> Result<ExitCode> {
    let images = open(global)?;
    let options = args.registry.options(None)?;
    let progress = Progress::new(args.quiet);
    let pushed =
        images.push(&args.image, args.destination.as_deref(), &options, &|e| progress.event(e));
    progress.finish();
    let digest = pushed?;
    if let Some(path) = &args.digestfile {
        std::fs::write(path, digest.as_str())
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ImagesArgs {
    /// Only images matching this name.
    pub reference: Option<String>,
    /// Show all images (intermediate ones too; berth keeps none).
    #[arg(short, long)]
    pub all: bool,
    /// Only image ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Show digests.
    #[arg(long)]
    pub digests: bool,
    /// Do not truncate ids.
    #[arg(long)]
    pub no_trunc: bool,
    /// Leave out the header.
    #[arg(short, long = "noheading")]
    pub noheading: bool,
    /// Filter: dangling=true|false, reference=PATTERN, label=KEY[=VALUE].
    #[arg(short, long, value_name = "FILTER")]
    pub filter: Vec<String>,
    /// A Go template, `table …`, or `json`.
    #[arg(long)]
    pub format: Option<String>,
    /// Sort by created, id, repository, size or tag.
    #[arg(long, default_value = "created")]
    pub sort: String,
}

/// One `images` row as templates and `--format json` see it (Podman's field names).
#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct ImageRow {
    #[serde(rename = "ID")]
    id: String,
    #[serde(rename = "Id")]
    full_id: String,
    repository: String,
    tag: String,
    digest: String,
    created_since: String,
    created_at: String,
    created: i64,
    size: String,
    #[serde(rename = "VirtualSize")]
    virtual_size: u64,
    dangling: bool,
    labels: BTreeMap<String, String>,
    names: Vec<String>,
    repo_tags: Vec<String>,
    repo_digests: Vec<String>,
}

fn split_name(name: &str) -> (String, String) {
    match name.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo.to_owned(), tag.to_owned()),
        _ => (name.to_owned(), "<none>".to_owned()),
    }
}

fn matches_filter(image: &Image, filter: &str) -> Result<bool> {
    let (key, value) = filter
        .split_once('=')
        .with_context(|| format!("invalid filter {filter:?}: expected KEY=VALUE"))?;
    Ok(match key {
        "dangling" => match value {
            "true" => image.dangling(),
            "false" => !image.dangling(),
            _ => bail!("invalid filter {filter:?}: dangling is true or false"),
        },
        "reference" => image.record.names.iter().any(|n| {
            glob_match(value, n)
                || glob_match(value, &split_name(n).0)
                || n.ends_with(&format!("/{value}"))
                || split_name(n).0.ends_with(&format!("/{value}"))
        }),
        "label" => {
            let labels = image.labels();
            match value.split_once('=') {
                Some((k, v)) => labels.get(k).is_some_and(|x| x == v),
                None => labels.contains_key(value),
            }
        }
        "id" => image.id().hex().starts_with(value.trim_start_matches("sha256:")),
        _ => bail!("filter {key:?} is not supported yet"),
    })
}

/// `*` matches any run of characters; everything else is literal.
fn glob_match(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else { return false };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(pos) = rest.find(part) else { return false };
            rest = &rest[pos + part.len()..];
        }
    }
    true
}

pub fn images(global: &GlobalOptions, args: ImagesArgs) -> Result<ExitCode> {
    let store = open(global)?;
    let mut list = store.list()?;
    let mut filters = args.filter.clone();
    if let Some(reference) = &args.reference {
        filters.push(format!("reference={reference}"));
    }
    let mut kept = Vec::new();
    for image in list.drain(..) {
        let mut keep = true;
        for filter in &filters {
            keep &= matches_filter(&image, filter)?;
        }
        if keep {
            kept.push(image);
        }
    }
    let now = now();
    let mut rows = Vec::new();
    for image in &kept {
        let names: Vec<Option<&String>> = if image.record.names.is_empty() {
            vec![None]
        } else {
            image.record.names.iter().map(Some).collect()
        };
        for name in names {
            let (repository, tag) = name
                .map(|n| split_name(n))
                .unwrap_or_else(|| ("<none>".to_owned(), "<none>".to_owned()));
            let id =
                if args.no_trunc { image.id().to_string() } else { image.id().short().to_owned() };
            rows.push(ImageRow {
                id,
                full_id: image.id().hex().to_owned(),
                repository,
                tag,
                digest: image.record.manifest.digest.to_string(),
                created_since: ago(image.created(), now),
                created_at: format_rfc3339(image.created()),
                created: image.created(),
                size: human_size(image.size),
                virtual_size: image.size,
                dangling: image.dangling(),
                labels: image.labels(),
                names: image.record.names.clone(),
                repo_tags: image.record.names.clone(),
                repo_digests: image.record.repo_digests.clone(),
            });
        }
    }
    match args.sort.as_str() {
        "created" => {}
        "id" => rows.sort_by(|a, b| a.id.cmp(&b.id)),
        "repository" => rows.sort_by(|a, b| a.repository.cmp(&b.repository)),
        "tag" => rows.sort_by(|a, b| a.tag.cmp(&b.tag)),
        "size" => rows.sort_by_key(|r| std::cmp::Reverse(r.virtual_size)),
        other => bail!("--sort {other:?}: expected created, id, repository, size or tag"),
    }
    let mut out = io::stdout().lock();
    if args.quiet {
        let mut seen = Vec::new();
        for row in &rows {
            if !seen.contains(&row.id) {
                writeln!(out, "{}", row.id)?;
                seen.push(row.id.clone());
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        Some("json") => {
            let summaries: Vec<serde_json::Value> = kept
                .iter()
                .map(|image| {
                    serde_json::json!({
                        "Id": image.id().hex(),
                        "ParentId": "",
                        "RepoTags": image.record.names,
                        "RepoDigests": image.record.repo_digests,
                        "Size": image.size,
                        "SharedSize": 0,
                        "VirtualSize": image.size,
                        "Labels": image.labels(),
                        "Containers": 0,
                        "Names": image.record.names,
                        "Digest": image.record.manifest.digest,
                        "Created": image.created(),
                        "CreatedAt": format_rfc3339(image.created()),
                        "Dangling": image.dangling(),
                    })
                })
                .collect();
            serde_json::to_writer_pretty(&mut out, &summaries)?;
            writeln!(out)?;
        }
        Some(template) => Format::parse(template)?.print_all(&rows, &mut out)?,
        None => {
            let mut table = Vec::new();
            if !args.noheading {
                let mut header = vec!["REPOSITORY", "TAG"];
                if args.digests {
                    header.push("DIGEST");
                }
                header.extend(["IMAGE ID", "CREATED", "SIZE"]);
                table.push(header.into_iter().map(str::to_owned).collect());
            }
            for row in &rows {
                let mut cells = vec![row.repository.clone(), row.tag.clone()];
                if args.digests {
                    cells.push(row.digest.clone());
                }
                cells.extend([row.id.clone(), row.created_since.clone(), row.size.clone()]);
                table.push(cells);
            }
            write_table(&table, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct InspectArgs {
    /// Images to inspect.
    #[arg(required = true)]
    pub images: Vec<String>,
    /// A Go template applied to each image (`{{.Id}}`, `{{index .RepoDigests 0}}`).
    #[arg(short, long)]
    pub format: Option<String>,
}

pub fn inspect(global: &GlobalOptions, args: InspectArgs) -> Result<ExitCode> {
    let store = open(global)?;
    let mut documents = Vec::new();
    for name in &args.images {
        documents.push(store.inspect(name).with_context(|| format!("inspecting {name}"))?);
    }
    let mut out = io::stdout().lock();
    match args.format.as_deref() {
        None | Some("json") => {
            serde_json::to_writer_pretty(&mut out, &documents)?;
            writeln!(out)?;
        }
        Some(template) => Format::parse(template)?.print_all(&documents, &mut out)?,
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct RmiArgs {
    /// Images to remove, by name or id.
    pub images: Vec<String>,
    /// Remove an image with several names, by id, with all of them.
    #[arg(short, long)]
    pub force: bool,
    /// Remove every image.
    #[arg(short, long)]
    pub all: bool,
}

pub fn rmi(global: &GlobalOptions, args: RmiArgs) -> Result<ExitCode> {
    let store = open(global)?;
    let inputs = if args.all {
        store.list()?.iter().map(|i| i.id().hex().to_owned()).collect()
    } else {
        if args.images.is_empty() {
            bail!("rmi needs at least one image name or id (or --all)");
        }
        args.images.clone()
    };
    let removed = store.remove(&inputs, args.force || args.all)?;
    let mut out = io::stdout().lock();
    for name in &removed.untagged {
        writeln!(out, "Untagged: {name}")?;
    }
    for id in &removed.deleted {
        writeln!(out, "Deleted: {}", id.hex())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct TagArgs {
    pub image: String,
    #[arg(required = true)]
    pub names: Vec<String>,
}

pub fn tag(global: &GlobalOptions, args: TagArgs) -> Result<ExitCode> {
    open(global)?
        .tag(&args.image, &args.names)
        .with_context(|| format!("tagging {}", args.image))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct UntagArgs {
    pub image: String,
    /// Names to remove (all when none are given).
    pub names: Vec<String>,
}

pub fn untag(global: &GlobalOptions, args: UntagArgs) -> Result<ExitCode> {
    open(global)?
        .untag(&args.image, &args.names)
        .with_context(|| format!("untagging {}", args.image))?;
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct SaveArgs {
    #[arg(required = true)]
    pub images: Vec<String>,
    /// Write to this file (or directory for oci-dir) instead of standard output.
    #[arg(short, long, value_name = "PATH")]
    pub output: Option<PathBuf>,
    /// docker-archive, oci-archive or oci-dir.
    #[arg(long, default_value = "docker-archive")]
    pub format: String,
    /// Accepted for Podman compatibility: every archive berth writes can hold several images.
    #[arg(short, long)]
    pub multi_image_archive: bool,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn save(global: &GlobalOptions, args: SaveArgs) -> Result<ExitCode> {
    use berth_engine::images::Format as ArchiveFormat;
    let format = match args.format.as_str() {
        "docker-archive" => ArchiveFormat::DockerArchive,
        "oci-archive" => ArchiveFormat::OciArchive,
        "oci-dir" => ArchiveFormat::OciDir,
        "docker-dir" => bail!("save --format docker-dir is not supported yet"),
        other => {
            bail!("unknown save format {other:?}: expected docker-archive, oci-archive or oci-dir")
        }
    };
    let store = open(global)?;
    match &args.output {
        Some(path) => store.save(&args.images, format, path)?,
        None => {
            if io::stdout().is_terminal() {
                bail!("refusing to write an archive to a terminal: use --output or redirect");
            }
            if format == ArchiveFormat::OciDir {
                bail!("oci-dir needs --output");
            }
            let temp = tempfile::NamedTempFile::new()?;
            store.save(&args.images, format, temp.path())?;
            io::copy(&mut std::fs::File::open(temp.path())?, &mut io::stdout().lock())?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The archive to read (default standard input).
    #[arg(short, long, value_name = "PATH")]
    pub input: Option<PathBuf>,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn load(global: &GlobalOptions, args: LoadArgs) -> Result<ExitCode> {
    let store = open(global)?;
    let temp;
    let path: &Path = match &args.input {
        Some(path) => path,
        None => {
            if io::stdin().is_terminal() {
                bail!("no archive given: use --input or pipe one in");
            }
            let mut file = tempfile::NamedTempFile::new()?;
            io::copy(&mut io::stdin().lock(), &mut file)?;
            temp = file;
            temp.path()
        }
    };
    let loaded = store.load(path).with_context(|| format!("loading {}", path.display()))?;
    let mut out = io::stdout().lock();
    for image in loaded {
        if image.record.names.is_empty() {
            writeln!(out, "Loaded image: {}", image.id())?;
        }
        for name in &image.record.names {
            writeln!(out, "Loaded image: {name}")?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// A tarball of a root file system (plain, gzip or zstd; `-` for standard input).
    pub file: String,
    /// The name to give the image.
    pub reference: Option<String>,
    /// A commit message for the history entry.
    #[arg(short, long)]
    pub message: Option<String>,
    /// Dockerfile instructions to apply to the config.
    #[arg(short, long, value_name = "INSTRUCTION")]
    pub change: Vec<String>,
    #[arg(short, long)]
    pub quiet: bool,
}

pub fn import(global: &GlobalOptions, args: ImportArgs) -> Result<ExitCode> {
    if !args.change.is_empty() {
        bail!("import --change is not supported yet");
    }
    let store = open(global)?;
    let temp;
    let path: &Path = if args.file == "-" {
        let mut file = tempfile::NamedTempFile::new()?;
        io::copy(&mut io::stdin().lock(), &mut file)?;
        temp = file;
        temp.path()
    } else if args.file.starts_with("http://") || args.file.starts_with("https://") {
        bail!("import from a URL is not supported yet");
    } else {
        Path::new(&args.file)
    };
    let image = store
        .import(path, args.reference.as_deref(), args.message.as_deref())
        .with_context(|| format!("importing {}", args.file))?;
    println!("{}", image.id());
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct HistoryArgs {
    pub image: String,
    #[arg(long)]
    pub no_trunc: bool,
    #[arg(short, long)]
    pub quiet: bool,
    /// Sizes and dates in human terms (default true).
    #[arg(short = 'H', long, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    pub human: bool,
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "PascalCase")]
struct HistoryOut {
    #[serde(rename = "ID")]
    id: String,
    created: String,
    created_since: String,
    created_at: String,
    created_by: String,
    size: String,
    comment: String,
    tags: Vec<String>,
}

pub fn history(global: &GlobalOptions, args: HistoryArgs) -> Result<ExitCode> {
    let rows = open(global)?.history(&args.image)?;
    let now = now();
    let out_rows: Vec<HistoryOut> = rows
        .iter()
        .map(|r| {
            let id = if r.id == "<missing>" || args.no_trunc {
                r.id.clone()
            } else {
                r.id.chars().take(12).collect()
            };
            let mut created_by = r.created_by.clone();
            if !args.no_trunc && created_by.chars().count() > 45 {
                created_by = created_by.chars().take(42).collect::<String>() + "...";
            }
            HistoryOut {
                id,
                created: if args.human { ago(r.created, now) } else { format_rfc3339(r.created) },
                created_since: ago(r.created, now),
                created_at: format_rfc3339(r.created),
                created_by,
                size: if args.human { human_size(r.size) } else { r.size.to_string() },
                comment: r.comment.clone(),
                tags: r.tags.clone(),
            }
        })
        .collect();
    let mut out = io::stdout().lock();
    if args.quiet {
        for row in &out_rows {
            writeln!(out, "{}", row.id)?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    match args.format.as_deref() {
        Some("json") => {
            serde_json::to_writer_pretty(&mut out, &rows)?;
            writeln!(out)?;
        }
        Some(template) => Format::parse(template)?.print_all(&out_rows, &mut out)?,
        None => {
            let mut table = vec![["ID", "CREATED", "CREATED BY", "SIZE", "COMMENT"]
                .map(str::to_owned)
                .to_vec()];
            for row in out_rows {
                table.push(vec![row.id, row.created, row.created_by, row.size, row.comment]);
            }
            write_table(&table, &mut out)?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// Remove every image no container uses, not only dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not ask for confirmation (berth never asks).
    #[arg(short, long)]
    pub force: bool,
    /// Only images matching a filter.
    #[arg(long)]
    pub filter: Vec<String>,
}

pub fn prune(global: &GlobalOptions, args: PruneArgs) -> Result<ExitCode> {
    if !args.filter.is_empty() {
        bail!("image prune --filter is not supported yet");
    }
    let removed = open(global)?.prune(args.all)?;
    let mut out = io::stdout().lock();
    for id in removed {
        writeln!(out, "{}", id.hex())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LoginArgs {
    /// The registry (host[:port]).
    pub registry: String,
    #[arg(short, long)]
    pub username: Option<String>,
    #[arg(short, long)]
    pub password: Option<String>,
    /// Read the password from standard input.
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub registry_flags: RegistryFlags,
}

pub fn login(_global: &GlobalOptions, args: LoginArgs) -> Result<ExitCode> {
    let registry = args
        .registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let username = args
        .username
        .clone()
        .context("login needs --username (reading it from the terminal is not supported yet)")?;
    let password = if args.password_stdin {
        let mut password = String::new();
        io::stdin().read_to_string(&mut password)?;
        password.trim_end_matches(['\n', '\r']).to_owned()
    } else if let Some(password) = &args.password {
        password.clone()
    } else {
        read_password_prompt()?
    };
    let options = args.registry_flags.options(None)?;
    pull::login(&registry, &username, &password, &options)?;
    println!("Login Succeeded!");
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Args)]
pub struct LogoutArgs {
    pub registry: Option<String>,
    /// Remove the credentials of every registry.
    #[arg(short, long)]
    pub all: bool,
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,
}

pub fn logout(_global: &GlobalOptions, args: LogoutArgs) -> Result<ExitCode> {
    let registry = match (&args.registry, args.all) {
        (_, true) => None,
        (Some(r), false) => Some(
            r.trim_start_matches("https://")
                .trim_start_matches("http://")
                .trim_end_matches('/')
                .to_owned(),
        ),
        (None, false) => bail!("logout needs a registry or --all"),
    };
    pull::logout(registry.as_deref(), args.authfile.as_deref())?;
    match registry {
        Some(r) => println!("Removed login credentials for {r}"),
        None => println!("Removed login credentials for all registries"),
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ImageCommand {
    /// Build an image from a Containerfile or Dockerfile.
    Build(crate::build::BuildArgsCli),
    /// List images.
    #[command(visible_alias = "list")]
    Ls(ImagesArgs),
    /// Show an image's configuration and metadata as JSON.
    Inspect(InspectArgs),
    /// Remove images.
    Rm(RmiArgs),
    /// Remove dangling (with --all, all unused) images.
    Prune(PruneArgs),
    /// Add names to an image.
    Tag(TagArgs),
    /// Remove names from an image.
    Untag(UntagArgs),
    /// Write images to an archive.
    Save(SaveArgs),
    /// Read images from an archive.
    Load(LoadArgs),
    /// Make an image from a root file system tarball.
    Import(ImportArgs),
    /// Show an image's layers and how they were made.
    History(HistoryArgs),
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Push an image to a registry.
    Push(PushArgs),
}

pub fn image(global: &GlobalOptions, command: ImageCommand) -> Result<ExitCode> {
    match command {
        ImageCommand::Build(a) => crate::build::build(global, a),
        ImageCommand::Ls(a) => images(global, a),
        ImageCommand::Inspect(a) => inspect(global, a),
        ImageCommand::Rm(a) => rmi(global, a),
        ImageCommand::Prune(a) => prune(global, a),
        ImageCommand::Tag(a) => tag(global, a),
        ImageCommand::Untag(a) => untag(global, a),
        ImageCommand::Save(a) => save(global, a),
        ImageCommand::Load(a) => load(global, a),
        ImageCommand::Import(a) => import(global, a),
        ImageCommand::History(a) => history(global, a),
        ImageCommand::Pull(a) => pull(global, a),
        ImageCommand::Push(a) => push(global, a),
    }
}

#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum ManifestCommand {
    /// Show the manifest or index a remote reference names, without pulling it.
    Inspect(ManifestInspectArgs),
}

#[derive(Debug, Args)]
pub struct ManifestInspectArgs {
    pub reference: String,
    #[command(flatten)]
    pub registry: RegistryFlags,
}

pub fn manifest(global: &GlobalOptions, command: ManifestCommand) -> Result<ExitCode> {
    let ManifestCommand::Inspect(args) = command;
    let store = open(global)?;
    let options = args.registry.options(None)?;
    let fetched = store.inspect_remote(&args.reference, &options)?;
    let value: serde_json::Value =
        serde_json::from_slice(&fetched.bytes).context("the registry's manifest is not JSON")?;
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, &value)?;
    writeln!(out)?;
    eprintln!("Digest: {}", fetched.digest);
    Ok(ExitCode::SUCCESS)
}
