//! A busybox root file system made from Debian's busybox-static: the static binary, a symlink
//! for each applet, and the few files a container expects (/etc/passwd and /etc/group with
//! root and an unprivileged user, /etc/hosts, empty mount points).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::json;

use crate::layout::{Layout, LayoutBuilder};

/// Where Debian's busybox-static installs its binary.
pub const BUSYBOX: &str = "/bin/busybox";

/// The unprivileged user every busybox rootfs has (name, uid, gid).
pub const USER: (&str, u32, u32) = ("user", 1000, 1000);

/// The tag the busybox layout's manifest carries in index.json.
pub const REF_NAME: &str = "latest";

/// Makes a busybox root file system in `dest` (created if missing).
pub fn rootfs(dest: &Path) -> Result<()> {
    let busybox = fs::read(BUSYBOX)
        .with_context(|| format!("reading {BUSYBOX}: install Debian's busybox-static"))?;
    ensure!(busybox.starts_with(b"\x7fELF"), "{BUSYBOX} is not an ELF binary");

    for dir in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "root", "home/user", "var/tmp"] {
        fs::create_dir_all(dest.join(dir))?;
    }
    for (dir, mode) in [("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777)] {
        fs::create_dir_all(dest.join(dir))?;
        fs::set_permissions(dest.join(dir), fs::Permissions::from_mode(mode))?;
    }
    fs::set_permissions(dest.join("root"), fs::Permissions::from_mode(0o700))?;
    fs::set_permissions(dest.join("var/tmp"), fs::Permissions::from_mode(0o1777))?;

    let bin = dest.join("bin/busybox");
    fs::write(&bin, &busybox)?;
    fs::set_permissions(&bin, fs::Permissions::from_mode(0o755))?;
    for applet in applets()? {
        let link = dest.join(&applet);
        if applet == "bin/busybox" || link.symlink_metadata().is_ok() {
            continue;
        }
        // Absolute targets resolve inside the container's root; on the host they would not,
        // which is what tests of symlink handling want to see too.
        symlink("/bin/busybox", &link).with_context(|| format!("linking {applet}"))?;
    }

    let (user, uid, gid) = USER;
    fs::write(
        dest.join("etc/passwd"),
        format!(
            "root:x:0:0:root:/root:/bin/sh\n{user}:x:{uid}:{gid}:{user}:/home/{user}:/bin/sh\n\
             nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
        ),
    )?;
    fs::write(
        dest.join("etc/group"),
        format!("root:x:0:\nwheel:x:10:root\n{user}:x:{gid}:\nnogroup:x:65534:\n"),
    )?;
    fs::write(dest.join("etc/hosts"), "127.0.0.1\tlocalhost\n::1\tlocalhost\n")?;
    fs::write(dest.join("etc/hostname"), "busybox\n")?;
    // The tree must be readable by a rootless user whose namespace maps it.
    fs::set_permissions(dest.join("home/user"), fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// Makes an OCI image layout of the busybox root file system in `dest`: one gzip'd layer, a
/// config with a default PATH and `sh` as the command, tagged [`REF_NAME`].
pub fn image_layout(dest: &Path) -> Result<Layout> {
    let tree = tempfile::tempdir()?;
    rootfs(tree.path())?;
    let mut builder = LayoutBuilder::new(dest)?;
    builder.add_dir_layer(tree.path())?;
    builder.finish(
        json!({
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["sh"],
            "Labels": {"org.opencontainers.image.title": "berth-testkit busybox"},
        }),
        REF_NAME,
    )
}

/// The applets this busybox provides, as paths relative to the root (`usr/bin/env`).
fn applets() -> Result<Vec<String>> {
    let out = Command::new(BUSYBOX).arg("--list-full").output().context("running busybox")?;
    ensure!(out.status.success(), "busybox --list-full failed: {}", out.status);
    Ok(String::from_utf8(out.stdout)?.lines().map(str::to_owned).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout;

    // The rootfs runs: its shell, reached through an applet symlink, executes commands.
    #[test]
    fn rootfs_has_a_working_shell_and_users() {
        let dir = tempfile::tempdir().unwrap();
        rootfs(dir.path()).unwrap();
        let sh = dir.path().join("bin/sh");
        assert_eq!(fs::read_link(&sh).unwrap(), Path::new("/bin/busybox"));
        let out = Command::new(dir.path().join("bin/busybox"))
            .args(["sh", "-c", "echo $((6 * 7))"])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), "42\n");
        let passwd = fs::read_to_string(dir.path().join("etc/passwd")).unwrap();
        assert!(passwd.lines().any(|l| l.starts_with("root:x:0:0:")));
        assert!(passwd.lines().any(|l| l.starts_with("user:x:1000:1000:")));
        assert!(fs::read_to_string(dir.path().join("etc/group")).unwrap().contains("user:x:1000:"));
    }

    // The layout is valid by the image spec, and reproducible: the same tree, the same digest.
    #[test]
    fn image_layout_validates_and_is_reproducible() {
        let a = tempfile::tempdir().unwrap();
        let b = tempfile::tempdir().unwrap();
        let first = image_layout(a.path()).unwrap();
        let second = image_layout(b.path()).unwrap();
        layout::validate(a.path()).unwrap();
        assert_eq!(first.layers.len(), 1);
        assert_eq!(first.manifest_digest, second.manifest_digest);
    }

    // The validator is not a rubber stamp: a flipped byte in the layer is caught.
    #[test]
    fn validate_catches_a_corrupted_layer() {
        let dir = tempfile::tempdir().unwrap();
        let layout = image_layout(dir.path()).unwrap();
        let blob = layout::blob_path(dir.path(), &layout.layers[0].digest);
        let mut bytes = fs::read(&blob).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        fs::write(&blob, bytes).unwrap();
        let err = layout::validate(dir.path()).unwrap_err().to_string();
        assert!(err.contains(&layout.layers[0].digest), "{err}");
    }

    // skopeo, an independent reader of the image spec, accepts the layout and sees its digest.
    #[test]
    fn skopeo_reads_the_layout() {
        let dir = tempfile::tempdir().unwrap();
        let layout = image_layout(dir.path()).unwrap();
        let out = Command::new("skopeo")
            .args(["inspect", "--raw"])
            .arg(format!("oci:{}:{REF_NAME}", dir.path().display()))
            .output()
            .expect("skopeo is installed by scripts/test");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        assert_eq!(crate::digest::sha256(&out.stdout), layout.manifest_digest);
    }
}
