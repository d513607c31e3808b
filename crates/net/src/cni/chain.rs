//! Running a conflist: the runtime's side of the CNI specification.

use serde_json::{Map, Value, json};

use super::{CniError, CniExec, Command, Invocation};
use crate::PublishedPort;

/// What the runtime passes to plugins that declare a capability in the conflist.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeConfig {
    /// `portMappings` (the portmap plugin).
    pub port_mappings: Vec<PublishedPort>,
    /// `ips`, CIDR strings such as `10.88.0.5/16` (host-local, through the bridge plugin).
    pub ips: Vec<String>,
}

impl RuntimeConfig {
    /// The `runtimeConfig` object for a plugin with `capabilities`: only the keys it
    /// declares, and only those the runtime has a value for.
    fn for_capabilities(&self, capabilities: &Value) -> Map<String, Value> {
        let mut out = Map::new();
        let declared = |key: &str| capabilities[key] == Value::Bool(true);
        if declared("portMappings") && !self.port_mappings.is_empty() {
            let mappings = self
                .port_mappings
                .iter()
                .map(|p| {
                    let mut m = json!({
                        "hostPort": p.host_port,
                        "containerPort": p.container_port,
                        "protocol": p.protocol.to_string(),
                    });
                    if let Some(ip) = p.host_ip {
                        m["hostIP"] = json!(ip.to_string());
                    }
                    m
                })
                .collect();
            out.insert("portMappings".to_owned(), Value::Array(mappings));
        }
        if declared("ips") && !self.ips.is_empty() {
            out.insert("ips".to_owned(), json!(self.ips));
        }
        out
    }
}

/// Runs the plugins of a conflist through a [`CniExec`].
#[derive(Debug, Clone)]
pub struct Chain<E> {
    exec: E,
}

impl<E: CniExec> Chain<E> {
    pub fn new(exec: E) -> Self {
        Self { exec }
    }

    /// The executor, for invocations outside a conflist (the loopback plugin).
    pub fn exec(&self) -> &E {
        &self.exec
    }

    /// ADD: every plugin in order, each given the previous plugin's result; returns the
    /// last result. When a plugin fails, the plugins are DEL'd in reverse (the spec asks
    /// the runtime to clean up after a failed ADD) and the ADD error is returned.
    pub fn add(
        &self,
        conflist: &Value,
        inv: &Invocation,
        rt: &RuntimeConfig,
    ) -> Result<Value, CniError> {
        let plugins = plugins(conflist)?;
        let mut prev: Option<Value> = None;
        for plugin in plugins {
            let (kind, config) = plugin_config(conflist, plugin, prev.as_ref(), rt)?;
            let added = self
                .exec
                .exec(&kind, Command::Add, inv, &config)
                .and_then(|out| parse_result(&kind, &out));
            match added {
                Ok(result) => prev = Some(result),
                Err(e) => {
                    if let Err(cleanup) = self.del(conflist, inv, rt, prev.as_ref()) {
                        tracing::warn!(error = %cleanup, "cleaning up after a failed CNI ADD");
                    }
                    return Err(e);
                }
            }
        }
        prev.ok_or_else(|| CniError::BadConfig("the conflist has no plugins".to_owned()))
    }

    /// DEL: every plugin in reverse order, each given `prev` (the ADD result, when known).
    /// Every plugin is called even after one fails; the first error is returned.
    pub fn del(
        &self,
        conflist: &Value,
        inv: &Invocation,
        rt: &RuntimeConfig,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let mut first_error = None;
        for plugin in plugins(conflist)?.iter().rev() {
            let (kind, config) = plugin_config(conflist, plugin, prev, rt)?;
            if let Err(e) = self.exec.exec(&kind, Command::Del, inv, &config) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    /// DEL of every plugin at once, each on its own thread, each given `prev`: for chains
    /// whose plugins keep no state the others' DEL needs (berth's own `berth-bridge` and
    /// `berth-nat`: the veth and lease, and the nftables rules keyed by container id), so
    /// their kernel waits overlap. Every plugin is called; the first error (in chain order,
    /// reversed) is returned.
    pub fn del_concurrently(
        &self,
        conflist: &Value,
        inv: &Invocation,
        rt: &RuntimeConfig,
        prev: Option<&Value>,
    ) -> Result<(), CniError> {
        let configs = plugins(conflist)?
            .iter()
            .rev()
            .map(|plugin| plugin_config(conflist, plugin, prev, rt))
            .collect::<Result<Vec<_>, _>>()?;
        let answers: Vec<Result<Vec<u8>, CniError>> = std::thread::scope(|scope| {
            let handles: Vec<_> = configs
                .iter()
                .map(|(kind, config)| {
                    scope.spawn(move || self.exec.exec(kind, Command::Del, inv, config))
                })
                .collect();
            handles
                .into_iter()
                .zip(&configs)
                .map(|(handle, (kind, _))| {
                    handle.join().unwrap_or_else(|_| {
                        Err(CniError::Spawn {
                            plugin: kind.clone(),
                            command: Command::Del,
                            reason: "its thread panicked".to_owned(),
                        })
                    })
                })
                .collect()
        });
        answers
            .into_iter()
            .find_map(Result::err)
            .map_or(Ok(()), Err)
    }

    /// CHECK: every plugin in order, each given the ADD result; the first failure is returned.
    pub fn check(
        &self,
        conflist: &Value,
        inv: &Invocation,
        rt: &RuntimeConfig,
        prev: &Value,
    ) -> Result<(), CniError> {
        for plugin in plugins(conflist)? {
            let (kind, config) = plugin_config(conflist, plugin, Some(prev), rt)?;
            self.exec.exec(&kind, Command::Check, inv, &config)?;
        }
        Ok(())
    }
}

fn plugins(conflist: &Value) -> Result<&Vec<Value>, CniError> {
    conflist["plugins"]
        .as_array()
        .filter(|p| !p.is_empty())
        .ok_or_else(|| CniError::BadConfig("no \"plugins\" list".to_owned()))
}

/// One plugin's stdin: its own object plus the list's `name` and `cniVersion`, the
/// `prevResult` and the `runtimeConfig` for its declared capabilities.
fn plugin_config(
    conflist: &Value,
    plugin: &Value,
    prev: Option<&Value>,
    rt: &RuntimeConfig,
) -> Result<(String, Vec<u8>), CniError> {
    let mut config = plugin
        .as_object()
        .cloned()
        .ok_or_else(|| CniError::BadConfig("a plugin entry is not an object".to_owned()))?;
    let kind = config
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| CniError::BadConfig("a plugin has no \"type\"".to_owned()))?
        .to_owned();
    config.insert("name".to_owned(), conflist["name"].clone());
    config.insert("cniVersion".to_owned(), conflist["cniVersion"].clone());
    if let Some(prev) = prev {
        config.insert("prevResult".to_owned(), prev.clone());
    }
    let runtime = rt.for_capabilities(config.get("capabilities").unwrap_or(&Value::Null));
    if !runtime.is_empty() {
        config.insert("runtimeConfig".to_owned(), Value::Object(runtime));
    }
    let bytes = serde_json::to_vec(&config).map_err(|e| CniError::BadConfig(e.to_string()))?;
    Ok((kind, bytes))
}

fn parse_result(plugin: &str, out: &[u8]) -> Result<Value, CniError> {
    let bad = |reason: String| CniError::BadResult {
        plugin: plugin.to_owned(),
        command: Command::Add,
        reason,
    };
    let result: Value = serde_json::from_slice(out).map_err(|e| bad(e.to_string()))?;
    if !result.is_object() || result.get("cniVersion").is_none() {
        return Err(bad("no cniVersion".to_owned()));
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::Protocol;
    use crate::cni::FakeExec;

    fn conflist() -> Value {
        json!({
            "cniVersion": "1.0.0",
            "name": "n",
            "plugins": [
                {"type": "bridge", "capabilities": {"ips": true}},
                {"type": "portmap", "capabilities": {"portMappings": true}},
                {"type": "firewall"},
            ],
        })
    }

    fn inv() -> Invocation {
        Invocation {
            container_id: "c1".to_owned(),
            netns: Some("/run/netns/c1".into()),
            ifname: "eth0".to_owned(),
            args: String::new(),
        }
    }

    fn rt() -> RuntimeConfig {
        RuntimeConfig {
            port_mappings: vec![PublishedPort {
                host_ip: Some(Ipv4Addr::LOCALHOST),
                host_port: 8080,
                container_port: 80,
                protocol: Protocol::Tcp,
            }],
            ips: vec!["10.0.0.9/24".to_owned()],
        }
    }

    #[test]
    fn add_chains_prev_results_and_gives_runtime_config_by_capability() {
        let fake = FakeExec::default();
        let chain = Chain::new(fake.clone());
        let result = chain.add(&conflist(), &inv(), &rt()).expect("add");
        let calls = fake.calls();
        let order: Vec<_> = calls
            .iter()
            .map(|c| (c.plugin.as_str(), c.command))
            .collect();
        assert_eq!(
            order,
            [
                ("bridge", Command::Add),
                ("portmap", Command::Add),
                ("firewall", Command::Add)
            ]
        );
        assert!(calls[0].config.get("prevResult").is_none());
        assert_eq!(
            calls[0].config["runtimeConfig"],
            json!({"ips": ["10.0.0.9/24"]})
        );
        assert_eq!(calls[0].config["name"], "n");
        assert_eq!(calls[0].config["cniVersion"], "1.0.0");
        assert_eq!(calls[1].config["prevResult"], calls[0].result);
        assert_eq!(
            calls[1].config["runtimeConfig"],
            json!({"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1"}]})
        );
        assert!(calls[2].config.get("runtimeConfig").is_none());
        assert_eq!(calls[2].config["prevResult"], calls[1].result);
        assert_eq!(result, calls[2].result);
        assert_eq!(calls[0].invocation, inv());
    }

    #[test]
    fn del_runs_in_reverse_with_the_add_result() {
        let fake = FakeExec::default();
        let chain = Chain::new(fake.clone());
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        chain
            .del(&conflist(), &inv(), &rt(), Some(&prev))
            .expect("del");
        let calls = fake.calls();
        let order: Vec<_> = calls.iter().map(|c| c.plugin.as_str()).collect();
        assert_eq!(order, ["firewall", "portmap", "bridge"]);
        assert!(
            calls
                .iter()
                .all(|c| c.command == Command::Del && c.config["prevResult"] == prev)
        );
    }

    #[test]
    fn a_failed_add_deletes_what_was_added_and_returns_the_add_error() {
        let fake = FakeExec::default();
        fake.fail("portmap", Command::Add, 11, "port busy");
        let chain = Chain::new(fake.clone());
        let err = chain.add(&conflist(), &inv(), &rt()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin portmap ADD failed (code 11): port busy"
        );
        let order: Vec<_> = fake
            .calls()
            .iter()
            .map(|c| (c.plugin.clone(), c.command))
            .collect();
        let want = [
            ("bridge", Command::Add),
            ("portmap", Command::Add),
            ("firewall", Command::Del),
            ("portmap", Command::Del),
            ("bridge", Command::Del),
        ];
        assert_eq!(order, want.map(|(p, c)| (p.to_owned(), c)));
    }

    #[test]
    fn del_goes_on_past_a_failure_and_reports_the_first() {
        let fake = FakeExec::default();
        fake.fail("firewall", Command::Del, 999, "gone");
        let chain = Chain::new(fake.clone());
        let err = chain
            .del(&conflist(), &inv(), &RuntimeConfig::default(), None)
            .unwrap_err();
        assert!(err.to_string().contains("gone"));
        assert_eq!(fake.calls().len(), 3);
    }

    #[test]
    fn concurrent_del_calls_every_plugin_with_the_add_result_and_reports_a_failure() {
        let fake = FakeExec::default();
        fake.fail("portmap", Command::Del, 11, "busy");
        let chain = Chain::new(fake.clone());
        let prev = json!({"cniVersion": "1.0.0", "ips": []});
        let err = chain
            .del_concurrently(&conflist(), &inv(), &rt(), Some(&prev))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "CNI plugin portmap DEL failed (code 11): busy"
        );
        let calls = fake.calls();
        let mut plugins: Vec<_> = calls.iter().map(|c| c.plugin.as_str()).collect();
        plugins.sort_unstable();
        assert_eq!(plugins, ["bridge", "firewall", "portmap"]);
        assert!(
            calls
                .iter()
                .all(|c| c.command == Command::Del && c.config["prevResult"] == prev)
        );
    }

    #[test]
    fn check_runs_in_order_with_the_add_result() {
        let fake = FakeExec::default();
        let chain = Chain::new(fake.clone());
        let prev = json!({"cniVersion": "1.0.0"});
        chain
            .check(&conflist(), &inv(), &rt(), &prev)
            .expect("check");
        let calls = fake.calls();
        assert!(
            calls
                .iter()
                .all(|c| c.command == Command::Check && c.config["prevResult"] == prev)
        );
        assert_eq!(calls[0].plugin, "bridge");
    }

    #[test]
    fn a_result_without_cni_version_is_refused() {
        assert!(matches!(
            parse_result("x", b"{}"),
            Err(CniError::BadResult { .. })
        ));
        assert!(matches!(
            parse_result("x", b"not json"),
            Err(CniError::BadResult { .. })
        ));
        assert!(matches!(
            Chain::new(FakeExec::default()).add(&json!({"plugins": []}), &inv(), &rt()),
            Err(CniError::BadConfig(_))
        ));
    }
}
