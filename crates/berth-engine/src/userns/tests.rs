use super::*;

#[test]
fn ids_map_through_the_namespaces_lines() {
    let map = "         0       1001          1\n         1     100000      65536\n";
    assert_eq!(map_to_host(map, 0), Some(1001));
    assert_eq!(map_to_host(map, 1), Some(100_000));
    assert_eq!(map_to_host(map, 1000), Some(100_999));
    assert_eq!(map_to_host(map, 65_537), None);
    assert!(!is_initial_map(map));
    assert!(is_initial_map("         0          0 4294967295\n"));
}

#[test]
fn the_start_time_is_read_past_a_command_with_spaces_and_parentheses() {
    // Our own start time is stable, and /proc/self/stat's comm is "userns::tests…" or similar.
    let me = std::process::id() as i32;
    let first = start_time(me).expect("own start time");
    assert_eq!(start_time(me), Some(first));
    assert_eq!(start_time(i32::MAX), None);
}

// A pid file is trusted only for the process it recorded, in a user namespace of its own.
#[test]
fn stale_pid_files_are_not_joined() {
    let dir = tempfile::tempdir().unwrap();
    let path = pid_file(dir.path());
    let uid = rustix::process::geteuid().as_raw();
    let me = std::process::id();
    let start = start_time(me as i32).unwrap();

    assert!(live_pause(&path, uid).is_none(), "no file");
    fs::write(&path, "garbage\n").unwrap();
    assert!(live_pause(&path, uid).is_none(), "unparsable");
    // A pid far above pid_max names no process.
    fs::write(&path, format!("{} {start}\n", i32::MAX)).unwrap();
    assert!(live_pause(&path, uid).is_none(), "gone");
    // A live process with another start time: the pid was reused.
    fs::write(&path, format!("{me} {}\n", start + 1)).unwrap();
    assert!(live_pause(&path, uid).is_none(), "reused pid");
    // The right process, but in our own user namespace: not a pause process.
    fs::write(&path, format!("{me} {start}\n")).unwrap();
    assert!(live_pause(&path, uid).is_none(), "same namespace");
}

#[test]
fn the_runtime_dir_follows_xdg_runtime_dir() {
    // Only reads the variable; the test process's environment is not changed.
    let dir = runtime_dir(4242);
    match std::env::var_os("XDG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        Some(xdg) => assert_eq!(dir, Path::new(&xdg).join("berth")),
        None => assert_eq!(dir, Path::new("/tmp/berth-4242")),
    }
}
