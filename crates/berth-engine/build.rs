//! Builds init/berth-init.rs, the init `berth run --init` runs as PID 1, into a static
//! executable in OUT_DIR, which src/init.rs embeds with include_bytes!.
//!
//! berth itself links glibc dynamically, so its own binary cannot run inside an image that has
//! no glibc; the init must be static. It uses only std, so one rustc call builds it, with the
//! same compiler (and linker, if one is configured for the target) cargo uses for berth.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const SOURCE: &str = "init/berth-init.rs";

fn main() {
    println!("cargo:rerun-if-changed={SOURCE}");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let target = env::var("TARGET").expect("cargo sets TARGET");
    let output = out_dir.join("berth-init");

    let mut command = Command::new(&rustc);
    command
        .args(["--edition", "2021", "--crate-type", "bin", "--crate-name", "berth_init"])
        .args(["--target", &target])
        .args(["-C", "target-feature=+crt-static"])
        .args(["-C", "panic=abort"])
        .args(["-C", "opt-level=s"])
        .args(["-C", "strip=symbols"])
        .args(["-C", "codegen-units=1"])
        .args(["-C", "lto=fat"])
        .args(["-C", "debuginfo=0"])
        .arg("-o")
        .arg(&output)
        .arg(SOURCE);
    if let Some(linker) = env::var_os("RUSTC_LINKER") {
        command.arg("-C").arg({
            let mut arg = std::ffi::OsString::from("linker=");
            arg.push(linker);
            arg
        });
    }
    // The build script's own environment may carry flags meant for berth's crates.
    command.env_remove("CARGO_ENCODED_RUSTFLAGS").env_remove("RUSTFLAGS");
    let result = command
        .output()
        .unwrap_or_else(|e| panic!("building {SOURCE}: running {}: {e}", rustc.to_string_lossy()));
    if !result.status.success() {
        panic!(
            "building {SOURCE} as a static executable failed ({}); it needs the C library's \
             static archive (Debian: libc6-dev):\n{}",
            result.status,
            String::from_utf8_lossy(&result.stderr)
        );
    }
}
