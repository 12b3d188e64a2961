//! The container's process (runtime spec, "Process"): rlimits, the user switch, the five
//! capability sets, no_new_privs, the working directory and the exec itself.
//!
//! Order matters and follows capabilities(7): the bounding set is cut while CAP_SETPCAP is
//! still held; PR_SET_KEEPCAPS keeps the permitted set across setuid; after the switch the
//! effective, permitted and inheritable sets are set exactly and the ambient ones raised. The
//! working directory is entered after the switch, so it is checked with the user's rights,
//! and is verified to lie inside the root; every stray descriptor is close-on-exec by then
//! (CVE-2024-21626).

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{
    Capabilities, Capability, IOPriorityClass, LinuxCapabilities, LinuxIOPriority,
    LinuxPersonalityDomain, LinuxSchedulerFlag, LinuxSchedulerPolicy, PosixRlimitType, Process,
    Scheduler,
};

use crate::sys;

/// What went wrong while preparing the process; each variant is a step.
#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("setting rlimit {name} to {soft}:{hard} (now {cur_soft}:{cur_hard}): {source}")]
    Rlimit {
        name: String,
        soft: u64,
        hard: u64,
        cur_soft: u64,
        cur_hard: u64,
        #[source]
        source: io::Error,
    },
    #[error("dropping {cap} from the bounding set: {source}")]
    Bounding {
        cap: String,
        #[source]
        source: io::Error,
    },
    #[error("setting additional groups {gids:?}: {source}")]
    Setgroups {
        gids: Vec<u32>,
        #[source]
        source: io::Error,
    },
    #[error("switching to gid {gid}: {source}")]
    Setgid {
        gid: u32,
        #[source]
        source: io::Error,
    },
    #[error("switching to uid {uid}: {source}")]
    Setuid {
        uid: u32,
        #[source]
        source: io::Error,
    },
    #[error("setting capabilities: {source}")]
    Capset {
        #[source]
        source: io::Error,
    },
    #[error("raising ambient capability {cap}: {source}")]
    Ambient {
        cap: String,
        #[source]
        source: io::Error,
    },
    #[error("setting no_new_privs: {source}")]
    NoNewPrivs {
        #[source]
        source: io::Error,
    },
    #[error("entering the working directory {path}: {source}")]
    Cwd {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the working directory {path} is outside the container's root")]
    CwdOutsideRoot { path: PathBuf },
    #[error("closing inherited descriptors: {source}")]
    CloseFds {
        #[source]
        source: io::Error,
    },
    #[error("executable file {name:?} not found in $PATH")]
    NotFound { name: String },
    #[error("exec {path}: not an executable file")]
    NotExecutable { path: PathBuf },
    #[error("exec {path}: {source}")]
    Exec {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("loading the seccomp filter: {message}")]
    Seccomp { message: String },
    #[error("linux.personality: setting domain {domain}: {source}")]
    Personality {
        domain: String,
        #[source]
        source: io::Error,
    },
    #[error("process.scheduler: setting policy {policy}: {source}")]
    Scheduler {
        policy: String,
        #[source]
        source: io::Error,
    },
    #[error("process.ioPriority: setting class {class} priority {priority}: {source}")]
    IoPriority {
        class: String,
        priority: i64,
        #[source]
        source: io::Error,
    },
    #[error("process.execCPUAffinity.{field}: setting cpus {cpus:?}: {source}")]
    CpuAffinity {
        field: &'static str,
        cpus: String,
        #[source]
        source: io::Error,
    },
    #[error("process.apparmorProfile: setting profile {profile:?}: {source}")]
    Apparmor {
        profile: String,
        #[source]
        source: io::Error,
    },
    #[error("setting oom_score_adj to {value}: {source}")]
    OomScoreAdj {
        value: i32,
        #[source]
        source: io::Error,
    },
}

/// The kernel's number of a capability, or None for one this table does not know.
pub fn cap_number(cap: &Capability) -> Option<u32> {
    const NAMES: [&str; 41] = [
        "CHOWN",
        "DAC_OVERRIDE",
        "DAC_READ_SEARCH",
        "FOWNER",
        "FSETID",
        "KILL",
        "SETGID",
        "SETUID",
        "SETPCAP",
        "LINUX_IMMUTABLE",
        "NET_BIND_SERVICE",
        "NET_BROADCAST",
        "NET_ADMIN",
        "NET_RAW",
        "IPC_LOCK",
        "IPC_OWNER",
        "SYS_MODULE",
        "SYS_RAWIO",
        "SYS_CHROOT",
        "SYS_PTRACE",
        "SYS_PACCT",
        "SYS_ADMIN",
        "SYS_BOOT",
        "SYS_NICE",
        "SYS_RESOURCE",
        "SYS_TIME",
        "SYS_TTY_CONFIG",
        "MKNOD",
        "LEASE",
        "AUDIT_WRITE",
        "AUDIT_CONTROL",
        "SETFCAP",
        "MAC_OVERRIDE",
        "MAC_ADMIN",
        "SYSLOG",
        "WAKE_ALARM",
        "BLOCK_SUSPEND",
        "AUDIT_READ",
        "PERFMON",
        "BPF",
        "CHECKPOINT_RESTORE",
    ];
    let name = cap.to_string();
    let name = name.trim_start_matches("CAP_");
    NAMES.iter().position(|n| *n == name).map(|i| i as u32)
}

/// A capability set as a bit mask, leaving out capabilities the kernel does not have.
pub fn cap_mask(set: Option<&Capabilities>, last: u32) -> u64 {
    set.into_iter()
        .flatten()
        .filter_map(cap_number)
        .filter(|n| *n <= last)
        .fold(0, |m, n| m | (1 << n))
}

fn rlimit_resource(t: PosixRlimitType) -> libc::__rlimit_resource_t {
    match t {
        PosixRlimitType::RlimitCpu => libc::RLIMIT_CPU,
        PosixRlimitType::RlimitFsize => libc::RLIMIT_FSIZE,
        PosixRlimitType::RlimitData => libc::RLIMIT_DATA,
        PosixRlimitType::RlimitStack => libc::RLIMIT_STACK,
        PosixRlimitType::RlimitCore => libc::RLIMIT_CORE,
        PosixRlimitType::RlimitRss => libc::RLIMIT_RSS,
        PosixRlimitType::RlimitNproc => libc::RLIMIT_NPROC,
        PosixRlimitType::RlimitNofile => libc::RLIMIT_NOFILE,
        PosixRlimitType::RlimitMemlock => libc::RLIMIT_MEMLOCK,
        PosixRlimitType::RlimitAs => libc::RLIMIT_AS,
        PosixRlimitType::RlimitLocks => libc::RLIMIT_LOCKS,
        PosixRlimitType::RlimitSigpending => libc::RLIMIT_SIGPENDING,
        PosixRlimitType::RlimitMsgqueue => libc::RLIMIT_MSGQUEUE,
        PosixRlimitType::RlimitNice => libc::RLIMIT_NICE,
        PosixRlimitType::RlimitRtprio => libc::RLIMIT_RTPRIO,
        PosixRlimitType::RlimitRttime => libc::RLIMIT_RTTIME,
    }
}

/// Applies process.rlimits; done while still privileged, as raising a hard limit needs
/// CAP_SYS_RESOURCE.
pub fn set_rlimits(process: &Process) -> Result<(), ProcessError> {
    for rl in process.rlimits().iter().flatten() {
        let lim = libc::rlimit { rlim_cur: rl.soft(), rlim_max: rl.hard() };
        // SAFETY: lim is a valid rlimit that outlives the call.
        let res = rlimit_resource(rl.typ());
        // SAFETY: lim is a valid rlimit that outlives the call.
        if let Err(source) = sys::cvt(unsafe { libc::setrlimit(res, &lim) }) {
            let mut cur = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            // SAFETY: cur is a valid place for the kernel's answer.
            unsafe { libc::getrlimit(res, &mut cur) };
            return Err(ProcessError::Rlimit {
                name: rl.typ().to_string(),
                soft: rl.soft(),
                hard: rl.hard(),
                cur_soft: cur.rlim_cur,
                cur_hard: cur.rlim_max,
                source,
            });
        }
    }
    Ok(())
}

/// Writes oom_score_adj for the calling process.
pub fn set_oom_score_adj(value: i32) -> Result<(), ProcessError> {
    std::fs::write("/proc/self/oom_score_adj", value.to_string())
        .map_err(|source| ProcessError::OomScoreAdj { value, source })
}

/// Sets linux.personality's execution domain (personality(2)); flags are refused at load.
pub fn set_personality(domain: LinuxPersonalityDomain) -> Result<(), ProcessError> {
    // PER_LINUX and PER_LINUX32 of include/uapi/linux/personality.h.
    let persona: libc::c_ulong = match domain {
        LinuxPersonalityDomain::PerLinux => 0x0000,
        LinuxPersonalityDomain::PerLinux32 => 0x0008,
    };
    // SAFETY: personality takes only a number; it changes this process's domain alone.
    let res = unsafe { libc::personality(persona) };
    if res == -1 {
        let source = io::Error::last_os_error();
        return Err(ProcessError::Personality { domain: domain.to_string(), source });
    }
    Ok(())
}

/// The kernel's struct sched_attr (include/uapi/linux/sched/types.h, SCHED_ATTR_SIZE_VER1).
#[repr(C)]
#[derive(Default)]
struct SchedAttr {
    size: u32,
    sched_policy: u32,
    sched_flags: u64,
    sched_nice: i32,
    sched_priority: u32,
    sched_runtime: u64,
    sched_deadline: u64,
    sched_period: u64,
    sched_util_min: u32,
    sched_util_max: u32,
}

/// The kernel's number of a scheduling policy, or None for one Linux does not have
/// (SCHED_ISO was never merged).
pub fn sched_policy_number(policy: LinuxSchedulerPolicy) -> Option<u32> {
    match policy {
        LinuxSchedulerPolicy::SchedOther => Some(0),
        LinuxSchedulerPolicy::SchedFifo => Some(1),
        LinuxSchedulerPolicy::SchedRr => Some(2),
        LinuxSchedulerPolicy::SchedBatch => Some(3),
        LinuxSchedulerPolicy::SchedIso => None,
        LinuxSchedulerPolicy::SchedIdle => Some(5),
        LinuxSchedulerPolicy::SchedDeadline => Some(6),
    }
}

fn sched_flag_bits(flag: LinuxSchedulerFlag) -> u64 {
    match flag {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// Applies process.scheduler with sched_setattr(2); done while still privileged, as the
/// real-time policies and a lower nice value need CAP_SYS_NICE.
pub fn set_scheduler(sched: &Scheduler) -> Result<(), ProcessError> {
    let policy = *sched.policy();
    let err = |source| ProcessError::Scheduler { policy: policy.to_string(), source };
    let number = sched_policy_number(policy)
        .ok_or_else(|| err(io::Error::from(io::ErrorKind::Unsupported)))?;
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        sched_policy: number,
        sched_flags: sched.flags().iter().flatten().map(|f| sched_flag_bits(*f)).sum(),
        sched_nice: sched.nice().unwrap_or(0),
        sched_priority: sched.priority().unwrap_or(0) as u32,
        sched_runtime: sched.runtime().unwrap_or(0),
        sched_deadline: sched.deadline().unwrap_or(0),
        sched_period: sched.period().unwrap_or(0),
        ..SchedAttr::default()
    };
    // SAFETY: attr is a sched_attr whose size field is its own size; it outlives the call,
    // and pid 0 names the calling thread, the only one.
    let res = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if res == -1 {
        return Err(err(io::Error::last_os_error()));
    }
    Ok(())
}

/// Applies process.ioPriority with ioprio_set(2) (IOPRIO_WHO_PROCESS, the caller).
pub fn set_io_priority(prio: &LinuxIOPriority) -> Result<(), ProcessError> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let class = match prio.class() {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    let value = (class << IOPRIO_CLASS_SHIFT) | prio.priority();
    // SAFETY: ioprio_set takes only numbers; who 0 is the calling process.
    let res = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if res == -1 {
        return Err(ProcessError::IoPriority {
            class: prio.class().to_string(),
            priority: prio.priority(),
            source: io::Error::last_os_error(),
        });
    }
    Ok(())
}

/// Parses a cpu list as execCPUAffinity has it ("0-3,7"); None if it is malformed or names
/// a cpu beyond what a cpu_set_t holds.
pub fn parse_cpu_list(list: &str) -> Option<Vec<usize>> {
    let mut cpus = Vec::new();
    for part in list.split(',') {
        let (lo, hi) = part.split_once('-').unwrap_or((part, part));
        let (lo, hi): (usize, usize) = (lo.trim().parse().ok()?, hi.trim().parse().ok()?);
        if lo > hi || hi >= libc::CPU_SETSIZE as usize {
            return None;
        }
        cpus.extend(lo..=hi);
    }
    Some(cpus)
}

/// Pins the calling process to a cpu list of process.execCPUAffinity (`field` is "initial"
/// or "final").
pub fn set_cpu_affinity(field: &'static str, list: &str) -> Result<(), ProcessError> {
    let err = |source| ProcessError::CpuAffinity { field, cpus: list.to_owned(), source };
    let cpus = parse_cpu_list(list).ok_or_else(|| err(io::ErrorKind::InvalidInput.into()))?;
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in cpus {
        // SAFETY: parse_cpu_list keeps every cpu below CPU_SETSIZE, the set's capacity.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: set is a valid cpu_set_t of the size passed; pid 0 is the caller.
    let res = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    sys::cvt(res).map(drop).map_err(err)
}

/// Whether this host's kernel has AppArmor enabled.
pub fn apparmor_enabled() -> bool {
    std::fs::read_to_string("/sys/module/apparmor/parameters/enabled")
        .is_ok_and(|s| s.trim() == "Y")
}

/// Asks AppArmor to confine the next exec with `profile` (as runc does, "exec <profile>").
pub fn set_apparmor_profile(profile: &str) -> Result<(), ProcessError> {
    let err = |source| ProcessError::Apparmor { profile: profile.to_owned(), source };
    let attr = ["/proc/self/attr/apparmor/exec", "/proc/self/attr/exec"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .ok_or_else(|| err(io::ErrorKind::NotFound.into()))?;
    std::fs::write(attr, format!("exec {profile}")).map_err(err)
}

/// Applies what process asks of the scheduler and AppArmor: done in the child before the
/// user switch (the real-time policies need CAP_SYS_NICE) and before seccomp (whose filter
/// may deny these calls).
pub fn apply_scheduling(process: &Process) -> Result<(), ProcessError> {
    if let Some(sched) = process.scheduler() {
        set_scheduler(sched)?;
    }
    if let Some(prio) = process.io_priority() {
        set_io_priority(prio)?;
    }
    if let Some(list) =
        process.exec_cpu_affinity().as_ref().and_then(|a| a.cpu_affinity_final().clone())
    {
        set_cpu_affinity("final", &list)?;
    }
    if let Some(profile) = process.apparmor_profile().as_deref().filter(|p| !p.is_empty()) {
        set_apparmor_profile(profile)?;
    }
    Ok(())
}

/// Applies process.execCPUAffinity.initial, as early in the child as it can be.
pub fn apply_initial_affinity(process: &Process) -> Result<(), ProcessError> {
    match process.exec_cpu_affinity().as_ref().and_then(|a| a.initial().clone()) {
        Some(list) => set_cpu_affinity("initial", &list),
        None => Ok(()),
    }
}

/// Switches to the process's user and sets its capabilities, in capabilities(7)'s order.
pub fn switch_user_and_caps(
    process: &Process,
    setgroups_allowed: bool,
) -> Result<(), ProcessError> {
    let last = sys::last_cap();
    let caps = process.capabilities().clone().unwrap_or_else(empty_caps);
    let bounding = cap_mask(caps.bounding().as_ref(), last);

    for n in 0..=last {
        if bounding & (1 << n) == 0 {
            sys::prctl(libc::PR_CAPBSET_DROP, n as libc::c_ulong, 0).map_err(|source| {
                ProcessError::Bounding { cap: format!("capability {n}"), source }
            })?;
        }
    }

    // Keep the permitted set across the uid change; the sets are set exactly right after.
    sys::prctl(libc::PR_SET_KEEPCAPS, 1, 0).map_err(|source| ProcessError::Capset { source })?;
    let user = process.user();
    let gids = user.additional_gids().clone().unwrap_or_default();
    if setgroups_allowed {
        // SAFETY: gids is a valid slice of gid_t for the length passed.
        sys::cvt(unsafe { libc::setgroups(gids.len(), gids.as_ptr()) })
            .map_err(|source| ProcessError::Setgroups { gids: gids.clone(), source })?;
    } else if !gids.is_empty() {
        return Err(ProcessError::Setgroups {
            gids,
            source: io::Error::other("setgroups is denied in this user namespace"),
        });
    }
    let (uid, gid) = (user.uid(), user.gid());
    // SAFETY: setresgid/setresuid take only ids; this process is single-threaded, so the
    // change applies to the whole process.
    sys::cvt(unsafe { libc::setresgid(gid, gid, gid) })
        .map_err(|source| ProcessError::Setgid { gid, source })?;
    // SAFETY: as above.
    sys::cvt(unsafe { libc::setresuid(uid, uid, uid) })
        .map_err(|source| ProcessError::Setuid { uid, source })?;
    sys::prctl(libc::PR_SET_KEEPCAPS, 0, 0).map_err(|source| ProcessError::Capset { source })?;

    let effective = cap_mask(caps.effective().as_ref(), last);
    let permitted = cap_mask(caps.permitted().as_ref(), last);
    let inheritable = cap_mask(caps.inheritable().as_ref(), last);
    sys::capset(effective, permitted, inheritable)
        .map_err(|source| ProcessError::Capset { source })?;

    sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_CLEAR_ALL as libc::c_ulong, 0)
        .map_err(|source| ProcessError::Capset { source })?;
    for cap in caps.ambient().iter().flatten() {
        let Some(n) = cap_number(cap).filter(|n| *n <= last) else { continue };
        // The kernel refuses an ambient capability that is not both permitted and
        // inheritable; runc goes on without it, and so does berth, saying so in the log.
        if let Err(source) =
            sys::prctl(libc::PR_CAP_AMBIENT, libc::PR_CAP_AMBIENT_RAISE as libc::c_ulong, n as _)
        {
            let err = ProcessError::Ambient { cap: cap.to_string(), source };
            tracing::debug!(error = %err, "ambient capability not raised");
        }
    }

    if process.no_new_privileges() == Some(true) {
        sys::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0)
            .map_err(|source| ProcessError::NoNewPrivs { source })?;
    }
    Ok(())
}

fn empty_caps() -> LinuxCapabilities {
    let mut c = LinuxCapabilities::default();
    for set in [
        LinuxCapabilities::set_bounding,
        LinuxCapabilities::set_effective,
        LinuxCapabilities::set_permitted,
        LinuxCapabilities::set_inheritable,
        LinuxCapabilities::set_ambient,
    ] {
        set(&mut c, Some(Capabilities::new()));
    }
    c
}

/// Makes sure no descriptor but stdio and the first `preserve` after it survives the exec;
/// `keep` (the runtime's channel) is close-on-exec already.
pub fn close_fds(preserve: u32, _keep: &[i32]) -> Result<(), ProcessError> {
    // The preserved ones must survive the exec.
    for fd in 3..3 + preserve as i32 {
        // SAFETY: F_SETFD on a descriptor number only changes its flags, or fails with EBADF.
        unsafe { libc::fcntl(fd, libc::F_SETFD, 0) };
    }
    // Everything else goes at the exec, as in runc's fix for CVE-2024-21626: until then the
    // process is non-dumpable, so nothing in the container can reach a descriptor through
    // /proc, and the working directory is checked to lie inside the root after it is entered
    // (`enter_cwd`), so a leaked directory descriptor cannot serve as the cwd. Marking rather
    // than closing keeps the runtime's own log usable up to the exec.
    sys::cloexec_range(3 + preserve, u32::MAX).map_err(|source| ProcessError::CloseFds { source })
}

/// Enters the working directory and checks that it lies inside the root: getcwd(2) reports
/// a directory outside the process's root as "(unreachable)/..." or fails.
pub fn enter_cwd(cwd: &Path) -> Result<(), ProcessError> {
    std::env::set_current_dir(cwd)
        .map_err(|source| ProcessError::Cwd { path: cwd.to_owned(), source })?;
    match std::env::current_dir() {
        Ok(p) if p.is_absolute() => Ok(()),
        _ => Err(ProcessError::CwdOutsideRoot { path: cwd.to_owned() }),
    }
}

/// Finds the executable for args[0] in the container's PATH, as execvp would.
pub fn find_executable(name: &str, env: &[String]) -> Result<PathBuf, ProcessError> {
    if name.contains('/') {
        let path = PathBuf::from(name);
        if !is_executable(&path) {
            return Err(ProcessError::NotExecutable { path });
        }
        return Ok(path);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let candidate = Path::new(dir).join(name);
        if is_executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(ProcessError::NotFound { name: name.to_owned() })
}

fn is_executable(p: &Path) -> bool {
    let Ok(c) = sys::cstr(p) else { return false };
    // SAFETY: c is a NUL-terminated path that outlives the call.
    let ok = unsafe { libc::access(c.as_ptr(), libc::X_OK) } == 0;
    ok && p.is_file()
}

/// The environment as execve wants it; a later entry for a name replaces an earlier one.
pub fn merge_env(base: &[String], extra: &[String]) -> Vec<String> {
    let mut order: Vec<String> = Vec::new();
    let mut map: HashMap<String, String> = HashMap::new();
    for e in base.iter().chain(extra) {
        let key = e.split('=').next().unwrap_or("").to_owned();
        if !map.contains_key(&key) {
            order.push(key.clone());
        }
        map.insert(key, e.clone());
    }
    order.into_iter().filter_map(|k| map.remove(&k)).collect()
}

/// execve(2); returns only on failure.
pub fn exec(path: &Path, args: &[String], env: &[String]) -> ProcessError {
    let to_c = |s: &str| CString::new(s.as_bytes()).unwrap_or_default();
    let Ok(cpath) = CString::new(path.as_os_str().as_bytes()) else {
        return ProcessError::Exec {
            path: path.to_owned(),
            source: io::ErrorKind::InvalidInput.into(),
        };
    };
    let cargs: Vec<CString> = args.iter().map(|a| to_c(a)).collect();
    let cenv: Vec<CString> = env.iter().map(|e| to_c(e)).collect();
    let mut argv: Vec<*const libc::c_char> = cargs.iter().map(|c| c.as_ptr()).collect();
    argv.push(std::ptr::null());
    let mut envp: Vec<*const libc::c_char> = cenv.iter().map(|c| c.as_ptr()).collect();
    envp.push(std::ptr::null());
    // SAFETY: argv and envp are NULL-terminated arrays of pointers into CStrings that live
    // until execve returns (it only returns on failure).
    unsafe { libc::execve(cpath.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    ProcessError::Exec { path: path.to_owned(), source: io::Error::last_os_error() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capability_numbers_match_the_kernel() {
        assert_eq!(cap_number(&Capability::Chown), Some(0));
        assert_eq!(cap_number(&Capability::SysAdmin), Some(21));
        assert_eq!(cap_number(&Capability::CheckpointRestore), Some(40));
        let set: Capabilities = [Capability::Kill, Capability::NetBindService].into();
        assert_eq!(cap_mask(Some(&set), 40), (1 << 5) | (1 << 10));
    }

    #[test]
    fn cpu_lists_parse_as_the_spec_writes_them() {
        assert_eq!(parse_cpu_list("0-2,5"), Some(vec![0, 1, 2, 5]));
        assert_eq!(parse_cpu_list("3"), Some(vec![3]));
        assert_eq!(parse_cpu_list("2-1"), None);
        assert_eq!(parse_cpu_list("0,"), None);
        assert_eq!(parse_cpu_list("99999"), None);
    }

    #[test]
    fn later_env_entries_win() {
        let env = merge_env(&["A=1".into(), "B=2".into()], &["A=3".into(), "C=4".into()]);
        assert_eq!(env, vec!["A=3", "B=2", "C=4"]);
    }
}
