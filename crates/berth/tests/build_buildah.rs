//! `berth build` against `buildah bud` at the command line, per instruction: the Dockerfiles
//! in tests/build-suite (FROM/AS, RUN in both forms, CMD, LABEL, EXPOSE, ENV in both forms,
//! ADD of files and tar archives, COPY --from --chown --chmod, ENTRYPOINT, VOLUME, USER,
//! WORKDIR, ARG global and per stage, ONBUILD, STOPSIGNAL, HEALTHCHECK, SHELL) are built by
//! both on the same context and the same busybox base, loaded into each, and the final images
//! compared: the file tree the layers stack up to (paths, types, modes, owners, link targets,
//! contents; not times), the config fields a container uses, and the history's length and
//! empty_layer flags.
//!
//! Both build `--format docker` (an OCI config has no Healthcheck). buildah runs with
//! `--layers` (a layer per instruction, as Docker), a throwaway --root and --runroot on the
//! vfs driver and chroot isolation, so it needs no daemon, runtime configuration or network. Where buildah 1.28 differs from
//! Docker's documented rule, berth follows Docker and the difference is asserted explicitly.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use berth_testkit::cli::Berth;
use berth_testkit::image_tree::{read_layout, Listing, SavedImage};
use serde_json::Value;

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/build-suite")
}

/// The config fields compared, as the image config names them.
const FIELDS: [&str; 10] = [
    "Env",
    "Entrypoint",
    "Cmd",
    "User",
    "WorkingDir",
    "ExposedPorts",
    "Labels",
    "Volumes",
    "StopSignal",
    "Healthcheck",
];

/// A buildah with its own storage and the busybox base loaded as localhost/busybox:latest.
struct Buildah {
    dir: tempfile::TempDir,
}

impl Buildah {
    fn new(layout: &Path) -> Self {
        let buildah = Self { dir: tempfile::tempdir().unwrap() };
        // skopeo names the image itself (buildah pull would name it after the path).
        let root = buildah.dir.path();
        let dest = format!(
            "containers-storage:[vfs@{}+{}]localhost/busybox:latest",
            root.join("root").display(),
            root.join("run").display()
        );
        let out = Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(format!("oci:{}:latest", layout.display()))
            .arg(dest)
            .output()
            .expect("skopeo must be installed (scripts/setup-host installs it)");
        assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
        buildah
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("buildah");
        let root = self.dir.path();
        command.arg("--root").arg(root.join("root")).arg("--runroot").arg(root.join("run"));
        command.args(["--storage-driver", "vfs"]).args(args);
        command.env("REGISTRIES_CONFIG_PATH", "/nonexistent").env("BUILDAH_ISOLATION", "chroot");
        command
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self
            .command(args)
            .output()
            .expect("buildah must be installed (scripts/setup-host installs it)");
        assert!(
            out.status.success(),
            "buildah {args:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn build(&self, file: &Path, context: &Path, tag: &str) -> SavedImage {
        let (file, context) = (file.to_str().unwrap(), context.to_str().unwrap());
        let bud = ["bud", "--layers", "--format", "docker", "-q", "-f", file, "-t"];
        self.ok(&[&bud[..], &[tag, context]].concat());
        let layout = self.dir.path().join(tag.replace('/', "_"));
        let _ = std::fs::remove_dir_all(&layout);
        let dest = format!("oci:{}", layout.display());
        self.ok(&["push", "-q", tag, &dest]);
        let mut image = read_layout(&layout).unwrap();
        // The pushed OCI config has lost the Docker-only fields (Healthcheck): take the
        // config buildah stored.
        let inspect: Value =
            serde_json::from_str(&self.ok(&["inspect", "--type", "image", tag])).unwrap();
        image.config = inspect["Docker"].clone();
        image
    }
}

fn berth_build(berth: &Berth, file: &Path, context: &Path, tag: &str) -> SavedImage {
    let (file, context) = (file.to_str().unwrap(), context.to_str().unwrap());
    berth.ok(&["build", "-q", "--format", "docker", "-f", file, "-t", tag, context]);
    let layout = berth.dir().join(tag.replace('/', "_"));
    let _ = std::fs::remove_dir_all(&layout);
    berth.ok(&["save", "--format", "oci-dir", "-o", layout.to_str().unwrap(), tag]);
    read_layout(&layout).unwrap()
}

/// The context every file of the suite builds in.
fn make_context(root: &Path) {
    use std::os::unix::fs::PermissionsExt;
    for (path, content, mode) in [
        ("a.txt", "alpha\n", 0o600),
        ("b.txt", "bravo\n", 0o644),
        ("src/main.sh", "echo main\n", 0o755),
        ("src/lib/util.sh", "echo util\n", 0o644),
    ] {
        let full = root.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(&full, content).unwrap();
        std::fs::set_permissions(&full, std::fs::Permissions::from_mode(mode)).unwrap();
    }
    std::os::unix::fs::symlink("main.sh", root.join("src/link.sh")).unwrap();
    // An archive with owners and modes of its own, for ADD to extract.
    let mut builder = tar::Builder::new(Vec::new());
    for (path, kind, mode, data) in [
        ("pkg/", tar::EntryType::Directory, 0o750, &b""[..]),
        ("pkg/data", tar::EntryType::Regular, 0o640, &b"packed"[..]),
        ("top", tar::EntryType::Regular, 0o604, &b"top"[..]),
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

/// The differing paths of two trees, one line each.
fn tree_differences(ours: &Listing, theirs: &Listing) -> Vec<String> {
    let paths: BTreeSet<&String> = ours.keys().chain(theirs.keys()).collect();
    paths
        .into_iter()
        .filter(|p| ours.get(*p) != theirs.get(*p))
        .map(|p| format!("{p}:\n  berth   {:?}\n  buildah {:?}", ours.get(p), theirs.get(p)))
        .collect()
}

/// The compared config fields, empty ones dropped, buildah's own label removed.
fn config_fields(image: &SavedImage) -> BTreeMap<&'static str, Value> {
    let config = &image.config["config"];
    let mut out = BTreeMap::new();
    for field in FIELDS {
        let mut value = config.get(field).cloned().unwrap_or(Value::Null);
        if let Value::Object(labels) = &mut value {
            labels.remove("io.buildah.version");
        }
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(field, value);
        }
    }
    out
}

/// The history's empty_layer flags, one per entry.
fn history_shape(image: &SavedImage) -> Vec<bool> {
    image.config["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["empty_layer"].as_bool().unwrap_or(false))
        .collect()
}

struct Compared {
    ours: SavedImage,
    theirs: SavedImage,
}

fn compare(berth: &Berth, buildah: &Buildah, name: &str, context: &Path) -> Compared {
    let file = suite_dir().join(name);
    let tag = format!("localhost/{}", name.trim_end_matches(".Dockerfile"));
    let ours = berth_build(berth, &file, context, &tag);
    let theirs = buildah.build(&file, context, &tag);
    Compared { ours, theirs }
}

impl Compared {
    /// Panics with every difference of the trees, except those `known` explains (path and
    /// the reason), which must still be differences.
    fn trees_match_except(&self, name: &str, known: &[(&str, &str)]) {
        let (mut ours, mut theirs) = (self.ours.tree(), self.theirs.tree());
        for (path, why) in known {
            let (a, b) = (ours.remove(*path), theirs.remove(*path));
            assert_ne!(a, b, "{name}: {path} was expected to differ ({why})");
        }
        let differences = tree_differences(&ours, &theirs);
        assert!(
            differences.is_empty(),
            "{name}: {} differences in the file trees:\n{}",
            differences.len(),
            differences.join("\n")
        );
    }

    fn configs_match(&self, name: &str) {
        assert_eq!(
            config_fields(&self.ours),
            config_fields(&self.theirs),
            "{name}: berth (left) and buildah (right) configs differ"
        );
        assert_eq!(
            history_shape(&self.ours),
            history_shape(&self.theirs),
            "{name}: history entries (empty_layer flags) differ:\nberth {}\nbuildah {}",
            self.ours.config["history"],
            self.theirs.config["history"]
        );
    }
}

/// What buildah 1.28 leaves in the image of a build with a RUN step where Docker leaves
/// nothing: the empty mount points of the RUN container's /etc/resolv.conf (mode 0755) and
/// of /run (for /run/.containerenv). Docker's builders keep the files they bind into a RUN
/// container out of the image, and so does berth.
const BUILDAH_MOUNT_POINTS: &[(&str, &str)] = &[
    ("etc/resolv.conf", "buildah leaves the RUN container's mount point"),
    ("run", "buildah leaves the mount point of /run/.containerenv"),
];

/// WORKDIR before USER: Docker makes the directory when WORKDIR comes ("if the WORKDIR
/// doesn't exist, it will be created even if it's not used in any subsequent Dockerfile
/// instruction"), so as the user of that moment, root; buildah 1.28 makes it when the next
/// RUN starts, owned by the USER set in between.
const BUILDAH_LATE_WORKDIR: &[(&str, &str)] = &[
    ("srv", "buildah makes WORKDIR /srv at the RUN after USER 1000, owned by 1000"),
    ("srv/app", "buildah makes WORKDIR app at the RUN after USER 1000, owned by 1000"),
];
/// The same in the ONBUILD file: WORKDIR $DIR and sub, then USER user, then a RUN.
const BUILDAH_LATE_WORKDIR_ONBUILD: &[(&str, &str)] = &[
    ("work", "buildah makes WORKDIR $DIR at the RUN after USER user, owned by 1000"),
    ("work/sub", "buildah makes WORKDIR sub at the RUN after USER user, owned by 1000"),
];

#[test]
fn the_suite_builds_as_buildah_builds_it() {
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest");
    let layout = berth.dir().join("busybox-layout");
    berth_testkit::busybox::image_layout(&layout).unwrap();
    let buildah = Buildah::new(&layout);
    let context = berth.dir().join("context");
    make_context(&context);

    // The four files build at the same time (each tool keeps its own store consistent).
    let files = [
        "stages-run-args.Dockerfile",
        "config.Dockerfile",
        "copy-add.Dockerfile",
        "onbuild-user-workdir.Dockerfile",
    ];
    let mut built: Vec<Compared> = std::thread::scope(|scope| {
        let handles: Vec<_> = files
            .iter()
            .map(|name| scope.spawn(|| compare(&berth, &buildah, name, &context)))
            .collect();
        handles.into_iter().map(|h| h.join().expect("a build of the suite")).collect::<Vec<_>>()
    })
    .into_iter()
    .rev()
    .collect();
    let mut next = || built.pop().unwrap();

    let c = next();
    c.trees_match_except("stages-run-args", BUILDAH_MOUNT_POINTS);
    c.configs_match("stages-run-args");
    assert_eq!(c.ours.tree()["second"].detail, "[] [unset]\n");
    assert_eq!(c.ours.tree()["shell-form"].detail, "shell global-default local-default\n");

    let c = next();
    c.trees_match_except("config", &[BUILDAH_MOUNT_POINTS, BUILDAH_LATE_WORKDIR].concat());
    assert_eq!(c.ours.tree()["srv/app"].uid, 0, "WORKDIR was made before USER 1000");
    c.configs_match("config");
    assert_eq!(
        c.ours.tree()["tmp/seen"].detail,
        "1 two words legacy form value as 1000 in /srv/app\n"
    );

    let c = next();
    c.trees_match_except("copy-add", &[]);
    c.configs_match("copy-add");

    let c = next();
    c.trees_match_except(
        "onbuild-user-workdir",
        &[BUILDAH_MOUNT_POINTS, BUILDAH_LATE_WORKDIR_ONBUILD].concat(),
    );
    c.configs_match("onbuild-user-workdir");
    assert_eq!(c.ours.tree()["tmp/who"].detail, "yes user\n");
}
