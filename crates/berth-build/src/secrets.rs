//! Build secrets: `--secret id=NAME,src=FILE` (or `env=VAR`) on the command line, and the
//! check that every `RUN --mount=type=secret` a build needs has one. A secret's content is
//! read only when its step runs; it never enters a cache key, a layer or the history.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::dockerfile::{InstructionKind, MountKind, Position};
use crate::plan::Plan;

/// Why a `--secret` value or a secret mount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecretError {
    #[error("invalid --secret {spec:?}: {reason}")]
    Parse { spec: String, reason: String },
    #[error("{file}:{position}: RUN needs secret {id:?}, which was not given (use --secret id={id},src=FILE)")]
    Missing { file: String, position: Position, id: String },
}

/// Where a secret's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    File(PathBuf),
    Env(String),
}

/// The `--secret` values of a build, by id.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Secrets {
    pub by_id: BTreeMap<String, SecretSource>,
}

impl Secrets {
    /// Adds one `--secret` value: `id=NAME` with `src=`/`source=FILE` or `env=VAR`, and an
    /// optional `type=file|env`. Without a source, a file or variable named as the id is used
    /// (`type` chooses which, file by default), as Docker does.
    pub fn add(&mut self, spec: &str) -> Result<(), SecretError> {
        let fail =
            |reason: &str| SecretError::Parse { spec: spec.to_owned(), reason: reason.to_owned() };
        let mut id = None;
        let mut src = None;
        let mut env = None;
        let mut kind = None;
        for field in spec.split(',').filter(|f| !f.is_empty()) {
            let (key, value) = field.split_once('=').ok_or_else(|| fail("fields are key=value"))?;
            match key.trim() {
                "id" => id = Some(value.to_owned()),
                "src" | "source" => src = Some(value.to_owned()),
                "env" => env = Some(value.to_owned()),
                "type" => kind = Some(value.to_owned()),
                other => return Err(fail(&format!("unknown key {other:?}"))),
            }
        }
        let source = match (src, env, kind.as_deref()) {
            (Some(_), Some(_), _) => return Err(fail("give src= or env=, not both")),
            (Some(path), None, None | Some("file")) => SecretSource::File(PathBuf::from(path)),
            (None, Some(var), None | Some("env")) => SecretSource::Env(var),
            (None, None, Some("env")) => {
                SecretSource::Env(id.clone().ok_or_else(|| fail("id= is required"))?)
            }
            (None, None, None | Some("file")) => SecretSource::File(PathBuf::from(
                id.clone().ok_or_else(|| fail("id= is required"))?,
            )),
            (_, _, Some(other)) => {
                return Err(fail(&format!("type must be file or env, not {other:?}")))
            }
        };
        let id = match id {
            Some(id) if !id.is_empty() => id,
            _ => match &source {
                SecretSource::File(path) => path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| fail("id= is required"))?,
                SecretSource::Env(var) => var.clone(),
            },
        };
        self.by_id.insert(id, source);
        Ok(())
    }

    /// Checks that every required secret mount of the given stages has a secret. A mount
    /// without `required=true` may go without: its step then sees no file, as in Docker.
    pub fn check(&self, plan: &Plan, stages: &[usize]) -> Result<(), SecretError> {
        for stage in stages.iter().filter_map(|i| plan.stages.get(*i)) {
            for step in &stage.steps {
                let InstructionKind::Run(run) = &step.kind else { continue };
                for mount in run.mounts.iter().filter(|m| m.kind == MountKind::Secret) {
                    let id = mount.id.clone().unwrap_or_else(|| {
                        let target = mount.target.as_deref().unwrap_or_default();
                        target.rsplit('/').next().unwrap_or_default().to_owned()
                    });
                    if mount.required == Some(true) && !self.by_id.contains_key(&id) {
                        return Err(SecretError::Missing {
                            file: plan.file.clone(),
                            position: step.position,
                            id,
                        });
                    }
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::parse;
    use crate::plan::{plan, PlanOptions};

    #[test]
    fn secret_specs() {
        let mut s = Secrets::default();
        s.add("id=token,src=/run/token.txt").unwrap();
        s.add("id=aws,env=AWS_KEY").unwrap();
        s.add("src=./certs/ca.pem").unwrap();
        s.add("id=GH,type=env").unwrap();
        s.add("id=npmrc").unwrap();
        assert_eq!(s.by_id["token"], SecretSource::File("/run/token.txt".into()));
        assert_eq!(s.by_id["aws"], SecretSource::Env("AWS_KEY".into()));
        assert_eq!(s.by_id["ca.pem"], SecretSource::File("./certs/ca.pem".into()));
        assert_eq!(s.by_id["GH"], SecretSource::Env("GH".into()));
        assert_eq!(s.by_id["npmrc"], SecretSource::File("npmrc".into()));
        for bad in ["id", "id=x,src=a,env=b", "id=x,type=socket", "colour=red", ""] {
            assert!(s.clone().add(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn required_secrets_must_be_given() {
        let text = "FROM a:1\nRUN --mount=type=secret,id=opt true\nRUN --mount=type=secret,id=tok,required=true make\n";
        let p = plan(&parse("Dockerfile", text).unwrap(), &PlanOptions::default()).unwrap();
        let mut s = Secrets::default();
        let err = s.check(&p, &[0]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "Dockerfile:3:1: RUN needs secret \"tok\", which was not given (use --secret id=tok,src=FILE)"
        );
        s.add("id=tok,src=f").unwrap();
        s.check(&p, &[0]).unwrap();
        assert!(Secrets::default().check(&p, &[]).is_ok(), "stages not built need nothing");
    }
}
