//! N hosts as network namespaces on a private bridge, each running one process, and the faults
//! a cluster test injects into them. Needs root and iproute2 (`ip`), iptables for partitions.
//!
//! One [`Hosts`] owns, under a tag `bh<pid>x<counter>` unique on the machine:
//! - a bridge `<tag>b` with address `10.210.X.254/24`, X chosen so the host has no route into
//!   `10.210.X.0/24` yet (picked under a lock file, so parallel test processes do not collide);
//! - per host `i` (0-based), a namespace `<tag>-<i>` whose `eth0` (`10.210.X.<i+1>`) is a veth
//!   to the bridge (host side `<tag>v<i>`);
//! - a directory `/tmp/berth-harness/<tag>/` for the processes' data and logs, a tmpfs of its
//!   own: the machines' disks are small and shared, members preallocate their logs, and a
//!   kill -9 loses nothing the page cache holds, so RAM is as faithful as disk for these faults
//!   (and not for power loss, which the harness does not simulate).
//!
//! Dropping it (also while a test panics) kills the processes and removes the namespaces, the
//! bridge and the directory. [`gc_stale`] removes what a killed test process left, by tag,
//! when the pid in the tag no longer runs.
//!
//! Faults: [`Hosts::kill9`] and [`Hosts::restart`], [`Hosts::pause`] / [`Hosts::resume`]
//! (SIGSTOP / SIGCONT), [`Hosts::partition`] / [`Hosts::isolate`] / [`Hosts::heal`] (iptables
//! DROP rules inside the namespaces, between host addresses only: the test's clients on the
//! bridge address still reach every host), [`Hosts::netem`] (`tc qdisc … netem`, reported as
//! [`HostsError::NetemUnsupported`] where the kernel lacks `sch_netem`), [`Hosts::lossy`]
//! (random loss on a host's link through iptables' `statistic` match, which needs no
//! `sch_netem`; healed with the partitions), [`Hosts::slow_link`] (a `tbf` rate limit: delay
//! that grows with the queue). [`Hosts::slow_disk`]
//! delays every fsync/fdatasync of a host's process through strace's fault injection (this
//! kernel has no device-mapper `delay` target; ADR 0701 weighs the options).

use std::fs::{self, File, OpenOptions};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Where every harness keeps its data directories.
pub const ROOT: &str = "/tmp/berth-harness";
/// The tag prefix of every name a harness creates.
const PREFIX: &str = "bh";
/// The size limit of a harness's tmpfs: an etcd member preallocates 64 MiB of WAL, and the
/// scenarios write a few MiB more.
const TMPFS_SIZE: &str = "1g";
/// The most hosts one harness makes (host addresses are .1 to .N, the bridge is .254).
pub const MAX_HOSTS: usize = 9;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// What went wrong while building or driving the hosts.
#[derive(Debug, thiserror::Error)]
pub enum HostsError {
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{what}: {source}")]
    Io { what: String, source: io::Error },
    #[error("no free 10.210.X.0/24 subnet on this machine")]
    NoSubnet,
    #[error("{count} hosts asked for; between 1 and {MAX_HOSTS} are supported")]
    BadCount { count: usize },
    #[error("host {index} does not exist (there are {count})")]
    NoSuchHost { index: usize, count: usize },
    #[error("host {index} has no running process")]
    NotRunning { index: usize },
    #[error("host {index} already runs a process")]
    AlreadyRunning { index: usize },
    #[error("host {index} was never started, so it cannot be restarted")]
    NeverStarted { index: usize },
    #[error("tc netem is not supported by this kernel (sch_netem missing): {detail}")]
    NetemUnsupported { detail: String },
    #[error("a packet loss of {loss_percent}% asked for; it is a percentage from 0 to 100")]
    BadLoss { loss_percent: f64 },
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> HostsError {
    let what = what.into();
    move |source| HostsError::Io { what, source }
}

/// Runs a command to completion; its stderr is the error.
fn run(program: &str, args: &[&str]) -> Result<String, HostsError> {
    let command = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(io_err(command.clone()))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(HostsError::Command {
            command,
            detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        })
    }
}

/// N hosts on one bridge. See the module doc.
#[derive(Debug)]
pub struct Hosts {
    tag: String,
    subnet: u8,
    count: usize,
    dir: PathBuf,
    procs: Vec<Option<Child>>,
    /// The strace that slows host i's disk syncs, if any.
    tracers: Vec<Option<Child>>,
    argv: Vec<Option<Vec<String>>>,
}

impl Hosts {
    /// Makes `count` hosts (namespaces up, addressed, reachable from the caller through the
    /// bridge), after removing what earlier crashed runs left.
    pub fn new(count: usize) -> Result<Self, HostsError> {
        if count == 0 || count > MAX_HOSTS {
            return Err(HostsError::BadCount { count });
        }
        gc_stale();
        let tag = format!(
            "{PREFIX}{}x{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let dir = Path::new(ROOT).join(&tag);
        fs::create_dir_all(&dir).map_err(io_err(format!("create {}", dir.display())))?;
        let mut hosts = Hosts {
            tag,
            subnet: 0,
            count,
            dir,
            procs: (0..count).map(|_| None).collect(),
            tracers: (0..count).map(|_| None).collect(),
            argv: vec![None; count],
        };
        // From here on, Drop removes whatever was made.
        let dir = hosts.dir.display().to_string();
        run(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={TMPFS_SIZE},mode=0700"),
                "tmpfs",
                &dir,
            ],
        )?;
        hosts.subnet = hosts.make_bridge()?;
        for i in 0..count {
            hosts.make_host(i)?;
        }
        Ok(hosts)
    }

    fn bridge(&self) -> String {
        format!("{}b", self.tag)
    }

    /// The network namespace of host `i`.
    pub fn netns(&self, i: usize) -> String {
        format!("{}-{i}", self.tag)
    }

    /// The address of host `i`.
    pub fn addr(&self, i: usize) -> Ipv4Addr {
        Ipv4Addr::new(10, 210, self.subnet, u8::try_from(i + 1).unwrap_or(u8::MAX))
    }

    /// How many hosts there are.
    pub fn count(&self) -> usize {
        self.count
    }

    /// This harness's directory; host `i`'s data goes in [`Hosts::data_dir`].
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A directory for host `i`'s data (made on first use, kept across restarts).
    pub fn data_dir(&self, i: usize) -> PathBuf {
        self.dir.join(format!("host{i}"))
    }

    /// The log file that host `i`'s process writes its stdout and stderr to.
    pub fn log_path(&self, i: usize) -> PathBuf {
        self.dir.join(format!("host{i}.log"))
    }

    fn make_bridge(&self) -> Result<u8, HostsError> {
        let lock_path = Path::new(ROOT).join("subnet.lock");
        let lock =
            File::create(&lock_path).map_err(io_err(format!("create {}", lock_path.display())))?;
        // SAFETY: flock on a file descriptor this function owns; it is released when `lock` closes.
        if unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) } != 0 {
            return Err(io_err("flock subnet.lock")(io::Error::last_os_error()));
        }
        let routes = run("ip", &["-4", "route", "show", "table", "all"])?;
        let addrs = run("ip", &["-4", "-o", "addr", "show"])?;
        let start = std::process::id() % 200;
        let subnet = (0..200u32)
            .map(|k| u8::try_from((start + k) % 200 + 20).unwrap_or(20))
            .find(|x| {
                let net = format!("10.210.{x}.");
                !routes.contains(&net) && !addrs.contains(&net)
            })
            .ok_or(HostsError::NoSubnet)?;
        let bridge = self.bridge();
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run(
            "ip",
            &[
                "addr",
                "add",
                &format!("10.210.{subnet}.254/24"),
                "dev",
                &bridge,
            ],
        )?;
        run("ip", &["link", "set", &bridge, "up"])?;
        Ok(subnet)
    }

    fn make_host(&self, i: usize) -> Result<(), HostsError> {
        let ns = self.netns(i);
        let veth = format!("{}v{i}", self.tag);
        run("ip", &["netns", "add", &ns])?;
        run(
            "ip",
            &[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &veth, "master", &self.bridge(), "up"],
        )?;
        run(
            "ip",
            &[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{}/24", self.addr(i)),
                "dev",
                "eth0",
            ],
        )?;
        run("ip", &["-n", &ns, "link", "set", "eth0", "up"])?;
        run("ip", &["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(())
    }

    fn check(&self, i: usize) -> Result<(), HostsError> {
        if i < self.count {
            Ok(())
        } else {
            Err(HostsError::NoSuchHost {
                index: i,
                count: self.count,
            })
        }
    }

    /// Starts `argv` inside host `i`'s namespace; output is appended to [`Hosts::log_path`].
    /// The process gets SIGKILL if the thread that started it dies, so start processes from a
    /// thread that outlives them (a test's own thread).
    pub fn start(&mut self, i: usize, argv: &[String]) -> Result<(), HostsError> {
        self.check(i)?;
        if self.procs[i].is_some() {
            return Err(HostsError::AlreadyRunning { index: i });
        }
        fs::create_dir_all(self.data_dir(i)).map_err(io_err("create data dir"))?;
        let log_path = self.log_path(i);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err(format!("open {}", log_path.display())))?;
        let err_log = log.try_clone().map_err(io_err("dup log"))?;
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", &self.netns(i)])
            .args(argv)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err_log);
        die_with_parent(&mut command);
        let child = command
            .spawn()
            .map_err(io_err(format!("start {argv:?} in {}", self.netns(i))))?;
        self.procs[i] = Some(child);
        self.argv[i] = Some(argv.to_vec());
        Ok(())
    }

    /// How host `i`'s process ended, if it ended by itself (not killed by the harness).
    pub fn exited(&mut self, i: usize) -> Option<std::process::ExitStatus> {
        self.procs.get_mut(i)?.as_mut()?.try_wait().ok().flatten()
    }

    /// The pid of host `i`'s process (`ip netns exec` execs, so it is the member's own), if
    /// it has one that the harness has not killed.
    pub fn pid(&self, i: usize) -> Option<u32> {
        Some(self.procs.get(i)?.as_ref()?.id())
    }

    /// Whether host `i` has a process that has not been killed by the harness.
    pub fn is_running(&self, i: usize) -> bool {
        self.procs.get(i).is_some_and(Option::is_some)
    }

    /// Sends SIGKILL to host `i`'s process and reaps it.
    pub fn kill9(&mut self, i: usize) -> Result<(), HostsError> {
        self.check(i)?;
        let mut child = self.procs[i]
            .take()
            .ok_or(HostsError::NotRunning { index: i })?;
        // An already dead child is fine: kill -9 then has nothing to do.
        let _ = child.kill();
        child.wait().map_err(io_err("wait for killed process"))?;
        self.clear_slow_disk(i)
    }

    /// Starts host `i`'s last command again (after [`Hosts::kill9`]), on the same data.
    pub fn restart(&mut self, i: usize) -> Result<(), HostsError> {
        self.check(i)?;
        let argv = self.argv[i]
            .clone()
            .ok_or(HostsError::NeverStarted { index: i })?;
        self.start(i, &argv)
    }

    fn signal(&self, i: usize, signal: libc::c_int) -> Result<(), HostsError> {
        self.check(i)?;
        let child = self.procs[i]
            .as_ref()
            .ok_or(HostsError::NotRunning { index: i })?;
        let pid =
            libc::pid_t::try_from(child.id()).map_err(|_| HostsError::NotRunning { index: i })?;
        // SAFETY: kill(2) on our own, not yet reaped, child.
        if unsafe { libc::kill(pid, signal) } != 0 {
            return Err(io_err(format!("signal {signal} to host {i}"))(
                io::Error::last_os_error(),
            ));
        }
        Ok(())
    }

    /// Stops host `i`'s process (SIGSTOP): it holds its connections but answers nothing.
    pub fn pause(&mut self, i: usize) -> Result<(), HostsError> {
        self.signal(i, libc::SIGSTOP)
    }

    /// Continues a paused process (SIGCONT).
    pub fn resume(&mut self, i: usize) -> Result<(), HostsError> {
        self.signal(i, libc::SIGCONT)
    }

    fn iptables(&self, i: usize, args: &[&str]) -> Result<(), HostsError> {
        let ns = self.netns(i);
        let mut full = vec!["netns", "exec", &ns, "iptables", "-w"];
        full.extend_from_slice(args);
        run("ip", &full).map(drop)
    }

    /// Splits the hosts into groups that cannot reach each other; a host in no group is alone.
    /// Traffic between a host and the bridge address (the test's clients) is untouched.
    /// Replaces any earlier partition.
    pub fn partition(&mut self, groups: &[&[usize]]) -> Result<(), HostsError> {
        for group in groups {
            for &i in *group {
                self.check(i)?;
            }
        }
        self.heal()?;
        let group_of = |i: usize| groups.iter().position(|g| g.contains(&i));
        for i in 0..self.count {
            for j in 0..self.count {
                let together = i == j || (group_of(i).is_some() && group_of(i) == group_of(j));
                if together {
                    continue;
                }
                let peer = self.addr(j).to_string();
                self.iptables(i, &["-A", "INPUT", "-s", &peer, "-j", "DROP"])?;
                self.iptables(i, &["-A", "OUTPUT", "-d", &peer, "-j", "DROP"])?;
            }
        }
        Ok(())
    }

    /// Cuts host `i` off from every other host.
    pub fn isolate(&mut self, i: usize) -> Result<(), HostsError> {
        self.check(i)?;
        let others: Vec<usize> = (0..self.count).filter(|&j| j != i).collect();
        self.partition(&[&others])
    }

    /// Removes every partition.
    pub fn heal(&mut self) -> Result<(), HostsError> {
        for i in 0..self.count {
            self.iptables(i, &["-F", "INPUT"])?;
            self.iptables(i, &["-F", "OUTPUT"])?;
        }
        Ok(())
    }

    /// Makes host `i` drop `loss_percent` of the packets it sends and of those it receives on
    /// its link, at random (iptables' `statistic` match): the loss half of
    /// [`Hosts::netem`], which works where the kernel has no `sch_netem`. Adds to any partition;
    /// [`Hosts::heal`] removes it with the partitions.
    pub fn lossy(&mut self, i: usize, loss_percent: f64) -> Result<(), HostsError> {
        self.check(i)?;
        if !(0.0..=100.0).contains(&loss_percent) {
            return Err(HostsError::BadLoss { loss_percent });
        }
        let probability = format!("{:.4}", loss_percent / 100.0);
        for (chain, way) in [("INPUT", "-i"), ("OUTPUT", "-o")] {
            self.iptables(
                i,
                &[
                    "-A",
                    chain,
                    way,
                    "eth0",
                    "-m",
                    "statistic",
                    "--mode",
                    "random",
                    "--probability",
                    &probability,
                    "-j",
                    "DROP",
                ],
            )?;
        }
        Ok(())
    }

    /// Makes host `i`'s link lose `loss_percent` of its packets and delay each by `delay`;
    /// `clear_qdisc` undoes it.
    pub fn netem(
        &mut self,
        i: usize,
        loss_percent: f64,
        delay: Duration,
    ) -> Result<(), HostsError> {
        self.check(i)?;
        let ns = self.netns(i);
        let delay = format!("{}ms", delay.as_millis());
        let loss = format!("{loss_percent}%");
        let args = [
            "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "netem",
            "delay", &delay, "loss", &loss,
        ];
        match run("ip", &args) {
            Err(HostsError::Command { detail, .. })
                if detail.contains("qdisc kind is unknown") || detail.contains("Unknown qdisc") =>
            {
                Err(HostsError::NetemUnsupported { detail })
            }
            other => other.map(drop),
        }
    }

    /// Makes every `fsync`/`fdatasync` of host `i`'s process return `delay` late: strace
    /// attaches to it and injects the delay (strace's `inject=…:delay_exit`). strace stops the
    /// process at each of its system calls, so the member is also slower overall; that is the
    /// price of a slow disk without device-mapper (ADR 0701). strace's trace of the delayed
    /// calls goes to [`Hosts::slow_disk_trace`]. [`Hosts::clear_slow_disk`] (also done by
    /// [`Hosts::kill9`]) detaches it.
    pub fn slow_disk(&mut self, i: usize, delay: Duration) -> Result<(), HostsError> {
        self.check(i)?;
        self.clear_slow_disk(i)?;
        let pid = self.procs[i]
            .as_ref()
            .ok_or(HostsError::NotRunning { index: i })?
            .id()
            .to_string();
        let inject = format!("inject=fsync,fdatasync:delay_exit={}", delay.as_micros());
        let trace = self.slow_disk_trace(i);
        let mut command = Command::new("strace");
        command
            .args([
                "-f",
                "-qq",
                "-p",
                &pid,
                "-e",
                "trace=fsync,fdatasync",
                "-e",
                &inject,
                "-o",
            ])
            .arg(&trace)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        die_with_parent(&mut command);
        let tracer = command.spawn().map_err(io_err("start strace"))?;
        self.tracers[i] = Some(tracer);
        Ok(())
    }

    /// Where the strace of [`Hosts::slow_disk`] writes the calls it delayed (`(DELAYED)`).
    pub fn slow_disk_trace(&self, i: usize) -> PathBuf {
        self.dir.join(format!("host{i}.strace"))
    }

    /// Detaches the slow-disk strace from host `i`, if any; the process goes on at full speed.
    pub fn clear_slow_disk(&mut self, i: usize) -> Result<(), HostsError> {
        self.check(i)?;
        if let Some(mut tracer) = self.tracers[i].take() {
            // The kernel detaches the tracee when its tracer dies.
            let _ = tracer.kill();
            tracer.wait().map_err(io_err("wait for strace"))?;
        }
        Ok(())
    }

    /// Limits what host `i` sends on its link to `kbit` kilobits a second (a `tbf` qdisc, which
    /// this kernel has where it lacks netem), queueing up to half a second of it: a slow link,
    /// whose delay grows with what is queued behind each packet. [`Hosts::clear_qdisc`] removes
    /// it.
    pub fn slow_link(&mut self, i: usize, kbit: u32) -> Result<(), HostsError> {
        self.check(i)?;
        let ns = self.netns(i);
        let rate = format!("{kbit}kbit");
        run(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
                "rate", &rate, "burst", "4kb", "latency", "500ms",
            ],
        )
        .map(drop)
    }

    /// Removes host `i`'s link shaping, netem or slow link, if any (its root qdisc).
    pub fn clear_qdisc(&mut self, i: usize) -> Result<(), HostsError> {
        self.check(i)?;
        let ns = self.netns(i);
        match run(
            "ip",
            &[
                "netns", "exec", &ns, "tc", "qdisc", "del", "dev", "eth0", "root",
            ],
        ) {
            Err(HostsError::Command { .. }) | Ok(_) => Ok(()),
            Err(other) => Err(other),
        }
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for tracer in self.tracers.iter_mut().filter_map(Option::take) {
            let mut tracer = tracer;
            let _ = tracer.kill();
            let _ = tracer.wait();
        }
        for child in self.procs.iter_mut().filter_map(Option::take) {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        for i in 0..self.count {
            remove_netns(&self.netns(i));
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
        remove_data(&self.dir);
    }
}

/// Makes the command's process get SIGKILL when the thread that spawned it dies.
fn die_with_parent(command: &mut Command) {
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Unmounts a harness's tmpfs (lazily: a process being reaped may still hold a file) and
/// removes its directory.
fn remove_data(dir: &Path) {
    let _ = run("umount", &["-l", &dir.display().to_string()]);
    let _ = fs::remove_dir_all(dir);
}

/// Kills what still runs in a namespace, then deletes it.
fn remove_netns(ns: &str) {
    if let Ok(pids) = run("ip", &["netns", "pids", ns]) {
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<libc::pid_t>().ok())
        {
            // SAFETY: kill(2); the pid was just listed as running inside our namespace.
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
    }
    let _ = run("ip", &["netns", "del", ns]);
}

/// The pid in a tag `bh<pid>x<n>…`, if `name` is one.
fn tag_pid(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, after) = rest.split_once('x')?;
    after
        .starts_with(|c: char| c.is_ascii_digit())
        .then_some(())?;
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) with signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

/// Removes namespaces, links and directories of harnesses whose process is gone.
pub fn gc_stale() {
    let stale = |name: &str| tag_pid(name).is_some_and(|pid| !alive(pid));
    if let Ok(list) = run("ip", &["netns", "list"]) {
        for ns in list
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| stale(n))
        {
            remove_netns(ns);
        }
    }
    if let Ok(links) = run("ip", &["-o", "link", "show"]) {
        for link in links
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|n| n.split('@').next().unwrap_or(n))
        {
            if stale(link) {
                let _ = run("ip", &["link", "del", link]);
            }
        }
    }
    if let Ok(entries) = fs::read_dir(ROOT) {
        for entry in entries.flatten() {
            if entry.file_name().to_str().is_some_and(stale) {
                remove_data(&entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_carry_the_pid_of_their_owner() {
        assert_eq!(tag_pid("bh1234x0"), Some(1234));
        assert_eq!(tag_pid("bh1234x0-2"), Some(1234));
        assert_eq!(tag_pid("bh1234x10v2"), Some(1234));
        assert_eq!(tag_pid("bh1234"), None);
        assert_eq!(tag_pid("bhx1"), None);
        assert_eq!(tag_pid("bt3"), None);
    }
}
