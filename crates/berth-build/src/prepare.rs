//! Everything a build knows before its first step runs, in one call: the Dockerfile found and
//! parsed, the plan expanded, the stage graph with the target's stages and their parallel
//! batches, the required secrets checked, the ignore file found and the context read and
//! hashed. Every usage error of a build comes out of here, before any work starts.

use std::path::{Path, PathBuf};

use crate::args::{BuildArgs, Platforms};
use crate::context::Context;
use crate::dockerfile::{parse_file, Dockerfile};
use crate::graph::Graph;
use crate::ignore::Ignore;
use crate::plan::{plan, BaseConfig, Plan, PlanOptions};
use crate::secrets::Secrets;
use crate::Error;

/// What the user asked for.
pub struct BuildRequest<'a> {
    /// The context directory.
    pub context: PathBuf,
    /// `-f`; without it `Containerfile`, then `Dockerfile`, in the context.
    pub dockerfile: Option<PathBuf>,
    /// `--ignorefile`.
    pub ignore_file: Option<PathBuf>,
    /// `--target`; without it the last stage.
    pub target: Option<String>,
    pub build_args: BuildArgs,
    pub platforms: Platforms,
    pub secrets: Secrets,
    /// The config of an external base image (pulled beforehand by the engine).
    pub base_config: &'a BaseConfig,
    /// Threads hashing the context; 0 for one per core.
    pub threads: usize,
}

/// The result of [`prepare`].
#[derive(Debug)]
pub struct Prepared {
    pub dockerfile_path: PathBuf,
    pub dockerfile: Dockerfile,
    pub plan: Plan,
    pub graph: Graph,
    pub target: usize,
    /// The stages the target needs, in index order; the others are skipped.
    pub needed: Vec<usize>,
    /// `needed` in batches that can build in parallel, each after the ones before it.
    pub batches: Vec<Vec<usize>>,
    pub ignore: Ignore,
    pub context: Context,
}

/// The Dockerfile of a build: `explicit` if given, else the context's `Containerfile`, else
/// its `Dockerfile` (Podman's order).
pub fn find_dockerfile(context: &Path, explicit: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = explicit {
        return Ok(path.to_owned());
    }
    ["Containerfile", "Dockerfile"]
        .iter()
        .map(|name| context.join(name))
        .find(|path| path.is_file())
        .ok_or_else(|| Error::NoDockerfile(context.to_owned()))
}

/// Parses, plans, graphs and reads the context of a build, in that order, so that a syntax
/// error is reported before the (possibly large) context is read.
pub fn prepare(request: &BuildRequest<'_>) -> Result<Prepared, Error> {
    let dockerfile_path = find_dockerfile(&request.context, request.dockerfile.as_deref())?;
    let dockerfile = parse_file(&dockerfile_path)?;

    let options = PlanOptions {
        build_args: request.build_args.clone(),
        platforms: request.platforms.clone(),
        base_config: request.base_config,
    };
    let plan = plan(&dockerfile, &options)?;

    let graph = Graph::new(&plan)?;
    let target = graph.target(request.target.as_deref())?;
    let needed = graph.needed(target);
    let batches = graph.batches(target);
    request.secrets.check(&plan, &needed)?;

    let ignore =
        Ignore::discover(&request.context, Some(&dockerfile_path), request.ignore_file.as_deref())?;
    let context = Context::read(&request.context, &ignore, request.threads)?;
    tracing::debug!(
        dockerfile = %dockerfile_path.display(),
        stages = plan.stages.len(),
        target,
        needed = needed.len(),
        entries = context.entries.len(),
        "build prepared"
    );
    Ok(Prepared {
        dockerfile_path,
        dockerfile,
        plan,
        graph,
        target,
        needed,
        batches,
        ignore,
        context,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(context: &Path) -> BuildRequest<'static> {
        BuildRequest {
            context: context.to_owned(),
            dockerfile: None,
            ignore_file: None,
            target: None,
            build_args: BuildArgs::new(),
            platforms: Platforms::default(),
            secrets: Secrets::default(),
            base_config: &|_| None,
            threads: 1,
        }
    }

    #[test]
    fn containerfile_first_then_dockerfile() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(find_dockerfile(dir.path(), None), Err(Error::NoDockerfile(_))));
        std::fs::write(dir.path().join("Dockerfile"), "FROM scratch\n").unwrap();
        assert_eq!(find_dockerfile(dir.path(), None).unwrap(), dir.path().join("Dockerfile"));
        std::fs::write(dir.path().join("Containerfile"), "FROM scratch\n").unwrap();
        assert_eq!(find_dockerfile(dir.path(), None).unwrap(), dir.path().join("Containerfile"));
    }

    #[test]
    fn prepares_a_multi_stage_build() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(
            root.join("Containerfile"),
            "FROM busybox:latest AS build\nCOPY main.c .\nRUN cc main.c\nFROM busybox:latest AS docs\nFROM scratch\nCOPY --from=build /a.out /app\n",
        )
        .unwrap();
        std::fs::write(root.join("main.c"), "int main(){}").unwrap();
        std::fs::write(root.join("notes.tmp"), "x").unwrap();
        std::fs::write(root.join(".containerignore"), "*.tmp\n").unwrap();
        let prepared = prepare(&request(root)).unwrap();
        assert_eq!(prepared.target, 2);
        assert_eq!(prepared.needed, [0, 2]);
        assert_eq!(prepared.batches, vec![vec![0], vec![2]]);
        assert!(prepared.context.entries.contains_key("main.c"));
        assert!(!prepared.context.entries.contains_key("notes.tmp"));

        let mut build_only = request(root);
        build_only.target = Some("build".into());
        assert_eq!(prepare(&build_only).unwrap().needed, [0]);
    }

    #[test]
    fn errors_come_from_every_phase() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        let file = root.join("Dockerfile");
        let error = |text: &str| {
            std::fs::write(&file, text).unwrap();
            prepare(&request(root)).unwrap_err()
        };
        assert!(matches!(error("FROM\n"), Error::Parse(_)));
        assert!(matches!(error("FROM a\nUSER ${U:?}\n"), Error::Plan(_)));
        assert!(matches!(error("FROM a\nCOPY --from=nope /x /x\n"), Error::Graph(_)));
        assert!(matches!(
            error("FROM a\nRUN --mount=type=secret,id=s,required make\n"),
            Error::Secret(_)
        ));
        let mut with_target = request(root);
        with_target.target = Some("missing".into());
        std::fs::write(&file, "FROM a\n").unwrap();
        assert!(matches!(prepare(&with_target), Err(Error::Graph(_))));
    }
}
