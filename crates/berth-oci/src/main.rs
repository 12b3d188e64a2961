//! The `berth-oci` command: runc's command line over berth-runtime, so that Podman,
//! containerd and CRI-O can use berth as their OCI runtime.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("berth-oci: no command is supported yet");
    ExitCode::from(1)
}
