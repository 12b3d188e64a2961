use std::path::Path;
use std::time::{Duration, SystemTime};

use super::*;
use crate::args::BuildArgs;
use crate::dockerfile::parse;
use crate::ignore::Ignore;
use crate::plan::{plan, PlanOptions};

const APP: &str = "\
FROM busybox:latest
ARG PIP_INDEX=https://pypi.org/simple
RUN adduser -D -u 1000 app
WORKDIR /app
COPY requirements.txt .
RUN pip install --index-url $PIP_INDEX -r requirements.txt
COPY --chown=app:app src/ ./src/
USER app
EXPOSE 8000
ENTRYPOINT [\"python\", \"-m\", \"src.app\"]
";

fn context(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (path, content) in files {
        let full = dir.path().join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    dir
}

fn keys(text: &str, root: &Path, args: BuildArgs) -> Vec<String> {
    let p = plan(
        &parse("Dockerfile", text).unwrap(),
        &PlanOptions { build_args: args, ..PlanOptions::default() },
    )
    .unwrap();
    let ctx = Context::read(root, &Ignore::load(root).unwrap(), 0).unwrap();
    let other = |from: &FromRef| format!("{from:?}");
    stage_keys(&p, p.stages.last().unwrap(), "sha256:base", &ctx, &other).unwrap()
}

const FILES: &[(&str, &str)] =
    &[("requirements.txt", "flask==3.0\n"), ("src/app.py", "print('v1')\n"), ("README.md", "docs")];

/// Indices of APP's steps: 0 ARG, 1 RUN adduser, 2 WORKDIR, 3 COPY requirements, 4 RUN pip,
/// 5 COPY src, 6 USER, 7 EXPOSE, 8 ENTRYPOINT.
fn changed(a: &[String], b: &[String]) -> Vec<usize> {
    a.iter().zip(b).enumerate().filter(|(_, (x, y))| x != y).map(|(i, _)| i).collect()
}

#[test]
fn a_rebuild_without_change_has_the_same_keys() {
    let dir = context(FILES);
    let first = keys(APP, dir.path(), BuildArgs::new());
    assert_eq!(first.len(), 9);
    assert_eq!(first, keys(APP, dir.path(), BuildArgs::new()));
    let unique: std::collections::BTreeSet<_> = first.iter().collect();
    assert_eq!(unique.len(), first.len(), "every step has its own key");
}

#[test]
fn a_source_only_change_changes_only_the_copy_of_source_and_later() {
    let dir = context(FILES);
    let before = keys(APP, dir.path(), BuildArgs::new());
    std::fs::write(dir.path().join("src/app.py"), "print('v2')\n").unwrap();
    let after = keys(APP, dir.path(), BuildArgs::new());
    assert_eq!(changed(&before, &after), [5, 6, 7, 8]);
}

#[test]
fn a_dependency_change_rebuilds_from_its_copy() {
    let dir = context(FILES);
    let before = keys(APP, dir.path(), BuildArgs::new());
    std::fs::write(dir.path().join("requirements.txt"), "flask==3.1\n").unwrap();
    assert_eq!(changed(&before, &keys(APP, dir.path(), BuildArgs::new())), [3, 4, 5, 6, 7, 8]);
}

#[test]
fn mtimes_and_files_nobody_copies_do_not_matter() {
    let dir = context(FILES);
    let before = keys(APP, dir.path(), BuildArgs::new());
    let file = std::fs::File::options().write(true).open(dir.path().join("src/app.py")).unwrap();
    file.set_modified(SystemTime::now() - Duration::from_secs(86400)).unwrap();
    drop(file);
    std::fs::write(dir.path().join("README.md"), "other docs").unwrap();
    assert_eq!(before, keys(APP, dir.path(), BuildArgs::new()));
}

#[test]
fn an_ignored_file_change_does_not_matter() {
    let dir = context(&[
        ("requirements.txt", "x"),
        ("src/app.py", "a"),
        ("src/cache.pyc", "1"),
        (".dockerignore", "**/*.pyc\n"),
    ]);
    let before = keys(APP, dir.path(), BuildArgs::new());
    std::fs::write(dir.path().join("src/cache.pyc"), "2").unwrap();
    assert_eq!(before, keys(APP, dir.path(), BuildArgs::new()));
}

#[test]
fn a_build_arg_change_rebuilds_from_its_first_use() {
    let dir = context(FILES);
    let before = keys(APP, dir.path(), BuildArgs::new());
    let after = keys(APP, dir.path(), BuildArgs::new().with("PIP_INDEX", "http://mirror/simple"));
    // ARG itself is no use; the RUN after it has it in its environment.
    assert_eq!(changed(&before, &after), [1, 2, 3, 4, 5, 6, 7, 8]);
    let text = APP
        .replace("ARG PIP_INDEX=https://pypi.org/simple\n", "")
        .replace("RUN pip install", "ARG PIP_INDEX=https://pypi.org/simple\nRUN pip install");
    let before = keys(&text, dir.path(), BuildArgs::new());
    let after = keys(&text, dir.path(), BuildArgs::new().with("PIP_INDEX", "http://mirror/simple"));
    assert_eq!(changed(&before, &after), [4, 5, 6, 7, 8], "steps before the ARG keep their keys");
}

#[test]
fn copy_from_a_stage_is_keyed_by_that_stage() {
    let dir = context(FILES);
    let text =
        "FROM busybox:latest AS build\nRUN make\nFROM scratch\nCOPY --from=build /out /app\n";
    let p = plan(&parse("Dockerfile", text).unwrap(), &PlanOptions::default()).unwrap();
    let ctx = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let v1 = stage_keys(&p, &p.stages[1], "scratch", &ctx, &|_| "sha256:one".into()).unwrap();
    let v2 = stage_keys(&p, &p.stages[1], "scratch", &ctx, &|_| "sha256:two".into()).unwrap();
    assert_ne!(v1, v2);
}

#[test]
fn the_parent_is_part_of_the_key() {
    let dir = context(FILES);
    let p = plan(&parse("Dockerfile", APP).unwrap(), &PlanOptions::default()).unwrap();
    let ctx = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let a = stage_keys(&p, &p.stages[0], "sha256:base-a", &ctx, &|_| String::new()).unwrap();
    let b = stage_keys(&p, &p.stages[0], "sha256:base-b", &ctx, &|_| String::new()).unwrap();
    assert!(a.iter().zip(&b).all(|(x, y)| x != y));
}

#[test]
fn a_missing_source_is_an_error_with_position() {
    let dir = context(&[("requirements.txt", "x")]);
    let p = plan(&parse("Dockerfile", APP).unwrap(), &PlanOptions::default()).unwrap();
    let ctx = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let err = stage_keys(&p, &p.stages[0], "b", &ctx, &|_| String::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:7:1: COPY: \"src/\" not found in the build context (or left out by the ignore file)\n \
         7 | COPY --chown=app:app src/ ./src/\n   | ^"
    );
}

#[test]
fn heredoc_bodies_and_urls_are_not_context_sources() {
    let d = parse(
        "Dockerfile",
        "FROM a:1\nCOPY <<EOF x /d/\nbody\nEOF\nADD https://e.org/f.tgz y /o/\n",
    )
    .unwrap();
    let p = plan(&d, &PlanOptions::default()).unwrap();
    assert_eq!(context_sources(&p.stages[0].steps[0].kind), Some(vec!["x".to_owned()]));
    assert_eq!(context_sources(&p.stages[0].steps[1].kind), Some(vec!["y".to_owned()]));
}

#[test]
fn a_run_bind_mount_of_the_context_is_keyed_by_what_it_shows() {
    let dir = context(FILES);
    let text = "FROM busybox:latest\nRUN --mount=type=bind,source=src,target=/src make -C /src\nRUN --mount=type=cache,target=/c true\n";
    let before = keys(text, dir.path(), BuildArgs::new());
    std::fs::write(dir.path().join("README.md"), "not mounted").unwrap();
    assert_eq!(keys(text, dir.path(), BuildArgs::new()), before);
    std::fs::write(dir.path().join("src/app.py"), "print('v2')\n").unwrap();
    assert_eq!(changed(&before, &keys(text, dir.path(), BuildArgs::new())), [0, 1]);
}
