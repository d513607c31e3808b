//! `berth daemon`: the host daemon. It runs the embedded store (unless `--store-endpoints`
//! names an external one) and serves the container API on `<run-dir>/berth.sock`
//! (`berth_agent`, docs/adr/0014) until SIGTERM or SIGINT. Containers keep running when it
//! stops: each has its own supervisor.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, bail};
use berth_agent::network::NetOptions;
use berth_agent::{BerthBinary, Daemon, Paths};
use berth_store::Config;
use clap::Args;

use crate::Globals;
use crate::cmd::store;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Directory of runtime files: the API socket and container runtime state (tmpfs).
    #[arg(long, default_value = "/run/berth")]
    run_dir: PathBuf,
    /// Client URL of the embedded store.
    #[arg(long, default_value = "http://127.0.0.1:2379")]
    store_listen: String,
    /// Directory of the embedded store's data (default: <--root>/store).
    #[arg(long)]
    store_data_dir: Option<PathBuf>,
    /// Comma-separated client URLs of an external etcd-compatible store; when given, the
    /// embedded store is not started.
    #[arg(long, value_delimiter = ',')]
    store_endpoints: Vec<String>,
    /// Subnet of the default network `berth`, used when that network is first created.
    #[arg(long, value_name = "CIDR", default_value = berth_net::DEFAULT_SUBNET)]
    subnet: berth_net::Subnet,
    /// Bridge of the default network, used when that network is first created.
    #[arg(long, value_name = "NAME", default_value = berth_net::DEFAULT_BRIDGE)]
    bridge: String,
    /// Directory of the CNI plugins (bridge, host-local, portmap, firewall, loopback).
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/cni")]
    cni_path: PathBuf,
    /// The embedded store's member name.
    #[arg(long, default_value = "default")]
    store_name: String,
    /// The embedded store's cluster: every member as NAME=PEER_URL (etcd's --initial-cluster).
    #[arg(long)]
    store_initial_cluster: Option<String>,
    /// `new` or `existing` (etcd's --initial-cluster-state).
    #[arg(long, default_value = "new")]
    store_initial_cluster_state: String,
    /// etcd's --initial-cluster-token.
    #[arg(long, default_value = "etcd-cluster")]
    store_initial_cluster_token: String,
    /// Peer URLs the embedded store listens on (etcd's --listen-peer-urls).
    #[arg(long, default_value = "http://127.0.0.1:2380", value_delimiter = ',')]
    store_listen_peer_urls: Vec<String>,
    /// The embedded store's advertised peer URL (etcd's --initial-advertise-peer-urls).
    #[arg(long, value_delimiter = ',')]
    store_initial_advertise_peer_urls: Vec<String>,
    /// etcd's --heartbeat-interval (ms).
    #[arg(long, default_value_t = 100)]
    store_heartbeat_interval: u64,
    /// etcd's --election-timeout (ms).
    #[arg(long, default_value_t = 1000)]
    store_election_timeout: u64,
    /// How long this daemon's service endpoints outlive it: the TTL of its lease in the
    /// store (whole seconds, e.g. 10s; renewed every third of it).
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = parse_ttl)]
    service_ttl: std::time::Duration,
}

/// `--service-ttl`: a duration of whole seconds, at least 1 s (a lease's unit).
fn parse_ttl(s: &str) -> Result<std::time::Duration, String> {
    let ttl = crate::cmd::container::parse_duration(s)?;
    if ttl.as_secs() == 0 || ttl.subsec_nanos() != 0 {
        return Err("a lease TTL is whole seconds, at least 1s".into());
    }
    Ok(ttl)
}

/// The embedded store's configuration, from the daemon's flags.
fn store_config(globals: &Globals, args: &DaemonArgs) -> anyhow::Result<Config> {
    let data_dir = args
        .store_data_dir
        .clone()
        .unwrap_or_else(|| store::default_data_dir(globals));
    let mut config = Config::new(data_dir);
    config.name = args.store_name.clone();
    config.listen_client_urls = vec![args.store_listen.clone()];
    config.advertise_client_urls = vec![args.store_listen.clone()];
    store::PeerArgs {
        initial_cluster: args.store_initial_cluster.clone(),
        initial_cluster_state: args.store_initial_cluster_state.clone(),
        initial_cluster_token: args.store_initial_cluster_token.clone(),
        listen_peer_urls: args.store_listen_peer_urls.clone(),
        initial_advertise_peer_urls: args.store_initial_advertise_peer_urls.clone(),
        heartbeat_interval: args.store_heartbeat_interval,
        election_timeout: args.store_election_timeout,
    }
    .apply(&mut config)
    .context("--store-* flags")?;
    Ok(config)
}

/// An endpoint must be `http://HOST:PORT` or `https://HOST:PORT`.
pub(crate) fn check_endpoint(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"));
    let valid = rest.is_some_and(|rest| {
        let authority = rest.trim_end_matches('/');
        match authority.rsplit_once(':') {
            Some((host, port)) => {
                !host.is_empty() && !authority.contains('/') && port.parse::<u16>().is_ok()
            }
            None => false,
        }
    });
    if !valid {
        bail!("invalid store endpoint URL {url:?}: expected http://HOST:PORT or https://HOST:PORT");
    }
    Ok(())
}

pub fn run(globals: &Globals, args: DaemonArgs) -> anyhow::Result<ExitCode> {
    for url in &args.store_endpoints {
        check_endpoint(url).context("--store-endpoints")?;
    }
    let config_endpoints = if args.store_endpoints.is_empty() {
        vec![args.store_listen.clone()]
    } else {
        args.store_endpoints.clone()
    };
    let embedded_store = args
        .store_endpoints
        .is_empty()
        .then(|| store_config(globals, &args))
        .transpose()?;
    let exe = std::env::current_exe().context("cannot find the berth binary")?;
    let paths = Paths::new(&globals.root, &args.run_dir);
    // A small runtime keeps the idle daemon small; blocking work (container files, control
    // sockets, spawning supervisors) goes to the blocking pool.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(64)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let served = runtime.block_on(async move {
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            store::shutdown_signal().await;
            let _ = stop_tx.send(true);
        });
        let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
            let _ = rx.wait_for(|stop| *stop).await;
        };
        let net = NetOptions {
            default_subnet: args.subnet,
            bridge: args.bridge.clone(),
            cni_path: args.cni_path.clone(),
        };
        let daemon = Daemon::start_with_network(paths, Arc::new(BerthBinary { exe }), net)
            .await
            .context("cannot start the daemon")?;
        daemon
            .share_config(&config_endpoints)
            .await
            .context("cannot share configuration through the store")?;
        daemon
            .register_services(&config_endpoints, args.service_ttl)
            .await
            .context("cannot register services in the store")?;
        let api = async {
            daemon
                .serve(stopped(stop_rx.clone()))
                .await
                .context("API server")
        };
        let store = async {
            match embedded_store {
                Some(config) => {
                    let data_dir = config.data_dir.clone();
                    berth_store::serve(config, stopped(stop_rx.clone()))
                        .await
                        .with_context(|| format!("store in {}", data_dir.display()))
                }
                None => Ok(()),
            }
        };
        tokio::try_join!(api, store).map(drop)
    });
    // A log follower blocked on a client that does not read must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_endpoints_must_be_http_urls_with_a_port() {
        assert!(check_endpoint("http://127.0.0.1:2379").is_ok());
        assert!(check_endpoint("https://etcd.local:2379/").is_ok());
        for bad in [
            "127.0.0.1:2379",
            "http://host",
            "ftp://h:1",
            "http://:1",
            "http://h:x",
        ] {
            assert!(check_endpoint(bad).is_err(), "{bad}");
        }
    }
}
