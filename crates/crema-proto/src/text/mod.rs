//! Caffe's text format (`.prototxt`): read and write any message of the schema
//! through rust-protobuf's reflection, with C++ TextFormat's syntax and layout.
//!
//! Parsing accepts what C++ TextFormat::Parse accepts (the parser Caffe's
//! ReadProtoFromTextFile uses) and reports the first error at its 1-based
//! line:column. Printing reproduces TextFormat::Print byte for byte: fields in
//! number order, set fields only, two-space indentation, enums by name, C-escaped
//! strings, floats through SimpleFtoa and doubles through SimpleDtoa.
//!
//! Error columns count characters (a tab is one column). Map fields, which
//! Caffe's schema does not have, print but are refused by the parser.
use std::path::Path;

use protobuf::descriptor::field_descriptor_proto::Type;
use protobuf::reflect::{EnumDescriptor, FieldDescriptor, MessageDescriptor};
use protobuf::{MessageDyn, MessageFull};

use crate::binary::{read_file, write_atomic};
use crate::error::{ProtoError, Result};

mod lexer;
mod parser;
mod printer;

pub use parser::MAX_DEPTH;

/// Parses `text` as a whole `M`; `file` names the text in errors. As in C++'s
/// Parse, a non-repeated field may be given only once.
pub fn parse<M: MessageFull>(text: &str, file: &str) -> Result<M> {
    let mut msg = M::new();
    parser::parse_into(text, file, &mut msg, true)?;
    Ok(msg)
}

/// Parses `text` into `msg`, keeping what it holds: C++'s Merge, where a value
/// for a non-repeated field replaces the one before and repeated fields grow.
pub fn merge(text: &str, file: &str, msg: &mut dyn MessageDyn) -> Result<()> {
    parser::parse_into(text, file, msg, false)
}

/// Reads and parses a prototxt file; errors name the path.
pub fn read_text_file<M: MessageFull>(path: &Path) -> Result<M> {
    let bytes = read_file(path)?;
    let name = path.display().to_string();
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let before = &bytes[..e.valid_up_to()];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let column = String::from_utf8_lossy(&before[line_start..])
            .chars()
            .count()
            + 1;
        ProtoError::Text {
            file: name.clone(),
            line,
            column,
            message: "the file is not valid UTF-8".into(),
        }
    })?;
    parse(text, &name)
}

/// The text C++ TextFormat::Print writes for `msg`.
pub fn print(msg: &dyn MessageDyn) -> String {
    let mut out = String::new();
    printer::print_message(msg, 0, &mut out);
    out
}

/// Prints `msg` to `path` atomically (a crash never leaves half a file).
pub fn write_text_file(path: &Path, msg: &dyn MessageDyn) -> Result<()> {
    write_atomic(path, print(msg).as_bytes())
}

/// A message's name without the schema's package: `ConvolutionParameter`.
pub(crate) fn message_name(desc: &MessageDescriptor) -> String {
    desc.name_to_package().to_string()
}

/// An enum's name without the package: `PoolingParameter.PoolMethod`.
pub(crate) fn enum_name(desc: &EnumDescriptor) -> String {
    desc.name_to_package().to_string()
}

/// The field's type as the .proto spells it, for errors: `float`, `uint32`,
/// `PoolingParameter.PoolMethod`.
pub(crate) fn field_type_name(field: &FieldDescriptor) -> String {
    let t = field.proto().type_();
    let name = match t {
        Type::TYPE_DOUBLE => "double",
        Type::TYPE_FLOAT => "float",
        Type::TYPE_INT64 => "int64",
        Type::TYPE_UINT64 => "uint64",
        Type::TYPE_INT32 => "int32",
        Type::TYPE_FIXED64 => "fixed64",
        Type::TYPE_FIXED32 => "fixed32",
        Type::TYPE_BOOL => "bool",
        Type::TYPE_STRING => "string",
        Type::TYPE_GROUP => "group",
        Type::TYPE_BYTES => "bytes",
        Type::TYPE_UINT32 => "uint32",
        Type::TYPE_SFIXED32 => "sfixed32",
        Type::TYPE_SFIXED64 => "sfixed64",
        Type::TYPE_SINT32 => "sint32",
        Type::TYPE_SINT64 => "sint64",
        Type::TYPE_ENUM | Type::TYPE_MESSAGE => {
            return match field.singular_runtime_type() {
                protobuf::reflect::RuntimeType::Enum(e) => enum_name(&e),
                protobuf::reflect::RuntimeType::Message(m) => message_name(&m),
                _ => "message".to_string(),
            }
        }
    };
    name.to_string()
}

/// C's `printf("%.{precision}g", v)`: the shorter of fixed and exponent notation
/// by C's rule, trailing zeros trimmed, an exponent of at least two digits.
pub fn format_g(v: f64, precision: usize) -> String {
    if v.is_nan() {
        return "nan".to_string();
    }
    if v.is_infinite() {
        return if v > 0.0 { "inf" } else { "-inf" }.to_string();
    }
    let p = precision.max(1);
    // The exponent after rounding to p significant digits decides the notation.
    let sci = format!("{:.*e}", p - 1, v);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always writes an exponent");
    let exp: i32 = exp.parse().expect("{:e} writes a decimal exponent");
    if exp < -4 || exp >= p as i32 {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{}e{sign}{:02}", trim_zeros(mantissa), exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp) as usize;
        trim_zeros(&format!("{v:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// C++ protobuf's SimpleFtoa: `%.6g` when it reads back as the same float,
/// else `%.9g` (which always does).
pub fn simple_ftoa(v: f32) -> String {
    let short = format_g(f64::from(v), 6);
    if v.is_nan() || short.parse::<f32>().ok() == Some(v) {
        short
    } else {
        format_g(f64::from(v), 9)
    }
}

/// C++ protobuf's SimpleDtoa: `%.15g`, else `%.17g`.
pub fn simple_dtoa(v: f64) -> String {
    let short = format_g(v, 15);
    if v.is_nan() || short.parse::<f64>().ok() == Some(v) {
        short
    } else {
        format_g(v, 17)
    }
}

/// C++'s CEscape: `\n \r \t \" \' \\` by name, other bytes outside printable
/// ASCII as three octal digits.
pub fn c_escape(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        match b {
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b'"' => out.push_str("\\\""),
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            0x20..=0x7E => out.push(b as char),
            _ => out.push_str(&format!("\\{b:03o}")),
        }
    }
    out
}
