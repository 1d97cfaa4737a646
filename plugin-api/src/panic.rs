//! Panics turned into values: a future polled under `catch_unwind`, the text of a panic payload,
//! and the response of a handler that panicked. Everything that crosses the ABI is guarded with
//! these, because a panic unwinding across an `extern "C"` boundary aborts the hub.

use std::any::Any;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::Poll;

use abi_stable::std_types::{RBox, ROption, RVec};

use crate::ffi::{FfiResponse, FfiSpecial};

/// Poll `fut` to completion, turning a panic while polling into `Err(message)`.
pub(crate) async fn caught<F: std::future::Future>(fut: F) -> Result<F::Output, String> {
    let mut fut = std::pin::pin!(fut);
    std::future::poll_fn(
        move |cx| match catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(panic) => Poll::Ready(Err(panic_message(&*panic))),
        },
    )
    .await
}

/// The response of a handler that panicked: the hub turns it into its 500 `handler_panicked`.
pub(crate) fn panicked(message: String) -> FfiResponse {
    FfiResponse {
        status: 500,
        content_type: ROption::RNone,
        headers: RVec::new(),
        body: RVec::new(),
        special: ROption::RSome(RBox::new(FfiSpecial::Panic(message.into()))),
    }
}

/// The text of a panic payload (`panic!("...")` gives a `&str` or a `String`).
pub(crate) fn panic_message(panic: &(dyn Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_messages_are_read_from_both_payload_kinds() {
        let p = catch_unwind(|| panic!("static text")).unwrap_err();
        assert_eq!(panic_message(&*p), "static text");
        let n = 7;
        let p = catch_unwind(|| panic!("formatted {n}")).unwrap_err();
        assert_eq!(panic_message(&*p), "formatted 7");
    }
}
