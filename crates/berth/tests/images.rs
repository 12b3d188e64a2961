//! The image commands as a user runs them: load, images, inspect --format, tag, rmi, save,
//! pull and push against the reference registry, and the errors they print.

use std::path::Path;
use std::process::Command;

use berth_testkit::cli::Berth;
use berth_testkit::registry::{Mode, Registry};

/// A throwaway engine with empty roots.
fn engine() -> Berth {
    Berth::new(env!("CARGO_BIN_EXE_berth"))
}

// images lists Podman's columns; -q ids; inspect --format reads Go templates.
#[test]
fn load_list_inspect_tag_and_remove() {
    let berth = engine();
    let id = berth.load_busybox("localhost/bb:1");
    let table = berth.ok(&["images"]);
    let mut lines = table.lines();
    let header: Vec<&str> =
        lines.next().unwrap().split("  ").filter(|c| !c.is_empty()).map(str::trim).collect();
    assert_eq!(header, ["REPOSITORY", "TAG", "IMAGE ID", "CREATED", "SIZE"]);
    let row = lines.next().unwrap();
    assert!(row.starts_with("localhost/bb  "), "{table}");
    assert!(row.contains(&id[..12]) && row.contains(" MB"), "{table}");
    assert_eq!(berth.ok(&["images", "-q"]), format!("{}\n", &id[..12]));

    assert_eq!(berth.ok(&["image", "inspect", "--format", "{{.Id}}", "bb:1"]), format!("{id}\n"));
    assert_eq!(
        berth.ok(&["image", "inspect", "--format", "{{json .Config.Cmd}}", "localhost/bb:1"]),
        "[\"sh\"]\n"
    );
    let json: serde_json::Value =
        serde_json::from_str(&berth.ok(&["image", "inspect", "bb:1"])).unwrap();
    assert_eq!(json[0]["RepoTags"][0], "localhost/bb:1");
    assert_eq!(json[0]["Os"], "linux");

    berth.ok(&["tag", "bb:1", "localhost/bb:2"]);
    assert_eq!(berth.ok(&["rmi", "bb:1"]), "Untagged: localhost/bb:1\n");
    let out = berth.run(&["rmi", "nothere"]);
    assert_eq!(out.status.code(), Some(125));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).lines().next().unwrap(),
        "berth: nothere: image not known"
    );
    assert_eq!(berth.ok(&["rmi", "bb:2"]), format!("Untagged: localhost/bb:2\nDeleted: {id}\n"));
    assert_eq!(berth.ok(&["images", "-q"]), "");
}

// save writes an archive podman and skopeo read; load reads it back as the same image.
#[test]
fn save_is_read_by_skopeo_and_loads_back() {
    let berth = engine();
    let id = berth.load_busybox("localhost/bb:saved");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bb.tar");
    berth.ok(&["save", "-o", archive.to_str().unwrap(), "bb:saved"]);
    let out = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}} {{.Layers}}"])
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let other = engine();
    assert_eq!(
        other.ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: localhost/bb:saved\n"
    );
    assert_eq!(other.ok(&["images", "--format", "{{.Id}}"]), format!("{id}\n"));
    let oci = dir.path().join("bb.oci.tar");
    berth.ok(&["save", "--format", "oci-archive", "-o", oci.to_str().unwrap(), "bb:saved"]);
    let out = Command::new("skopeo")
        .arg("inspect")
        .arg(format!("oci-archive:{}", oci.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
}

// pull prints the image id; a registry error is one line with exit 125 and a hint.
#[test]
fn push_and_pull_through_the_registry() {
    let registry = Registry::start(Mode::Open).unwrap();
    let berth = engine();
    let name = format!("{}/cli/bb:1", registry.addr());
    let id = berth.load_busybox(&name);
    berth.ok(&["push", "--tls-verify=false", &name]);

    let other = engine();
    let out = other.run(&["pull", "--tls-verify=false", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{id}\n"));
    let progress = String::from_utf8_lossy(&out.stderr);
    assert!(
        progress.contains("Copying blob") && progress.contains("digest: sha256:"),
        "{progress}"
    );

    let manifest = other.ok(&["manifest", "inspect", "--tls-verify=false", &name]);
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    assert_eq!(manifest["schemaVersion"], 2);

    // Without --tls-verify=false a plain-HTTP registry fails, with the hint.
    let out = other.run(&["pull", &format!("{}/cli/bb:1", registry.addr())]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.lines().any(|l| l.starts_with("berth: pulling ")), "{err}");
    assert!(err.contains("--tls-verify=false"), "{err}");

    let out =
        other.run(&["pull", "--tls-verify=false", &format!("{}/cli/missing:1", registry.addr())]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("MANIFEST_UNKNOWN") || err.contains("NAME_UNKNOWN"), "{err}");
}

// login writes the containers-auth.json file 0600; logout removes the entry.
#[test]
fn login_and_logout() {
    use std::os::unix::fs::PermissionsExt;
    let registry = Registry::start(Mode::Htpasswd).unwrap();
    let berth = engine();
    let dir = tempfile::tempdir().unwrap();
    let authfile = dir.path().join("auth.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .args([
            "login",
            "--tls-verify=false",
            "--authfile",
            authfile.to_str().unwrap(),
            "-u",
            Registry::USERNAME,
            "--password-stdin",
        ])
        .arg(registry.addr())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(Registry::PASSWORD.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "Login Succeeded!\n");
    assert!(!String::from_utf8_lossy(&out.stderr).contains(Registry::PASSWORD));
    assert_eq!(std::fs::metadata(&authfile).unwrap().permissions().mode() & 0o777, 0o600);
    let name = format!("{}/auth/bb:1", registry.addr());
    berth.load_busybox(&name);
    berth.ok(&["push", "--tls-verify=false", "--authfile", authfile.to_str().unwrap(), &name]);
    berth.ok(&["logout", "--authfile", authfile.to_str().unwrap(), &registry.addr()]);
    assert!(
        !Path::new(&authfile).exists()
            || !std::fs::read_to_string(&authfile).unwrap().contains(&registry.addr())
    );
}

/// Writes `mib` MiB of incompressible bytes.
fn random_file(path: &Path, mib: usize) {
    let mut state: u64 = 0x2545_f491_4f6c_dd1d;
    let mut data = vec![0u8; mib << 20];
    for chunk in data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

// A pull killed with SIGKILL mid-layer leaves the store consistent (no image, no layer), and
// the next pull completes, resuming the partial download.
#[test]
fn a_pull_killed_mid_layer_resumes() {
    let registry = Registry::start(Mode::Open).unwrap();
    let src = tempfile::tempdir().unwrap();
    let layout_dir = src.path().join("layout");
    let mut builder = berth_testkit::layout::LayoutBuilder::new(&layout_dir).unwrap();
    let tree = src.path().join("tree");
    std::fs::create_dir_all(tree.join("data")).unwrap();
    random_file(&tree.join("data/random.bin"), 64);
    builder.add_dir_layer(&tree).unwrap();
    builder.finish(serde_json::json!({"Cmd": ["sh"]}), "latest").unwrap();
    let name = format!("{}/resume/big:1", registry.addr());
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout_dir.display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let berth = engine();
    let mut child = Command::new(env!("CARGO_BIN_EXE_berth"))
        .arg("--root")
        .arg(berth.root())
        .args(["pull", "-q", "--tls-verify=false", &name])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let ingest = berth.root().join("storage/ingest");
    let partial_size = || -> u64 {
        std::fs::read_dir(&ingest)
            .map(|entries| {
                entries
                    .flatten()
                    .filter(|e| e.file_name().to_string_lossy().ends_with(".partial"))
                    .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
                    .sum()
            })
            .unwrap_or(0)
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while partial_size() < (4 << 20)
        && child.try_wait().unwrap().is_none()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    let _ = child.kill();
    let _ = child.wait();
    let left = partial_size();

    // Consistent: the killed pull recorded no image and committed no layer.
    assert_eq!(berth.ok(&["images", "-q"]), "", "killed pull left an image (partial {left})");
    let layers = berth.root().join("storage/layers");
    assert_eq!(std::fs::read_dir(&layers).unwrap().count(), 0);

    let out = berth.run(&["--log-level", "debug", "pull", "-q", "--tls-verify=false", &name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    if left > 0 {
        let log = String::from_utf8_lossy(&out.stderr);
        assert!(
            log.contains("resuming an interrupted download"),
            "partial of {left} bytes not resumed: {log}"
        );
    }
    let inspect = berth.ok(&["image", "inspect", "--format", "{{.Size}}", &name]);
    assert!(inspect.trim().parse::<u64>().unwrap() > 64 << 20, "{inspect}");
    assert_eq!(partial_size(), 0, "the partial file is gone once committed");

    // The layer is larger than a monolithic upload: a push to another registry sends it in
    // chunks, and skopeo reads back the same image.
    let other = Registry::start(Mode::Open).unwrap();
    let copy = format!("{}/chunked/big:1", other.addr());
    let out = berth.run(&["--log-level", "debug", "push", "--tls-verify=false", &name, &copy]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("uploading a chunk"));
    let digest = |name: &str| {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(digest(&name), digest(&copy));
}

/// The test user with an XDG_RUNTIME_DIR of this test's own, so the per-user namespace and
/// pause process a rootless pull starts are this test's; dropping it ends the pause process
/// (`berth system migrate`), also when the test fails.
struct UserSession {
    user: &'static berth_testkit::user::TestUser,
    berth: std::path::PathBuf,
    xdg: tempfile::TempDir,
}

impl UserSession {
    fn new() -> Self {
        use std::os::unix::fs::PermissionsExt;
        let user = berth_testkit::user::TestUser::get();
        let berth =
            berth_testkit::user::stage_binary(Path::new(env!("CARGO_BIN_EXE_berth"))).unwrap();
        let xdg = tempfile::Builder::new().prefix("berth-images-xdg-").tempdir_in("/tmp").unwrap();
        std::os::unix::fs::chown(xdg.path(), Some(user.uid()), Some(user.gid())).unwrap();
        std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        Self { user, berth, xdg }
    }

    fn command(&self) -> Command {
        let mut command = self.user.command(&self.berth);
        command
            .env("XDG_RUNTIME_DIR", self.xdg.path())
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent");
        command
    }
}

impl Drop for UserSession {
    fn drop(&mut self) {
        let _ =
            self.command().args(["system", "migrate"]).stdin(std::process::Stdio::null()).output();
    }
}

/// The files under `dir` named `name`, at any depth.
fn find_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let ty = entry.file_type().unwrap();
            if ty.is_dir() {
                stack.push(entry.path());
            } else if entry.file_name() == name {
                found.push(entry.path());
            }
        }
    }
    found
}

// Rootless: an unprivileged user loads, lists and pulls into its own store. The pull runs
// in berth's per-user namespace and stores the owners it maps: a file of uid 0 in the layer
// belongs to the user on the host, one of uid 1000 to the subordinate range's 1000th id.
#[test]
fn rootless_load_and_pull() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let session = UserSession::new();
    let user = session.user;
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let layout = shared.path().join("layout");
    berth_testkit::busybox::image_layout(&layout).unwrap();
    let root = shared.path().join("store");
    std::fs::create_dir(&root).unwrap();
    std::os::unix::fs::chown(&root, Some(user.uid()), Some(user.gid())).unwrap();

    let run = |args: &[&str]| {
        let out = session.command().arg("--root").arg(&root).args(args).output().unwrap();
        assert!(
            out.status.success(),
            "rootless berth {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let loaded = run(&["load", "-i", layout.to_str().unwrap()]);
    let id = loaded.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
    run(&["tag", &id, "localhost/rootless:1"]);
    assert!(run(&["images"]).contains("localhost/rootless"));

    let registry = Registry::start(Mode::Open).unwrap();
    let name = format!("{}/rootless/bb:1", registry.addr());
    run(&["push", "--tls-verify=false", "localhost/rootless:1", &name]);
    run(&["rmi", "-a"]);
    assert_eq!(run(&["pull", "-q", "--tls-verify=false", &name]).trim(), id);
    let dirs: Vec<_> = std::fs::read_dir(root.join("storage/layers")).unwrap().flatten().collect();
    assert_eq!(dirs.len(), 1);
    let busybox = dirs[0].path().join("diff/bin/busybox");
    assert_eq!(std::fs::metadata(&busybox).unwrap().uid(), user.uid());

    // A layer with a file of uid 1000 and gid 1000, pushed by skopeo and pulled rootless.
    let tree = shared.path().join("tree");
    std::fs::create_dir_all(tree.join("home/user")).unwrap();
    std::fs::write(tree.join("home/user/owned"), "the user's\n").unwrap();
    for path in [tree.join("home/user"), tree.join("home/user/owned")] {
        std::os::unix::fs::chown(&path, Some(1000), Some(1000)).unwrap();
    }
    let owners = shared.path().join("owners");
    let mut builder = berth_testkit::layout::LayoutBuilder::new(&owners).unwrap();
    builder.add_dir_layer(&tree).unwrap();
    builder.finish(serde_json::json!({"Cmd": ["sh"]}), "latest").unwrap();
    let owned_name = format!("{}/rootless/owners:1", registry.addr());
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", owners.display()))
        .arg(format!("docker://{owned_name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    run(&["pull", "-q", "--tls-verify=false", &owned_name]);
    let owned = find_named(&root.join("storage/layers"), "owned");
    assert_eq!(owned.len(), 1, "{owned:?}");
    let meta = std::fs::metadata(&owned[0]).unwrap();
    assert_eq!(meta.uid(), user.subuid().start + 999, "uid 1000 in the layer");
    assert_eq!(meta.gid(), user.subgid().start + 999, "gid 1000 in the layer");
    let home = owned[0].parent().unwrap().parent().unwrap();
    assert_eq!(std::fs::metadata(home).unwrap().uid(), user.uid(), "uid 0 in the layer");
}

/// `find`'s listing of a tree: path, type, mode, owner, size and link target per entry.
fn listing(dir: &Path) -> String {
    let out = Command::new("find")
        .arg(".")
        .args(["-printf", "%p %y %m %U:%G %s %l\n"])
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success());
    let mut lines: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        // A directory's size is the file system's business.
        .map(|l| {
            let mut parts: Vec<&str> = l.split(' ').collect();
            if parts.get(1) == Some(&"d") {
                parts[4] = "-";
            }
            parts.join(" ")
        })
        .filter(|l| !l.starts_with(". "))
        .collect();
    lines.sort();
    lines.join("\n")
}

// An archive saved by podman loads into berth, and berth's unpacked layer lists exactly as
// podman's own copy of the image does.
#[test]
fn podman_saved_archives_load_with_the_same_tree() {
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    berth_testkit::busybox::image_layout(&layout).unwrap();
    let podman = |args: &[&str]| {
        let out = Command::new("podman")
            .arg("--root")
            .arg(work.path().join("podman-root"))
            .arg("--runroot")
            .arg(work.path().join("podman-run"))
            .args(["--storage-driver", "vfs"])
            .args(args)
            .output()
            .unwrap();
        assert!(out.status.success(), "podman {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    // Into podman's store through skopeo's docker-archive (podman's oci: transport wants a
    // lowercase path).
    let skopeo_archive = work.path().join("skopeo.tar");
    let out = Command::new("skopeo")
        .args(["copy", "--quiet"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker-archive:{}:localhost/from-podman:1", skopeo_archive.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    podman(&["load", "-q", "-i", skopeo_archive.to_str().unwrap()]);
    let id =
        podman(&["images", "-q", "--no-trunc"]).trim().trim_start_matches("sha256:").to_owned();
    let archive = work.path().join("podman.tar");
    podman(&["save", "-o", archive.to_str().unwrap(), "localhost/from-podman:1"]);
    let mounted = podman(&["image", "mount", "localhost/from-podman:1"]);

    let berth = engine();
    assert_eq!(
        berth.ok(&["load", "-i", archive.to_str().unwrap()]),
        "Loaded image: localhost/from-podman:1\n"
    );
    assert_eq!(berth.ok(&["images", "--format", "{{.Id}}"]).trim(), id);
    let layers: Vec<_> =
        std::fs::read_dir(berth.root().join("storage/layers")).unwrap().flatten().collect();
    assert_eq!(layers.len(), 1);
    assert_eq!(listing(&layers[0].path().join("diff")), listing(Path::new(mounted.trim())));
    podman(&["image", "unmount", "localhost/from-podman:1"]);
    podman(&["rmi", "-a", "-f"]);

    // And back: what berth saves, podman loads as the same image.
    let saved = work.path().join("berth.tar");
    berth.ok(&["save", "-o", saved.to_str().unwrap(), "localhost/from-podman:1"]);
    let loaded = podman(&["load", "-i", saved.to_str().unwrap()]);
    assert!(loaded.contains("localhost/from-podman:1"), "{loaded}");
    assert_eq!(podman(&["images", "-q", "--no-trunc"]).trim().trim_start_matches("sha256:"), id);
    podman(&["rmi", "-a", "-f"]);
}

// A push to another repository of the same registry mounts the blobs it already holds there
// instead of uploading them, and the result is the same image for skopeo.
#[test]
fn push_mounts_blobs_across_repositories() {
    let registry = Registry::start(Mode::Open).unwrap();
    let berth = engine();
    let first = format!("{}/mount/a:1", registry.addr());
    berth.load_busybox(&first);
    berth.ok(&["push", "--tls-verify=false", &first]);
    let second = format!("{}/mount/b:1", registry.addr());
    let out = berth.run(&["--log-level", "debug", "push", "--tls-verify=false", &first, &second]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("mounted from another repository"), "{log}");
    assert!(!log.contains("uploading a chunk"), "{log}");
    let digest = |name: &str| {
        let out = Command::new("skopeo")
            .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
            .arg(format!("docker://{name}"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    assert_eq!(digest(&first), digest(&second));
}

// --platform picks an index's manifest; a platform the index lacks is a one-line error that
// lists what it has, and a malformed one says what is expected. Nothing is stored.
#[test]
fn platform_selection_from_an_index() {
    let registry = Registry::start(Mode::Open).unwrap();
    let work = tempfile::tempdir().unwrap();
    let layout = work.path().join("layout");
    let built = berth_testkit::busybox::image_layout(&layout).unwrap();
    // An index naming the one manifest for two platforms (a second architecture's image
    // needs no other bytes for this test).
    let size = std::fs::metadata(berth_testkit::layout::blob_path(&layout, &built.manifest_digest))
        .unwrap()
        .len();
    let entry = |arch: &str, variant: Option<&str>| {
        let mut platform = serde_json::json!({"os": "linux", "architecture": arch});
        if let Some(v) = variant {
            platform["variant"] = v.into();
        }
        serde_json::json!({
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": built.manifest_digest,
            "size": size,
            "platform": platform,
        })
    };
    let index = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [entry("amd64", None), entry("arm64", Some("v8"))],
    });
    let bytes = serde_json::to_vec(&index).unwrap();
    let index_path = work.path().join("index.blob");
    std::fs::write(&index_path, &bytes).unwrap();
    let sum = Command::new("sha256sum").arg(&index_path).output().unwrap();
    let hex = String::from_utf8(sum.stdout).unwrap().split_whitespace().next().unwrap().to_owned();
    std::fs::write(layout.join("blobs/sha256").join(&hex), &bytes).unwrap();
    let top = serde_json::json!({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.index.v1+json",
            "digest": format!("sha256:{hex}"),
            "size": bytes.len(),
            "annotations": {"org.opencontainers.image.ref.name": "latest"},
        }],
    });
    std::fs::write(layout.join("index.json"), serde_json::to_vec(&top).unwrap()).unwrap();
    let name = format!("{}/platforms/bb:1", registry.addr());
    let out = Command::new("skopeo")
        .args(["copy", "--all", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", layout.display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let berth = engine();
    let out = berth.run(&["pull", "--tls-verify=false", "--platform", "linux/s390x", &name]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    let line = err.lines().find(|l| l.starts_with("berth: ")).unwrap_or_default();
    assert!(
        line.contains(
            "no image for platform linux/s390x in the index (it has: linux/amd64, linux/arm64/v8)"
        ),
        "{err}"
    );
    let out = berth.run(&["pull", "--tls-verify=false", "--platform", "linux", &name]);
    assert_eq!(out.status.code(), Some(125));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid platform \"linux\": expected os/arch[/variant]"), "{err}");
    assert_eq!(berth.ok(&["images", "-q"]), "");

    let id = berth.ok(&["pull", "-q", "--tls-verify=false", "--platform", "linux/arm64", &name]);
    assert_eq!(id.trim(), built.config_digest.trim_start_matches("sha256:"));
    let json: serde_json::Value =
        serde_json::from_str(&berth.ok(&["image", "inspect", &name])).unwrap();
    // The image records the index's digest and the manifest's.
    let digests: Vec<&str> =
        json[0]["RepoDigests"].as_array().unwrap().iter().map(|d| d.as_str().unwrap()).collect();
    assert!(digests.contains(&format!("{}/platforms/bb@sha256:{hex}", registry.addr()).as_str()));
    assert!(digests
        .contains(&format!("{}/platforms/bb@{}", registry.addr(), built.manifest_digest).as_str()));

    // A tag naming a single manifest has nothing to choose: the pull goes on, with a
    // warning that the image is for another platform.
    let single = format!("{}/platforms/single:1", registry.addr());
    berth.ok(&["tag", &name, &single]);
    berth.ok(&["push", "--tls-verify=false", &single]);
    let other = engine();
    let out = other.run(&["pull", "--tls-verify=false", "--platform", "linux/s390x", &single]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!(
            "image platform (linux/{}) does not match the expected platform (linux/s390x)",
            berth_testkit::layout::host_arch()
        )),
        "{err}"
    );
}
