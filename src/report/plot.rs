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
            let label = move |v: &f64| {
                if span >= 100.0 {
                    format!("{v:.0}")
                } else if span >= 1.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.2}")
                }
            };
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
            chart.draw_series(LineSeries::new([(lo, lo), (hi, hi)], BLACK.stroke_width(1))).map_err(|e| plot_error(path, e))?;
            chart
                .draw_series(panel.measured.iter().zip(&panel.predicted).map(|(&m, &p)| Circle::new((m, p), 2, BLUE.mix(0.25).filled())))
                .map_err(|e| plot_error(path, e))?;
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}

/// One curve with a band: `mean[e]` between `lo[e]` and `hi[e]` for epochs 1, 2, ...
pub struct Curve {
    pub label: String,
    pub mean: Vec<f64>,
    pub lo: Vec<f64>,
    pub hi: Vec<f64>,
}

impl Curve {
    /// One line without a band (a yardstick, a single run).
    pub fn line(label: impl Into<String>, values: Vec<f64>) -> Curve {
        Curve { label: label.into(), lo: values.clone(), hi: values.clone(), mean: values }
    }

    /// A flat line at `value` over `len` epochs.
    pub fn flat(label: impl Into<String>, value: f64, len: usize) -> Curve {
        Curve::line(label, vec![value; len])
    }

    /// Several runs of one series (seeds): the mean of the finite values at each of the
    /// first `len` points, in a band from their minimum to their maximum.
    pub fn over_runs(label: impl Into<String>, runs: &[&[f64]], len: usize) -> Curve {
        let at = |e: usize| runs.iter().filter_map(|r| r.get(e).copied()).filter(|v| v.is_finite()).collect::<Vec<f64>>();
        Curve {
            label: label.into(),
            mean: (0..len).map(|e| crate::report::mean_std(&at(e)).0).collect(),
            lo: (0..len).map(|e| at(e).into_iter().fold(f64::INFINITY, f64::min)).collect(),
            hi: (0..len).map(|e| at(e).into_iter().fold(f64::NEG_INFINITY, f64::max)).collect(),
        }
    }
}

/// One panel of curves against epochs.
pub struct CurvePanel {
    pub title: String,
    pub curves: Vec<Curve>,
}

/// Matplotlib's `tab10`, in its order: a plot of up to ten curves gives each its own colour.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// A grid of curve panels (`columns` per row), each curve a line over a shaded band.
pub fn curves_grid(path: &Path, title: &str, y_desc: &str, panels: &[CurvePanel], columns: usize) -> Result<()> {
    series_grid(path, title, "epoch", y_desc, panels, columns)
}

/// [`curves_grid`] against another x axis (`x_desc`: "step").
pub fn series_grid(path: &Path, title: &str, x_desc: &str, y_desc: &str, panels: &[CurvePanel], columns: usize) -> Result<()> {
    draw_grid(path, title, (x_desc, y_desc), panels, columns, None)
}

/// [`series_grid`] with point `i` of every curve at `xs[i]` (positive) on a log x axis
/// (budget curves).
pub fn log_x_grid(path: &Path, title: &str, x_desc: &str, y_desc: &str, panels: &[CurvePanel], columns: usize, xs: &[f64]) -> Result<()> {
    let logs: Vec<f64> = xs.iter().map(|x| x.log10()).collect();
    draw_grid(path, title, (x_desc, y_desc), panels, columns, Some(&logs))
}

/// The grid of panels; point `i` of a curve sits at x = i + 1, or at `log_xs[i]` on a log
/// axis labelled in powers of ten.
fn draw_grid(
    path: &Path,
    title: &str,
    (x_desc, y_desc): (&str, &str),
    panels: &[CurvePanel],
    columns: usize,
    log_xs: Option<&[f64]>,
) -> Result<()> {
    register_font();
    let x_at = |e: usize| log_xs.map_or((e + 1) as f64, |xs| xs[e]);
    let columns = columns.max(1);
    let rows = panels.len().div_ceil(columns).max(1);
    // A panel with many curves grows, so that its legend leaves the curves room.
    let most = panels.iter().map(|p| p.curves.len()).max().unwrap_or(0) as u32;
    let (panel_w, panel_h) = if most > 10 { (760, 300 + 22 * most) } else { (380, 300) };
    let (w, h) = (panel_w * columns as u32, panel_h * rows as u32 + 40);
    let stem = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = path.with_file_name(format!(".{stem}.{}.tmp.png", std::process::id()));
    {
        let root = BitMapBackend::new(&tmp, (w, h)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| plot_error(path, e))?;
        let root = root.titled(title, ("sans-serif", 20)).map_err(|e| plot_error(path, e))?;
        for (panel, area) in panels.iter().zip(root.split_evenly((rows, columns)).iter()) {
            let epochs = panel.curves.iter().map(|c| c.mean.len()).max().unwrap_or(1).max(2);
            let x_range = match log_xs {
                Some(xs) => {
                    let (a, b) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
                    if a < b {
                        (a - 0.1)..(b + 0.1)
                    } else {
                        (a - 1.0)..(a + 1.0)
                    }
                }
                None => 1f64..epochs as f64,
            };
            let values = panel.curves.iter().flat_map(|c| c.lo.iter().chain(&c.hi).chain(&c.mean)).copied().filter(|v| v.is_finite());
            let (mut lo, mut hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), v| (a.min(v), b.max(v)));
            if !(lo.is_finite() && hi > lo) {
                (lo, hi) = (0.0, 2.0);
            }
            let pad = 0.05 * (hi - lo);
            let mut chart = ChartBuilder::on(area)
                .caption(&panel.title, ("sans-serif", 15))
                .margin(6)
                .x_label_area_size(28)
                // Budget plots (log x) carry values in the thousands: room for their labels.
                .y_label_area_size(if log_xs.is_some() { 58 } else { 40 })
                .build_cartesian_2d(x_range, (lo - pad)..(hi + pad))
                .map_err(|e| plot_error(path, e))?;
            // Labels at whole decades only (10, 100, 1 000): a label at 10^1.5 reads as 32.
            let power_of_ten = |x: &f64| if (x - x.round()).abs() < 1e-9 { format!("{}", 10f64.powf(*x).round()) } else { String::new() };
            let mut mesh = chart.configure_mesh();
            mesh.x_desc(x_desc).y_desc(y_desc).x_labels(5).y_labels(5).light_line_style(WHITE);
            let plain = |y: &f64| format!("{}", (y * 1000.0).round() / 1000.0);
            if log_xs.is_some() {
                mesh.x_label_formatter(&power_of_ten).y_label_formatter(&plain);
            }
            mesh.draw().map_err(|e| plot_error(path, e))?;
            for (i, c) in panel.curves.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let band: Vec<(f64, f64)> =
                    c.hi.iter()
                        .enumerate()
                        .map(|(e, v)| (x_at(e), *v))
                        .chain(c.lo.iter().enumerate().rev().map(|(e, v)| (x_at(e), *v)))
                        .filter(|p| p.1.is_finite())
                        .collect();
                if band.len() > 2 {
                    chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.15).filled()))).map_err(|e| plot_error(path, e))?;
                }
                let line: Vec<(f64, f64)> = c.mean.iter().enumerate().filter(|(_, v)| v.is_finite()).map(|(e, v)| (x_at(e), *v)).collect();
                chart
                    .draw_series(LineSeries::new(line, color.stroke_width(2)))
                    .map_err(|e| plot_error(path, e))?
                    .label(c.label.clone())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 14, y)], color.stroke_width(2)));
            }
            if panel.curves.len() > 1 || !panel.curves.is_empty() && !panel.curves[0].label.is_empty() {
                chart
                    .configure_series_labels()
                    .background_style(WHITE.mix(0.8))
                    .border_style(BLACK.mix(0.3))
                    .label_font(("sans-serif", 11))
                    .draw()
                    .map_err(|e| plot_error(path, e))?;
            }
        }
        root.present().map_err(|e| plot_error(path, e))?;
    }
    std::fs::rename(&tmp, path).map_err(|e| Error::io(format!("renaming {}", tmp.display()), e))
}
