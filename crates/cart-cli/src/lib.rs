//! The application side of cart-rs, shared by the `cart` command line and the examples:
//! `.npy` input and output ([`npy`]), progress bars drawn from the library's events
//! ([`progress`]), the evaluation table ([`report`]), plots ([`plot`]) and the device by
//! name ([`device()`]). The library crates never print; this crate does.
//!
//! The command itself: the workspace README ("From Python vectors in three commands") and
//! `cart --help`.

pub mod device;
pub mod npy;
pub mod plot;
pub mod progress;
pub mod report;

pub use device::device;
pub use progress::FitProgress;
pub use report::{Evaluation, Row};
