//! Line charts in the terminal, drawn with braille dots (2×4 per character cell), with the
//! value axis on the left and the step axis below.

use crate::output::short_float;

/// Colors of successive series (ANSI codes).
const PALETTE: &[&str] = &["36", "33", "35", "32", "34", "31"];

/// One series to draw: (x, y) points in x order.
pub struct Line<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// A chart `width` × `height` characters (the plotting area; labels come on top of it).
pub fn chart(lines: &[Line<'_>], width: usize, height: usize, color: bool) -> String {
    let width = width.max(10);
    let height = height.max(3);
    let all = lines
        .iter()
        .flat_map(|l| l.points.iter())
        .filter(|(x, y)| x.is_finite() && y.is_finite());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    let mut any = false;
    for &(x, y) in all {
        any = true;
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if !any {
        return "(no points)\n".into();
    }
    if x1 == x0 {
        x1 = x0 + 1.0;
    }
    if y1 == y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.05 };
        y0 -= pad;
        y1 += pad;
    }
    let (dw, dh) = (width * 2, height * 4);
    // Per cell: the dot bits and the series that drew last.
    let mut bits = vec![0u8; width * height];
    let mut owner = vec![usize::MAX; width * height];
    let to_dot = |x: f64, y: f64| -> (i64, i64) {
        let dx = ((x - x0) / (x1 - x0) * (dw - 1) as f64).round() as i64;
        let dy = ((y1 - y) / (y1 - y0) * (dh - 1) as f64).round() as i64;
        (dx, dy)
    };
    let mut set = |dx: i64, dy: i64, series: usize| {
        if dx < 0 || dy < 0 || dx >= dw as i64 || dy >= dh as i64 {
            return;
        }
        let (cx, cy) = (dx as usize / 2, dy as usize / 4);
        let (sx, sy) = (dx as usize % 2, dy as usize % 4);
        // Braille dot numbering: left column 1,2,3,7; right column 4,5,6,8.
        let bit = match (sx, sy) {
            (0, 0) => 0x01,
            (0, 1) => 0x02,
            (0, 2) => 0x04,
            (0, 3) => 0x40,
            (1, 0) => 0x08,
            (1, 1) => 0x10,
            (1, 2) => 0x20,
            _ => 0x80,
        };
        let i = cy * width + cx;
        bits[i] |= bit;
        owner[i] = series;
    };
    for (si, line) in lines.iter().enumerate() {
        let mut prev: Option<(i64, i64)> = None;
        for &(x, y) in &line.points {
            if !(x.is_finite() && y.is_finite()) {
                prev = None;
                continue;
            }
            let p = to_dot(x, y);
            match prev {
                Some(q) => segment(q, p, |a, b| set(a, b, si)),
                None => set(p.0, p.1, si),
            }
            prev = Some(p);
        }
    }
    let labels = [
        short_float(y1),
        short_float((y0 + y1) / 2.0),
        short_float(y0),
    ];
    let lw = labels.iter().map(|l| l.chars().count()).max().unwrap_or(1);
    let mut out = String::new();
    for row in 0..height {
        let label = if row == 0 {
            &labels[0]
        } else if row == height / 2 {
            &labels[1]
        } else if row == height - 1 {
            &labels[2]
        } else {
            ""
        };
        out.push_str(&format!("{label:>lw$} ┤"));
        for col in 0..width {
            let i = row * width + col;
            let ch = char::from_u32(0x2800 + bits[i] as u32).unwrap_or(' ');
            if color && bits[i] != 0 && owner[i] != usize::MAX {
                out.push_str(&format!(
                    "\x1b[{}m{ch}\x1b[0m",
                    PALETTE[owner[i] % PALETTE.len()]
                ));
            } else {
                out.push(ch);
            }
        }
        out.push('\n');
    }
    out.push_str(&format!("{:lw$} └{}\n", "", "─".repeat(width)));
    let (left, right) = (short_float(x0), short_float(x1));
    let gap = width.saturating_sub(left.chars().count() + right.chars().count());
    out.push_str(&format!("{:lw$}  {left}{}{right}\n", "", " ".repeat(gap)));
    if lines.len() > 1 || lines.first().is_some_and(|l| !l.name.is_empty()) {
        let legend: Vec<String> = lines
            .iter()
            .enumerate()
            .map(|(i, l)| {
                if color {
                    format!("\x1b[{}m━━\x1b[0m {}", PALETTE[i % PALETTE.len()], l.name)
                } else {
                    format!("{} {}", ["━━", "──", "┅┅", "┄┄", "╍╍", "╌╌"][i % 6], l.name)
                }
            })
            .collect();
        out.push_str(&format!("{:lw$}  {}\n", "", legend.join("   ")));
    }
    out
}

/// Calls `f` for each dot of the segment from `a` to `b` (Bresenham).
fn segment(a: (i64, i64), b: (i64, i64), mut f: impl FnMut(i64, i64)) {
    let (mut x, mut y) = a;
    let dx = (b.0 - a.0).abs();
    let dy = -(b.1 - a.1).abs();
    let (sx, sy) = (
        if a.0 < b.0 { 1 } else { -1 },
        if a.1 < b.1 { 1 } else { -1 },
    );
    let mut err = dx + dy;
    loop {
        f(x, y);
        if (x, y) == b {
            break;
        }
        let e2 = 2 * err;
        if e2 >= dy {
            err += dy;
            x += sx;
        }
        if e2 <= dx {
            err += dx;
            y += sy;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rising_line_goes_from_bottom_left_to_top_right() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, i as f64)).collect();
        let out = chart(
            &[Line {
                name: "",
                points: pts,
            }],
            20,
            5,
            false,
        );
        let rows: Vec<&str> = out.lines().collect();
        assert_eq!(rows.len(), 7, "{out}");
        assert!(rows[0].trim_start().starts_with("99 ┤"), "{out}");
        // Top row: dots only at the right end; bottom row: only at the left.
        let area = |r: &str| -> Vec<char> { r.split_once('┤').unwrap().1.chars().collect() };
        let (top, bottom) = (area(rows[0]), area(rows[4]));
        assert_ne!(top[19], '\u{2800}');
        assert_eq!(top[0], '\u{2800}');
        assert_ne!(bottom[0], '\u{2800}');
        assert_eq!(bottom[19], '\u{2800}');
        assert!(rows[6].trim_start().starts_with('0') && rows[6].trim_end().ends_with("99"));
    }

    #[test]
    fn flat_and_empty_series_do_not_break() {
        let flat = chart(
            &[Line {
                name: "a",
                points: vec![(0.0, 1.0), (1.0, 1.0)],
            }],
            10,
            3,
            false,
        );
        assert!(flat.contains("━━ a") || flat.contains("── a"), "{flat}");
        assert_eq!(
            chart(
                &[Line {
                    name: "x",
                    points: vec![]
                }],
                10,
                3,
                false
            ),
            "(no points)\n"
        );
        let nan = chart(
            &[Line {
                name: "",
                points: vec![(0.0, f64::NAN), (1.0, 2.0)],
            }],
            10,
            3,
            true,
        );
        assert!(nan.contains('┤'));
    }
}
