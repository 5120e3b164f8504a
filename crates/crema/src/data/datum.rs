//! Datum helpers: parse a database record, check its sizes, decode an encoded
//! (JPEG/PNG) datum into Caffe's raw CHW bytes, and make datums from image
//! files the way convert_imageset does (Caffe's ReadImageToDatum).
use std::borrow::Cow;
use std::path::Path;

use crema_proto::caffe::Datum;

use super::image_io::{ColorMode, Image};
use crate::error::{Error, Result};

/// Parses a serialized Datum; the error names the record (`key`) and the
/// database it came from.
pub fn parse_datum(bytes: &[u8], key: &str, source: &str) -> Result<Datum> {
    crema_proto::binary::decode::<Datum>(bytes, Path::new(source), "Datum").map_err(|e| {
        Error::Other(format!(
            "record {key} in {source} is not a valid Datum: {e}"
        ))
    })
}

/// `(channels, height, width)` of a raw datum, checked against the length of
/// its `data` or `float_data`, so the transformer never reads out of bounds.
pub fn datum_dims(datum: &Datum) -> std::result::Result<(usize, usize, usize), String> {
    let (c, h, w) = (datum.channels(), datum.height(), datum.width());
    if c <= 0 || h <= 0 || w <= 0 {
        return Err(format!(
            "datum has a non-positive shape {c}x{h}x{w} (channels x height x width)"
        ));
    }
    let count = c as usize * h as usize * w as usize;
    let stored = if datum.data().is_empty() {
        datum.float_data.len()
    } else {
        datum.data().len()
    };
    if stored != count {
        let field = if datum.data().is_empty() {
            "float_data"
        } else {
            "data"
        };
        return Err(format!(
            "datum {field} holds {stored} values but its shape {c}x{h}x{w} needs {count}"
        ));
    }
    Ok((c as usize, h as usize, w as usize))
}

/// The datum as raw pixels: an encoded datum is decoded (Caffe's
/// DecodeDatumToCVMat / ...Native) into an unencoded one with the same label;
/// a raw datum is borrowed as it is.
pub fn decode_datum(datum: &Datum, mode: ColorMode) -> std::result::Result<Cow<'_, Datum>, String> {
    if !datum.encoded() {
        return Ok(Cow::Borrowed(datum));
    }
    let img = Image::decode(datum.data(), mode)
        .map_err(|e| format!("encoded image does not decode: {e}"))?;
    Ok(Cow::Owned(img.to_datum(datum.label())))
}

/// A datum holding a file's bytes as they are (Caffe's ReadFileToDatum).
pub fn file_to_datum(path: &Path, label: i32) -> Result<Datum> {
    let bytes = std::fs::read(path)
        .map_err(|e| Error::Other(format!("cannot read {}: {e}", path.display())))?;
    let mut d = Datum::new();
    d.set_data(bytes);
    d.set_label(label);
    d.set_encoded(true);
    Ok(d)
}

/// Caffe's ReadImageToDatum: reads `path` as colour or gray, resizes when
/// both `height` and `width` are positive, and stores raw CHW pixels, or,
/// with an `encoding` ("jpg", "png"), encoded bytes. Without a resize and
/// with the extension matching the encoding, the file's own bytes are kept.
pub fn read_image_to_datum(
    path: &Path,
    label: i32,
    height: usize,
    width: usize,
    is_color: bool,
    encoding: &str,
) -> Result<Datum> {
    let mut img = Image::read(path, ColorMode::from_is_color(is_color))?;
    if height > 0 && width > 0 {
        img = img.resize(height, width);
    }
    if encoding.is_empty() {
        return Ok(img.to_datum(label));
    }
    let ext_matches = path
        .extension()
        .map(|e| e.to_string_lossy().eq_ignore_ascii_case(encoding))
        .unwrap_or(false);
    // Caffe's extra test, decoded channels == 3 iff is_color, always holds
    // after a colour or gray read, so only size and extension matter.
    if height == 0 && width == 0 && ext_matches {
        return file_to_datum(path, label);
    }
    let mut d = Datum::new();
    d.set_data(img.encode(encoding)?);
    d.set_label(label);
    d.set_encoded(true);
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(c: i32, h: i32, w: i32, data: Vec<u8>) -> Datum {
        let mut d = Datum::new();
        d.set_channels(c);
        d.set_height(h);
        d.set_width(w);
        d.set_data(data);
        d
    }

    #[test]
    fn dims_check_data_and_float_data_lengths() {
        assert_eq!(datum_dims(&raw(1, 2, 2, vec![0; 4])), Ok((1, 2, 2)));
        let err = datum_dims(&raw(3, 2, 2, vec![0; 4])).unwrap_err();
        assert!(
            err.contains("holds 4 values") && err.contains("needs 12"),
            "{err}"
        );
        let mut f = raw(1, 1, 3, vec![]);
        f.float_data = vec![0.5, 1.5, 2.5];
        assert_eq!(datum_dims(&f), Ok((1, 1, 3)));
        assert!(datum_dims(&raw(0, 1, 1, vec![]))
            .unwrap_err()
            .contains("non-positive"));
    }

    #[test]
    fn corrupt_record_names_its_key() {
        let err = parse_datum(b"\x0a\xff\xff\xff", "00000003_cat.jpg", "/tmp/db")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("00000003_cat.jpg") && err.contains("/tmp/db"),
            "{err}"
        );
    }

    #[test]
    fn encoded_png_datum_decodes_to_the_raw_datum() {
        let img = Image {
            height: 2,
            width: 1,
            channels: 3,
            data: vec![1, 2, 3, 4, 5, 6],
        };
        let mut enc = Datum::new();
        enc.set_data(img.encode("png").unwrap());
        enc.set_encoded(true);
        enc.set_label(9);
        let dec = decode_datum(&enc, ColorMode::Native).unwrap();
        assert_eq!(dec.data(), &[1, 4, 2, 5, 3, 6]);
        assert_eq!(
            (dec.channels(), dec.height(), dec.width(), dec.label()),
            (3, 2, 1, 9)
        );
        let mut bad = enc.clone();
        bad.set_data(b"\x89PNG\r\n\x1a\n broken".to_vec());
        assert!(decode_datum(&bad, ColorMode::Native)
            .unwrap_err()
            .contains("does not decode"));
    }
}
