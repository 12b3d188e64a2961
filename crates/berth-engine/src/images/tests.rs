use super::*;

fn busybox(dir: &Path) -> berth_testkit::layout::Layout {
    berth_testkit::busybox::image_layout(dir).unwrap()
}

fn store() -> (tempfile::TempDir, Images) {
    let root = tempfile::tempdir().unwrap();
    let images = Images::open(root.path()).unwrap();
    (root, images)
}

// A layout loads, its layer is unpacked and runnable, and the image is found by id or name.
#[test]
fn load_tag_find_and_remove() {
    let src = tempfile::tempdir().unwrap();
    let layout = busybox(src.path());
    let (_root, images) = store();
    let loaded = images.load(src.path()).unwrap();
    assert_eq!(loaded.len(), 1);
    assert_eq!(loaded[0].id().to_string(), layout.config_digest);
    // An OCI layout's bare ref.name is no image name: the image is dangling until tagged.
    assert!(loaded[0].dangling());
    let dirs = images.layer_dirs(&loaded[0]);
    assert!(dirs[0].join("bin/busybox").is_file());

    let id = loaded[0].id().hex().to_owned();
    images.tag(&id[..12], &["busybox".to_owned(), "localhost/bb:1".to_owned()]).unwrap();
    assert_eq!(images.find("busybox").unwrap().id().hex(), id);
    assert_eq!(images.find("docker.io/library/busybox:latest").unwrap().id().hex(), id);
    assert_eq!(images.find("bb:1").unwrap().id().hex(), id);
    assert!(matches!(images.find("bb:2"), Err(ImageError::NotFound(_))));

    let inspect = images.inspect("busybox").unwrap();
    assert_eq!(inspect.id, id);
    assert_eq!(inspect.digest, layout.manifest_digest);
    assert_eq!(inspect.repo_tags, ["docker.io/library/busybox:latest", "localhost/bb:1"]);
    assert_eq!(inspect.root_fs.layers[0].to_string(), layout.layers[0].diff_id);
    assert_eq!(inspect.config["Cmd"], serde_json::json!(["sh"]));

    // By id with two names: refused without force.
    assert!(matches!(
        images.remove(std::slice::from_ref(&id), false),
        Err(ImageError::MustForce { .. })
    ));
    // By name: only untagged.
    let removed = images.remove(&["busybox".to_owned()], false).unwrap();
    assert_eq!(removed.untagged, ["docker.io/library/busybox:latest"]);
    assert!(removed.deleted.is_empty());
    // The last name: deleted, and blobs and layers collected.
    let removed = images.remove(&["localhost/bb:1".to_owned()], false).unwrap();
    assert_eq!(removed.deleted.len(), 1);
    assert!(images.list().unwrap().is_empty());
    assert!(images.blobs().list().unwrap().is_empty());
    assert!(images.layers().list().is_empty());
}

// Saved archives load into another store as the same image, with names kept.
#[test]
fn save_and_load_round_trip() {
    let src = tempfile::tempdir().unwrap();
    busybox(src.path());
    let (_a, first) = store();
    let image = first.load(src.path()).unwrap().remove(0);
    first.tag(image.id().as_str(), &["localhost/bb:v1".to_owned()]).unwrap();
    let out = tempfile::tempdir().unwrap();
    for (format, file) in [(Format::DockerArchive, "d.tar"), (Format::OciArchive, "o.tar")] {
        let path = out.path().join(file);
        first.save(&["localhost/bb:v1".to_owned()], format, &path).unwrap();
        let (_b, second) = store();
        let loaded = second.load(&path).unwrap();
        assert_eq!(loaded[0].id(), image.id(), "{format:?}");
        if format == Format::DockerArchive {
            assert_eq!(loaded[0].record.names, ["localhost/bb:v1"]);
        }
    }
}

// Prune removes only dangling images; -a all.
#[test]
fn prune_removes_dangling_images() {
    let src = tempfile::tempdir().unwrap();
    busybox(src.path());
    let (_root, images) = store();
    let image = images.load(src.path()).unwrap().remove(0);
    let rootfs = tempfile::tempdir().unwrap();
    fs::write(rootfs.path().join("hello"), "hi").unwrap();
    let tarball = rootfs.path().join("../rootfs-import.tar");
    let mut tar = tar::Builder::new(File::create(&tarball).unwrap());
    tar.append_path_with_name(rootfs.path().join("hello"), "hello").unwrap();
    tar.into_inner().unwrap();
    let imported = images.import(&tarball, Some("imported"), None).unwrap();
    assert_eq!(imported.record.names, ["docker.io/library/imported:latest"]);
    assert!(images.layer_dirs(&imported)[0].join("hello").is_file());
    fs::remove_file(&tarball).unwrap();

    assert_eq!(images.prune(false).unwrap(), vec![image.id().clone()]);
    assert_eq!(images.list().unwrap().len(), 1);
    assert!(images.history("imported").unwrap()[0].created_by.contains("ADD file:"));
    assert_eq!(images.prune(true).unwrap().len(), 1);
    assert!(images.blobs().list().unwrap().is_empty());
}
