//! Dropping the monitor's start-up pages, so that its resident set while the container runs
//! is what its copy loop touches, not what launching the container touched (the runtime, the
//! JSON of the spec, the seccomp compiler).
//!
//! - File pages of read-only and executable mappings come back from the page cache when
//!   touched, so they are dropped: whole mappings, and in a mapping that also holds pages the
//!   process wrote (RELRO: the GOT's relocated entries), every page but those, found with
//!   /proc/self/pagemap (a present page without the "file page" bit is private anonymous).
//! - The stack below the current frame, less a margin, holds nothing live.
//! - Freed heap goes back to the kernel (`malloc_trim`).
//! - Those file mappings are marked MADV_RANDOM, so that what the loop touches afterwards
//!   comes back a page at a time rather than with its neighbours (fault-around).
//!
//! The monitor is single-threaded and installs no signal handler, so nothing runs on or from
//! those pages meanwhile.

use std::fs;
use std::os::unix::fs::FileExt;

const PAGE: usize = 4096;

/// pagemap: the page is present.
const PM_PRESENT: u64 = 1 << 63;
/// pagemap: the page is a file page or shared anonymous (not a private copy).
const PM_FILE: u64 = 1 << 61;

/// Stack kept below the current frame for the calls still to come from here.
const STACK_MARGIN: usize = 16 * 1024;

/// One mapping of /proc/self/smaps.
struct Mapping {
    start: usize,
    end: usize,
    /// A private read-only or executable mapping of a file.
    file_backed_ro: bool,
    /// Whether some of its pages were written (are private copies).
    has_anonymous: bool,
    stack: bool,
}

fn mappings(smaps: &str) -> Vec<Mapping> {
    let mut out: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let first = fields.next().unwrap_or("");
        if let Some((start, end)) = first.split_once('-').filter(|_| !first.ends_with(':')) {
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let (Ok(start), Ok(end)) =
                (usize::from_str_radix(start, 16), usize::from_str_radix(end, 16))
            else {
                continue;
            };
            out.push(Mapping {
                start,
                end,
                file_backed_ro: path.starts_with('/') && (perms == "r-xp" || perms == "r--p"),
                has_anonymous: false,
                stack: path == "[stack]",
            });
        } else if first == "Anonymous:" && fields.next() != Some("0") {
            if let Some(m) = out.last_mut() {
                m.has_anonymous = true;
            }
        }
    }
    out
}

/// The runs of pages in `m` that are not private copies, from /proc/self/pagemap.
fn file_page_runs(pagemap: &fs::File, m: &Mapping) -> Vec<(usize, usize)> {
    let pages = (m.end - m.start) / PAGE;
    let mut raw = vec![0u8; pages * 8];
    if pagemap.read_exact_at(&mut raw, (m.start / PAGE * 8) as u64).is_err() {
        return Vec::new();
    }
    let mut runs: Vec<(usize, usize)> = Vec::new();
    for (i, entry) in raw.chunks_exact(8).enumerate() {
        let bits = u64::from_le_bytes(entry.try_into().expect("8 bytes"));
        let private_copy = bits & PM_PRESENT != 0 && bits & PM_FILE == 0;
        if private_copy {
            continue;
        }
        let addr = m.start + i * PAGE;
        match runs.last_mut() {
            Some((_, end)) if *end == addr => *end = addr + PAGE,
            _ => runs.push((addr, addr + PAGE)),
        }
    }
    runs
}

pub(super) fn shed_startup_pages() {
    let Ok(smaps) = fs::read_to_string("/proc/self/smaps") else { return };
    let pagemap = fs::File::open("/proc/self/pagemap").ok();
    let mut drop_ranges = Vec::new();
    let mut stack_low = None;
    for m in mappings(&smaps) {
        if m.stack {
            stack_low = Some(m.start);
        }
        if !m.file_backed_ro {
            continue;
        }
        // No fault-around for it from now on: a page touched later maps that page alone, not
        // the fifteen cached neighbours a fault maps by default (64 KiB), which would make
        // the monitor's resident set the size of libc's text again.
        // SAFETY: MADV_RANDOM only changes how later faults read the mapping ahead.
        unsafe { libc::madvise(m.start as *mut libc::c_void, m.end - m.start, libc::MADV_RANDOM) };
        if !m.has_anonymous {
            drop_ranges.push((m.start, m.end));
        } else if let Some(pagemap) = &pagemap {
            drop_ranges.extend(file_page_runs(pagemap, &m));
        }
    }
    for (start, end) in drop_ranges {
        // SAFETY: each range is private, file-backed and read-only or executable, and holds
        // no page this process wrote (checked above; single-threaded, so nothing changes in
        // between): MADV_DONTNEED only drops page-table entries, and the next access reads
        // the same bytes from the file again.
        unsafe { libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_DONTNEED) };
    }

    let marker = 0u8;
    let here = std::ptr::addr_of!(marker) as usize;
    if let Some(low) = stack_low {
        let end = here.saturating_sub(STACK_MARGIN) & !(PAGE - 1);
        if end > low {
            // SAFETY: [low, end) is this thread's stack more than STACK_MARGIN below the
            // current frame, where nothing live is (no other thread, no signal handler);
            // MADV_DONTNEED leaves zero pages there, which is all unused stack may hold.
            unsafe { libc::madvise(low as *mut libc::c_void, end - low, libc::MADV_DONTNEED) };
        }
    }
    // SAFETY: malloc_trim only returns free heap memory to the kernel.
    unsafe { libc::malloc_trim(0) };
}

#[cfg(test)]
mod tests {
    use super::*;

    // A mapping's pages as pagemap tells them: the ones this process wrote are kept, the
    // file's own pages (and absent ones) are dropped, in runs.
    #[test]
    fn written_pages_are_kept_and_file_pages_dropped() {
        let smaps = "00400000-00403000 r--p 00000000 fe:00 12 /usr/bin/x\n\
                     Rss:                  12 kB\n\
                     Anonymous:             4 kB\n\
                     7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]\n\
                     Anonymous:           132 kB\n";
        let maps = mappings(smaps);
        assert_eq!(maps.len(), 2);
        assert!(maps[0].file_backed_ro && maps[0].has_anonymous && !maps[0].stack);
        assert!(!maps[1].file_backed_ro && maps[1].stack);
        let dir = tempfile::tempdir().unwrap();
        let fake = dir.path().join("pagemap");
        // Page 0x400: file page; 0x401: private copy; 0x402: not present.
        let mut bytes = vec![0u8; 0x403 * 8];
        bytes[0x400 * 8..0x401 * 8].copy_from_slice(&(PM_PRESENT | PM_FILE).to_le_bytes());
        bytes[0x401 * 8..0x402 * 8].copy_from_slice(&PM_PRESENT.to_le_bytes());
        fs::write(&fake, bytes).unwrap();
        let runs = file_page_runs(&fs::File::open(&fake).unwrap(), &maps[0]);
        assert_eq!(runs, [(0x40_0000, 0x40_1000), (0x40_2000, 0x40_3000)]);
    }
}
