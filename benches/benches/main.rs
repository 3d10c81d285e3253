//! criterion benches of the cart-rs crates. Big-size figures: `cargo run --release -p
//! cart-benches --bin search_report` (or `quant_report`, `model_report`).

use criterion::criterion_main;

mod model;
mod quant;
mod search;

criterion_main!(search::benches, quant::benches, model::benches);
