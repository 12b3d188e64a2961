//! The build cache key of a step: a sha256 over the parent (the layer chain id, or image id,
//! the step builds on), the instruction after expansion, the build args it used, and for COPY
//! and ADD what its sources hold (context digests over contents, modes and owners, not mtimes;
//! or the result a `--from` stage produced), and for RUN what its bind mounts show it.
//!
//! Two steps with the same key produce the same layer, so a hit may reuse it without running
//! anything. The key covers the typed, expanded instruction (flags, mounts, heredoc bodies
//! included), never secret contents: a secret mount is keyed by its id only, as in Docker.

use std::fmt::Write as _;

use sha2::{Digest as _, Sha256};

use crate::context::{Context, ContextError};
use crate::dockerfile::{heredoc_source, InstructionKind, MountKind};
use crate::graph::{resolve_from, FromRef};
use crate::plan::{Plan, StagePlan, Step};

/// Bumped whenever what goes into a key changes, so old entries stop matching.
const KEY_VERSION: &str = "berth-build-cache-v1";

/// Why a step's key could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("{file}:{position}: {keyword}: {cause}\n{snippet}")]
    Sources {
        file: String,
        position: crate::dockerfile::Position,
        keyword: &'static str,
        cause: ContextError,
        snippet: String,
    },
}

/// What a COPY or ADD takes its files from, for the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceInput {
    /// The digest of the context paths it names ([`Context::sources_digest`]).
    Context(String),
    /// The identity of what another stage or an image produced (its chain or image id).
    Other(String),
}

/// The key of one step.
pub fn step_key(parent: &str, step: &Step, sources: &[SourceInput]) -> String {
    let mut text = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(text, "{KEY_VERSION}");
    let _ = writeln!(text, "parent {parent}");
    let _ = writeln!(text, "instruction {:?}", step.kind);
    for (name, value) in &step.used_args {
        let _ = writeln!(text, "arg {name:?}={value:?}");
    }
    for source in sources {
        let _ = match source {
            SourceInput::Context(digest) => writeln!(text, "context {digest}"),
            SourceInput::Other(id) => writeln!(text, "from {id}"),
        };
    }
    format!("sha256:{}", hex::encode(Sha256::digest(text.as_bytes())))
}

/// The context sources of a COPY or ADD (heredocs and URLs are not in the context: a heredoc
/// body is part of the instruction, a URL's content is keyed by whoever downloads it).
pub fn context_sources(kind: &InstructionKind) -> Option<Vec<String>> {
    let (sources, heredocs) = match kind {
        InstructionKind::Copy(copy) if copy.from.is_none() => (&copy.sources, &copy.heredocs),
        InstructionKind::Add(add) => (&add.sources, &add.heredocs),
        _ => return None,
    };
    Some(
        sources
            .iter()
            .filter(|s| heredoc_source(heredocs, s).is_none())
            .filter(|s| !is_remote(s))
            .cloned()
            .collect(),
    )
}

/// COPY's `--exclude` patterns (none for other instructions).
pub fn excludes(kind: &InstructionKind) -> &[String] {
    match kind {
        InstructionKind::Copy(copy) => &copy.excludes,
        _ => &[],
    }
}

/// An ADD source fetched from the network rather than the context.
pub fn is_remote(source: &str) -> bool {
    ["http://", "https://", "git@", "git://"].iter().any(|p| source.starts_with(p))
}

/// The keys of every step of a stage, each step's parent being the previous key (the first's
/// the base's id), as a build that reuses layers by key chains them. `other` gives the id of
/// what a `COPY --from` reads (a stage's result or an image).
pub fn stage_keys(
    plan: &Plan,
    stage: &StagePlan,
    base_id: &str,
    context: &Context,
    other: &dyn Fn(&FromRef) -> String,
) -> Result<Vec<String>, CacheError> {
    let mut keys = Vec::with_capacity(stage.steps.len());
    let mut parent = base_id.to_owned();
    for step in &stage.steps {
        let sources_error = |cause| CacheError::Sources {
            file: plan.file.clone(),
            position: step.position,
            keyword: step.kind.keyword(),
            cause,
            snippet: crate::dockerfile::snippet(&plan.lines, step.position),
        };
        let from_id = |reference: &str| match resolve_from(plan, stage.index, reference) {
            Ok(from) => other(&from),
            Err(_) => format!("unresolved {reference}"),
        };
        let mut sources = Vec::new();
        match &step.kind {
            InstructionKind::Copy(copy) if copy.from.is_some() => {
                sources.push(SourceInput::Other(from_id(copy.from.as_deref().unwrap_or_default())));
            }
            // What RUN sees through a bind mount is an input too: the context's files, or
            // another stage's or image's.
            InstructionKind::Run(run) => {
                for mount in run.mounts.iter().filter(|m| m.kind == MountKind::Bind) {
                    match &mount.from {
                        Some(reference) => sources.push(SourceInput::Other(from_id(reference))),
                        None => {
                            let source = mount.source.clone().unwrap_or_else(|| ".".to_owned());
                            let digest =
                                context.sources_digest(&[source], &[]).map_err(sources_error)?;
                            sources.push(SourceInput::Context(digest));
                        }
                    }
                }
            }
            kind => {
                if let Some(list) = context_sources(kind).filter(|l| !l.is_empty()) {
                    let digest =
                        context.sources_digest(&list, excludes(kind)).map_err(sources_error)?;
                    sources.push(SourceInput::Context(digest));
                }
            }
        }
        let key = step_key(&parent, step, &sources);
        parent.clone_from(&key);
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
