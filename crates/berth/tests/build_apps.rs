//! The issue's two example builds, built and then run with `berth run`: a Python-style app on
//! the harness's Debian image (a non-root user created early, dependencies copied and
//! installed before the source, source last, USER, EXPOSE, exec-form ENTRYPOINT), and a
//! multi-stage build whose build stage produces a static binary (busybox-static stands in for
//! a compiler's output: the harness images carry no toolchain) and whose minimal runtime
//! stage, FROM scratch, holds only that binary.

use berth_testkit::cli::Berth;

fn write(dir: &std::path::Path, files: &[(&str, &str)]) {
    for (path, content) in files {
        let full = dir.join(path);
        std::fs::create_dir_all(full.parent().unwrap()).unwrap();
        std::fs::write(full, content).unwrap();
    }
}

const APP: &str = r#"FROM localhost/debian:12
RUN useradd --create-home --uid 1001 app
WORKDIR /app
COPY requirements.txt .
RUN mkdir -p /opt/deps && for d in $(cat requirements.txt); do echo "$d" > /opt/deps/$d; done
COPY --chown=app:app src/ ./src/
USER app
EXPOSE 8000
ENTRYPOINT ["/bin/sh", "/app/src/main.sh"]
"#;

#[test]
fn the_app_builds_on_debian_and_runs_as_its_user() {
    let berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    let layout = berth_testkit::debian::image_layout(8).unwrap();
    let out = berth.ok(&["load", "-i", layout.dir.to_str().unwrap()]);
    let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
    berth.ok(&["tag", &id, "localhost/debian:12"]);
    let context = berth.dir().join("app");
    write(
        &context,
        &[
            ("Containerfile", APP),
            ("requirements.txt", "flask gunicorn\n"),
            (
                "src/main.sh",
                "echo \"serving as $(id -un) ($(id -u)) in $(pwd) with $(ls /opt/deps | tr '\\n' ' ')\"\n",
            ),
        ],
    );
    berth.ok(&["build", "-q", "-t", "pyapp", context.to_str().unwrap()]);
    let out = berth.ok(&["run", "--rm", "pyapp"]);
    assert_eq!(out, "serving as app (1001) in /app with flask gunicorn \n");
    berth.assert_clean();
}

const MULTI: &str = r#"FROM localhost/busybox:latest AS build
WORKDIR /src
COPY greeting.txt .
RUN mkdir -p /out && cp /bin/busybox /out/busybox && cp greeting.txt /out/greeting && echo build-only > /src/scratch
FROM scratch
COPY --from=build /out/busybox /busybox
COPY --from=build /out/greeting /greeting
ENTRYPOINT ["/busybox", "cat", "/greeting"]
"#;

#[test]
fn the_multi_stage_result_runs_with_only_its_binary() {
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest");
    let context = berth.dir().join("multi");
    write(
        &context,
        &[("Containerfile", MULTI), ("greeting.txt", "hello from the runtime stage\n")],
    );
    berth.ok(&["build", "-q", "-t", "tool", context.to_str().unwrap()]);
    assert_eq!(berth.ok(&["run", "--rm", "tool"]), "hello from the runtime stage\n");
    // Only the binary and its data: no shell, no build-stage files.
    let listing = berth.ok(&["run", "--rm", "--entrypoint", "/busybox", "tool", "ls", "-A", "/"]);
    let names: Vec<&str> = listing.split_whitespace().collect();
    for absent in ["bin", "src", "out", "sh"] {
        assert!(!names.contains(&absent), "{absent} in the final image: {names:?}");
    }
    assert!(names.contains(&"busybox") && names.contains(&"greeting"), "{names:?}");
    berth.assert_clean();
}
