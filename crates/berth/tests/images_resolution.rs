//! Where a pull goes and what it shows: registries.conf mirrors (two registries), the three
//! short-name modes (a prompt on a terminal, an error or a fall-through without one), the
//! store chosen by CONTAINERS_STORAGE_CONF, and the progress printed with and without a
//! terminal.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use berth_testkit::cli::{stderr, Berth};
use berth_testkit::registry::{Mode, Registry};

/// A throwaway engine whose registries.conf (REGISTRIES_CONFIG_PATH) starts empty.
fn engine() -> Berth {
    let mut berth = Berth::new(env!("CARGO_BIN_EXE_berth"));
    let conf = conf_path(&berth);
    std::fs::write(&conf, "").unwrap();
    berth.set_env("REGISTRIES_CONFIG_PATH", &conf);
    berth
}

fn conf_path(berth: &Berth) -> PathBuf {
    berth.dir().join("registries.conf")
}

fn set_conf(berth: &Berth, text: &str) {
    std::fs::write(conf_path(berth), text).unwrap();
}

/// Imports a one-file root file system as `name` (an image unlike busybox); returns the
/// image id.
fn small_image(berth: &Berth, name: &str, content: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("tree")).unwrap();
    std::fs::write(dir.path().join("tree/content"), content).unwrap();
    let tar = dir.path().join("rootfs.tar");
    let status = Command::new("tar")
        .arg("-cf")
        .arg(&tar)
        .arg("-C")
        .arg(dir.path().join("tree"))
        .arg(".")
        .status()
        .unwrap();
    assert!(status.success());
    let out = berth.ok(&["import", tar.to_str().unwrap(), name]);
    out.trim().trim_start_matches("sha256:").to_owned()
}

fn images(berth: &Berth) -> String {
    berth.ok(&["images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.Id}}"])
}

// Mirrors are tried in order before the primary: a tag the mirror has comes from it (with
// the name the user asked for), one it lacks falls through to the primary, and
// pull-from-mirror = "digest-only" keeps tag pulls away from it. The registries are plain
// HTTP, so their `insecure` flags (the mirror's own too) are what lets the pull through.
#[test]
fn mirrors_are_tried_before_the_primary_and_fall_through() {
    let primary = Registry::start(Mode::Open).unwrap();
    let mirror = Registry::start(Mode::Open).unwrap();
    let publisher = engine();
    let on_primary = publisher.load_busybox("localhost/bb:1");
    let on_mirror = small_image(&publisher, "localhost/small:1", "from the mirror\n");
    for tag in ["1", "2"] {
        let name = format!("{}/mir/app:{tag}", primary.addr());
        publisher.ok(&["push", "--tls-verify=false", "localhost/bb:1", &name]);
    }
    // The mirror serves its copy under a path of its own: location rewriting keeps the rest.
    let mirrored = format!("{}/cache/mir/app:1", mirror.addr());
    publisher.ok(&["push", "--tls-verify=false", "localhost/small:1", &mirrored]);

    let conf = |pull_from: &str| {
        format!(
            "[[registry]]\nlocation = \"{}\"\ninsecure = true\n\
             [[registry.mirror]]\nlocation = \"{}/cache\"\ninsecure = true\n{pull_from}",
            primary.addr(),
            mirror.addr()
        )
    };
    let berth = engine();
    set_conf(&berth, &conf(""));
    let wanted = format!("{}/mir/app:1", primary.addr());
    assert_eq!(berth.ok(&["pull", "-q", &wanted]).trim(), on_mirror);
    assert_eq!(images(&berth), format!("{wanted} {on_mirror}\n"));

    let fallback = format!("{}/mir/app:2", primary.addr());
    let out = berth.run(&["pull", &fallback]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), on_primary);

    let berth = engine();
    set_conf(&berth, &conf("pull-from-mirror = \"digest-only\"\n"));
    assert_eq!(berth.ok(&["pull", "-q", &wanted]).trim(), on_primary);

    // Without the insecure flags the plain-HTTP mirror and primary are both refused.
    let berth = engine();
    set_conf(
        &berth,
        &format!(
            "[[registry]]\nlocation = \"{}\"\n[[registry.mirror]]\nlocation = \"{}/cache\"\n",
            primary.addr(),
            mirror.addr()
        ),
    );
    let out = berth.run(&["pull", &wanted]);
    assert_eq!(out.status.code(), Some(125), "{}", stderr(&out));
    assert!(stderr(&out).contains("--tls-verify=false"), "{}", stderr(&out));
    assert_eq!(berth.ok(&["images", "-q"]), "");
}

/// Two search registries, the image only on the second: the short name `short/app:1` is
/// ambiguous.
struct TwoRegistries {
    first: Registry,
    second: Registry,
    id: String,
}

impl TwoRegistries {
    fn start() -> Self {
        let first = Registry::start(Mode::Open).unwrap();
        let second = Registry::start(Mode::Open).unwrap();
        let publisher = engine();
        let id = publisher.load_busybox("localhost/bb:1");
        let name = format!("{}/short/app:1", second.addr());
        publisher.ok(&["push", "--tls-verify=false", "localhost/bb:1", &name]);
        Self { first, second, id }
    }

    fn conf(&self, mode: &str) -> String {
        format!(
            "unqualified-search-registries = [\"{}\", \"{}\"]\n{mode}\n\
             [[registry]]\nlocation = \"{}\"\ninsecure = true\n\
             [[registry]]\nlocation = \"{}\"\ninsecure = true\n",
            self.first.addr(),
            self.second.addr(),
            self.first.addr(),
            self.second.addr()
        )
    }
}

// Without a terminal: enforcing refuses an ambiguous short name, naming the candidates and
// storing nothing; permissive (also when unset) and disabled try the candidates in order;
// one search registry is no ambiguity, even when enforcing.
#[test]
fn short_names_without_a_terminal_follow_short_name_mode() {
    let registries = TwoRegistries::start();
    let berth = engine();
    set_conf(&berth, &registries.conf("short-name-mode = \"enforcing\""));
    let out = berth.run(&["pull", "short/app:1"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    let first_line = err.lines().find(|l| l.starts_with("berth: ")).unwrap_or_default();
    assert!(first_line.contains("short name \"short/app\" is ambiguous"), "{err}");
    assert!(first_line.contains(&format!("{}/short/app:1", registries.first.addr())), "{err}");
    assert!(first_line.contains(&format!("{}/short/app:1", registries.second.addr())), "{err}");
    assert_eq!(berth.ok(&["images", "-q"]), "");

    for mode in ["short-name-mode = \"permissive\"", "", "short-name-mode = \"disabled\""] {
        let berth = engine();
        set_conf(&berth, &registries.conf(mode));
        let out = berth.run(&["pull", "short/app:1"]);
        assert!(out.status.success(), "{mode}: {}", stderr(&out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), registries.id, "{mode}");
        let err = stderr(&out);
        let first = err
            .find(&format!("Trying to pull {}/short/app:1...", registries.first.addr()))
            .unwrap_or_else(|| panic!("{mode}: {err}"));
        let second = err
            .find(&format!("Trying to pull {}/short/app:1...", registries.second.addr()))
            .unwrap_or_else(|| panic!("{mode}: {err}"));
        assert!(first < second, "{mode}: {err}");
        assert_eq!(
            images(&berth),
            format!("{}/short/app:1 {}\n", registries.second.addr(), registries.id)
        );
    }

    let berth = engine();
    set_conf(
        &berth,
        &format!(
            "unqualified-search-registries = [\"{0}\"]\nshort-name-mode = \"enforcing\"\n\
         [[registry]]\nlocation = \"{0}\"\ninsecure = true\n",
            registries.second.addr()
        ),
    );
    assert_eq!(berth.ok(&["pull", "-q", "short/app:1"]).trim(), registries.id);
}

/// Runs `command` (a shell command line) under script(1), so it has a terminal, with
/// `input` typed into it; keeps the input open until the command has ended, so an early
/// end-of-file cannot end the session. Returns the exit status and everything the
/// terminal showed.
fn on_terminal(
    mut script: Command,
    command: &str,
    input: &str,
) -> (std::process::ExitStatus, String) {
    let mut child = script
        .args(["-qec", command, "/dev/null"])
        .env("TERM", "xterm")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("running script(1)");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = Vec::new();
        let _ = stdout.read_to_end(&mut text);
        text
    });
    let status = child.wait().unwrap();
    drop(stdin);
    let text = reader.join().unwrap();
    (status, String::from_utf8_lossy(&text).into_owned())
}

// On a terminal, enforcing asks which registry a short name means, pulls the answer, and
// records it as a short-name alias in $XDG_CONFIG_HOME/containers/short-name-aliases.conf
// (a user's own file, as Podman writes it), so the next pull needs no question.
#[test]
fn an_ambiguous_short_name_on_a_terminal_asks_and_records_the_alias() {
    let registries = TwoRegistries::start();
    let user = berth_testkit::user::TestUser::get();
    let berth = berth_testkit::user::stage_binary(Path::new(env!("CARGO_BIN_EXE_berth"))).unwrap();
    let shared = tempfile::tempdir().unwrap();
    std::fs::set_permissions(shared.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = shared.path().join("registries.conf");
    std::fs::write(&conf, registries.conf("short-name-mode = \"enforcing\"")).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let (root, config) = (shared.path().join("store"), shared.path().join("config"));
    for dir in [&root, &config] {
        std::fs::create_dir(dir).unwrap();
        std::os::unix::fs::chown(dir, Some(user.uid()), Some(user.gid())).unwrap();
    }
    // A runtime dir of this test's own: the per-user namespace and pause process the pulls
    // start are this test's, and the guard ends them.
    let xdg = tempfile::Builder::new().prefix("berth-images-xdg-").tempdir_in("/tmp").unwrap();
    std::os::unix::fs::chown(xdg.path(), Some(user.uid()), Some(user.gid())).unwrap();
    std::fs::set_permissions(xdg.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    let as_user = |program: &str| {
        let mut cmd = user.command(program);
        cmd.env("REGISTRIES_CONFIG_PATH", &conf)
            .env("XDG_CONFIG_HOME", &config)
            .env("XDG_RUNTIME_DIR", xdg.path());
        cmd
    };
    struct EndPause<'a>(&'a dyn Fn(&str) -> Command, &'a Path);
    impl Drop for EndPause<'_> {
        fn drop(&mut self) {
            let _ = (self.0)(self.1.to_str().unwrap())
                .args(["system", "migrate"])
                .stdin(Stdio::null())
                .output();
        }
    }
    let _end_pause = EndPause(&as_user, &berth);
    let pull = format!("{} --root {} pull short/app:1", berth.display(), root.display());
    let (status, screen) = on_terminal(as_user("script"), &pull, "2\n");
    assert!(status.success(), "{screen}");
    assert!(screen.contains("? Please select an image for \"short/app\":"), "{screen}");
    assert!(screen.contains(&format!("  2) {}/short/app", registries.second.addr())), "{screen}");
    assert!(screen.contains(&registries.id), "{screen}");
    let aliases = std::fs::read_to_string(config.join("containers/short-name-aliases.conf"))
        .unwrap_or_else(|e| panic!("no alias file ({e}): {screen}"));
    assert_eq!(
        aliases,
        format!("[aliases]\n  \"short/app\" = \"{}/short/app\"\n", registries.second.addr())
    );

    // The alias settles the name: no question, and no terminal needed.
    let out = as_user(berth.to_str().unwrap())
        .arg("--root")
        .arg(&root)
        .args(["pull", "-q", "short/app:1"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), registries.id);

    // An answer that is no candidate fails and stores nothing more.
    std::fs::remove_file(config.join("containers/short-name-aliases.conf")).unwrap();
    let other = format!("{} --root {} pull short/other:1", berth.display(), root.display());
    let (status, screen) = on_terminal(as_user("script"), &other, "7\n");
    assert!(!status.success(), "{screen}");
    assert!(screen.contains("\"7\" is not a number from 1 to 2"), "{screen}");
    assert!(!config.join("containers/short-name-aliases.conf").exists());
}

// disabled never asks, terminal or not: it tries the candidates in order.
#[test]
fn disabled_short_names_do_not_ask_on_a_terminal() {
    let registries = TwoRegistries::start();
    let berth = engine();
    set_conf(&berth, &registries.conf("short-name-mode = \"disabled\""));
    let mut script = Command::new("script");
    script.env("REGISTRIES_CONFIG_PATH", conf_path(&berth));
    let pull = format!(
        "{} --root {} pull short/app:1",
        env!("CARGO_BIN_EXE_berth"),
        berth.root().display()
    );
    let (status, screen) = on_terminal(script, &pull, "");
    assert!(status.success(), "{screen}");
    assert!(!screen.contains("Please select"), "{screen}");
    assert!(screen.contains(&registries.id), "{screen}");
}

// CONTAINERS_STORAGE_CONF's graphroot is the store when --root is not given; --root still
// wins; a file that does not parse is a one-line error naming it.
#[test]
fn containers_storage_conf_chooses_the_store() {
    let work = tempfile::tempdir().unwrap();
    let graphroot = work.path().join("graph");
    let storage_conf = work.path().join("storage.conf");
    std::fs::write(
        &storage_conf,
        format!(
            "[storage]\ndriver = \"overlay\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            graphroot.display(),
            work.path().join("run").display()
        ),
    )
    .unwrap();
    let layout = work.path().join("layout");
    berth_testkit::busybox::image_layout(&layout).unwrap();
    let berth = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .args(args)
            .env("CONTAINERS_STORAGE_CONF", &storage_conf)
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent")
            .output()
            .unwrap()
    };
    let out = berth(&["load", "-i", layout.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(graphroot.join("storage/blobs/sha256").is_dir());
    let listed = berth(&["images", "-q"]);
    assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 1);

    let elsewhere = work.path().join("flag-root");
    let out = berth(&["--root", elsewhere.to_str().unwrap(), "images", "-q"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "");

    std::fs::write(&storage_conf, "[storage\ngraphroot = 1\n").unwrap();
    let out = berth(&["images"]);
    assert_eq!(out.status.code(), Some(125));
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "berth: parsing CONTAINERS_STORAGE_CONF {}",
            storage_conf.display()
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Writes `mib` MiB of incompressible bytes.
fn random_file(path: &Path, mib: usize) {
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut data = vec![0u8; mib << 20];
    for chunk in data.chunks_exact_mut(8) {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        chunk.copy_from_slice(&state.to_le_bytes());
    }
    std::fs::write(path, data).unwrap();
}

/// A registry holding a two-layer image (busybox and 16 MiB of random data) as `name`.
fn two_layer_image(registry: &Registry, work: &Path) -> (String, String) {
    let tree = work.join("tree");
    std::fs::create_dir_all(tree.join("data")).unwrap();
    random_file(&tree.join("data/random.bin"), 16);
    let mut builder = berth_testkit::layout::LayoutBuilder::new(&work.join("big")).unwrap();
    berth_testkit::busybox::rootfs(&work.join("bb")).unwrap();
    builder.add_dir_layer(&work.join("bb")).unwrap();
    builder.add_dir_layer(&tree).unwrap();
    builder.finish(serde_json::json!({"Cmd": ["sh"]}), "latest").unwrap();
    let name = format!("{}/progress/app:1", registry.addr());
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", work.join("big").display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let manifest = Command::new("skopeo")
        .args(["inspect", "--raw", "--tls-verify=false"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    (name, String::from_utf8(manifest.stdout).unwrap())
}

// Without a terminal a pull prints Podman's quiet lines, in order: what it tries, a line per
// layer and for the config, the manifest, then the digest it resolved to.
#[test]
fn progress_without_a_terminal_is_quiet_lines() {
    let registry = Registry::start(Mode::Open).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (name, manifest) = two_layer_image(&registry, work.path());
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let berth = engine();
    let out = berth.run(&["pull", "--tls-verify=false", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stderr(&out).lines().map(str::to_owned).collect();
    let layers: Vec<&str> = manifest["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["digest"].as_str().unwrap())
        .collect();
    assert_eq!(lines.len(), 7, "{lines:#?}");
    assert_eq!(lines[0], format!("Trying to pull {name}..."));
    assert_eq!(lines[1], "Getting image source signatures");
    let mut blobs: Vec<&str> = lines[2..4].iter().map(String::as_str).collect();
    blobs.sort();
    let mut expected: Vec<String> =
        layers.iter().map(|d| format!("Copying blob {d} done")).collect();
    expected.sort();
    assert_eq!(blobs, expected);
    assert_eq!(
        lines[4],
        format!("Copying config {} done", manifest["config"]["digest"].as_str().unwrap())
    );
    assert_eq!(lines[5], "Writing manifest to image destination");
    assert!(lines[6].starts_with(&format!("{name}: digest: sha256:")), "{lines:#?}");

    // A second pull has every layer already.
    let out = berth.run(&["pull", "--tls-verify=false", &name]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains(&format!("Copying blob {} skipped: already exists", layers[0])),
        "{}",
        stderr(&out)
    );
}

// On a terminal a pull draws a bar per layer and ends cleanly: every bar turned into its
// "done" line, the image id last, the cursor not left hidden.
#[test]
fn progress_on_a_terminal_draws_bars_and_ends_cleanly() {
    let registry = Registry::start(Mode::Open).unwrap();
    let work = tempfile::tempdir().unwrap();
    let (name, manifest) = two_layer_image(&registry, work.path());
    let manifest: serde_json::Value = serde_json::from_str(&manifest).unwrap();
    let berth = engine();
    let mut script = Command::new("script");
    script.env("REGISTRIES_CONFIG_PATH", conf_path(&berth));
    let pull = format!(
        "{} --root {} pull --tls-verify=false {name}",
        env!("CARGO_BIN_EXE_berth"),
        berth.root().display()
    );
    let (status, screen) = on_terminal(script, &pull, "");
    assert!(status.success(), "{screen}");
    let big = manifest["layers"][1]["digest"].as_str().unwrap();
    let short = &big["sha256:".len()..][..12];
    assert!(screen.contains(&format!("Copying blob {short} [")), "no bar drawn: {screen:?}");
    assert!(screen.contains(&format!("Copying blob {big} done")), "{screen:?}");
    let id = berth.ok(&["images", "-q", "--no-trunc"]);
    let id = id.trim().trim_start_matches("sha256:");
    assert!(screen.trim_end().ends_with(id), "{screen:?}");
    if let Some(hidden) = screen.rfind("\x1b[?25l") {
        assert!(screen[hidden..].contains("\x1b[?25h"), "cursor left hidden: {screen:?}");
    }
}
