//! The prototxt printer: C++ TextFormat::Print's layout, byte for byte, so a net
//! or solver crema writes reads (and diffs) like one Caffe wrote.
use std::cmp::Ordering;
use std::fmt::Write;

use protobuf::reflect::{ReflectFieldRef, ReflectValueRef};
use protobuf::{MessageDyn, UnknownFields, UnknownValueRef};

/// How deep a length-delimited unknown field is tried as an embedded message
/// (C++'s kUnknownFieldRecursionLimit); deeper ones print as strings.
const UNKNOWN_EMBED_BUDGET: usize = 10;

pub(super) fn print_message(msg: &dyn MessageDyn, indent: usize, out: &mut String) {
    let desc = msg.descriptor_dyn();
    let mut fields: Vec<_> = desc.fields().collect();
    fields.sort_by_key(|f| f.number());
    for f in fields {
        match f.get_reflect(msg) {
            ReflectFieldRef::Optional(v) => {
                if let Some(v) = v.value() {
                    print_field(f.name(), v, indent, out);
                }
            }
            ReflectFieldRef::Repeated(r) => {
                for v in r.into_iter() {
                    print_field(f.name(), v, indent, out);
                }
            }
            // Caffe's schema has no maps; a map prints as C++ prints it, as
            // key/value entries sorted by key.
            ReflectFieldRef::Map(m) => {
                let mut entries: Vec<_> = (&m).into_iter().collect();
                entries.sort_by(|a, b| map_key_order(&a.0, &b.0));
                for (k, v) in entries {
                    pad(indent, out);
                    out.push_str(f.name());
                    out.push_str(" {\n");
                    print_field("key", k, indent + 1, out);
                    print_field("value", v, indent + 1, out);
                    pad(indent, out);
                    out.push_str("}\n");
                }
            }
        }
    }
    print_unknown(msg.special_fields_dyn().unknown_fields(), indent, out);
}

/// Map keys are integers, bools or strings; C++ orders each by value.
fn map_key_order(a: &ReflectValueRef, b: &ReflectValueRef) -> Ordering {
    match (a, b) {
        (ReflectValueRef::I32(x), ReflectValueRef::I32(y)) => x.cmp(y),
        (ReflectValueRef::I64(x), ReflectValueRef::I64(y)) => x.cmp(y),
        (ReflectValueRef::U32(x), ReflectValueRef::U32(y)) => x.cmp(y),
        (ReflectValueRef::U64(x), ReflectValueRef::U64(y)) => x.cmp(y),
        (ReflectValueRef::Bool(x), ReflectValueRef::Bool(y)) => x.cmp(y),
        (ReflectValueRef::String(x), ReflectValueRef::String(y)) => x.cmp(y),
        _ => Ordering::Equal,
    }
}

fn pad(indent: usize, out: &mut String) {
    for _ in 0..indent {
        out.push_str("  ");
    }
}

fn print_field(name: &str, v: ReflectValueRef, indent: usize, out: &mut String) {
    pad(indent, out);
    out.push_str(name);
    match v {
        ReflectValueRef::Message(m) => {
            out.push_str(" {\n");
            print_message(&*m, indent + 1, out);
            pad(indent, out);
            out.push_str("}\n");
        }
        scalar => {
            out.push_str(": ");
            print_scalar(&scalar, out);
            out.push('\n');
        }
    }
}

fn print_scalar(v: &ReflectValueRef, out: &mut String) {
    match v {
        ReflectValueRef::U32(x) => write!(out, "{x}"),
        ReflectValueRef::U64(x) => write!(out, "{x}"),
        ReflectValueRef::I32(x) => write!(out, "{x}"),
        ReflectValueRef::I64(x) => write!(out, "{x}"),
        ReflectValueRef::F32(x) => write!(out, "{}", super::simple_ftoa(*x)),
        ReflectValueRef::F64(x) => write!(out, "{}", super::simple_dtoa(*x)),
        ReflectValueRef::Bool(x) => write!(out, "{x}"),
        ReflectValueRef::String(s) => write!(out, "\"{}\"", super::c_escape(s.as_bytes())),
        ReflectValueRef::Bytes(b) => write!(out, "\"{}\"", super::c_escape(b)),
        // An unknown number (possible through the integer API) prints as itself, as in C++.
        ReflectValueRef::Enum(ed, n) => match ed.value_by_number(*n) {
            Some(value) => write!(out, "{}", value.name()),
            None => write!(out, "{n}"),
        },
        ReflectValueRef::Message(_) => Ok(()),
    }
    .expect("writing to a String cannot fail");
}

/// One unknown field as the wire holds it; groups only appear inside
/// length-delimited values that we decode ourselves.
enum Wire<'a> {
    Varint(u64),
    Fixed32(u32),
    Fixed64(u64),
    Bytes(&'a [u8]),
    Group(WireFields<'a>),
}

/// Unknown fields after the known ones, by number: rust-protobuf keeps them in
/// a hash map, so the wire order is gone and number order is the stable choice
/// (the same one binary.rs makes when writing them back).
fn print_unknown(fields: &UnknownFields, indent: usize, out: &mut String) {
    let mut all: WireFields = fields
        .iter()
        .map(|(n, v)| {
            let w = match v {
                UnknownValueRef::Varint(x) => Wire::Varint(x),
                UnknownValueRef::Fixed32(x) => Wire::Fixed32(x),
                UnknownValueRef::Fixed64(x) => Wire::Fixed64(x),
                UnknownValueRef::LengthDelimited(b) => Wire::Bytes(b),
            };
            (n, w)
        })
        .collect();
    all.sort_by_key(|(n, _)| *n);
    print_wire(&all, indent, UNKNOWN_EMBED_BUDGET, out);
}

fn print_wire(fields: &[(u32, Wire)], indent: usize, budget: usize, out: &mut String) {
    for (number, w) in fields {
        pad(indent, out);
        let _ = write!(out, "{number}");
        match w {
            Wire::Varint(x) => {
                let _ = writeln!(out, ": {x}");
            }
            Wire::Fixed32(x) => {
                let _ = writeln!(out, ": 0x{x:08x}");
            }
            Wire::Fixed64(x) => {
                let _ = writeln!(out, ": 0x{x:016x}");
            }
            Wire::Bytes(b) => {
                // Like C++: bytes that decode as a message print as one.
                match (budget > 0 && !b.is_empty())
                    .then(|| decode_wire(b, budget))
                    .flatten()
                {
                    Some(inner) => {
                        out.push_str(" {\n");
                        print_wire(&inner, indent + 1, budget - 1, out);
                        pad(indent, out);
                        out.push_str("}\n");
                    }
                    None => {
                        let _ = writeln!(out, ": \"{}\"", super::c_escape(b));
                    }
                }
            }
            Wire::Group(inner) => {
                out.push_str(" {\n");
                print_wire(inner, indent + 1, budget.saturating_sub(1), out);
                pad(indent, out);
                out.push_str("}\n");
            }
        }
    }
}

/// Fields read from the wire, in wire order.
type WireFields<'a> = Vec<(u32, Wire<'a>)>;

/// Decodes `bytes` as a whole message of unknown fields, groups nested at most
/// `group_budget` deep; None when they are not one.
fn decode_wire(bytes: &[u8], group_budget: usize) -> Option<WireFields<'_>> {
    let mut at = 0;
    let (fields, end_group) = decode_fields(bytes, &mut at, group_budget)?;
    (end_group.is_none() && at == bytes.len()).then_some(fields)
}

/// Reads fields until the input ends or an end-group tag (whose number is returned).
fn decode_fields<'a>(
    bytes: &'a [u8],
    at: &mut usize,
    group_budget: usize,
) -> Option<(WireFields<'a>, Option<u32>)> {
    let mut fields = Vec::new();
    while *at < bytes.len() {
        let tag = u32::try_from(varint(bytes, at)?).ok()?;
        let number = tag >> 3;
        if number == 0 {
            return None;
        }
        let w = match tag & 7 {
            0 => Wire::Varint(varint(bytes, at)?),
            1 => Wire::Fixed64(u64::from_le_bytes(take(bytes, at, 8)?.try_into().ok()?)),
            2 => {
                let len = usize::try_from(varint(bytes, at)?).ok()?;
                Wire::Bytes(take(bytes, at, len)?)
            }
            3 => {
                let budget = group_budget.checked_sub(1)?;
                let (inner, end) = decode_fields(bytes, at, budget)?;
                if end != Some(number) {
                    return None;
                }
                Wire::Group(inner)
            }
            4 => return Some((fields, Some(number))),
            5 => Wire::Fixed32(u32::from_le_bytes(take(bytes, at, 4)?.try_into().ok()?)),
            _ => return None,
        };
        fields.push((number, w));
    }
    Some((fields, None))
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, len: usize) -> Option<&'a [u8]> {
    let end = at.checked_add(len).filter(|&e| e <= bytes.len())?;
    let s = &bytes[*at..end];
    *at = end;
    Some(s)
}

fn varint(bytes: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *bytes.get(*at)?;
        *at += 1;
        v |= u64::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}
