//! The stage graph of a planned Dockerfile: which stage needs which (FROM an earlier stage,
//! `COPY --from`, `RUN --mount=…,from=`), which stages a `--target` needs, and in what
//! batches independent stages can build at the same time.
//!
//! A `--from` value names a stage (case-insensitively), a stage index that must come earlier,
//! or an image. berth reads a bare word that is no stage's name as a mistyped stage name and
//! refuses it with its position, where Docker would try to pull an image of that name: an
//! image is written as a reference with a tag, digest, registry or path (`busybox:latest`).

use std::collections::{BTreeMap, BTreeSet};

use crate::dockerfile::{snippet, InstructionKind, Position};
use crate::plan::{Base, Plan};

/// Why the stages do not form a buildable graph.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("{file}:{position}: {keyword} refers to unknown stage {reference:?} (to use an image, give a full reference such as {reference}:latest)\n{snippet}")]
    UnknownStage {
        file: String,
        position: Position,
        keyword: &'static str,
        reference: String,
        snippet: String,
    },
    #[error("{file}:{position}: {keyword} refers to stage {index}, which is not before this one\n{snippet}")]
    LaterIndex {
        file: String,
        position: Position,
        keyword: &'static str,
        index: usize,
        snippet: String,
    },
    #[error("target stage {target:?} not found (stages: {available})")]
    UnknownTarget { target: String, available: String },
    #[error("{file}:{position}: stages depend on each other in a cycle: {}\n{snippet}", cycle.join(" -> "))]
    Cycle { file: String, position: Position, cycle: Vec<String>, snippet: String },
}

/// What a stage needs besides its own instructions.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StageNode {
    /// Stages it needs, by index.
    pub stages: BTreeSet<usize>,
    /// External images it needs: its base and those of `--from`.
    pub images: BTreeSet<String>,
    /// Where each stage dependency first comes from (its COPY or RUN; FROM has none).
    pub stage_positions: BTreeMap<usize, Position>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Graph {
    pub nodes: Vec<StageNode>,
    names: Vec<String>,
}

/// What a `--from` value refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FromRef {
    Stage(usize),
    Image(String),
}

/// Resolves a `--from` value seen in stage `current`.
pub fn resolve_from(plan: &Plan, current: usize, reference: &str) -> Result<FromRef, FromRefError> {
    let lower = reference.to_ascii_lowercase();
    if let Some(stage) = plan.stages.iter().find(|s| s.name.as_deref() == Some(lower.as_str())) {
        return Ok(FromRef::Stage(stage.index));
    }
    if let Ok(index) = reference.parse::<usize>() {
        return if index < current {
            Ok(FromRef::Stage(index))
        } else {
            Err(FromRefError::LaterIndex(index))
        };
    }
    if reference.contains([':', '/', '@', '.']) {
        return Ok(FromRef::Image(reference.to_owned()));
    }
    Err(FromRefError::Unknown)
}

/// Why [`resolve_from`] refused a value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromRefError {
    Unknown,
    LaterIndex(usize),
}

impl Graph {
    /// Collects every stage's dependencies and checks that they form no cycle.
    pub fn new(plan: &Plan) -> Result<Self, GraphError> {
        let mut nodes = Vec::with_capacity(plan.stages.len());
        for stage in &plan.stages {
            let mut node = StageNode::default();
            match &stage.base {
                Base::Stage(i) => {
                    node.stages.insert(*i);
                }
                Base::Image(image) => {
                    node.images.insert(image.clone());
                }
                Base::Scratch => {}
            }
            for step in &stage.steps {
                let refs: Vec<&str> = match &step.kind {
                    InstructionKind::Copy(copy) => copy.from.iter().map(String::as_str).collect(),
                    InstructionKind::Run(run) => {
                        run.mounts.iter().filter_map(|m| m.from.as_deref()).collect()
                    }
                    _ => Vec::new(),
                };
                for reference in refs {
                    let keyword = step.kind.keyword();
                    match resolve_from(plan, stage.index, reference) {
                        Ok(FromRef::Stage(i)) => {
                            node.stages.insert(i);
                            node.stage_positions.entry(i).or_insert(step.position);
                        }
                        Ok(FromRef::Image(image)) => {
                            node.images.insert(image);
                        }
                        Err(FromRefError::Unknown) => {
                            return Err(GraphError::UnknownStage {
                                file: plan.file.clone(),
                                position: step.position,
                                keyword,
                                reference: reference.to_owned(),
                                snippet: snippet(&plan.lines, step.position),
                            })
                        }
                        Err(FromRefError::LaterIndex(index)) => {
                            return Err(GraphError::LaterIndex {
                                file: plan.file.clone(),
                                position: step.position,
                                keyword,
                                index,
                                snippet: snippet(&plan.lines, step.position),
                            })
                        }
                    }
                }
            }
            nodes.push(node);
        }
        let names = plan
            .stages
            .iter()
            .map(|s| s.name.clone().unwrap_or_else(|| s.index.to_string()))
            .collect();
        let graph = Self { nodes, names };
        graph.check_cycles(plan)?;
        Ok(graph)
    }

    fn check_cycles(&self, plan: &Plan) -> Result<(), GraphError> {
        #[derive(Clone, Copy, PartialEq)]
        enum Mark {
            New,
            Open,
            Done,
        }
        let mut marks = vec![Mark::New; self.nodes.len()];
        let mut path: Vec<usize> = Vec::new();
        // Iterative depth-first search: (stage, its dependencies not yet visited).
        for start in 0..self.nodes.len() {
            if marks[start] != Mark::New {
                continue;
            }
            let mut stack: Vec<(usize, Vec<usize>)> =
                vec![(start, self.nodes[start].stages.iter().copied().collect())];
            marks[start] = Mark::Open;
            path.push(start);
            while let Some((node, pending)) = stack.last_mut() {
                match pending.pop() {
                    Some(next) => match marks[next] {
                        Mark::Open => {
                            let from = path.iter().position(|n| *n == next).unwrap_or(0);
                            let mut cycle: Vec<String> =
                                path[from..].iter().map(|i| self.names[*i].clone()).collect();
                            cycle.push(self.names[next].clone());
                            // Point at the instruction that closes the cycle.
                            let position = self.nodes[*node]
                                .stage_positions
                                .get(&next)
                                .copied()
                                .unwrap_or(plan.stages[*node].position);
                            return Err(GraphError::Cycle {
                                file: plan.file.clone(),
                                position,
                                cycle,
                                snippet: snippet(&plan.lines, position),
                            });
                        }
                        Mark::New => {
                            marks[next] = Mark::Open;
                            path.push(next);
                            stack.push((next, self.nodes[next].stages.iter().copied().collect()));
                        }
                        Mark::Done => {}
                    },
                    None => {
                        marks[*node] = Mark::Done;
                        path.pop();
                        stack.pop();
                    }
                }
            }
        }
        Ok(())
    }

    /// The stage `--target` names (by name or index), or the last stage.
    pub fn target(&self, target: Option<&str>) -> Result<usize, GraphError> {
        let Some(target) = target else { return Ok(self.nodes.len().saturating_sub(1)) };
        let lower = target.to_ascii_lowercase();
        self.names
            .iter()
            .position(|n| *n == lower)
            .or_else(|| target.parse::<usize>().ok().filter(|i| *i < self.nodes.len()))
            .ok_or_else(|| GraphError::UnknownTarget {
                target: target.to_owned(),
                available: self.names.join(", "),
            })
    }

    /// The stages `target` needs, itself included, in index order; the rest is skipped.
    pub fn needed(&self, target: usize) -> Vec<usize> {
        let mut seen = BTreeSet::new();
        let mut todo = vec![target];
        while let Some(stage) = todo.pop() {
            if seen.insert(stage) {
                todo.extend(self.nodes[stage].stages.iter().copied());
            }
        }
        seen.into_iter().collect()
    }

    /// The needed stages in batches: every stage of a batch depends only on earlier batches,
    /// so a batch's stages can build in parallel.
    pub fn batches(&self, target: usize) -> Vec<Vec<usize>> {
        let needed = self.needed(target);
        let mut level: BTreeMap<usize, usize> = BTreeMap::new();
        // The graph has no cycle, so repeated relaxation settles within |needed| rounds.
        for _ in 0..=needed.len() {
            let mut changed = false;
            for &stage in &needed {
                let want = self.nodes[stage]
                    .stages
                    .iter()
                    .map(|d| level.get(d).copied().unwrap_or(0) + 1)
                    .max()
                    .unwrap_or(0);
                if level.get(&stage) != Some(&want) {
                    level.insert(stage, want);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        let depth = level.values().copied().max().map_or(0, |d| d + 1);
        let mut batches = vec![Vec::new(); depth];
        for (stage, l) in level {
            batches[l].push(stage);
        }
        batches
    }

    /// The name a stage is shown by: its alias, or its index.
    pub fn name(&self, stage: usize) -> &str {
        &self.names[stage]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use crate::plan::{plan, PlanOptions};

    fn graph(text: &str) -> Result<Graph, GraphError> {
        let p = plan(&parse("Dockerfile", text).unwrap(), &PlanOptions::default()).unwrap();
        Graph::new(&p)
    }

    const MULTI: &str = "\
FROM busybox:latest AS base
RUN echo base
FROM base AS deps
RUN echo deps
FROM busybox:latest AS assets
RUN echo assets
FROM deps AS build
COPY --from=assets /a /a
RUN --mount=type=bind,from=tools:1.0,target=/t make
FROM busybox:latest AS unused
FROM scratch AS final
COPY --from=build /out/app /app
COPY --from=0 /etc/passwd /etc/passwd
";

    #[test]
    fn dependencies_of_each_stage() {
        let g = graph(MULTI).unwrap();
        assert_eq!(g.nodes[1].stages, BTreeSet::from([0]));
        assert_eq!(g.nodes[3].stages, BTreeSet::from([1, 2]));
        assert_eq!(g.nodes[3].images, BTreeSet::from(["tools:1.0".to_owned()]));
        assert_eq!(g.nodes[0].images, BTreeSet::from(["busybox:latest".to_owned()]));
        assert_eq!(g.nodes[5].stages, BTreeSet::from([0, 3]));
        assert!(g.nodes[5].images.is_empty(), "scratch is no image");
    }

    #[test]
    fn target_needs_only_its_dependencies() {
        let g = graph(MULTI).unwrap();
        let last = g.target(None).unwrap();
        assert_eq!(last, 5);
        assert_eq!(g.needed(last), [0, 1, 2, 3, 5], "the unused stage is skipped");
        let build = g.target(Some("BUILD")).unwrap();
        assert_eq!(g.needed(build), [0, 1, 2, 3]);
        assert_eq!(g.target(Some("2")).unwrap(), 2);
        let err = g.target(Some("nope")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "target stage \"nope\" not found (stages: base, deps, assets, build, unused, final)"
        );
    }

    #[test]
    fn independent_stages_share_a_batch() {
        let g = graph(MULTI).unwrap();
        assert_eq!(g.batches(5), vec![vec![0, 2], vec![1], vec![3], vec![5]]);
        assert_eq!(g.batches(2), vec![vec![2]]);
    }

    #[test]
    fn unknown_stage_in_from_is_an_error_with_position() {
        let err = graph("FROM a:1 AS build\nFROM b:1\n\nCOPY --from=biuld /x /x\n").unwrap_err();
        assert_eq!(
            err,
            GraphError::UnknownStage {
                file: "Dockerfile".into(),
                position: Position { line: 4, column: 1 },
                keyword: "COPY",
                reference: "biuld".into(),
                snippet: " 4 | COPY --from=biuld /x /x\n   | ^".into(),
            }
        );
        let err = graph("FROM a:1\nRUN --mount=from=nope,target=/x true\n").unwrap_err();
        assert!(matches!(err, GraphError::UnknownStage { keyword: "RUN", .. }));
        let err = graph("FROM a:1\nCOPY --from=0 /x /x\n").unwrap_err();
        assert!(matches!(err, GraphError::LaterIndex { index: 0, .. }));
    }

    #[test]
    fn cycles_are_found() {
        let err = graph(
            "FROM a:1 AS one\nCOPY --from=two /x /x\nFROM b:1 AS two\nCOPY --from=one /y /y\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:4:1: stages depend on each other in a cycle: one -> two -> one\n 4 | COPY --from=one /y /y\n   | ^"
        );
        let err = graph("FROM a:1 AS self\nCOPY --from=self /x /x\n").unwrap_err();
        assert!(matches!(err, GraphError::Cycle { .. }));
    }

    #[test]
    fn copy_from_an_image_reference() {
        let g = graph("FROM a:1\nCOPY --from=registry.local/tools /t /t\nCOPY --from=busybox:1.36 /bin/sh /sh\n").unwrap();
        assert_eq!(g.nodes[0].images.len(), 3);
    }
}
