//! PNG plots with plotters. The font is embedded (DejaVu Sans, license beside it) so that
//! plots render the same on any machine, with no system font library.

use std::path::Path;
use std::sync::Once;

use plotters::prelude::*;

use crate::error::{Error, Result};

static FONT: &[u8] = include_bytes!("DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn register_font() {
    REGISTER.call_once(|| {
        // The embedded file is a valid TrueType font; failure would only lose the labels.
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

fn plot_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::file(path, format!("cannot draw plot: {e}"))
}

/// One parity panel: predicted against measured values of one output for one model.
pub struct ParityPanel {
    pub title: String,
    pub measured: Vec<f64>,
    pub predicted: Vec<f64>,
}

/// A grid of parity panels (`columns` per row) with the y = x line, written atomically.
pub fn parity_grid(path: &Path, title: &str, panels: &[ParityPanel], columns: usize) -> Result<()> {
    register_font();
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    let (w, h) = (420 * columns as u32, 380 * rows as u32 + 40);
    // plotters picks the image format from the extension: keep ".png" on the temporary file.
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.{}.tmp.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let root = root.titled(title, ("sans-serif", 22)).map_err(|e| plot_error(path, e))?;
        let areas = root.split_evenly((rows, columns));
        for (panel, area) in panels.iter().zip(areas.iter()) {
            let lo = panel.measured.iter().chain(&panel.predicted).copied().fold(f64::INFINITY, f64::min);
            let hi = panel.measured.iter().chain(&panel.predicted).copied().fold(f64::NEG_INFINITY, f64::max);
            let (lo, hi) = if lo.is_finite() && hi > lo { (lo, hi) } else { (0.0, 1.0) };
            let pad = 0.03 * (hi - lo);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 16))
                .margin(8)
                .x_label_area_size(32)
                .y_label_area_size(48)
                .build_cartesian_2d(lo - pad..hi + pad, lo - pad..hi + pad)
                .map_err(|e| plot_error(path, e))?;
            let span = hi - lo;
            let label = move |v: &f64| if span >= 100.0 { format!("{v:.0}") } else if span >= 1.0 { format!("{v:.1}") } else { format!("{v:.2}") };
            chart
                .configure_mesh()
                .x_labels(5)
                .y_labels(6)
                .x_label_formatter(&label)
                .y_label_formatter(&label)
                .x_desc("measured")
                .y_desc("predicted")
                .light_line_style(WHITE)
                .draw()
                .map_err(|e| plot_error(path, e))?;
            chart
                .draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1)))
                .map_err(|e| plot_error(path, e))?;
            chart
                .draw_series(
                    panel.measured.iter().zip(&panel.predicted).map(|(&m, &p)| Circle::new((m, p), 2, BLUE.mix(0.25).filled())),
                )
                .map_err(|e| plot_error(path, e))?;
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}
