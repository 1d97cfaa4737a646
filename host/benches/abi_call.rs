//! One call of a trivial JSON handler through the ABI, against the same handler body called
//! directly. The ABI path is what the hub does per request after routing: make the request object
//! (`RequestObj`), cross into the module library (`ModuleObj::call`), wrap it as the author's
//! `Request`, run the handler, convert the `Response` back and poll the `FfiFuture`.
//!
//! Run with `cargo xtask bench abi`, which builds `hello` in release mode and sets
//! `HUB_BENCH_LIBRARY` to it.

use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use abi_stable::sabi_trait::prelude::TD_Opaque;
use abi_stable::std_types::{RNone, ROption, RSlice, RStr, RVec, Tuple2};
use criterion::{Criterion, criterion_group, criterion_main};
use host::config::Config;
use host::db::Database;
use host::loader::{InstanceArgs, LibraryFile, Loader};
use plugin_api::ffi::{RequestBox, RequestObj, RequestObj_TO};
use plugin_api::{IntoResponse, Json, LogLevel, json};

/// Poll a future that completes without waiting (both paths do) to its end.
fn run<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(value) = fut.as_mut().poll(&mut cx) {
            return value;
        }
    }
}

/// The body of hello's `GET /ping` handler, compiled into this binary.
async fn ping_direct() -> plugin_api::Response {
    Json(json!({"pong": true})).into_response()
}

/// `GET /ping` with no header, parameter or body.
struct Ping;

impl RequestObj for Ping {
    fn method(&self) -> RStr<'_> {
        "GET".into()
    }
    fn path(&self) -> RStr<'_> {
        "/ping".into()
    }
    fn param(&self, _: RStr<'_>) -> ROption<RStr<'_>> {
        RNone
    }
    fn query(&self) -> RStr<'_> {
        "".into()
    }
    fn header(&self, _: RStr<'_>) -> ROption<RStr<'_>> {
        RNone
    }
    fn headers(&self) -> RVec<Tuple2<RStr<'_>, RStr<'_>>> {
        RVec::new()
    }
    fn body(&self) -> RSlice<'_, u8> {
        RSlice::EMPTY
    }
    fn user(&self) -> ROption<plugin_api::ffi::FfiUser> {
        RNone
    }
    fn audit(&self, _: RStr<'_>, _: RStr<'_>, _: RStr<'_>) {}
    fn call(
        &self,
        _: RStr<'_>,
        _: RStr<'_>,
        _: RStr<'_>,
        _: RVec<u8>,
    ) -> async_ffi::FfiFuture<plugin_api::ffi::FfiResponse> {
        unreachable!("the benchmark's request calls no module")
    }
}

fn request() -> RequestBox {
    RequestObj_TO::from_value(Ping, TD_Opaque)
}

fn handler_call(c: &mut Criterion) {
    let Some(library) = std::env::var_os("HUB_BENCH_LIBRARY") else {
        panic!("HUB_BENCH_LIBRARY is not set: run `cargo xtask bench abi`");
    };
    let loader = Loader::new(None).expect("runtime folder");
    let config = Config::from_vars(Vec::new()).expect("default config");
    let library = loader
        .open("hello", &LibraryFile::read(std::path::Path::new(&library)))
        .expect("open hello");
    let object = library
        .instantiate(InstanceArgs {
            module: "hello".to_owned(),
            config: serde_json::Map::new(),
            read_only: true,
            dry_run: true,
            max_log_level: LogLevel::Warn,
            database: Arc::new(Database::new(&config).expect("no database configured")),
            outbound: Vec::new(),
            blocking_threads: 1,
        })
        .expect("init hello");
    let index = object
        .routes()
        .iter()
        .position(|r| r.method.as_str() == "GET" && r.path.as_str() == "/ping")
        .expect("hello has GET /ping") as u32;

    let mut group = c.benchmark_group("ping handler");
    group.bench_function("through the ABI", |b| {
        b.iter(|| black_box(run(object.call(index, black_box(request())))))
    });
    group.bench_function("called directly", |b| {
        b.iter(|| {
            let _request = black_box(request());
            black_box(run(ping_direct()))
        })
    });
    group.finish();
}

criterion_group!(benches, handler_call);
criterion_main!(benches);
