//! Lifecycle hooks (runtime spec, "POSIX-platform Hooks"): each hook is a program run with the
//! container's state on stdin, its own args and env, and an optional timeout in seconds.
//!
//! Failure semantics, per the spec: a failing prestart, createRuntime or createContainer hook
//! fails `create` and the container is torn down; a failing startContainer hook fails the
//! start and stops the container; poststart and poststop failures are logged as warnings and
//! the lifecycle goes on. The callers decide which; this module runs one list and reports the
//! first failure.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use oci_spec::runtime::Hook;

/// A hook that could not run or did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    #[error("{kind} hook {path}: starting it: {source}")]
    Spawn {
        kind: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{kind} hook {path}: {status}")]
    Failed { kind: &'static str, path: PathBuf, status: String },
    #[error("{kind} hook {path}: timed out after {secs}s")]
    Timeout { kind: &'static str, path: PathBuf, secs: i64 },
}

/// Runs `hooks` in order with `state` on stdin; stops at the first failure.
pub fn run(kind: &'static str, hooks: &[Hook], state: &serde_json::Value) -> Result<(), HookError> {
    let input = serde_json::to_vec(state).unwrap_or_default();
    for hook in hooks {
        run_one(kind, hook, &input)?;
    }
    Ok(())
}

fn run_one(kind: &'static str, hook: &Hook, input: &[u8]) -> Result<(), HookError> {
    let path = hook.path().clone();
    tracing::debug!(kind, path = %path.display(), "running hook");
    let mut cmd = Command::new(&path);
    // args[0] is the program's name as the hook wants to see it.
    match hook.args() {
        Some(args) if !args.is_empty() => {
            use std::os::unix::process::CommandExt;
            cmd.arg0(&args[0]).args(&args[1..]);
        }
        _ => {}
    }
    cmd.env_clear();
    for e in hook.env().iter().flatten() {
        if let Some((k, v)) = e.split_once('=') {
            cmd.env(k, v);
        }
    }
    cmd.stdin(Stdio::piped());
    let mut child =
        cmd.spawn().map_err(|source| HookError::Spawn { kind, path: path.clone(), source })?;
    if let Some(mut stdin) = child.stdin.take() {
        // A hook that does not read its stdin is fine.
        let _ = stdin.write_all(input);
    }
    let deadline = hook.timeout().map(|s| (s, Instant::now() + Duration::from_secs(s as u64)));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => {}
            Err(source) => return Err(HookError::Spawn { kind, path, source }),
        }
        if let Some((secs, at)) = deadline {
            if Instant::now() >= at {
                let _ = child.kill();
                let _ = child.wait();
                return Err(HookError::Timeout { kind, path, secs });
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    if !status.success() {
        return Err(HookError::Failed { kind, path, status: status.to_string() });
    }
    Ok(())
}
