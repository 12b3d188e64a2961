//! A bigger, multi-layer image for benchmarks: a debootstrap'd Debian bookworm minbase (about
//! 200 MB unpacked) as the first layer, and optionally a layer of incompressible data, cached
//! between runs under [`crate::cache_dir`] because debootstrap takes tens of seconds.
//!
//! The data is pseudo-random from a fixed seed, so the layout and its digests are the same in
//! every run on every machine with the same Debian packages.

use std::fs::{self, File};
use std::io::{BufWriter, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use crate::layout::{Layout, LayoutBuilder};

pub const SUITE: &str = "bookworm";
pub const MIRROR: &str = "http://deb.debian.org/debian";

/// The debootstrap'd minbase tree, made once and then reused.
pub fn rootfs() -> Result<PathBuf> {
    let cache = crate::cache_dir();
    let dir = cache.join(format!("debian-{SUITE}-minbase"));
    let _lock = CacheLock::take(&cache)?;
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    let partial = cache.join(format!("debian-{SUITE}-minbase.partial"));
    if partial.exists() {
        fs::remove_dir_all(&partial)?;
    }
    let out = Command::new("debootstrap")
        .args(["--variant=minbase", SUITE])
        .arg(&partial)
        .arg(MIRROR)
        .output()
        .context("running debootstrap: install Debian's debootstrap")?;
    ensure!(out.status.success(), "debootstrap failed: {}", String::from_utf8_lossy(&out.stderr));
    // Device nodes and the apt cache do not belong in an image layer.
    for sub in ["dev", "var/cache/apt/archives", "var/lib/apt/lists"] {
        let path = partial.join(sub);
        if path.exists() {
            fs::remove_dir_all(&path)?;
            fs::create_dir(&path)?;
        }
    }
    if dir.exists() {
        fs::remove_dir_all(&dir)?;
    }
    fs::rename(&partial, &dir)?;
    fs::write(dir.join(".complete"), b"")?;
    Ok(dir)
}

/// An OCI layout of the Debian tree plus, when `random_mib` is not zero, a second layer holding
/// `/data/random.bin` of that many MiB. Made once per size and reused.
pub fn image_layout(random_mib: u32) -> Result<Layout> {
    let root = rootfs()?;
    let cache = crate::cache_dir();
    let dir = cache.join(format!("debian-{SUITE}-layout-{random_mib}m"));
    let _lock = CacheLock::take(&cache)?;
    if !dir.join("index.json").exists() {
        let partial = cache.join(format!("debian-{SUITE}-layout-{random_mib}m.partial"));
        if partial.exists() {
            fs::remove_dir_all(&partial)?;
        }
        let mut builder = LayoutBuilder::new(&partial)?;
        builder.add_dir_layer(&root)?;
        if random_mib > 0 {
            let data = tempfile::tempdir_in(&cache)?;
            fs::create_dir(data.path().join("data"))?;
            write_random(&data.path().join("data/random.bin"), random_mib)?;
            builder.add_dir_layer(data.path())?;
        }
        builder.finish(
            json!({"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["bash"]}),
            "latest",
        )?;
        fs::rename(&partial, &dir)?;
    }
    crate::layout::read(&dir)
}

/// Writes `mib` MiB of xorshift output: incompressible, and the same bytes every time.
fn write_random(path: &Path, mib: u32) -> Result<()> {
    let mut out = BufWriter::new(File::create(path)?);
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut block = [0u8; 8192];
    for _ in 0..(u64::from(mib) * 1024 * 1024 / block.len() as u64) {
        for chunk in block.chunks_exact_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes());
        }
        out.write_all(&block)?;
    }
    out.flush()?;
    Ok(())
}

/// An exclusive flock on the cache directory, so that parallel test binaries build a cached
/// item once. Released when dropped.
struct CacheLock {
    _file: File,
}

impl CacheLock {
    fn take(cache: &Path) -> Result<Self> {
        fs::create_dir_all(cache)?;
        let file = File::create(cache.join(".lock"))?;
        // SAFETY: the descriptor is owned by `file` and stays open for the call.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        ensure!(rc == 0, "locking {}: {}", cache.display(), std::io::Error::last_os_error());
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // The benchmark image is a valid two-layer layout over a real Debian tree.
    #[test]
    fn debian_layout_has_two_valid_layers() {
        let layout = image_layout(8).unwrap();
        crate::layout::validate(&layout.dir).unwrap();
        assert_eq!(layout.layers.len(), 2);
        let root = rootfs().unwrap();
        let release = fs::read_to_string(root.join("etc/os-release")).unwrap();
        assert!(release.contains("bookworm"), "{release}");
        assert!(root.join("usr/bin/apt-get").exists());
        // The random layer does not compress: its blob is at least its 8 MiB of content.
        assert!(layout.layers[1].size >= 8 * 1024 * 1024);
    }
}
