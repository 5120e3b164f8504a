//! SVG to PNG with resvg, for `caffe plot` and `draw_net` when the output
//! name ends in `.png`. Text uses the system's fonts (DejaVu on Debian).
use std::path::Path;

use resvg::{tiny_skia, usvg};

/// Renders an SVG document to PNG bytes at its own size.
pub fn svg_to_png(svg: &str) -> Result<Vec<u8>, String> {
    let mut opt = usvg::Options::default();
    opt.fontdb_mut().load_system_fonts();
    let tree = usvg::Tree::from_str(svg, &opt).map_err(|e| format!("cannot read the SVG: {e}"))?;
    let size = tree.size().to_int_size();
    let mut pixmap = tiny_skia::Pixmap::new(size.width(), size.height())
        .ok_or_else(|| format!("cannot make a {}x{} image", size.width(), size.height()))?;
    pixmap.fill(tiny_skia::Color::WHITE);
    resvg::render(&tree, tiny_skia::Transform::default(), &mut pixmap.as_mut());
    pixmap
        .encode_png()
        .map_err(|e| format!("cannot encode the PNG: {e}"))
}

/// Writes `svg` to `out` as SVG or PNG, by the name's extension.
pub fn write_image(svg: &str, out: &Path) -> Result<(), String> {
    let ext = out
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    let bytes = match ext.as_str() {
        "svg" => svg.as_bytes().to_vec(),
        "png" => svg_to_png(svg)?,
        _ => {
            return Err(format!(
                "{}: the output name must end in .svg or .png",
                out.display()
            ))
        }
    };
    std::fs::write(out, bytes).map_err(|e| format!("cannot write {}: {e}", out.display()))
}
