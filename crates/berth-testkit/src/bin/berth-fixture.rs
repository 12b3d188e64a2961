//! `berth-fixture`: makes the testkit's images from the shell, for the demo and the benchmark
//! scripts.
//!
//! ```text
//! berth-fixture busybox-rootfs DIR     a busybox root file system in DIR
//! berth-fixture busybox-layout DIR     an OCI image layout of it in DIR, tagged latest
//! berth-fixture debian-layout MIB      the cached Debian layout plus MIB MiB of random data;
//!                                      prints its directory
//! ```

use std::path::Path;
use std::process::ExitCode;

use berth_testkit::{busybox, debian, layout};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["busybox-rootfs", dir] => busybox::rootfs(Path::new(dir)),
        ["busybox-layout", dir] => busybox::image_layout(Path::new(dir)).and_then(|l| {
            layout::validate(&l.dir)?;
            println!("{}", l.manifest_digest);
            Ok(())
        }),
        ["debian-layout", mib] => match mib.parse() {
            Ok(mib) => debian::image_layout(mib).map(|l| println!("{}", l.dir.display())),
            Err(_) => Err(anyhow::anyhow!("debian-layout: {mib:?} is not a number of MiB")),
        },
        _ => {
            eprintln!(
                "usage: berth-fixture busybox-rootfs DIR | busybox-layout DIR | debian-layout MIB"
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("berth-fixture: {err:#}");
            ExitCode::FAILURE
        }
    }
}
