//! Executing a prepared build through the engine: the stages the target needs, in the order
//! of the stage graph, each step applied to the stage's config and, for RUN, COPY and ADD,
//! turned into a layer — or taken from the build cache when its key was seen before.
//!
//! The cache maps a step's key ([`crate::cache`]) to the layer blob it produced, one small
//! JSON file per key under `ROOT/build/cache/`. Every key of a build is known before any
//! work starts (a step's key chains its parent's, and a stage's base is the key of the stage
//! it builds on), so a hit does no work at all: the layer is reused and only unpacked if a
//! later RUN has to mount it. An entry whose blob garbage collection has removed is a miss.
//!
//! The commit is cached too: the config bytes a build stored are reused by a later build of
//! the same final key, labels and format whose layers came out the same, so a rebuild with
//! no change gives the same image id (history times and all), as Podman's `--layers` does.
//!
//! COPY and ADD from the context write their layer directly with [`crate::copy`]; COPY
//! `--from` reads the other stage's (or image's) files through a merged overlay view mounted
//! in berth's private mount namespace. RUN goes through the engine's step runner
//! ([`berth_engine::build_steps`]), and its upper directory becomes the layer.
//!
//! Output follows Podman's: `STEP n/m: INSTRUCTION`, the step's own output, `--> Using
//! cache ID` for a hit, `--> ID` after each layer, then `COMMIT`, the image id and the tags.
//! A failing step stops the build before anything is committed or tagged; its scratch
//! directories are removed by their guards.
//!
//! Stages build in the graph's batches: a batch's stages need only stages of earlier
//! batches, so they build at the same time, one thread each. A RUN forks a single-threaded
//! child of its own whatever threads run, so threads around the step runner are safe. A
//! batch of one streams its output; a larger one buffers each stage's and shows it stage by
//! stage when the batch ends. Stages the target does not need are not in any batch.

// ExecError carries the position, snippet and typed cause of a failed step; it is made at
// most once per build, so its size costs nothing measurable.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use berth_engine::build_steps::{
    self, BuiltLayer, Driver, ImageFormat, MergedView, Scratch, StepError, StepMount, StepSpec,
};
use berth_engine::images::{Image, Images};
use berth_engine::spec::NetworkMode;
use berth_image::config::{ContainerConfig, History};
use serde_json::{json, Value};

use crate::args::{BuildArgs, Platforms};
use crate::cache::{self, CacheError};
use crate::config::{ConfigError, ConfigState};
use crate::context::{Context, Entry, EntryKind};
use crate::copy::{self, CopyError, CopyOptions, LayerEntry, Times};
use crate::dockerfile::{snippet, InstructionKind, MountKind, Position};
use crate::graph::{resolve_from, FromRef};
use crate::ignore::clean;
use crate::plan::{Base, PlanOptions};
use crate::prepare::{prepare, BuildRequest, Prepared};
use crate::secrets::{SecretSource, Secrets};

/// Why a build failed after it was prepared.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    #[error(transparent)]
    Prepare(#[from] crate::Error),
    #[error("{reference}: pulling the base image: {message}")]
    Pull { reference: String, message: String },
    #[error("{reference}: looking up the image: {message}")]
    Image { reference: String, message: String },
    #[error("{file}:{position}: building at STEP \"{instruction}\": exit status {code}{}", tail_text(.tail))]
    StepFailed {
        file: String,
        position: Position,
        instruction: String,
        code: i32,
        tail: Vec<String>,
    },
    #[error("{file}:{position}: {keyword}: {cause}\n{snippet}")]
    Copy {
        file: String,
        position: Position,
        keyword: &'static str,
        cause: CopyError,
        snippet: String,
    },
    #[error("{file}:{position}: {cause}\n{snippet}")]
    Config { file: String, position: Position, cause: ConfigError, snippet: String },
    #[error("{file}:{position}: {what} is not supported yet\n{snippet}")]
    NotSupported { file: String, position: Position, what: String, snippet: String },
    #[error("{file}:{position}: {keyword}: {message}\n{snippet}")]
    Step {
        file: String,
        position: Position,
        keyword: &'static str,
        message: String,
        snippet: String,
    },
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("reading secret {id:?} from {from}")]
    Secret {
        id: String,
        from: String,
        #[source]
        source: io::Error,
    },
    #[error("the build cache at {path}")]
    CacheStore {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing the build output")]
    Output(#[source] io::Error),
    #[error(transparent)]
    Engine(#[from] StepError),
    #[error("--platform {0}: only the host's platform is supported yet")]
    Platform(String),
    #[error("stopped because another stage failed")]
    Aborted,
}

fn tail_text(tail: &[String]) -> String {
    if tail.is_empty() {
        String::new()
    } else {
        format!("; last lines of its output:\n{}", tail.join("\n"))
    }
}

impl ExecError {
    /// The exit code `berth build` ends with: a failing RUN's own code (as Podman), else 125.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::StepFailed { code, .. } if *code > 0 && *code < 256 => *code,
            _ => 125,
        }
    }
}

/// When FROM images are pulled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum PullPolicy {
    /// Only when not in the store (`--pull=missing`, the default).
    #[default]
    Missing,
    /// Always (`--pull`, `--pull=always`).
    Always,
    /// Never (`--pull=never`): a missing image is an error.
    Never,
}

/// Everything `berth build` asks for.
pub struct BuildOptions {
    pub context: PathBuf,
    pub dockerfile: Option<PathBuf>,
    pub ignore_file: Option<PathBuf>,
    pub target: Option<String>,
    pub build_args: BuildArgs,
    pub platforms: Platforms,
    pub secrets: Secrets,
    /// Full names the image gets.
    pub tags: Vec<String>,
    /// `--label`, added to the image's labels.
    pub labels: Vec<(String, String)>,
    pub format: ImageFormat,
    /// `--no-cache`: build every step (and record the results).
    pub no_cache: bool,
    /// `--layers` (default true): use and record the build cache.
    pub layers: bool,
    pub pull: PullPolicy,
    /// `--network` for RUN steps; when not given, a network namespace of the step's own
    /// connected as a `berth run` container's is (see build_steps).
    pub network: Option<NetworkMode>,
    /// Where the engine keeps network state, for RUN steps with a network of their own.
    pub network_state: Option<build_steps::StepNetwork>,
    /// `-q`: no step output, only the id at the end.
    pub quiet: bool,
    /// SOURCE_DATE_EPOCH: fixed times for history, config and layer entries.
    pub source_date_epoch: Option<u64>,
    /// How RUN steps and `--from` views mount their overlays (the store's driver).
    pub storage_driver: Driver,
}

/// Pulls an image by reference through the engine, for FROM and `--from` images.
pub type Puller<'a> = dyn Fn(&str) -> Result<Image, String> + 'a;

/// What a finished build made.
#[derive(Debug)]
pub struct Built {
    pub image: Image,
    /// Steps that ran, and steps that came from the cache.
    pub ran: usize,
    pub cached: usize,
}

/// One stage's state while it builds.
struct StageState {
    layers: Vec<BuiltLayer>,
    config: ConfigState,
    history: Vec<History>,
    /// The base image's `config` fields berth's config state does not model.
    base_extra: BTreeMap<String, Value>,
    author: Option<String>,
}

/// The build: prepares, pulls what is missing, runs the stages and commits the target.
pub fn build(
    images: &Images,
    options: &BuildOptions,
    pull: &Puller<'_>,
    out: &mut dyn Write,
) -> Result<Built, ExecError> {
    let root = images.root().to_owned();
    Scratch::remove_stale(&root);
    let _lock = images.build_lock().map_err(StepError::from)?;

    // A first, cheap pass over the file finds the external images the target needs, so they
    // are in the store (pulled if need be) before the plan reads their configs.
    let dockerfile_path =
        crate::prepare::find_dockerfile(&options.context, options.dockerfile.as_deref())?;
    let parsed = crate::dockerfile::parse_file(&dockerfile_path).map_err(crate::Error::from)?;
    let first_plan = crate::plan::plan(
        &parsed,
        &PlanOptions {
            build_args: options.build_args.clone(),
            platforms: options.platforms.clone(),
            base_config: &|_| None,
        },
    )
    .map_err(crate::Error::from)?;
    let first_graph = crate::graph::Graph::new(&first_plan).map_err(crate::Error::from)?;
    let target = first_graph.target(options.target.as_deref()).map_err(crate::Error::from)?;
    for stage in first_graph.needed(target) {
        if let Some(platform) = &first_plan.stages[stage].platform {
            if !is_host_platform(platform) {
                return Err(ExecError::Platform(platform.clone()));
            }
        }
    }
    let mut external: BTreeMap<String, Image> = BTreeMap::new();
    for stage in first_graph.needed(target) {
        for reference in &first_graph.nodes[stage].images {
            if !external.contains_key(reference) {
                let image = base_image(images, reference, options.pull, pull)?;
                external.insert(reference.clone(), image);
            }
        }
    }

    let configs: BTreeMap<String, Value> = external
        .iter()
        .map(|(reference, image)| {
            let config = image.config.config.clone().unwrap_or_default();
            (reference.clone(), serde_json::to_value(config).unwrap_or(Value::Null))
        })
        .collect();
    let base_config = move |reference: &str| configs.get(reference).cloned();
    let request = BuildRequest {
        context: options.context.clone(),
        dockerfile: Some(dockerfile_path.clone()),
        ignore_file: options.ignore_file.clone(),
        target: options.target.clone(),
        build_args: options.build_args.clone(),
        platforms: options.platforms.clone(),
        secrets: options.secrets.clone(),
        base_config: &base_config,
        threads: 0,
    };
    let prepared = prepare(&request)?;
    let plan = &prepared.plan;
    for warning in &plan.warnings {
        let at = warning.position.map(|p| format!("{}:{p}: ", plan.file)).unwrap_or_default();
        writeln!(out, "WARN: {at}{}", warning.message).map_err(ExecError::Output)?;
    }

    // Every key, before any work: a stage's base is the key of what it builds on.
    let epoch = options.source_date_epoch;
    let order: Vec<usize> = prepared.batches.iter().flatten().copied().collect();
    let mut stage_keys: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut stage_ids: BTreeMap<usize, String> = BTreeMap::new();
    for &index in &order {
        let stage = &plan.stages[index];
        let base_id = match &stage.base {
            Base::Scratch => "scratch".to_owned(),
            Base::Image(reference) => external[reference].id().to_string(),
            Base::Stage(i) => stage_ids[i].clone(),
        };
        // Times end up in layers, so the epoch is part of every key.
        let base_id = format!("{base_id} epoch={epoch:?}");
        let other = |from: &FromRef| match from {
            FromRef::Stage(i) => stage_ids.get(i).cloned().unwrap_or_default(),
            FromRef::Image(reference) => {
                external.get(reference).map(|i| i.id().to_string()).unwrap_or_default()
            }
        };
        let keys = cache::stage_keys(plan, stage, &base_id, &prepared.context, &other)?;
        stage_ids.insert(index, keys.last().cloned().unwrap_or(base_id));
        stage_keys.insert(index, keys);
    }

    let shared = Shared {
        images,
        options,
        prepared: &prepared,
        external: &external,
        cache_dir: root.join("build").join("cache"),
        multi: order.len() > 1,
        stage_count: order.len(),
        numbers: order.iter().enumerate().map(|(n, &index)| (index, n + 1)).collect(),
        abort: AtomicBool::new(false),
    };
    let mut finished: BTreeMap<usize, StageState> = BTreeMap::new();
    let (mut ran, mut cached) = (0, 0);
    for batch in &prepared.batches {
        if let [index] = batch.as_slice() {
            // One stage: its output streams as it comes.
            let mut runner = shared.runner(*index, &finished, &mut *out);
            let state = runner.run_stage(*index, &stage_keys[index])?;
            (ran, cached) = (ran + runner.ran, cached + runner.cached);
            finished.insert(*index, state);
            continue;
        }
        // Independent stages build at the same time, each on a thread of its own (a RUN
        // forks its own single-threaded child); their output is shown stage by stage as
        // the batch ends, and the first failure stops the others at their next step.
        let results: Vec<StageRun> = std::thread::scope(|scope| {
            let handles: Vec<_> = batch
                .iter()
                .map(|&index| {
                    let (shared, finished, keys) = (&shared, &finished, &stage_keys[&index]);
                    scope.spawn(move || {
                        let mut buffer = Vec::new();
                        let mut runner = shared.runner(index, finished, &mut buffer);
                        let result = runner.run_stage(index, keys);
                        if result.is_err() {
                            shared.abort.store(true, Ordering::SeqCst);
                        }
                        let (ran, cached) = (runner.ran, runner.cached);
                        StageRun { index, output: buffer, result, ran, cached }
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic)))
                .collect()
        });
        let mut failure = None;
        for StageRun { index, output, result, ran: stage_ran, cached: stage_cached } in results {
            out.write_all(&output).map_err(ExecError::Output)?;
            (ran, cached) = (ran + stage_ran, cached + stage_cached);
            match result {
                Ok(state) => {
                    finished.insert(index, state);
                }
                // The stage that failed first, not one stopped because of it.
                Err(ExecError::Aborted) => {}
                Err(e) => {
                    failure.get_or_insert(e);
                }
            }
        }
        if let Some(e) = failure {
            return Err(e);
        }
    }
    let mut runner = shared.runner(prepared.target, &finished, &mut *out);
    let image = runner.commit(prepared.target, &stage_ids[&prepared.target])?;
    Ok(Built { image, ran, cached })
}

fn is_host_platform(platform: &str) -> bool {
    let host = berth_image::Platform::host();
    let mut parts = platform.split('/');
    let os = parts.next().unwrap_or_default();
    let arch = parts.next().unwrap_or_default();
    os == host.os && arch == host.architecture
}

/// The image `reference` names, pulled when the policy says so.
fn base_image(
    images: &Images,
    reference: &str,
    policy: PullPolicy,
    pull: &Puller<'_>,
) -> Result<Image, ExecError> {
    let found = match policy {
        PullPolicy::Always => None,
        _ => match images.find(reference) {
            Ok(image) => Some(image),
            Err(berth_engine::images::ImageError::NotFound(_)) => None,
            Err(e) => {
                return Err(ExecError::Image {
                    reference: reference.to_owned(),
                    message: crate::exec::one_line(&e),
                })
            }
        },
    };
    match (found, policy) {
        (Some(image), _) => Ok(image),
        (None, PullPolicy::Never) => Err(ExecError::Image {
            reference: reference.to_owned(),
            message: "image not known, and --pull=never".to_owned(),
        }),
        (None, _) => pull(reference)
            .map_err(|message| ExecError::Pull { reference: reference.to_owned(), message }),
    }
}

/// An error and its causes on one line.
pub fn one_line(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// One stage built on a thread of a batch: its buffered output and its outcome.
struct StageRun {
    index: usize,
    output: Vec<u8>,
    result: Result<StageState, ExecError>,
    ran: usize,
    cached: usize,
}

/// What every stage of one build reads, shared by the threads of a batch.
struct Shared<'a> {
    images: &'a Images,
    options: &'a BuildOptions,
    prepared: &'a Prepared,
    external: &'a BTreeMap<String, Image>,
    cache_dir: PathBuf,
    multi: bool,
    stage_count: usize,
    /// A stage's number in the output (`[n/m]`), by index.
    numbers: BTreeMap<usize, usize>,
    /// Set when a stage of the running batch failed: the others stop at their next step.
    abort: AtomicBool,
}

impl<'a> Shared<'a> {
    fn runner<'r>(
        &'r self,
        index: usize,
        stages: &'r BTreeMap<usize, StageState>,
        out: &'r mut dyn Write,
    ) -> Runner<'r, 'a> {
        Runner {
            shared: self,
            images: self.images,
            options: self.options,
            prepared: self.prepared,
            external: self.external,
            out,
            stages,
            ran: 0,
            cached: 0,
            stage_number: self.numbers.get(&index).copied().unwrap_or(0),
        }
    }
}

/// One stage's build (or the commit), over the stages finished before it.
struct Runner<'r, 'a> {
    shared: &'r Shared<'a>,
    images: &'a Images,
    options: &'a BuildOptions,
    prepared: &'a Prepared,
    external: &'a BTreeMap<String, Image>,
    out: &'r mut dyn Write,
    stages: &'r BTreeMap<usize, StageState>,
    ran: usize,
    cached: usize,
    stage_number: usize,
}

impl Runner<'_, '_> {
    fn file(&self) -> String {
        self.prepared.plan.file.clone()
    }

    fn snippet(&self, position: Position) -> String {
        snippet(&self.prepared.plan.lines, position)
    }

    fn say(&mut self, text: &str) -> Result<(), ExecError> {
        if !self.options.quiet {
            writeln!(self.out, "{text}").map_err(ExecError::Output)?;
        }
        Ok(())
    }

    fn prefix(&self) -> String {
        if self.shared.multi {
            format!("[{}/{}] ", self.stage_number, self.shared.stage_count)
        } else {
            String::new()
        }
    }

    fn now(&self) -> String {
        let secs = match self.options.source_date_epoch {
            Some(epoch) => i64::try_from(epoch).unwrap_or(i64::MAX),
            None => berth_engine::images::time::now(),
        };
        berth_engine::images::time::format_rfc3339(secs)
    }

    fn times(&self) -> Times {
        match self.options.source_date_epoch {
            Some(epoch) => Times::Clamp(epoch),
            None => Times::Preserve {
                now: u64::try_from(berth_engine::images::time::now()).unwrap_or(0),
            },
        }
    }

    fn run_stage(&mut self, index: usize, keys: &[String]) -> Result<StageState, ExecError> {
        let plan = &self.prepared.plan;
        let stage = &plan.stages[index];
        let total = stage.steps.len() + 1;
        let from_line = plan.lines.get(stage.position.line - 1).cloned().unwrap_or_default();
        let prefix = self.prefix();
        self.say(&format!("{prefix}STEP 1/{total}: {}", from_line.trim()))?;

        let mut state = match &stage.base {
            Base::Scratch => StageState {
                layers: Vec::new(),
                config: ConfigState::from_base(&Value::Null),
                history: Vec::new(),
                base_extra: BTreeMap::new(),
                author: None,
            },
            Base::Image(reference) => {
                let image = &self.external[reference];
                let config = image.config.config.clone().unwrap_or_default();
                StageState {
                    layers: image_layers(image),
                    config: ConfigState::from_base(
                        &serde_json::to_value(&config).unwrap_or(Value::Null),
                    ),
                    history: image.config.history.clone(),
                    base_extra: config.extra.clone(),
                    author: image.config.author.clone(),
                }
            }
            Base::Stage(parent) => {
                let parent = &self.stages[parent];
                // A stage built on a stage starts from its final config, triggers cleared.
                let mut config = ConfigState::from_base(&self.stage_config_json(parent));
                config.on_build.clear();
                StageState {
                    layers: parent.layers.clone(),
                    config,
                    history: parent.history.clone(),
                    base_extra: parent.base_extra.clone(),
                    author: parent.author.clone(),
                }
            }
        };

        for (number, (step, key)) in stage.steps.iter().zip(keys).enumerate() {
            if self.shared.abort.load(Ordering::SeqCst) {
                return Err(ExecError::Aborted);
            }
            let shown = if step.trigger {
                format!("{} (ONBUILD trigger)", step.original)
            } else {
                step.original.clone()
            };
            self.say(&format!("{prefix}STEP {}/{total}: {shown}", number + 2))?;
            // The config before the step is what a RUN sees.
            let before = state.config.clone();
            let entry = state.config.apply(step).map_err(|cause| ExecError::Config {
                file: self.file(),
                position: step.position,
                cause,
                snippet: self.snippet(step.position),
            })?;
            if let Some(author) = &state.config.author {
                state.author = Some(author.clone());
            }
            state.history.push(History {
                created: Some(self.now()),
                created_by: Some(entry.created_by.clone()),
                author: None,
                comment: None,
                empty_layer: entry.empty_layer,
            });
            if entry.empty_layer {
                continue;
            }
            let layer = match self.cached_layer(key) {
                Some(layer) => {
                    self.cached += 1;
                    self.say(&format!("--> Using cache {}", key_hex(key)))?;
                    layer
                }
                None => {
                    let layer = self.make_layer(index, step, &before, &state)?;
                    self.ran += 1;
                    self.remember(key, &layer)?;
                    layer
                }
            };
            self.say(&format!("--> {}", &key_hex(key)[..12]))?;
            state.layers.push(layer);
        }
        Ok(state)
    }

    fn stage_config_json(&self, state: &StageState) -> Value {
        let mut config = state.config.to_json();
        if let Value::Object(map) = &mut config {
            for (k, v) in &state.base_extra {
                map.entry(k.clone()).or_insert_with(|| v.clone());
            }
        }
        config
    }

    fn cache_path(&self, key: &str) -> PathBuf {
        self.shared.cache_dir.join(format!("{}.json", key_hex(key)))
    }

    fn cached_layer(&self, key: &str) -> Option<BuiltLayer> {
        if self.options.no_cache || !self.options.layers {
            return None;
        }
        let bytes = fs::read(self.cache_path(key)).ok()?;
        let layer: BuiltLayer = serde_json::from_slice(&bytes).ok()?;
        // Garbage collection may have taken the blob; then the step runs again.
        self.images.has_blob(&layer.digest).then_some(layer)
    }

    fn remember(&self, key: &str, layer: &BuiltLayer) -> Result<(), ExecError> {
        if !self.options.layers {
            return Ok(());
        }
        let path = self.cache_path(key);
        let err = |source| ExecError::CacheStore { path: path.clone(), source };
        fs::create_dir_all(&self.shared.cache_dir).map_err(err)?;
        let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
        let bytes = serde_json::to_vec(layer).expect("a layer record serialises");
        fs::write(&tmp, bytes).map_err(err)?;
        fs::rename(&tmp, &path).map_err(err)
    }

    /// Does the work of a RUN, COPY or ADD and stores its layer.
    fn make_layer(
        &mut self,
        stage_index: usize,
        step: &crate::plan::Step,
        before: &ConfigState,
        state: &StageState,
    ) -> Result<BuiltLayer, ExecError> {
        match &step.kind {
            InstructionKind::Run(run) => self.run(stage_index, step, run, before, state),
            InstructionKind::Copy(copy) => self.copy(stage_index, step, copy, before, state),
            InstructionKind::Add(add) => {
                let options = CopyOptions { workdir: before.working_dir.clone() };
                let add = crate::dockerfile::Add {
                    chown: self.numeric_chown(step, add.chown.as_deref(), state)?,
                    ..add.clone()
                };
                let entries = copy::plan_add(&self.prepared.context, &add, &options)
                    .map_err(|cause| self.copy_error(step, cause))?;
                self.write_entries(step, &self.prepared.context.root.clone(), entries, state)
            }
            _ => unreachable!("only RUN, COPY and ADD make layers"),
        }
    }

    fn copy_error(&self, step: &crate::plan::Step, cause: CopyError) -> ExecError {
        ExecError::Copy {
            file: self.file(),
            position: step.position,
            keyword: step.kind.keyword(),
            cause,
            snippet: self.snippet(step.position),
        }
    }

    fn step_error(&self, step: &crate::plan::Step, message: String) -> ExecError {
        ExecError::Step {
            file: self.file(),
            position: step.position,
            keyword: step.kind.keyword(),
            message,
            snippet: self.snippet(step.position),
        }
    }

    /// The layers (base first) that `--from=reference` in stage `stage` names.
    fn layers_of(
        &self,
        step: &crate::plan::Step,
        stage: usize,
        reference: &str,
    ) -> Result<Vec<BuiltLayer>, ExecError> {
        match resolve_from(&self.prepared.plan, stage, reference) {
            Ok(FromRef::Stage(i)) => Ok(self.stages[&i].layers.clone()),
            Ok(FromRef::Image(image)) => Ok(image_layers(&self.external[&image])),
            Err(_) => Err(self.step_error(step, format!("unknown stage {reference:?}"))),
        }
    }

    fn copy(
        &mut self,
        stage: usize,
        step: &crate::plan::Step,
        copy_instruction: &crate::dockerfile::Copy,
        before: &ConfigState,
        state: &StageState,
    ) -> Result<BuiltLayer, ExecError> {
        let options = CopyOptions { workdir: before.working_dir.clone() };
        let numeric = crate::dockerfile::Copy {
            chown: self.numeric_chown(step, copy_instruction.chown.as_deref(), state)?,
            ..copy_instruction.clone()
        };
        let copy_instruction = &numeric;
        let Some(reference) = &copy_instruction.from else {
            let entries = copy::plan_copy(&self.prepared.context, copy_instruction, &options)
                .map_err(|cause| self.copy_error(step, cause))?;
            return self.write_entries(step, &self.prepared.context.root.clone(), entries, state);
        };
        let layers = self.layers_of(step, stage, reference)?;
        let dirs = self.images.unpack_built(&layers)?;
        let view = MergedView::mount(self.images.root(), &dirs, self.options.storage_driver)?;
        let root = view.root();
        let mut sources = Vec::new();
        let mut context = Context { root: root.clone(), entries: BTreeMap::new() };
        for source in &copy_instruction.sources {
            let cleaned = clean(source.trim_start_matches('/'));
            let failed =
                |e: io::Error| self.step_error(step, format!("{source} in {reference}: {e}"));
            if !cleaned.contains(['*', '?', '[']) {
                partial_context(&root, &cleaned, &mut context.entries).map_err(failed)?;
                sources.push(cleaned);
                continue;
            }
            // A wildcard: the tree below the directory before its first wildcard is read,
            // and the pattern matched against it as against a build context.
            let parts: Vec<&str> = cleaned.split('/').collect();
            let literal = parts.iter().take_while(|p| !p.contains(['*', '?', '['])).count();
            let prefix = parts[..literal].join("/");
            let real = resolve_in_root(&root, &prefix).map_err(failed)?;
            partial_context(&root, &real, &mut context.entries).map_err(failed)?;
            let rest = parts[literal..].join("/");
            sources.push(if real.is_empty() { rest } else { format!("{real}/{rest}") });
        }
        let local = crate::dockerfile::Copy { from: None, sources, ..copy_instruction.clone() };
        let entries = copy::plan_copy(&context, &local, &options)
            .map_err(|cause| self.copy_error(step, cause))?;
        let layer = self.write_entries(step, &root, entries, state)?;
        drop(view);
        Ok(layer)
    }

    /// `--chown=USER[:GROUP]` with names looked up in the stage's own /etc/passwd and
    /// /etc/group (as Docker does), as numbers; a missing group is the uid, as Docker says.
    fn numeric_chown(
        &self,
        step: &crate::plan::Step,
        spec: Option<&str>,
        state: &StageState,
    ) -> Result<Option<String>, ExecError> {
        let Some(spec) = spec else { return Ok(None) };
        let (user, group) = match spec.split_once(':') {
            Some((u, g)) => (u, Some(g)),
            None => (spec, None),
        };
        let numeric = |s: &str| s.parse::<u32>().is_ok();
        if numeric(user) && group.is_none_or(numeric) {
            return Ok(Some(spec.to_owned()));
        }
        let dirs = self.images.unpack_built(&state.layers)?;
        let lookup = |file: &str, name: &str| -> Result<(u32, Option<u32>), ExecError> {
            if let Ok(id) = name.parse::<u32>() {
                return Ok((id, None));
            }
            let text = dirs
                .iter()
                .rev()
                .find_map(|dir| fs::read_to_string(dir.join(file)).ok())
                .unwrap_or_default();
            text.lines()
                .map(|line| line.split(':').collect::<Vec<_>>())
                .find(|fields| fields.first() == Some(&name))
                .and_then(|fields| {
                    let id = fields.get(2)?.parse().ok()?;
                    Some((id, fields.get(3).and_then(|g| g.parse().ok())))
                })
                .ok_or_else(|| {
                    self.step_error(step, format!("--chown={spec}: no {name:?} in /{file}"))
                })
        };
        let (uid, _) = lookup("etc/passwd", user)?;
        let gid = match group {
            Some(group) => lookup("etc/group", group)?.0,
            None => uid,
        };
        Ok(Some(format!("{uid}:{gid}")))
    }

    /// Writes a COPY/ADD layer. A directory made only to hold what is copied keeps the owner,
    /// mode and time it has below when it exists there (a layer that lists a file but not its
    /// directory would have that directory made root's on unpacking, shadowing the real one).
    fn write_entries(
        &mut self,
        step: &crate::plan::Step,
        source_root: &Path,
        mut entries: BTreeMap<String, LayerEntry>,
        state: &StageState,
    ) -> Result<BuiltLayer, ExecError> {
        let dirs = self.images.unpack_built(&state.layers)?;
        entries.retain(|path, entry| {
            if !entry.implied {
                return true;
            }
            match below(&dirs, path) {
                None => true,
                Some(meta) if meta.is_dir() => {
                    entry.mode = meta.mode() & 0o7777;
                    entry.uid = meta.uid();
                    entry.gid = meta.gid();
                    entry.mtime = u64::try_from(meta.mtime()).ok();
                    true
                }
                // A symlink (or file) below is no directory to describe: left as it is.
                Some(_) => false,
            }
        });
        let times = self.times();
        let written = self.images.store_layer_tar(|out| {
            copy::write_layer(source_root, &entries, times, out).map(|_| ())
        })?;
        written.map_err(|cause| self.copy_error(step, cause))
    }

    fn run(
        &mut self,
        stage: usize,
        step: &crate::plan::Step,
        run: &crate::dockerfile::Run,
        before: &ConfigState,
        state: &StageState,
    ) -> Result<BuiltLayer, ExecError> {
        if run.security.is_some() {
            return Err(ExecError::NotSupported {
                file: self.file(),
                position: step.position,
                what: "RUN --security".to_owned(),
                snippet: self.snippet(step.position),
            });
        }
        let dirs = self.images.unpack_built(&state.layers)?;
        let scratch = Scratch::new(self.images.root())?;
        let mut mounts = Vec::new();
        let mut views = Vec::new();
        let mut env: Vec<String> = step.run_env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let secrets_dir = scratch.path().join("secrets");
        for mount in &run.mounts {
            let target = mount.target.clone();
            let need_target = |what: &str| {
                target
                    .clone()
                    .ok_or_else(|| self.step_error(step, format!("a {what} mount needs target=")))
            };
            match mount.kind {
                MountKind::Bind => {
                    let target = need_target("bind")?;
                    let source =
                        clean(mount.source.as_deref().unwrap_or(".").trim_start_matches('/'));
                    let root = match &mount.from {
                        None => self.prepared.context.root.clone(),
                        Some(reference) => {
                            let layers = self.layers_of(step, stage, reference)?;
                            let dirs = self.images.unpack_built(&layers)?;
                            let view = MergedView::mount(
                                self.images.root(),
                                &dirs,
                                self.options.storage_driver,
                            )?;
                            let root = view.root();
                            views.push(view);
                            root
                        }
                    };
                    let path = if source == "." { root } else { root.join(&source) };
                    mounts.push(StepMount::Bind {
                        source: path,
                        target,
                        read_only: mount.read_only.unwrap_or(true),
                    });
                }
                MountKind::Cache => {
                    let target = need_target("cache")?;
                    if mount.from.is_some() {
                        return Err(ExecError::NotSupported {
                            file: self.file(),
                            position: step.position,
                            what: "RUN --mount=type=cache,from=".to_owned(),
                            snippet: self.snippet(step.position),
                        });
                    }
                    let id = mount.id.clone().unwrap_or_else(|| target.clone());
                    let hex = hex::encode(sha2::Digest::finalize(
                        <sha2::Sha256 as sha2::Digest>::new_with_prefix(id.as_bytes()),
                    ));
                    let dir =
                        self.images.root().join("build").join("cache-mounts").join(&hex[..32]);
                    fs::create_dir_all(&dir)
                        .map_err(|source| ExecError::CacheStore { path: dir.clone(), source })?;
                    mounts.push(StepMount::Bind {
                        source: dir,
                        target,
                        read_only: mount.read_only.unwrap_or(false),
                    });
                }
                MountKind::Tmpfs => {
                    let target = need_target("tmpfs")?;
                    mounts.push(StepMount::Tmpfs { target, size: mount.size });
                }
                MountKind::Secret => {
                    let id = mount.id.clone().unwrap_or_else(|| {
                        let t = mount.target.as_deref().unwrap_or_default();
                        t.rsplit('/').next().unwrap_or_default().to_owned()
                    });
                    let Some(source) = self.options.secrets.by_id.get(&id) else { continue };
                    let content = read_secret(&id, source)?;
                    if let Some(var) = &mount.env {
                        env.push(format!("{var}={}", String::from_utf8_lossy(&content)));
                        if mount.target.is_none() {
                            continue;
                        }
                    }
                    let target =
                        mount.target.clone().unwrap_or_else(|| format!("/run/secrets/{id}"));
                    fs::create_dir_all(&secrets_dir).map_err(|source| ExecError::Secret {
                        id: id.clone(),
                        from: secrets_dir.display().to_string(),
                        source,
                    })?;
                    let path = secrets_dir.join(format!("{}", mounts.len()));
                    write_private(&path, &content, mount.mode.unwrap_or(0o400)).map_err(
                        |source| ExecError::Secret {
                            id: id.clone(),
                            from: path.display().to_string(),
                            source,
                        },
                    )?;
                    if let (Some(uid), gid) = (mount.uid, mount.gid) {
                        let _ = std::os::unix::fs::chown(&path, Some(uid), gid);
                    }
                    mounts.push(StepMount::Bind { source: path, target, read_only: true });
                }
                MountKind::Ssh => {
                    return Err(ExecError::NotSupported {
                        file: self.file(),
                        position: step.position,
                        what: "RUN --mount=type=ssh".to_owned(),
                        snippet: self.snippet(step.position),
                    })
                }
            }
        }
        let network = match run.network {
            Some(crate::dockerfile::NetworkMode::None) => NetworkMode::None,
            Some(crate::dockerfile::NetworkMode::Host) => NetworkMode::Host,
            _ => self.options.network.unwrap_or(NetworkMode::Attached),
        };
        let config: ContainerConfig = serde_json::from_value(before.to_json()).unwrap_or_default();
        let argv = before.argv(&run.command);
        let argv = with_heredocs(argv, run);
        let spec = StepSpec {
            layers: &dirs,
            config: &config,
            argv: &argv,
            env: &env,
            mounts: &mounts,
            network,
            driver: self.options.storage_driver,
            net: self.options.network_state.as_ref(),
        };
        let outcome = {
            let quiet = self.options.quiet;
            let mut sink = io::sink();
            let output: &mut dyn Write = if quiet { &mut sink } else { &mut *self.out };
            build_steps::run_step(&spec, &scratch, output)?
        };
        drop(views);
        if outcome.exit_code != 0 {
            return Err(ExecError::StepFailed {
                file: self.file(),
                position: step.position,
                instruction: step.original.clone(),
                code: outcome.exit_code,
                tail: outcome.tail,
            });
        }
        // Mount points the runtime made for the step's own mounts are not its change.
        let mut targets: Vec<String> = mounts
            .iter()
            .map(|m| match m {
                StepMount::Bind { target, .. } | StepMount::Tmpfs { target, .. } => target.clone(),
            })
            .collect();
        targets.extend(
            ["/etc/hosts", "/etc/hostname", "/etc/resolv.conf"].iter().map(|s| (*s).to_owned()),
        );
        remove_mount_points(&scratch.upper(), &dirs, &targets);
        Ok(self.images.store_diff(&scratch.upper(), self.options.source_date_epoch)?)
    }

    /// Commits the target stage as the image.
    /// Commits the target stage as the image. `key` is the stage's last step key: a build
    /// with the same key, labels and format as one before, whose layers all came out the
    /// same, reuses that build's config bytes (its times included), so a rebuild with no
    /// change gives the same image id, as Podman's `--layers` does.
    fn commit(&mut self, target: usize, key: &str) -> Result<Image, ExecError> {
        let state = &self.stages[&target];
        let commit_key = {
            let mut hasher = <sha2::Sha256 as sha2::Digest>::new();
            let format = match self.options.format {
                ImageFormat::Oci => "oci",
                ImageFormat::Docker => "docker",
            };
            let labels = serde_json::to_string(&self.options.labels).unwrap_or_default();
            for part in [key, format, labels.as_str()] {
                sha2::Digest::update(&mut hasher, part.as_bytes());
                sha2::Digest::update(&mut hasher, [0u8]);
            }
            hex::encode(sha2::Digest::finalize(hasher))
        };
        let config_path = self.shared.cache_dir.join(format!("commit-{commit_key}.json"));
        let diff_ids: Vec<String> = state.layers.iter().map(|l| l.diff_id.to_string()).collect();
        if self.options.layers && !self.options.no_cache {
            if let Some(bytes) = reusable_config(&config_path, &diff_ids) {
                return self.commit_bytes(&bytes, state.layers.clone());
            }
        }
        let mut config = self.stage_config_json(state);
        if !self.options.labels.is_empty() {
            let labels = config
                .as_object_mut()
                .expect("the config is an object")
                .entry("Labels")
                .or_insert_with(|| json!({}));
            for (k, v) in &self.options.labels {
                labels[k] = json!(v);
            }
        }
        let platform = berth_image::Platform::host();
        let mut image = json!({
            "created": self.now(),
            "architecture": platform.architecture,
            "os": platform.os,
            "config": config,
            "rootfs": {
                "type": "layers",
                "diff_ids": state.layers.iter().map(|l| l.diff_id.to_string()).collect::<Vec<_>>(),
            },
            "history": state.history,
        });
        if let Some(variant) = platform.variant {
            image["variant"] = json!(variant);
        }
        if let Some(author) = &state.author {
            image["author"] = json!(author);
        }
        let bytes = serde_json::to_vec(&image).expect("a config serialises");
        let layers = state.layers.clone();
        if self.options.layers {
            let err = |source| ExecError::CacheStore { path: config_path.clone(), source };
            fs::create_dir_all(&self.shared.cache_dir).map_err(err)?;
            let tmp = config_path.with_extension(format!("tmp-{}", std::process::id()));
            fs::write(&tmp, &bytes).map_err(err)?;
            fs::rename(&tmp, &config_path).map_err(err)?;
        }
        self.commit_bytes(&bytes, layers)
    }

    /// Stores config `bytes` with `layers` as the image and tags it.
    fn commit_bytes(&mut self, bytes: &[u8], layers: Vec<BuiltLayer>) -> Result<Image, ExecError> {
        let tags = self.options.tags.clone();
        let shown = tags.first().cloned().unwrap_or_default();
        let prefix = self.prefix();
        self.say(format!("{prefix}COMMIT {shown}").trim_end())?;
        let image = self.images.commit_built(bytes, &layers, self.options.format, &tags)?;
        self.say(&format!("--> {}", &image.id().hex()[..12]))?;
        for tag in &tags {
            self.say(&format!("Successfully tagged {tag}"))?;
        }
        Ok(image)
    }
}

/// The config bytes an earlier commit with the same key stored, if their layers are
/// `diff_ids` (a layer garbage collection took and a step made anew may differ).
fn reusable_config(path: &Path, diff_ids: &[String]) -> Option<Vec<u8>> {
    let bytes = fs::read(path).ok()?;
    let config: Value = serde_json::from_slice(&bytes).ok()?;
    let stored: Vec<&str> =
        config["rootfs"]["diff_ids"].as_array()?.iter().filter_map(Value::as_str).collect();
    (stored == diff_ids).then_some(bytes)
}

fn key_hex(key: &str) -> &str {
    key.strip_prefix("sha256:").unwrap_or(key)
}

/// An image's layers as a build carries them.
fn image_layers(image: &Image) -> Vec<BuiltLayer> {
    image
        .manifest
        .layers
        .iter()
        .zip(&image.config.rootfs.diff_ids)
        .map(|(descriptor, diff_id)| BuiltLayer {
            digest: descriptor.digest.clone(),
            size: descriptor.size,
            diff_id: diff_id.clone(),
        })
        .collect()
}

/// RUN heredocs, as BuildKit runs them: a command that is only `<<EOF` runs the body as the
/// shell's script; otherwise the bodies follow the command as shell here-documents.
fn with_heredocs(mut argv: Vec<String>, run: &crate::dockerfile::Run) -> Vec<String> {
    let crate::dockerfile::Command::Shell(text) = &run.command else { return argv };
    if run.heredocs.is_empty() {
        return argv;
    }
    let only = text.trim().trim_start_matches("<<").trim_start_matches('-');
    let only = only.trim_matches(|c| c == '"' || c == '\'');
    if run.heredocs.len() == 1 && only == run.heredocs[0].name {
        if let Some(last) = argv.last_mut() {
            last.clone_from(&run.heredocs[0].content);
        }
        return argv;
    }
    if let Some(last) = argv.last_mut() {
        for doc in &run.heredocs {
            last.push('\n');
            last.push_str(&doc.content);
            last.push_str(&doc.name);
        }
    }
    argv
}

/// What `path` is in the top-most of the layers `dirs` (base first) that has it.
fn below(dirs: &[PathBuf], path: &str) -> Option<fs::Metadata> {
    dirs.iter().rev().find_map(|dir| fs::symlink_metadata(dir.join(path)).ok())
}

/// Removes what the runtime created in `upper` only as mount points: an empty file or
/// directory at a mount target, and its empty parents, unless the layers below have them.
fn remove_mount_points(upper: &Path, below: &[PathBuf], targets: &[String]) {
    for target in targets {
        let mut rel = clean(target.trim_start_matches('/'));
        loop {
            if rel.is_empty() || rel == "." || exists_below_any(below, &rel) {
                break;
            }
            let path = upper.join(&rel);
            let removed = match fs::symlink_metadata(&path) {
                Ok(m) if m.is_dir() => fs::remove_dir(&path).is_ok(),
                Ok(m) if m.is_file() && m.len() == 0 => fs::remove_file(&path).is_ok(),
                _ => false,
            };
            if !removed {
                break;
            }
            match rel.rsplit_once('/') {
                Some((parent, _)) => rel = parent.to_owned(),
                None => break,
            }
        }
    }
}

fn exists_below_any(dirs: &[PathBuf], path: &str) -> bool {
    dirs.iter().any(|dir| fs::symlink_metadata(dir.join(path)).is_ok())
}

fn read_secret(id: &str, source: &SecretSource) -> Result<Vec<u8>, ExecError> {
    match source {
        SecretSource::File(path) => fs::read(path).map_err(|source| ExecError::Secret {
            id: id.to_owned(),
            from: path.display().to_string(),
            source,
        }),
        SecretSource::Env(var) => std::env::var_os(var)
            .map(std::os::unix::ffi::OsStringExt::into_vec)
            .ok_or_else(|| ExecError::Secret {
                id: id.to_owned(),
                from: format!("${var}"),
                source: io::Error::new(io::ErrorKind::NotFound, "variable not set"),
            }),
    }
}

fn write_private(path: &Path, content: &[u8], mode: u32) -> io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let mut file = fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(path)?;
    file.write_all(content)?;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// Adds `source` (relative, cleaned) of the tree at `root` to `entries` as a context would
/// hold it: symlinks on the way are followed within `root`, the real path is entered with
/// everything below it, and the path as written becomes a link to it when they differ.
fn partial_context(
    root: &Path,
    source: &str,
    entries: &mut BTreeMap<String, Entry>,
) -> io::Result<()> {
    let real = resolve_in_root(root, source)?;
    if real != source && !source.is_empty() && source != "." {
        entries.insert(
            source.to_owned(),
            Entry {
                kind: EntryKind::Symlink { target: format!("/{real}") },
                mode: 0o120_777,
                uid: 0,
                gid: 0,
                size: 0,
                content: None,
                mtime: 0,
            },
        );
    }
    if real.is_empty() || real == "." {
        return walk_all(root, "", entries);
    }
    let meta = fs::symlink_metadata(root.join(&real))?;
    entries.insert(real.clone(), entry_of(root, &real, &meta)?);
    if meta.is_dir() {
        walk_all(root, &real, entries)?;
    }
    Ok(())
}

fn walk_all(root: &Path, dir: &str, entries: &mut BTreeMap<String, Entry>) -> io::Result<()> {
    let full = if dir.is_empty() { root.to_owned() } else { root.join(dir) };
    for item in fs::read_dir(full)? {
        let item = item?;
        let name = item.file_name().to_string_lossy().into_owned();
        let rel = if dir.is_empty() { name } else { format!("{dir}/{name}") };
        let meta = fs::symlink_metadata(item.path())?;
        entries.insert(rel.clone(), entry_of(root, &rel, &meta)?);
        if meta.is_dir() {
            walk_all(root, &rel, entries)?;
        }
    }
    Ok(())
}

fn entry_of(root: &Path, rel: &str, meta: &fs::Metadata) -> io::Result<Entry> {
    let file_type = meta.file_type();
    let kind = if file_type.is_symlink() {
        EntryKind::Symlink { target: fs::read_link(root.join(rel))?.to_string_lossy().into_owned() }
    } else if file_type.is_dir() {
        EntryKind::Dir
    } else if file_type.is_file() {
        EntryKind::File
    } else {
        EntryKind::Other
    };
    Ok(Entry {
        kind,
        mode: meta.mode(),
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
        // Not hashed: the files come from a finished stage, not a context that may change.
        content: None,
        mtime: meta.mtime(),
    })
}

/// `path` with every symlink in it followed, clamped to `root` (an absolute target starts at
/// `root`, `..` stops at it), as a path relative to `root`.
fn resolve_in_root(root: &Path, path: &str) -> io::Result<String> {
    let mut done: Vec<String> = Vec::new();
    let mut todo: Vec<String> = path.split('/').rev().map(str::to_owned).collect();
    let mut links = 0;
    while let Some(part) = todo.pop() {
        match part.as_str() {
            "" | "." => continue,
            ".." => {
                done.pop();
                continue;
            }
            _ => {}
        }
        let candidate = root.join(done.join("/")).join(&part);
        match fs::symlink_metadata(&candidate) {
            Ok(meta) if meta.file_type().is_symlink() => {
                links += 1;
                if links > 40 {
                    return Err(io::Error::other("too many levels of symbolic links"));
                }
                let target = fs::read_link(&candidate)?.to_string_lossy().into_owned();
                if target.starts_with('/') {
                    done.clear();
                }
                todo.extend(target.split('/').rev().map(str::to_owned));
            }
            Ok(_) => done.push(part),
            Err(e) => return Err(e),
        }
    }
    Ok(done.join("/"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symlinks_resolve_inside_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("usr/bin")).unwrap();
        fs::write(root.join("usr/bin/tool"), "x").unwrap();
        std::os::unix::fs::symlink("usr/bin", root.join("bin")).unwrap();
        std::os::unix::fs::symlink("/usr/bin/tool", root.join("usr/bin/abs")).unwrap();
        std::os::unix::fs::symlink("../../../../etc", root.join("usr/escape")).unwrap();
        assert_eq!(resolve_in_root(root, "bin/tool").unwrap(), "usr/bin/tool");
        assert_eq!(resolve_in_root(root, "bin/abs").unwrap(), "usr/bin/tool");
        assert!(resolve_in_root(root, "usr/escape/passwd").is_err(), "clamped to the root");

        let mut entries = BTreeMap::new();
        partial_context(root, "bin/abs", &mut entries).unwrap();
        assert_eq!(entries["bin/abs"].kind, EntryKind::Symlink { target: "/usr/bin/tool".into() });
        assert_eq!(entries["usr/bin/tool"].kind, EntryKind::File);
    }

    #[test]
    fn mount_points_left_by_the_runtime_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        let upper = dir.path().join("upper");
        let lower = dir.path().join("lower");
        fs::create_dir_all(upper.join("run/secrets")).unwrap();
        fs::write(upper.join("run/secrets/token"), "").unwrap();
        fs::create_dir_all(upper.join("etc")).unwrap();
        fs::write(upper.join("etc/hosts"), "").unwrap();
        fs::write(upper.join("etc/kept"), "data").unwrap();
        fs::create_dir_all(lower.join("etc")).unwrap();
        remove_mount_points(&upper, &[lower], &["/run/secrets/token".into(), "/etc/hosts".into()]);
        assert!(!upper.join("run").exists());
        assert!(!upper.join("etc/hosts").exists());
        assert!(upper.join("etc/kept").exists());
    }
}
