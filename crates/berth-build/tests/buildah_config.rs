//! The image config berth derives from a Dockerfile equals what `buildah bud` makes of it:
//! Env, Labels, User, WorkingDir, ExposedPorts, Volumes, Entrypoint, Cmd, StopSignal,
//! Healthcheck, OnBuild and Shell, for the files under tests/dockerfiles/config, with and
//! without build args, for the last stage and for `--target`.
//!
//! The files start FROM scratch and run nothing, so buildah needs no image and no runtime.

use std::path::{Path, PathBuf};
use std::process::Command;

use berth_build::args::BuildArgs;
use berth_build::config::stage_config;
use berth_build::dockerfile::parse_file;
use berth_build::graph::Graph;
use berth_build::plan::{plan, Base, PlanOptions};
use serde_json::{Map, Value};

const FIELDS: [&str; 12] = [
    "Env",
    "Labels",
    "User",
    "WorkingDir",
    "ExposedPorts",
    "Volumes",
    "Entrypoint",
    "Cmd",
    "StopSignal",
    "Healthcheck",
    "OnBuild",
    "Shell",
];

fn config_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dockerfiles/config")
}

struct Buildah {
    root: tempfile::TempDir,
}

impl Buildah {
    fn new() -> Self {
        Self { root: tempfile::tempdir().unwrap() }
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("buildah");
        let root = self.root.path();
        cmd.arg("--root").arg(root.join("root")).arg("--runroot").arg(root.join("run"));
        cmd.arg("--storage-driver").arg("vfs");
        cmd.env("REGISTRIES_CONFIG_PATH", "/dev/null");
        cmd
    }

    /// `buildah bud` of `file`, returning the image's Docker-format config object.
    fn config(&self, file: &Path, target: Option<&str>, args: &[(&str, &str)]) -> Value {
        let context = tempfile::tempdir().unwrap();
        let mut cmd = self.command();
        cmd.args(["bud", "--format", "docker", "--layers=false", "-q", "--iidfile"]);
        let iidfile = context.path().join("iid");
        cmd.arg(&iidfile).arg("-f").arg(file);
        if let Some(target) = target {
            cmd.args(["--target", target]);
        }
        for (k, v) in args {
            cmd.arg("--build-arg").arg(format!("{k}={v}"));
        }
        cmd.arg(context.path());
        let output =
            cmd.output().expect("buildah must be installed (scripts/setup-host installs it)");
        assert!(
            output.status.success(),
            "buildah bud failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let id = std::fs::read_to_string(&iidfile).unwrap();
        let output =
            self.command().args(["inspect", "--type", "image", id.trim()]).output().unwrap();
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let inspect: Value = serde_json::from_slice(&output.stdout).unwrap();
        inspect["Docker"]["config"].clone()
    }
}

/// berth's config of the target stage, applying each stage on its parent's result.
fn berth_config(file: &Path, target: Option<&str>, args: &[(&str, &str)]) -> Value {
    let dockerfile = parse_file(file).unwrap();
    let mut build_args = BuildArgs::new();
    for (k, v) in args {
        build_args = build_args.with(k, v);
    }
    let plan = plan(&dockerfile, &PlanOptions { build_args, ..PlanOptions::default() }).unwrap();
    let graph = Graph::new(&plan).unwrap();
    let target = graph.target(target).unwrap();
    let mut configs: Vec<Value> = Vec::new();
    for stage in &plan.stages[..=target] {
        let base = match &stage.base {
            Base::Stage(i) => configs[*i].clone(),
            Base::Scratch => Value::Null,
            Base::Image(image) => panic!("the config suite uses no images, found {image}"),
        };
        configs.push(stage_config(stage, &base).unwrap().0.to_json());
    }
    configs.pop().unwrap()
}

/// The compared fields, with empty values dropped and buildah's own label removed.
fn comparable(config: &Value) -> Map<String, Value> {
    let mut out = Map::new();
    for field in FIELDS {
        let mut value = config.get(field).cloned().unwrap_or(Value::Null);
        if field == "Labels" {
            if let Value::Object(labels) = &mut value {
                labels.remove("io.buildah.version");
            }
        }
        let empty = match &value {
            Value::Null => true,
            Value::String(s) => s.is_empty(),
            Value::Array(a) => a.is_empty(),
            Value::Object(o) => o.is_empty(),
            _ => false,
        };
        if !empty {
            out.insert(field.to_owned(), value);
        }
    }
    out
}

fn compare(buildah: &Buildah, name: &str, target: Option<&str>, args: &[(&str, &str)]) {
    let file = config_dir().join(name);
    let theirs = comparable(&buildah.config(&file, target, args));
    let ours = comparable(&berth_config(&file, target, args));
    assert_eq!(
        Value::Object(ours),
        Value::Object(theirs),
        "{name} target {target:?} args {args:?}: berth (left) and buildah (right) differ"
    );
}

#[test]
fn configs_match_buildah() {
    let buildah = Buildah::new();
    compare(&buildah, "all-config.Dockerfile", None, &[]);
    compare(
        &buildah,
        "all-config.Dockerfile",
        Some("base"),
        &[("VERSION", "2.5"), ("FLAVOUR", "spicy")],
    );
    compare(&buildah, "entrypoint-shell.Dockerfile", None, &[]);
    compare(&buildah, "env-args.Dockerfile", None, &[]);
    compare(&buildah, "env-args.Dockerfile", None, &[("A", "cli"), ("B", "bee"), ("TAG", "t")]);
}
