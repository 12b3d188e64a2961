//! The expanded build plan: the parsed file split into stages, every instruction's variables
//! expanded with the scope at that point (global ARGs for FROM, the stage's ENV and ARGs
//! after it), and for each step the build arguments it used — what the cache key needs.
//!
//! Planning does no I/O. The config a stage inherits from an external base image (its
//! environment and ONBUILD triggers) comes from the caller ([`PlanOptions::base_config`]); a
//! stage built on an earlier stage inherits that stage's final environment and triggers.
//! Triggers become the first steps of the stage that builds on them, as in Docker.

use std::collections::{BTreeMap, BTreeSet};

use crate::args::{looks_secret, BuildArgs, Origin, Platforms, Scope, PLATFORM_ARGS, PROXY_ARGS};
use crate::dockerfile::{
    snippet, Add, Copy, Dockerfile, Heredoc, Instruction, InstructionKind, KeyValue, Position,
};
use crate::expand::{expand, ExpandError, Mode};

/// Why a Dockerfile could not be planned.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("{file}:{position}: expanding {keyword}: {cause}\n{snippet}")]
    Expand {
        file: String,
        position: Position,
        keyword: &'static str,
        cause: Box<ExpandError>,
        snippet: String,
    },
    #[error(
        "{file}:{position}: {keyword} before the first FROM: only ARG may come first\n{snippet}"
    )]
    BeforeFrom { file: String, position: Position, keyword: &'static str, snippet: String },
    #[error("{file}: no FROM instruction: a Dockerfile needs at least one stage")]
    NoStage { file: String },
    #[error("{file}:{position}: duplicate stage name {name:?}\n{snippet}")]
    DuplicateStage { file: String, position: Position, name: String, snippet: String },
    #[error("{file}:{position}: FROM with an empty image name (after expansion of {image:?})\n{snippet}")]
    EmptyBase { file: String, position: Position, image: String, snippet: String },
    #[error("{file}:{position}: ONBUILD trigger {trigger:?} of the base: {message}\n{snippet}")]
    Trigger { file: String, position: Position, trigger: String, message: String, snippet: String },
}

/// Gives the `config` object (Docker's PascalCase JSON) of an external base image by its
/// reference, None when it is not known.
pub type BaseConfig = dyn Fn(&str) -> Option<serde_json::Value>;

/// What the plan needs to know beyond the file.
pub struct PlanOptions<'a> {
    pub build_args: BuildArgs,
    pub platforms: Platforms,
    /// The config of an external base image, by the expanded FROM reference; when unknown,
    /// planning starts from an empty environment and no triggers.
    pub base_config: &'a BaseConfig,
}

impl Default for PlanOptions<'_> {
    fn default() -> Self {
        Self {
            build_args: BuildArgs::new(),
            platforms: Platforms::default(),
            base_config: &|_| None,
        }
    }
}

/// What a stage starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Base {
    Scratch,
    /// An earlier stage, by index.
    Stage(usize),
    /// An image reference, as written after expansion.
    Image(String),
}

/// A non-fatal finding, shown to the user before the build.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub position: Option<Position>,
    pub message: String,
}

/// One instruction after expansion.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub position: Position,
    /// As written, for history and progress output.
    pub original: String,
    /// With variables expanded where the instruction allows it.
    pub kind: InstructionKind,
    /// The build arguments (ARG values) this step depends on: the ones its expansion looked
    /// up, and for RUN every ARG in scope (they are in its environment).
    pub used_args: BTreeMap<String, String>,
    /// For RUN: what is added to the environment of the command besides the image's: the
    /// ARGs in scope and the proxy build args.
    pub run_env: Vec<(String, String)>,
    /// True for a step that is an ONBUILD trigger of the base (its position is the FROM's).
    pub trigger: bool,
}

/// One stage, FROM to the next FROM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StagePlan {
    pub index: usize,
    pub name: Option<String>,
    pub position: Position,
    pub base: Base,
    /// The expanded `--platform` of its FROM.
    pub platform: Option<String>,
    /// The build args the FROM line used.
    pub from_args: BTreeMap<String, String>,
    pub steps: Vec<Step>,
    /// The environment at the end of the stage (base image's plus ENV).
    pub final_env: Vec<(String, String)>,
    /// The ONBUILD triggers this stage records, for stages built on it.
    pub on_build: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub file: String,
    pub escape: char,
    pub stages: Vec<StagePlan>,
    /// The global ARGs, with their values.
    pub global_args: BTreeMap<String, Option<String>>,
    pub warnings: Vec<Warning>,
    /// The file's lines, for errors found later (the stage graph, the cache).
    pub lines: Vec<String>,
}

impl Plan {
    /// The stage a name or an index (`"0"`) refers to, among all stages.
    pub fn stage_by_ref(&self, reference: &str) -> Option<usize> {
        let lower = reference.to_ascii_lowercase();
        if let Some(stage) = self.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str()))
        {
            return Some(stage.index);
        }
        reference.parse::<usize>().ok().filter(|i| *i < self.stages.len())
    }
}

/// Splits `dockerfile` into stages and expands every instruction.
pub fn plan(dockerfile: &Dockerfile, options: &PlanOptions<'_>) -> Result<Plan, PlanError> {
    let file = dockerfile.file.clone();
    let escape = dockerfile.directives.escape;
    let build_args = &options.build_args;
    let platforms = &options.platforms;
    let mut warnings = Vec::new();
    let mut consumed: BTreeSet<String> = BTreeSet::new();

    // Global ARGs: each sees the ones before it and the platform args.
    let mut global: BTreeMap<String, Option<String>> = BTreeMap::new();
    let mut rest = dockerfile.instructions.as_slice();
    while let Some((first, tail)) = rest.split_first() {
        let InstructionKind::Arg(decls) = &first.kind else { break };
        for decl in decls {
            consumed.insert(decl.name.clone());
            let value = match (build_args.get(&decl.name), &decl.default) {
                (Some(v), _) => Some(v.to_owned()),
                (None, Some(default)) => {
                    let lookup = |n: &str| global_lookup(&global, platforms, n);
                    let expanded = expand(default, escape, Mode::Word, &lookup)
                        .map_err(|source| expand_error(dockerfile, first, source))?;
                    Some(expanded.value)
                }
                (None, None) => None,
            };
            warn_secret(&mut warnings, first.position, "ARG", &decl.name);
            global.insert(decl.name.clone(), value);
        }
        rest = tail;
    }
    if let Some(first) = rest.first() {
        if !matches!(first.kind, InstructionKind::From(_)) {
            return Err(PlanError::BeforeFrom {
                file,
                snippet: snippet(&dockerfile.lines, first.position),
                position: first.position,
                keyword: first.keyword(),
            });
        }
    }

    let mut stages: Vec<StagePlan> = Vec::new();
    let mut scope = Scope::default();
    for instruction in rest {
        if let InstructionKind::From(from) = &instruction.kind {
            let lookup_names = std::cell::RefCell::new(BTreeSet::new());
            let lookup = |n: &str| {
                lookup_names.borrow_mut().insert(n.to_owned());
                global_lookup(&global, platforms, n)
            };
            let image = expand(&from.image, escape, Mode::Word, &lookup)
                .map_err(|source| expand_error(dockerfile, instruction, source))?
                .value;
            let platform = match &from.platform {
                None => None,
                Some(p) => Some(
                    expand(p, escape, Mode::Word, &lookup)
                        .map_err(|source| expand_error(dockerfile, instruction, source))?
                        .value,
                ),
            };
            if image.is_empty() {
                return Err(PlanError::EmptyBase {
                    file,
                    snippet: snippet(&dockerfile.lines, instruction.position),
                    position: instruction.position,
                    image: from.image.clone(),
                });
            }
            if let Some(name) = &from.alias {
                if stages.iter().any(|s| s.name.as_deref() == Some(name.as_str())) {
                    return Err(PlanError::DuplicateStage {
                        file,
                        snippet: snippet(&dockerfile.lines, instruction.position),
                        position: instruction.position,
                        name: name.clone(),
                    });
                }
            }
            let lower = image.to_ascii_lowercase();
            let base = match stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
                Some(parent) => Base::Stage(parent.index),
                None if lower == "scratch" => Base::Scratch,
                None => Base::Image(image.clone()),
            };
            let (mut env, triggers) = match &base {
                Base::Stage(i) => (stages[*i].final_env.clone(), stages[*i].on_build.clone()),
                Base::Scratch => (Vec::new(), Vec::new()),
                Base::Image(reference) => {
                    let config =
                        (options.base_config)(reference).unwrap_or(serde_json::Value::Null);
                    (config_env(&config), crate::config::ConfigState::triggers(&config))
                }
            };
            // An image without PATH gets the default one, visible to expansion too.
            if !env.iter().any(|(k, _)| k == "PATH") {
                env.insert(0, ("PATH".to_owned(), crate::config::DEFAULT_PATH.to_owned()));
            }
            let from_args = lookup_names
                .into_inner()
                .into_iter()
                .filter_map(|n| Some((n.clone(), global.get(&n).cloned()??)))
                .collect();
            stages.push(StagePlan {
                index: stages.len(),
                name: from.alias.clone(),
                position: instruction.position,
                base,
                platform,
                from_args,
                steps: Vec::new(),
                final_env: env.clone(),
                on_build: Vec::new(),
            });
            scope = Scope::with_env(env);
            for trigger in triggers {
                let trigger_error = |message: String| PlanError::Trigger {
                    file: file.clone(),
                    snippet: snippet(&dockerfile.lines, instruction.position),
                    position: instruction.position,
                    trigger: trigger.clone(),
                    message,
                };
                let parsed = crate::dockerfile::parse("ONBUILD", &trigger)
                    .map_err(|e| trigger_error(e.to_string()))?;
                for triggered in parsed.instructions {
                    if matches!(
                        triggered.kind,
                        InstructionKind::From(_)
                            | InstructionKind::Maintainer(_)
                            | InstructionKind::Onbuild(_)
                    ) {
                        return Err(trigger_error(format!(
                            "{} isn't allowed as an ONBUILD trigger",
                            triggered.keyword()
                        )));
                    }
                    let triggered = Instruction { position: instruction.position, ..triggered };
                    let mut step = plan_step(
                        &triggered,
                        &mut scope,
                        &global,
                        build_args,
                        platforms,
                        escape,
                        &mut consumed,
                        &mut warnings,
                    )
                    .map_err(|source| expand_error(dockerfile, &triggered, source))?;
                    step.trigger = true;
                    let stage = stages.last_mut().expect("a stage was just pushed");
                    stage.steps.push(step);
                    stage.final_env = scope.env().to_vec();
                }
            }
            continue;
        }

        let Some(stage) = stages.last_mut() else { continue };
        let step = plan_step(
            instruction,
            &mut scope,
            &global,
            build_args,
            platforms,
            escape,
            &mut consumed,
            &mut warnings,
        )
        .map_err(|source| expand_error(dockerfile, instruction, source))?;
        if let InstructionKind::Onbuild(inner) = &step.kind {
            stage.on_build.push(inner.original.clone());
        }
        stage.steps.push(step);
        stage.final_env = scope.env().to_vec();
    }
    if stages.is_empty() {
        return Err(PlanError::NoStage { file });
    }

    let unused: Vec<&str> = build_args
        .names()
        .filter(|n| !consumed.contains(*n) && !PROXY_ARGS.contains(n) && !PLATFORM_ARGS.contains(n))
        .collect();
    if !unused.is_empty() {
        let message = format!("one or more build args were not consumed: {}", unused.join(", "));
        tracing::warn!(%message, "unused build args");
        warnings.push(Warning { position: None, message });
    }
    Ok(Plan {
        file,
        escape,
        stages,
        global_args: global,
        warnings,
        lines: dockerfile.lines.clone(),
    })
}

fn expand_error(
    dockerfile: &Dockerfile,
    instruction: &Instruction,
    cause: ExpandError,
) -> PlanError {
    PlanError::Expand {
        file: dockerfile.file.clone(),
        position: instruction.position,
        keyword: instruction.keyword(),
        cause: Box::new(cause),
        snippet: snippet(&dockerfile.lines, instruction.position),
    }
}

fn global_lookup(
    global: &BTreeMap<String, Option<String>>,
    platforms: &Platforms,
    name: &str,
) -> Option<String> {
    match global.get(name) {
        Some(value) => value.clone(),
        None => platforms.value(name),
    }
}

fn warn_secret(warnings: &mut Vec<Warning>, position: Position, keyword: &str, name: &str) {
    if looks_secret(name) {
        let message = format!(
            "{keyword} {name:?} looks like a secret: its value is kept in the image history; \
             use RUN --mount=type=secret instead"
        );
        tracing::warn!(%position, name, "secret-looking {keyword}");
        warnings.push(Warning { position: Some(position), message });
    }
}

/// Expands the words of one step with the scope, records the args it used, and applies ARG
/// and ENV to the scope.
#[allow(clippy::too_many_arguments)]
fn plan_step(
    instruction: &Instruction,
    scope: &mut Scope,
    global: &BTreeMap<String, Option<String>>,
    build_args: &BuildArgs,
    platforms: &Platforms,
    escape: char,
    consumed: &mut BTreeSet<String>,
    warnings: &mut Vec<Warning>,
) -> Result<Step, ExpandError> {
    let mut used = BTreeMap::new();
    let mut run_env = Vec::new();
    let kind = match &instruction.kind {
        InstructionKind::Arg(decls) => {
            for decl in decls {
                consumed.insert(decl.name.clone());
                let value = if PLATFORM_ARGS.contains(&decl.name.as_str()) {
                    platforms.value(&decl.name)
                } else if let Some(v) = build_args.get(&decl.name) {
                    Some(v.to_owned())
                } else if let Some(default) = &decl.default {
                    Some(word(default, scope, escape, Mode::Word, &mut used)?)
                } else {
                    global.get(&decl.name).cloned().flatten()
                };
                warn_secret(warnings, instruction.position, "ARG", &decl.name);
                scope.declare_arg(&decl.name, value);
            }
            instruction.kind.clone()
        }
        InstructionKind::Env(pairs) => {
            // All values see the scope before this ENV, as in Docker.
            let mut expanded = Vec::with_capacity(pairs.len());
            for pair in pairs {
                warn_secret(warnings, instruction.position, "ENV", &pair.key);
                let value = word(&pair.value, scope, escape, Mode::Word, &mut used)?;
                expanded.push(KeyValue { key: pair.key.clone(), value });
            }
            for pair in &expanded {
                scope.set_env(&pair.key, &pair.value);
            }
            InstructionKind::Env(expanded)
        }
        InstructionKind::Run(run) => {
            let mut run = run.clone();
            for mount in &mut run.mounts {
                // Every field may use variables; the mount is parsed again once they are set.
                let mut failure = None;
                let mut expand_field = |v: &str| {
                    word(v, scope, escape, Mode::Word, &mut used).map_err(|e| {
                        let message = e.to_string();
                        failure = Some(e);
                        message
                    })
                };
                match crate::dockerfile::parser::parse_mount(&mount.raw, &mut expand_field, false) {
                    Ok(expanded) => *mount = expanded,
                    Err(message) => {
                        return Err(failure.unwrap_or(ExpandError::Mount { message }));
                    }
                }
            }
            for (k, v) in scope.effective_args() {
                used.insert(k.clone(), v.clone());
                run_env.push((k, v));
            }
            for (k, v) in build_args.proxies() {
                if !run_env.iter().any(|(e, _)| *e == k) {
                    run_env.push((k, v));
                }
            }
            InstructionKind::Run(run)
        }
        InstructionKind::Label(pairs) => {
            let mut out = Vec::with_capacity(pairs.len());
            for pair in pairs {
                out.push(KeyValue {
                    key: word(&pair.key, scope, escape, Mode::Word, &mut used)?,
                    value: word(&pair.value, scope, escape, Mode::Word, &mut used)?,
                });
            }
            InstructionKind::Label(out)
        }
        InstructionKind::Expose(ports) => {
            let mut out = Vec::new();
            for port in ports {
                let value = word(port, scope, escape, Mode::Word, &mut used)?;
                out.extend(value.split_whitespace().map(str::to_owned));
            }
            InstructionKind::Expose(out)
        }
        InstructionKind::Volume(paths) => {
            let mut out = Vec::with_capacity(paths.len());
            for path in paths {
                out.push(word(path, scope, escape, Mode::Word, &mut used)?);
            }
            InstructionKind::Volume(out)
        }
        InstructionKind::User(v) => {
            InstructionKind::User(word(v, scope, escape, Mode::Word, &mut used)?)
        }
        InstructionKind::Workdir(v) => {
            InstructionKind::Workdir(word(v, scope, escape, Mode::Word, &mut used)?)
        }
        InstructionKind::Stopsignal(v) => {
            InstructionKind::Stopsignal(word(v, scope, escape, Mode::Word, &mut used)?)
        }
        InstructionKind::Copy(copy) => {
            let mut w = |v: &str| word(v, scope, escape, Mode::Word, &mut used);
            let mut out = Copy {
                from: copy.from.as_deref().map(&mut w).transpose()?,
                chown: copy.chown.as_deref().map(&mut w).transpose()?,
                chmod: copy.chmod.as_deref().map(&mut w).transpose()?,
                excludes: copy.excludes.iter().map(|e| w(e)).collect::<Result<_, _>>()?,
                sources: copy
                    .sources
                    .iter()
                    .map(|s| source_word(s, &mut w))
                    .collect::<Result<_, _>>()?,
                destination: w(&copy.destination)?,
                ..copy.clone()
            };
            out.heredocs = heredocs(&copy.heredocs, scope, escape, &mut used)?;
            InstructionKind::Copy(out)
        }
        InstructionKind::Add(add) => {
            let mut w = |v: &str| word(v, scope, escape, Mode::Word, &mut used);
            let mut out = Add {
                chown: add.chown.as_deref().map(&mut w).transpose()?,
                chmod: add.chmod.as_deref().map(&mut w).transpose()?,
                checksum: add.checksum.as_deref().map(&mut w).transpose()?,
                sources: add
                    .sources
                    .iter()
                    .map(|s| source_word(s, &mut w))
                    .collect::<Result<_, _>>()?,
                destination: w(&add.destination)?,
                ..add.clone()
            };
            out.heredocs = heredocs(&add.heredocs, scope, escape, &mut used)?;
            InstructionKind::Add(out)
        }
        // The shell expands these at run time; ONBUILD triggers expand where they run.
        InstructionKind::Cmd(_)
        | InstructionKind::Entrypoint(_)
        | InstructionKind::Onbuild(_)
        | InstructionKind::Healthcheck(_)
        | InstructionKind::Shell(_)
        | InstructionKind::Maintainer(_)
        | InstructionKind::From(_) => instruction.kind.clone(),
    };
    Ok(Step {
        position: instruction.position,
        original: instruction.original.clone(),
        kind,
        used_args: used,
        run_env,
        trigger: false,
    })
}

/// The `Env` of a config object as pairs.
fn config_env(config: &serde_json::Value) -> Vec<(String, String)> {
    config
        .get("Env")
        .and_then(serde_json::Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(serde_json::Value::as_str)
                .map(|e| match e.split_once('=') {
                    Some((k, v)) => (k.to_owned(), v.to_owned()),
                    None => (e.to_owned(), String::new()),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// A heredoc source word (`<<EOF`) stays as it is; others expand.
fn source_word(
    source: &str,
    expand_word: &mut dyn FnMut(&str) -> Result<String, ExpandError>,
) -> Result<String, ExpandError> {
    if source.starts_with("<<") {
        Ok(source.to_owned())
    } else {
        expand_word(source)
    }
}

fn heredocs(
    docs: &[Heredoc],
    scope: &Scope,
    escape: char,
    used: &mut BTreeMap<String, String>,
) -> Result<Vec<Heredoc>, ExpandError> {
    docs.iter()
        .map(|doc| {
            let mut doc = doc.clone();
            if doc.expand {
                doc.content = word(&doc.content, scope, escape, Mode::Heredoc, used)?;
            }
            Ok(doc)
        })
        .collect()
}

/// Expands one word in `scope`, adding the ARG values it looked up to `used`.
fn word(
    text: &str,
    scope: &Scope,
    escape: char,
    mode: Mode,
    used: &mut BTreeMap<String, String>,
) -> Result<String, ExpandError> {
    let lookup = |n: &str| scope.lookup(n).map(|(v, _)| v.to_owned());
    let expanded = expand(text, escape, mode, &lookup)?;
    for name in expanded.names {
        if let Some((value, Origin::Arg)) = scope.lookup(&name) {
            used.insert(name, value.to_owned());
        }
    }
    Ok(expanded.value)
}

#[cfg(test)]
mod tests;
