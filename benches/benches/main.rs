//! criterion benches of the cart-rs crates. Big-size figures: `cargo run --release -p
//! cart-benches --bin search_report`.

use criterion::criterion_main;

mod search;

criterion_main!(search::benches);
