//! The build cache as `podman build --layers` has it: a rebuild with no change reuses every
//! step and the final config too, so it gives the same image id even without
//! SOURCE_DATE_EPOCH; `--no-cache` and a changed label make a new image.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use berth_testkit::cli::Berth;

const CONTAINERFILE: &str = "FROM localhost/busybox:latest\nRUN echo built > /f\nCOPY data /data\nENV A=1\nCMD [\"cat\", \"/f\"]\n";

fn id(out: &str) -> String {
    out.lines().last().unwrap_or_default().to_owned()
}

fn now_secs() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Waits for the next second of the clock, so that a config made from now on carries a later
/// `created` time (and so another id) than one made before.
fn next_second() {
    let start = now_secs();
    while now_secs() == start {
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn a_rebuild_with_no_change_gives_the_same_image() {
    let berth = Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest");
    let context = berth.dir().join("context");
    std::fs::create_dir_all(&context).unwrap();
    std::fs::write(context.join("Containerfile"), CONTAINERFILE).unwrap();
    std::fs::write(context.join("data"), "data\n").unwrap();
    let ctx = context.to_str().unwrap();

    let first = id(&berth.ok(&["build", "-t", "app", ctx]));
    next_second();
    let out = berth.ok(&["build", "-t", "app", ctx]);
    assert_eq!(out.matches("--> Using cache").count(), 2, "{out}");
    assert_eq!(id(&out), first, "a rebuild with no change made another image:\n{out}");

    // A new label is a new config; going back to none is the first image again.
    let labelled = id(&berth.ok(&["build", "--label", "k=v", "-t", "app", ctx]));
    assert_ne!(labelled, first);
    assert_eq!(id(&berth.ok(&["build", "-t", "app", ctx])), first);

    // --no-cache builds every step again: new layers' times, a new image.
    let fresh = id(&berth.ok(&["build", "--no-cache", "-t", "app", ctx]));
    assert_ne!(fresh, first);
    assert_eq!(berth.ok(&["run", "--rm", "app"]), "built\n");
}
