//! The harness's hosts for scripts: `bench/cluster/run.sh` with `HOSTS=netns` runs its members
//! on them, as the harness's scenarios do.
//!
//! Usage: `hosts COUNT` (as root). Makes COUNT hosts (network namespaces on a private bridge,
//! see [`berth_cluster_harness::hosts::Hosts`]), prints `host I ADDRESS` for each, then reads
//! one command per line on stdin and answers each with one line on stdout:
//!
//! - `start I ARG...`: runs `ARG...` (split on whitespace) inside host I, first reaping a
//!   process there that was killed from outside; answers `pid I PID LOG`, LOG being the file
//!   that gets the process's output (it goes with the hosts at the end).
//! - `kill9 I`: SIGKILL to host I's process; answers `ok`.
//! - `restart I`: host I's last command again, on the same data; answers as `start`.
//!
//! A command that fails answers `error: …` and changes nothing else. At the end of input
//! every process is killed and the hosts are removed.

use std::io::{BufRead, Write};

use berth_cluster_harness::hosts::{Hosts, HostsError};

fn index(word: Option<&str>, hosts: &Hosts) -> Result<usize, String> {
    let word = word.ok_or("a host index is missing")?;
    let i: usize = word
        .parse()
        .map_err(|_| format!("'{word}' is not a host index"))?;
    if i >= hosts.count() {
        return Err(format!(
            "host {i} does not exist: there are {}",
            hosts.count()
        ));
    }
    Ok(i)
}

fn pid_line(hosts: &Hosts, i: usize) -> String {
    hosts.pid(i).map_or_else(
        || format!("error: host {i} has no process"),
        |pid| format!("pid {i} {pid} {}", hosts.log_path(i).display()),
    )
}

fn command(hosts: &mut Hosts, line: &str) -> Result<String, String> {
    let mut words = line.split_whitespace();
    let text = |e: HostsError| e.to_string();
    match words.next() {
        Some("start") => {
            let i = index(words.next(), hosts)?;
            let argv: Vec<String> = words.map(str::to_owned).collect();
            if argv.is_empty() {
                return Err("start needs a command to run".into());
            }
            if hosts.is_running(i) {
                hosts.kill9(i).map_err(text)?;
            }
            hosts.start(i, &argv).map_err(text)?;
            Ok(pid_line(hosts, i))
        }
        Some("kill9") => {
            let i = index(words.next(), hosts)?;
            hosts.kill9(i).map_err(text)?;
            Ok("ok".into())
        }
        Some("restart") => {
            let i = index(words.next(), hosts)?;
            if hosts.is_running(i) {
                hosts.kill9(i).map_err(text)?;
            }
            hosts.restart(i).map_err(text)?;
            Ok(pid_line(hosts, i))
        }
        Some(other) => Err(format!(
            "unknown command '{other}': use start, kill9 or restart"
        )),
        None => Err("empty command".into()),
    }
}

fn main() {
    let count = match std::env::args().nth(1).map(|a| a.parse::<usize>()) {
        Some(Ok(n)) => n,
        _ => {
            eprintln!(
                "usage: hosts COUNT   (then commands on stdin: start I ARG..., kill9 I, restart I)"
            );
            std::process::exit(2);
        }
    };
    let mut hosts = match Hosts::new(count) {
        Ok(h) => h,
        Err(err) => {
            eprintln!("hosts: {err}");
            std::process::exit(1);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut say = |line: String| {
        // A reader that went away ends the session the same way as the end of input.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    };
    for i in 0..count {
        if !say(format!("host {i} {}", hosts.addr(i))) {
            return;
        }
    }
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let answer = command(&mut hosts, &line).unwrap_or_else(|e| format!("error: {e}"));
        if !say(answer) {
            break;
        }
    }
    // Dropping `hosts` kills every process and removes the namespaces, bridge and directory.
}
