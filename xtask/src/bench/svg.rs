//! `results/overhead.svg`: grouped bars of the overhead per unit, ours next to the incumbent's,
//! one group per scenario and loop, on a log scale, with the issue's ns targets dashed. Plain
//! SVG, written by hand.

use std::fmt::Write as _;

use super::micro::Row;
use super::Mode;

const LEFT: f64 = 64.0;
const TOP: f64 = 56.0;
const PLOT_HEIGHT: f64 = 300.0;
const BOTTOM: f64 = 56.0;
const GROUP: f64 = 92.0;
const BAR: f64 = 24.0;
const BARS: [(Mode, &str); 2] = [(Mode::Ours, "#1c7ed6"), (Mode::Incumbent, "#adb5bd")];

pub(crate) fn chart(rows: &[Row]) -> String {
    let values: Vec<f64> = rows
        .iter()
        .flat_map(|row| BARS.map(|(mode, _)| row.overhead(mode)))
        .chain(rows.iter().map(|row| row.scenario.target_ns))
        .flatten()
        .filter(|v| *v > 0.0)
        .collect();
    let lo = values
        .iter()
        .fold(f64::INFINITY, |a, &b| a.min(b))
        .log10()
        .floor()
        .max(0.0);
    let hi = values
        .iter()
        .fold(1.0_f64, |a, &b| a.max(b))
        .log10()
        .ceil()
        .max(lo + 1.0);
    let y = |v: f64| TOP + PLOT_HEIGHT * (1.0 - (v.log10() - lo) / (hi - lo));
    let base = TOP + PLOT_HEIGHT;
    let width = LEFT + GROUP * rows.len() as f64 + 16.0;
    let height = TOP + PLOT_HEIGHT + BOTTOM;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="10">"#
    );
    let _ = writeln!(
        svg,
        r##"<rect width="100%" height="100%" fill="#fff"/>
<text x="{LEFT}" y="20" font-size="14" font-weight="bold">aiocop: overhead per unit of work over no monitor (ns, log scale)</text>"##
    );
    legend(&mut svg);
    for decade in (lo as i32)..=(hi as i32) {
        let v = 10f64.powi(decade);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}" stroke="#e9ecef"/><text x="{}" y="{:.1}" text-anchor="end" fill="#495057">{}</text>"##,
            width - 16.0,
            LEFT - 6.0,
            y(v) + 3.0,
            ns_label(v),
            y = y(v),
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let x0 = LEFT + GROUP * i as f64 + (GROUP - 2.0 * BAR) / 2.0;
        for (j, (mode, color)) in BARS.iter().enumerate() {
            let x = x0 + BAR * j as f64;
            match row.overhead(*mode) {
                Some(v) if v > 0.0 => {
                    let top = y(v.max(10f64.powf(lo)));
                    let _ = writeln!(
                        svg,
                        r#"<rect x="{x:.1}" y="{top:.1}" width="{}" height="{:.1}" fill="{color}"><title>{} {} {}: +{v:.0} ns</title></rect><text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">{}</text>"#,
                        BAR - 2.0,
                        base - top,
                        row.scenario.name,
                        row.loop_kind,
                        mode.name(),
                        x + BAR / 2.0 - 1.0,
                        top - 3.0,
                        short(v),
                    );
                }
                Some(_) => {
                    let _ = writeln!(
                        svg,
                        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="9">≤0</text>"#,
                        x + BAR / 2.0 - 1.0,
                        base - 3.0
                    );
                }
                None => {}
            }
        }
        if let Some(target) = row.scenario.target_ns {
            let _ = writeln!(
                svg,
                r##"<line x1="{:.1}" x2="{:.1}" y1="{y:.1}" y2="{y:.1}" stroke="#e03131" stroke-dasharray="4 2" stroke-width="1.5"><title>target ≤{target} ns</title></line>"##,
                x0 - 4.0,
                x0 + 2.0 * BAR + 2.0,
                y = y(target),
            );
        }
        let cx = LEFT + GROUP * (i as f64 + 0.5);
        let _ = writeln!(
            svg,
            r##"<text x="{cx:.1}" y="{:.1}" text-anchor="middle">{}</text><text x="{cx:.1}" y="{:.1}" text-anchor="middle" fill="#868e96">{}</text>"##,
            base + 16.0,
            row.scenario.name,
            base + 29.0,
            row.loop_kind,
        );
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" x2="{}" y1="{base}" y2="{base}" stroke="#495057"/>"##,
        width - 16.0
    );
    svg.push_str("</svg>\n");
    svg
}

fn legend(svg: &mut String) {
    let mut x = LEFT;
    for (mode, color) in BARS {
        let _ = writeln!(
            svg,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{color}"/><text x="{}" y="42">{}</text>"#,
            x + 16.0,
            mode.name()
        );
        x += 90.0;
    }
    let _ = writeln!(
        svg,
        r##"<line x1="{x}" x2="{}" y1="38" y2="38" stroke="#e03131" stroke-dasharray="4 2" stroke-width="1.5"/><text x="{}" y="42">target (ours)</text>"##,
        x + 16.0,
        x + 20.0
    );
}

/// `1 ns`, `10 ns`, `100 ns`, `1 µs`, ... for the decades.
fn ns_label(v: f64) -> String {
    match v {
        v if v >= 1e6 => format!("{:.0} ms", v / 1e6),
        v if v >= 1e3 => format!("{:.0} µs", v / 1e3),
        v => format!("{v:.0} ns"),
    }
}

/// A bar's value, short: `85`, `2.4k`, `31k`.
fn short(v: f64) -> String {
    match v {
        v if v >= 1e4 => format!("{:.0}k", v / 1e3),
        v if v >= 1e3 => format!("{:.1}k", v / 1e3),
        v => format!("{v:.0}"),
    }
}

#[cfg(test)]
mod tests {
    use super::{ns_label, short};

    #[test]
    fn labels() {
        assert_eq!(ns_label(100.0), "100 ns");
        assert_eq!(ns_label(10_000.0), "10 µs");
        assert_eq!(short(85.4), "85");
        assert_eq!(short(2_430.0), "2.4k");
        assert_eq!(short(31_200.0), "31k");
    }
}
