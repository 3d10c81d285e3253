#![allow(clippy::unwrap_used, reason = "a failing unwrap is a failing test")]
//! Public-API tests of `cart-quant`, built as one binary.

mod common;
mod io;
mod kmeans;
mod residual;
mod rqvae;
