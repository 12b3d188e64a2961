//! `berth build` run by the unprivileged test user, on both rootless storage drivers: RUN
//! steps in the per-user namespace, COPY --chown, a non-root USER, deletions as whiteouts and
//! the cache, with the layers keeping the owners the namespace gives (a file chowned to 1000
//! in the build is 1000 in the image's tar, not the host id it is stored under).
//!
//! Each test has a throwaway rootless engine (berth_testkit::rootless_cli): --root, --runroot
//! and XDG_RUNTIME_DIR of its own, so a namespace and pause process of its own, which dropping
//! it ends (`berth system migrate`), killing anything left in the namespace and removing the
//! directories, also when the test fails.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, Instant};

use berth_testkit::image_tree::{read_layout, SavedImage};
use berth_testkit::rootless_cli::{find_file as find, open_to_all, RootlessBerth};

/// The image as `berth save --format oci-dir` writes it.
fn saved(b: &RootlessBerth, image: &str) -> SavedImage {
    let out = b.dir().join("saved");
    let _ = fs::remove_dir_all(&out);
    b.ok(&["save", "--format", "oci-dir", "-o", out.to_str().unwrap(), image]);
    read_layout(&out).unwrap()
}

/// No scratch directory and no mount is left by a build.
fn assert_clean(b: &RootlessBerth) {
    let tmp = b.root().join("build/tmp");
    let left: Vec<_> =
        fs::read_dir(&tmp).map(|d| d.flatten().map(|e| e.path()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
    assert_eq!(b.mounts(), Vec::<String>::new(), "mounts left");
    // A fuse-overlayfs server ends once the kernel has dropped its unmounted file system,
    // a moment after the step's namespace is gone.
    let servers = || -> Vec<i32> {
        b.namespace_pids()
            .into_iter()
            .filter(|pid| {
                fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "fuse-overlayfs")
            })
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !servers().is_empty() {
        assert!(Instant::now() < deadline, "fuse-overlayfs servers left: {:?}", servers());
        std::thread::sleep(Duration::from_millis(50));
    }
}

const CONTAINERFILE: &str = r#"FROM localhost/busybox:latest
RUN mkdir -p /srv/data && echo root > /srv/data/by-root && echo x > /srv/data/owned && chown 1000:1000 /srv/data/owned /home/user && rm /etc/group && echo step-one-ran
COPY --chown=1000:1000 app.sh /srv/app.sh
USER user
WORKDIR /home/user
RUN echo "$(id -u):$(id -g)" > ids && echo step-two-ran
CMD ["sh", "/srv/app.sh"]
"#;

fn build_as_the_user(b: RootlessBerth) {
    b.load_busybox("localhost/busybox:latest");
    let context = b.dir().join("context");
    fs::create_dir(&context).unwrap();
    fs::write(context.join("Containerfile"), CONTAINERFILE).unwrap();
    fs::write(context.join("app.sh"), "cat /home/user/ids\n").unwrap();
    open_to_all(&context);
    let ctx = context.to_str().unwrap();

    // A step's output is a line of its own; the STEP line that shows the command is not.
    let ran = |out: &str, step: &str| out.lines().any(|l| l == step);
    let out = b.ok(&["build", "-t", "app", ctx]);
    assert!(ran(&out, "step-one-ran") && ran(&out, "step-two-ran"), "{out}");
    assert_clean(&b);

    // The layers carry the namespace's owners.
    let saved = saved(&b, "app");
    let n = saved.layers.len();
    let (first, copy, second) = (&saved.layers[n - 3], &saved.layers[n - 2], &saved.layers[n - 1]);
    assert_eq!((first["srv/data/owned"].uid, first["srv/data/owned"].gid), (1000, 1000));
    assert_eq!((first["srv/data/by-root"].uid, first["srv/data/by-root"].gid), (0, 0));
    assert_eq!(first["home/user"].uid, 1000);
    assert!(first.contains_key("etc/.wh.group"), "the deletion is a whiteout: {first:?}");
    assert_eq!((copy["srv/app.sh"].uid, copy["srv/app.sh"].gid), (1000, 1000));
    assert_eq!(second["home/user/ids"].detail, "1000:1000\n");
    assert_eq!(second["home/user/ids"].uid, 1000);
    assert_eq!(saved.config["config"]["User"], "user");

    // On the host the file chowned to 1000 is the subuid range's 1000th id.
    let layers = b.root();
    let stored = find(&layers, "owned").expect("the unpacked layer file");
    assert_eq!(fs::metadata(stored).unwrap().uid(), b.user().subuid().start + 999);

    // The image runs rootless, as the user it names.
    assert_eq!(b.ok(&["run", "--rm", "app"]), "1000:1000\n");

    // A rebuild with no change runs no step.
    let again = b.ok(&["build", "-t", "app", ctx]);
    assert!(!ran(&again, "step-one-ran") && !ran(&again, "step-two-ran"), "{again}");
    assert_eq!(again.matches("--> Using cache").count(), 3, "{again}");
    assert_clean(&b);
}

// Rootless on native overlay in the user namespace (this kernel allows it).
#[test]
fn a_rootless_build_keeps_the_namespaces_owners() {
    build_as_the_user(RootlessBerth::new(Path::new(env!("CARGO_BIN_EXE_berth"))));
}

// The same build on fuse-overlayfs, as where the kernel refuses native overlay: the step's
// fuse-overlayfs server ends with the step.
#[test]
fn a_rootless_build_on_fuse_overlayfs() {
    build_as_the_user(RootlessBerth::on_fuse_overlayfs(Path::new(env!("CARGO_BIN_EXE_berth"))));
}
