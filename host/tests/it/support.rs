//! The harness lives in `hub-testkit`, shared with the modules' own tests.

pub use hub_testkit::*;
