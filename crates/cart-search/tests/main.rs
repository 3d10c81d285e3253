#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! Public-API tests of `cart-search`.

mod beam;
mod dense;
