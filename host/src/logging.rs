//! Tracing set up once, from `RUST_LOG` and `HUB_LOG_FORMAT`: human-readable or one JSON object
//! per line, colours only on a terminal; and the request id, which every line logged while a
//! request is answered carries (`request_id=…`, or a `request_id` key in JSON), the hub's own
//! lines and a module's forwarded ones alike. The id lives in a task-local value set around the
//! request's future ([`with_request_id`]), so nothing is passed down to be logged.

use std::fmt;
use std::future::Future;
use std::io::IsTerminal as _;
use std::sync::Arc;

use anyhow::Context as _;
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::{FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, format};
use tracing_subscriber::registry::LookupSpan;

use crate::config::{Config, LogFormat};

tokio::task_local! {
    static REQUEST_ID: RequestId;
}

/// A request's id: one the hub made (32 hex digits, kept inline: no allocation on the hot
/// path), or the one the caller sent.
#[derive(Clone, Debug)]
pub enum RequestId {
    Own([u8; 32]),
    Given(Arc<str>),
}

impl RequestId {
    pub fn as_str(&self) -> &str {
        match self {
            RequestId::Own(digits) => std::str::from_utf8(digits).unwrap_or_default(),
            RequestId::Given(id) => id,
        }
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The id of the request being answered by the current task, if any.
pub fn request_id() -> Option<RequestId> {
    REQUEST_ID.try_with(RequestId::clone).ok()
}

/// Run `future` (a request's answer) with `id` as its request id.
pub fn with_request_id<F: Future>(id: RequestId, future: F) -> impl Future<Output = F::Output> {
    REQUEST_ID.scope(id, future)
}

pub fn init(config: &Config) -> anyhow::Result<()> {
    let filter = EnvFilter::try_new(&config.log_filter)
        .with_context(|| format!("RUST_LOG={:?} is not a valid log filter", config.log_filter))?;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stdout().is_terminal());
    let result = match config.log_format {
        LogFormat::Pretty => builder
            .event_format(WithRequestId {
                inner: format(),
                json: false,
            })
            .try_init(),
        LogFormat::Json => builder
            .fmt_fields(JsonFields::new())
            .event_format(WithRequestId {
                inner: format().json(),
                json: true,
            })
            .try_init(),
    };
    result.map_err(|e| anyhow::anyhow!("cannot set up logging: {e}"))
}

/// A line format that adds the request id, when there is one, to what `inner` writes: at the
/// end of a text line, as the last key of a JSON object.
struct WithRequestId<F> {
    inner: F,
    json: bool,
}

impl<S, N, F> FormatEvent<S, N> for WithRequestId<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(id) = request_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        let body = line.trim_end_matches('\n');
        // The id is checked to be letters, digits and `._:-` (http::request_id): no escaping.
        match (self.json, body.strip_suffix('}')) {
            (true, Some(object)) => writeln!(writer, "{object},\"request_id\":\"{id}\"}}"),
            _ => writeln!(writer, "{body} request_id={id}"),
        }
    }
}
