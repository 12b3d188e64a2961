//! The stage graph of `berth build` as a user sees it: independent stages build at the same
//! time, `--target` skips the stages its target does not need (a failing one is never run),
//! and COPY --from takes wildcards and images that are no stage.

use berth_testkit::cli::Berth;
use berth_testkit::image_tree::read_layout;

fn berth() -> Berth {
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest")
}

fn context(berth: &Berth, containerfile: &str) -> String {
    let dir = berth.dir().join(format!("context-{}", containerfile.len()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("Containerfile"), containerfile).unwrap();
    dir.to_str().unwrap().to_owned()
}

// Two stages that each wait for the other to have started: built one after the other, the
// first would wait in vain (and give up after two minutes, failing the build); built in
// parallel, both see each other. The rendezvous is a cache mount both steps share.
const RENDEZVOUS: &str = r#"FROM localhost/busybox:latest AS a
RUN --mount=type=cache,id=rendezvous,target=/meet touch /meet/a && i=0; while [ ! -e /meet/b ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.1; done; echo a > /a
FROM localhost/busybox:latest AS b
RUN --mount=type=cache,id=rendezvous,target=/meet touch /meet/b && i=0; while [ ! -e /meet/a ]; do i=$((i+1)); [ $i -lt 1200 ] || exit 9; sleep 0.1; done; echo b > /b
FROM scratch
COPY --from=a /a /a
COPY --from=b /b /b
"#;

#[test]
fn independent_stages_build_in_parallel() {
    let berth = berth();
    let ctx = context(&berth, RENDEZVOUS);
    let out = berth.ok(&["build", "-t", "both", &ctx]);
    // Each stage's output is shown whole, in stage order.
    let a = out.find("[1/3] STEP 1/2").expect(&out);
    let b = out.find("[2/3] STEP 1/2").expect(&out);
    let last = out.find("[3/3] STEP 1/3").expect(&out);
    assert!(a < b && b < last, "{out}");
    let layout = berth.dir().join("saved");
    berth.ok(&["save", "--format", "oci-dir", "-o", layout.to_str().unwrap(), "both"]);
    let tree = read_layout(&layout).unwrap().tree();
    assert_eq!((tree["a"].detail.as_str(), tree["b"].detail.as_str()), ("a\n", "b\n"));
}

// A failing stage stops the build with its code; the stage beside it stops too, and nothing
// is tagged or left behind.
#[test]
fn a_failing_stage_fails_the_parallel_batch() {
    let berth = berth();
    let ctx = context(
        &berth,
        "FROM localhost/busybox:latest AS ok\nRUN echo fine > /f\nFROM localhost/busybox:latest AS bad\nRUN echo failing-stage && exit 4\nFROM scratch\nCOPY --from=ok /f /f\nCOPY --from=bad /etc/passwd /p\n",
    );
    let stderr = berth.fails(&["build", "-t", "never", &ctx], 4);
    assert!(stderr.contains("failing-stage"), "{stderr}");
    assert!(!berth.ok(&["images", "--format", "{{.Repository}}"]).contains("never"));
    let tmp = berth.root().join("build/tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp).map(|d| d.flatten().collect()).unwrap_or_default();
    assert!(left.is_empty(), "scratch directories left: {left:?}");
    assert_eq!(berth.mounts(), Vec::<String>::new());
}

const TARGETS: &str = r#"FROM localhost/busybox:latest AS base
RUN echo base > /base
FROM localhost/busybox:latest AS broken
RUN echo broken-stage-ran && exit 7
FROM base AS app
RUN echo app > /app
FROM app AS all
COPY --from=broken /etc/passwd /broken
"#;

// --target builds only what its target needs: the failing stage beside it is never run.
// Without --target the last stage needs it, and the build fails with its code.
#[test]
fn target_skips_stages_it_does_not_need() {
    let berth = berth();
    let ctx = context(&berth, TARGETS);
    let out = berth.ok(&["build", "--target", "app", "-t", "app", &ctx]);
    assert!(!out.contains("broken"), "the broken stage was looked at:\n{out}");
    assert!(out.contains("[2/2] STEP 2/2: RUN echo app"), "{out}");
    let stderr = berth.fails(&["build", "-t", "all", &ctx], 7);
    assert!(stderr.contains("broken-stage-ran"), "{stderr}");
}

// COPY --from with wildcards, from a stage and from an image that is no stage.
#[test]
fn copy_from_takes_wildcards_and_images() {
    let berth = berth();
    let ctx = context(
        &berth,
        "FROM localhost/busybox:latest AS build\nRUN mkdir -p /out/sub && echo 1 > /out/one.txt && echo 2 > /out/two.txt && echo x > /out/three.log && echo s > /out/sub/s.txt && echo l > /out/lib1.so\nFROM scratch\nCOPY --from=build /out/*.txt /texts/\nCOPY --from=build /out/lib?.so /out/su[b] /more/\nCOPY --from=localhost/busybox:latest /etc/pass* /bin/busybox /from-image/\n",
    );
    berth.ok(&["build", "-t", "globbed", &ctx]);
    let layout = berth.dir().join("saved");
    berth.ok(&["save", "--format", "oci-dir", "-o", layout.to_str().unwrap(), "globbed"]);
    let tree = read_layout(&layout).unwrap().tree();
    let paths: Vec<&str> = tree.keys().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "from-image",
            "from-image/busybox",
            "from-image/passwd",
            "more",
            "more/lib1.so",
            "more/s.txt",
            "texts",
            "texts/one.txt",
            "texts/two.txt"
        ]
    );
    assert_eq!(tree["texts/one.txt"].detail, "1\n");
    assert!(tree["from-image/passwd"].detail.starts_with("root:x:0:0:"));
    assert_eq!(tree["from-image/busybox"].mode, 0o755);
}
