use std::collections::BTreeMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;

use super::*;

use crate::test_support::{in_private_mount_ns, is_root};

/// path → (type, mode, uid, gid, size or link target, xattrs)
type Listing = BTreeMap<String, (char, u32, u64, u64, String, Vec<String>)>;

fn listing(blob: &[u8]) -> (Listing, Vec<String>) {
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob).read_to_end(&mut tar).unwrap();
    let mut archive = tar::Archive::new(tar.as_slice());
    let mut out = Listing::new();
    let mut order = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let path = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
        let mut xattrs = Vec::new();
        if let Some(ext) = entry.pax_extensions().unwrap() {
            for e in ext {
                let e = e.unwrap();
                xattrs.push(format!("{}={}", e.key().unwrap(), e.value().unwrap()));
            }
        }
        let h = entry.header().clone();
        let kind = h.entry_type().as_byte() as char;
        let detail = match h.entry_type() {
            tar::EntryType::Symlink | tar::EntryType::Link => {
                entry.link_name().unwrap().unwrap().display().to_string()
            }
            _ => {
                let mut data = String::new();
                entry.read_to_string(&mut data).unwrap();
                data
            }
        };
        order.push(path.clone());
        out.insert(
            path,
            (kind, h.mode().unwrap() & 0o7777, h.uid().unwrap(), h.gid().unwrap(), detail, xattrs),
        );
    }
    (out, order)
}

fn make_lower(lower: &Path) {
    for (path, content) in
        [("keep", "k"), ("changed", "old"), ("d/x", "x"), ("d/y", "y"), ("o/p", "p")]
    {
        let full = lower.join(path);
        fs::create_dir_all(full.parent().unwrap()).unwrap();
        fs::write(full, content).unwrap();
    }
}

#[test]
fn an_upper_dir_becomes_a_layer_with_whiteouts_links_owners_and_xattrs() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let lower = tmp.path().join("lower");
    make_lower(&lower);
    let (upper, work, merged) =
        (tmp.path().join("upper"), tmp.path().join("work"), tmp.path().join("merged"));
    for d in [&upper, &work, &merged] {
        fs::create_dir(d).unwrap();
    }
    in_private_mount_ns(|| {
        let lowers = [lower.clone()];
        let overlay = crate::mount::Overlay { lower: &lowers, upper: &upper, work: &work };
        crate::mount::mount_overlay(crate::mount::Driver::Overlay, &overlay, &merged)
            .map_err(|e| e.to_string())?;
        let m = |p: &str| merged.join(p);
        let io = |e: io::Error| e.to_string();
        fs::write(m("changed"), "new").map_err(io)?;
        fs::remove_file(m("d/x")).map_err(io)?;
        fs::remove_dir_all(m("o")).map_err(io)?;
        fs::create_dir(m("o")).map_err(io)?;
        fs::write(m("o/q"), "q").map_err(io)?;
        fs::create_dir_all(m("new/deep")).map_err(io)?;
        fs::write(m("new/deep/file"), "data").map_err(io)?;
        // chown clears setuid, so it comes first.
        std::os::unix::fs::chown(m("new/deep/file"), Some(1000), Some(1001)).map_err(io)?;
        fs::set_permissions(m("new/deep/file"), fs::Permissions::from_mode(0o4750)).map_err(io)?;
        fs::hard_link(m("new/deep/file"), m("new/hard")).map_err(io)?;
        std::os::unix::fs::symlink("../keep", m("new/link")).map_err(io)?;
        rustix::fs::setxattr(
            m("new/deep"),
            "user.colour",
            b"blue",
            rustix::fs::XattrFlags::empty(),
        )
        .map_err(|e| e.to_string())?;
        crate::mount::unmount(&merged).map_err(|e| e.to_string())
    });

    let options = DiffOptions { epoch: Some(1_000_000), ..DiffOptions::default() };
    let (diff, blob) = write_diff(&upper, &options, Vec::new()).unwrap();
    let (list, order) = listing(&blob);
    let paths: Vec<&str> = order.iter().map(String::as_str).collect();
    assert_eq!(
        paths,
        [
            "changed",
            "d/",
            "d/.wh.x",
            "new/",
            "new/deep/",
            "new/deep/file",
            "new/hard",
            "new/link",
            "o/",
            "o/.wh..wh..opq",
            "o/q",
        ]
    );
    assert_eq!(list["changed"].4, "new");
    assert_eq!(list["d/.wh.x"].0, '0');
    assert_eq!(list["new/deep/file"], ('0', 0o4750, 1000, 1001, "data".into(), vec![]));
    assert_eq!(list["new/hard"].0, '1');
    assert_eq!(list["new/hard"].4, "new/deep/file");
    assert_eq!(list["new/link"].0, '2');
    assert_eq!(list["new/link"].4, "../keep");
    assert_eq!(list["new/deep/"].5, ["SCHILY.xattr.user.colour=blue"]);
    assert!(list.values().all(|e| !e.5.iter().any(|x| x.contains("overlay"))));
    assert_eq!(diff.size, blob.len() as u64);
    assert_eq!(diff.digest, berth_image::digest::Digest::sha256(&blob));

    // Every time is clamped to the epoch, so a second diff of the same tree is identical.
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(blob.as_slice()).read_to_end(&mut tar).unwrap();
    assert_eq!(diff.diff_id, berth_image::digest::Digest::sha256(&tar));
    for entry in tar::Archive::new(tar.as_slice()).entries().unwrap() {
        assert!(entry.unwrap().header().mtime().unwrap() <= 1_000_000);
    }
    let (again, _) = write_diff(&upper, &options, Vec::new()).unwrap();
    assert_eq!(again, diff);
}

#[test]
fn a_redirected_directory_is_refused() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("moved");
    fs::create_dir(&dir).unwrap();
    rustix::fs::setxattr(
        &dir,
        "trusted.overlay.redirect",
        b"/old",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let err = write_diff(tmp.path(), &DiffOptions::default(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("moved"), "{err}");
}

#[test]
fn pax_records_count_their_own_length() {
    let mut out = Vec::new();
    pax_record(&mut out, "SCHILY.xattr.user.a", b"b");
    let text = String::from_utf8(out).unwrap();
    let (len, _) = text.split_once(' ').unwrap();
    assert_eq!(len.parse::<usize>().unwrap(), text.len());
    // 9 + digits crosses from one to two digits.
    let mut out = Vec::new();
    pax_record(&mut out, "k", b"12345");
    let text = String::from_utf8(out).unwrap();
    assert_eq!(text.split_once(' ').unwrap().0.parse::<usize>().unwrap(), text.len());
}
