use std::time::Duration;

use super::*;

fn parse_ok(text: &str) -> Dockerfile {
    match parse("Dockerfile", text) {
        Ok(d) => d,
        Err(e) => panic!("{e}"),
    }
}

fn kinds(text: &str) -> Vec<InstructionKind> {
    parse_ok(text).instructions.into_iter().map(|i| i.kind).collect()
}

fn parse_err(text: &str) -> (Location, String) {
    match parse("Dockerfile", text) {
        Err(ParseError::Syntax { location, message }) => (location, message),
        other => panic!("expected a syntax error, got {other:?}"),
    }
}

#[test]
fn from_with_platform_and_alias() {
    let k = kinds("FROM --platform=$BUILDPLATFORM golang:1.22 AS Build\nFROM scratch\n");
    assert_eq!(
        k[0],
        InstructionKind::From(From {
            platform: Some("$BUILDPLATFORM".into()),
            image: "golang:1.22".into(),
            alias: Some("build".into()),
        })
    );
    assert_eq!(
        k[1],
        InstructionKind::From(From { platform: None, image: "scratch".into(), alias: None })
    );
}

#[test]
fn from_with_two_words_is_an_error_at_the_keyword() {
    let (loc, msg) = parse_err("FROM a\n  FROM busybox latest\n");
    assert_eq!((loc.line, loc.column), (2, 3));
    assert!(msg.contains("one or three arguments"), "{msg}");
    assert_eq!(loc.text, "  FROM busybox latest");
}

#[test]
fn keywords_are_case_insensitive_and_positions_are_kept() {
    let d = parse_ok("# comment\n\nfrom busybox\n\trun echo hi\n");
    assert_eq!(d.instructions[0].position, Position { line: 3, column: 1 });
    assert_eq!(d.instructions[1].position, Position { line: 4, column: 2 });
    assert_eq!(
        d.instructions[1].kind,
        InstructionKind::Run(Run {
            mounts: vec![],
            network: None,
            security: None,
            command: Command::Shell("echo hi".into()),
            heredocs: vec![],
        })
    );
}

#[test]
fn continuation_lines_join_and_skip_comments_and_blank_lines() {
    let d = parse_ok("FROM a\nRUN echo a \\\n  # a comment\n\n    && echo b\nUSER x\n");
    let run = &d.instructions[1];
    // Continuation lines are not trimmed: their leading blanks stay, as in BuildKit.
    assert_eq!(run.original, "RUN echo a     && echo b");
    assert_eq!(run.end_line, 5);
    assert!(
        matches!(&run.kind, InstructionKind::Run(r) if r.command == Command::Shell("echo a     && echo b".into()))
    );
    assert_eq!(d.instructions[2].position.line, 6);
}

#[test]
fn continuation_allows_blanks_after_the_escape() {
    let k = kinds("RUN a \\  \t\n b\n");
    assert!(matches!(&k[0], InstructionKind::Run(r) if r.command == Command::Shell("a  b".into())));
}

#[test]
fn backtick_escape_directive_changes_continuation() {
    let text = "# escape=`\nFROM mcr/windows\nRUN dir c:\\ `\n  && echo done\n";
    let d = parse_ok(text);
    assert_eq!(d.directives.escape, '`');
    assert!(matches!(&d.instructions[1].kind,
        InstructionKind::Run(r) if r.command == Command::Shell("dir c:\\   && echo done".into())));
}

#[test]
fn directives_stop_at_the_first_other_line() {
    let d = parse_ok("# syntax=docker/dockerfile:1\n#check=skip=all\n\n# escape=`\nFROM a\n");
    assert_eq!(d.directives.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(d.directives.check.as_deref(), Some("skip=all"));
    assert_eq!(d.directives.escape, '\\');
}

#[test]
fn directive_errors() {
    let (loc, msg) = parse_err("# escape=x\nFROM a\n");
    assert_eq!(loc.line, 1);
    assert!(msg.contains("invalid escape token"), "{msg}");
    let (loc, msg) = parse_err("# escape=`\n# escape=\\\nFROM a\n");
    assert_eq!(loc.line, 2);
    assert!(msg.contains("only one escape"), "{msg}");
}

#[test]
fn exec_and_shell_forms() {
    let k = kinds("CMD [\"a\", \"b c\"]\nENTRYPOINT echo $HOME\nCMD [not json\nCMD []\n");
    assert_eq!(k[0], InstructionKind::Cmd(Command::Exec(vec!["a".into(), "b c".into()])));
    assert_eq!(k[1], InstructionKind::Entrypoint(Command::Shell("echo $HOME".into())));
    assert_eq!(k[2], InstructionKind::Cmd(Command::Shell("[not json".into())));
    assert_eq!(k[3], InstructionKind::Cmd(Command::Exec(vec![])));
}

#[test]
fn exec_form_spread_over_lines() {
    let k = kinds("ENTRYPOINT [\"/bin/app\", \\\n   \"--flag\"]\n");
    assert_eq!(
        k[0],
        InstructionKind::Entrypoint(Command::Exec(vec!["/bin/app".into(), "--flag".into()]))
    );
}

#[test]
fn json_with_a_number_is_an_error() {
    let (_, msg) = parse_err("CMD [\"a\", 1]\n");
    assert!(msg.contains("only strings"), "{msg}");
}

#[test]
fn heredocs_in_run() {
    let text = "FROM a\nRUN <<EOF\necho one\necho two\nEOF\nRUN <<-'END' cat\n\t\tkeep $HOME\n\tEND\nUSER u\n";
    let d = parse_ok(text);
    let InstructionKind::Run(run) = &d.instructions[1].kind else { panic!() };
    assert_eq!(run.command, Command::Shell("<<EOF".into()));
    assert_eq!(
        run.heredocs,
        vec![Heredoc {
            name: "EOF".into(),
            content: "echo one\necho two\n".into(),
            expand: true,
            chomp: false,
            fd: None,
        }]
    );
    assert_eq!(d.instructions[1].end_line, 5);
    let InstructionKind::Run(run) = &d.instructions[2].kind else { panic!() };
    assert_eq!(run.heredocs[0].name, "END");
    assert_eq!(run.heredocs[0].content, "keep $HOME\n");
    assert!(!run.heredocs[0].expand);
    assert!(run.heredocs[0].chomp);
    assert_eq!(d.instructions[3].position.line, 9);
}

#[test]
fn several_heredocs_per_instruction() {
    let text = "RUN cat <<A > /a && cat 3<<\"B\" > /b\nfirst\nA\nsecond\nB\n";
    let k = kinds(text);
    let InstructionKind::Run(run) = &k[0] else { panic!() };
    assert_eq!(run.heredocs.len(), 2);
    assert_eq!((run.heredocs[0].name.as_str(), run.heredocs[0].content.as_str()), ("A", "first\n"));
    assert_eq!(
        (run.heredocs[1].name.as_str(), run.heredocs[1].content.as_str()),
        ("B", "second\n")
    );
    assert_eq!(run.heredocs[1].fd, Some(3));
    assert!(!run.heredocs[1].expand);
}

#[test]
fn heredoc_in_copy_names_its_source() {
    let k = kinds("COPY --chmod=755 <<EOF /usr/local/bin/hello\n#!/bin/sh\necho hello\nEOF\n");
    let InstructionKind::Copy(copy) = &k[0] else { panic!() };
    assert_eq!(copy.sources, vec!["<<EOF".to_owned()]);
    assert_eq!(copy.destination, "/usr/local/bin/hello");
    let doc = heredoc_source(&copy.heredocs, &copy.sources[0]).unwrap();
    // A heredoc body is not a comment, even when a line starts with #.
    assert_eq!(doc.content, "#!/bin/sh\necho hello\n");
}

#[test]
fn unterminated_heredoc() {
    let (loc, msg) = parse_err("FROM a\nRUN <<EOF\necho\n");
    assert_eq!(loc.line, 2);
    assert!(msg.contains("unterminated heredoc"), "{msg}");
}

#[test]
fn heredocs_are_not_read_for_other_instructions() {
    let k = kinds("ENV A=<<EOF\nUSER x\n");
    assert_eq!(k.len(), 2);
}

#[test]
fn run_mounts_network_security() {
    let text = "RUN --mount=type=cache,target=/root/.cache,id=pip,sharing=locked \\\n \
        --mount=type=secret,id=token,required \\\n \
        --mount=type=bind,from=build,source=/out,target=/in,rw \\\n \
        --mount=type=tmpfs,target=/tmp,size=64m \\\n \
        --mount=type=cache,target=/c,mode=0700,uid=1000,gid=1000 \\\n \
        --network=none --security=insecure make\n";
    let k = kinds(text);
    let InstructionKind::Run(run) = &k[0] else { panic!() };
    assert_eq!(run.mounts.len(), 5);
    let cache = &run.mounts[0];
    assert_eq!(
        (cache.kind, cache.target.as_deref(), cache.id.as_deref(), cache.sharing),
        (MountKind::Cache, Some("/root/.cache"), Some("pip"), Some(CacheSharing::Locked))
    );
    let secret = &run.mounts[1];
    assert_eq!(
        (secret.kind, secret.id.as_deref(), secret.required),
        (MountKind::Secret, Some("token"), Some(true))
    );
    let bind = &run.mounts[2];
    assert_eq!(
        (bind.kind, bind.from.as_deref(), bind.source.as_deref(), bind.read_only),
        (MountKind::Bind, Some("build"), Some("/out"), Some(false))
    );
    assert_eq!(run.mounts[3].size, Some(64 << 20));
    assert_eq!(
        (run.mounts[4].mode, run.mounts[4].uid, run.mounts[4].gid),
        (Some(0o700), Some(1000), Some(1000))
    );
    assert_eq!(run.network, Some(NetworkMode::None));
    assert_eq!(run.security, Some(Security::Insecure));
    assert_eq!(run.command, Command::Shell("make".into()));
}

#[test]
fn mount_errors_point_at_the_flag() {
    let (loc, msg) = parse_err("FROM a\nRUN   --mount=type=cache make\n");
    assert_eq!((loc.line, loc.column), (2, 7));
    assert!(msg.contains("requires a target"), "{msg}");
    let (_, msg) = parse_err("RUN --mount=type=nfs,target=/x make\n");
    assert!(msg.contains("unsupported mount type"), "{msg}");
    let (_, msg) = parse_err("RUN --mount=type=bind,target=/x,colour=red make\n");
    assert!(msg.contains("unexpected key"), "{msg}");
}

#[test]
fn quoted_mount_fields() {
    // Flag extraction removes one level of quotes; CSV quoting needs a second one.
    let k = kinds("RUN --mount='type=bind,\"target=/a,b\"' ls\n");
    let InstructionKind::Run(run) = &k[0] else { panic!() };
    assert_eq!(run.mounts[0].target.as_deref(), Some("/a,b"));
}

#[test]
fn unknown_flags_are_errors_with_their_column() {
    let (loc, msg) = parse_err("FROM a\nCOPY --chown=1 --frob=2 a b\n");
    assert_eq!((loc.line, loc.column), (2, 16));
    assert_eq!(msg, "unknown flag: --frob");
    let (_, msg) = parse_err("WORKDIR --x /a\n");
    assert_eq!(msg, "unknown flag: --x");
}

#[test]
fn env_and_label_both_forms() {
    let k = kinds("ENV A=1 B=\"two words\" C=three\\ words\nENV OLD some value here\nLABEL a.b=c \"quoted key\"=v\n");
    assert_eq!(
        k[0],
        InstructionKind::Env(vec![
            KeyValue { key: "A".into(), value: "1".into() },
            KeyValue { key: "B".into(), value: "\"two words\"".into() },
            KeyValue { key: "C".into(), value: "three\\ words".into() },
        ])
    );
    assert_eq!(
        k[1],
        InstructionKind::Env(vec![KeyValue { key: "OLD".into(), value: "some value here".into() }])
    );
    assert_eq!(
        k[2],
        InstructionKind::Label(vec![
            KeyValue { key: "a.b".into(), value: "c".into() },
            KeyValue { key: "\"quoted key\"".into(), value: "v".into() },
        ])
    );
}

#[test]
fn env_errors() {
    let (_, msg) = parse_err("ENV ONLY\n");
    assert!(msg.contains("two arguments"), "{msg}");
    let (loc, msg) = parse_err("ENV A=1 B\n");
    assert_eq!(loc.column, 9);
    assert!(msg.contains("can't find ="), "{msg}");
}

#[test]
fn copy_and_add_flags() {
    let k = kinds(
        "COPY --from=build --chown=app:app --chmod=0644 --link --exclude=*.md a b /dst/\n\
         ADD --checksum=sha256:abc --chown=1 --keep-git-dir=true https://x/y.tar.gz /opt/\n\
         COPY [\"with space\", \"/d st\"]\n",
    );
    let InstructionKind::Copy(c) = &k[0] else { panic!() };
    assert_eq!(
        (c.from.as_deref(), c.chown.as_deref(), c.chmod.as_deref(), c.link),
        (Some("build"), Some("app:app"), Some("0644"), true)
    );
    assert_eq!(c.excludes, vec!["*.md".to_owned()]);
    assert_eq!(
        (c.sources.clone(), c.destination.as_str()),
        (vec!["a".to_owned(), "b".to_owned()], "/dst/")
    );
    let InstructionKind::Add(a) = &k[1] else { panic!() };
    assert_eq!((a.checksum.as_deref(), a.keep_git_dir), (Some("sha256:abc"), true));
    let InstructionKind::Copy(c) = &k[2] else { panic!() };
    assert_eq!(
        (c.sources.clone(), c.destination.as_str()),
        (vec!["with space".to_owned()], "/d st")
    );
}

#[test]
fn copy_needs_a_destination() {
    let (_, msg) = parse_err("COPY onlyone\n");
    assert!(msg.contains("at least two arguments"), "{msg}");
    let (_, msg) = parse_err("COPY --from=a --from=b x y\n");
    assert!(msg.contains("more than once"), "{msg}");
}

#[test]
fn simple_instructions() {
    let k = kinds(
        "EXPOSE 80/tcp 53/udp\nVOLUME [\"/data\", \"/logs\"]\nVOLUME /a /b\nUSER app:app\nWORKDIR /srv/app\n\
         STOPSIGNAL SIGTERM\nSHELL [\"/bin/sh\", \"-ec\"]\nMAINTAINER Someone <s@example.org>\nARG A B=2 C=\"x y\"\n",
    );
    assert_eq!(k[0], InstructionKind::Expose(vec!["80/tcp".into(), "53/udp".into()]));
    assert_eq!(k[1], InstructionKind::Volume(vec!["/data".into(), "/logs".into()]));
    assert_eq!(k[2], InstructionKind::Volume(vec!["/a".into(), "/b".into()]));
    assert_eq!(k[3], InstructionKind::User("app:app".into()));
    assert_eq!(k[4], InstructionKind::Workdir("/srv/app".into()));
    assert_eq!(k[5], InstructionKind::Stopsignal("SIGTERM".into()));
    assert_eq!(k[6], InstructionKind::Shell(vec!["/bin/sh".into(), "-ec".into()]));
    assert_eq!(k[7], InstructionKind::Maintainer("Someone <s@example.org>".into()));
    assert_eq!(
        k[8],
        InstructionKind::Arg(vec![
            ArgDecl { name: "A".into(), default: None },
            ArgDecl { name: "B".into(), default: Some("2".into()) },
            ArgDecl { name: "C".into(), default: Some("\"x y\"".into()) },
        ])
    );
}

#[test]
fn shell_needs_json() {
    let (_, msg) = parse_err("SHELL /bin/bash -c\n");
    assert!(msg.contains("JSON form"), "{msg}");
}

#[test]
fn onbuild_wraps_an_instruction() {
    let d = parse_ok("ONBUILD  COPY . /app\n");
    let InstructionKind::Onbuild(inner) = &d.instructions[0].kind else { panic!() };
    assert_eq!(inner.keyword(), "COPY");
    assert_eq!(inner.position.column, 10);
    assert_eq!(inner.original, "COPY . /app");
    let (_, msg) = parse_err("ONBUILD ONBUILD RUN x\n");
    assert!(msg.contains("chaining ONBUILD"), "{msg}");
    let (_, msg) = parse_err("ONBUILD FROM x\n");
    assert!(msg.contains("isn't allowed as an ONBUILD trigger"), "{msg}");
}

#[test]
fn healthcheck_forms() {
    let k = kinds(
        "HEALTHCHECK NONE\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=500ms --start-interval=2s --retries=3 \\\n  CMD [\"curl\", \"-f\", \"http://localhost/\"]\nHEALTHCHECK CMD curl -f http://localhost/ || exit 1\n",
    );
    assert_eq!(k[0], InstructionKind::Healthcheck(Healthcheck::None));
    assert_eq!(
        k[1],
        InstructionKind::Healthcheck(Healthcheck::Check {
            command: Command::Exec(vec!["curl".into(), "-f".into(), "http://localhost/".into()]),
            interval: Some(Duration::from_secs(30)),
            timeout: Some(Duration::from_secs(90)),
            start_period: Some(Duration::from_millis(500)),
            start_interval: Some(Duration::from_secs(2)),
            retries: Some(3),
        })
    );
    assert!(
        matches!(&k[2], InstructionKind::Healthcheck(Healthcheck::Check { command: Command::Shell(s), .. }) if s == "curl -f http://localhost/ || exit 1")
    );
}

#[test]
fn healthcheck_errors() {
    assert!(parse_err("HEALTHCHECK NONE x\n").1.contains("no arguments"));
    assert!(parse_err("HEALTHCHECK --interval=1s NONE\n").1.contains("no options"));
    assert!(parse_err("HEALTHCHECK --interval=abc CMD x\n").1.contains("invalid duration"));
    assert!(parse_err("HEALTHCHECK --retries=-1 CMD x\n").1.contains("non-negative"));
    assert!(parse_err("HEALTHCHECK PING x\n").1.contains("try CMD"));
}

#[test]
fn unknown_instruction_shows_the_line() {
    let err = parse("ctx/Containerfile", "FROM a\n\n   FORM b\n").unwrap_err();
    let shown = err.to_string();
    assert_eq!(
        shown,
        "ctx/Containerfile:3:4: unknown instruction: FORM\n 3 |    FORM b\n   |    ^"
    );
}

#[test]
fn error_positions_on_continuation_lines() {
    let (loc, _) = parse_err("COPY --chown=1 \\\n   --bogus a b\n");
    assert_eq!((loc.line, loc.column), (2, 4));
    assert_eq!(loc.text, "   --bogus a b");
}

#[test]
fn crlf_and_bom_are_accepted() {
    let k = kinds("\u{feff}FROM a\r\nRUN x \\\r\n  y\r\n");
    assert_eq!(k.len(), 2);
    assert!(
        matches!(&k[1], InstructionKind::Run(r) if r.command == Command::Shell("x   y".into()))
    );
}

#[test]
fn go_durations() {
    use super::parser::parse_go_duration as d;
    assert_eq!(d("1h2m3s"), Some(Duration::from_secs(3723)));
    assert_eq!(d("1.5s"), Some(Duration::from_millis(1500)));
    assert_eq!(d("0"), Some(Duration::ZERO));
    assert_eq!(d("10"), None);
    assert_eq!(d(""), None);
    assert_eq!(d("5x"), None);
}
