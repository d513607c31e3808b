//! The real [`CniExec`]: plugin binaries exec'd from the plugin path.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command as Process, Stdio};
use std::time::{Duration, Instant};

use super::{CniError, CniExec, Command, Invocation};

/// How long one plugin may run before it is killed: the bridge plugin waits for duplicate
/// address detection at most a few seconds, nothing else should take long.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest stdout or stderr kept from a plugin.
const OUTPUT_LIMIT: u64 = 1 << 20;

/// Execs plugins found in the directories of `path`, as `CNI_PATH` tells them to find
/// their own delegates (the bridge plugin runs `host-local` from there). `berth-nat`
/// (berth's own plugin, [`super::nat`]) is run in process wherever it is installed.
#[derive(Debug, Clone)]
pub struct PluginExec {
    path: Vec<PathBuf>,
}

impl Default for PluginExec {
    fn default() -> Self {
        Self::new(vec![PathBuf::from("/usr/lib/cni")])
    }
}

impl PluginExec {
    pub fn new(path: Vec<PathBuf>) -> Self {
        Self { path }
    }

    fn cni_path(&self) -> String {
        self.path
            .iter()
            .map(|p| p.to_string_lossy())
            .collect::<Vec<_>>()
            .join(":")
    }

    fn find(&self, plugin: &str) -> Result<PathBuf, CniError> {
        let not_found = || CniError::NotFound {
            plugin: plugin.to_owned(),
            path: self.cni_path(),
        };
        if plugin.is_empty() || plugin.contains('/') || plugin.starts_with('.') {
            return Err(not_found());
        }
        self.path
            .iter()
            .map(|dir| dir.join(plugin))
            .find(|p| p.is_file())
            .ok_or_else(not_found)
    }
}

impl CniExec for PluginExec {
    fn exec(
        &self,
        plugin: &str,
        command: Command,
        invocation: &Invocation,
        config: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        let started = Instant::now();
        let answer = self.run(plugin, command, invocation, config);
        tracing::debug!(
            plugin,
            %command,
            container = %invocation.container_id,
            ms = started.elapsed().as_secs_f64() * 1000.0,
            ok = answer.is_ok(),
            "CNI plugin ran"
        );
        answer
    }
}

impl PluginExec {
    fn run(
        &self,
        plugin: &str,
        command: Command,
        invocation: &Invocation,
        config: &[u8],
    ) -> Result<Vec<u8>, CniError> {
        // berth's own plugins run in process: the same code the `berth-nat` and
        // `berth-bridge` binaries run, without an exec of the berth binary for every ADD
        // and DEL.
        let own = match plugin {
            super::nat::PLUGIN => Some(super::nat::invoke(
                &command.to_string(),
                invocation,
                config,
                &super::nat::NftExec,
            )),
            super::bridge::PLUGIN => Some(super::bridge::invoke(
                &command.to_string(),
                invocation,
                config,
            )),
            _ => None,
        };
        if let Some(answer) = own {
            return answer.map_err(|f| CniError::Plugin {
                plugin: plugin.to_owned(),
                command,
                code: f.code,
                msg: f.msg,
                details: f.details,
            });
        }
        let binary = self.find(plugin)?;
        let spawn_error = |reason: String| CniError::Spawn {
            plugin: plugin.to_owned(),
            command,
            reason,
        };
        let netns = invocation
            .netns
            .as_ref()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Process::new(&binary)
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("CNI_COMMAND", command.to_string())
            .env("CNI_CONTAINERID", &invocation.container_id)
            .env("CNI_NETNS", netns)
            .env("CNI_IFNAME", &invocation.ifname)
            .env("CNI_ARGS", &invocation.args)
            .env("CNI_PATH", self.cni_path())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| spawn_error(format!("{}: {e}", binary.display())))?;
        // The config is small (a few KiB) and plugins read all of stdin before writing, so
        // writing it whole before reading the outputs cannot deadlock.
        if let Some(mut stdin) = child.stdin.take() {
            stdin
                .write_all(config)
                .map_err(|e| spawn_error(format!("writing its config: {e}")))?;
        }
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let out_reader = std::thread::spawn(move || read_limited(stdout));
        let err_reader = std::thread::spawn(move || read_limited(stderr));
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break status,
                Ok(None) if started.elapsed() > PLUGIN_TIMEOUT => {
                    // Best effort: the plugin may exit between the check and the kill.
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(spawn_error(format!("timed out after {PLUGIN_TIMEOUT:?}")));
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(5)),
                Err(e) => return Err(spawn_error(format!("waiting for it: {e}"))),
            }
        };
        let stdout = out_reader.join().unwrap_or_default();
        let stderr = err_reader.join().unwrap_or_default();
        if status.success() {
            return Ok(stdout);
        }
        Err(plugin_error(
            plugin,
            command,
            &stdout,
            &stderr,
            status.code(),
        ))
    }
}

fn read_limited(pipe: Option<impl Read>) -> Vec<u8> {
    let mut buf = Vec::new();
    if let Some(pipe) = pipe {
        // A read error leaves what was read so far, which is all an error message needs.
        let _ = pipe.take(OUTPUT_LIMIT).read_to_end(&mut buf);
    }
    buf
}

/// A failed plugin's answer: the CNI error object on stdout (`code`, `msg`, `details`), or
/// its stderr and exit status when it wrote none.
pub(crate) fn plugin_error(
    plugin: &str,
    command: Command,
    stdout: &[u8],
    stderr: &[u8],
    exit: Option<i32>,
) -> CniError {
    #[derive(serde::Deserialize)]
    struct ErrorObject {
        code: u64,
        #[serde(default)]
        msg: String,
        #[serde(default)]
        details: String,
    }
    match serde_json::from_slice::<ErrorObject>(stdout) {
        Ok(e) => CniError::Plugin {
            plugin: plugin.to_owned(),
            command,
            code: e.code,
            msg: e.msg,
            details: e.details,
        },
        Err(_) => CniError::Spawn {
            plugin: plugin.to_owned(),
            command,
            reason: format!(
                "exited with {} without a CNI error: {}",
                exit.map_or("a signal".to_owned(), |c| format!("status {c}")),
                String::from_utf8_lossy(if stderr.is_empty() { stdout } else { stderr }).trim()
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cni_error_object_becomes_code_msg_and_details() {
        let out =
            br#"{"cniVersion":"1.0.0","code":7,"msg":"invalid config","details":"no bridge"}"#;
        let err = plugin_error("bridge", Command::Add, out, b"", Some(1));
        assert_eq!(
            err.to_string(),
            "CNI plugin bridge ADD failed (code 7): invalid config: no bridge"
        );
    }

    #[test]
    fn a_plugin_dying_without_an_error_object_shows_its_stderr() {
        let err = plugin_error("bridge", Command::Del, b"", b"panic: boom\n", None);
        assert_eq!(
            err.to_string(),
            "CNI plugin bridge DEL could not run: exited with a signal without a CNI error: panic: boom"
        );
    }

    #[test]
    fn plugins_are_looked_up_on_the_path_only() {
        let exec = PluginExec::new(vec![PathBuf::from("/nonexistent")]);
        for name in ["bridge", "../bin/sh", "", ".hidden"] {
            assert!(
                matches!(exec.find(name), Err(CniError::NotFound { .. })),
                "{name}"
            );
        }
    }
}
