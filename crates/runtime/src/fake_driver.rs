//! An in-memory [`ContainerDriver`] that keeps the driver contract without touching the
//! kernel, for testing logic built on drivers without root.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;

use berth_types::ContainerId;
use nix::sys::signal::Signal;

use crate::cgroup_stats::ContainerStats;
use crate::driver::{ContainerDriver, DriverError, ExitStatus, Stdio};
use crate::exec::ExecOptions;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FakeState {
    Created,
    Running,
    Exited(ExitStatus),
}

/// A driver whose containers exit with a scripted status.
///
/// `start` fails when built with [`FakeDriver::failing_start`]; `kill` makes a running
/// container exit with 128 + the signal.
#[derive(Debug)]
pub struct FakeDriver {
    exit: ExitStatus,
    fail_start: bool,
    containers: RefCell<HashMap<ContainerId, FakeState>>,
    calls: RefCell<Vec<String>>,
}

impl FakeDriver {
    /// A driver whose containers end with `exit`.
    pub fn exiting_with(exit: ExitStatus) -> Self {
        Self {
            exit,
            fail_start: false,
            containers: RefCell::default(),
            calls: RefCell::default(),
        }
    }

    /// A driver whose `start` always fails.
    pub fn failing_start() -> Self {
        Self {
            fail_start: true,
            ..Self::exiting_with(ExitStatus {
                code: 0,
                oom_killed: false,
            })
        }
    }

    /// The operations called so far, e.g. `["create", "start", "wait", "delete"]`.
    pub fn calls(&self) -> Vec<String> {
        self.calls.borrow().clone()
    }

    /// How many containers exist (created and not deleted).
    pub fn live_containers(&self) -> usize {
        self.containers.borrow().len()
    }

    fn record(&self, call: &str) {
        self.calls.borrow_mut().push(call.to_owned());
    }

    fn state(&self, id: &ContainerId) -> Result<FakeState, DriverError> {
        self.containers
            .borrow()
            .get(id)
            .copied()
            .ok_or_else(|| DriverError::NotFound { id: id.clone() })
    }
}

impl ContainerDriver for FakeDriver {
    fn create(&self, id: &ContainerId, bundle: &Path, _stdio: Stdio) -> Result<i32, DriverError> {
        self.record("create");
        let mut containers = self.containers.borrow_mut();
        if containers.contains_key(id) {
            return Err(DriverError::Create {
                id: id.clone(),
                bundle: bundle.to_owned(),
                reason: "container already exists".into(),
            });
        }
        containers.insert(id.clone(), FakeState::Created);
        Ok(i32::try_from(containers.len())
            .unwrap_or(i32::MAX)
            .saturating_add(1000))
    }

    fn start(&self, id: &ContainerId) -> Result<(), DriverError> {
        self.record("start");
        match self.state(id)? {
            FakeState::Created if !self.fail_start => {
                self.containers
                    .borrow_mut()
                    .insert(id.clone(), FakeState::Running);
                Ok(())
            }
            state => Err(DriverError::Start {
                id: id.clone(),
                reason: format!("fake start refused in state {state:?}"),
            }),
        }
    }

    fn kill(&self, id: &ContainerId, signal: Signal) -> Result<(), DriverError> {
        self.record("kill");
        if self.state(id)? == FakeState::Running {
            let exit = ExitStatus {
                code: 128 + signal as i32,
                oom_killed: false,
            };
            self.containers
                .borrow_mut()
                .insert(id.clone(), FakeState::Exited(exit));
        }
        Ok(())
    }

    fn wait(&self, id: &ContainerId) -> Result<ExitStatus, DriverError> {
        self.record("wait");
        match self.state(id)? {
            FakeState::Running => Ok(self.exit),
            FakeState::Exited(exit) => Ok(exit),
            FakeState::Created => Err(DriverError::Wait {
                id: id.clone(),
                reason: "the container was never started".into(),
            }),
        }
    }

    fn exec(
        &self,
        id: &ContainerId,
        options: &ExecOptions,
        _stdio: Stdio,
    ) -> Result<i32, DriverError> {
        self.record("exec");
        match self.state(id)? {
            FakeState::Running => Ok(2000),
            state => Err(DriverError::Exec {
                id: id.clone(),
                command: options.args.clone(),
                reason: format!("fake exec refused in state {state:?}"),
            }),
        }
    }

    fn wait_exec(&self, id: &ContainerId, _pid: i32) -> Result<i32, DriverError> {
        self.record("wait_exec");
        self.state(id)?;
        Ok(0)
    }

    fn stats(&self, id: &ContainerId) -> Result<ContainerStats, DriverError> {
        self.record("stats");
        self.state(id)?;
        Ok(ContainerStats::default())
    }

    fn delete(&self, id: &ContainerId) -> Result<(), DriverError> {
        self.record("delete");
        self.containers.borrow_mut().remove(id);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::driver::run_to_exit;

    fn id() -> ContainerId {
        ContainerId::from_random_bytes([7; 32])
    }

    #[test]
    fn run_to_exit_reports_the_exit_and_deletes_the_container() {
        let exit = ExitStatus {
            code: 137,
            oom_killed: true,
        };
        let driver = FakeDriver::exiting_with(exit);
        assert_eq!(
            run_to_exit(&driver, &id(), Path::new("/b"), Stdio::default()).unwrap(),
            exit
        );
        assert_eq!(driver.calls(), ["create", "start", "wait", "delete"]);
        assert_eq!(driver.live_containers(), 0);
    }

    #[test]
    fn failed_start_still_deletes_the_container() {
        let driver = FakeDriver::failing_start();
        let err = run_to_exit(&driver, &id(), Path::new("/b"), Stdio::default()).unwrap_err();
        assert!(matches!(err, DriverError::Start { .. }), "{err}");
        assert_eq!(driver.calls(), ["create", "start", "delete"]);
        assert_eq!(driver.live_containers(), 0);
    }

    #[test]
    fn a_killed_container_exits_with_128_plus_the_signal() {
        let driver = FakeDriver::exiting_with(ExitStatus {
            code: 0,
            oom_killed: false,
        });
        driver
            .create(&id(), Path::new("/b"), Stdio::default())
            .unwrap();
        driver.start(&id()).unwrap();
        driver.kill(&id(), Signal::SIGKILL).unwrap();
        assert_eq!(driver.wait(&id()).unwrap().code, 137);
        driver.delete(&id()).unwrap();
        driver.delete(&id()).unwrap();
        assert!(matches!(
            driver.stats(&id()),
            Err(DriverError::NotFound { .. })
        ));
    }
}
