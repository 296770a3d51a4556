//! The `switchyard` binary: parse arguments, install logging, start, wait for a signal, stop.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::config::Config;
use switchyard::listeners::Listeners;
use switchyard::upgrade::{self, Inheritance, Relaunch};
use switchyard::{shutdown, startup};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const USAGE: &str = "\
usage: switchyard [--config PATH] [--pid-file PATH]
       switchyard check [-v] [--config PATH] [LIBRARY...]
       switchyard upgrade --pid-file PATH

  --config PATH   configuration file (default: ./config.toml)
  --pid-file PATH write the process id there once ready (a hot upgrade's new process
                  rewrites it); with upgrade: the running process to signal
  check           check protocol libraries (ABI version, layout, hooks) without starting them;
                  with no LIBRARY, checks every protocol the configuration enables
  upgrade         hot upgrade: send SIGUSR2 to the running switchyard, which starts the binary
                  and plugins now on disk and hands them its listeners (README, \"Upgrading\")
  -v              with check: print abi_stable's full layout report
";

enum Command {
    Run {
        config: PathBuf,
        pid_file: Option<PathBuf>,
    },
    Upgrade {
        pid_file: PathBuf,
    },
    Check {
        config: PathBuf,
        libraries: Vec<PathBuf>,
        verbose: bool,
    },
}

fn parse_args() -> Result<Command, String> {
    let mut args = std::env::args().skip(1);
    let mut config = PathBuf::from("config.toml");
    let mut check = false;
    let mut upgrade = false;
    let mut pid_file = None;
    let mut verbose = false;
    let mut libraries = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--config" | "-c" => {
                config = args
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--config needs a path")?;
            }
            "--pid-file" if !check => {
                pid_file = Some(
                    args.next()
                        .map(PathBuf::from)
                        .ok_or("--pid-file needs a path")?,
                );
            }
            "check" if !check && !upgrade && libraries.is_empty() => check = true,
            "upgrade" if !check && !upgrade => upgrade = true,
            "-v" | "--verbose" if check => verbose = true,
            "-h" | "--help" => return Err(String::new()),
            "-V" | "--version" => {
                println!(
                    "switchyard {} (plugin-api {})",
                    env!("CARGO_PKG_VERSION"),
                    switchyard_plugin_api::INTERFACE_VERSION
                );
                std::process::exit(0);
            }
            other if check && !other.starts_with('-') => libraries.push(PathBuf::from(other)),
            other => return Err(format!("unexpected argument '{other}'")),
        }
    }
    Ok(if check {
        Command::Check {
            config,
            libraries,
            verbose,
        }
    } else if upgrade {
        Command::Upgrade {
            pid_file: pid_file.ok_or("upgrade needs --pid-file PATH (the running process's)")?,
        }
    } else {
        Command::Run { config, pid_file }
    })
}

fn main() -> ExitCode {
    let command = match parse_args() {
        Ok(command) => command,
        Err(message) if message.is_empty() => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("error: {message}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    // The log printer, and the last warnings kept for the admin page.
    tracing_subscriber::registry()
        .with(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr())),
        )
        .with(switchyard::admin::warnings::Recorder)
        .init();

    match command {
        Command::Check {
            config,
            libraries,
            verbose,
        } => check(&config, &libraries, verbose),
        Command::Run { config, pid_file } => run(&config, pid_file.as_deref()),
        Command::Upgrade { pid_file } => match upgrade::signal_running(&pid_file) {
            Ok(pid) => {
                println!(
                    "sent SIGUSR2 to switchyard (process {pid}): it starts the new binary and hands over if it passes its checks; its log says which"
                );
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("error: {error}");
                ExitCode::FAILURE
            }
        },
    }
}

fn check(config: &std::path::Path, libraries: &[PathBuf], verbose: bool) -> ExitCode {
    let report = if libraries.is_empty() {
        match Config::load(config) {
            Ok(config) => startup::check_config(&config),
            Err(error) => {
                eprintln!("{}", startup::StartupError::from(error));
                return ExitCode::FAILURE;
            }
        }
    } else {
        startup::check_libraries(libraries, verbose)
    };
    for line in &report.lines {
        println!("{line}");
    }
    if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn run(config: &std::path::Path, pid_file: Option<&std::path::Path>) -> ExitCode {
    // Read now: once the binary on disk is replaced, `/proc/self/exe` no longer names it.
    let relaunch = match Relaunch::of_this_process() {
        Ok(relaunch) => Some(relaunch),
        Err(error) => {
            tracing::warn!(error = %error, "cannot tell this binary's path: hot upgrades are off");
            None
        }
    };
    let started = match Inheritance::receive() {
        None => Config::load(config)
            .map_err(startup::StartupError::from)
            .and_then(startup::start),
        Some(inheritance) => start_inheriting(config, inheritance),
    };
    let started = match started {
        Ok(started) => started,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    // Signal handlers go in before the ready line: a signal sent as soon as it is printed
    // must start a graceful shutdown, not kill the process.
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The pid file first: once the ready line is out, it names this process.
    let own_pid = upgrade::own_pid();
    if let Some(pid_file) = pid_file {
        if let Err(error) = std::fs::write(pid_file, format!("{own_pid}\n")) {
            tracing::warn!(pid_file = %pid_file.display(), error = %error, "cannot write the pid file");
        }
    }
    // Not `println!`: after a hot upgrade the old process's reader may be gone, and a closed
    // stdout must not kill the new one.
    let mut stdout = std::io::stdout();
    let _ = writeln!(stdout, "{}", started.ready_line());
    let _ = stdout.flush();

    loop {
        match signals.wait() {
            Signal::Stop => {
                shutdown::shutdown(&started.entry);
                break;
            }
            Signal::Upgrade => {
                let Some(relaunch) = &relaunch else {
                    tracing::warn!(
                        "SIGUSR2 received, but this binary's path is unknown: not upgrading"
                    );
                    continue;
                };
                tracing::info!(binary = %relaunch.binary.display(), "SIGUSR2 received: starting the new process");
                match upgrade::start_successor(&started.entry.services.listeners, relaunch) {
                    Ok(successor) => {
                        tracing::info!(
                            new_process = successor.pid,
                            "upgrade: the new process passed its checks; draining, then exiting"
                        );
                        shutdown::hand_over(&started.entry);
                        // Closing our end tells the new process the drain is over; it retries the
                        // store until this process has exited and released it.
                        drop(successor);
                        return ExitCode::SUCCESS;
                    }
                    Err(reason) => tracing::warn!(
                        reason = ?reason,
                        "upgrade failed: the new process did not start; still serving"
                    ),
                }
            }
        }
    }
    if let Some(pid_file) = pid_file {
        // Only ours: after an upgrade it names the new process.
        let ours =
            std::fs::read_to_string(pid_file).is_ok_and(|text| text.trim() == own_pid.to_string());
        if ours {
            let _ = std::fs::remove_file(pid_file);
        }
    }
    ExitCode::SUCCESS
}

/// A hot upgrade's new process: checks the configuration and every library, tells the old
/// process (which keeps serving if this fails), waits until it has drained and exited, then
/// starts on the inherited listeners.
fn start_inheriting(
    config: &std::path::Path,
    inheritance: std::io::Result<(Inheritance, upgrade::Inherited)>,
) -> Result<startup::Started, startup::StartupError> {
    let problem = |message: String| startup::StartupError {
        problems: vec![startup::Problem {
            message,
            hint: None,
        }],
    };
    let (inheritance, inherited) = inheritance.map_err(|error| {
        problem(format!(
            "cannot receive the listeners of the process being upgraded: {error}"
        ))
    })?;
    let checked = Config::load(config)
        .map_err(startup::StartupError::from)
        .and_then(startup::check);
    let checked = match checked {
        Ok(checked) => checked,
        Err(error) => {
            let _ = inheritance.failed(&error.to_string());
            return Err(error);
        }
    };
    let store_wait = checked.config().shutdown_timeout + UPGRADE_MARGIN;
    inheritance
        .checked()
        .map_err(|error| problem(format!("cannot answer the process being upgraded: {error}")))?;
    if !inheritance.wait_for_release(store_wait) {
        return Err(problem(format!(
            "the process being upgraded did not exit within {} ms",
            store_wait.as_millis()
        )));
    }
    startup::start_checked(
        checked,
        Listeners::with_inherited(inherited),
        UPGRADE_MARGIN,
    )
}

/// Beyond the old process's `shutdownTimeout`, how long the new one waits for it to exit and
/// release the document store.
const UPGRADE_MARGIN: std::time::Duration = std::time::Duration::from_secs(10);

/// What a signal asks for.
enum Signal {
    /// SIGTERM or SIGINT: shut down.
    Stop,
    /// SIGUSR2: hot upgrade.
    Upgrade,
}

/// SIGINT, SIGTERM and SIGUSR2, caught.
struct Signals {
    runtime: tokio::runtime::Runtime,
    terminate: tokio::signal::unix::Signal,
    interrupt: tokio::signal::unix::Signal,
    upgrade: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        use tokio::signal::unix::{signal, SignalKind};
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        let (terminate, interrupt, upgrade) = runtime.block_on(async {
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
                signal(SignalKind::user_defined2())?,
            ))
        })?;
        Ok(Signals {
            runtime,
            terminate,
            interrupt,
            upgrade,
        })
    }

    /// Blocks until one arrives.
    fn wait(&mut self) -> Signal {
        let Signals {
            runtime,
            terminate,
            interrupt,
            upgrade,
        } = self;
        runtime.block_on(async {
            tokio::select! {
                _ = terminate.recv() => {
                    tracing::info!("SIGTERM received");
                    Signal::Stop
                }
                _ = interrupt.recv() => {
                    tracing::info!("SIGINT received");
                    Signal::Stop
                }
                _ = upgrade.recv() => Signal::Upgrade,
            }
        })
    }
}
