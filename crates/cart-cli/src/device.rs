//! The burn device, chosen by name (`--device cpu|wgpu`).

use anyhow::{Result, bail};

/// The burn device to run on, chosen explicitly (`--device cpu|wgpu`): burn's
/// `Device::default()` would silently pick wgpu in a build with both backends.
///
/// # Errors
///
/// An unknown name, or `wgpu` in a build without the `wgpu` feature.
pub fn device(name: &str) -> Result<burn::prelude::Device> {
    match name {
        #[cfg(feature = "flex")]
        "cpu" => Ok(burn::prelude::Device::flex()),
        #[cfg(feature = "wgpu")]
        "wgpu" => Ok(burn::prelude::Device::wgpu(burn::tensor::DeviceKind::DefaultDevice)),
        other => bail!(
            "--device {other}: this build runs on {}",
            [cfg!(feature = "flex").then_some("cpu"), cfg!(feature = "wgpu").then_some("wgpu")]
                .into_iter()
                .flatten()
                .collect::<Vec<_>>()
                .join(" or ")
        ),
    }
}
