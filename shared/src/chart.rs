//! Chart geometry for the page, pure so it is tested natively: nice axis scales, SVG points
//! with a bounded number per series, and the series' colours (texts are in [`crate::format`]).

use std::collections::VecDeque;

use crate::protocol::Sample;
use crate::transaction::AccountId;

/// Okabe–Ito: distinguishable with the common colour-vision deficiencies.
pub const PALETTE: [&str; 8] = [
    "#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000",
];

/// Colour and dash pattern of an account's series: colours repeat every 8 accounts with a
/// different dash, so 32 accounts stay distinguishable.
pub fn series_style(account: AccountId) -> (&'static str, &'static str) {
    let i = account.saturating_sub(1) as usize;
    let dash = ["", "6 3", "2 3", "8 3 2 3"][(i / PALETTE.len()) % 4];
    (PALETTE[i % PALETTE.len()], dash)
}

/// SVG points of a sparkline of `values` in a `w` × `h` box: the largest value (at least 1)
/// touches the top, 0 the bottom, 2 units in from each edge.
pub fn sparkline_points(values: &[f64], w: f64, h: f64) -> String {
    let n = values.len();
    let max = values.iter().copied().fold(1.0f64, f64::max);
    values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            format!(
                "{:.1},{:.1}",
                i as f64 * w / (n.max(2) - 1) as f64,
                h - 2.0 - v / max * (h - 4.0)
            )
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// An axis from `lo` to `hi` in steps of `step`, all "nice" numbers (1, 2, 5 × 10^k).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Scale {
    pub lo: i64,
    pub hi: i64,
    pub step: i64,
}

impl Scale {
    /// A scale covering `min..=max` with about `ticks` steps. Values are minor units.
    pub fn nice(min: i64, max: i64, ticks: u32) -> Scale {
        let (min, max) = if min <= max { (min, max) } else { (max, min) };
        let span = (max.saturating_sub(min)).max(100) as f64;
        let raw = span / ticks.max(1) as f64;
        let mag = 10f64.powi(raw.log10().floor() as i32);
        let norm = raw / mag;
        // Round to the nearest nice step (Heckbert's "nice numbers"): about `ticks` steps.
        let nice = if norm < 1.5 {
            1.0
        } else if norm < 3.0 {
            2.0
        } else if norm < 7.0 {
            5.0
        } else {
            10.0
        };
        let step = ((nice * mag) as i64).max(1);
        let lo = min.div_euclid(step) * step;
        let hi = (max.div_euclid(step) + i64::from(max.rem_euclid(step) != 0)) * step;
        Scale {
            lo,
            hi: hi.max(lo + step),
            step,
        }
    }

    pub fn ticks(&self) -> impl Iterator<Item = i64> + '_ {
        (0..)
            .map(move |i| self.lo + i * self.step)
            .take_while(move |v| *v <= self.hi)
    }

    /// Pixel y for `v` in a chart of height `h` (0 at the top).
    pub fn y(&self, v: i64, h: f64) -> f64 {
        let span = (self.hi - self.lo).max(1) as f64;
        h - (v - self.lo) as f64 / span * h
    }
}

/// SVG `points` for one account's balance over the history, at most `max_points` points
/// (every k-th sample, always including the newest). `None` if the account is not charted.
pub fn line_points(
    history: &VecDeque<Sample>,
    index: usize,
    scale: &Scale,
    w: f64,
    h: f64,
    max_points: usize,
) -> Option<String> {
    let n = history.len();
    if n == 0 || history.back().is_none_or(|s| s.balances.len() <= index) {
        return None;
    }
    let t0 = history.front().map(|s| s.t_ms).unwrap_or(0);
    let t1 = history.back().map(|s| s.t_ms).unwrap_or(0);
    let span = (t1 - t0).max(1) as f64;
    let stride = n.div_ceil(max_points.max(2)).max(1);
    let mut out = String::with_capacity(16 * (n / stride + 1));
    let mut push = |s: &Sample| {
        if let Some(v) = s.balances.get(index) {
            let x = (s.t_ms - t0) as f64 / span * w;
            let y = scale.y(*v, h);
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(&format!("{x:.1},{y:.1}"));
        }
    };
    for (i, s) in history.iter().enumerate() {
        if i % stride == 0 || i == n - 1 {
            push(s);
        }
    }
    Some(out)
}

/// The range of all charted balances in the history, for the line chart's scale.
pub fn history_range(history: &VecDeque<Sample>) -> Option<(i64, i64)> {
    history
        .iter()
        .flat_map(|s| s.balances.iter().copied())
        .fold(None, |acc, v| match acc {
            None => Some((v, v)),
            Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
        })
}
