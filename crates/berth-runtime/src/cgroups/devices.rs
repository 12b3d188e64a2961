//! The cgroup v2 device filter. cgroup v2 has no devices.allow/deny files; instead a
//! `BPF_PROG_TYPE_CGROUP_DEVICE` program attached to the cgroup decides each open and mknod of
//! a device node (kernel Documentation/admin-guide/cgroup-v2.rst, "Device controller").
//!
//! The program is assembled here by hand from the OCI rule list — a dozen instruction kinds
//! suffice — and loaded with bpf(2), so neither libbpf nor libelf is needed. The rules keep
//! their v1 meaning: an ordered list where a later rule overrides an earlier one, over a
//! default of allowing everything. The program therefore checks the rules from the last to
//! the first and returns the verdict of the first that matches:
//! - an allow rule matches when every access asked for is in the rule's access;
//! - a deny rule matches when any access asked for is in the rule's access;
//! - when none matches, access is allowed (the spec's lists start with "deny all").

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::Path;

use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use super::{Error, Result};

/// One eBPF instruction (`struct bpf_insn` of linux/bpf.h).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct Insn {
    pub code: u8,
    /// dst register in the low nibble, src register in the high one.
    pub regs: u8,
    pub off: i16,
    pub imm: i32,
}

// Opcodes used by the filter (linux/bpf_common.h, linux/bpf.h).
const LDX_MEM_W: u8 = 0x61; // BPF_LDX | BPF_MEM | BPF_W
const ALU32_MOV_X: u8 = 0xbc; // BPF_ALU | BPF_MOV | BPF_X
const ALU32_MOV_K: u8 = 0xb4; // BPF_ALU | BPF_MOV | BPF_K
const ALU32_AND_K: u8 = 0x54; // BPF_ALU | BPF_AND | BPF_K
const ALU32_RSH_K: u8 = 0x74; // BPF_ALU | BPF_RSH | BPF_K
const JMP32_JNE_K: u8 = 0x56; // BPF_JMP32 | BPF_JNE | BPF_K
const JMP32_JEQ_K: u8 = 0x16; // BPF_JMP32 | BPF_JEQ | BPF_K
const JMP_EXIT: u8 = 0x95; // BPF_JMP | BPF_EXIT

// struct bpf_cgroup_dev_ctx: access_type = (access << 16) | type, then major, minor.
const DEV_BLOCK: i32 = 1; // BPF_DEVCG_DEV_BLOCK
const DEV_CHAR: i32 = 2; // BPF_DEVCG_DEV_CHAR
const ACC_MKNOD: i32 = 1; // BPF_DEVCG_ACC_MKNOD
const ACC_READ: i32 = 2; // BPF_DEVCG_ACC_READ
const ACC_WRITE: i32 = 4; // BPF_DEVCG_ACC_WRITE

// Registers: r1 the context; r2 type, r3 access, r4 major, r5 minor, r6 scratch, r0 verdict.
const R0: u8 = 0;
const R1: u8 = 1;
const R2: u8 = 2;
const R3: u8 = 3;
const R4: u8 = 4;
const R5: u8 = 5;
const R6: u8 = 6;

fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn { code, regs: (src << 4) | dst, off, imm }
}

/// A rule reduced to what the program compares.
struct Rule {
    allow: bool,
    typ: Option<i32>,
    major: Option<u32>,
    minor: Option<u32>,
    access: i32,
}

fn parse_rule(rule: &LinuxDeviceCgroup) -> Result<Option<Rule>> {
    let text = super::v1::device_rule(rule);
    let typ = match rule.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => None,
        LinuxDeviceType::B => Some(DEV_BLOCK),
        LinuxDeviceType::C | LinuxDeviceType::U => Some(DEV_CHAR),
        // A FIFO never goes through the device cgroup check.
        LinuxDeviceType::P => return Ok(None),
    };
    let mut access = 0;
    let spec = rule.access().clone().filter(|a| !a.is_empty()).unwrap_or_else(|| "rwm".into());
    for c in spec.chars() {
        access |= match c {
            'r' => ACC_READ,
            'w' => ACC_WRITE,
            'm' => ACC_MKNOD,
            _ => {
                return Err(Error::DeviceRule {
                    rule: text,
                    reason: "access is not r, w, m".into(),
                })
            }
        };
    }
    let num = |n: Option<i64>, what: &str| -> Result<Option<u32>> {
        match n {
            None => Ok(None),
            Some(n) if n < 0 => Ok(None),
            Some(n) => u32::try_from(n).map(Some).map_err(|_| Error::DeviceRule {
                rule: text.clone(),
                reason: format!("{what} {n} is out of range"),
            }),
        }
    };
    let (major, minor) = if typ.is_none() {
        (None, None)
    } else {
        (num(rule.major(), "major")?, num(rule.minor(), "minor")?)
    };
    Ok(Some(Rule { allow: rule.allow(), typ, major, minor, access }))
}

/// Assembles the filter for `rules` (see the module docs for its meaning).
pub fn program(rules: &[LinuxDeviceCgroup]) -> Result<Vec<Insn>> {
    let mut out = vec![
        insn(LDX_MEM_W, R2, R1, 0, 0),
        insn(ALU32_MOV_X, R3, R2, 0, 0),
        insn(ALU32_AND_K, R2, 0, 0, 0xffff),
        insn(ALU32_RSH_K, R3, 0, 0, 16),
        insn(LDX_MEM_W, R4, R1, 4, 0),
        insn(LDX_MEM_W, R5, R1, 8, 0),
    ];
    let parsed: Vec<Rule> =
        rules.iter().map(parse_rule).collect::<Result<Vec<_>>>()?.into_iter().flatten().collect();
    for rule in parsed.iter().rev() {
        // Each condition is a jump past this rule's block; the block ends in its verdict.
        // Jump offsets are filled in once the block's length is known.
        let mut block: Vec<Insn> = Vec::new();
        let mut jumps: Vec<usize> = Vec::new();
        if let Some(t) = rule.typ {
            jumps.push(block.len());
            block.push(insn(JMP32_JNE_K, R2, 0, 0, t));
        }
        let all = ACC_READ | ACC_WRITE | ACC_MKNOD;
        if rule.allow && rule.access != all {
            // Skip unless (access & !rule) == 0.
            block.push(insn(ALU32_MOV_X, R6, R3, 0, 0));
            block.push(insn(ALU32_AND_K, R6, 0, 0, !rule.access & all));
            jumps.push(block.len());
            block.push(insn(JMP32_JNE_K, R6, 0, 0, 0));
        } else if !rule.allow && rule.access != all {
            // Skip unless (access & rule) != 0.
            block.push(insn(ALU32_MOV_X, R6, R3, 0, 0));
            block.push(insn(ALU32_AND_K, R6, 0, 0, rule.access));
            jumps.push(block.len());
            block.push(insn(JMP32_JEQ_K, R6, 0, 0, 0));
        }
        if let Some(m) = rule.major {
            jumps.push(block.len());
            block.push(insn(JMP32_JNE_K, R4, 0, 0, m as i32));
        }
        if let Some(m) = rule.minor {
            jumps.push(block.len());
            block.push(insn(JMP32_JNE_K, R5, 0, 0, m as i32));
        }
        block.push(insn(ALU32_MOV_K, R0, 0, 0, i32::from(rule.allow)));
        block.push(insn(JMP_EXIT, 0, 0, 0, 0));
        let len = block.len();
        for j in &jumps {
            block[*j].off = (len - j - 1) as i16;
        }
        out.extend(block);
        if jumps.is_empty() {
            // This rule matches everything: earlier rules can never decide, and the verifier
            // refuses unreachable instructions.
            return Ok(out);
        }
    }
    out.push(insn(ALU32_MOV_K, R0, 0, 0, 1));
    out.push(insn(JMP_EXIT, 0, 0, 0, 0));
    Ok(out)
}

// bpf(2) commands, program and attach types (linux/bpf.h).
const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_PROG_ATTACH: libc::c_long = 8;
const BPF_PROG_DETACH: libc::c_long = 9;
const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_PROG_QUERY: libc::c_long = 16;
const BPF_F_ALLOW_MULTI: u32 = 2;
const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
const BPF_CGROUP_DEVICE: u32 = 6;

/// The leading fields of `union bpf_attr` for BPF_PROG_LOAD; the kernel treats a shorter
/// attribute as zero beyond its end.
#[repr(C)]
#[derive(Default)]
struct ProgLoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

#[repr(C)]
#[derive(Default)]
struct ProgAttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// The BPF_PROG_QUERY part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ProgQueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The BPF_PROG_GET_FD_BY_ID part of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct GetFdByIdAttr {
    prog_id: u32,
    next_id: u32,
    open_flags: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> std::io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised #[repr(C)] prefix of union bpf_attr for `cmd`, and
    // the size passed is exactly its size, so the kernel reads and writes only within it.
    let rc = unsafe {
        libc::syscall(libc::SYS_bpf, cmd, attr as *mut T, std::mem::size_of::<T>() as u32)
    };
    if rc < 0 {
        Err(std::io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn load(insns: &[Insn], cgroup: &Path) -> Result<OwnedFd> {
    let license = c"Apache-2.0";
    let mut name = [0u8; 16];
    name[..11].copy_from_slice(b"berth_devcg");
    let attr = |log: &mut Vec<u8>| ProgLoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt: insns.len() as u32,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() { 0 } else { log.as_mut_ptr() as u64 },
        prog_name: name,
        ..Default::default()
    };
    let mut no_log = Vec::new();
    match bpf(BPF_PROG_LOAD, &mut attr(&mut no_log)) {
        // SAFETY: BPF_PROG_LOAD returned a new file descriptor that nothing else owns.
        Ok(fd) => Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) }),
        Err(source) => {
            // Load again with the verifier's log, to say why.
            let mut log = vec![0u8; 1 << 16];
            let _ = bpf(BPF_PROG_LOAD, &mut attr(&mut log));
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            let text = String::from_utf8_lossy(&log[..end]).trim().to_string();
            Err(Error::BpfLoad { path: cgroup.to_path_buf(), log: text, source })
        }
    }
}

/// The ids of the device programs attached directly to the cgroup open as `dir`.
fn attached(dir: &std::fs::File, cgroup: &Path) -> Result<Vec<u32>> {
    let mut ids = [0u32; 64];
    let mut attr = ProgQueryAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        prog_ids: ids.as_mut_ptr() as u64,
        prog_cnt: ids.len() as u32,
        ..Default::default()
    };
    bpf(BPF_PROG_QUERY, &mut attr)
        .map_err(|source| Error::BpfAttach { path: cgroup.to_path_buf(), source })?;
    Ok(ids[..(attr.prog_cnt as usize).min(ids.len())].to_vec())
}

/// Loads the filter for `rules` and attaches it to the cgroup directory `cgroup` (a cgroup2
/// directory), then detaches the filters attached there before, so an update replaces them.
///
/// The filter is attached with BPF_F_ALLOW_MULTI, as runc and systemd do: a runtime nested
/// in the container can attach its own filter to a child cgroup, and the kernel runs both,
/// so the nested one can only narrow what this one allows.
pub fn attach(cgroup: &Path, rules: &[LinuxDeviceCgroup]) -> Result<()> {
    let insns = program(rules)?;
    let prog = load(&insns, cgroup)?;
    let dir = std::fs::File::open(cgroup)
        .map_err(|source| Error::BpfAttach { path: cgroup.to_path_buf(), source })?;
    let old = attached(&dir, cgroup)?;
    let mut attr = ProgAttachAttr {
        target_fd: dir.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: BPF_F_ALLOW_MULTI,
        ..Default::default()
    };
    bpf(BPF_PROG_ATTACH, &mut attr)
        .map_err(|source| Error::BpfAttach { path: cgroup.to_path_buf(), source })?;
    // Only now drop the old filters, so the cgroup is never without one.
    for id in old {
        let mut by_id = GetFdByIdAttr { prog_id: id, ..Default::default() };
        let fd = match bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id) {
            // SAFETY: BPF_PROG_GET_FD_BY_ID returned a new fd that nothing else owns.
            Ok(fd) => unsafe { OwnedFd::from_raw_fd(fd as i32) },
            // Detached meanwhile by someone else: nothing to do.
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => continue,
            Err(source) => return Err(Error::BpfAttach { path: cgroup.to_path_buf(), source }),
        };
        let mut detach = ProgAttachAttr {
            target_fd: dir.as_raw_fd() as u32,
            attach_bpf_fd: fd.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            ..Default::default()
        };
        bpf(BPF_PROG_DETACH, &mut detach)
            .map_err(|source| Error::BpfAttach { path: cgroup.to_path_buf(), source })?;
    }
    tracing::debug!(?cgroup, insns = insns.len(), rules = rules.len(), "attached device filter");
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Runs the program on one access, interpreting just the instructions `program` emits.
    pub(crate) fn run(prog: &[Insn], typ: i32, access: i32, major: u32, minor: u32) -> u32 {
        let ctx = [((access as u32) << 16) | typ as u32, major, minor];
        let mut r = [0u64; 11];
        let mut pc = 0usize;
        loop {
            let i = prog[pc];
            let (dst, src) = ((i.regs & 0xf) as usize, (i.regs >> 4) as usize);
            pc += 1;
            match i.code {
                LDX_MEM_W => {
                    assert_eq!(src, 1, "loads only from the context");
                    r[dst] = u64::from(ctx[i.off as usize / 4]);
                }
                ALU32_MOV_X => r[dst] = r[src] & 0xffff_ffff,
                ALU32_MOV_K => r[dst] = u64::from(i.imm as u32),
                ALU32_AND_K => r[dst] = (r[dst] as u32 & i.imm as u32) as u64,
                ALU32_RSH_K => r[dst] = ((r[dst] as u32) >> i.imm) as u64,
                JMP32_JNE_K if r[dst] as u32 != i.imm as u32 => pc += i.off as usize,
                JMP32_JEQ_K if r[dst] as u32 == i.imm as u32 => pc += i.off as usize,
                JMP32_JNE_K | JMP32_JEQ_K => {}
                JMP_EXIT => return r[0] as u32,
                other => panic!("unexpected opcode {other:#x}"),
            }
        }
    }

    fn rules(json: &str) -> Vec<LinuxDeviceCgroup> {
        serde_json::from_str(json).unwrap()
    }

    const RW: i32 = ACC_READ | ACC_WRITE;

    #[test]
    fn podman_style_list_allows_only_listed_devices() {
        let prog = program(&rules(
            r#"[{"allow": false, "access": "rwm"},
                {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": true, "type": "c", "major": 136, "access": "rw"},
                {"allow": true, "type": "b", "major": 8, "minor": 0, "access": "r"}]"#,
        ))
        .unwrap();
        assert_eq!(run(&prog, DEV_CHAR, RW, 1, 3), 1, "/dev/null");
        assert_eq!(run(&prog, DEV_CHAR, ACC_MKNOD, 1, 3), 1, "mknod /dev/null");
        assert_eq!(run(&prog, DEV_CHAR, RW, 1, 5), 0, "/dev/zero is not listed");
        assert_eq!(run(&prog, DEV_CHAR, RW, 136, 7), 1, "any pty");
        assert_eq!(run(&prog, DEV_CHAR, ACC_MKNOD, 136, 7), 0, "pty without m");
        assert_eq!(run(&prog, DEV_BLOCK, ACC_READ, 8, 0), 1);
        assert_eq!(run(&prog, DEV_BLOCK, RW, 8, 0), 0, "write not allowed");
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 8, 0), 0, "type must match");
    }

    #[test]
    fn later_rules_override_earlier_ones() {
        // Pins the ordered meaning: deny after allow wins, allow after deny wins.
        let prog = program(&rules(
            r#"[{"allow": true, "type": "c", "major": 1, "access": "rwm"},
                {"allow": false, "type": "c", "major": 1, "minor": 5, "access": "w"}]"#,
        ))
        .unwrap();
        assert_eq!(run(&prog, DEV_CHAR, ACC_READ, 1, 5), 1);
        assert_eq!(run(&prog, DEV_CHAR, ACC_WRITE, 1, 5), 0);
        assert_eq!(run(&prog, DEV_CHAR, RW, 1, 5), 0);
        assert_eq!(run(&prog, DEV_CHAR, RW, 1, 9), 1);
        assert_eq!(run(&prog, DEV_BLOCK, RW, 7, 0), 1, "unmatched falls back to allow");
        let prog = program(&rules(
            r#"[{"allow": true, "access": "rwm"}, {"allow": false, "access": "rwm"}]"#,
        ))
        .unwrap();
        assert_eq!(run(&prog, DEV_CHAR, RW, 1, 3), 0);
        assert_eq!(prog.len(), 8, "nothing after a rule that matches everything: {prog:?}");
    }

    #[test]
    fn bad_access_is_refused() {
        let err = program(&rules(r#"[{"allow": true, "type": "c", "access": "x"}]"#)).unwrap_err();
        assert!(err.to_string().contains("c *:* x"), "{err}");
    }
}
