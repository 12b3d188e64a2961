//! berth-init: the small init that `berth run --init` puts at PID 1 of a container, with the
//! container's command as its one child.
//!
//! A process that is PID 1 of a pid namespace has two duties an ordinary command does not do:
//! it is the parent of every orphan in the namespace, so it must reap them or they stay
//! zombies, and the kernel delivers it only the signals it has asked for, so a command that
//! never installed a SIGTERM handler ignores `berth stop`. This program does both and nothing
//! else: it blocks every catchable signal, forks and execs the command, then waits in
//! sigwaitinfo(2); SIGCHLD reaps every child that has exited, any other signal is passed on
//! to the command. When the command exits, so does the init, with the command's code, or 128+N
//! when signal N killed it (the convention of shells, tini and catatonit). Its own failures
//! exit 125 (no command), 126 (the command cannot be run) or 127 (it does not exist), as
//! berth's own exit codes do.
//!
//! Outside PID 1 (tests run it on the host) it makes itself a child subreaper, so orphans of
//! the command are still its to reap.
//!
//! It is built by berth-engine's build.rs as a static, std-only executable (a container image
//! has no libraries to offer it) and embedded in berth; see src/init.rs. It calls the C library
//! through a handful of declarations below rather than a crate, since the build script compiles
//! it with rustc alone.

use std::ffi::{CString, OsString};
use std::io::Write;
use std::os::raw::{c_char, c_int};
use std::os::unix::ffi::OsStrExt;

// The numbers below are the generic Linux ABI's (asm-generic/signal.h, wait.h, prctl.h).
#[cfg(not(all(
    target_os = "linux",
    any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")
)))]
compile_error!("berth-init knows the signal numbers of x86_64, aarch64 and riscv64 Linux only");

const SIG_SETMASK: c_int = 2;
const WNOHANG: c_int = 1;
const SIGABRT: c_int = 6;
const SIGBUS: c_int = 7;
const SIGFPE: c_int = 8;
const SIGILL: c_int = 4;
const SIGPIPE: c_int = 13;
const SIGSEGV: c_int = 11;
const SIGSYS: c_int = 31;
const SIGTRAP: c_int = 5;
const SIGCHLD: c_int = 17;
const SIG_DFL: usize = 0;
const PR_SET_CHILD_SUBREAPER: c_int = 36;
const EINTR: i32 = 4;
const ENOENT: i32 = 2;

/// Exit codes of the init's own failures, berth's (see the module doc).
const NO_COMMAND: i32 = 125;
const CANNOT_INVOKE: i32 = 126;
const NOT_FOUND: i32 = 127;

/// glibc's sigset_t: 1024 bits.
#[repr(C)]
struct SigSet {
    bits: [u64; 16],
}

/// siginfo_t: 128 bytes, the signal number first.
#[repr(C)]
struct SigInfo {
    signo: c_int,
    rest: [c_int; 31],
}

extern "C" {
    fn sigfillset(set: *mut SigSet) -> c_int;
    fn sigdelset(set: *mut SigSet, signo: c_int) -> c_int;
    fn sigprocmask(how: c_int, set: *const SigSet, old: *mut SigSet) -> c_int;
    fn sigwaitinfo(set: *const SigSet, info: *mut SigInfo) -> c_int;
    fn signal(signo: c_int, handler: usize) -> usize;
    fn fork() -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn waitpid(pid: c_int, status: *mut c_int, options: c_int) -> c_int;
    fn kill(pid: c_int, signo: c_int) -> c_int;
    fn getpid() -> c_int;
    fn getpgrp() -> c_int;
    fn setpgid(pid: c_int, pgid: c_int) -> c_int;
    fn tcsetpgrp(fd: c_int, pgrp: c_int) -> c_int;
    fn prctl(option: c_int, arg2: u64, arg3: u64, arg4: u64, arg5: u64) -> c_int;
    fn _exit(status: c_int) -> !;
}

fn errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

/// Says what went wrong on stderr, which is the container's.
fn complain(message: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stderr(), "berth-init: {message}");
}

/// The code a wait status stands for: the exit code, or 128+N for a death by signal N.
fn exit_code(status: c_int) -> i32 {
    let signal = status & 0x7f;
    if signal == 0 {
        (status >> 8) & 0xff
    } else {
        128 + signal
    }
}

/// The command line after `[--]`, as C strings for execvp.
fn command(args: Vec<OsString>) -> Option<Vec<CString>> {
    let mut args = args.into_iter().skip(1).peekable();
    if args.peek().is_some_and(|a| a.as_bytes() == b"--") {
        args.next();
    }
    // An argument holding a NUL cannot reach exec; the kernel's argv has none.
    let args: Option<Vec<CString>> = args.map(|a| CString::new(a.as_bytes()).ok()).collect();
    args.filter(|a| !a.is_empty())
}

fn main() {
    let Some(argv) = command(std::env::args_os().collect()) else {
        complain(format_args!("usage: berth-init [--] COMMAND [ARG...]"));
        std::process::exit(NO_COMMAND);
    };
    let mut pointers: Vec<*const c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    pointers.push(std::ptr::null());

    // SAFETY: getpid and prctl(PR_SET_CHILD_SUBREAPER) take no pointers.
    if unsafe { getpid() } != 1 && unsafe { prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
        complain(format_args!("cannot become a subreaper (errno {})", errno()));
    }

    // Every signal but those the CPU raises for a fault stays pending until sigwaitinfo takes
    // it; a blocked signal reaches PID 1 even without a handler (kernel/signal.c sig_ignored).
    let mut wanted = SigSet { bits: [0; 16] };
    let mut original = SigSet { bits: [0; 16] };
    // SAFETY: both sets are valid, writable sigset_t-sized buffers for these calls.
    unsafe {
        sigfillset(&mut wanted);
        for fault in [SIGABRT, SIGBUS, SIGFPE, SIGILL, SIGSEGV, SIGSYS, SIGTRAP] {
            sigdelset(&mut wanted, fault);
        }
        sigprocmask(SIG_SETMASK, &wanted, &mut original);
    }

    // SAFETY: this process has one thread, so the child may run any code; it only makes
    // system calls and writes to stderr before it execs or exits.
    let child = unsafe { fork() };
    if child < 0 {
        complain(format_args!("fork failed (errno {})", errno()));
        std::process::exit(CANNOT_INVOKE);
    }
    if child == 0 {
        // The command gets a process group of its own and, on a terminal, the foreground:
        // the terminal's ^C and ^Z go to it, not twice through the init. tcsetpgrp from the
        // background is allowed here because SIGTTOU is still blocked (tty_check_change).
        // SAFETY: plain system calls on this process, `pointers` is a NULL-ended array of
        // C strings that live until exec, and the signal mask restored is the one saved.
        unsafe {
            setpgid(0, 0);
            tcsetpgrp(0, getpgrp());
            // Rust's runtime ignores SIGPIPE, and an ignored signal stays ignored across exec.
            signal(SIGPIPE, SIG_DFL);
            sigprocmask(SIG_SETMASK, &original, std::ptr::null_mut());
            execvp(pointers[0], pointers.as_ptr());
        }
        let error = errno();
        complain(format_args!(
            "exec {}: {}",
            argv[0].to_string_lossy(),
            std::io::Error::from_raw_os_error(error)
        ));
        let code = if error == ENOENT { NOT_FOUND } else { CANNOT_INVOKE };
        // SAFETY: _exit ends the child at once, without running the parent's exit handlers.
        unsafe { _exit(code) };
    }

    let mut info = SigInfo { signo: 0, rest: [0; 31] };
    loop {
        // SAFETY: `wanted` is initialised and `info` is a siginfo_t-sized buffer.
        let signo = unsafe { sigwaitinfo(&wanted, &mut info) };
        if signo < 0 {
            if errno() != EINTR {
                complain(format_args!("sigwaitinfo failed (errno {})", errno()));
            }
            continue;
        }
        if signo != SIGCHLD {
            // SAFETY: kill takes no pointers; a command already gone is not an error here.
            unsafe { kill(child, signo) };
            continue;
        }
        // One SIGCHLD may stand for several exits: reap until none is left.
        let mut command_status = None;
        loop {
            let mut status: c_int = 0;
            // SAFETY: waitpid writes one int into `status`, which lives for the call.
            let pid = unsafe { waitpid(-1, &mut status, WNOHANG) };
            if pid <= 0 {
                break;
            }
            if pid == child {
                command_status = Some(status);
            }
        }
        if let Some(status) = command_status {
            std::process::exit(exit_code(status));
        }
    }
}
