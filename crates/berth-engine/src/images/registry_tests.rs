//! Pull and push against the real reference registry (Debian's docker-registry) in each of
//! the harness's modes, and against a registry made to lie.

use std::process::Command;

use berth_testkit::registry::{Mode, Registry};

use super::pull::{Event, RegistryOptions};
use super::*;

fn quiet(_: Event) {}

fn store() -> (tempfile::TempDir, Images) {
    let root = tempfile::tempdir().unwrap();
    let images = Images::open(root.path()).unwrap();
    (root, images)
}

/// A store holding the busybox image under `name`.
fn with_busybox(name: &str) -> (tempfile::TempDir, Images, Image) {
    let src = tempfile::tempdir().unwrap();
    berth_testkit::busybox::image_layout(src.path()).unwrap();
    let (root, images) = store();
    let image = images.load(src.path()).unwrap().remove(0);
    images.tag(image.id().as_str(), &[name.to_owned()]).unwrap();
    (root, images, image)
}

fn plain_http() -> RegistryOptions {
    RegistryOptions { tls_verify: Some(false), ..Default::default() }
}

// Push to an open registry, pull into an empty store: same ids, digests and files; a
// second push skips every blob.
#[test]
fn push_then_pull_through_an_open_registry() {
    let registry = Registry::start(Mode::Open).unwrap();
    let name = format!("{}/berth/busybox:1", registry.addr());
    let (_a, images, image) = with_busybox(&name);
    let events = std::sync::Mutex::new(Vec::new());
    let digest =
        images.push(&name, None, &plain_http(), &|e| events.lock().unwrap().push(e)).unwrap();
    assert_eq!(digest, image.record.manifest.digest);
    let pushed = events
        .lock()
        .unwrap()
        .iter()
        .filter(|e| matches!(e, Event::Blob { skipped: false, .. }))
        .count();
    assert_eq!(pushed, 2, "layer and config uploaded");

    events.lock().unwrap().clear();
    images.push(&name, None, &plain_http(), &|e| events.lock().unwrap().push(e)).unwrap();
    assert!(events
        .lock()
        .unwrap()
        .iter()
        .all(|e| !matches!(e, Event::Blob { skipped: false, .. })));

    let (_b, other) = store();
    let pulled = other.pull(&name, &plain_http(), &quiet).unwrap();
    assert_eq!(pulled.id(), image.id());
    assert_eq!(pulled.record.names, std::slice::from_ref(&name));
    assert!(pulled
        .record
        .repo_digests
        .contains(&format!("{}/berth/busybox@{digest}", registry.addr())));
    assert!(other.layer_dirs(&pulled)[0].join("bin/busybox").is_file());
    // By digest too, which needs no download at all now.
    let by_digest = format!("{}/berth/busybox@{digest}", registry.addr());
    assert_eq!(other.pull(&by_digest, &plain_http(), &quiet).unwrap().id(), image.id());
}

// skopeo, an independent client, sees what berth pushed with the same digest.
#[test]
fn skopeo_reads_what_berth_pushed() {
    let registry = Registry::start(Mode::Open).unwrap();
    let name = format!("{}/interop/bb:v1", registry.addr());
    let (_a, images, _) = with_busybox(&name);
    let digest = images.push(&name, None, &plain_http(), &quiet).unwrap();
    let out = Command::new("skopeo")
        .args(["inspect", "--tls-verify=false", "--format", "{{.Digest}}"])
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), digest.as_str());
    let copy = tempfile::tempdir().unwrap();
    let out = Command::new("skopeo")
        .args(["copy", "--quiet", "--src-tls-verify=false"])
        .arg(format!("docker://{name}"))
        .arg(format!("oci:{}:copied", copy.path().display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    berth_testkit::layout::validate(copy.path()).unwrap();
}

// What skopeo pushes from an OCI layout, berth pulls with the layout's digests.
#[test]
fn berth_pulls_what_skopeo_pushed() {
    let registry = Registry::start(Mode::Open).unwrap();
    let src = tempfile::tempdir().unwrap();
    let layout = berth_testkit::busybox::image_layout(src.path()).unwrap();
    let name = format!("{}/from-skopeo/bb:latest", registry.addr());
    let out = Command::new("skopeo")
        .args(["copy", "--dest-tls-verify=false"])
        .arg(format!("oci:{}:latest", src.path().display()))
        .arg(format!("docker://{name}"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (_root, images) = store();
    let image = images.pull(&name, &plain_http(), &quiet).unwrap();
    assert_eq!(image.id().as_str(), layout.config_digest);
    assert_eq!(image.config.rootfs.diff_ids[0].as_str(), layout.layers[0].diff_id);
}

// The htpasswd registry refuses anonymous pushes with its error, and accepts a login.
#[test]
fn htpasswd_registry_needs_login() {
    let registry = Registry::start(Mode::Htpasswd).unwrap();
    let name = format!("{}/private/bb:1", registry.addr());
    let (_a, images, _) = with_busybox(&name);
    let auth = tempfile::tempdir().unwrap();
    let mut options = plain_http();
    options.authfile = Some(auth.path().join("auth.json"));
    let err = images.push(&name, None, &options, &quiet).unwrap_err();
    let chain = error_chain(&err);
    assert!(chain.contains("401"), "{chain}");
    assert!(chain.contains("authenticating to"), "{chain}");

    let bad = pull::login(&registry.addr(), Registry::USERNAME, "wrong", &options);
    assert!(bad.is_err());
    let file =
        pull::login(&registry.addr(), Registry::USERNAME, Registry::PASSWORD, &options).unwrap();
    assert_eq!(file, auth.path().join("auth.json"));
    images.push(&name, None, &options, &quiet).unwrap();
    let (_b, other) = store();
    other.pull(&name, &options, &quiet).unwrap();
    pull::logout(Some(&registry.addr()), options.authfile.as_deref()).unwrap();
    let (_c, third) = store();
    assert!(third.pull(&name, &options, &quiet).is_err());
}

// TLS: verified against the run's CA, refused without it, and accepted with verification off.
#[test]
fn tls_registry_is_verified() {
    let registry = Registry::start(Mode::Tls).unwrap();
    let name = format!("{}/tls/bb:1", registry.addr());
    let (_a, images, _) = with_busybox(&name);
    let with_ca =
        RegistryOptions { extra_ca: vec![registry.ca_cert().unwrap()], ..Default::default() };
    images.push(&name, None, &with_ca, &quiet).unwrap();

    let (_b, other) = store();
    let err = other.pull(&name, &RegistryOptions::default(), &quiet).unwrap_err();
    assert!(error_chain(&err).contains("TLS"), "{}", error_chain(&err));
    other.pull(&name, &plain_http(), &quiet).unwrap();
}

// A registry serving a blob that does not match its digest: the error names both digests
// and nothing of the image is stored.
#[test]
fn a_lying_registry_stores_nothing() {
    let registry = Registry::start(Mode::Open).unwrap();
    let name = format!("{}/liar/bb:1", registry.addr());
    let (_a, images, image) = with_busybox(&name);
    images.push(&name, None, &plain_http(), &quiet).unwrap();
    let layer = &image.manifest.layers[0].digest;
    let data = registry
        .storage()
        .join("docker/registry/v2/blobs/sha256")
        .join(&layer.hex()[..2])
        .join(layer.hex())
        .join("data");
    let mut bytes = fs::read(&data).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    fs::write(&data, bytes).unwrap();

    let (root, other) = store();
    let err = other.pull(&name, &plain_http(), &quiet).unwrap_err();
    let chain = error_chain(&err);
    assert!(chain.contains(&format!("expected {layer}")), "{chain}");
    assert!(chain.contains("got sha256:"), "{chain}");
    assert!(other.list().unwrap().is_empty());
    assert!(other.layers().list().is_empty());
    assert!(!other.blobs().contains(layer));
    assert_eq!(fs::read_dir(root.path().join("storage/staging")).unwrap().count(), 0);
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}
