//! The prototxt tokenizer: identifiers, numbers, quoted strings and one-character
//! symbols, with `#` comments and whitespace skipped, as C++ protobuf's
//! io::Tokenizer reads text format. Tokens are produced on demand so that the
//! first error in the file is the one reported.
use crate::error::ProtoError;

/// What a token is; the parser decides what it means for the field at hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    Ident,
    /// Decimal, hex (`0x1F`) or octal (`017`) digits, no sign.
    Int,
    /// Has a `.`, an exponent or an `f` suffix (`1.`, `.5`, `1e-4`, `1.0f`).
    Float,
    /// One quoted literal, unescaped into `Token::bytes`.
    Str,
    /// Any other single character: `{ } < > [ ] : , ; -` and strays.
    Symbol,
    Eof,
}

/// 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Pos {
    pub line: usize,
    pub column: usize,
}

#[derive(Debug, Clone)]
pub(super) struct Token<'a> {
    pub kind: Kind,
    /// The token as written in the source (quotes included for strings).
    pub text: &'a str,
    pub pos: Pos,
    /// The unescaped bytes of a string literal; empty for other kinds.
    pub bytes: Vec<u8>,
}

impl Token<'_> {
    pub fn is(&self, symbol: &str) -> bool {
        self.kind == Kind::Symbol && self.text == symbol
    }

    /// How the token reads in an error message: `"abc"`, `a string`, `end of file`.
    pub fn describe(&self) -> String {
        match self.kind {
            Kind::Eof => "end of file".to_string(),
            Kind::Str => "a string".to_string(),
            _ => {
                // A fuzzer's megabyte-long number should not become a megabyte-long error.
                let mut shown: String = self.text.chars().take(40).collect();
                if shown.len() < self.text.len() {
                    shown.push_str("...");
                }
                format!("\"{shown}\"")
            }
        }
    }
}

pub(super) struct Lexer<'a> {
    src: &'a str,
    bytes: &'a [u8],
    i: usize,
    line: usize,
    column: usize,
    file: &'a str,
    peeked: Option<Token<'a>>,
}

impl<'a> Lexer<'a> {
    pub fn new(src: &'a str, file: &'a str) -> Self {
        Lexer {
            src,
            bytes: src.as_bytes(),
            i: 0,
            line: 1,
            column: 1,
            file,
            peeked: None,
        }
    }

    pub fn error(&self, pos: Pos, message: impl Into<String>) -> ProtoError {
        ProtoError::Text {
            file: self.file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    pub fn peek(&mut self) -> Result<&Token<'a>, ProtoError> {
        if self.peeked.is_none() {
            self.peeked = Some(self.scan()?);
        }
        Ok(self.peeked.as_ref().expect("just filled"))
    }

    pub fn next(&mut self) -> Result<Token<'a>, ProtoError> {
        match self.peeked.take() {
            Some(t) => Ok(t),
            None => self.scan(),
        }
    }

    fn here(&self) -> Pos {
        Pos {
            line: self.line,
            column: self.column,
        }
    }

    fn at(&self, offset: usize) -> Option<u8> {
        self.bytes.get(self.i + offset).copied()
    }

    /// Consumes one byte. The column moves once per character: not on a byte
    /// followed by a UTF-8 continuation byte of the same character.
    fn bump(&mut self) {
        let b = self.bytes[self.i];
        self.i += 1;
        if b == b'\n' {
            self.line += 1;
            self.column = 1;
        } else if !matches!(self.at(0), Some(c) if c & 0xC0 == 0x80) {
            self.column += 1;
        }
    }

    fn bump_while(&mut self, pred: impl Fn(u8) -> bool) -> usize {
        let start = self.i;
        while matches!(self.at(0), Some(c) if pred(c)) {
            self.bump();
        }
        self.i - start
    }

    fn skip_blanks(&mut self) {
        loop {
            match self.at(0) {
                Some(b' ' | b'\t' | b'\n' | b'\r' | 0x0B | 0x0C) => self.bump(),
                Some(b'#') => {
                    self.bump_while(|c| c != b'\n');
                }
                _ => return,
            }
        }
    }

    fn scan(&mut self) -> Result<Token<'a>, ProtoError> {
        self.skip_blanks();
        let pos = self.here();
        let start = self.i;
        let Some(c) = self.at(0) else {
            return Ok(Token {
                kind: Kind::Eof,
                text: "",
                pos,
                bytes: Vec::new(),
            });
        };
        let mut bytes = Vec::new();
        let kind = match c {
            b'a'..=b'z' | b'A'..=b'Z' | b'_' => {
                self.bump_while(|c| c.is_ascii_alphanumeric() || c == b'_');
                Kind::Ident
            }
            b'0'..=b'9' => self.number(pos, start)?,
            b'.' if matches!(self.at(1), Some(b'0'..=b'9')) => self.number(pos, start)?,
            b'"' | b'\'' => {
                bytes = self.string(pos)?;
                Kind::Str
            }
            0..=0x1F | 0x7F => {
                return Err(self.error(pos, format!("unexpected control character 0x{c:02X}")));
            }
            _ => {
                // One whole character, so that a stray non-ASCII character is
                // reported as itself rather than as half of one.
                let len = self.src[start..].chars().next().map_or(1, char::len_utf8);
                for _ in 0..len {
                    self.bump();
                }
                Kind::Symbol
            }
        };
        Ok(Token {
            kind,
            text: &self.src[start..self.i],
            pos,
            bytes,
        })
    }

    fn number(&mut self, pos: Pos, start: usize) -> Result<Kind, ProtoError> {
        let mut kind = Kind::Int;
        if self.at(0) == Some(b'0') && matches!(self.at(1), Some(b'x' | b'X')) {
            self.bump();
            self.bump();
            if self.bump_while(|c| c.is_ascii_hexdigit()) == 0 {
                return Err(self.error(pos, "\"0x\" must be followed by hex digits"));
            }
        } else if self.at(0) == Some(b'0') && matches!(self.at(1), Some(b'0'..=b'9')) {
            self.bump_while(|c| c.is_ascii_digit());
            let digits = &self.src[start..self.i];
            if digits.bytes().any(|c| c == b'8' || c == b'9') {
                return Err(self.error(
                    pos,
                    format!("\"{digits}\": a number starting with 0 is octal"),
                ));
            }
        } else {
            self.bump_while(|c| c.is_ascii_digit());
            if self.at(0) == Some(b'.') {
                self.bump();
                self.bump_while(|c| c.is_ascii_digit());
                kind = Kind::Float;
            }
            if matches!(self.at(0), Some(b'e' | b'E')) {
                self.bump();
                if matches!(self.at(0), Some(b'+' | b'-')) {
                    self.bump();
                }
                if self.bump_while(|c| c.is_ascii_digit()) == 0 {
                    return Err(self.error(pos, "an exponent \"e\" must be followed by digits"));
                }
                kind = Kind::Float;
            }
            if matches!(self.at(0), Some(b'f' | b'F')) {
                self.bump();
                kind = Kind::Float;
            }
        }
        match self.at(0) {
            Some(b'.') => Err(self.error(
                pos,
                "a number cannot have a second \".\" or a \".\" after its exponent",
            )),
            Some(c) if c.is_ascii_alphanumeric() || c == b'_' => Err(self.error(
                pos,
                "a number must be followed by a space or a symbol, not a letter",
            )),
            _ => Ok(kind),
        }
    }

    /// Reads a quoted literal with C escapes; the result is raw bytes because
    /// `\xNN` and octal escapes may produce any byte (`bytes` fields hold them).
    fn string(&mut self, pos: Pos) -> Result<Vec<u8>, ProtoError> {
        let quote = self.bytes[self.i];
        self.bump();
        let mut out = Vec::new();
        loop {
            let Some(c) = self.at(0) else {
                return Err(self.error(
                    pos,
                    "unterminated string: end of file before the closing quote",
                ));
            };
            match c {
                b'\n' => {
                    return Err(self.error(pos, "unterminated string: a string cannot span lines"));
                }
                _ if c == quote => {
                    self.bump();
                    return Ok(out);
                }
                b'\\' => self.escape(pos, &mut out)?,
                _ => {
                    out.push(c);
                    self.bump();
                }
            }
        }
    }

    fn escape(&mut self, string_pos: Pos, out: &mut Vec<u8>) -> Result<(), ProtoError> {
        let at = self.here();
        self.bump();
        let Some(c) = self.at(0) else {
            return Err(self.error(
                string_pos,
                "unterminated string: end of file before the closing quote",
            ));
        };
        let simple = match c {
            b'n' => Some(b'\n'),
            b't' => Some(b'\t'),
            b'r' => Some(b'\r'),
            b'a' => Some(0x07),
            b'b' => Some(0x08),
            b'f' => Some(0x0C),
            b'v' => Some(0x0B),
            b'\\' | b'?' | b'\'' | b'"' => Some(c),
            _ => None,
        };
        if let Some(b) = simple {
            self.bump();
            out.push(b);
            return Ok(());
        }
        match c {
            b'0'..=b'7' => {
                let mut v: u32 = 0;
                for _ in 0..3 {
                    match self.at(0) {
                        Some(d @ b'0'..=b'7') => {
                            v = v * 8 + u32::from(d - b'0');
                            self.bump();
                        }
                        _ => break,
                    }
                }
                // C++ stores the low byte of \400..\777, as a C compiler does.
                out.push(v as u8);
            }
            b'x' | b'X' => {
                self.bump();
                let v = self.hex_digits(2);
                match v {
                    Some((v, _)) => out.push(v as u8),
                    None => return Err(self.error(at, "\"\\x\" must be followed by hex digits")),
                }
            }
            b'u' | b'U' => {
                let width = if c == b'u' { 4 } else { 8 };
                self.bump();
                let code = match self.hex_digits(width) {
                    Some((v, n)) if n == width => char::from_u32(v),
                    _ => None,
                };
                let Some(ch) = code else {
                    return Err(self.error(
                        at,
                        format!("\"\\{}\" must be followed by {width} hex digits of a Unicode code point", c as char),
                    ));
                };
                out.extend_from_slice(ch.encode_utf8(&mut [0; 4]).as_bytes());
            }
            _ => {
                let shown = self.src[self.i..].chars().next().unwrap_or('?');
                return Err(self.error(at, format!("invalid escape \"\\{shown}\" in string")));
            }
        }
        Ok(())
    }

    /// Up to `max` hex digits: their value and how many there were (None if none).
    fn hex_digits(&mut self, max: usize) -> Option<(u32, usize)> {
        let mut v: u32 = 0;
        let mut n = 0;
        while n < max {
            match self.at(0).and_then(|c| (c as char).to_digit(16)) {
                Some(d) => {
                    v = v.wrapping_mul(16).wrapping_add(d);
                    n += 1;
                    self.bump();
                }
                None => break,
            }
        }
        (n > 0).then_some((v, n))
    }
}
