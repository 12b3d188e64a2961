use proptest::prelude::*;

use super::*;

fn ignore(text: &str) -> Ignore {
    Ignore::parse(".dockerignore", text).unwrap()
}

#[test]
fn patterns_match_from_the_root_not_at_any_depth() {
    // gitignore would leave out sub/x.log and src/build too; Docker does not.
    let ig = ignore("*.log\nbuild\n");
    assert!(ig.is_excluded("x.log"));
    assert!(!ig.is_excluded("sub/x.log"));
    assert!(ig.is_excluded("build"));
    assert!(ig.is_excluded("build/out.o"), "a parent directory's match leaves the file out");
    assert!(!ig.is_excluded("src/build"));
    assert!(!ig.is_excluded("src/build/out.o"));
}

#[test]
fn a_path_with_a_slash_and_a_trailing_slash_match_files_too() {
    let ig = ignore("sub/x.log\nsrc/build/\n");
    assert!(ig.is_excluded("sub/x.log"));
    assert!(!ig.is_excluded("x.log"));
    assert!(!ig.is_excluded("other/sub/x.log"), "gitignore anchors this too, but by another rule");
    // gitignore's trailing slash means "directories only"; Docker cleans it away.
    assert!(ig.is_excluded("src/build"));
    assert!(ig.is_excluded("src/build/a/b"));
}

#[test]
fn double_star_matches_any_depth_including_none() {
    let ig = ignore("**/*.pyc\ndocs/**/draft.md\nvendor/**\n");
    assert!(ig.is_excluded("a.pyc"));
    assert!(ig.is_excluded("pkg/mod/a.pyc"));
    assert!(ig.is_excluded("docs/draft.md"));
    assert!(ig.is_excluded("docs/x/y/draft.md"));
    assert!(!ig.is_excluded("docs/x/y/final.md"));
    assert!(!ig.is_excluded("vendor"), "a/** needs something below a");
    assert!(ig.is_excluded("vendor/lib/x.go"));
}

#[test]
fn exceptions_and_last_match_wins() {
    let ig = ignore("*.md\n!README.md\nREADME*.md\n!README-keep.md\n");
    assert!(ig.is_excluded("CHANGES.md"));
    assert!(ig.is_excluded("README.md"), "README*.md comes after !README.md");
    assert!(!ig.is_excluded("README-keep.md"));
    assert!(!ig.is_excluded("main.go"));
}

#[test]
fn exception_inside_an_excluded_directory() {
    let ig = ignore("node_modules\n!node_modules/keep/\n");
    assert!(ig.is_excluded("node_modules/x/index.js"));
    assert!(!ig.is_excluded("node_modules/keep/index.js"));
    assert!(ig.is_excluded("node_modules"));
    assert!(ig.may_include_below("node_modules"));
    assert!(!ig.may_include_below("node_modules/x"));
    assert!(ig.may_include_below("node_modules/keep"));
    let ig = ignore("src\n!src/**/*.rs\n");
    assert!(ig.may_include_below("src/a/b"));
    assert!(!ig.is_excluded("src/a/b/lib.rs"));
    assert!(ig.is_excluded("src/a/b/lib.c"));
}

#[test]
fn cleaning_leading_slash_dot_and_comments() {
    let ig = ignore("# a comment\n  \n/abs\n./dot//x/\n #not a comment\n  !  /abs/keep  \n");
    let texts: Vec<(&str, bool)> =
        ig.patterns.iter().map(|p| (p.text.as_str(), p.exclusion)).collect();
    assert_eq!(
        texts,
        [("abs", false), ("dot/x", false), ("#not a comment", false), ("abs/keep", true)]
    );
    assert!(ig.is_excluded("abs/y"));
    assert!(!ig.is_excluded("abs/keep"));
    assert!(ig.is_excluded("dot/x"));
    assert!(ig.is_excluded("./dot/x"), "paths are cleaned too");
}

#[test]
fn element_globs_follow_filepath_match() {
    let ig = ignore("a?c\n[0-9]*.txt\n[^x]y\nlit\\*\n*.[ch]\n");
    assert!(ig.is_excluded("abc"));
    assert!(!ig.is_excluded("ac"));
    assert!(!ig.is_excluded("a/c"));
    assert!(ig.is_excluded("7days.txt"));
    assert!(!ig.is_excluded("days.txt"));
    assert!(ig.is_excluded("ay"));
    assert!(!ig.is_excluded("xy"));
    assert!(ig.is_excluded("lit*"));
    assert!(!ig.is_excluded("litx"));
    assert!(ig.is_excluded("main.c"));
    assert!(ig.is_excluded("main.h"));
    assert!(!ig.is_excluded("main.o"));
    assert!(!ig.is_excluded("dir/main.c"), "* never crosses a slash");
}

#[test]
fn bad_patterns_are_errors_with_their_line() {
    let err = Ignore::parse(".dockerignore", "ok\n[abc\n").unwrap_err();
    assert_eq!(
        err.to_string(),
        ".dockerignore:2: bad pattern \"[abc\": unterminated character class"
    );
    assert!(Ignore::parse("f", "[z-a]\n").is_err());
    assert!(Ignore::parse("f", "x\\\n").is_err());
}

#[test]
fn clean_like_go() {
    assert_eq!(clean("a//b/./c/"), "a/b/c");
    assert_eq!(clean("./"), ".");
    assert_eq!(clean("a/../.."), "..");
    assert_eq!(clean("/../a"), "/a");
    assert_eq!(clean("/"), "/");
}

#[test]
fn containerignore_wins_over_dockerignore() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(".dockerignore"), "docker\n").unwrap();
    assert!(Ignore::load(dir.path()).unwrap().is_excluded("docker"));
    std::fs::write(dir.path().join(".containerignore"), "container\n").unwrap();
    let ig = Ignore::load(dir.path()).unwrap();
    assert!(ig.is_excluded("container"));
    assert!(!ig.is_excluded("docker"));
}

#[test]
fn a_dockerfiles_own_ignore_file_and_an_explicit_one_come_first() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::write(root.join(".dockerignore"), "context\n").unwrap();
    let dockerfile = root.join("app.Dockerfile");
    std::fs::write(&dockerfile, "FROM scratch\n").unwrap();
    let found = Ignore::discover(root, Some(&dockerfile), None).unwrap();
    assert!(found.is_excluded("context"));
    std::fs::write(root.join("app.Dockerfile.dockerignore"), "own\n").unwrap();
    let found = Ignore::discover(root, Some(&dockerfile), None).unwrap();
    assert!(found.is_excluded("own") && !found.is_excluded("context"));
    std::fs::write(root.join("explicit"), "given\n").unwrap();
    let found = Ignore::discover(root, Some(&dockerfile), Some(&root.join("explicit"))).unwrap();
    assert!(found.is_excluded("given") && !found.is_excluded("own"));
    assert!(Ignore::discover(root, None, Some(&root.join("missing"))).is_err());
}

proptest! {
    #[test]
    fn never_panics_on_any_input(text in "\\PC{0,200}", path in "[a-z/.*?\\[\\]!-]{0,40}") {
        if let Ok(ig) = Ignore::parse("f", &text) {
            let _ = ig.is_excluded(&path);
            let _ = ig.may_include_below(&path);
        }
    }

    #[test]
    fn a_literal_path_excludes_itself_and_everything_below(
        parts in proptest::collection::vec("[a-z0-9_]{1,8}", 1..5),
        below in proptest::collection::vec("[a-z0-9_]{1,8}", 0..3),
    ) {
        let path = parts.join("/");
        let ig = ignore(&path);
        prop_assert!(ig.is_excluded(&path));
        let mut deeper = parts.clone();
        deeper.extend(below);
        prop_assert!(ig.is_excluded(&deeper.join("/")));
        let negated = ignore(&format!("{path}\n!{path}\n"));
        prop_assert!(!negated.is_excluded(&deeper.join("/")));
    }

    #[test]
    fn star_matches_one_element_exactly(name in "[a-z]{1,8}", ext in "[a-z]{1,3}", dir in "[a-z]{1,8}") {
        let ig = ignore(&format!("*.{ext}"));
        let top = format!("{name}.{ext}");
        let nested = format!("{dir}/{name}.{ext}");
        prop_assert!(ig.is_excluded(&top));
        prop_assert!(!ig.is_excluded(&nested));
        let deep = ignore(&format!("**/*.{ext}"));
        prop_assert!(deep.is_excluded(&nested));
    }

    #[test]
    fn the_last_matching_pattern_decides(flags in proptest::collection::vec(any::<bool>(), 1..6)) {
        let text: String = flags.iter().map(|neg| if *neg { "!a/b\n" } else { "a/b\n" }).collect();
        let ig = ignore(&text);
        prop_assert_eq!(ig.is_excluded("a/b"), !flags[flags.len() - 1]);
    }
}
