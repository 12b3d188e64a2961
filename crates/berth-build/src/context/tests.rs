use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, SystemTime};

use super::*;

fn write(root: &Path, rel: &str, content: &str) {
    let path = root.join(rel);
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn sample() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(root, "requirements.txt", "flask==3\n");
    write(root, "src/app.py", "print('hi')\n");
    write(root, "src/util/helpers.py", "X = 1\n");
    write(root, "src/build/out.o", "obj");
    write(root, "debug.log", "noise");
    write(root, "sub/x.log", "kept");
    write(root, "node_modules/a/index.js", "a");
    write(root, "node_modules/keep/index.js", "keep");
    std::os::unix::fs::symlink("app.py", root.join("src/link.py")).unwrap();
    dir
}

fn read(root: &Path, ignore: &str) -> Context {
    Context::read(root, &Ignore::parse(".dockerignore", ignore).unwrap(), 0).unwrap()
}

#[test]
fn walks_everything_with_kinds_and_digests() {
    let dir = sample();
    let ctx = read(dir.path(), "");
    let entry = &ctx.entries["requirements.txt"];
    assert_eq!(entry.kind, EntryKind::File);
    assert_eq!(entry.size, 9);
    assert_eq!(
        entry.content.as_deref(),
        Some(format!("sha256:{}", hex::encode(Sha256::digest(b"flask==3\n"))).as_str())
    );
    assert_eq!(ctx.entries["src"].kind, EntryKind::Dir);
    assert_eq!(ctx.entries["src/link.py"].kind, EntryKind::Symlink { target: "app.py".into() });
    assert!(ctx.entries["src"].content.is_none());
}

#[test]
fn ignore_file_leaves_paths_out_but_exceptions_are_walked() {
    let dir = sample();
    let ctx = read(dir.path(), "*.log\nsrc/build\nnode_modules\n!node_modules/keep\n");
    assert!(!ctx.entries.contains_key("debug.log"));
    assert!(ctx.entries.contains_key("sub/x.log"), "*.log is for the top level only");
    assert!(!ctx.entries.contains_key("src/build"));
    assert!(!ctx.entries.contains_key("src/build/out.o"));
    assert!(!ctx.entries.contains_key("node_modules/a/index.js"));
    assert!(ctx.entries.contains_key("node_modules/keep/index.js"));
    assert!(!ctx.entries.contains_key("node_modules"), "the excluded directory itself stays out");
}

#[test]
fn one_thread_and_many_give_the_same_context() {
    let dir = sample();
    for i in 0..40 {
        write(dir.path(), &format!("many/f{i}"), &"x".repeat(i * 1000));
    }
    let one = Context::read(dir.path(), &Ignore::default(), 1).unwrap();
    let four = Context::read(dir.path(), &Ignore::default(), 4).unwrap();
    assert_eq!(one, four);
    assert!(four
        .entries
        .values()
        .filter(|e| e.kind == EntryKind::File)
        .all(|e| e.content.is_some()));
}

#[test]
fn resolve_sources() {
    let dir = sample();
    let ctx = read(dir.path(), "");
    assert_eq!(ctx.resolve("requirements.txt").unwrap(), ["requirements.txt"]);
    assert_eq!(ctx.resolve("./src/util").unwrap(), ["src/util", "src/util/helpers.py"]);
    assert_eq!(ctx.resolve("/src/*.py").unwrap(), ["src/app.py", "src/link.py"]);
    assert_eq!(ctx.resolve(".").unwrap().len(), ctx.entries.len());
    assert!(matches!(ctx.resolve("nope.txt"), Err(ContextError::MissingSource { .. })));
    assert!(matches!(ctx.resolve("../etc/passwd"), Err(ContextError::Outside { .. })));
    assert!(matches!(ctx.resolve("src/[x"), Err(ContextError::BadPattern { .. })));
    // A sibling whose name shares the prefix is not "below".
    write(dir.path(), "src-old/a", "a");
    let ctx = read(dir.path(), "");
    assert!(!ctx.resolve("src").unwrap().contains(&"src-old/a"));
}

#[test]
fn digest_follows_content_mode_and_owner_but_not_mtime() {
    let dir = sample();
    let root = dir.path();
    let sources = vec!["src".to_owned()];
    let before = read(root, "").sources_digest(&sources, &[]).unwrap();
    let deps = read(root, "").sources_digest(&["requirements.txt".to_owned()], &[]).unwrap();

    // Same content, new mtime: same digest.
    let file = fs::File::options().write(true).open(root.join("src/app.py")).unwrap();
    file.set_modified(SystemTime::now() + Duration::from_secs(3600)).unwrap();
    drop(file);
    assert_eq!(read(root, "").sources_digest(&sources, &[]).unwrap(), before);

    // New content: new digest for src, none for requirements.txt.
    write(root, "src/app.py", "print('changed')\n");
    let changed = read(root, "");
    let after_content = changed.sources_digest(&sources, &[]).unwrap();
    assert_ne!(after_content, before);
    assert_eq!(changed.sources_digest(&["requirements.txt".to_owned()], &[]).unwrap(), deps);

    // Mode only.
    fs::set_permissions(root.join("src/app.py"), fs::Permissions::from_mode(0o755)).unwrap();
    let after_mode = read(root, "").sources_digest(&sources, &[]).unwrap();
    assert_ne!(after_mode, after_content);

    // Owner only, where this process may change it.
    let is_root = fs::metadata(root.join("src/app.py")).unwrap().uid() == 0;
    if is_root {
        std::os::unix::fs::chown(root.join("src/app.py"), Some(1000), Some(1000)).unwrap();
        assert_ne!(read(root, "").sources_digest(&sources, &[]).unwrap(), after_mode);
    }
}

#[test]
fn an_ignored_source_is_missing() {
    let dir = sample();
    let ctx = read(dir.path(), "debug.log\n");
    let err = ctx.sources_digest(&["debug.log".to_owned()], &[]).unwrap_err();
    assert_eq!(
        err.to_string(),
        "\"debug.log\" not found in the build context (or left out by the ignore file)"
    );
}

#[test]
fn excluded_paths_do_not_count() {
    let dir = sample();
    let sources = vec!["src".to_owned()];
    let excludes = vec!["src/util".to_owned()];
    let before = read(dir.path(), "").sources_digest(&sources, &excludes).unwrap();
    write(dir.path(), "src/util/helpers.py", "X = 2\n");
    assert_eq!(read(dir.path(), "").sources_digest(&sources, &excludes).unwrap(), before);
    write(dir.path(), "src/app.py", "changed");
    assert_ne!(read(dir.path(), "").sources_digest(&sources, &excludes).unwrap(), before);
    let err = read(dir.path(), "").sources_digest(&sources, &["[".to_owned()]).unwrap_err();
    assert!(matches!(err, ContextError::BadPattern { .. }));
}

#[test]
fn a_symlink_source_is_keyed_by_what_it_points_at() {
    let dir = sample();
    let root = dir.path();
    std::os::unix::fs::symlink("requirements.txt", root.join("reqs")).unwrap();
    let sources = vec!["reqs".to_owned()];
    let before = read(root, "").sources_digest(&sources, &[]).unwrap();
    write(root, "requirements.txt", "flask==3.1\n");
    assert_ne!(read(root, "").sources_digest(&sources, &[]).unwrap(), before);
    assert_eq!(read(root, "").follow("reqs").unwrap(), "requirements.txt");
    assert_eq!(read(root, "").follow("src/link.py").unwrap(), "src/app.py");
    std::os::unix::fs::symlink("loop", root.join("loop")).unwrap();
    assert!(read(root, "").follow("loop").is_err());
}
