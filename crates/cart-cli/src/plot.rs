//! Plots with `plotters`: the training curves of a fit and Recall@k curves of an evaluation.
//! SVG always (text stays text, no font needed); PNG with the `png` feature (it draws text
//! with a TrueType font found on the system, or the one `CART_FONT` names). The format
//! follows the file's extension. Files are written atomically.

use std::path::Path;

use anyhow::{Result, anyhow, bail};
use cart::model::TrainHistory;
use plotters::coord::Shift;
use plotters::prelude::*;

/// Size of every plot, in pixels (SVG user units).
const SIZE: (u32, u32) = (1100, 460);

/// Colours of successive series: a colour-blind-safe palette (Okabe-Ito).
const PALETTE: [RGBColor; 7] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
];

fn plot_error<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the plot: {e}")
}

/// One named line of points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend entry.
    pub name: String,
    /// `(x, y)` points in order.
    pub points: Vec<(f64, f64)>,
}

struct Panel<'a> {
    title: &'a str,
    x_label: &'a str,
    y_label: &'a str,
    series: &'a [Series],
    /// Fixed y range (recall: 0..1); `None` fits the data.
    y_range: Option<(f64, f64)>,
    /// Where the legend goes (away from the curves).
    legend: SeriesLabelPosition,
}

fn bounds(series: &[Series], pick: impl Fn(&(f64, f64)) -> f64) -> (f64, f64) {
    let values = series.iter().flat_map(|s| s.points.iter().map(&pick));
    let (lo, hi) =
        values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    match (lo.is_finite(), hi > lo) {
        (true, true) => (lo, hi),
        (true, false) => (lo - 0.5, lo + 0.5),
        _ => (0.0, 1.0),
    }
}

fn draw_panel<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, panel: &Panel<'_>) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (x0, x1) = bounds(panel.series, |p| p.0);
    let (y0, y1) = panel.y_range.unwrap_or_else(|| {
        let (lo, hi) = bounds(panel.series, |p| p.1);
        let pad = 0.08 * (hi - lo);
        ((lo - pad).max(0.0), hi + pad)
    });
    let mut chart = ChartBuilder::on(area)
        .caption(panel.title, ("sans-serif", 20))
        .margin(14)
        .x_label_area_size(44)
        .y_label_area_size(64)
        .build_cartesian_2d(x0..x1, y0..y1)
        .map_err(plot_error)?;
    // x is a count (epochs, k): whole-number ticks
    let span = (x1 - x0).round().max(1.0) as usize;
    let x_ticks = if span <= 12 { span + 1 } else { 11 };
    let whole = |x: &f64| format!("{x:.0}");
    chart
        .configure_mesh()
        .x_labels(x_ticks)
        .x_label_formatter(&whole)
        .x_desc(panel.x_label)
        .y_desc(panel.y_label)
        .axis_desc_style(("sans-serif", 16))
        .label_style(("sans-serif", 13))
        .light_line_style(RGBColor(235, 235, 235))
        .draw()
        .map_err(plot_error)?;
    for (i, s) in panel.series.iter().enumerate() {
        let color = PALETTE[i % PALETTE.len()];
        let style = color.stroke_width(2);
        chart
            .draw_series(LineSeries::new(s.points.iter().copied(), style))
            .map_err(plot_error)?
            .label(s.name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 22, y)], style));
        if s.points.len() <= 60 {
            chart
                .draw_series(s.points.iter().map(|&p| Circle::new(p, 3, color.filled())))
                .map_err(plot_error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(panel.legend.clone())
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .draw()
        .map_err(plot_error)?;
    Ok(())
}

fn draw_panels<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, panels: &[Panel<'_>]) -> Result<()>
where
    DB::ErrorType: 'static,
{
    root.fill(&WHITE).map_err(plot_error)?;
    let areas = root.split_evenly((1, panels.len().max(1)));
    for (area, panel) in areas.iter().zip(panels) {
        draw_panel(area, panel)?;
    }
    root.present().map_err(plot_error)?;
    Ok(())
}

fn render(path: &Path, panels: &[Panel<'_>]) -> Result<()> {
    let ext = path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase);
    let (w, h) = match panels.len() {
        0 | 1 => (SIZE.0 * 3 / 4, SIZE.1 + 60),
        n => (SIZE.0 * n as u32 / 2, SIZE.1),
    };
    let bytes = match ext.as_deref() {
        Some("svg") => {
            let mut svg = String::new();
            draw_panels(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), panels)?;
            svg.into_bytes()
        }
        Some("png") => png(panels, (w, h))?,
        _ => bail!("{}: a plot is .svg or .png", path.display()),
    };
    cart::ids::write_atomic(path, &bytes)
        .map_err(|e| anyhow!("{}: cannot be written: {e}", path.display()))
}

#[cfg(feature = "png")]
fn png(panels: &[Panel<'_>], (w, h): (u32, u32)) -> Result<Vec<u8>> {
    register_font()?;
    let mut rgb = vec![0u8; (w * h * 3) as usize];
    draw_panels(BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area(), panels)?;
    let image = image::RgbImage::from_raw(w, h, rgb).ok_or_else(|| anyhow!("bitmap size"))?;
    let mut out = std::io::Cursor::new(Vec::new());
    image.write_to(&mut out, image::ImageFormat::Png).map_err(plot_error)?;
    Ok(out.into_inner())
}

#[cfg(not(feature = "png"))]
fn png(_: &[Panel<'_>], _: (u32, u32)) -> Result<Vec<u8>> {
    bail!(
        "PNG plots need the `png` feature (cargo install --path crates/cart-cli --features png); .svg works in every build"
    )
}

/// Registers a TrueType font as plotters' `sans-serif` (the bitmap backend draws text itself).
#[cfg(feature = "png")]
fn register_font() -> Result<()> {
    use std::sync::OnceLock;
    static DONE: OnceLock<std::result::Result<(), String>> = OnceLock::new();
    let done = DONE.get_or_init(|| {
        let candidates = std::env::var("CART_FONT").into_iter().chain(
            [
                "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/TTF/DejaVuSans.ttf",
                "/usr/share/fonts/dejavu/DejaVuSans.ttf",
                "/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf",
                "/System/Library/Fonts/Supplemental/Arial.ttf",
                "/Library/Fonts/Arial.ttf",
                "C:\\Windows\\Fonts\\arial.ttf",
            ]
            .map(String::from),
        );
        for path in candidates {
            if let Ok(bytes) = std::fs::read(&path) {
                let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
                return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                    .map_err(|_| format!("{path}: not a usable TrueType font"));
            }
        }
        Err("PNG plots need a TrueType font: set CART_FONT=/path/to/font.ttf, or write .svg".into())
    });
    done.clone().map_err(|e| anyhow!(e))
}

/// The training curves of a fit: the loss per epoch, and the validation Recall@k per epoch
/// (epoch 0: the model before training, the training-free floor), in one image at `path`.
///
/// # Errors
///
/// An empty history, an unknown extension, or a failed write.
pub fn training_curves(history: &TrainHistory, path: &Path) -> Result<()> {
    if history.epochs.is_empty() {
        bail!("{}: the index has no training history to plot", path.display());
    }
    let epochs = &history.epochs;
    let mut loss = vec![Series {
        name: "training loss".into(),
        points: epochs.iter().map(|e| (e.epoch as f64, e.loss)).collect(),
    }];
    // with R-Drop the loss is cross-entropy + omega * KL: show the part
    if epochs.iter().any(|e| e.rdrop > 0.0) {
        loss.push(Series {
            name: "cross-entropy".into(),
            points: epochs.iter().map(|e| (e.epoch as f64, e.cross_entropy)).collect(),
        });
    }
    let ks: Vec<usize> = epochs
        .iter()
        .find(|e| !e.valid.is_empty())
        .map(|e| e.valid.iter().map(|m| m.k).collect())
        .unwrap_or_default();
    let recall: Vec<Series> = ks
        .iter()
        .enumerate()
        .map(|(j, k)| {
            let start = history.start_valid.get(j).map(|m| (0.0, m.recall));
            let later =
                epochs.iter().filter_map(|e| e.valid.get(j).map(|m| (e.epoch as f64, m.recall)));
            Series {
                name: format!("validation R@{k}"),
                points: start.into_iter().chain(later).collect(),
            }
        })
        .collect();
    let best = format!("Validation recall (kept: epoch {})", history.best_epoch);
    let mut panels = vec![Panel {
        title: "Training loss",
        x_label: "epoch",
        y_label: "loss (nats per token)",
        series: &loss,
        y_range: None,
        legend: SeriesLabelPosition::UpperRight,
    }];
    if !recall.is_empty() {
        panels.push(Panel {
            title: &best,
            x_label: "epoch (0: before training)",
            y_label: "recall (share of queries)",
            series: &recall,
            y_range: Some((0.0, 1.0)),
            legend: SeriesLabelPosition::LowerRight,
        });
    }
    render(path, &panels)
}

/// Recall@k for `k = 1..` of each method (`curves[i].1[k - 1]` is its Recall@k), one image.
///
/// # Errors
///
/// An unknown extension or a failed write.
pub fn recall_curves(curves: &[(String, Vec<f64>)], title: &str, path: &Path) -> Result<()> {
    let series: Vec<Series> = curves
        .iter()
        .map(|(name, r)| Series {
            name: name.clone(),
            points: r.iter().enumerate().map(|(i, &y)| ((i + 1) as f64, y)).collect(),
        })
        .collect();
    let panel = Panel {
        title,
        x_label: "k (items returned per query)",
        y_label: "Recall@k (share of queries)",
        series: &series,
        y_range: Some((0.0, 1.0)),
        legend: SeriesLabelPosition::LowerRight,
    };
    render(path, &[panel])
}
