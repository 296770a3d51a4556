//! The last warnings: a `tracing` layer that keeps the last [`KEPT`] WARN and ERROR events
//! (the host's and, forwarded through the host's log, the plugins') for the admin page.
//!
//! `main` installs [`Recorder`] next to the log printer; [`recent`] reads the ring. Recording
//! takes a mutex, which is fine for warnings (rare by nature, and the slow-consumer warning is
//! rate-limited in `plugin-kit`), and never happens on an INFO or DEBUG event.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use parking_lot::Mutex;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Warnings kept.
pub const KEPT: usize = 50;
/// Longest message kept, in bytes (cut at a character boundary).
const MAX_MESSAGE: usize = 1024;

/// One WARN or ERROR event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    /// When it was logged, in milliseconds since the Unix epoch.
    pub time_ms: u64,
    /// `WARN` or `ERROR`.
    pub level: &'static str,
    /// The module that logged it (a plugin's events carry `plugin = <name>` in `message`).
    pub target: String,
    /// The message, then its fields as `key=value`.
    pub message: String,
}

static RING: Mutex<VecDeque<Warning>> = Mutex::new(VecDeque::new());

/// The warnings kept, oldest first.
pub fn recent() -> Vec<Warning> {
    RING.lock().iter().cloned().collect()
}

/// Keeps `warning`, dropping the oldest past [`KEPT`].
pub fn record(warning: Warning) {
    let mut ring = RING.lock();
    if ring.len() == KEPT {
        ring.pop_front();
    }
    ring.push_back(warning);
}

/// The layer `main` installs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Recorder;

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let metadata = event.metadata();
        let level = match *metadata.level() {
            Level::ERROR => "ERROR",
            Level::WARN => "WARN",
            _ => return,
        };
        let mut text = Text::default();
        event.record(&mut text);
        let mut message = text.message;
        if !text.fields.is_empty() {
            if !message.is_empty() {
                message.push(' ');
            }
            message.push_str(&text.fields);
        }
        if message.len() > MAX_MESSAGE {
            let mut cut = MAX_MESSAGE;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        record(Warning {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |since| since.as_millis() as u64),
            level,
            target: metadata.target().to_string(),
            message,
        });
    }
}

/// An event's message and other fields, as the log printer shows them.
#[derive(Default)]
struct Text {
    message: String,
    fields: String,
}

impl Visit for Text {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.separate();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            self.separate();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

impl Text {
    fn separate(&mut self) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn the_last_warnings_and_errors_are_kept_with_their_fields_and_the_rest_is_not() {
        let subscriber = tracing_subscriber::registry().with(Recorder);
        tracing::subscriber::with_default(subscriber, || {
            tracing::info!("not kept");
            tracing::warn!(plugin = "ws", count = 3, "slow consumer closed");
            tracing::error!("broken: {}", 7);
        });
        let recent = recent();
        let kept: Vec<(&str, &str)> = recent
            .iter()
            .rev()
            .take(2)
            .rev()
            .map(|warning| (warning.level, warning.message.as_str()))
            .collect();
        assert_eq!(
            kept,
            [
                ("WARN", "slow consumer closed plugin=\"ws\" count=3"),
                ("ERROR", "broken: 7")
            ]
        );
        assert!(recent.iter().all(|warning| warning.message != "not kept"));

        // One test, not two: the ring is the process's, and tests run in parallel.
        for n in 0..KEPT + 5 {
            record(Warning {
                time_ms: n as u64,
                level: "WARN",
                target: "ring-test".to_string(),
                message: format!("w{n}"),
            });
        }
        let recent = super::recent();
        assert_eq!(recent.len(), KEPT);
        assert_eq!(
            recent.last().map(|warning| warning.message.as_str()),
            Some(format!("w{}", KEPT + 4).as_str())
        );
    }
}
