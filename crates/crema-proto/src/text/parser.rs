//! The prototxt parser: fills any message through rust-protobuf's reflection,
//! accepting the syntax of C++ TextFormat's parser (which is what Caffe's
//! ReadProtoFromTextFile uses) and refusing what it refuses.
use protobuf::reflect::{
    EnumDescriptor, FieldDescriptor, MessageDescriptor, ReflectValueBox, RuntimeFieldType,
    RuntimeType,
};
use protobuf::MessageDyn;

use super::lexer::{Kind, Lexer, Pos, Token};
use super::{enum_name, field_type_name, message_name};
use crate::error::ProtoError;

/// C++ TextFormat's default recursion limit: messages nested deeper are refused,
/// which also keeps hostile input from overflowing our stack.
pub const MAX_DEPTH: usize = 100;

type Result<T> = std::result::Result<T, ProtoError>;

/// Parses `text` into `msg`. `forbid_overwrite` is C++'s Parse (a non-repeated
/// field may be given once); without it, C++'s Merge (a later value replaces an
/// earlier one, and a message given twice is merged).
pub(super) fn parse_into(
    text: &str,
    file: &str,
    msg: &mut dyn MessageDyn,
    forbid_overwrite: bool,
) -> Result<()> {
    let mut p = Parser {
        lx: Lexer::new(text, file),
        forbid_overwrite,
    };
    loop {
        let t = p.lx.peek()?;
        if t.kind == Kind::Eof {
            let end = t.pos;
            return p.check_required(msg, end);
        }
        if t.is("}") || t.is(">") {
            let (pos, what) = (t.pos, t.text.to_string());
            return Err(p.lx.error(
                pos,
                format!("unbalanced \"{what}\": no message is open here"),
            ));
        }
        p.field(msg, 0)?;
    }
}

struct Parser<'a> {
    lx: Lexer<'a>,
    forbid_overwrite: bool,
}

impl<'a> Parser<'a> {
    fn try_consume(&mut self, symbol: &str) -> Result<bool> {
        let hit = self.lx.peek()?.is(symbol);
        if hit {
            self.lx.next()?;
        }
        Ok(hit)
    }

    /// One `name: value`, `name { ... }` or `name: [ ... ]` inside a message at `depth`.
    fn field(&mut self, msg: &mut dyn MessageDyn, depth: usize) -> Result<()> {
        let name = self.lx.next()?;
        if name.kind != Kind::Ident {
            return Err(self.lx.error(
                name.pos,
                format!("expected a field name, found {}", name.describe()),
            ));
        }
        let desc = msg.descriptor_dyn();
        let Some(field) = desc.field_by_name(name.text) else {
            return Err(self.lx.error(
                name.pos,
                format!("no field \"{}\" in {}", name.text, message_name(&desc)),
            ));
        };
        if self.forbid_overwrite && !field.is_repeated_or_map() && field.has_field(&*msg) {
            return Err(self.lx.error(
                name.pos,
                format!(
                    "field \"{}\" is given more than once, but it is not repeated",
                    name.text
                ),
            ));
        }
        match field.runtime_field_type() {
            RuntimeFieldType::Map(..) => {
                return Err(self.lx.error(
                    name.pos,
                    format!("map field \"{}\" is not supported", name.text),
                ));
            }
            RuntimeFieldType::Singular(RuntimeType::Message(_)) => {
                self.try_consume(":")?;
                self.refuse_list(&field, &name)?;
                self.message(field.mut_message(msg), depth + 1, &name)?;
            }
            RuntimeFieldType::Repeated(RuntimeType::Message(md)) => {
                self.try_consume(":")?;
                if self.try_consume("[")? {
                    if !self.try_consume("]")? {
                        loop {
                            self.repeated_message(msg, &field, &md, depth, &name)?;
                            if self.list_ends()? {
                                break;
                            }
                        }
                    }
                } else {
                    self.repeated_message(msg, &field, &md, depth, &name)?;
                }
            }
            RuntimeFieldType::Singular(rt) => {
                self.colon(&name)?;
                self.refuse_list(&field, &name)?;
                let v = self.value(&field, &rt)?;
                field.set_singular_field(msg, v);
            }
            RuntimeFieldType::Repeated(rt) => {
                self.colon(&name)?;
                if self.try_consume("[")? {
                    if !self.try_consume("]")? {
                        loop {
                            let v = self.value(&field, &rt)?;
                            field.mut_repeated(msg).push(v);
                            if self.list_ends()? {
                                break;
                            }
                        }
                    }
                } else {
                    let v = self.value(&field, &rt)?;
                    field.mut_repeated(msg).push(v);
                }
            }
        }
        // Either separator may follow any field, as in C++.
        if !self.try_consume(";")? {
            self.try_consume(",")?;
        }
        Ok(())
    }

    fn colon(&mut self, name: &Token) -> Result<()> {
        let t = self.lx.next()?;
        if t.is(":") {
            Ok(())
        } else {
            Err(self.lx.error(
                t.pos,
                format!(
                    "expected \":\" after field {}, found {}",
                    name.text,
                    t.describe()
                ),
            ))
        }
    }

    fn refuse_list(&mut self, field: &FieldDescriptor, name: &Token) -> Result<()> {
        let t = self.lx.peek()?;
        if t.is("[") {
            let pos = t.pos;
            return Err(self.lx.error(
                pos,
                format!(
                    "field {} ({}) is not repeated, so it cannot take a [list]",
                    name.text,
                    field_type_name(field)
                ),
            ));
        }
        Ok(())
    }

    /// After an element of a `[a, b, c]` list: true at `]`, false at `,`.
    fn list_ends(&mut self) -> Result<bool> {
        let t = self.lx.next()?;
        if t.is("]") {
            Ok(true)
        } else if t.is(",") {
            Ok(false)
        } else {
            Err(self.lx.error(
                t.pos,
                format!("expected \",\" or \"]\" in a list, found {}", t.describe()),
            ))
        }
    }

    fn repeated_message(
        &mut self,
        msg: &mut dyn MessageDyn,
        field: &FieldDescriptor,
        md: &MessageDescriptor,
        depth: usize,
        name: &Token,
    ) -> Result<()> {
        let mut sub = md.new_instance();
        self.message(&mut *sub, depth + 1, name)?;
        field.mut_repeated(msg).push(ReflectValueBox::Message(sub));
        Ok(())
    }

    /// `{ fields }` or `< fields >` for the message field `name`, at `depth`.
    fn message(&mut self, msg: &mut dyn MessageDyn, depth: usize, name: &Token) -> Result<()> {
        let open = self.lx.next()?;
        let close = if open.is("{") {
            "}"
        } else if open.is("<") {
            ">"
        } else {
            return Err(self.lx.error(
                open.pos,
                format!(
                    "expected \"{{\" to open message field {}, found {}",
                    name.text,
                    open.describe()
                ),
            ));
        };
        if depth > MAX_DEPTH {
            return Err(self.lx.error(
                open.pos,
                format!("messages are nested more than {MAX_DEPTH} levels deep"),
            ));
        }
        loop {
            let t = self.lx.peek()?;
            let pos = t.pos;
            if t.is(close) {
                self.lx.next()?;
                return self.check_required(msg, name.pos);
            }
            if t.kind == Kind::Eof {
                return Err(self.lx.error(
                    pos,
                    format!(
                        "unexpected end of file: \"{}\" opened at {}:{} for {} is not closed",
                        open.text, open.pos.line, open.pos.column, name.text
                    ),
                ));
            }
            if t.is("}") || t.is(">") {
                let found = t.describe();
                return Err(self.lx.error(
                    pos,
                    format!(
                        "expected \"{close}\" to close \"{}\" opened at {}:{}, found {found}",
                        open.text, open.pos.line, open.pos.column
                    ),
                ));
            }
            self.field(msg, depth)?;
        }
    }

    /// C++ refuses a message whose required fields are missing (ClipParameter's
    /// min and max are the schema's only ones).
    fn check_required(&self, msg: &dyn MessageDyn, pos: Pos) -> Result<()> {
        let desc = msg.descriptor_dyn();
        for f in desc.fields() {
            if f.is_required() && !f.has_field(msg) {
                return Err(self.lx.error(
                    pos,
                    format!(
                        "required field \"{}\" is missing in {}",
                        f.name(),
                        message_name(&desc)
                    ),
                ));
            }
        }
        Ok(())
    }

    /// One scalar value for `field`, whose element type is `rt`.
    fn value(&mut self, field: &FieldDescriptor, rt: &RuntimeType) -> Result<ReflectValueBox> {
        Ok(match rt {
            RuntimeType::I32 => {
                ReflectValueBox::I32(self.integer(field, i32::MIN.into(), i32::MAX.into())? as i32)
            }
            RuntimeType::I64 => {
                ReflectValueBox::I64(self.integer(field, i64::MIN.into(), i64::MAX.into())? as i64)
            }
            RuntimeType::U32 => {
                ReflectValueBox::U32(self.integer(field, 0, u32::MAX.into())? as u32)
            }
            RuntimeType::U64 => {
                ReflectValueBox::U64(self.integer(field, 0, u64::MAX.into())? as u64)
            }
            // C++ reads every float as a double and narrows it.
            RuntimeType::F32 => ReflectValueBox::F32(self.float(field)? as f32),
            RuntimeType::F64 => ReflectValueBox::F64(self.float(field)?),
            RuntimeType::Bool => ReflectValueBox::Bool(self.boolean(field)?),
            RuntimeType::String => {
                let (pos, bytes) = self.strings(field)?;
                match String::from_utf8(bytes) {
                    Ok(s) => ReflectValueBox::String(s),
                    Err(_) => {
                        return Err(self.lx.error(
                            pos,
                            format!(
                                "the value of string field {} is not valid UTF-8",
                                field.name()
                            ),
                        ))
                    }
                }
            }
            RuntimeType::VecU8 => ReflectValueBox::Bytes(self.strings(field)?.1),
            RuntimeType::Enum(ed) => {
                ReflectValueBox::Enum(ed.clone(), self.enumeration(field, ed)?)
            }
            RuntimeType::Message(_) => {
                let t = self.lx.peek()?;
                let pos = t.pos;
                return Err(self.lx.error(
                    pos,
                    format!("expected \"{{\" for message field {}", field.name()),
                ));
            }
        })
    }

    fn expected(&self, what: &str, field: &FieldDescriptor, found: &Token) -> ProtoError {
        self.lx.error(
            found.pos,
            format!(
                "expected {what} for field {} ({}), found {}",
                field.name(),
                field_type_name(field),
                found.describe()
            ),
        )
    }

    /// An optional `-` and the token after it.
    fn signed(&mut self) -> Result<(bool, Pos, Token<'a>)> {
        let t = self.lx.next()?;
        if t.is("-") {
            let pos = t.pos;
            Ok((true, pos, self.lx.next()?))
        } else {
            Ok((false, t.pos, t))
        }
    }

    /// An integer in `[min, max]`, written in decimal, hex or octal.
    fn integer(&mut self, field: &FieldDescriptor, min: i128, max: i128) -> Result<i128> {
        let (negative, pos, t) = self.signed()?;
        if t.kind != Kind::Int {
            return Err(self.expected("an integer", field, &t));
        }
        let magnitude = int_value(t.text).map(i128::from);
        let value = magnitude.map(|m| if negative { -m } else { m });
        match value {
            Some(v) if (min..=max).contains(&v) => Ok(v),
            _ => Err(self.lx.error(
                pos,
                format!(
                    "value {}{} out of range for field {} ({})",
                    if negative { "-" } else { "" },
                    t.text,
                    field.name(),
                    field_type_name(field)
                ),
            )),
        }
    }

    /// A float or double: a float or decimal integer literal, or inf/infinity/nan
    /// in any case, each optionally negated.
    fn float(&mut self, field: &FieldDescriptor) -> Result<f64> {
        let (negative, _, t) = self.signed()?;
        let value = match t.kind {
            Kind::Float => t.text.trim_end_matches(['f', 'F']).parse::<f64>().ok(),
            Kind::Int if is_decimal(t.text) => t.text.parse::<f64>().ok(),
            Kind::Int => return Err(self.expected("a decimal number", field, &t)),
            Kind::Ident => match t.text.to_ascii_lowercase().as_str() {
                "inf" | "infinity" => Some(f64::INFINITY),
                "nan" => Some(f64::NAN),
                _ => None,
            },
            _ => None,
        };
        match value {
            Some(v) => Ok(if negative { -v } else { v }),
            None => Err(self.expected("a number", field, &t)),
        }
    }

    fn boolean(&mut self, field: &FieldDescriptor) -> Result<bool> {
        let t = self.lx.next()?;
        let value = match (t.kind, t.text) {
            (Kind::Ident, "true" | "True" | "t") => Some(true),
            (Kind::Ident, "false" | "False" | "f") => Some(false),
            (Kind::Int, text) => match int_value(text) {
                Some(0) => Some(false),
                Some(1) => Some(true),
                _ => None,
            },
            _ => None,
        };
        value.ok_or_else(|| self.expected("true or false", field, &t))
    }

    /// One string literal or several adjacent ones, concatenated as in C.
    fn strings(&mut self, field: &FieldDescriptor) -> Result<(Pos, Vec<u8>)> {
        let t = self.lx.next()?;
        if t.kind != Kind::Str {
            return Err(self.expected("a quoted string", field, &t));
        }
        let mut bytes = t.bytes;
        while self.lx.peek()?.kind == Kind::Str {
            bytes.extend_from_slice(&self.lx.next()?.bytes);
        }
        Ok((t.pos, bytes))
    }

    /// An enum value by name, or by number (C++ accepts both).
    fn enumeration(&mut self, field: &FieldDescriptor, ed: &EnumDescriptor) -> Result<i32> {
        let (negative, pos, t) = self.signed()?;
        match t.kind {
            Kind::Ident if !negative => match ed.value_by_name(t.text) {
                Some(v) => Ok(v.value()),
                None => Err(self.lx.error(
                    t.pos,
                    format!("\"{}\" is not a value of enum {}", t.text, enum_name(ed)),
                )),
            },
            Kind::Int => {
                let number = int_value(t.text)
                    .map(i128::from)
                    .map(|m| if negative { -m } else { m })
                    .and_then(|v| i32::try_from(v).ok());
                match number.and_then(|n| ed.value_by_number(n)) {
                    Some(v) => Ok(v.value()),
                    None => Err(self.lx.error(
                        pos,
                        format!(
                            "{}{} is not a value of enum {}",
                            if negative { "-" } else { "" },
                            t.text,
                            enum_name(ed)
                        ),
                    )),
                }
            }
            _ => Err(self.expected("an enum value", field, &t)),
        }
    }
}

fn is_decimal(text: &str) -> bool {
    text == "0" || !text.starts_with('0')
}

/// The value of an integer token (decimal, `0x` hex or `0` octal); None when it
/// does not fit in 64 bits.
fn int_value(text: &str) -> Option<u64> {
    if let Some(hex) = text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        u64::from_str_radix(hex, 16).ok()
    } else if is_decimal(text) {
        text.parse().ok()
    } else {
        u64::from_str_radix(&text[1..], 8).ok()
    }
}
