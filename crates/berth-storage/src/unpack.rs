//! Applying a layer diff — a tar stream, plain or gzip or zstd compressed — to a directory,
//! safely: every path is resolved with openat2(2) `RESOLVE_IN_ROOT`, so `..` components,
//! absolute names and symlinks (absolute or relative, in any parent) are clamped to the
//! layer's root and nothing is ever written outside it. Hard links are made with linkat(2)
//! between two directories both resolved inside the root, so a link can never reach an
//! outside file either. Extraction is our own code; the tar crate only parses headers.
//!
//! OCI whiteouts (image-spec `layer.md#whiteouts`) become overlayfs whiteouts: a `.wh.NAME`
//! entry becomes a 0/0 character device (or, rootless, an empty file with the
//! `user.overlay.whiteout` xattr, its directory marked `user.overlay.opaque=x`), and
//! `.wh..wh..opq` marks its directory opaque (`trusted.overlay.opaque` or
//! `user.overlay.opaque` = `y`). See the kernel's Documentation/filesystems/overlayfs.rst.
//!
//! The uncompressed stream is hashed in the same pass, giving the layer's diff_id.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Component, Path, PathBuf};

use berth_image::digest::{Digest, Hasher, HashingReader};
use berth_image::manifest::Compression;
use rustix::fs::{AtFlags, Mode, OFlags, ResolveFlags, Timespec, Timestamps};
use rustix::io::Errno;
use tracing::{debug, warn};

/// Why a layer could not be applied. Each carries the entry's name inside the layer.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("opening layer root {path}")]
    OpenRoot {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the layer's tar stream")]
    ReadTar(#[source] io::Error),
    #[error("layer entry {name:?}: {step}")]
    Entry {
        name: String,
        step: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("layer entry {name:?}: hard link to {target:?} which is not in the layer")]
    HardLinkTarget { name: String, target: String },
    #[error("layer entry {name:?}: unsupported entry type {kind}")]
    EntryType { name: String, kind: u8 },
    #[error("starting {0} decompression")]
    Decompress(&'static str, #[source] io::Error),
}

/// How whiteouts are written into a layer directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whiteouts {
    /// 0/0 character devices and `trusted.overlay.opaque`, for overlayfs mounted by root.
    Overlay,
    /// Files with `user.overlay.whiteout` and `user.overlay.opaque`, for overlayfs mounted
    /// with `userxattr` inside a user namespace.
    UserXattr,
    /// 0/0 character devices (which Linux 5.8 and later let a user namespace's root make) and
    /// `user.overlay.opaque`: what both overlayfs with `userxattr` and fuse-overlayfs read
    /// inside a user namespace. (Rootless berth: layers unpacked in its per-user namespace.)
    DevicesUserOpaque,
}

/// What applying a layer may do besides creating files.
#[derive(Debug, Clone, Copy)]
pub struct UnpackOptions {
    pub whiteouts: Whiteouts,
    /// Set owners from the tar headers (root, or inside a user namespace that maps them);
    /// otherwise everything belongs to the caller.
    pub chown: bool,
    /// Create device nodes (root only; rootless they are skipped with a warning).
    pub devices: bool,
}

impl UnpackOptions {
    /// The options for the current process: rootful when the effective uid is 0 in the
    /// initial user namespace. Root inside a user namespace (rootless berth after joining
    /// its per-user namespace) sets the owners the namespace maps and writes 0/0 whiteouts,
    /// but marks opaque directories with user.overlay.opaque (trusted.* xattrs need the
    /// initial namespace) and creates no other device nodes (mknod is refused there).
    pub fn for_current_user() -> Self {
        let root = rustix::process::geteuid().is_root();
        let namespaced = root && in_user_namespace();
        Self {
            whiteouts: match (root, namespaced) {
                (true, false) => Whiteouts::Overlay,
                // Rootless berth's per-user namespace (marked edit of the rootless engineer).
                (true, true) => Whiteouts::DevicesUserOpaque,
                (false, _) => Whiteouts::UserXattr,
            },
            chown: root,
            devices: root && !namespaced,
        }
    }
}

/// Whether this process runs in a user namespace other than the initial one: the initial
/// namespace's uid_map is the identity over the whole range (user_namespaces(7)).
pub fn in_user_namespace() -> bool {
    match std::fs::read_to_string("/proc/self/uid_map") {
        Ok(map) => {
            let fields: Vec<&str> = map.split_whitespace().collect();
            fields != ["0", "0", "4294967295"]
        }
        Err(_) => false,
    }
}

/// What a successful apply measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// sha256 of the uncompressed tar stream.
    pub diff_id: Digest,
    /// Bytes of the uncompressed tar stream.
    pub tar_size: u64,
    pub entries: u64,
}

/// Decompresses `input` by `compression`, applies it to the directory `dest` and returns
/// the diff_id. The whole stream is read, to the end of the tar's trailing padding, so the
/// digest is of every byte.
pub fn apply_layer(
    input: impl Read,
    compression: Compression,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<Applied, UnpackError> {
    let reader: Box<dyn Read> = match compression {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::read::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(
            zstd::stream::read::Decoder::new(input)
                .map_err(|e| UnpackError::Decompress("zstd", e))?,
        ),
    };
    apply_tar(reader, dest, options)
}

/// Applies an uncompressed tar stream to `dest`.
pub fn apply_tar(
    input: impl Read,
    dest: &Path,
    options: &UnpackOptions,
) -> Result<Applied, UnpackError> {
    let root: OwnedFd =
        rustix::fs::open(dest, OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .map_err(|e| UnpackError::OpenRoot { path: dest.to_path_buf(), source: e.into() })?;

    // Hashed below the buffer, so every byte is hashed once however the tar parser reads.
    let hashing = HashingReader::new(input, Hasher::sha256());
    let mut archive = tar::Archive::new(io::BufReader::with_capacity(256 << 10, hashing));
    let mut unpacker = Unpacker {
        root,
        options: *options,
        dirs: Vec::new(),
        parents: HashMap::new(),
        warned_devices: false,
        warned_xattrs: false,
        buf: vec![0; 256 << 10],
        own_ids: (
            u64::from(rustix::process::geteuid().as_raw()),
            u64::from(rustix::process::getegid().as_raw()),
        ),
    };
    let mut entries = 0u64;
    for entry in archive.entries().map_err(UnpackError::ReadTar)? {
        let mut entry = entry.map_err(UnpackError::ReadTar)?;
        unpacker.entry(&mut entry)?;
        entries += 1;
    }
    unpacker.finish_dirs()?;

    // The tar crate stops at the end-of-archive blocks; the digest is over every byte.
    let mut buffered = archive.into_inner();
    io::copy(&mut buffered, &mut io::sink()).map_err(UnpackError::ReadTar)?;
    let (diff_id, tar_size, _) = buffered.into_inner().finish();
    Ok(Applied { diff_id, tar_size, entries })
}

/// A directory whose mode and times are set after all its children exist.
struct PendingDir {
    path: PathBuf,
    mode: u32,
    mtime: Timespec,
}

struct Unpacker {
    root: OwnedFd,
    options: UnpackOptions,
    dirs: Vec<PendingDir>,
    /// Opened parent directories by path, valid until an entry that could change how a path
    /// resolves (anything but a regular file) is applied.
    parents: HashMap<PathBuf, OwnedFd>,
    warned_devices: bool,
    warned_xattrs: bool,
    /// The copy buffer for file contents, reused for every file.
    buf: Vec<u8>,
    /// The caller's effective uid and gid, which new files get without a chown.
    own_ids: (u64, u64),
}

/// Copies a file's contents in large writes (std's io::copy writes 8 KiB at a time).
fn copy_data(from: &mut impl Read, to: &mut File, buf: &mut [u8]) -> io::Result<()> {
    loop {
        let n = match from.read(buf) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
    }
}

const RESOLVE: ResolveFlags = ResolveFlags::IN_ROOT.union(ResolveFlags::NO_MAGICLINKS);

/// The entry's path made relative and lexically clean: `/`, `.` and leading `..` are
/// dropped (RESOLVE_IN_ROOT would clamp them to the root anyway).
fn clean(name: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in name.components() {
        match component {
            Component::Normal(part) => out.push(part),
            Component::ParentDir => {
                out.pop();
            }
            Component::RootDir | Component::CurDir | Component::Prefix(_) => {}
        }
    }
    out
}

fn timespec(secs: u64) -> Timespec {
    Timespec { tv_sec: secs.min(i64::MAX as u64) as i64, tv_nsec: 0 }
}

impl Unpacker {
    fn entry<R: Read>(&mut self, entry: &mut tar::Entry<'_, R>) -> Result<(), UnpackError> {
        let raw_name = entry.path().map_err(UnpackError::ReadTar)?.into_owned();
        let name = clean(&raw_name);
        let display = name.to_string_lossy().into_owned();
        let header = entry.header().clone();
        let kind = header.entry_type();
        let err = |step: &'static str| {
            let display = display.clone();
            move |e: io::Error| UnpackError::Entry { name: display, step, source: e }
        };
        let errno = |step: &'static str| {
            let display = display.clone();
            move |e: Errno| UnpackError::Entry { name: display, step, source: e.into() }
        };

        if matches!(
            kind,
            tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink
        ) {
            return Ok(());
        }
        let mode = header.mode().map_err(err("reading mode"))? & 0o7777;
        // Some writers leave the owner fields blank; GNU tar reads those as 0.
        let uid = header.uid().unwrap_or(0);
        let gid = header.gid().unwrap_or(0);
        let mtime = timespec(header.mtime().unwrap_or(0));

        let Some(base) = name.file_name().map(OsStr::to_owned) else {
            // The root itself (`./`): only its metadata applies.
            if kind.is_dir() {
                self.dirs.push(PendingDir { path: PathBuf::new(), mode, mtime });
                if self.options.chown {
                    rustix::fs::fchown(&self.root, Some(uid_of(uid)), Some(gid_of(gid)))
                        .map_err(errno("setting owner"))?;
                }
            }
            return Ok(());
        };
        let parent_path = name.parent().unwrap_or(Path::new("")).to_path_buf();
        let base_bytes = base.as_bytes();

        // Whiteouts act on the parent directory and never create the name itself.
        if let Some(hidden) = base_bytes.strip_prefix(b".wh.") {
            let parent = self.parent(&parent_path, &display)?;
            if hidden == b".wh..opq" {
                return self.mark_opaque(&parent, &display, b"y");
            }
            if hidden.starts_with(b".wh.") {
                // aufs bookkeeping (`.wh..wh.plnk` and the like): not part of the tree.
                return Ok(());
            }
            let hidden = OsStr::from_bytes(hidden);
            remove_existing(&parent, hidden).map_err(errno("removing whited-out entry"))?;
            self.parents.clear();
            return self.whiteout(&parent, hidden, &display);
        }

        if !kind.is_file() && !kind.is_dir() {
            self.parents.clear();
        }
        let parent = self.parent(&parent_path, &display)?;

        // Whatever is in the way goes, except a directory that a directory entry updates.
        let existing = rustix::fs::statat(&parent, &base, AtFlags::SYMLINK_NOFOLLOW);
        if let Ok(stat) = &existing {
            let is_dir = rustix::fs::FileType::from_raw_mode(stat.st_mode)
                == rustix::fs::FileType::Directory;
            if !(is_dir && kind.is_dir()) {
                remove_existing(&parent, &base).map_err(errno("replacing existing entry"))?;
                self.parents.clear();
            }
        }

        let xattrs = pax_xattrs(entry).map_err(err("reading xattrs"))?;
        match kind {
            tar::EntryType::Regular | tar::EntryType::Continuous | tar::EntryType::GNUSparse => {
                let fd = rustix::fs::openat(
                    &parent,
                    &base,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::from_raw_mode(0o600),
                )
                .map_err(errno("creating file"))?;
                let mut file = File::from(fd);
                copy_data(entry, &mut file, &mut self.buf).map_err(err("writing file"))?;
                // A new file already has the caller's owner: skip the call when that is it.
                if self.options.chown && (uid, gid) != self.own_ids {
                    rustix::fs::fchown(&file, Some(uid_of(uid)), Some(gid_of(gid)))
                        .map_err(errno("setting owner"))?;
                }
                // After chown, which clears setuid and setgid bits.
                rustix::fs::fchmod(&file, Mode::from_raw_mode(mode))
                    .map_err(errno("setting mode"))?;
                self.set_xattrs(&file, &xattrs, &display)?;
                rustix::fs::futimens(
                    &file,
                    &Timestamps { last_access: mtime, last_modification: mtime },
                )
                .map_err(errno("setting times"))?;
            }
            tar::EntryType::Directory => {
                match rustix::fs::mkdirat(&parent, &base, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(errno("creating directory")(e)),
                }
                let fd = rustix::fs::openat(
                    &parent,
                    &base,
                    OFlags::DIRECTORY | OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(errno("opening directory"))?;
                if self.options.chown {
                    rustix::fs::fchown(&fd, Some(uid_of(uid)), Some(gid_of(gid)))
                        .map_err(errno("setting owner"))?;
                }
                // Writable for now so children can be made, and without setgid so they get the
                // caller's group (which the chown skip above relies on); the final mode comes at
                // the end.
                rustix::fs::fchmod(&fd, Mode::from_raw_mode((mode & 0o777) | 0o700))
                    .map_err(errno("setting mode"))?;
                self.set_xattrs(&fd, &xattrs, &display)?;
                self.dirs.push(PendingDir { path: name.clone(), mode, mtime });
            }
            tar::EntryType::Symlink => {
                let target =
                    entry.link_name().map_err(err("reading link target"))?.unwrap_or_default();
                rustix::fs::symlinkat(target.as_ref(), &parent, &base)
                    .map_err(errno("creating symlink"))?;
                let owner = self.options.chown.then_some((uid, gid));
                own_and_time(&parent, &base, owner, mtime).map_err(|(step, e)| errno(step)(e))?;
            }
            tar::EntryType::Link => {
                let target =
                    entry.link_name().map_err(err("reading link target"))?.unwrap_or_default();
                let target = clean(&target);
                let Some(target_base) = target.file_name().map(OsStr::to_owned) else {
                    return Err(UnpackError::HardLinkTarget {
                        name: display,
                        target: target.to_string_lossy().into_owned(),
                    });
                };
                let target_parent_path = target.parent().unwrap_or(Path::new("")).to_path_buf();
                let target_parent = match self.resolve_dir(&target_parent_path) {
                    Ok(fd) => fd,
                    Err(_) => {
                        return Err(UnpackError::HardLinkTarget {
                            name: display,
                            target: target.to_string_lossy().into_owned(),
                        })
                    }
                };
                match rustix::fs::linkat(
                    &target_parent,
                    &target_base,
                    &parent,
                    &base,
                    AtFlags::empty(),
                ) {
                    Ok(()) => {}
                    Err(Errno::NOENT) => {
                        return Err(UnpackError::HardLinkTarget {
                            name: display,
                            target: target.to_string_lossy().into_owned(),
                        })
                    }
                    Err(e) => return Err(errno("creating hard link")(e)),
                }
            }
            tar::EntryType::Char | tar::EntryType::Block | tar::EntryType::Fifo => {
                let file_type = match kind {
                    tar::EntryType::Char => rustix::fs::FileType::CharacterDevice,
                    tar::EntryType::Block => rustix::fs::FileType::BlockDevice,
                    _ => rustix::fs::FileType::Fifo,
                };
                if file_type != rustix::fs::FileType::Fifo && !self.options.devices {
                    if !self.warned_devices {
                        let entry_name = display.clone();
                        warn!(entry = %entry_name, "skipping device nodes: only root can create them");
                        self.warned_devices = true;
                    }
                    return Ok(());
                }
                let major = header.device_major().ok().flatten().unwrap_or(0);
                let minor = header.device_minor().ok().flatten().unwrap_or(0);
                rustix::fs::mknodat(
                    &parent,
                    &base,
                    file_type,
                    Mode::from_raw_mode(mode),
                    rustix::fs::makedev(major, minor),
                )
                .map_err(errno("creating device node"))?;
                let owner = self.options.chown.then_some((uid, gid));
                own_and_time(&parent, &base, owner, mtime).map_err(|(step, e)| errno(step)(e))?;
            }
            other => {
                return Err(UnpackError::EntryType { name: display, kind: other.as_byte() });
            }
        }
        Ok(())
    }

    /// The directory `path` inside the root, resolved in the root and created (0755, owned
    /// by the caller) where missing, as a tar may name a file before its directories.
    fn parent(&mut self, path: &Path, display: &str) -> Result<OwnedFd, UnpackError> {
        if let Some(fd) = self.parents.get(path) {
            return fd.try_clone().map_err(|e| UnpackError::Entry {
                name: display.to_owned(),
                step: "opening parent directory",
                source: e,
            });
        }
        let fd = match self.resolve_dir(path) {
            Ok(fd) => fd,
            Err(Errno::NOENT) => self.create_dirs(path, display)?,
            Err(e) => {
                return Err(UnpackError::Entry {
                    name: display.to_owned(),
                    step: "opening parent directory",
                    source: e.into(),
                })
            }
        };
        let clone = fd.try_clone().map_err(|e| UnpackError::Entry {
            name: display.to_owned(),
            step: "opening parent directory",
            source: e,
        })?;
        self.parents.insert(path.to_path_buf(), clone);
        Ok(fd)
    }

    fn resolve_dir(&self, path: &Path) -> Result<OwnedFd, Errno> {
        let path = if path.as_os_str().is_empty() { Path::new(".") } else { path };
        rustix::fs::openat2(
            &self.root,
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
            RESOLVE,
        )
    }

    fn create_dirs(&self, path: &Path, display: &str) -> Result<OwnedFd, UnpackError> {
        self.create_dirs_within(path, 0).map_err(|source| UnpackError::Entry {
            name: display.to_owned(),
            step: "creating parent directory",
            source: source.into(),
        })
    }

    /// Creates the directories of `path` inside the root. A dangling symlink on the way is
    /// followed as the kernel would follow it — inside the root — and its target created.
    fn create_dirs_within(&self, path: &Path, depth: u32) -> Result<OwnedFd, Errno> {
        if depth > 40 {
            return Err(Errno::LOOP);
        }
        let mut current = self.resolve_dir(Path::new(""))?;
        let mut so_far = PathBuf::new();
        for part in path.iter() {
            let parent_so_far = so_far.clone();
            so_far.push(part);
            current = match self.resolve_dir(&so_far) {
                Ok(fd) => fd,
                Err(Errno::NOENT) => {
                    // Created in the directory the previous components resolved to, which
                    // RESOLVE_IN_ROOT kept inside the root.
                    match rustix::fs::mkdirat(&current, part, Mode::from_raw_mode(0o755)) {
                        Ok(()) => {}
                        Err(Errno::EXIST) => {
                            let target = rustix::fs::readlinkat(&current, part, Vec::new())?;
                            let target = Path::new(OsStr::from_bytes(target.as_bytes()));
                            let within = if target.is_absolute() {
                                clean(target)
                            } else {
                                clean(&parent_so_far.join(target))
                            };
                            self.create_dirs_within(&within, depth + 1)?;
                        }
                        Err(e) => return Err(e),
                    }
                    self.resolve_dir(&so_far)?
                }
                Err(e) => return Err(e),
            };
        }
        Ok(current)
    }

    fn whiteout(
        &mut self,
        parent: &OwnedFd,
        hidden: &OsStr,
        display: &str,
    ) -> Result<(), UnpackError> {
        let fail = |step| {
            move |e: Errno| UnpackError::Entry { name: display.to_owned(), step, source: e.into() }
        };
        match self.options.whiteouts {
            Whiteouts::Overlay | Whiteouts::DevicesUserOpaque => {
                rustix::fs::mknodat(
                    parent,
                    hidden,
                    rustix::fs::FileType::CharacterDevice,
                    Mode::empty(),
                    rustix::fs::makedev(0, 0),
                )
                .map_err(fail("creating whiteout"))?;
            }
            Whiteouts::UserXattr => {
                let fd = rustix::fs::openat(
                    parent,
                    hidden,
                    OFlags::CREATE
                        | OFlags::EXCL
                        | OFlags::WRONLY
                        | OFlags::NOFOLLOW
                        | OFlags::CLOEXEC,
                    Mode::empty(),
                )
                .map_err(fail("creating whiteout"))?;
                rustix::fs::fsetxattr(
                    &fd,
                    "user.overlay.whiteout",
                    b"y",
                    rustix::fs::XattrFlags::empty(),
                )
                .map_err(fail("marking whiteout"))?;
                // Xattr whiteouts count only in a directory marked `x` (unless it is opaque).
                let dir = reopen_dir(parent).map_err(fail("opening whiteout's directory"))?;
                let mut value = [0u8; 4];
                let current = rustix::fs::fgetxattr(&dir, "user.overlay.opaque", &mut value);
                if !matches!(current, Ok(1) if value[0] == b'y') {
                    rustix::fs::fsetxattr(
                        &dir,
                        "user.overlay.opaque",
                        b"x",
                        rustix::fs::XattrFlags::empty(),
                    )
                    .map_err(fail("marking whiteout's directory"))?;
                }
            }
        }
        Ok(())
    }

    fn mark_opaque(
        &self,
        parent: &OwnedFd,
        display: &str,
        value: &[u8],
    ) -> Result<(), UnpackError> {
        let fail = |step| {
            move |e: Errno| UnpackError::Entry { name: display.to_owned(), step, source: e.into() }
        };
        let dir = reopen_dir(parent).map_err(fail("opening opaque directory"))?;
        let name = match self.options.whiteouts {
            Whiteouts::Overlay => "trusted.overlay.opaque",
            Whiteouts::UserXattr | Whiteouts::DevicesUserOpaque => "user.overlay.opaque",
        };
        rustix::fs::fsetxattr(&dir, name, value, rustix::fs::XattrFlags::empty())
            .map_err(fail("marking directory opaque"))
    }

    fn set_xattrs(
        &mut self,
        fd: impl AsFd,
        xattrs: &[(String, Vec<u8>)],
        display: &str,
    ) -> Result<(), UnpackError> {
        for (name, value) in xattrs {
            match rustix::fs::fsetxattr(&fd, name.as_str(), value, rustix::fs::XattrFlags::empty())
            {
                Ok(()) => {}
                // Rootless, only user.* can be set; security.* and trusted.* need privilege.
                Err(Errno::PERM | Errno::NOTSUP | Errno::ACCESS)
                    if !name.starts_with("user.") || !self.options.chown =>
                {
                    if !self.warned_xattrs {
                        let entry_name = display.to_owned();
                        warn!(entry = %entry_name, xattr = %name, "cannot set extended attribute; skipping such attributes");
                        self.warned_xattrs = true;
                    }
                }
                Err(e) => {
                    return Err(UnpackError::Entry {
                        name: display.to_owned(),
                        step: "setting xattr",
                        source: e.into(),
                    })
                }
            }
        }
        Ok(())
    }

    /// Sets directory modes and times, deepest first, once nothing more is written in them.
    fn finish_dirs(&mut self) -> Result<(), UnpackError> {
        self.parents.clear();
        let dirs = std::mem::take(&mut self.dirs);
        for dir in dirs.iter().rev() {
            let display = dir.path.to_string_lossy().into_owned();
            let fail = |step| {
                let display = display.clone();
                move |e: Errno| UnpackError::Entry { name: display, step, source: e.into() }
            };
            let path =
                if dir.path.as_os_str().is_empty() { Path::new(".") } else { dir.path.as_path() };
            let fd = match rustix::fs::openat2(
                &self.root,
                path,
                OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::empty(),
                RESOLVE,
            ) {
                Ok(fd) => fd,
                // Replaced or removed by a later entry.
                Err(Errno::NOENT | Errno::NOTDIR | Errno::LOOP) => continue,
                Err(e) => return Err(fail("opening directory")(e)),
            };
            rustix::fs::fchmod(&fd, Mode::from_raw_mode(dir.mode)).map_err(fail("setting mode"))?;
            rustix::fs::futimens(
                &fd,
                &Timestamps { last_access: dir.mtime, last_modification: dir.mtime },
            )
            .map_err(fail("setting times"))?;
        }
        debug!(dirs = dirs.len(), "directory metadata applied");
        Ok(())
    }
}

/// Sets the owner (when given) and mtime of `base` in `parent` without following it: the
/// last step for entries that are not opened, symlinks and device nodes. On failure, the step
/// that failed with its errno.
fn own_and_time(
    parent: impl AsFd,
    base: &OsStr,
    owner: Option<(u64, u64)>,
    mtime: rustix::fs::Timespec,
) -> Result<(), (&'static str, Errno)> {
    if let Some((uid, gid)) = owner {
        rustix::fs::chownat(
            &parent,
            base,
            Some(uid_of(uid)),
            Some(gid_of(gid)),
            AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| ("setting owner", e))?;
    }
    rustix::fs::utimensat(
        &parent,
        base,
        &Timestamps { last_access: mtime, last_modification: mtime },
        AtFlags::SYMLINK_NOFOLLOW,
    )
    .map_err(|e| ("setting times", e))
}

fn uid_of(uid: u64) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(u32::try_from(uid).unwrap_or(65534))
}

fn gid_of(gid: u64) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(u32::try_from(gid).unwrap_or(65534))
}

fn reopen_dir(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    rustix::fs::openat(fd, ".", OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
}

/// Removes `name` in `dir`, recursively when it is a directory; a missing name is fine.
fn remove_existing(dir: &OwnedFd, name: &OsStr) -> Result<(), Errno> {
    match rustix::fs::unlinkat(dir, name, AtFlags::empty()) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::ISDIR | Errno::PERM) => {}
        Err(e) => return Err(e),
    }
    match rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR) {
        Ok(()) | Err(Errno::NOENT) => return Ok(()),
        Err(Errno::NOTEMPTY | Errno::EXIST) => {}
        Err(e) => return Err(e),
    }
    let child = rustix::fs::openat(
        dir,
        name,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut names = Vec::new();
    {
        let entries = rustix::fs::Dir::read_from(&child)?;
        for entry in entries {
            let entry = entry?;
            let n = entry.file_name().to_bytes();
            if n != b"." && n != b".." {
                names.push(OsStr::from_bytes(n).to_owned());
            }
        }
    }
    for n in names {
        remove_existing(&child, &n)?;
    }
    rustix::fs::unlinkat(dir, name, AtFlags::REMOVEDIR)
}

/// The `SCHILY.xattr.*` records of an entry's PAX header.
fn pax_xattrs<R: Read>(entry: &mut tar::Entry<'_, R>) -> io::Result<Vec<(String, Vec<u8>)>> {
    let mut out = Vec::new();
    if let Some(extensions) = entry.pax_extensions()? {
        for extension in extensions {
            let extension = extension?;
            if let Some(name) = extension.key_bytes().strip_prefix(b"SCHILY.xattr.") {
                if let Ok(name) = std::str::from_utf8(name) {
                    out.push((name.to_owned(), extension.value_bytes().to_vec()));
                }
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
