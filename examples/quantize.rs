//! The "quantizer alone" path: read item vectors from an `.npy`, fit the coarse-to-fine
//! quantizer (K-Means + RQ-VAE), write the codes `[k, v1..vM]` to an `.npy` and print the
//! diagnostics, next to those of residual K-Means (CART's "without RQ-VAE" ablation).
//!
//! ```sh
//! # the bundled emoji items, codes to a temp file
//! cargo run --release -p cart-examples --example quantize
//! # your own vectors
//! cargo run --release -p cart-examples --example quantize -- \
//!     items.npy codes.npy [--coarse K] [--levels M] [--codes C] \
//!     [--epochs E] [--seed S] [--save model.cartq] [--device cpu|wgpu]
//! ```
//!
//! Vectors may be `float32` or `float16` (converted on load). Defaults scale with the number
//! of items `n`: `K = sqrt(n)`, `C = min(256, 2^ceil(log2(sqrt(n))))`, `M = 3`, and
//! `E = clamp(400_000 / n, 10, 200)` epochs of batches of 256 (what matters is the number of Adam
//! steps: small sets need many epochs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::prelude::Device;
use cart_examples::{default_data_dir, read_f32, write_u32};
use cart_quant::{
    CoarseToFineConfig, Diagnostics, KMeansConfig, Quantizer, ResidualQuantizerConfig, RqVaeConfig,
    RqVaeTrainConfig,
};
use ndarray::Array2;

/// Reads an `[n, d]` `.npy` of float32 or float16 vectors.
fn read_vectors(path: &Path) -> Result<Array2<f32>> {
    let a = read_f32(path)?;
    let [n, d] = a.shape[..] else {
        bail!("{}: expected a 2-d array, found shape {:?}", path.display(), a.shape)
    };
    Ok(Array2::from_shape_vec((n, d), a.data)?)
}

fn main() -> Result<()> {
    let mut args = std::env::args().skip(1).peekable();
    // positional: ITEMS.npy (default: the bundled emoji items), CODES.npy (default: a temp file)
    let mut positional = Vec::new();
    while args.peek().is_some_and(|a| !a.starts_with("--")) {
        positional.extend(args.next());
    }
    let input =
        positional.first().map_or_else(|| default_data_dir().join("items.npy"), PathBuf::from);
    let output = positional
        .get(1)
        .map_or_else(|| std::env::temp_dir().join("cart-codes.npy"), PathBuf::from);
    let (mut coarse, mut levels, mut codes, mut epochs, mut seed, mut save) =
        (None, 3usize, None, None, 0u64, None);
    let mut device = String::from("cpu");
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            println!(
                "usage: quantize [ITEMS.npy [CODES.npy]] [--coarse K] [--levels M] [--codes C] \
                 [--epochs E] [--seed S] [--save FILE] [--device cpu|wgpu]"
            );
            return Ok(());
        }
        let value = args.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--coarse" => coarse = Some(value.parse()?),
            "--levels" => levels = value.parse()?,
            "--codes" => codes = Some(value.parse()?),
            "--epochs" => epochs = Some(value.parse()?),
            "--seed" => seed = value.parse()?,
            "--save" => save = Some(PathBuf::from(value)),
            "--device" => device = value,
            other => bail!("unknown flag {other}"),
        }
    }
    let data = read_vectors(&input)?;
    let (n, d) = data.dim();
    let root = (n as f64).sqrt();
    let coarse = coarse.unwrap_or((root.round() as usize).clamp(2, 1024));
    let codes_per_level = codes.unwrap_or((root.ceil() as usize).next_power_of_two().min(256));
    let epochs = epochs.unwrap_or((400_000 / n.max(1)).clamp(10, 200));
    println!(
        "{}: {n} items x {d} dims; K = {coarse}, M = {levels}, C = {codes_per_level}, \
         {epochs} epochs",
        input.display()
    );

    let device: Device = cart_cli::device(&device)?;
    let config = CoarseToFineConfig::new(
        KMeansConfig::new(coarse).with_seed(seed),
        RqVaeConfig::new(d).with_n_levels(levels).with_codebook_size(codes_per_level),
    )
    .with_train(RqVaeTrainConfig::new().with_n_epochs(epochs).with_batch_size(256).with_seed(seed));
    let t = std::time::Instant::now();
    let (quantizer, history) = config.fit(data.view(), &device)?;
    let fit_s = t.elapsed().as_secs_f64();
    if let Some(last) = history.epochs.last() {
        println!("trained in {fit_s:.1} s; last epoch: {last}");
    }
    let t = std::time::Instant::now();
    let ids = quantizer.encode(data.view())?;
    println!("encoded {n} items in {:.3} s", t.elapsed().as_secs_f64());
    let flat: Vec<u32> = ids.iter().copied().collect();
    write_u32(&output, &flat, n, ids.ncols())?;
    println!(
        "wrote codes [k, v1..v{levels}] as u32 ({n} x {}) to {}",
        ids.ncols(),
        output.display()
    );
    if let Some(path) = save {
        quantizer.save(&path)?;
        println!("saved the quantizer to {}", path.display());
    }

    println!("\n== coarse-to-fine (K-Means + RQ-VAE) ==");
    println!("{}", Diagnostics::compute(&quantizer, data.view(), 2_000, &device)?);

    let sizes =
        std::iter::once(coarse).chain(std::iter::repeat_n(codes_per_level, levels)).collect();
    let ablation = ResidualQuantizerConfig::new(sizes).with_seed(seed).fit(data.view(), &device)?;
    println!("\n== residual K-Means (without RQ-VAE) ==");
    println!("{}", Diagnostics::compute(&ablation, data.view(), 2_000, &device)?);
    Ok(())
}
