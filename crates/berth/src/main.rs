//! The `berth` command: parses arguments, wires the library crates together, and maps their
//! errors to messages and exit codes. Logic lives in the library crates.

mod cmd;

use std::path::PathBuf;
use std::process::ExitCode;

use berth_client::Host;
use clap::{Parser, Subcommand};

/// mimalloc instead of glibc's malloc: the store's request path allocates small buffers on
/// several threads and often frees them on another, which glibc's arenas handle worst
/// (docs/adr/0406-allocator.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// berth: a minimal container OS userland.
#[derive(Debug, Parser)]
#[command(name = "berth", version, about, propagate_version = true)]
struct Cli {
    /// Directory holding berth's persistent state (images, containers, store data).
    #[arg(
        long,
        global = true,
        env = "BERTH_ROOT",
        default_value = "/var/lib/berth"
    )]
    root: PathBuf,

    /// The daemon's socket, for the container commands: unix:///PATH or an absolute path
    /// [default: unix:///run/berth/berth.sock].
    #[arg(
        short = 'H',
        long,
        global = true,
        env = "BERTH_HOST",
        value_name = "HOST"
    )]
    host: Option<Host>,

    /// Log filter, as RUST_LOG (e.g. `info`, `berth_image=debug`).
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "warn")]
    log_level: String,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Manage images: import, pull, list, inspect, remove, prune.
    #[command(subcommand)]
    Image(cmd::image::ImageCommand),
    /// Run the etcd v3-compatible store on its own (etcd's flag names).
    Store(cmd::store::StoreArgs),
    /// Run the host daemon: the container API on <run-dir>/berth.sock and the embedded store.
    Daemon(cmd::daemon::DaemonArgs),
    /// Raw access to the store's keys (etcdctl-like): get, put, del, watch.
    Kv(cmd::kv::KvArgs),
    /// Configuration values shared with containers (`berth run --config`): set, get, ls,
    /// rm, history.
    Config(cmd::config::ConfigArgs),
    /// Services containers are registered in (`berth run --service`): ls, inspect.
    Service(cmd::service::ServiceArgs),
    #[command(flatten)]
    Container(Box<cmd::container::ContainerCommand>),
    /// Supervise one container (run by the daemon).
    #[command(hide = true)]
    Supervise(cmd::supervise::SuperviseArgs),
    /// Run one process in a running container (run by the daemon for exec).
    #[command(hide = true)]
    ExecShim(cmd::exec_shim::ExecShimArgs),
}

/// Global settings every subcommand may need.
#[derive(Debug)]
pub struct Globals {
    pub root: PathBuf,
    /// The daemon the container commands talk to.
    pub host: Host,
}

fn main() -> ExitCode {
    // Called as `berth-nat` or `berth-bridge` (a symlink in a CNI plugin directory): berth's
    // own CNI plugins, speaking the CNI protocol on their environment, stdin and stdout
    // (docs/adr/0502, 0503).
    let arg0 = std::env::args_os()
        .next()
        .and_then(|arg0| PathBuf::from(arg0).file_name().map(|n| n.to_owned()));
    if let Some(name) = arg0 {
        let plugin = if name == berth_net::cni::nat::PLUGIN {
            Some(berth_net::cni::nat::main_from_env as fn() -> i32)
        } else if name == berth_net::cni::bridge::PLUGIN {
            Some(berth_net::cni::bridge::main_from_env as fn() -> i32)
        } else {
            None
        };
        if let Some(plugin) = plugin {
            return ExitCode::from(u8::try_from(plugin()).unwrap_or(1));
        }
    }
    let cli = Cli::parse();
    // The servers keep Rust's ignored SIGPIPE: a write to a connection its peer reset (tokio
    // writes with writev, which has no MSG_NOSIGNAL) must be an EPIPE error, not the end of
    // the store (it killed cluster members mid-scenario, issue #7).
    if !matches!(cli.command, Command::Store(_) | Command::Daemon(_)) {
        restore_sigpipe();
    }
    // The supervisor's and exec shim's stderr become a container process's stderr in the
    // processes libcontainer clones from them, so they log nothing through tracing
    // (docs/adr/0013).
    if !matches!(cli.command, Command::Supervise(_) | Command::ExecShim(_)) {
        let mut filter = tracing_subscriber::EnvFilter::new(&cli.log_level);
        // The store's log engine reports the unwritten end of its current file, found on every
        // start, as a "broken batch" it truncates: expected, so only its errors are shown
        // unless the filter asks for the engine by name (ADR 0407).
        if !cli.log_level.contains("raft_engine")
            && let Ok(quiet) = "raft_engine::file_pipe_log::pipe_builder=error".parse()
        {
            filter = filter.add_directive(quiet);
        }
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let globals = Globals {
        root: cli.root,
        host: cli.host.unwrap_or_default(),
    };
    let result = match cli.command {
        Command::Image(command) => cmd::image::run(&globals, command),
        Command::Store(args) => cmd::store::run(&globals, args),
        Command::Daemon(args) => cmd::daemon::run(&globals, args),
        Command::Kv(args) => cmd::kv::run(args),
        Command::Config(args) => cmd::config::run(args),
        Command::Service(args) => cmd::service::run(args),
        Command::Container(command) => cmd::container::run(&globals, *command),
        Command::Supervise(args) => cmd::supervise::run(&args),
        Command::ExecShim(args) => Ok(cmd::exec_shim::run(&args)),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("berth: error: {}", render(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause whose text an outer message
/// already includes (library errors often show their source in their own message).
pub(crate) fn render(err: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in err.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

/// Rust ignores SIGPIPE, which turns `berth image ls | head` into a "Broken pipe" error.
/// Restore the default so berth ends quietly like other Unix tools.
fn restore_sigpipe() {
    // SAFETY: called at the start of main, before any thread exists; SIG_DFL is a valid
    // disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
