use super::*;
use crate::args::Platform;
use crate::dockerfile::{parse, Command};

fn planned(text: &str, args: &[(&str, &str)]) -> Plan {
    let dockerfile = parse("Dockerfile", text).unwrap();
    let mut build_args = BuildArgs::new();
    for (k, v) in args {
        build_args = build_args.with(k, v);
    }
    let options = PlanOptions { build_args, ..PlanOptions::default() };
    plan(&dockerfile, &options).unwrap()
}

fn used(step: &Step) -> Vec<(&str, &str)> {
    step.used_args.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

#[test]
fn global_args_reach_from_but_not_the_stage() {
    let p = planned("ARG VERSION=1.36\nFROM busybox:$VERSION\nWORKDIR /v$VERSION\n", &[]);
    assert_eq!(p.stages[0].base, Base::Image("busybox:1.36".into()));
    assert_eq!(p.stages[0].from_args.get("VERSION").map(String::as_str), Some("1.36"));
    assert_eq!(p.stages[0].steps[0].kind, InstructionKind::Workdir("/v".into()));
    assert!(p.stages[0].steps[0].used_args.is_empty());
}

#[test]
fn redeclared_global_arg_inherits_its_value_and_build_args_override() {
    let text = "ARG VERSION=1\nFROM a\nARG VERSION\nWORKDIR /v$VERSION\nFROM b\nARG VERSION=9\nWORKDIR /v$VERSION\n";
    let p = planned(text, &[]);
    assert_eq!(p.stages[0].steps[1].kind, InstructionKind::Workdir("/v1".into()));
    assert_eq!(used(&p.stages[0].steps[1]), [("VERSION", "1")]);
    assert_eq!(p.stages[1].steps[1].kind, InstructionKind::Workdir("/v9".into()));
    let p = planned(text, &[("VERSION", "5")]);
    assert_eq!(p.stages[0].steps[1].kind, InstructionKind::Workdir("/v5".into()));
    assert_eq!(p.stages[1].steps[1].kind, InstructionKind::Workdir("/v5".into()));
}

#[test]
fn env_overrides_arg_even_when_declared_later() {
    let p = planned("FROM a\nENV MODE=env\nARG MODE=arg\nUSER $MODE\n", &[("MODE", "cli")]);
    let step = &p.stages[0].steps[2];
    assert_eq!(step.kind, InstructionKind::User("env".into()));
    assert!(step.used_args.is_empty(), "an ENV value is not a build arg");
}

#[test]
fn env_values_see_the_scope_before_the_instruction() {
    let p = planned("FROM a\nENV A=1\nENV A=2 B=$A\n", &[]);
    let InstructionKind::Env(pairs) = &p.stages[0].steps[1].kind else { panic!() };
    assert_eq!(pairs[1].value, "1");
    let env: Vec<(&str, &str)> =
        p.stages[0].final_env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    assert_eq!(env, [("PATH", crate::config::DEFAULT_PATH), ("A", "2"), ("B", "1")]);
}

#[test]
fn run_uses_every_arg_in_scope_and_is_not_expanded() {
    let p = planned("FROM a\nARG A=1\nARG B\nARG C\nRUN echo $A\nCOPY x /x\n", &[("C", "3")]);
    let run = &p.stages[0].steps[3];
    assert!(
        matches!(&run.kind, InstructionKind::Run(r) if r.command == Command::Shell("echo $A".into()))
    );
    assert_eq!(used(run), [("A", "1"), ("C", "3")]);
    assert_eq!(run.run_env, vec![("A".into(), "1".into()), ("C".into(), "3".into())]);
    assert!(p.stages[0].steps[4].used_args.is_empty(), "COPY without variables uses no arg");
}

#[test]
fn copy_records_the_args_it_expands() {
    let p =
        planned("FROM a\nARG APP=web\nARG OTHER=x\nCOPY --chown=${APP} src/$APP /srv/$APP\n", &[]);
    let step = &p.stages[0].steps[2];
    let InstructionKind::Copy(copy) = &step.kind else { panic!() };
    assert_eq!(
        (copy.chown.as_deref(), copy.sources[0].as_str(), copy.destination.as_str()),
        (Some("web"), "src/web", "/srv/web")
    );
    assert_eq!(used(step), [("APP", "web")]);
}

#[test]
fn platform_args_are_global_and_declared_in_stages() {
    let text = "FROM --platform=$BUILDPLATFORM golang AS build\nARG TARGETARCH\nWORKDIR /out/$TARGETARCH\nFROM a\nWORKDIR /x$TARGETOS\n";
    let options = PlanOptions {
        platforms: Platforms {
            build: "linux/amd64".parse().unwrap(),
            target: Platform { os: "linux".into(), architecture: "arm64".into(), variant: None },
        },
        build_args: BuildArgs::new().with("TARGETARCH", "ignored"),
        ..PlanOptions::default()
    };
    let p = plan(&parse("Dockerfile", text).unwrap(), &options).unwrap();
    assert_eq!(p.stages[0].platform.as_deref(), Some("linux/amd64"));
    assert_eq!(p.stages[0].steps[1].kind, InstructionKind::Workdir("/out/arm64".into()));
    assert_eq!(
        p.stages[1].steps[0].kind,
        InstructionKind::Workdir("/x".into()),
        "not declared in stage 2"
    );
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
}

#[test]
fn proxy_args_reach_run_without_entering_the_cache_key() {
    let p = planned("FROM a\nRUN make\n", &[("HTTP_PROXY", "http://proxy:3128")]);
    let run = &p.stages[0].steps[0];
    assert_eq!(run.run_env, vec![("HTTP_PROXY".into(), "http://proxy:3128".into())]);
    assert!(run.used_args.is_empty());
    assert!(p.warnings.is_empty());
}

#[test]
fn unused_build_args_and_secret_names_warn() {
    let p =
        planned("FROM a\nARG API_TOKEN\nENV DB_PASSWORD=x\n", &[("NOPE", "1"), ("API_TOKEN", "t")]);
    let messages: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert_eq!(messages.len(), 3, "{messages:?}");
    assert!(messages[0].contains("\"API_TOKEN\" looks like a secret"));
    assert!(messages[1].contains("\"DB_PASSWORD\" looks like a secret"));
    assert_eq!(messages[2], "one or more build args were not consumed: NOPE");
    assert_eq!(p.warnings[0].position.map(|p| p.line), Some(2));
}

#[test]
fn scratch_and_images_without_path_expand_the_default_path() {
    let p = planned("FROM scratch\nENV PATH=/opt/bin:$PATH\n", &[]);
    let InstructionKind::Env(pairs) = &p.stages[0].steps[0].kind else { panic!() };
    assert_eq!(pairs[0].value, format!("/opt/bin:{}", crate::config::DEFAULT_PATH));
}

#[test]
fn stage_bases() {
    let p = planned(
        "FROM busybox AS Build\nFROM build\nFROM scratch\nFROM later\nFROM a AS later\n",
        &[],
    );
    assert_eq!(p.stages[0].base, Base::Image("busybox".into()));
    assert_eq!(p.stages[1].base, Base::Stage(0));
    assert_eq!(p.stages[2].base, Base::Scratch);
    // FROM only refers to stages defined before it.
    assert_eq!(p.stages[3].base, Base::Image("later".into()));
    assert_eq!(p.stage_by_ref("BUILD"), Some(0));
    assert_eq!(p.stage_by_ref("2"), Some(2));
    assert_eq!(p.stage_by_ref("9"), None);
}

#[test]
fn stage_inherits_env_from_base_image_and_parent_stage() {
    let text = "FROM busybox AS one\nENV PATH=$PATH:/opt/bin\nFROM one\nWORKDIR $PATH\n";
    let base_config =
        |image: &str| (image == "busybox").then(|| serde_json::json!({"Env": ["PATH=/bin"]}));
    let options = PlanOptions { base_config: &base_config, ..PlanOptions::default() };
    let p = plan(&parse("Dockerfile", text).unwrap(), &options).unwrap();
    assert_eq!(p.stages[1].steps[0].kind, InstructionKind::Workdir("/bin:/opt/bin".into()));
}

#[test]
fn copy_heredoc_expands_unless_quoted() {
    let text = "FROM a\nARG WHO=world\nCOPY <<EOF /a\nhello $WHO \"q\"\nEOF\nCOPY <<'EOF' /b\nhello $WHO\nEOF\n";
    let p = planned(text, &[]);
    let InstructionKind::Copy(a) = &p.stages[0].steps[1].kind else { panic!() };
    assert_eq!(a.heredocs[0].content, "hello world \"q\"\n");
    assert_eq!(a.sources, vec!["<<EOF".to_owned()]);
    let InstructionKind::Copy(b) = &p.stages[0].steps[2].kind else { panic!() };
    assert_eq!(b.heredocs[0].content, "hello $WHO\n");
}

#[test]
fn errors_carry_positions() {
    let d = parse("Dockerfile", "FROM a\n\nUSER ${NAME:?must name a user}\n").unwrap();
    let err = plan(&d, &PlanOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "Dockerfile:3:1: expanding USER: NAME: must name a user\n 3 | USER ${NAME:?must name a user}\n   | ^"
    );
    let d = parse("Dockerfile", "RUN x\nFROM a\n").unwrap();
    assert!(matches!(plan(&d, &PlanOptions::default()), Err(PlanError::BeforeFrom { .. })));
    let d = parse("Dockerfile", "ARG A\n").unwrap();
    assert!(matches!(plan(&d, &PlanOptions::default()), Err(PlanError::NoStage { .. })));
    let d = parse("Dockerfile", "FROM a AS x\nFROM b AS X\n").unwrap();
    assert!(matches!(plan(&d, &PlanOptions::default()), Err(PlanError::DuplicateStage { .. })));
}

#[test]
fn onbuild_triggers_run_first_in_the_stage_built_on_them() {
    let text = "FROM scratch AS base\nONBUILD ENV TRIGGERED=$PATH\nONBUILD COPY . /src\nENV X=1\nFROM base\nUSER u\n";
    let p = planned(text, &[]);
    assert_eq!(p.stages[0].on_build, ["ENV TRIGGERED=$PATH", "COPY . /src"]);
    let steps = &p.stages[1].steps;
    assert_eq!(steps.len(), 3);
    assert!(steps[0].trigger && steps[1].trigger && !steps[2].trigger);
    assert_eq!(steps[0].position, p.stages[1].position);
    assert!(
        matches!(&steps[0].kind, InstructionKind::Env(e) if e[0].value == crate::config::DEFAULT_PATH)
    );
    assert!(p.stages[1].on_build.is_empty(), "triggers are not inherited further");
}

#[test]
fn triggers_of_an_external_image() {
    let base_config = |_: &str| Some(serde_json::json!({"OnBuild": ["WORKDIR /t", "FROM x"]}));
    let options = PlanOptions { base_config: &base_config, ..PlanOptions::default() };
    let err = plan(&parse("Dockerfile", "FROM img\n").unwrap(), &options).unwrap_err();
    assert!(err.to_string().starts_with("Dockerfile:1:1: ONBUILD trigger \"FROM x\" of the base: FROM isn't allowed as an ONBUILD trigger\n 1 | FROM img"), "{err}");
    let base_config = |_: &str| Some(serde_json::json!({"OnBuild": ["WORKDIR /t"]}));
    let options = PlanOptions { base_config: &base_config, ..PlanOptions::default() };
    let p = plan(&parse("Dockerfile", "FROM img\n").unwrap(), &options).unwrap();
    assert_eq!(p.stages[0].steps[0].kind, InstructionKind::Workdir("/t".into()));
}
