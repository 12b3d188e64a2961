//! Measures the parts of berth-build that stand alone, for BENCHMARKS.md:
//!
//! - `measure context DIR THREADS`: walk and hash a build context, print entries and bytes;
//! - `measure parse FILE ROUNDS`: parse, plan and graph a Dockerfile ROUNDS times;
//! - `measure layer DIR`: read DIR as a context and write `COPY . /app/` as a layer tar
//!   (to a sink), printing its diff id.
//!
//! Timing is left to hyperfine, e.g.
//! `hyperfine 'target/release/examples/measure context /usr/share 1' '… 2'`.

use std::path::Path;
use std::process::ExitCode;

use berth_build::context::{Context, EntryKind};
use berth_build::copy::{plan_copy, write_layer, CopyOptions, Times};
use berth_build::dockerfile::{parse, InstructionKind};
use berth_build::graph::Graph;
use berth_build::ignore::Ignore;
use berth_build::plan::{plan, PlanOptions};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("context") if args.len() == 4 => {
            let root = Path::new(&args[2]);
            let threads: usize = args[3].parse().unwrap_or(0);
            let ignore = match Ignore::load(root) {
                Ok(i) => i,
                Err(e) => {
                    eprintln!("measure: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match Context::read(root, &ignore, threads) {
                Ok(ctx) => {
                    let bytes: u64 = ctx
                        .entries
                        .values()
                        .filter(|e| e.kind == EntryKind::File)
                        .map(|e| e.size)
                        .sum();
                    println!("{} entries, {} bytes", ctx.entries.len(), bytes);
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("measure: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Some("parse") if args.len() == 4 => {
            let text = std::fs::read_to_string(&args[2]).unwrap_or_default();
            let rounds: usize = args[3].parse().unwrap_or(1);
            let mut steps = 0;
            for _ in 0..rounds {
                let Ok(dockerfile) = parse(&args[2], &text) else { return ExitCode::FAILURE };
                let Ok(plan) = plan(&dockerfile, &PlanOptions::default()) else {
                    return ExitCode::FAILURE;
                };
                let Ok(graph) = Graph::new(&plan) else { return ExitCode::FAILURE };
                steps +=
                    plan.stages.iter().map(|s| s.steps.len()).sum::<usize>() + graph.nodes.len();
            }
            println!("{steps} steps and stages");
            ExitCode::SUCCESS
        }
        Some("layer") if args.len() == 3 => {
            let root = Path::new(&args[2]);
            let result = (|| -> Result<String, berth_build::Error> {
                let ctx = Context::read(root, &Ignore::load(root)?, 0)?;
                let dockerfile = parse("Dockerfile", "FROM scratch\nCOPY . /app/\n")?;
                let plan = plan(&dockerfile, &PlanOptions::default())?;
                let InstructionKind::Copy(copy) = &plan.stages[0].steps[0].kind else {
                    return Ok(String::new());
                };
                let entries = plan_copy(&ctx, copy, &CopyOptions::default())?;
                let (diff_id, _) = write_layer(root, &entries, Times::Clamp(0), std::io::sink())?;
                Ok(format!("{} entries, diff id {diff_id}", entries.len()))
            })();
            match result {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("measure: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        _ => {
            eprintln!("usage: measure context DIR THREADS | measure parse FILE ROUNDS | measure layer DIR");
            ExitCode::from(2)
        }
    }
}
