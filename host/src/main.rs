//! The `switchyard` binary: parse arguments, install logging, start, wait for a signal, stop.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use switchyard::config::Config;
use switchyard::{shutdown, startup};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

const USAGE: &str = "\
usage: switchyard [--config PATH]
       switchyard check [-v] [--config PATH] [LIBRARY...]

  --config PATH   configuration file (default: ./config.toml)
  check           check protocol libraries (ABI version, layout, hooks) without starting them;
                  with no LIBRARY, checks every protocol the configuration enables
  -v              with check: print abi_stable's full layout report
";

enum Command {
    Run {
        config: PathBuf,
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
            "check" if !check && libraries.is_empty() => check = true,
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
    } else {
        Command::Run { config }
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
        Command::Run { config } => run(&config),
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

fn run(config: &std::path::Path) -> ExitCode {
    let started = match Config::load(config)
        .map_err(startup::StartupError::from)
        .and_then(startup::start)
    {
        Ok(started) => started,
        Err(error) => {
            eprintln!("{error}");
            return ExitCode::FAILURE;
        }
    };
    // Signal handlers go in before the ready line: a signal sent as soon as it is printed
    // must start a graceful shutdown, not kill the process.
    let signals = match Signals::install() {
        Ok(signals) => signals,
        Err(error) => {
            eprintln!("error: cannot install signal handlers: {error}");
            return ExitCode::FAILURE;
        }
    };
    println!("{}", started.ready_line());
    let _ = std::io::stdout().flush();

    signals.wait();
    shutdown::shutdown(&started.entry);
    ExitCode::SUCCESS
}

/// SIGINT and SIGTERM, caught.
struct Signals {
    runtime: tokio::runtime::Runtime,
    #[cfg(unix)]
    streams: (tokio::signal::unix::Signal, tokio::signal::unix::Signal),
}

impl Signals {
    fn install() -> std::io::Result<Signals> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()?;
        #[cfg(unix)]
        let streams = runtime.block_on(async {
            use tokio::signal::unix::{signal, SignalKind};
            Ok::<_, std::io::Error>((
                signal(SignalKind::terminate())?,
                signal(SignalKind::interrupt())?,
            ))
        })?;
        Ok(Signals {
            runtime,
            #[cfg(unix)]
            streams,
        })
    }

    /// Blocks until one arrives.
    fn wait(self) {
        #[cfg(unix)]
        {
            let (mut terminate, mut interrupt) = self.streams;
            self.runtime.block_on(async {
                tokio::select! {
                    _ = terminate.recv() => tracing::info!("SIGTERM received"),
                    _ = interrupt.recv() => tracing::info!("SIGINT received"),
                }
            });
        }
        #[cfg(not(unix))]
        {
            let _ = self.runtime.block_on(tokio::signal::ctrl_c());
        }
    }
}
