use serde_json::json;

use super::*;
use crate::dockerfile::parse;
use crate::plan::{plan, PlanOptions};

fn build(text: &str, base: &Value) -> (ConfigState, Vec<HistoryEntry>) {
    let p = plan(&parse("Dockerfile", text).unwrap(), &PlanOptions::default()).unwrap();
    stage_config(p.stages.last().unwrap(), base).unwrap()
}

#[test]
fn scratch_gets_the_default_path_and_keeps_env_order() {
    let (state, _) = build("FROM scratch\nENV B=1 A=2\nENV B=3 PATH=/x\n", &Value::Null);
    let env: Vec<String> = state.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(env, ["PATH=/x", "B=3", "A=2"]);
}

#[test]
fn a_base_variable_set_again_moves_behind_the_base_ones() {
    let base = json!({"Env": ["PATH=/bin", "A=1", "B=2"]});
    let (state, _) = build("FROM base\nENV C=3 A=9\nENV C=4\n", &base);
    let env: Vec<String> = state.env().iter().map(|(k, v)| format!("{k}={v}")).collect();
    assert_eq!(env, ["PATH=/bin", "B=2", "C=4", "A=9"]);
}

#[test]
fn base_config_is_inherited() {
    let base = json!({
        "Env": ["PATH=/bin", "LANG=C"], "Cmd": ["sh"], "WorkingDir": "/srv", "User": "1",
        "Labels": {"a": "b"}, "ExposedPorts": {"80/tcp": {}}, "OnBuild": ["RUN x"],
        "Healthcheck": {"Test": ["CMD", "true"], "Interval": 1000000000u64}
    });
    let (state, _) = build("FROM base\nWORKDIR rel\n", &base);
    assert_eq!(state.env()[0], ("PATH".into(), "/bin".into()));
    assert_eq!(state.cmd, Some(vec!["sh".into()]));
    assert_eq!(state.working_dir.as_deref(), Some("/srv/rel"));
    assert_eq!(state.labels.get("a").map(String::as_str), Some("b"));
    assert!(state.on_build.is_empty(), "triggers are not inherited");
    assert_eq!(ConfigState::triggers(&base), ["RUN x"]);
    assert_eq!(state.healthcheck.as_ref().unwrap().interval, Some(Duration::from_secs(1)));
}

#[test]
fn entrypoint_drops_an_inherited_cmd_but_not_one_set_here() {
    let base = json!({"Cmd": ["sh"]});
    let (state, _) = build("FROM base\nENTRYPOINT [\"/app\"]\n", &base);
    assert_eq!(state.cmd, None);
    let (state, _) = build("FROM base\nCMD [\"--help\"]\nENTRYPOINT [\"/app\"]\n", &base);
    assert_eq!(state.cmd, Some(vec!["--help".into()]));
}

#[test]
fn shell_forms_use_the_stage_shell() {
    let (state, history) = build(
        "FROM scratch\nSHELL [\"/bin/bash\", \"-ec\"]\nCMD echo hi\nRUN make\n",
        &Value::Null,
    );
    assert_eq!(state.cmd, Some(vec!["/bin/bash".into(), "-ec".into(), "echo hi".into()]));
    assert_eq!(history[2].created_by, "/bin/bash -ec make");
    assert!(!history[2].empty_layer);
}

#[test]
fn workdir_resolution() {
    let (state, _) = build("FROM scratch\nWORKDIR a\nWORKDIR b/../c/\n", &Value::Null);
    assert_eq!(state.working_dir.as_deref(), Some("/a/c"));
    let (state, _) = build("FROM scratch\nWORKDIR /abs//x/\n", &Value::Null);
    assert_eq!(state.working_dir.as_deref(), Some("/abs//x/"), "absolute: as written, as Buildah");
    let (state, _) = build("FROM scratch\nWORKDIR /abs//x/\nWORKDIR y\n", &Value::Null);
    assert_eq!(state.working_dir.as_deref(), Some("/abs/x/y"));
}

#[test]
fn expose_specs() {
    assert_eq!(expose("80").unwrap(), ["80/tcp"]);
    assert_eq!(expose("53/UDP").unwrap(), ["53/udp"]);
    assert_eq!(expose("8000-8002/tcp").unwrap(), ["8000-8002/tcp"]);
    assert!(expose("0").is_err());
    assert!(expose("80/icmp").is_err());
    assert!(expose("9-1").is_err());
    assert!(expose("http").is_err());
}

#[test]
fn healthcheck_json() {
    let (state, _) =
        build("FROM scratch\nHEALTHCHECK --interval=5s --retries=2 CMD curl -f x\n", &Value::Null);
    assert_eq!(
        state.to_json()["Healthcheck"],
        json!({"Test": ["CMD-SHELL", "curl -f x"], "Interval": 5_000_000_000u64, "Retries": 2})
    );
    let (state, _) = build("FROM scratch\nHEALTHCHECK NONE\n", &Value::Null);
    assert_eq!(state.to_json()["Healthcheck"], json!({"Test": ["NONE"]}));
}

#[test]
fn history_in_buildahs_words() {
    let text = "FROM scratch\nARG V=1 W\nENV A=$V\nRUN echo $V\nCOPY a /b\nONBUILD RUN make\n";
    let (state, history) = build(text, &Value::Null);
    let created: Vec<(&str, bool)> =
        history.iter().map(|h| (h.created_by.as_str(), h.empty_layer)).collect();
    assert_eq!(
        created,
        [
            ("/bin/sh -c #(nop) ARG V W", true),
            ("/bin/sh -c #(nop) ENV A=$V", true),
            ("|1 V=1 /bin/sh -c echo $V", false),
            ("/bin/sh -c #(nop) COPY a /b", false),
            ("/bin/sh -c #(nop) ONBUILD RUN make", true),
        ]
    );
    assert_eq!(state.on_build, ["RUN make"]);
}

#[test]
fn bad_values() {
    let p = plan(
        &parse("Dockerfile", "FROM scratch\nSTOPSIGNAL sig term\n").unwrap(),
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(matches!(stage_config(&p.stages[0], &Value::Null), Err(ConfigError::Stopsignal(_))));
    let p = plan(
        &parse("Dockerfile", "FROM scratch\nEXPOSE 99999\n").unwrap(),
        &PlanOptions::default(),
    )
    .unwrap();
    assert!(matches!(stage_config(&p.stages[0], &Value::Null), Err(ConfigError::Expose { .. })));
}
