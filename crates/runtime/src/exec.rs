//! Running another process in a running container (`berth exec`), with the container's
//! seccomp filter.
//!
//! libcontainer 0.7 builds an exec'd ("tenant") process's spec from the container's
//! namespaces, cgroup, capabilities and no_new_privs, but not its seccomp filter: measured in
//! a container, `grep Seccomp /proc/self/status` of an exec'd process says 0. berth therefore
//! runs exec'd processes through [`SeccompExecutor`], which loads the container's filter in
//! the process just before it execs the command (no_new_privs is already set by then, so no
//! privilege is needed).

use oci_spec::runtime::{LinuxSeccomp, Spec};

use libcontainer::workload::default::DefaultExecutor;
use libcontainer::workload::{Executor, ExecutorError, ExecutorValidationError};

use crate::mounts::ContainerPath;
use crate::options::EnvVar;
use crate::user::ResolvedUser;

/// A command to run in a running container; unset fields default to the container's own
/// (its user and working directory; the environment is the container's plus `env`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOptions {
    pub args: Vec<String>,
    /// `-e`: added to, or replacing in, the container's environment.
    pub env: Vec<EnvVar>,
    /// `-w`: the working directory instead of the container's.
    pub workdir: Option<ContainerPath>,
    /// `-u`, resolved by the caller against the container's rootfs.
    pub user: Option<ResolvedUser>,
    /// `-t`: the process gets a pseudo-terminal, whose master reaches the caller on
    /// [`crate::Stdio::console_socket`] (which must then be set).
    pub tty: bool,
}

/// Loads `seccomp` (when set) and then execs the process as libcontainer's default executor
/// does.
#[derive(Clone)]
pub(crate) struct SeccompExecutor {
    pub seccomp: Option<LinuxSeccomp>,
}

impl Executor for SeccompExecutor {
    fn exec(&self, spec: &Spec) -> Result<(), ExecutorError> {
        if let Some(seccomp) = &self.seccomp {
            libcontainer::seccomp::initialize_seccomp(seccomp)
                .map_err(|err| ExecutorError::Other(format!("cannot load seccomp: {err}")))?;
        }
        DefaultExecutor {}.exec(spec)
    }

    fn validate(&self, spec: &Spec) -> Result<(), ExecutorValidationError> {
        DefaultExecutor {}.validate(spec)
    }
}
