//! Log forwarding from a module into the hub's output.
//!
//! `tracing`'s and `log`'s global dispatchers, and the panic hook, exist once per loaded copy of
//! a module library (a cdylib links its own copy of each). `install` sets, in this copy,
//! forwarders that send every event to the hub's log callback, which prints it with
//! `module=<name>`. Spans are not forwarded; events inside them are.

use std::fmt::{self, Write as _};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Once, RwLock};

use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::Interest;
use tracing::{Event, Metadata, Subscriber};

use crate::ffi::{HostBox, LogLevel};

/// The host of the instance last initialised from this copy of the library.
static HOST: RwLock<Option<Arc<HostBox>>> = RwLock::new(None);
static MAX_LEVEL: AtomicU8 = AtomicU8::new(LogLevel::Info as u8);
static INSTALL: Once = Once::new();

pub(crate) fn install(host: Arc<HostBox>, max: LogLevel) {
    if let Ok(mut current) = HOST.write() {
        *current = Some(host);
    }
    MAX_LEVEL.store(max as u8, Ordering::Relaxed);
    log::set_max_level(match max {
        LogLevel::Error => log::LevelFilter::Error,
        LogLevel::Warn => log::LevelFilter::Warn,
        LogLevel::Info => log::LevelFilter::Info,
        LogLevel::Debug => log::LevelFilter::Debug,
        LogLevel::Trace => log::LevelFilter::Trace,
    });
    INSTALL.call_once(|| {
        // Both fail only when something in this copy set them first; then that one stays.
        let _ = tracing::subscriber::set_global_default(Forwarder);
        let _ = log::set_logger(&Forwarder);
        std::panic::set_hook(Box::new(|info| {
            forward(LogLevel::Error, "panic", &info.to_string());
        }));
    });
}

fn forward(level: LogLevel, target: &str, message: &str) {
    let host = HOST.read().ok().and_then(|h| h.clone());
    if let Some(host) = host {
        host.log(level, target.into(), message.into());
    }
}

fn enabled(level: LogLevel) -> bool {
    level as u8 <= MAX_LEVEL.load(Ordering::Relaxed)
}

fn from_tracing(level: &tracing::Level) -> LogLevel {
    match *level {
        tracing::Level::ERROR => LogLevel::Error,
        tracing::Level::WARN => LogLevel::Warn,
        tracing::Level::INFO => LogLevel::Info,
        tracing::Level::DEBUG => LogLevel::Debug,
        tracing::Level::TRACE => LogLevel::Trace,
    }
}

struct Forwarder;

impl Subscriber for Forwarder {
    fn register_callsite(&self, _: &'static Metadata<'static>) -> Interest {
        // The level can change when the library is initialised again: decide per event.
        Interest::sometimes()
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        enabled(from_tracing(metadata.level()))
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::TRACE)
    }

    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _: &Id, _: &Record<'_>) {}

    fn record_follows_from(&self, _: &Id, _: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let mut text = EventText::default();
        event.record(&mut text);
        let metadata = event.metadata();
        forward(
            from_tracing(metadata.level()),
            metadata.target(),
            &text.finish(),
        );
    }

    fn enter(&self, _: &Id) {}

    fn exit(&self, _: &Id) {}
}

/// An event's message followed by its other fields as `key=value`.
#[derive(Default)]
struct EventText {
    message: String,
    fields: String,
}

impl EventText {
    fn finish(mut self) -> String {
        if !self.fields.is_empty() {
            if !self.message.is_empty() {
                self.message.push(' ');
            }
            self.message.push_str(&self.fields);
        }
        self.message
    }
}

impl Visit for EventText {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            self.record_debug(field, &value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            if !self.fields.is_empty() {
                self.fields.push(' ');
            }
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

impl log::Log for Forwarder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        enabled(from_log(metadata.level()))
    }

    fn log(&self, record: &log::Record<'_>) {
        let level = from_log(record.level());
        if enabled(level) {
            forward(level, record.target(), &record.args().to_string());
        }
    }

    fn flush(&self) {}
}

fn from_log(level: log::Level) -> LogLevel {
    match level {
        log::Level::Error => LogLevel::Error,
        log::Level::Warn => LogLevel::Warn,
        log::Level::Info => LogLevel::Info,
        log::Level::Debug => LogLevel::Debug,
        log::Level::Trace => LogLevel::Trace,
    }
}
