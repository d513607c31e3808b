//! Turns the profile data of [`crate::seccomp_profile`] into the spec's `linux.seccomp` for a
//! container's capability set.

use std::collections::{BTreeSet, HashSet};

use oci_spec::OciSpecError;
use oci_spec::runtime::{
    Arch, Capability, LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArgBuilder,
    LinuxSeccompBuilder, LinuxSeccompOperator, LinuxSyscall, LinuxSyscallBuilder,
};

use crate::seccomp_profile::{
    ALLOWED, ALLOWED_ARM, ALLOWED_PERSONAS, ALLOWED_X86, BY_CAPABILITY, CLONE_NAMESPACE_FLAGS,
    DENIED_SOCKET_FAMILY,
};

/// The seccomp filter for a container holding `capabilities`, for the CPU architecture berth
/// was built for (`arch`, as `std::env::consts::ARCH` names it).
pub fn default_profile(
    capabilities: &HashSet<Capability>,
    arch: &str,
) -> Result<LinuxSeccomp, OciSpecError> {
    let x86 = matches!(arch, "x86_64" | "x86");
    let mut allowed: BTreeSet<&str> = ALLOWED.iter().copied().collect();
    if x86 {
        allowed.extend(ALLOWED_X86);
    }
    if matches!(arch, "aarch64" | "arm") {
        allowed.extend(ALLOWED_ARM);
    }
    for (capability, names) in BY_CAPABILITY {
        if capabilities.contains(capability) {
            allowed.extend(names.iter().copied());
        }
    }

    let mut syscalls = vec![allow(allowed.iter().copied(), Vec::new())?];
    for &persona in ALLOWED_PERSONAS {
        syscalls.push(allow(
            ["personality"],
            vec![(0, LinuxSeccompOperator::ScmpCmpEq, persona, None)],
        )?);
    }
    syscalls.push(allow(
        ["socket"],
        vec![(
            0,
            LinuxSeccompOperator::ScmpCmpNe,
            DENIED_SOCKET_FAMILY,
            None,
        )],
    )?);
    if !capabilities.contains(&Capability::SysAdmin) {
        // clone without namespace flags is how fork and threads are made; clone3 hides its
        // flags behind a pointer, so it answers ENOSYS and libc falls back to clone.
        syscalls.push(allow(
            ["clone"],
            vec![(
                0,
                LinuxSeccompOperator::ScmpCmpMaskedEq,
                CLONE_NAMESPACE_FLAGS,
                Some(0),
            )],
        )?);
        syscalls.push(
            LinuxSyscallBuilder::default()
                .names(vec!["clone3".to_owned()])
                .action(LinuxSeccompAction::ScmpActErrno)
                .errno_ret(libc::ENOSYS as u32)
                .build()?,
        );
    }

    LinuxSeccompBuilder::default()
        .default_action(LinuxSeccompAction::ScmpActErrno)
        .default_errno_ret(libc::EPERM as u32)
        .architectures(architectures(arch))
        .syscalls(syscalls)
        .build()
}

/// The architectures whose syscalls a process of `arch` may make (32-bit compat included, as
/// docker allows them).
fn architectures(arch: &str) -> Vec<Arch> {
    match arch {
        "x86_64" => vec![Arch::ScmpArchX86_64, Arch::ScmpArchX86, Arch::ScmpArchX32],
        "aarch64" => vec![Arch::ScmpArchAarch64, Arch::ScmpArchArm],
        _ => vec![Arch::ScmpArchNative],
    }
}

type ArgRule = (usize, LinuxSeccompOperator, u64, Option<u64>);

fn allow<'a>(
    names: impl IntoIterator<Item = &'a str>,
    args: Vec<ArgRule>,
) -> Result<LinuxSyscall, OciSpecError> {
    let mut builder = LinuxSyscallBuilder::default()
        .names(names.into_iter().map(str::to_owned).collect::<Vec<_>>())
        .action(LinuxSeccompAction::ScmpActAllow);
    if !args.is_empty() {
        let args = args
            .into_iter()
            .map(|(index, op, value, value_two)| {
                let arg = LinuxSeccompArgBuilder::default()
                    .index(index)
                    .op(op)
                    .value(value);
                match value_two {
                    Some(two) => arg.value_two(two).build(),
                    None => arg.build(),
                }
            })
            .collect::<Result<Vec<_>, _>>()?;
        builder = builder.args(args);
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed_names(profile: &LinuxSeccomp) -> HashSet<String> {
        profile
            .syscalls()
            .iter()
            .flatten()
            .filter(|s| s.action() == LinuxSeccompAction::ScmpActAllow && s.args().is_none())
            .flat_map(|s| s.names().iter().cloned())
            .collect()
    }

    #[test]
    fn unlisted_syscalls_fail_with_eperm() {
        let profile = default_profile(&HashSet::new(), "x86_64").unwrap();
        assert_eq!(profile.default_action(), LinuxSeccompAction::ScmpActErrno);
        assert_eq!(profile.default_errno_ret(), Some(libc::EPERM as u32));
        let allowed = allowed_names(&profile);
        for refused in [
            "mount",
            "unshare",
            "setns",
            "kexec_load",
            "init_module",
            "keyctl",
            "add_key",
        ] {
            assert!(!allowed.contains(refused), "{refused} must be refused");
        }
        for needed in ["read", "execve", "arch_prctl", "wait4", "ptrace"] {
            assert!(allowed.contains(needed), "{needed} must be allowed");
        }
    }

    #[test]
    fn capability_gated_syscalls_follow_the_capabilities() {
        let chroot_only =
            default_profile(&HashSet::from([Capability::SysChroot]), "x86_64").unwrap();
        assert!(allowed_names(&chroot_only).contains("chroot"));
        assert!(!allowed_names(&chroot_only).contains("sethostname"));
        let admin = default_profile(&HashSet::from([Capability::SysAdmin]), "x86_64").unwrap();
        assert!(allowed_names(&admin).contains("mount"));
        assert!(allowed_names(&admin).contains("clone3"));
    }

    #[test]
    fn clone_of_namespaces_is_refused_without_sys_admin() {
        let profile = default_profile(&HashSet::new(), "aarch64").unwrap();
        let syscalls = profile.syscalls().clone().unwrap_or_default();
        let clone = syscalls
            .iter()
            .find(|s| s.names() == &["clone".to_owned()])
            .expect("a clone rule");
        let arg = &clone.args().clone().expect("clone is conditional")[0];
        assert_eq!(arg.op(), LinuxSeccompOperator::ScmpCmpMaskedEq);
        assert_eq!(
            (arg.value(), arg.value_two()),
            (CLONE_NAMESPACE_FLAGS, Some(0))
        );
        let clone3 = syscalls
            .iter()
            .find(|s| s.names() == &["clone3".to_owned()])
            .expect("clone3");
        assert_eq!(clone3.errno_ret(), Some(libc::ENOSYS as u32));
        assert!(!allowed_names(&profile).contains("arch_prctl"));
        assert!(allowed_names(&profile).contains("set_tls"));
        assert_eq!(
            profile.architectures().clone().unwrap(),
            [Arch::ScmpArchAarch64, Arch::ScmpArchArm]
        );
    }
}
