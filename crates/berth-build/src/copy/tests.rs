use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::dockerfile::{parse, InstructionKind};
use crate::ignore::Ignore;
use crate::plan::{plan, PlanOptions};

fn context() -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for (path, content) in
        [("a.txt", "a"), ("b.txt", "bb"), ("src/main.py", "print()"), ("src/pkg/mod.py", "x")]
    {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
    std::fs::set_permissions(root.join("a.txt"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::symlink("main.py", root.join("src/link.py")).unwrap();
    let ctx = Context::read(root, &Ignore::default(), 1).unwrap();
    (dir, ctx)
}

fn copy_of(line: &str) -> Copy {
    let text = format!("FROM scratch\n{line}\n");
    let p = plan(&parse("Dockerfile", &text).unwrap(), &PlanOptions::default()).unwrap();
    match &p.stages[0].steps[0].kind {
        InstructionKind::Copy(copy) => copy.clone(),
        other => panic!("{other:?}"),
    }
}

fn layout(ctx: &Context, line: &str, workdir: Option<&str>) -> Vec<(String, u32, u32)> {
    let options = CopyOptions { workdir: workdir.map(str::to_owned) };
    plan_copy(ctx, &copy_of(line), &options)
        .unwrap()
        .into_iter()
        .map(|(path, e)| (path, e.mode, e.uid))
        .collect()
}

#[test]
fn a_file_to_a_file_and_into_a_directory() {
    let (_dir, ctx) = context();
    assert_eq!(
        layout(&ctx, "COPY a.txt /x/renamed", None),
        [("x".into(), 0o755, 0), ("x/renamed".into(), 0o600, 0)]
    );
    assert_eq!(
        layout(&ctx, "COPY a.txt /x/", None),
        [("x".into(), 0o755, 0), ("x/a.txt".into(), 0o600, 0)]
    );
}

#[test]
fn a_directory_copies_its_contents() {
    let (_dir, ctx) = context();
    let paths: Vec<String> =
        layout(&ctx, "COPY src /app", None).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(paths, ["app", "app/link.py", "app/main.py", "app/pkg", "app/pkg/mod.py"]);
}

#[test]
fn relative_destinations_use_the_workdir() {
    let (_dir, ctx) = context();
    let paths: Vec<String> =
        layout(&ctx, "COPY b.txt .", Some("/srv/app")).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(paths, ["srv", "srv/app", "srv/app/b.txt"]);
}

#[test]
fn several_sources_need_a_directory() {
    let (_dir, ctx) = context();
    let err =
        plan_copy(&ctx, &copy_of("COPY a.txt b.txt /dest"), &CopyOptions::default()).unwrap_err();
    assert!(matches!(err, CopyError::DestinationNotDirectory { .. }));
    let err = plan_copy(&ctx, &copy_of("COPY *.txt /dest"), &CopyOptions::default()).unwrap_err();
    assert!(
        matches!(err, CopyError::DestinationNotDirectory { .. }),
        "a wildcard with two matches"
    );
    let paths: Vec<String> =
        layout(&ctx, "COPY *.txt /dest/", None).into_iter().map(|(p, _, _)| p).collect();
    assert_eq!(paths, ["dest", "dest/a.txt", "dest/b.txt"]);
}

#[test]
fn chown_and_chmod() {
    let (_dir, ctx) = context();
    // The directory made for the copy is owned by the --chown ids too, as in Buildah.
    let got = layout(&ctx, "COPY --chown=1000:1001 --chmod=640 src/main.py a.txt /o/", None);
    assert_eq!(
        got,
        [
            ("o".into(), 0o755, 1000),
            ("o/a.txt".into(), 0o640, 1000),
            ("o/main.py".into(), 0o640, 1000)
        ]
    );
    let plan =
        plan_copy(&ctx, &copy_of("COPY --chown=7 a.txt /a"), &CopyOptions::default()).unwrap();
    assert_eq!((plan["a"].uid, plan["a"].gid), (7, 7));
    assert!(matches!(
        plan_copy(&ctx, &copy_of("COPY --chown=app a.txt /a"), &CopyOptions::default()),
        Err(CopyError::ChownName(_))
    ));
    assert!(matches!(
        plan_copy(&ctx, &copy_of("COPY --chmod=u+x a.txt /a"), &CopyOptions::default()),
        Err(CopyError::Chmod(_))
    ));
}

#[test]
fn heredoc_sources() {
    let (_dir, ctx) = context();
    let text = "FROM scratch\nCOPY --chmod=755 <<EOF /bin/hello\n#!/bin/sh\nEOF\n";
    let p = plan(&parse("Dockerfile", text).unwrap(), &PlanOptions::default()).unwrap();
    let InstructionKind::Copy(copy) = &p.stages[0].steps[0].kind else { panic!() };
    let entries = plan_copy(&ctx, copy, &CopyOptions::default()).unwrap();
    assert_eq!(entries["bin/hello"].content, Content::Inline(b"#!/bin/sh\n".to_vec()));
    assert_eq!(entries["bin/hello"].mode, 0o755);
}

#[test]
fn the_layer_tar_lists_what_was_planned_and_is_reproducible() {
    let (dir, ctx) = context();
    let entries = plan_copy(&ctx, &copy_of("COPY src /app"), &CopyOptions::default()).unwrap();
    let (digest, bytes) = write_layer(dir.path(), &entries, 0, Vec::new()).unwrap();
    let (again, _) = write_layer(dir.path(), &entries, 0, Vec::new()).unwrap();
    assert_eq!(digest, again);
    assert_eq!(digest, format!("sha256:{}", hex::encode(Sha256::digest(&bytes))));
    let mut archive = tar::Archive::new(bytes.as_slice());
    let mut listed = Vec::new();
    for entry in archive.entries().unwrap() {
        let entry = entry.unwrap();
        let header = entry.header();
        listed.push((
            entry.path().unwrap().display().to_string(),
            header.entry_type().as_byte() as char,
            header.mtime().unwrap(),
        ));
    }
    assert_eq!(
        listed,
        [
            ("app/".into(), '5', 0),
            ("app/link.py".into(), '2', 0),
            ("app/main.py".into(), '0', 0),
            ("app/pkg/".into(), '5', 0),
            ("app/pkg/mod.py".into(), '0', 0),
        ]
    );
}

#[test]
fn a_file_changed_since_the_context_was_read_fails() {
    let (dir, ctx) = context();
    let entries = plan_copy(&ctx, &copy_of("COPY a.txt /a"), &CopyOptions::default()).unwrap();
    std::fs::write(dir.path().join("a.txt"), "b").unwrap();
    let err = write_layer(dir.path(), &entries, 0, Vec::new()).unwrap_err();
    assert!(matches!(err, CopyError::Changed { .. }), "{err}");
}
