//! The image commands as a user runs them: load, images, inspect --format, tag, rmi, save,
//! pull and push against the reference registry, and the errors they print.

use std::path::Path;
use std::process::{Command, Output};

use berth_testkit::registry::{Mode, Registry};

struct Berth {
    root: tempfile::TempDir,
}

impl Berth {
    fn new() -> Self {
        Self { root: tempfile::tempdir().unwrap() }
    }

    fn run(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_berth"))
            .arg("--root")
            .arg(self.root.path())
            .args(args)
            .env("REGISTRIES_CONFIG_PATH", "/nonexistent")
            .output()
            .expect("running berth")
    }

    /// Runs and expects success; returns standard output.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "berth {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// Loads the busybox layout and names it `name`; returns the image id.
    fn busybox(&self, name: &str) -> String {
        let layout = tempfile::tempdir().unwrap();
        berth_testkit::busybox::image_layout(layout.path()).unwrap();
        let out = self.ok(&["load", "-i", layout.path().to_str().unwrap()]);
        let id = out.trim().strip_prefix("Loaded image: sha256:").unwrap().to_owned();
        self.ok(&["tag", &id, name]);
        id
    }
}

// images lists Podman's columns; -q ids; inspect --format reads Go templates.
#[test]
fn load_list_inspect_tag_and_remove() {
    let berth = Berth::new();
    let id = berth.busybox("localhost/bb:1");
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
    let berth = Berth::new();
    let id = berth.busybox("localhost/bb:saved");
    let dir = tempfile::tempdir().unwrap();
    let archive = dir.path().join("bb.tar");
    berth.ok(&["save", "-o", archive.to_str().unwrap(), "bb:saved"]);
    let out = Command::new("skopeo")
        .args(["inspect", "--format", "{{.Digest}} {{.Layers}}"])
        .arg(format!("docker-archive:{}", archive.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let other = Berth::new();
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
    let berth = Berth::new();
    let name = format!("{}/cli/bb:1", registry.addr());
    let id = berth.busybox(&name);
    berth.ok(&["push", "--tls-verify=false", &name]);

    let other = Berth::new();
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
    let berth = Berth::new();
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
    berth.busybox(&name);
    berth.ok(&["push", "--tls-verify=false", "--authfile", authfile.to_str().unwrap(), &name]);
    berth.ok(&["logout", "--authfile", authfile.to_str().unwrap(), &registry.addr()]);
    assert!(
        !Path::new(&authfile).exists()
            || !std::fs::read_to_string(&authfile).unwrap().contains(&registry.addr())
    );
}
