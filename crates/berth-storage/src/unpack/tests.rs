use std::fs;
use std::io::Write;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};

use super::*;
use crate::layers::LayerStore;

const ROOTFUL: UnpackOptions =
    UnpackOptions { whiteouts: Whiteouts::Overlay, chown: true, devices: true };

/// A tar entry with its name written into the header verbatim, as an attacker would.
fn raw(
    tar: &mut tar::Builder<Vec<u8>>,
    name: &[u8],
    kind: tar::EntryType,
    link: &[u8],
    data: &[u8],
) {
    let mut header = tar::Header::new_old();
    header.as_old_mut().name[..name.len()].copy_from_slice(name);
    header.as_old_mut().linkname[..link.len()].copy_from_slice(link);
    header.set_entry_type(kind);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_size(data.len() as u64);
    header.set_mtime(1_000_000);
    header.set_cksum();
    tar.append(&header, data).unwrap();
}

fn tar_of(build: impl FnOnce(&mut tar::Builder<Vec<u8>>)) -> Vec<u8> {
    let mut tar = tar::Builder::new(Vec::new());
    build(&mut tar);
    tar.into_inner().unwrap()
}

/// A root to unpack into, inside a directory whose other contents a bad layer must not touch.
struct Sandbox {
    outer: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Self {
        let outer = tempfile::tempdir().unwrap();
        fs::create_dir(outer.path().join("root")).unwrap();
        fs::write(outer.path().join("outside"), b"precious").unwrap();
        Self { outer }
    }

    fn root(&self) -> PathBuf {
        self.outer.path().join("root")
    }

    /// Everything in the outer directory other than the root: must stay just `outside`.
    fn assert_outside_untouched(&self) {
        let mut names: Vec<_> =
            fs::read_dir(self.outer.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        names.sort();
        assert_eq!(names, ["outside", "root"]);
        assert_eq!(fs::read(self.outer.path().join("outside")).unwrap(), b"precious");
        assert_eq!(fs::metadata(self.outer.path().join("outside")).unwrap().nlink(), 1);
    }
}

// The testkit's busybox layer unpacks to a tree whose shell runs, with the layout's diff_id.
#[test]
fn busybox_layer_unpacks_and_runs() {
    let layout_dir = tempfile::tempdir().unwrap();
    let layout = berth_testkit::busybox::image_layout(layout_dir.path()).unwrap();
    let blob = berth_testkit::layout::blob_path(layout_dir.path(), &layout.layers[0].digest);
    let dest = tempfile::tempdir().unwrap();
    let applied =
        apply_layer(File::open(blob).unwrap(), Compression::Gzip, dest.path(), &ROOTFUL).unwrap();
    assert_eq!(applied.diff_id.to_string(), layout.layers[0].diff_id);
    assert_eq!(fs::read_link(dest.path().join("bin/sh")).unwrap(), Path::new("/bin/busybox"));
    assert_eq!(
        fs::metadata(dest.path().join("tmp")).unwrap().permissions().mode() & 0o7777,
        0o1777
    );
    let out = std::process::Command::new(dest.path().join("bin/busybox"))
        .args(["echo", "hi"])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"hi\n");
}

// `..` components and absolute names land inside the root, never beside it.
#[test]
fn dotdot_and_absolute_names_stay_inside() {
    let sandbox = Sandbox::new();
    let tar = tar_of(|t| {
        raw(t, b"../../outside", tar::EntryType::Regular, b"", b"evil");
        raw(t, b"/abs", tar::EntryType::Regular, b"", b"a");
        raw(t, b"a/../../../b", tar::EntryType::Regular, b"", b"b");
    });
    apply_tar(&tar[..], &sandbox.root(), &ROOTFUL).unwrap();
    sandbox.assert_outside_untouched();
    assert_eq!(fs::read(sandbox.root().join("outside")).unwrap(), b"evil");
    assert_eq!(fs::read(sandbox.root().join("abs")).unwrap(), b"a");
    assert_eq!(fs::read(sandbox.root().join("b")).unwrap(), b"b");
}

// A symlink to an outside path, used as a parent, resolves inside the root.
#[test]
fn symlinked_parents_are_resolved_inside_the_root() {
    let sandbox = Sandbox::new();
    let outer = sandbox.outer.path().to_str().unwrap().as_bytes().to_vec();
    let tar = tar_of(|t| {
        raw(t, b"abs", tar::EntryType::Symlink, &outer, b"");
        raw(t, b"abs/outside", tar::EntryType::Regular, b"", b"evil");
        raw(t, b"rel", tar::EntryType::Symlink, b"../../..", b"");
        raw(t, b"rel/outside2", tar::EntryType::Regular, b"", b"evil");
    });
    apply_tar(&tar[..], &sandbox.root(), &ROOTFUL).unwrap();
    sandbox.assert_outside_untouched();
    assert_eq!(
        fs::read(sandbox.root().join(outer_rel(&sandbox)).join("outside")).unwrap(),
        b"evil"
    );
    assert_eq!(fs::read(sandbox.root().join("outside2")).unwrap(), b"evil");
}

fn outer_rel(sandbox: &Sandbox) -> PathBuf {
    sandbox.outer.path().strip_prefix("/").unwrap().to_path_buf()
}

// A hard link to a file outside the root is refused, through `..` and through a symlink.
#[test]
fn hard_links_to_outside_are_refused() {
    for target in [b"../outside".to_vec(), b"up/outside".to_vec()] {
        let sandbox = Sandbox::new();
        let tar = tar_of(|t| {
            raw(t, b"up", tar::EntryType::Symlink, b"..", b"");
            raw(t, b"link", tar::EntryType::Link, &target, b"");
        });
        let err = apply_tar(&tar[..], &sandbox.root(), &ROOTFUL).unwrap_err();
        assert!(matches!(err, UnpackError::HardLinkTarget { .. }), "{err}");
        assert!(err.to_string().contains("link"), "{err}");
        sandbox.assert_outside_untouched();
    }
}

// Hard links inside the layer, modes with setuid, owners and mtimes are kept.
#[test]
fn metadata_and_hard_links_are_kept() {
    let dest = tempfile::tempdir().unwrap();
    let tar = tar_of(|t| {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mode(0o4755);
        header.set_uid(1234);
        header.set_gid(5678);
        header.set_mtime(1_600_000_000);
        header.set_size(3);
        t.append_data(&mut header, "usr/bin/su", &b"abc"[..]).unwrap();
        raw(t, b"usr/bin/su2", tar::EntryType::Link, b"usr/bin/su", b"");
        raw(t, b"fifo", tar::EntryType::Fifo, b"", b"");
        let mut dev = tar::Header::new_gnu();
        dev.set_entry_type(tar::EntryType::Char);
        dev.set_mode(0o666);
        dev.set_device_major(1).unwrap();
        dev.set_device_minor(3).unwrap();
        dev.set_size(0);
        t.append_data(&mut dev, "dev/null", &b""[..]).unwrap();
    });
    apply_tar(&tar[..], dest.path(), &ROOTFUL).unwrap();
    let meta = fs::metadata(dest.path().join("usr/bin/su")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o7777, 0o4755);
    assert_eq!((meta.uid(), meta.gid()), (1234, 5678));
    assert_eq!(meta.mtime(), 1_600_000_000);
    assert_eq!(meta.nlink(), 2);
    assert_eq!(meta.ino(), fs::metadata(dest.path().join("usr/bin/su2")).unwrap().ino());
    assert!(fs::symlink_metadata(dest.path().join("fifo")).unwrap().file_type().is_fifo());
    let null = fs::symlink_metadata(dest.path().join("dev/null")).unwrap();
    assert!(null.file_type().is_char_device());
    assert_eq!(null.rdev(), rustix::fs::makedev(1, 3));
}

// OCI whiteouts become overlay whiteouts, rootful and rootless style.
#[test]
fn whiteouts_become_overlay_whiteouts() {
    let tar = tar_of(|t| {
        raw(t, b"etc/", tar::EntryType::Directory, b"", b"");
        raw(t, b"etc/.wh.gone", tar::EntryType::Regular, b"", b"");
        raw(t, b"var/.wh..wh..opq", tar::EntryType::Regular, b"", b"");
    });
    let dest = tempfile::tempdir().unwrap();
    apply_tar(&tar[..], dest.path(), &ROOTFUL).unwrap();
    let gone = fs::symlink_metadata(dest.path().join("etc/gone")).unwrap();
    assert!(gone.file_type().is_char_device() && gone.rdev() == 0);
    assert!(!dest.path().join("etc/.wh.gone").exists());
    assert_eq!(xattr(&dest.path().join("var"), "trusted.overlay.opaque"), Some(b"y".to_vec()));

    let rootless = UnpackOptions { whiteouts: Whiteouts::UserXattr, chown: false, devices: false };
    let dest = tempfile::tempdir().unwrap();
    apply_tar(&tar[..], dest.path(), &rootless).unwrap();
    let gone = fs::symlink_metadata(dest.path().join("etc/gone")).unwrap();
    assert!(gone.file_type().is_file() && gone.len() == 0);
    assert_eq!(xattr(&dest.path().join("etc/gone"), "user.overlay.whiteout"), Some(b"y".to_vec()));
    assert_eq!(xattr(&dest.path().join("etc"), "user.overlay.opaque"), Some(b"x".to_vec()));
    assert_eq!(xattr(&dest.path().join("var"), "user.overlay.opaque"), Some(b"y".to_vec()));
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; 64];
    let n = rustix::fs::lgetxattr(path, name, &mut buf[..]).ok()?;
    buf.truncate(n);
    Some(buf)
}

// zstd layers unpack, and their diff_id is of the uncompressed stream.
#[test]
fn zstd_layers_unpack() {
    let tar = tar_of(|t| raw(t, b"hello", tar::EntryType::Regular, b"", b"world"));
    let compressed = zstd::encode_all(&tar[..], 3).unwrap();
    let dest = tempfile::tempdir().unwrap();
    let applied = apply_layer(&compressed[..], Compression::Zstd, dest.path(), &ROOTFUL).unwrap();
    assert_eq!(applied.diff_id, Digest::sha256(&tar));
    assert_eq!(fs::read(dest.path().join("hello")).unwrap(), b"world");
}

// A truncated gzip stream fails and leaves nothing in the layer store.
#[test]
fn truncated_gzip_stores_nothing() {
    let tar = tar_of(|t| raw(t, b"big", tar::EntryType::Regular, b"", &vec![7u8; 300_000]));
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    let gz = gz.finish().unwrap();
    let truncated = &gz[..gz.len() / 2];
    let root = tempfile::tempdir().unwrap();
    let store = LayerStore::open(root.path()).unwrap();
    let diff_id = Digest::sha256(&tar);
    let err =
        store.apply(&diff_id, None, &diff_id, truncated, Compression::Gzip, &ROOTFUL).unwrap_err();
    assert!(format!("{err}").contains(diff_id.as_str()), "{err}");
    assert!(!store.contains(&diff_id));
    assert_eq!(fs::read_dir(root.path().join("layers")).unwrap().count(), 0);
    assert_eq!(fs::read_dir(root.path().join("staging")).unwrap().count(), 0);
}

// A layer whose content does not hash to the config's diff_id is not stored.
#[test]
fn a_wrong_diff_id_stores_nothing() {
    let tar = tar_of(|t| raw(t, b"f", tar::EntryType::Regular, b"", b"x"));
    let root = tempfile::tempdir().unwrap();
    let store = LayerStore::open(root.path()).unwrap();
    let claimed = Digest::sha256(b"not the tar");
    let err =
        store.apply(&claimed, None, &claimed, &tar[..], Compression::None, &ROOTFUL).unwrap_err();
    let chain = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        chain.contains(claimed.as_str()) && chain.contains(Digest::sha256(&tar).as_str()),
        "{chain}"
    );
    assert!(store.list().is_empty());
    let ok = store
        .apply(
            &Digest::sha256(&tar),
            None,
            &Digest::sha256(&tar),
            &tar[..],
            Compression::None,
            &ROOTFUL,
        )
        .unwrap();
    assert_eq!(fs::read(store.diff_path(&ok.chain_id).join("f")).unwrap(), b"x");
}

// A root-owned file in a setgid directory of another group keeps the group its header
// names, and the directory keeps its setgid bit.
#[test]
fn setgid_directories_do_not_regroup_their_files() {
    let tar = tar_of(|t| {
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o2775);
        dir.set_uid(0);
        dir.set_gid(50);
        dir.set_size(0);
        t.append_data(&mut dir, "shared/", &b""[..]).unwrap();
        raw(t, b"shared/f", tar::EntryType::Regular, b"", b"x");
    });
    let dest = tempfile::tempdir().unwrap();
    apply_tar(&tar[..], dest.path(), &ROOTFUL).unwrap();
    let dir = fs::metadata(dest.path().join("shared")).unwrap();
    assert_eq!((dir.permissions().mode() & 0o7777, dir.gid()), (0o2775, 50));
    assert_eq!(fs::metadata(dest.path().join("shared/f")).unwrap().gid(), 0);
}
