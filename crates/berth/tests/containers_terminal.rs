//! `-it` as a user at a terminal drives it, rootful: the container's terminal follows the
//! size of berth's (a resize while it runs reaches `stty size` inside), `--detach-keys` picks
//! the sequence that detaches (the default one is then plain input), and `attach` takes its
//! own keys.

use std::io::Write;

use berth_testkit::cli::Berth;
use berth_testkit::pty;

fn engine() -> Berth {
    if !rustix::process::geteuid().is_root() {
        panic!("the rootful container tests need root");
    }
    Berth::with_busybox(env!("CARGO_BIN_EXE_berth"), "localhost/busybox:latest")
}

/// What `stty size` says inside the shell on `master`.
fn size_inside(master: &mut std::fs::File) -> String {
    // The marker is computed, so the terminal's echo of the typed line does not match it.
    master.write_all(b"stty size; echo size-$((6*7))\n").unwrap();
    pty::read_until(master, "size-42\r\n")
}

#[test]
fn resize_and_detach_keys() {
    let berth = engine();
    let args = ["run", "-it", "--detach-keys", "ctrl-a,d", "--name", "term"];
    let mut command = berth.command(&args);
    command.args(["localhost/busybox", "sh"]);
    let (mut child, mut master) = pty::spawn(command);
    pty::resize(&master, 24, 80);
    berth.eventually("the first size inside", || size_inside(&mut master).contains("24 80"));

    // A resized window: SIGWINCH to berth, which passes the size to the container's pty.
    pty::resize(&master, 33, 101);
    berth.eventually("the new size inside", || size_inside(&mut master).contains("33 101"));

    // ctrl-p ctrl-q is input now (ctrl-u clears what it did to the line); ctrl-a d detaches
    // and leaves the shell running.
    master.write_all(b"\x10\x11").unwrap();
    master.write_all(b"\x15echo still-$((1+1))\n").unwrap();
    pty::read_until(&mut master, "still-2\r\n");
    assert!(child.try_wait().unwrap().is_none(), "ctrl-p ctrl-q detached");
    master.write_all(b"\x01d").unwrap();
    assert_eq!(pty::wait_exit(&mut child), Some(0), "berth exits 0 on detach");
    assert_eq!(berth.ok(&["ps", "--format", "{{.Names}} {{.State}}"]).trim(), "term Running");

    // attach with no detach keys at all: the shell's exit code comes back.
    let (mut child, mut master) =
        pty::spawn(berth.command(&["attach", "--detach-keys", "", "term"]));
    master.write_all(b"\x10\x11").unwrap();
    master.write_all(b"\x15echo back-$((2+2))\n").unwrap();
    pty::read_until(&mut master, "back-4\r\n");
    master.write_all(b"exit 5\n").unwrap();
    assert_eq!(pty::wait_exit(&mut child), Some(5));
    let err = berth.fails(&["run", "--detach-keys", "ctrl-1", "localhost/busybox"], 125);
    assert!(err.contains("ctrl-1") && err.lines().count() == 1, "{err}");
    berth.ok(&["rm", "term"]);
    berth.assert_clean();
}
