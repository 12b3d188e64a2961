//! The monitor's duties besides copying output (issue 7): the restart policy, the healthcheck
//! and the log driver, as `run`/`create` take them ([`DutyOptions`], stored with the run
//! options) and as `create` resolves them with the image's HEALTHCHECK ([`Duties`], stored
//! with the record and handed to the monitor).
//!
//! Every value is checked by [`DutyOptions::validate`] before anything is pulled or created,
//! so a bad one is a one-line error and leaves nothing behind.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::health::{HealthCheck, HealthError, HealthFlags, OnFailure};
use super::restart::{RestartError, RestartPolicy};
use crate::containers::log_files::{LogConfig, LogConfigError};

/// Errors of the duty flags.
#[derive(Debug, thiserror::Error)]
pub enum DutyError {
    #[error(transparent)]
    Restart(#[from] RestartError),
    #[error(transparent)]
    Health(#[from] HealthError),
    #[error(transparent)]
    Log(#[from] LogConfigError),
}

/// `--restart`, the healthcheck flags, `--log-driver` and `--log-opt`, as typed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct DutyOptions {
    /// `--restart POLICY`
    pub restart: Option<String>,
    #[serde(flatten)]
    pub health: HealthFlags,
    /// `--log-driver DRIVER`
    pub log_driver: Option<String>,
    /// `--log-opt KEY=VALUE[,KEY=VALUE]`
    pub log_opt: Vec<String>,
}

/// What the monitor does for one container besides copying its output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Duties {
    pub restart: RestartPolicy,
    pub health: Option<HealthCheck>,
    /// `--health-on-failure`
    pub health_on_failure: OnFailure,
    pub log: LogConfig,
}

impl DutyOptions {
    /// Checks every value, and `--rm` against the policy, without an image.
    /// Whether `--health-on-failure` has a check to act on is known only with the image.
    pub fn validate(&self, auto_remove: bool) -> Result<(), DutyError> {
        RestartPolicy::parse(self.restart.as_deref().unwrap_or(""))?
            .check_auto_remove(auto_remove)?;
        self.health.validate()?;
        LogConfig::parse(self.log_driver.as_deref(), &self.log_opt)?;
        Ok(())
    }

    /// The duties of a container of an image with healthcheck `image_health`.
    pub fn resolve(
        &self,
        image_health: Option<&berth_image::config::HealthConfig>,
        auto_remove: bool,
    ) -> Result<Duties, DutyError> {
        let restart = RestartPolicy::parse(self.restart.as_deref().unwrap_or(""))?;
        restart.check_auto_remove(auto_remove)?;
        let health = self.health.resolve(image_health)?;
        let health_on_failure = self.health.on_failure(health.as_ref())?;
        let log = LogConfig::parse(self.log_driver.as_deref(), &self.log_opt)?;
        Ok(Duties { restart, health, health_on_failure, log })
    }
}

impl Duties {
    /// The log file of a container whose userdata directory is `userdata`.
    pub fn log_path(&self, userdata: &Path) -> std::path::PathBuf {
        self.log.path.clone().unwrap_or_else(|| userdata.join("ctr.log"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_and_rm_with_a_policy_are_refused() {
        let opts =
            |restart: &str| DutyOptions { restart: Some(restart.into()), ..Default::default() };
        assert!(opts("always").validate(false).is_ok());
        assert!(opts("always").validate(true).is_err());
        assert!(opts("no").validate(true).is_ok());
        assert!(opts("bogus").validate(false).is_err());
        let log = DutyOptions { log_opt: vec!["max-size=12x".into()], ..Default::default() };
        assert!(log.validate(false).unwrap_err().to_string().contains("12x"));
        let on_failure = |action: &str| DutyOptions {
            health: HealthFlags { health_on_failure: Some(action.into()), ..Default::default() },
            ..Default::default()
        };
        assert!(on_failure("kill").validate(false).is_ok(), "the image may have a check");
        assert_eq!(
            on_failure("kill").resolve(None, false).unwrap_err().to_string(),
            "--health-on-failure kill needs a healthcheck (--health-cmd or the image's)"
        );
        assert_eq!(
            on_failure("reboot").validate(false).unwrap_err().to_string(),
            "invalid --health-on-failure \"reboot\": the action must be none, kill, restart or stop"
        );
        let duties = DutyOptions::default().resolve(None, false).unwrap();
        assert_eq!(duties, Duties::default());
        assert_eq!(duties.log_path(Path::new("/u")), Path::new("/u/ctr.log"));
    }
}
