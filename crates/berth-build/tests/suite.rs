//! The Dockerfile suite under tests/dockerfiles: every file parses, plans and forms a stage
//! graph; together they use every instruction, mount type and heredoc form; every file under
//! bad/ fails with the error (and position) its first line or .expected file names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use berth_build::dockerfile::{
    parse_file, Command, Dockerfile, Healthcheck, InstructionKind, MountKind,
};
use berth_build::graph::Graph;
use berth_build::plan::{plan, Base, Plan, PlanOptions};

fn suite_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/dockerfiles")
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "Dockerfile"))
        .collect();
    out.sort();
    out
}

fn load(name: &str) -> (Dockerfile, Plan, Graph) {
    let path = suite_dir().join(name);
    let dockerfile = parse_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let plan = plan(&dockerfile, &PlanOptions::default()).unwrap_or_else(|e| panic!("{e}"));
    let graph = Graph::new(&plan).unwrap_or_else(|e| panic!("{e}"));
    (dockerfile, plan, graph)
}

/// The whole cause chain on one line, as the CLI shows it.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[test]
fn every_good_file_parses_plans_and_graphs() {
    let mut keywords = BTreeSet::new();
    let mut mounts = BTreeSet::new();
    let mut heredoc_forms = BTreeSet::new();
    let list = files(&suite_dir());
    assert!(list.len() >= 6, "{list:?}");
    for path in list {
        let name = path.file_name().unwrap().to_str().unwrap().to_owned();
        let (dockerfile, _, graph) = load(&name);
        let target = graph.target(None).unwrap();
        assert!(!graph.batches(target).is_empty());
        for instruction in &dockerfile.instructions {
            keywords.insert(instruction.keyword());
            let kind = match &instruction.kind {
                InstructionKind::Onbuild(inner) => {
                    keywords.insert(inner.keyword());
                    &inner.kind
                }
                kind => kind,
            };
            let docs = match kind {
                InstructionKind::Run(run) => {
                    mounts.extend(run.mounts.iter().map(|m| format!("{:?}", m.kind)));
                    run.heredocs.clone()
                }
                InstructionKind::Copy(copy) => copy.heredocs.clone(),
                InstructionKind::Add(add) => add.heredocs.clone(),
                _ => Vec::new(),
            };
            if docs.len() > 1 {
                heredoc_forms.insert("several");
            }
            for doc in docs {
                heredoc_forms.insert(if doc.chomp { "chomp" } else { "plain" });
                heredoc_forms.insert(if doc.expand { "expand" } else { "quoted" });
                if doc.fd.is_some() {
                    heredoc_forms.insert("fd");
                }
            }
        }
    }
    let all = [
        "ADD",
        "ARG",
        "CMD",
        "COPY",
        "ENTRYPOINT",
        "ENV",
        "EXPOSE",
        "FROM",
        "HEALTHCHECK",
        "LABEL",
        "MAINTAINER",
        "ONBUILD",
        "RUN",
        "SHELL",
        "STOPSIGNAL",
        "USER",
        "VOLUME",
        "WORKDIR",
    ];
    assert_eq!(keywords, BTreeSet::from(all));
    let kinds: BTreeSet<String> =
        [MountKind::Bind, MountKind::Cache, MountKind::Secret, MountKind::Tmpfs, MountKind::Ssh]
            .iter()
            .map(|k| format!("{k:?}"))
            .collect();
    assert_eq!(mounts, kinds);
    assert_eq!(
        heredoc_forms,
        BTreeSet::from(["chomp", "expand", "fd", "plain", "quoted", "several"])
    );
}

#[test]
fn every_bad_file_fails_with_its_error() {
    let list = files(&suite_dir().join("bad"));
    assert!(list.len() >= 10);
    for path in list {
        let sidecar = path.with_extension("expected");
        let expected = match std::fs::read_to_string(&sidecar) {
            Ok(text) => text.trim().to_owned(),
            Err(_) => {
                let text = std::fs::read_to_string(&path).unwrap();
                let first = text.lines().next().unwrap_or_default();
                first
                    .strip_prefix("# error: ")
                    .unwrap_or_else(|| panic!("{path:?} names no error"))
                    .to_owned()
            }
        };
        let error = match parse_file(&path) {
            Err(e) => chain(&e),
            Ok(dockerfile) => match plan(&dockerfile, &PlanOptions::default()) {
                Err(e) => chain(&e),
                Ok(plan) => match Graph::new(&plan) {
                    Err(e) => chain(&e),
                    Ok(_) => panic!("{path:?} was accepted"),
                },
            },
        };
        assert!(
            error.contains(&expected),
            "{path:?}:\n  expected {expected:?}\n  in       {error:?}"
        );
        let shown = path.display().to_string();
        assert!(error.starts_with(&shown), "errors name the file: {error}");
        // An error with a position shows the line it points at.
        if let Some((line, _)) =
            expected.split_once(':').filter(|(l, _)| l.parse::<usize>().is_ok())
        {
            let gutter = format!("\n {line} | ");
            assert!(error.contains(&gutter), "{path:?} shows no line: {error}");
        }
    }
}

#[test]
fn python_app() {
    let (_, plan, graph) = load("python-app.Dockerfile");
    assert_eq!(plan.stages.len(), 1);
    assert_eq!(plan.stages[0].base, Base::Image("busybox:latest".into()));
    let steps = &plan.stages[0].steps;
    assert_eq!(steps[3].kind, InstructionKind::Workdir("/srv/app".into()));
    assert_eq!(
        steps.last().unwrap().kind,
        InstructionKind::Cmd(Command::Exec(vec!["--port".into(), "8000".into()]))
    );
    assert!(matches!(
        &steps[9].kind,
        InstructionKind::Healthcheck(Healthcheck::Check { retries: None, .. })
    ));
    assert_eq!(graph.needed(0), [0]);
}

#[test]
fn multi_stage_target_stops_at_the_build_stage() {
    let (_, plan, graph) = load("multi-stage.Dockerfile");
    assert_eq!(plan.stages[0].base, Base::Image("golang:1.22".into()));
    assert_eq!(plan.stages[1].base, Base::Scratch);
    let last = graph.target(None).unwrap();
    assert_eq!(graph.needed(last), [0, 1]);
    assert_eq!(graph.needed(graph.target(Some("build")).unwrap()), [0]);
    let InstructionKind::Run(run) = &plan.stages[0].steps[5].kind else { panic!() };
    let Command::Shell(text) = &run.command else { panic!() };
    assert!(text.starts_with("CGO_ENABLED=0 GOOS=$TARGETOS"), "RUN text is not expanded: {text}");
    assert!(plan.stages[0].steps[5].used_args.contains_key("TARGETARCH"));
}

#[test]
fn backtick_escape_file() {
    let (dockerfile, plan, _) = load("escape-backtick.Dockerfile");
    assert_eq!(dockerfile.directives.escape, '`');
    let InstructionKind::Run(run) = &plan.stages[0].steps[0].kind else { panic!() };
    assert_eq!(run.command, Command::Shell("echo C:\\Windows\\System32     && echo done".into()));
    let InstructionKind::Env(env) = &plan.stages[0].steps[1].kind else { panic!() };
    assert_eq!(env[0].value, "C:\\Tools");
    let InstructionKind::Copy(copy) = &plan.stages[0].steps[2].kind else { panic!() };
    assert_eq!(copy.sources, vec!["a\\b.txt".to_owned()]);
}

#[test]
fn continuations_file() {
    let (_, plan, _) = load("continuations.Dockerfile");
    let steps = &plan.stages[0].steps;
    let InstructionKind::Run(run) = &steps[0].kind else { panic!() };
    assert_eq!(run.command, Command::Shell("set -e;     echo one;     echo two".into()));
    assert_eq!(steps[1].position.line, 11);
    assert_eq!(
        steps[2].kind,
        InstructionKind::Entrypoint(Command::Exec(vec!["/bin/sh".into(), "-c".into()]))
    );
    assert_eq!(
        steps[3].kind,
        InstructionKind::Cmd(Command::Exec(vec![
            "echo".into(),
            "a \"quoted\" word".into(),
            "back\\slash".into()
        ]))
    );
    let InstructionKind::Env(env) = &steps[4].kind else { panic!() };
    let values: Vec<&str> = env.iter().map(|p| p.value.as_str()).collect();
    // D sees the scope before this ENV, where A and B are not set yet.
    assert_eq!(values, ["quoted value", "single $quoted", "escaped space", "-"]);
}

#[test]
fn every_instruction_file_details() {
    let (_, plan, graph) = load("every-instruction.Dockerfile");
    assert_eq!(plan.stages[0].base, Base::Image("busybox:latest".into()));
    assert_eq!(plan.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(plan.stages[1].base, Base::Stage(0));
    assert_eq!(graph.needed(1), [0, 1]);
    assert!(graph.nodes[0].images.contains("busybox:latest"));
    let steps = &plan.stages[0].steps;
    let workdirs: Vec<&InstructionKind> = steps
        .iter()
        .map(|s| &s.kind)
        .filter(|k| matches!(k, InstructionKind::Workdir(_)))
        .collect();
    assert_eq!(workdirs[0], &InstructionKind::Workdir("/home/user".into()));
    let user = steps.iter().find(|s| matches!(s.kind, InstructionKind::User(_))).unwrap();
    assert_eq!(user.kind, InstructionKind::User("user:1000".into()));
    let InstructionKind::Run(secret_run) = &steps
        .iter()
        .find(|s| matches!(&s.kind, InstructionKind::Run(r) if r.mounts.len() == 6))
        .unwrap()
        .kind
    else {
        panic!()
    };
    assert_eq!(secret_run.mounts[4].uid, Some(1000), "uid=${{UID}} is expanded, then parsed");
    assert_eq!(secret_run.mounts[4].target.as_deref(), Some("/var/cache/apk"));
    assert_eq!(secret_run.mounts[1].env.as_deref(), Some("AWS_KEY"));
}
