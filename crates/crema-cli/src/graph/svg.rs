//! The graph as SVG, in draw_net's colours: layers as boxes (red
//! convolution, orange pooling, purple inner product, green in-place
//! neurons, blue the rest), blobs as grey octagons with their shapes.
use std::fmt::Write;

use super::layout::{layout, RankDir};
use super::{NetGraph, Node, NodeKind};

const FONT: f64 = 12.0;
/// Mean advance of a DejaVu Sans glyph at 12px: text boxes are sized by it.
const CHAR_W: f64 = 7.0;
const LINE_H: f64 = 15.0;
const PAD: f64 = 8.0;

fn layer_color(n: &Node) -> &'static str {
    if n.in_place {
        return "#90EE90";
    }
    match n.layer_type.as_str() {
        "Convolution" | "Deconvolution" => "#FF5050",
        "Pooling" => "#FF9900",
        "InnerProduct" => "#CC33FF",
        _ => "#6495ED",
    }
}

/// A shape as Caffe logs it: `64 20 24 24 (737280)`.
pub fn shape_text(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("{} ({})", dims.join(" "), shape.iter().product::<usize>())
}

fn lines(g: &NetGraph, n: &Node) -> Vec<String> {
    let mut out = vec![n.name.clone()];
    match n.kind {
        NodeKind::Layer => {
            out.push(format!("({})", n.layer_type));
            out.extend(n.details.iter().cloned());
        }
        NodeKind::Blob => {
            if let Some(s) = &n.shape {
                out.push(shape_text(s));
            }
            out.extend(n.details.iter().cloned());
        }
    }
    // A phase badge only where phases differ between nodes.
    if g.phases.len() > 1 && !n.phases.is_empty() && n.phases.len() < g.phases.len() {
        out.push(format!("[{}]", n.phases.join(", ")));
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Draws `g` with ranks running along `dir`.
pub fn render(g: &NetGraph, dir: RankDir) -> String {
    let labels: Vec<Vec<String>> = g.nodes.iter().map(|n| lines(g, n)).collect();
    let sizes: Vec<(f64, f64)> = labels
        .iter()
        .map(|ls| {
            let w = ls.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64 * CHAR_W;
            (w + 2.0 * PAD + 8.0, ls.len() as f64 * LINE_H + 2.0 * PAD)
        })
        .collect();
    let edges: Vec<(usize, usize)> = g.edges.iter().map(|e| (e.from, e.to)).collect();
    let l = layout(&sizes, &edges, dir);
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" class="net-graph" width="{w:.0}" height="{h:.0}" viewBox="0 0 {w:.0} {h:.0}" font-family="DejaVu Sans, Verdana, sans-serif" font-size="{FONT}">
<title>{name}</title>
<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="#444"/></marker></defs>
<rect width="100%" height="100%" fill="white"/>
"##,
        w = l.width,
        h = l.height,
        name = esc(&g.name)
    );
    for (e, pts) in g.edges.iter().zip(&l.edges) {
        let mut d = String::new();
        for (i, p) in pts.iter().enumerate() {
            let _ = write!(
                d,
                "{}{:.1},{:.1} ",
                if i == 0 { "M" } else { "L" },
                p.0,
                p.1
            );
        }
        let class = match (e.in_place, e.split) {
            (true, _) => "edge in-place",
            (_, true) => "edge split",
            _ => "edge",
        };
        let dash = if e.in_place || e.split {
            r#" stroke-dasharray="5,3""#
        } else {
            ""
        };
        let _ = writeln!(
            s,
            r##"<path class="{class}" d="{}" fill="none" stroke="#444" stroke-width="1.2"{dash} marker-end="url(#arrow)"/>"##,
            d.trim_end()
        );
    }
    for (i, n) in g.nodes.iter().enumerate() {
        let (cx, cy) = l.centers[i];
        let (w, h) = sizes[i];
        let (x0, y0) = (cx - w / 2.0, cy - h / 2.0);
        let kind = if n.kind == NodeKind::Layer {
            "layer"
        } else {
            "blob"
        };
        let shape_attr = n
            .shape
            .as_ref()
            .map(|s| {
                let d: Vec<String> = s.iter().map(usize::to_string).collect();
                format!(r#" data-shape="{}""#, d.join(" "))
            })
            .unwrap_or_default();
        let _ = writeln!(
            s,
            r#"<g class="node {kind}" data-name="{}" data-type="{}" data-phases="{}"{shape_attr}>"#,
            esc(&n.name),
            esc(&n.layer_type),
            n.phases.join(" ")
        );
        match n.kind {
            NodeKind::Layer => {
                let _ = writeln!(
                    s,
                    r##"<rect x="{x0:.1}" y="{y0:.1}" width="{w:.1}" height="{h:.1}" rx="3" fill="{}" stroke="#333"/>"##,
                    layer_color(n)
                );
            }
            NodeKind::Blob => {
                let c = (h / 3.0).min(10.0);
                let (x1, y1) = (x0 + w, y0 + h);
                let _ = writeln!(
                    s,
                    r##"<polygon points="{:.1},{y0:.1} {:.1},{y0:.1} {x1:.1},{:.1} {x1:.1},{:.1} {:.1},{y1:.1} {:.1},{y1:.1} {x0:.1},{:.1} {x0:.1},{:.1}" fill="#E0E0E0" stroke="#333"/>"##,
                    x0 + c,
                    x1 - c,
                    y0 + c,
                    y1 - c,
                    x1 - c,
                    x0 + c,
                    y1 - c,
                    y0 + c
                );
            }
        }
        for (k, line) in labels[i].iter().enumerate() {
            let y = y0 + PAD + LINE_H * (k as f64 + 0.8);
            let weight = if k == 0 { r#" font-weight="bold""# } else { "" };
            let _ = writeln!(
                s,
                r#"<text x="{cx:.1}" y="{y:.1}" text-anchor="middle"{weight}>{}</text>"#,
                esc(line)
            );
        }
        s.push_str("</g>\n");
    }
    // Edge labels last, haloed, so no node hides them.
    for (e, pts) in g.edges.iter().zip(&l.edges) {
        if !e.label.is_empty() && pts.len() >= 2 {
            let m = pts.len() / 2;
            let (a, b) = (pts[m - 1], pts[m]);
            let _ = writeln!(
                s,
                r##"<text class="edge-label" x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10" fill="#333" stroke="white" stroke-width="3" paint-order="stroke">{}</text>"##,
                (a.0 + b.0) / 2.0,
                (a.1 + b.1) / 2.0 - 3.0,
                esc(&e.label)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}
