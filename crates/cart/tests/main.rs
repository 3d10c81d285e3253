#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! Integration tests of the `cart` facade.

mod index;
mod store;
mod synthetic;
