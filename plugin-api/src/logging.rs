//! Forwards a plugin's `tracing` events to the host's log.
//!
//! Each cdylib has its own copy of `tracing` and so its own global dispatcher: without this,
//! a plugin's `info!` would go nowhere. Events more verbose than the host will print are
//! filtered out before anything is formatted.

use std::cell::Cell;
use std::fmt::Write as _;
use std::sync::OnceLock;

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};

use crate::abi::{FfiHost, LogLevel};
use crate::sdk::Host;

static INSTALLED: OnceLock<()> = OnceLock::new();

thread_local! {
    /// The instance this thread works for, once it said so (`Host::tag_thread_logs`, and `init`
    /// while it runs): its events are logged under that instance's protocol name.
    static THREAD_HOST: Cell<Option<FfiHost>> = const { Cell::new(None) };
}

/// Sets (or clears) the instance the current thread's events are logged for; returns the
/// previous one.
pub(crate) fn set_thread_host(host: Option<FfiHost>) -> Option<FfiHost> {
    THREAD_HOST.with(|current| current.replace(host))
}

/// The instance the current thread works for, if it said so (`init` always is).
pub(crate) fn thread_host() -> Option<FfiHost> {
    THREAD_HOST.with(Cell::get)
}

/// Tags the current thread for an instance until dropped, then restores the previous tag.
pub(crate) struct ThreadHostGuard {
    previous: Option<FfiHost>,
}

impl ThreadHostGuard {
    pub(crate) fn set(host: FfiHost) -> ThreadHostGuard {
        ThreadHostGuard {
            previous: set_thread_host(Some(host)),
        }
    }
}

impl Drop for ThreadHostGuard {
    fn drop(&mut self) {
        set_thread_host(self.previous);
    }
}

/// Installs the forwarding subscriber once per library. Several instances of one library share
/// it; an event goes out through the instance its thread is tagged with, else the first one, so
/// the host names the right protocol when each instance tags its threads.
pub(crate) fn install(host: FfiHost, max_level: LogLevel) {
    INSTALLED.get_or_init(|| {
        let layer = HostLayer {
            host,
            max_level: level_filter(max_level),
        };
        let subscriber = tracing_subscriber::registry().with(layer);
        // Fails only if the plugin installed its own subscriber first; then that one wins.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

fn level_filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::OFF => LevelFilter::OFF,
        LogLevel::ERROR => LevelFilter::ERROR,
        LogLevel::WARN => LevelFilter::WARN,
        LogLevel::INFO => LevelFilter::INFO,
        LogLevel::DEBUG => LevelFilter::DEBUG,
        _ => LevelFilter::TRACE,
    }
}

fn log_level(level: &Level) -> LogLevel {
    match *level {
        Level::ERROR => LogLevel::ERROR,
        Level::WARN => LogLevel::WARN,
        Level::INFO => LogLevel::INFO,
        Level::DEBUG => LogLevel::DEBUG,
        Level::TRACE => LogLevel::TRACE,
    }
}

struct HostLayer {
    /// The library's first instance: for threads no instance tagged.
    host: FfiHost,
    max_level: LevelFilter,
}

impl<S: Subscriber> Layer<S> for HostLayer {
    fn enabled(&self, metadata: &Metadata<'_>, _ctx: Context<'_, S>) -> bool {
        self.max_level >= *metadata.level()
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(self.max_level)
    }

    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut visitor = Fields::default();
        event.record(&mut visitor);
        let metadata = event.metadata();
        let host = THREAD_HOST.with(Cell::get).unwrap_or(self.host);
        Host::new(host).log(
            log_level(metadata.level()),
            metadata.target(),
            &visitor.text,
        );
    }
}

/// Formats an event as `message key=value key=value`.
#[derive(Default)]
struct Fields {
    text: String,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.text.insert_str(0, value);
        } else {
            let _ = write!(self.text, " {}={:?}", field.name(), value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.text.insert_str(0, &format!("{value:?}"));
        } else {
            let _ = write!(self.text, " {}={:?}", field.name(), value);
        }
    }
}
