use std::collections::BTreeSet;
use std::fs;
use std::process::Command;

use serde_json::Value;

use super::*;

const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Fixture {
    _dir: tempfile::TempDir,
    rootfs: PathBuf,
    userdata: PathBuf,
    host: HostInfo,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let rootfs = dir.path().join("rootfs");
    berth_testkit::busybox::rootfs(&rootfs).unwrap();
    let userdata = dir.path().join("userdata");
    let host = HostInfo {
        rootless: false,
        uid_map: Vec::new(),
        gid_map: Vec::new(),
        nofile_hard: 20_000,
        nproc_hard: 96_362,
        cgroup_v2: false,
        hostname: "vm".to_owned(),
        dev_dir: PathBuf::from("/dev"),
    };
    Fixture { _dir: dir, rootfs, userdata, host }
}

fn busybox_config() -> ContainerConfig {
    ContainerConfig {
        env: Some(vec![format!("PATH={DEFAULT_PATH}")]),
        cmd: Some(vec!["sh".to_owned()]),
        ..Default::default()
    }
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn no_vars() -> Vec<(String, String)> {
    Vec::new()
}

fn generate_with(
    f: &Fixture,
    image: &ContainerConfig,
    opts: &RunOptions,
) -> Result<GeneratedSpec, SpecError> {
    generate(&SpecInput {
        id: ID,
        image: Some(image),
        rootfs: &f.rootfs,
        options: opts,
        host: &f.host,
        userdata_dir: &f.userdata,
        cgroups_path: None,
        host_env: &no_env,
        host_vars: &no_vars,
    })
}

/// The generated spec as JSON, the way the runtime reads it.
fn json_of(generated: &GeneratedSpec) -> Value {
    serde_json::to_value(&generated.spec).unwrap()
}

fn opts(f: impl FnOnce(&mut RunOptions)) -> RunOptions {
    let mut o = RunOptions::default();
    f(&mut o);
    o
}

fn set(v: &Value) -> BTreeSet<String> {
    v.as_array()
        .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
        .unwrap_or_default()
}

fn env_of(spec: &Value) -> Vec<String> {
    spec["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn busybox_defaults_field_by_field() {
    let f = fixture();
    let g = generate_with(&f, &busybox_config(), &RunOptions::default()).unwrap();
    let s = json_of(&g);
    assert_eq!(s["ociVersion"], OCI_VERSION);
    assert_eq!(s["process"]["args"], json!(["sh"]));
    assert_eq!(s["process"]["terminal"], false);
    assert_eq!(s["process"]["cwd"], "/");
    assert_eq!(
        s["process"]["user"],
        json!({"uid": 0, "gid": 0, "umask": 18, "additionalGids": [10]})
    );
    assert_eq!(
        env_of(&s),
        [
            format!("PATH={DEFAULT_PATH}"),
            "container=berth".into(),
            "HOME=/root".into(),
            "HOSTNAME=0123456789ab".into()
        ]
    );
    assert_eq!(s["hostname"], "0123456789ab");
    let defaults: BTreeSet<String> = caps::DEFAULT_CAPS.iter().map(|c| c.to_string()).collect();
    let capabilities = &s["process"]["capabilities"];
    for kind in ["bounding", "effective", "permitted"] {
        assert_eq!(set(&capabilities[kind]), defaults, "{kind}");
    }
    assert!(capabilities.get("inheritable").is_none() && capabilities.get("ambient").is_none());
    assert_eq!(
        s["process"]["rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 20000, "hard": 20000},
            {"type": "RLIMIT_NPROC", "soft": 96362, "hard": 96362},
        ]),
        "the defaults must be clamped to the host's hard limits"
    );
    assert!(s["process"].get("noNewPrivileges").is_none());
    assert_eq!(s["root"], json!({"path": f.rootfs, "readonly": false}));
    let namespaces: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["pid", "network", "ipc", "uts", "mount"]);
    assert_eq!(s["linux"]["maskedPaths"], json!(mounts::MASKED_PATHS));
    assert_eq!(s["linux"]["readonlyPaths"], json!(mounts::READONLY_PATHS));
    assert_eq!(s["linux"]["resources"]["devices"], json!([{"allow": false, "access": "rwm"}]));
    assert_eq!(s["linux"]["sysctl"], json!({"net.ipv4.ping_group_range": "0 0"}));
    assert!(s["linux"].get("uidMappings").is_none());
    assert_eq!(s["annotations"], json!({"org.opencontainers.image.stopSignal": "15"}));
    let hosts =
        s["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/etc/hosts").unwrap();
    assert_eq!(hosts["source"], json!(f.userdata.join("hosts")));
    assert_eq!(
        (g.stop_signal, g.stop_timeout, g.seccomp.clone()),
        (15, 10, SeccompChoice::Default)
    );
    assert_eq!(g.etc_files.hostname, "0123456789ab");
}

#[test]
fn entrypoint_and_cmd_merge_by_dockers_rules() {
    let f = fixture();
    let image = ContainerConfig {
        entrypoint: Some(vec!["/entry".into(), "-x".into()]),
        cmd: Some(vec!["default".into()]),
        ..busybox_config()
    };
    let args =
        |o: RunOptions| json_of(&generate_with(&f, &image, &o).unwrap())["process"]["args"].clone();
    assert_eq!(args(RunOptions::default()), json!(["/entry", "-x", "default"]));
    assert_eq!(args(opts(|o| o.command = vec!["mine".into()])), json!(["/entry", "-x", "mine"]));
    // --entrypoint resets the image's Cmd.
    assert_eq!(args(opts(|o| o.entrypoint = Some("/bin/echo".into()))), json!(["/bin/echo"]));
    assert_eq!(
        args(opts(|o| {
            o.entrypoint = Some(r#"["/bin/sh","-c"]"#.into());
            o.command = vec!["echo hi".into()];
        })),
        json!(["/bin/sh", "-c", "echo hi"])
    );
    assert_eq!(
        args(opts(|o| {
            o.entrypoint = Some(String::new());
            o.command = vec!["ls".into()];
        })),
        json!(["ls"])
    );
    let err = generate_with(&f, &image, &opts(|o| o.entrypoint = Some(String::new()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "no command or entrypoint provided, and no CMD or ENTRYPOINT from the image"
    );
    assert!(matches!(
        generate_with(&f, &image, &opts(|o| o.entrypoint = Some("[oops".into()))),
        Err(SpecError::Entrypoint { .. })
    ));
}

#[test]
fn environment_tty_workdir_and_hostname() {
    let f = fixture();
    let image = ContainerConfig {
        env: Some(vec!["PATH=/custom".into(), "A=image".into()]),
        working_dir: Some("/srv".into()),
        ..busybox_config()
    };
    let env_file = f.userdata.parent().unwrap().join("env");
    fs::write(&env_file, "A=file\nB=file\n").unwrap();
    let o = opts(|o| {
        o.tty = true;
        o.env_files = vec![env_file.clone()];
        o.env = vec!["B=flag".into(), "HOSTNAME=mine".into()];
        o.hostname = Some("web-1".into());
    });
    let s = json_of(&generate_with(&f, &image, &o).unwrap());
    assert_eq!(
        env_of(&s),
        [
            "PATH=/custom",
            "A=file",
            "B=flag",
            "HOSTNAME=mine",
            "TERM=xterm",
            "container=berth",
            "HOME=/root"
        ]
    );
    assert_eq!(s["process"]["terminal"], true);
    assert_eq!(s["process"]["cwd"], "/srv");
    assert_eq!(s["hostname"], "web-1");
    let s = json_of(&generate_with(&f, &image, &opts(|o| o.workdir = Some("/w".into()))).unwrap());
    assert_eq!(s["process"]["cwd"], "/w");
    let err = generate_with(&f, &image, &opts(|o| o.workdir = Some("rel".into()))).unwrap_err();
    assert_eq!(err.to_string(), "invalid working directory \"rel\": it must be an absolute path");
    assert!(matches!(
        generate_with(&f, &image, &opts(|o| o.hostname = Some("bad host".into()))),
        Err(SpecError::BadHostname { .. })
    ));
}

#[test]
fn users_resolve_in_the_image() {
    let f = fixture();
    let image = busybox_config();
    let user =
        |o: RunOptions| json_of(&generate_with(&f, &image, &o).unwrap())["process"]["user"].clone();
    assert_eq!(
        user(opts(|o| o.user = Some("user".into()))),
        json!({"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [1000]})
    );
    assert_eq!(
        user(opts(|o| o.user = Some("1000".into()))),
        json!({"uid": 1000, "gid": 1000, "umask": 18, "additionalGids": [1000]})
    );
    assert_eq!(
        user(opts(|o| {
            o.user = Some("user:wheel".into());
            o.group_add = vec!["65534".into()];
        })),
        json!({"uid": 1000, "gid": 10, "umask": 18, "additionalGids": [10, 65534]})
    );
    // The image's User applies when -u is absent.
    let as_user = ContainerConfig { user: Some("user".into()), ..busybox_config() };
    let s = json_of(&generate_with(&f, &as_user, &RunOptions::default()).unwrap());
    assert_eq!(s["process"]["user"]["uid"], 1000);
    assert!(env_of(&s).contains(&"HOME=/home/user".to_owned()));
    let err = generate_with(&f, &image, &opts(|o| o.user = Some("bob".into()))).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unable to find user bob: no matching entries in the image's /etc/passwd"
    );
}

#[test]
fn capability_flags() {
    let f = fixture();
    let image = busybox_config();
    let caps_of = |o: RunOptions| {
        json_of(&generate_with(&f, &image, &o).unwrap())["process"]["capabilities"].clone()
    };
    let none = caps_of(opts(|o| o.cap_drop = vec!["ALL".into()]));
    assert_eq!(none, json!({"bounding": [], "effective": [], "permitted": []}));
    // A non-root user: the defaults bound it, only added capabilities are effective.
    let c = caps_of(opts(|o| {
        o.user = Some("1000".into());
        o.cap_add = vec!["net_admin".into()];
    }));
    assert_eq!(set(&c["bounding"]).len(), 12);
    for kind in ["effective", "permitted", "inheritable", "ambient"] {
        assert_eq!(set(&c[kind]), BTreeSet::from(["CAP_NET_ADMIN".to_owned()]), "{kind}");
    }
    let c = caps_of(opts(|o| o.user = Some("1000".into())));
    assert_eq!(set(&c["effective"]).len(), 0);
    assert!(c.get("ambient").is_none());
    let err = generate_with(&f, &image, &opts(|o| o.cap_add = vec!["CAP_FLY".into()])).unwrap_err();
    assert_eq!(err.to_string(), "unknown capability \"CAP_FLY\"");
}

#[test]
fn privileged_turns_off_what_its_doc_says() {
    let f = fixture();
    let g = generate_with(&f, &busybox_config(), &opts(|o| o.privileged = true)).unwrap();
    let s = json_of(&g);
    assert_eq!(set(&s["process"]["capabilities"]["bounding"]).len(), caps::kernel_caps().len());
    assert!(s["linux"].get("maskedPaths").is_none() && s["linux"].get("readonlyPaths").is_none());
    assert_eq!(s["linux"]["resources"]["devices"], json!([{"allow": true, "access": "rwm"}]));
    assert!(s["linux"]["devices"].as_array().unwrap().iter().any(|d| d["path"] == "/dev/null"));
    assert_eq!(g.seccomp, SeccompChoice::Unconfined);
    let sys = s["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/sys").unwrap();
    assert!(set(&sys["options"]).contains("rw"));
    // Namespaces stay.
    assert_eq!(s["linux"]["namespaces"].as_array().unwrap().len(), 5);
    // An explicit profile survives --privileged; a dropped capability stays dropped.
    let profile = f.userdata.parent().unwrap().join("profile.json");
    fs::write(&profile, r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#).unwrap();
    let g = generate_with(
        &f,
        &busybox_config(),
        &opts(|o| {
            o.privileged = true;
            o.cap_drop = vec!["SYS_ADMIN".into()];
            o.security_opt = vec![format!("seccomp={}", profile.display())];
        }),
    )
    .unwrap();
    assert_eq!(g.seccomp, SeccompChoice::File(profile));
    assert!(!set(&json_of(&g)["process"]["capabilities"]["bounding"]).contains("CAP_SYS_ADMIN"));
}

#[test]
fn read_only_tmpfs_and_security_opts() {
    let f = fixture();
    let g = generate_with(
        &f,
        &busybox_config(),
        &opts(|o| {
            o.read_only = true;
            o.tmpfs = vec!["/scratch:size=1m".into()];
            o.security_opt = vec!["no-new-privileges".into(), "seccomp=unconfined".into()];
        }),
    )
    .unwrap();
    let s = json_of(&g);
    assert_eq!(s["root"]["readonly"], true);
    assert_eq!(s["process"]["noNewPrivileges"], true);
    assert_eq!(g.seccomp, SeccompChoice::Unconfined);
    let tmpfs: Vec<&str> = s["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["type"] == "tmpfs" && m["source"] == "tmpfs" && m["destination"] != "/dev")
        .map(|m| m["destination"].as_str().unwrap())
        .collect();
    assert_eq!(tmpfs, ["/scratch", "/run", "/tmp", "/var/tmp"]);
}

#[test]
fn host_network_and_rootless() {
    let mut f = fixture();
    let s = json_of(
        &generate_with(&f, &busybox_config(), &opts(|o| o.network = Some("host".into()))).unwrap(),
    );
    let namespaces: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["pid", "ipc", "uts", "mount"]);
    assert_eq!(s["hostname"], "vm");
    assert!(s["linux"].get("sysctl").is_none());
    assert!(s["mounts"].as_array().unwrap().iter().any(|m| m["destination"] == "/etc/resolv.conf"));

    f.host.rootless = true;
    f.host.cgroup_v2 = true;
    f.host.uid_map = vec![
        IdMap { container_id: 0, host_id: 1500, size: 1 },
        IdMap { container_id: 1, host_id: 200_000, size: 65_536 },
    ];
    f.host.gid_map = vec![IdMap { container_id: 0, host_id: 1500, size: 1 }];
    let s = json_of(&generate_with(&f, &busybox_config(), &RunOptions::default()).unwrap());
    let namespaces: Vec<&str> = s["linux"]["namespaces"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["type"].as_str().unwrap())
        .collect();
    assert_eq!(namespaces, ["pid", "network", "ipc", "uts", "mount", "cgroup", "user"]);
    assert_eq!(
        s["linux"]["uidMappings"],
        json!([{"containerID": 0, "hostID": 1500, "size": 1}, {"containerID": 1, "hostID": 200000, "size": 65536}])
    );
    assert!(s["linux"].get("resources").is_none());
    let pts =
        s["mounts"].as_array().unwrap().iter().find(|m| m["destination"] == "/dev/pts").unwrap();
    assert!(!set(&pts["options"]).contains("gid=5"), "gid 5 is not mapped, devpts would fail");
}

#[test]
fn ulimits_labels_annotations_and_stop_signal() {
    let f = fixture();
    let image = ContainerConfig {
        labels: Some(BTreeMap::from([("a".into(), "image".into()), ("b".into(), "image".into())])),
        stop_signal: Some("SIGQUIT".into()),
        ..busybox_config()
    };
    let g = generate_with(
        &f,
        &image,
        &opts(|o| {
            o.ulimits = vec!["nofile=100:200".into(), "core=0".into()];
            o.labels = vec!["b=flag".into(), "c".into()];
            o.annotations = vec!["io.example/x=1".into()];
            o.stop_timeout = Some(3);
        }),
    )
    .unwrap();
    let s = json_of(&g);
    assert_eq!(
        s["process"]["rlimits"],
        json!([
            {"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200},
            {"type": "RLIMIT_NPROC", "soft": 96362, "hard": 96362},
            {"type": "RLIMIT_CORE", "soft": 0, "hard": 0},
        ])
    );
    assert_eq!(
        g.labels,
        BTreeMap::from([
            ("a".into(), "image".into()),
            ("b".into(), "flag".into()),
            ("c".into(), String::new())
        ])
    );
    assert_eq!(s["annotations"]["io.example/x"], "1");
    assert_eq!(s["annotations"]["org.opencontainers.image.stopSignal"], "3");
    assert_eq!((g.stop_signal, g.stop_timeout), (3, 3));
    let g = generate_with(&f, &image, &opts(|o| o.stop_signal = Some("USR1".into()))).unwrap();
    assert_eq!(g.stop_signal, 10);
}

// Bad input fails with one line naming the flag and the value, before anything is made.
#[test]
fn bad_input_is_one_line() {
    let f = fixture();
    let cases: Vec<(RunOptions, &str)> = vec![
        (
            opts(|o| o.ulimits = vec!["nofile=9:1".into()]),
            "invalid --ulimit \"nofile=9:1\": the soft limit 9 is above the hard limit 1",
        ),
        (opts(|o| o.stop_signal = Some("SIGNOPE".into())), "invalid signal \"SIGNOPE\""),
        (opts(|o| o.labels = vec!["=x".into()]), "invalid --label \"=x\": the key is empty"),
        (
            opts(|o| {
                o.cap_add = vec!["ALL".into()];
                o.cap_drop = vec!["ALL".into()];
            }),
            "adding all capabilities and dropping all capabilities is not allowed",
        ),
        (
            opts(|o| o.tmpfs = vec!["relative".into()]),
            "invalid --tmpfs \"relative\": the destination must be an absolute path",
        ),
        (
            opts(|o| o.security_opt = vec!["seccomp".into()]),
            "invalid --security-opt \"seccomp\": seccomp needs a profile file or \"unconfined\"",
        ),
        (
            opts(|o| o.env = vec!["=1".into()]),
            "invalid environment variable \"=1\": the name is empty",
        ),
        (
            opts(|o| o.group_add = vec!["ghosts".into()]),
            "unable to find group ghosts: no matching entries in the image's /etc/group",
        ),
    ];
    for (o, message) in cases {
        let err = generate_with(&f, &busybox_config(), &o).unwrap_err();
        assert_eq!(err.to_string(), message);
        assert!(!err.to_string().contains('\n'));
    }
    assert!(!f.userdata.exists(), "spec generation wrote files");
}

/// `podman create` + `podman init` in a throwaway root with the busybox image, returning the
/// config.json Podman wrote.
struct Podman {
    dir: tempfile::TempDir,
}

impl Podman {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let layout = berth_testkit::busybox::image_layout(&dir.path().join("layout")).unwrap();
        let store = format!(
            "containers-storage:[vfs@{}+{}]localhost/busybox:latest",
            dir.path().join("root").display(),
            dir.path().join("run").display()
        );
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", &format!("oci:{}:latest", layout.dir.display()), &store])
            .output()
            .expect("skopeo is installed (scripts/setup-host)");
        assert!(out.status.success(), "skopeo copy: {}", String::from_utf8_lossy(&out.stderr));
        Self { dir }
    }

    fn podman(&self) -> Command {
        let mut cmd = Command::new("podman");
        cmd.arg("--root")
            .arg(self.dir.path().join("root"))
            .arg("--runroot")
            .arg(self.dir.path().join("run"))
            .args([
                "--storage-driver",
                "vfs",
                "--cgroup-manager",
                "cgroupfs",
                "--events-backend",
                "none",
            ]);
        cmd
    }

    fn config(&self, flags: &[&str]) -> Value {
        let (nofile, nproc) = (20_000, 96_362);
        let out = self
            .podman()
            .args(["create", "--network", "none", "--runtime", "runc"])
            .args([
                "--ulimit",
                &format!("nofile={nofile}:{nofile}"),
                "--ulimit",
                &format!("nproc={nproc}:{nproc}"),
            ])
            .args(flags)
            .args(["localhost/busybox:latest", "true"])
            .output()
            .unwrap();
        assert!(out.status.success(), "podman create: {}", String::from_utf8_lossy(&out.stderr));
        let id = String::from_utf8(out.stdout).unwrap().trim().to_owned();
        // init writes config.json; whether runc then gets the container going does not matter.
        let _ = self.podman().args(["init", &id]).output().unwrap();
        let path =
            self.dir.path().join("root/vfs-containers").join(&id).join("userdata/config.json");
        let config = serde_json::from_slice(&fs::read(&path).unwrap()).unwrap();
        let _ = self.podman().args(["rm", "-f", &id]).output();
        config
    }
}

impl Drop for Podman {
    fn drop(&mut self) {
        let _ = self.podman().args(["rm", "-af"]).output();
    }
}

/// The mounts berth and Podman share, as (destination, type, options), sorted (Podman orders
/// mounts of equal depth at random); Podman's /dev/shm is a host-side tmpfs bound in and its
/// /run/.containerenv a Podman marker, so both are left out.
fn comparable_mounts(spec: &Value) -> BTreeSet<(String, String, Vec<String>)> {
    spec["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| !matches!(m["destination"].as_str(), Some("/dev/shm" | "/run/.containerenv")))
        .map(|m| {
            let options: Vec<String> = m["options"]
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o.as_str().unwrap().to_owned())
                .collect();
            (
                m["destination"].as_str().unwrap().to_owned(),
                m["type"].as_str().unwrap().to_owned(),
                options,
            )
        })
        .collect()
}

fn user_of(spec: &Value) -> (u64, u64, BTreeSet<u64>) {
    let user = &spec["process"]["user"];
    let gids = user["additionalGids"]
        .as_array()
        .map(|a| a.iter().map(|g| g.as_u64().unwrap()).collect())
        .unwrap_or_default();
    (user["uid"].as_u64().unwrap(), user["gid"].as_u64().unwrap(), gids)
}

/// linux.seccomp with the default `valueTwo: 0` of each argument left out (oci-spec writes it,
/// Podman omits it; both mean the same).
fn seccomp_of(spec: &Value) -> Value {
    let mut seccomp = spec["linux"].get("seccomp").cloned().unwrap_or(Value::Null);
    if let Some(syscalls) = seccomp.get_mut("syscalls").and_then(Value::as_array_mut) {
        for rule in syscalls {
            if let Some(args) = rule.get_mut("args").and_then(Value::as_array_mut) {
                for arg in args {
                    if arg.get("valueTwo") == Some(&json!(0)) {
                        arg.as_object_mut().unwrap().remove("valueTwo");
                    }
                }
            }
        }
    }
    seccomp
}

fn caps_of(spec: &Value) -> BTreeMap<String, BTreeSet<String>> {
    let caps = &spec["process"]["capabilities"];
    ["bounding", "effective", "permitted", "inheritable", "ambient"]
        .into_iter()
        .map(|k| (k.to_owned(), set(&caps[k])))
        .collect()
}

// berth's defaults are Podman's: for the same image and flags, capabilities, user and groups,
// masked and read-only paths, mounts, namespaces and rlimits come out the same.
#[test]
fn defaults_match_podman() {
    let podman = Podman::new();
    let f = fixture();
    let image = ContainerConfig { cmd: Some(vec!["true".into()]), ..busybox_config() };
    let cases: Vec<(Vec<&str>, RunOptions)> = vec![
        (vec![], RunOptions::default()),
        (vec!["-u", "user"], opts(|o| o.user = Some("user".into()))),
        (
            vec!["-u", "user:wheel", "--group-add", "65534"],
            opts(|o| {
                o.user = Some("user:wheel".into());
                o.group_add = vec!["65534".into()];
            }),
        ),
        (
            vec!["-u", "1000", "--cap-add", "NET_ADMIN"],
            opts(|o| {
                o.user = Some("1000".into());
                o.cap_add = vec!["NET_ADMIN".into()];
            }),
        ),
        (vec!["--cap-drop", "ALL"], opts(|o| o.cap_drop = vec!["ALL".into()])),
        (
            vec!["--read-only", "--tmpfs", "/scratch:size=1m", "-t"],
            opts(|o| {
                o.read_only = true;
                o.tmpfs = vec!["/scratch:size=1m".into()];
                o.tty = true;
            }),
        ),
        (vec!["--privileged"], opts(|o| o.privileged = true)),
        (
            vec!["--security-opt", "no-new-privileges"],
            opts(|o| o.security_opt = vec!["no-new-privileges".into()]),
        ),
    ];
    for (flags, mut o) in cases {
        // Podman's side runs with --network none (see PodmanSpecs::config).
        o.network.get_or_insert_with(|| "none".into());
        let theirs = podman.config(&flags);
        let ours = json_of(&generate_with(&f, &image, &o).unwrap());
        let what = flags.join(" ");
        assert_eq!(caps_of(&ours), caps_of(&theirs), "capabilities with [{what}]");
        assert_eq!(user_of(&ours), user_of(&theirs), "user with [{what}]");
        assert_eq!(comparable_mounts(&ours), comparable_mounts(&theirs), "mounts with [{what}]");
        assert_eq!(seccomp_of(&ours), seccomp_of(&theirs), "linux.seccomp with [{what}]");
        for key in ["maskedPaths", "readonlyPaths", "namespaces", "sysctl"] {
            assert_eq!(
                ours["linux"].get(key),
                theirs["linux"].get(key),
                "linux.{key} with [{what}]"
            );
        }
        assert_eq!(
            ours["linux"]["resources"]["devices"], theirs["linux"]["resources"]["devices"],
            "devices with [{what}]"
        );
        assert_eq!(
            ours["process"]["rlimits"], theirs["process"]["rlimits"],
            "rlimits with [{what}]"
        );
        assert_eq!(
            ours["process"].get("noNewPrivileges"),
            theirs["process"].get("noNewPrivileges"),
            "[{what}]"
        );
        let terminal = |s: &Value| s["process"].get("terminal").cloned().unwrap_or(json!(false));
        assert_eq!(terminal(&ours), terminal(&theirs), "terminal with [{what}]");
        assert_eq!(ours["process"]["args"], theirs["process"]["args"], "[{what}]");
        assert_eq!(
            ours["root"]["readonly"],
            theirs["root"].get("readonly").cloned().unwrap_or(json!(false)),
            "[{what}]"
        );
        // Podman always sets TERM and says container=podman; everything else must agree.
        let env = |s: &Value| -> BTreeSet<String> {
            env_of(s)
                .into_iter()
                .filter(|e| {
                    !e.starts_with("container=")
                        && !e.starts_with("TERM=")
                        && !e.starts_with("HOSTNAME=")
                })
                .collect()
        };
        assert_eq!(env(&ours), env(&theirs), "env with [{what}]");
        if o.privileged {
            let paths = |s: &Value| -> BTreeSet<String> {
                s["linux"]["devices"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|d| d["path"].as_str().unwrap().to_owned())
                    .collect()
            };
            assert_eq!(paths(&ours), paths(&theirs), "host devices with --privileged");
        }
    }
}

// Rootless, the spec gets a user namespace whose maps are the user's own id plus its
// /etc/subuid and /etc/subgid ranges: run as the unprivileged test user and look.
#[test]
fn rootless_detection_as_the_test_user() {
    let user = berth_testkit::user::TestUser::get();
    let exe = berth_testkit::user::stage_binary(&std::env::current_exe().unwrap()).unwrap();
    let out = user
        .command(&exe)
        .args([
            "--exact",
            "spec::generate::tests::rootless_detection_helper",
            "--ignored",
            "--nocapture",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "helper failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line =
        stdout.lines().find_map(|l| l.strip_prefix("MAPS ")).expect("the helper printed its maps");
    let maps: Value = serde_json::from_str(line).unwrap();
    assert_eq!(
        maps,
        json!({
            "rootless": true,
            "uid": [[0, user.uid(), 1], [1, user.subuid().start, user.subuid().count]],
            "gid": [[0, user.gid(), 1], [1, user.subgid().start, user.subgid().count]],
        })
    );
}

/// The test user's side of the test above.
#[test]
#[ignore = "run as the test user by rootless_detection_as_the_test_user"]
fn rootless_detection_helper() {
    let host = HostInfo::detect().unwrap();
    let list = |maps: &[IdMap]| -> Vec<[u32; 3]> {
        maps.iter().map(|m| [m.container_id, m.host_id, m.size]).collect()
    };
    println!(
        "MAPS {}",
        json!({"rootless": host.rootless, "uid": list(&host.uid_map), "gid": list(&host.gid_map)})
    );
}
