//! Enqueueing runs of a module's jobs (`ctx.jobs().enqueue("scan", &payload)`), and reading a
//! job's period (`"5m"`).

use std::time::Duration;

use serde::Serialize;

use crate::error::Error;
use crate::ffi::HostBox;

/// Where a module enqueues runs of its jobs.
pub struct Jobs<'a> {
    host: &'a HostBox,
}

impl<'a> Jobs<'a> {
    pub(crate) fn new(host: &'a HostBox) -> Jobs<'a> {
        Jobs { host }
    }

    /// A run of job `name` (declared with `r.job`) with `payload`, due now: its id.
    pub async fn enqueue<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
    ) -> Result<i64, Error> {
        self.enqueue_in(name, payload, Duration::ZERO).await
    }

    /// A run of job `name` with `payload`, due after `delay`.
    pub async fn enqueue_in<T: Serialize + ?Sized>(
        &self,
        name: &str,
        payload: &T,
        delay: Duration,
    ) -> Result<i64, Error> {
        let payload = serde_json::to_string(payload)
            .map_err(|e| Error::internal(format!("cannot write job '{name}''s payload: {e}")))?;
        let delay = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
        self.host
            .enqueue(name.into(), payload.into(), delay)
            .await
            .into_result()
            .map_err(|e| Error::internal(e.into_string()))
    }
}

/// `500ms`, `30s`, `5m`, `2h`, `1d` as a duration; `None` for anything else.
pub(crate) fn parse_period(text: &str) -> Option<Duration> {
    let split = text.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = text.split_at(split);
    let n: u64 = number.parse().ok().filter(|n| *n > 0)?;
    let millis = match unit {
        "ms" => n,
        "s" => n.checked_mul(1_000)?,
        "m" => n.checked_mul(60_000)?,
        "h" => n.checked_mul(3_600_000)?,
        "d" => n.checked_mul(86_400_000)?,
        _ => return None,
    };
    Some(Duration::from_millis(millis))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_read_as_their_units() {
        assert_eq!(parse_period("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_period("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_period("1d"), Some(Duration::from_secs(86_400)));
        assert_eq!(parse_period("0s"), None);
        assert_eq!(parse_period("5 minutes"), None);
        assert_eq!(parse_period("m"), None);
    }
}
