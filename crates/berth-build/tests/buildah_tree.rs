//! COPY and ADD (local files and archives) lay out the same file tree as `buildah bud`: paths, types, modes, owners, sizes,
//! link targets and contents (not mtimes) of a scratch image built only from COPY steps,
//! compared entry by entry with the layer tar buildah pushes. (Buildah 1.28 has no COPY
//! heredocs, so those are tested against Docker's rules in the unit tests only.)

use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use berth_build::context::Context;
use berth_build::copy::{
    plan_add, plan_copy, write_layer, Content, CopyOptions, LayerEntry, Times,
};
use berth_build::dockerfile::{parse, InstructionKind};
use berth_build::ignore::Ignore;
use berth_build::plan::{plan, PlanOptions};
use sha2::{Digest, Sha256};

const DOCKERFILE: &str = "\
FROM scratch
WORKDIR /srv
COPY a.txt /x/renamed
COPY src ./app/
COPY --chown=1000:1001 --chmod=640 b.txt a.txt /owned/
COPY *.txt /glob/
COPY . /all/
COPY --chown=7 src/pkg /deep/er/pkg
COPY --chmod=700 src/pkg /chmodded/
COPY --chown=5:6 src/run.sh /usr/local/bin/
ADD a.tar.gz /x/
COPY src/link.py /followed
COPY srclink /followed-dir/
ADD --chown=1:2 a.tar /y/
ADD a.tar /z.tar
ADD --chmod=600 a.tar b.txt /w/
";

/// path -> (type, mode, uid, gid, size, link target, content digest)
type Listing = BTreeMap<String, (char, u32, u64, u64, u64, String, String)>;

fn list_tar(bytes: &[u8], listing: &mut Listing) {
    let mut plain = Vec::new();
    let bytes = if bytes.starts_with(&[0x1f, 0x8b]) {
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut plain).unwrap();
        plain.as_slice()
    } else {
        bytes
    };
    let mut archive = tar::Archive::new(bytes);
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = entry.path().unwrap().display().to_string();
        let path = path.trim_start_matches("./").trim_end_matches('/').to_owned();
        if path.is_empty() {
            continue;
        }
        let header = entry.header().clone();
        let link = entry.link_name().unwrap().map(|l| l.display().to_string()).unwrap_or_default();
        let mut content = Vec::new();
        entry.read_to_end(&mut content).unwrap();
        let kind = header.entry_type().as_byte() as char;
        let kind = if kind == '\0' { '0' } else { kind };
        let digest =
            if kind == '0' { hex::encode(Sha256::digest(&content)) } else { String::new() };
        let mode = header.mode().unwrap() & 0o7777;
        let (uid, gid, size) =
            (header.uid().unwrap(), header.gid().unwrap(), header.size().unwrap());
        listing.insert(path, (kind, mode, uid, gid, size, link, digest));
    }
}

fn make_context(root: &Path) {
    for (path, content, mode) in [
        ("a.txt", "alpha\n", 0o600),
        ("b.txt", "bravo\n", 0o644),
        ("src/main.py", "print('hi')\n", 0o644),
        ("src/run.sh", "#!/bin/sh\n", 0o755),
        ("src/pkg/mod.py", "X = 1\n", 0o644),
        ("src/pkg/data/empty", "", 0o444),
    ] {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::fs::set_permissions(root.join("src/pkg"), std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::symlink("main.py", root.join("src/link.py")).unwrap();
    std::os::unix::fs::symlink("src", root.join("srclink")).unwrap();

    // An archive with its own owners and modes, for ADD.
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in [
        ("sub/", tar::EntryType::Directory, 0o750, &b""[..]),
        ("sub/f", tar::EntryType::Regular, 0o640, &b"hello"[..]),
        ("g", tar::EntryType::Regular, 0o604, &b"top"[..]),
    ] {
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_mode(mode);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_size(data.len() as u64);
        builder.append_data(&mut header, path, data).unwrap();
    }
    let bytes = builder.into_inner().unwrap();
    std::fs::write(root.join("a.tar"), &bytes).unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, &bytes).unwrap();
    std::fs::write(root.join("a.tar.gz"), gz.finish().unwrap()).unwrap();
}

fn buildah_listing(work: &Path, context: &Path, dockerfile: &Path) -> Listing {
    let storage = work.join("storage");
    let buildah = || {
        let mut cmd = Command::new("buildah");
        cmd.arg("--root").arg(storage.join("root")).arg("--runroot").arg(storage.join("run"));
        cmd.args(["--storage-driver", "vfs"]);
        cmd
    };
    let iid = work.join("iid");
    let out = buildah()
        .args(["bud", "--layers=false", "-q", "--iidfile"])
        .arg(&iid)
        .arg("-f")
        .arg(dockerfile)
        .arg(context)
        .output()
        .expect("buildah must be installed (scripts/setup-host installs it)");
    assert!(out.status.success(), "buildah bud: {}", String::from_utf8_lossy(&out.stderr));
    let id = std::fs::read_to_string(&iid).unwrap();
    let layout = work.join("layout");
    let out = buildah()
        .args(["push", "--disable-compression", "-q", id.trim()])
        .arg(format!("oci:{}", layout.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "buildah push: {}", String::from_utf8_lossy(&out.stderr));

    let blob = |digest: &str| {
        std::fs::read(layout.join("blobs/sha256").join(digest.trim_start_matches("sha256:")))
            .unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let mut listing = Listing::new();
    for layer in manifest["layers"].as_array().unwrap() {
        list_tar(&blob(layer["digest"].as_str().unwrap()), &mut listing);
    }
    listing
}

fn berth_listing(context: &Path) -> Listing {
    let dockerfile = parse("Dockerfile", DOCKERFILE).unwrap();
    let plan = plan(&dockerfile, &PlanOptions::default()).unwrap();
    let ctx = Context::read(context, &Ignore::load(context).unwrap(), 0).unwrap();
    let mut tree: BTreeMap<String, LayerEntry> = BTreeMap::new();
    let mut workdir: Option<String> = None;
    for step in &plan.stages[0].steps {
        match &step.kind {
            InstructionKind::Workdir(dir) => {
                // The executor makes the WORKDIR directory; here it is made by hand.
                let entry = LayerEntry {
                    content: Content::Dir,
                    mode: 0o755,
                    uid: 0,
                    gid: 0,
                    implied: false,
                    mtime: None,
                };
                tree.insert(dir.trim_start_matches('/').to_owned(), entry);
                workdir = Some(dir.clone());
            }
            kind @ (InstructionKind::Copy(_) | InstructionKind::Add(_)) => {
                let options = CopyOptions { workdir: workdir.clone() };
                let entries = if let InstructionKind::Copy(copy) = kind {
                    plan_copy(&ctx, copy, &options).unwrap()
                } else if let InstructionKind::Add(add) = kind {
                    plan_add(&ctx, add, &options).unwrap()
                } else {
                    panic!("matched COPY or ADD")
                };
                for (path, entry) in entries {
                    // A directory made for this step does not replace one already there.
                    if entry.implied && tree.contains_key(&path) {
                        continue;
                    }
                    tree.insert(path, entry);
                }
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    let (_, bytes) = write_layer(context, &tree, Times::Clamp(0), Vec::new()).unwrap();
    let mut listing = Listing::new();
    list_tar(&bytes, &mut listing);
    listing
}

#[test]
fn copy_trees_match_buildah() {
    let work = tempfile::tempdir().unwrap();
    let context = work.path().join("context");
    make_context(&context);
    let dockerfile = work.path().join("Dockerfile");
    std::fs::write(&dockerfile, DOCKERFILE).unwrap();

    let theirs = buildah_listing(work.path(), &context, &dockerfile);
    let ours = berth_listing(&context);
    let mut differences = Vec::new();
    let paths: std::collections::BTreeSet<&String> = theirs.keys().chain(ours.keys()).collect();
    for path in paths {
        let (a, b) = (ours.get(path), theirs.get(path));
        if a != b {
            differences.push(format!("{path}:\n  berth   {a:?}\n  buildah {b:?}"));
        }
    }
    assert!(
        differences.is_empty(),
        "{} differences:\n{}",
        differences.len(),
        differences.join("\n")
    );
}
