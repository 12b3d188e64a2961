//! `berth-monitor`: the small program a container's monitor becomes while the container runs
//! (see berth-engine's `monitor::handoff`). It links only the monitor's copy loop, so the
//! resident set of a long-running container's monitor is that loop's and not all of berth's.

use std::process::ExitCode;

fn main() -> ExitCode {
    let code = berth_engine::monitor::handoff::watcher_main();
    ExitCode::from(code.clamp(0, 255) as u8)
}
