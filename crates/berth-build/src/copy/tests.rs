use std::os::unix::fs::PermissionsExt;

use super::*;
use crate::context::ContextError;
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
    let (digest, bytes) = write_layer(dir.path(), &entries, Times::Clamp(0), Vec::new()).unwrap();
    let (again, _) = write_layer(dir.path(), &entries, Times::Clamp(0), Vec::new()).unwrap();
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
    let err = write_layer(dir.path(), &entries, Times::Clamp(0), Vec::new()).unwrap_err();
    assert!(matches!(err, CopyError::Changed { .. }), "{err}");
}

fn add_of(line: &str) -> crate::dockerfile::Add {
    let text = format!("FROM scratch\n{line}\n");
    let p = plan(&parse("Dockerfile", &text).unwrap(), &PlanOptions::default()).unwrap();
    match &p.stages[0].steps[0].kind {
        InstructionKind::Add(add) => add.clone(),
        other => panic!("{other:?}"),
    }
}

/// A context holding `a.tar`, `a.tar.gz` (a file, a directory, a symlink and a hard link,
/// owned 1234:5678) and a plain `notes.txt`.
fn archive_context() -> (tempfile::TempDir, Context) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut builder = tar::Builder::new(Vec::new());
    let mut add = |path: &str, kind: tar::EntryType, mode: u32, data: &[u8], link: Option<&str>| {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_size(data.len() as u64);
        match link {
            Some(target) => builder.append_link(&mut header, path, target).unwrap(),
            None => builder.append_data(&mut header, path, data).unwrap(),
        }
    };
    add("sub/", tar::EntryType::Directory, 0o750, b"", None);
    add("sub/f", tar::EntryType::Regular, 0o640, b"hello", None);
    add("sub/l", tar::EntryType::Symlink, 0o777, b"", Some("f"));
    add("sub/h", tar::EntryType::Link, 0o640, b"", Some("sub/f"));
    let bytes = builder.into_inner().unwrap();
    std::fs::write(root.join("a.tar"), &bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    std::fs::write(root.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
    std::fs::write(root.join("notes.txt"), "n").unwrap();
    std::fs::write(root.join("fake.tar.bz2"), b"BZh91AY&SY").unwrap();
    let ctx = Context::read(root, &Ignore::default(), 1).unwrap();
    (dir, ctx)
}

#[test]
fn add_extracts_archives_keeping_their_owners() {
    let (_dir, ctx) = archive_context();
    for source in ["a.tar", "a.tar.gz"] {
        let entries = plan_add(
            &ctx,
            &add_of(&format!("ADD --chown=1:2 {source} /x")),
            &CopyOptions::default(),
        )
        .unwrap();
        let got: Vec<(&str, u32, u32)> =
            entries.iter().map(|(p, e)| (p.as_str(), e.mode, e.uid)).collect();
        assert_eq!(
            got,
            [
                ("x", 0o755, 1),
                ("x/sub", 0o750, 1234),
                ("x/sub/f", 0o640, 1234),
                ("x/sub/h", 0o640, 1234),
                ("x/sub/l", 0o777, 1234)
            ],
            "{source}"
        );
        assert_eq!(entries["x/sub/f"].content, Content::Inline(b"hello".to_vec()));
        assert_eq!(entries["x/sub/h"].content, Content::Hardlink("x/sub/f".into()));
        assert_eq!(entries["x/sub/l"].content, Content::Symlink("f".into()));
    }
}

#[test]
fn add_copies_other_files_like_copy() {
    let (_dir, ctx) = archive_context();
    let entries =
        plan_add(&ctx, &add_of("ADD --chmod=600 notes.txt a.tar /d/"), &CopyOptions::default())
            .unwrap();
    assert_eq!(entries["d/notes.txt"].mode, 0o600);
    assert!(entries.contains_key("d/sub/f"));
    let err =
        plan_add(&ctx, &add_of("ADD notes.txt a.tar /d"), &CopyOptions::default()).unwrap_err();
    assert!(matches!(err, CopyError::DestinationNotDirectory { .. }));
}

#[test]
fn add_refusals() {
    let (_dir, ctx) = archive_context();
    let refuse = |line: &str| {
        plan_add(&ctx, &add_of(line), &CopyOptions::default()).unwrap_err().to_string()
    };
    assert_eq!(
        refuse("ADD https://example.invalid/x.tgz /x"),
        "ADD from \"https://example.invalid/x.tgz\": sources on the network are not supported yet"
    );
    assert!(refuse("ADD --checksum=sha256:00 notes.txt /x").contains("only for URL sources"));
    assert!(refuse("ADD fake.tar.bz2 /x").contains("bzip2 archives are not supported yet"));
}

#[test]
fn an_archive_escaping_its_destination_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut builder = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(tar::EntryType::Regular);
    header.set_size(1);
    header.set_mode(0o644);
    // The tar crate refuses ".." in paths it writes, so the name goes straight into the header.
    header.as_gnu_mut().unwrap().name[..9].copy_from_slice(b"../escape");
    header.set_cksum();
    builder.append(&header, &b"x"[..]).unwrap();
    std::fs::write(dir.path().join("evil.tar"), builder.into_inner().unwrap()).unwrap();
    let ctx = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let err = plan_add(&ctx, &add_of("ADD evil.tar /x/"), &CopyOptions::default()).unwrap_err();
    assert!(
        matches!(err, CopyError::ArchiveEntry { reason: "leaves the destination", .. }),
        "{err}"
    );
}

#[test]
fn a_symlink_source_is_followed_links_below_are_kept() {
    let (dir, _) = context();
    let root = dir.path();
    std::os::unix::fs::symlink("a.txt", root.join("alias.txt")).unwrap();
    std::os::unix::fs::symlink("src", root.join("srclink")).unwrap();
    std::os::unix::fs::symlink("/b.txt", root.join("absolute")).unwrap();
    std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
    let ctx = Context::read(root, &Ignore::default(), 1).unwrap();
    let plan = |line: &str| plan_copy(&ctx, &copy_of(line), &CopyOptions::default());
    let one = plan("COPY alias.txt /one").unwrap();
    assert!(matches!(&one["one"].content, Content::File { source, .. } if source == "a.txt"));
    let named = plan("COPY alias.txt /d/").unwrap();
    assert!(named.contains_key("d/alias.txt"), "the link's name, the target's content");
    let tree = plan("COPY srclink /t/").unwrap();
    assert!(tree.contains_key("t/main.py"));
    assert_eq!(tree["t/link.py"].content, Content::Symlink("main.py".into()));
    let abs = plan("COPY absolute /abs").unwrap();
    assert!(matches!(&abs["abs"].content, Content::File { source, .. } if source == "b.txt"));
    assert!(matches!(plan("COPY escape /x"), Err(CopyError::Source(ContextError::Outside { .. }))));
}

#[test]
fn special_files_and_from_are_refused() {
    let (dir, _) = context();
    let status =
        std::process::Command::new("mkfifo").arg(dir.path().join("pipe")).status().unwrap();
    assert!(status.success());
    let ctx = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let err = plan_copy(&ctx, &copy_of("COPY pipe /p"), &CopyOptions::default()).unwrap_err();
    assert!(matches!(err, CopyError::Special { .. }), "{err}");
    let err =
        plan_copy(&ctx, &copy_of("COPY --from=build /a /b"), &CopyOptions::default()).unwrap_err();
    assert!(matches!(err, CopyError::FromStage(_)), "{err}");
}

#[test]
fn mtimes_are_preserved_or_clamped() {
    let (dir, ctx) = context();
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_000_000);
    std::fs::File::options()
        .write(true)
        .open(dir.path().join("a.txt"))
        .unwrap()
        .set_modified(old)
        .unwrap();
    let ctx_old = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    drop(ctx);
    let entries =
        plan_copy(&ctx_old, &copy_of("COPY a.txt b.txt /d/"), &CopyOptions::default()).unwrap();
    let times = |t: Times| -> Vec<(String, u64)> {
        let (_, bytes) = write_layer(dir.path(), &entries, t, Vec::new()).unwrap();
        let mut archive = tar::Archive::new(bytes.as_slice());
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (e.path().unwrap().display().to_string(), e.header().mtime().unwrap())
            })
            .collect()
    };
    let preserved = times(Times::Preserve { now: 5_000_000_000 });
    assert_eq!(preserved[0], ("d/".into(), 5_000_000_000), "a made directory gets now");
    assert_eq!(preserved[1], ("d/a.txt".into(), 1_000_000));
    assert!(preserved[2].1 > 1_000_000 && preserved[2].1 < 5_000_000_000, "b.txt keeps its own");
    let clamped = times(Times::Clamp(2_000_000));
    assert_eq!(
        clamped,
        [("d/".into(), 2_000_000), ("d/a.txt".into(), 1_000_000), ("d/b.txt".into(), 2_000_000)]
    );
}

#[test]
fn excludes_leave_paths_out_and_parents_is_refused() {
    let (_dir, ctx) = context();
    let paths: Vec<String> =
        layout(&ctx, "COPY --exclude=src/pkg --exclude=**/*.txt . /app/", None)
            .into_iter()
            .map(|(p, _, _)| p)
            .collect();
    assert_eq!(paths, ["app", "app/src", "app/src/link.py", "app/src/main.py"]);
    let err =
        plan_copy(&ctx, &copy_of("COPY --parents src/main.py /app/"), &CopyOptions::default())
            .unwrap_err();
    assert!(matches!(err, CopyError::Parents), "{err}");
}
