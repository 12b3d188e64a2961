//! Property tests of the parser: any input is answered without a panic (parse, plan and
//! graph), positions stay inside the file, and generated Dockerfiles parse back into the
//! instructions they were rendered from, wherever continuations, comments and blank lines fall.

use berth_build::dockerfile::{parse, Command, Copy, InstructionKind, KeyValue, ParseError};
use berth_build::graph::Graph;
use berth_build::plan::{plan, PlanOptions};
use proptest::prelude::*;

fn check_any(text: &str) {
    let lines = text.split('\n').count();
    match parse("f", text) {
        Ok(dockerfile) => {
            let mut last = 0;
            for instruction in &dockerfile.instructions {
                let p = instruction.position;
                assert!(p.line >= 1 && p.line <= lines && p.column >= 1, "{p:?} in {lines} lines");
                assert!(instruction.end_line >= p.line);
                assert!(p.line > last, "instructions in order");
                last = instruction.end_line;
            }
            if let Ok(plan) = plan(&dockerfile, &PlanOptions::default()) {
                for stage in &plan.stages {
                    let _ = berth_build::config::stage_config(stage, &serde_json::Value::Null);
                }
                if let Ok(graph) = Graph::new(&plan) {
                    let target = graph.target(None).unwrap();
                    let _ = graph.batches(target);
                }
            }
        }
        Err(ParseError::Syntax { location, .. }) => {
            assert!(location.line >= 1 && location.line <= lines, "{location:?}");
            let text = text.strip_prefix('\u{feff}').unwrap_or(text);
            let shown = text.split('\n').nth(location.line - 1).unwrap_or_default();
            assert_eq!(location.text, shown.strip_suffix('\r').unwrap_or(shown));
        }
        Err(e) => panic!("unexpected {e}"),
    }
}

/// Pieces that stress the tricky parts: escapes, heredocs, quotes, flags, JSON, variables.
fn tricky() -> impl Strategy<Value = String> {
    let pieces = prop::sample::select(vec![
        "FROM a",
        "FROM a AS b",
        "RUN ",
        "\\\n",
        "`\n",
        "<<EOF",
        "<<-'X'",
        "\nEOF\n",
        "\tX\n",
        "3<<E",
        "--mount=",
        "type=cache,",
        "target=/x",
        ",uid=$U",
        "\"",
        "'",
        "$",
        "${",
        "}",
        ":-",
        ":?",
        "[",
        "]",
        "\"a\",",
        "# escape=`\n",
        "# syntax=x\n",
        "#",
        "\n",
        " ",
        "\t",
        "ENV ",
        "A=",
        "ARG ",
        "COPY ",
        "--from=",
        "ONBUILD ",
        "HEALTHCHECK ",
        "CMD ",
        "NONE",
        "=",
        "é",
        "\r\n",
        "--chown=",
        "--",
        "LABEL ",
        "SHELL ",
        "EXPOSE ",
        "b",
        "0",
        "\u{feff}",
        "ADD ",
        "--interval=",
        "1s",
        "USER ",
        "WORKDIR ",
        "VOLUME ",
        "STOPSIGNAL ",
        "\\",
    ]);
    prop::collection::vec(pieces, 0..60).prop_map(|v| v.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,300}") {
        check_any(&text);
    }

    #[test]
    fn tricky_text_never_panics(text in tricky()) {
        check_any(&text);
    }
}

/// An instruction to render and the tree it must parse into.
#[derive(Debug, Clone)]
enum Model {
    Env(Vec<(String, String)>),
    Run(Vec<String>),
    Expose(Vec<u16>),
    Copy { chown: Option<String>, sources: Vec<String>, destination: String },
    Workdir(String),
    Cmd(Vec<String>),
}

fn model() -> impl Strategy<Value = Model> {
    let key = "[A-Z][A-Z0-9_]{0,6}";
    let value = "[a-z0-9 ./:-]{0,10}";
    // A segment starting with "--" would be a flag, so none starts with "-".
    let segment = "[a-z0-9&;|.]([a-z0-9 &;|.-]{0,10}[a-z0-9&;|.-])?";
    let path = "/?[a-z0-9_.][a-z0-9_.-]{0,7}(/[a-z0-9_.-]{1,8}){0,2}";
    prop_oneof![
        prop::collection::vec((key, value), 1..4).prop_map(Model::Env),
        prop::collection::vec(segment, 1..5).prop_map(Model::Run),
        prop::collection::vec(any::<u16>(), 1..4).prop_map(Model::Expose),
        (proptest::option::of("[a-z]{1,5}:[a-z]{1,5}"), prop::collection::vec(path, 1..3), path)
            .prop_map(|(chown, sources, destination)| Model::Copy { chown, sources, destination }),
        path.prop_map(Model::Workdir),
        prop::collection::vec("\\PC{0,8}", 0..4).prop_map(Model::Cmd),
    ]
}

/// Renders the model; `breaks` chooses where words are split over continuation lines and
/// where comments or blank lines go inside them.
fn render(m: &Model, keyword_case: bool, breaks: &[u8]) -> (String, InstructionKind) {
    let mut b = breaks.iter().cycle();
    let mut join = |words: &[String]| {
        let mut out = String::new();
        for (i, w) in words.iter().enumerate() {
            if i > 0 {
                match b.next().copied().unwrap_or(0) % 4 {
                    0 => out.push(' '),
                    1 => out.push_str(" \\\n  "),
                    2 => out.push_str(" \\\n# inside\n  "),
                    _ => out.push_str(" \\\n\n\t"),
                }
            }
            out.push_str(w);
        }
        out
    };
    let kw = |k: &str| if keyword_case { k.to_owned() } else { k.to_ascii_lowercase() };
    match m {
        Model::Env(pairs) => {
            let words: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
            let expected = pairs
                .iter()
                .map(|(k, v)| KeyValue { key: k.clone(), value: format!("\"{v}\"") })
                .collect();
            (format!("{} {}", kw("ENV"), join(&words)), InstructionKind::Env(expected))
        }
        Model::Run(segments) => {
            // Continuation lines keep their leading blanks: compute the joined text from the
            // rendering itself, minus the escapes, comments and blank lines.
            let text = join(segments);
            let mut joined = String::new();
            for line in text.split('\n') {
                let trimmed = line.trim_start();
                if joined.is_empty() || !(trimmed.is_empty() || trimmed.starts_with('#')) {
                    joined.push_str(line.strip_suffix('\\').unwrap_or(line));
                }
            }
            let expected = berth_build::dockerfile::Run {
                mounts: vec![],
                network: None,
                security: None,
                command: Command::Shell(joined.trim().to_owned()),
                heredocs: vec![],
            };
            (format!("{} {text}", kw("RUN")), InstructionKind::Run(expected))
        }
        Model::Expose(ports) => {
            let words: Vec<String> = ports.iter().map(|p| format!("{p}/tcp")).collect();
            (format!("{} {}", kw("EXPOSE"), join(&words)), InstructionKind::Expose(words))
        }
        Model::Copy { chown, sources, destination } => {
            let mut words: Vec<String> = Vec::new();
            if let Some(c) = chown {
                words.push(format!("--chown={c}"));
            }
            words.extend(sources.iter().cloned());
            words.push(destination.clone());
            let expected = Copy {
                from: None,
                chown: chown.clone(),
                chmod: None,
                link: false,
                parents: false,
                excludes: vec![],
                sources: sources.clone(),
                destination: destination.clone(),
                heredocs: vec![],
            };
            (format!("{} {}", kw("COPY"), join(&words)), InstructionKind::Copy(expected))
        }
        Model::Workdir(path) => {
            (format!("{} {path}", kw("WORKDIR")), InstructionKind::Workdir(path.clone()))
        }
        Model::Cmd(args) => {
            let json = serde_json::to_string(args).unwrap();
            (format!("{} {json}", kw("CMD")), InstructionKind::Cmd(Command::Exec(args.clone())))
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn generated_dockerfiles_parse_back(
        models in prop::collection::vec(model(), 1..8),
        cases in prop::collection::vec(any::<bool>(), 8),
        breaks in prop::collection::vec(any::<u8>(), 1..6),
        gaps in prop::collection::vec(0u8..3, 8),
    ) {
        let mut text = String::from("FROM busybox\n");
        let mut lines = vec![1usize];
        let mut expected = vec![];
        for (i, m) in models.iter().enumerate() {
            match gaps[i % gaps.len()] {
                1 => text.push_str("# a comment\n"),
                2 => text.push_str("\n   \n"),
                _ => {}
            }
            lines.push(text.split('\n').count());
            let (rendered, kind) = render(m, cases[i % cases.len()], &breaks);
            text.push_str(&rendered);
            text.push('\n');
            expected.push(kind);
        }
        let dockerfile = parse("Dockerfile", &text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        let got: Vec<&InstructionKind> = dockerfile.instructions.iter().skip(1).map(|i| &i.kind).collect();
        let want: Vec<&InstructionKind> = expected.iter().collect();
        prop_assert_eq!(got, want, "{}", text);
        let got_lines: Vec<usize> = dockerfile.instructions.iter().map(|i| i.position.line).collect();
        prop_assert_eq!(got_lines, lines, "{}", text);
    }

    #[test]
    fn env_values_expand_back_to_themselves(value in "[a-zA-Z0-9 _./:@%+-]{0,24}") {
        let text = format!("FROM a\nENV X=\"{value}\"\nLABEL l=\"${{X}}\" m=\"$X\"\nWORKDIR \"/w/${{X:-unset}}\"\n");
        let dockerfile = parse("Dockerfile", &text).unwrap();
        let p = plan(&dockerfile, &PlanOptions::default()).unwrap();
        let InstructionKind::Label(labels) = &p.stages[0].steps[1].kind else { panic!() };
        prop_assert_eq!(&labels[0].value, &value);
        prop_assert_eq!(&labels[1].value, &value);
        let workdir = if value.is_empty() { "/w/unset".to_owned() } else { format!("/w/{value}") };
        prop_assert_eq!(&p.stages[0].steps[2].kind, &InstructionKind::Workdir(workdir));
    }
}
