//! `berth build` as a user runs it, on the local busybox image: an app Dockerfile in the
//! shape the issue asks for (non-root user created early, dependency list copied and
//! "installed" before the source, source last, USER, EXPOSE, exec-form ENTRYPOINT), a
//! multi-stage build whose result holds only the final stage, the layer cache asserted on
//! layer digests, secrets, reproducible builds, and bad input that leaves nothing behind.
//!
//! Images are checked through `berth save --format oci-dir` (their config and layer tars),
//! since running them needs `berth run`.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Output;

use berth_testkit::cli::{stderr, Berth};

/// An engine with the busybox image, whose commands do not inherit the test's
/// SOURCE_DATE_EPOCH.
fn engine() -> Berth {
    let mut berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    berth.remove_env("SOURCE_DATE_EPOCH");
    berth.load_busybox("localhost/busybox:latest");
    berth
}

/// `berth build EXTRA CONTEXT`, which must succeed; its output.
fn build(berth: &Berth, context: &Path, extra: &[&str]) -> String {
    let mut args = vec!["build"];
    args.extend_from_slice(extra);
    args.push(context.to_str().unwrap());
    berth.ok(&args)
}

/// The image's layer diff_ids.
fn layer_ids(berth: &Berth, image: &str) -> Vec<String> {
    let text = berth.ok(&["image", "inspect", "--format", "{{json .RootFS.Layers}}", image]);
    serde_json::from_str(&text).unwrap()
}

/// The image's config blob and its layer tars' listings, through `save --format oci-dir`.
fn save_image(berth: &Berth, image: &str) -> Saved {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("layout");
    berth.ok(&["save", "--format", "oci-dir", "-o", out.to_str().unwrap(), image]);
    let blob = |digest: &str| {
        std::fs::read(out.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
    };
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("index.json")).unwrap()).unwrap();
    let manifest: serde_json::Value =
        serde_json::from_slice(&blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap();
    let config: serde_json::Value =
        serde_json::from_slice(&blob(manifest["config"]["digest"].as_str().unwrap())).unwrap();
    let layers = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| listing(&blob(l["digest"].as_str().unwrap())))
        .collect();
    Saved { config, layers }
}

/// Names of the images in the store.
fn names(berth: &Berth) -> String {
    berth.ok(&["images", "--format", "{{.Repository}}:{{.Tag}}"])
}

/// Checks that a build left no scratch directory and no mount behind.
fn assert_clean(berth: &Berth) {
    let tmp = berth.root().join("build/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let dir = berth.dir().to_str().unwrap();
    assert!(!mounts.contains(dir), "a mount under {dir} is left");
}

/// A layer's entries: path → (type, mode, uid, gid, content or link target).
type Listing = BTreeMap<String, (char, u32, u64, u64, String)>;

struct Saved {
    config: serde_json::Value,
    layers: Vec<Listing>,
}

fn listing(blob: &[u8]) -> Listing {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob).read_to_end(&mut tar).unwrap();
    let mut out = BTreeMap::new();
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).trim_end_matches('/').to_owned();
        let h = entry.header().clone();
        let detail = match entry.link_name().unwrap() {
            Some(link) => link.display().to_string(),
            None => {
                let mut data = Vec::new();
                entry.read_to_end(&mut data).unwrap();
                String::from_utf8(data)
                    .unwrap_or_else(|e| format!("<{} bytes>", e.as_bytes().len()))
            }
        };
        let kind = h.entry_type().as_byte() as char;
        out.insert(
            path,
            (kind, h.mode().unwrap() & 0o7777, h.uid().unwrap(), h.gid().unwrap(), detail),
        );
    }
    out
}

fn write(dir: &Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
}

const APP: &str = r#"FROM localhost/busybox:latest
RUN echo 'app:x:1001:1001::/home/app:/bin/sh' >> /etc/passwd && echo 'app:x:1001:' >> /etc/group && mkdir -p /home/app && chown 1001:1001 /home/app
WORKDIR /app
COPY requirements.txt .
RUN echo "installing $(cat requirements.txt)" && mkdir -p /opt/deps && for d in $(cat requirements.txt); do echo "$d" > /opt/deps/$d; done
COPY --chown=1001:1001 src/ ./src/
USER app
EXPOSE 8000
ENTRYPOINT ["/bin/sh", "/app/src/main.sh"]
"#;

fn app_context() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        &[
            ("Containerfile", APP),
            ("requirements.txt", "liba libb\n"),
            ("src/main.sh", "echo hello from v1\n"),
            (".containerignore", "*.tmp\n"),
            ("notes.tmp", "left out\n"),
        ],
    );
    dir
}

// The app Dockerfile builds, gets its config, and rebuilds from cache as the issue says: a
// source-only change rebuilds only the COPY of the source (and later steps); no change runs
// no RUN at all.
#[test]
fn an_app_builds_and_its_cache_rewards_good_ordering() {
    let berth = engine();
    let context = app_context();
    let first = build(&berth, context.path(), &["-t", "app"]);
    assert!(first.contains("STEP 5/9: RUN echo"), "{first}");
    assert!(first.contains("installing liba libb"), "the RUN's output is shown:\n{first}");
    assert!(!first.contains("Using cache"), "{first}");
    assert!(first.contains("Successfully tagged localhost/app:latest"), "{first}");
    assert_clean(&berth);

    let saved = save_image(&berth, "app");
    let config = &saved.config["config"];
    assert_eq!(config["User"], "app");
    assert_eq!(config["WorkingDir"], "/app");
    assert_eq!(config["Entrypoint"], serde_json::json!(["/bin/sh", "/app/src/main.sh"]));
    assert!(config["ExposedPorts"]["8000/tcp"].is_object(), "{config}");
    let history = saved.config["history"].as_array().unwrap();
    let created_by: Vec<&str> = history.iter().map(|h| h["created_by"].as_str().unwrap()).collect();
    assert!(created_by.iter().any(|c| c.contains("app:x:1001:1001")), "{created_by:?}");
    let base_layers = saved.layers.len() - 4;
    // RUN (the user) changed /etc/passwd; COPY requirements; RUN install; COPY src.
    let adduser = &saved.layers[base_layers];
    assert!(adduser["etc/passwd"].4.contains("app:x:1001:1001"), "{:?}", adduser.keys());
    assert!(!adduser.contains_key("etc/hosts"), "the build's /etc/hosts is no change");
    let install = &saved.layers[base_layers + 2];
    assert_eq!(install["opt/deps/liba"].4, "liba\n");
    let source = &saved.layers[base_layers + 3];
    assert_eq!(source["app/src/main.sh"].2, 1001, "--chown applies");
    assert!(!source.keys().any(|k| k.contains("notes.tmp")));
    let layers = layer_ids(&berth, "app");

    // No change: every step from cache, no RUN runs (its output would show), same layers.
    let again = build(&berth, context.path(), &["-t", "app"]);
    assert!(!again.contains("installing liba"), "a RUN ran again:\n{again}");
    assert_eq!(again.matches("--> Using cache").count(), 4, "{again}");
    assert_eq!(layer_ids(&berth, "app"), layers);

    // A source-only change: the RUNs come from cache, the COPY of the source is new.
    write(context.path(), &[("src/main.sh", "echo hello from v2\n")]);
    let changed = build(&berth, context.path(), &["-t", "app"]);
    assert!(!changed.contains("installing liba"), "the install RUN ran again:\n{changed}");
    assert_eq!(changed.matches("--> Using cache").count(), 3, "{changed}");
    let after = layer_ids(&berth, "app");
    assert_eq!(after.len(), layers.len());
    assert_eq!(after[..layers.len() - 1], layers[..layers.len() - 1]);
    assert_ne!(after.last(), layers.last());

    // A dependency change rebuilds from its COPY on: the install RUN runs again.
    write(context.path(), &[("requirements.txt", "liba libc\n")]);
    let deps = build(&berth, context.path(), &["-t", "app"]);
    assert!(deps.contains("installing liba libc"), "{deps}");
    assert_eq!(deps.matches("--> Using cache").count(), 1, "{deps}");

    // --no-cache runs everything again.
    let fresh = build(&berth, context.path(), &["-t", "app", "--no-cache", "-q"]);
    assert_eq!(fresh.lines().count(), 1, "-q prints the id only:\n{fresh}");
    assert_clean(&berth);
}

const MULTI: &str = r#"FROM localhost/busybox:latest AS build
WORKDIR /src
COPY version.txt .
RUN mkdir -p /out && cp /bin/busybox /out/app && cp version.txt /out/version && echo build-only > /src/scratch
FROM localhost/busybox:latest AS unused
RUN echo this stage must not run && exit 1
FROM scratch
COPY --from=build /out/app /app
COPY --from=build /out/version /version
ENTRYPOINT ["/app", "echo", "hi"]
"#;

// A multi-stage build ships only the final stage's files; the stage the target does not need
// is skipped; --target build stops at the build stage.
#[test]
fn a_multi_stage_build_ships_only_the_final_stage() {
    let berth = engine();
    let context = tempfile::tempdir().unwrap();
    write(context.path(), &[("Containerfile", MULTI), ("version.txt", "1.2.3\n")]);
    let out = build(&berth, context.path(), &["-t", "tool", "--label", "org.example.kind=tool"]);
    assert!(!out.contains("must not run"), "{out}");
    assert!(out.contains("[1/2] STEP 1/4"), "{out}");
    let saved = save_image(&berth, "tool");
    assert_eq!(saved.layers.len(), 2, "one layer per COPY, nothing of the build stage");
    let files: Vec<&String> = saved.layers.iter().flat_map(|l| l.keys()).collect();
    assert_eq!(files, ["app", "version"]);
    assert_eq!(saved.layers[0]["app"].1, 0o755);
    let busybox = std::fs::read(berth_testkit::busybox::BUSYBOX).unwrap();
    assert_eq!(saved.layers[0]["app"].4, format!("<{} bytes>", busybox.len()));
    assert_eq!(saved.layers[1]["version"].4, "1.2.3\n");
    assert_eq!(saved.config["config"]["Labels"]["org.example.kind"], "tool");
    assert_eq!(saved.config["config"]["Entrypoint"], serde_json::json!(["/app", "echo", "hi"]));

    build(&berth, context.path(), &["-t", "tool-build", "--target", "build"]);
    let build = save_image(&berth, "tool-build");
    let top = build.layers.last().unwrap();
    assert!(top.contains_key("out/app") && top.contains_key("src/scratch"), "{:?}", top.keys());
    assert_eq!(build.config["config"]["WorkingDir"], "/src");
    assert_clean(&berth);
}

// A secret is seen by its step only: in no layer and no history entry.
#[test]
fn a_secret_is_in_no_layer_and_no_history() {
    let berth = engine();
    let context = tempfile::tempdir().unwrap();
    let secret = context.path().join("..").join(format!("secret-{}", std::process::id()));
    std::fs::write(&secret, "s3cr3t-value").unwrap();
    write(
        context.path(),
        &[(
            "Containerfile",
            "FROM localhost/busybox:latest\nRUN --mount=type=secret,id=token test \"$(wc -c < /run/secrets/token)\" -eq 12 && echo secret-seen > /seen\n",
        )],
    );
    let spec = format!("id=token,src={}", secret.display());
    let out = build(&berth, context.path(), &["-t", "sec", "--secret", &spec]);
    std::fs::remove_file(&secret).unwrap();
    assert!(out.contains("Successfully tagged"), "{out}");
    let saved = save_image(&berth, "sec");
    let top = saved.layers.last().unwrap();
    assert_eq!(top["seen"].4, "secret-seen\n");
    assert!(!top.keys().any(|k| k.starts_with("run")), "{:?}", top.keys());
    assert!(!saved.config.to_string().contains("s3cr3t"));
    assert_clean(&berth);
}

// Under SOURCE_DATE_EPOCH the same input gives the same image, in two separate stores.
#[test]
fn builds_are_reproducible_under_source_date_epoch() {
    let context = app_context();
    let ids: Vec<String> = (0..2)
        .map(|_| {
            let mut berth = engine();
            berth.set_env("SOURCE_DATE_EPOCH", "1700000000");
            let out = berth.ok(&["build", "-q", "-t", "app", context.path().to_str().unwrap()]);
            out.trim().to_owned()
        })
        .collect();
    assert_eq!(ids[0], ids[1]);
}

fn failing(berth: &Berth, containerfile: &str, extra: &[(&str, &str)]) -> Output {
    let context = tempfile::tempdir().unwrap();
    write(context.path(), &[("Containerfile", containerfile)]);
    write(context.path(), extra);
    berth.run(&["build", "-t", "broken", context.path().to_str().unwrap()])
}

// Bad input fails with a clear error naming the place, exit 125 (a failing RUN: its own
// code, as Podman), nothing tagged and nothing left behind.
#[test]
fn bad_input_fails_cleanly() {
    let berth = engine();
    let before = names(&berth);
    // (Containerfile, extra context files, exit code, what stderr names)
    type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], i32, &'a str);
    let cases: &[Case] = &[
        ("FROM localhost/busybox:latest\nRUN true\nFROBNICATE x\n", &[], 125, "Containerfile:3:1"),
        ("FROM localhost/busybox:latest\nCOPY missing.txt /x\n", &[], 125, "missing.txt"),
        ("FROM localhost/busybox:latest\nCOPY --from=biuld /x /x\n", &[], 125, "unknown stage"),
        (
            "FROM localhost/busybox:latest AS a\nCOPY --from=b /x /x\nFROM localhost/busybox:latest AS b\nCOPY --from=a /y /y\n",
            &[],
            125,
            "cycle",
        ),
        (
            "FROM localhost/busybox:latest\nRUN echo step-output-before-failing && exit 3\n",
            &[],
            3,
            "step-output-before-failing",
        ),
    ];
    for (file, extra, code, needle) in cases {
        let out = failing(&berth, file, extra);
        let stderr = stderr(&out);
        assert_eq!(out.status.code(), Some(*code), "{file}\n{stderr}");
        assert!(stderr.starts_with("berth: "), "{stderr}");
        assert!(stderr.contains(needle), "{file}: {needle:?} not in\n{stderr}");
        assert_eq!(names(&berth), before, "something was tagged");
        assert_clean(&berth);
    }
}

// What a RUN deletes becomes a whiteout in its layer (a directory replaced wholesale an
// opaque one), and a later step sees the deletion through the unpacked layers.
#[test]
fn deletions_become_whiteouts() {
    let berth = engine();
    let context = tempfile::tempdir().unwrap();
    write(
        context.path(),
        &[(
            "Containerfile",
            "FROM localhost/busybox:latest\nRUN mkdir /d && echo x > /d/f && echo keep > /k\nRUN rm /etc/group && rm -r /d && mkdir /d && echo y > /d/g\nRUN test ! -e /etc/group && test ! -e /d/f && test \"$(cat /d/g /k)\" = \"$(printf 'y\\nkeep')\" && echo seen > /checked\n",
        )],
    );
    build(&berth, context.path(), &["-t", "wh"]);
    let saved = save_image(&berth, "wh");
    let n = saved.layers.len();
    let deleting = &saved.layers[n - 2];
    let paths: Vec<&str> = deleting.keys().map(String::as_str).collect();
    assert_eq!(paths, ["d", "d/.wh..wh..opq", "d/g", "etc", "etc/.wh.group"], "{deleting:?}");
    assert_eq!(saved.layers[n - 1]["checked"].4, "seen\n");
    assert_clean(&berth);
}

// On the harness's Debian image: the distribution's own tools work in RUN (dpkg's database,
// useradd), a later RUN runs as the USER it made, and what it deleted is whited out.
#[test]
fn an_app_builds_on_debian_with_its_own_tools() {
    let berth = engine();
    let layout = berth_testkit::debian::image_layout(8).unwrap();
    let out = berth.ok(&["load", "-i", layout.dir.to_str().unwrap()]);
    let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
    berth.ok(&["tag", &id, "localhost/debian:12"]);
    let context = tempfile::tempdir().unwrap();
    write(
        context.path(),
        &[
            (
                "Containerfile",
                "FROM localhost/debian:12\nRUN useradd -m -u 1001 app && dpkg-query -W -f '${Package}\\n' > /packages.txt && rm -rf /usr/share/doc/dpkg\nUSER app\nWORKDIR /home/app\nCOPY --chown=1001:1001 app.sh .\nRUN sh app.sh > out.txt\nCMD [\"sh\", \"app.sh\"]\n",
            ),
            ("app.sh", "echo \"running as $(id -un) in $(pwd)\"\n"),
        ],
    );
    build(&berth, context.path(), &["-t", "debapp"]);
    let saved = save_image(&berth, "debapp");
    let n = saved.layers.len();
    let setup = &saved.layers[n - 3];
    assert!(setup["etc/passwd"].4.contains("app:x:1001:1001"), "{:?}", setup.keys());
    assert!(setup["packages.txt"].4.lines().any(|p| p == "dpkg"));
    assert!(setup.contains_key("usr/share/doc/.wh.dpkg"), "{:?}", setup.keys());
    assert_eq!(saved.layers[n - 1]["home/app/out.txt"].4, "running as app in /home/app\n");
    assert_eq!(saved.layers[n - 1]["home/app/out.txt"].2, 1001);
    assert_eq!(saved.config["config"]["User"], "app");
    assert_clean(&berth);
}
