//! Links the `berth` binary as a position-dependent executable (`-no-pie`).
//!
//! A PIE carries about 33,000 relative relocations (800 KB of `.rela.dyn` here), which the
//! dynamic loader applies at every start: each berth command spends about a millisecond and
//! 140 copy-on-write page faults on them, and every container's monitor (berth re-executed)
//! keeps the 560 KiB of relocated `.data.rel.ro` as private memory for as long as its
//! container runs. Linked at a fixed address those pages are the file's own: shared through
//! the page cache by every berth process, and dropped by the monitor after its start-up.
//!
//! The cost is that the binary's own code and data load at a fixed address (the stack, heap
//! and shared libraries are still randomized). The code is compiled position-independent as
//! usual; only the link differs, so no dependency is rebuilt for it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let env = std::env::var("CARGO_CFG_TARGET_ENV").unwrap_or_default();
    if os == "linux" && env == "gnu" {
        println!("cargo:rustc-link-arg-bin=berth=-no-pie");
    }
}
