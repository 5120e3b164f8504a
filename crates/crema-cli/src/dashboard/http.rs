//! Just enough HTTP/1.1 for a read-only local page: GET and HEAD, no
//! bodies, the request head capped at 8 KiB and the target at 2 KiB, one
//! request per connection. Written here rather than taken from a crate
//! because the limits are the point: tiny_http, for one, reads header lines
//! of any length.
use std::io::{Read, Write};

pub const MAX_HEAD: usize = 8 * 1024;
pub const MAX_TARGET: usize = 2 * 1024;

#[derive(Debug, PartialEq)]
pub struct Request {
    pub head_only: bool,
    /// The decoded path, without the query.
    pub path: String,
    pub query: String,
}

/// A refusal: status code and reason.
pub type Refusal = (u16, &'static str);

/// Reads one request head from `r`, refusing what this server never serves.
pub fn read_request(r: &mut impl Read) -> Result<Request, Refusal> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(p) = find(&buf, b"\r\n\r\n") {
            break p;
        }
        if buf.len() > MAX_HEAD {
            return Err((431, "Request Header Fields Too Large"));
        }
        let n = r.read(&mut chunk).map_err(|_| (408, "Request Timeout"))?;
        if n == 0 {
            return Err((400, "Bad Request"));
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    if end > MAX_HEAD {
        return Err((431, "Request Header Fields Too Large"));
    }
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| (400, "Bad Request"))?;
    let mut lines = head.split("\r\n");
    let line = lines.next().unwrap_or("");
    let mut parts = line.split(' ');
    let (method, target, version) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(m), Some(t), Some(v), None) => (m, t, v),
        _ => return Err((400, "Bad Request")),
    };
    if !version.starts_with("HTTP/1.") {
        return Err((505, "HTTP Version Not Supported"));
    }
    let head_only = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Err((405, "Method Not Allowed")),
    };
    if target.len() > MAX_TARGET {
        return Err((414, "URI Too Long"));
    }
    for h in lines {
        let (name, value) = h.split_once(':').ok_or((400, "Bad Request"))?;
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim();
        if (name == "content-length" && value != "0") || name == "transfer-encoding" {
            return Err((413, "Payload Too Large"));
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let path = decode(path).ok_or((400, "Bad Request"))?;
    // Nothing here lives outside the page's own names: no parent steps,
    // no backslashes, no NULs, however they were encoded.
    if !path.starts_with('/')
        || path.split('/').any(|seg| seg == "..")
        || path.contains('\\')
        || path.contains('\0')
    {
        return Err((400, "Bad Request"));
    }
    Ok(Request {
        head_only,
        path,
        query: query.to_string(),
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Percent-decoding; None for a bad escape or a result that is not UTF-8.
fn decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Writes a whole response and closes the exchange.
pub fn respond(
    w: &mut impl Write,
    status: u16,
    reason: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> std::io::Result<()> {
    write!(
        w,
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n\
         Content-Security-Policy: default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:\r\n\
         Connection: close\r\n\r\n",
        body.len()
    )?;
    if !head_only {
        w.write_all(body)?;
    }
    w.flush()
}

/// A refusal as a plain-text response.
pub fn refuse(w: &mut impl Write, (status, reason): Refusal) -> std::io::Result<()> {
    respond(
        w,
        status,
        reason,
        "text/plain; charset=utf-8",
        format!("{status} {reason}\n").as_bytes(),
        false,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(s: &str) -> Result<Request, Refusal> {
        read_request(&mut s.as_bytes())
    }

    #[test]
    fn a_plain_get_is_read_with_its_query() {
        let r = req("GET /net.svg?rankdir=LR HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
        assert_eq!(r.path, "/net.svg");
        assert_eq!(r.query, "rankdir=LR");
        assert!(!r.head_only);
        assert!(req("HEAD / HTTP/1.0\r\n\r\n").unwrap().head_only);
    }

    #[test]
    fn parent_steps_are_refused_however_encoded() {
        for path in [
            "/../etc/passwd",
            "/files/../../etc/passwd",
            "/files/%2e%2e/%2e%2e/etc/passwd",
            "/files/..%2Fsecret",
            "/files/a%5c..%5cb",
            "/files/%00",
            "/files/%zz",
        ] {
            let r = req(&format!("GET {path} HTTP/1.1\r\n\r\n"));
            assert_eq!(r.unwrap_err().0, 400, "{path}");
        }
    }

    #[test]
    fn oversized_or_bodied_requests_are_refused() {
        let long_target = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(MAX_TARGET + 1));
        assert_eq!(req(&long_target).unwrap_err().0, 414);
        let huge_head = format!("GET / HTTP/1.1\r\nX: {}\r\n\r\n", "b".repeat(MAX_HEAD));
        assert_eq!(req(&huge_head).unwrap_err().0, 431);
        // An endless header line is cut off at the cap, not read to the end.
        let mut endless =
            std::io::Read::chain("GET / HTTP/1.1\r\nX: ".as_bytes(), std::io::repeat(b'c'));
        assert_eq!(read_request(&mut endless).unwrap_err().0, 431);
        let post = "POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(req(post).unwrap_err().0, 405);
        let body = "GET / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n";
        assert_eq!(req(body).unwrap_err().0, 413);
        let chunked = "GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(req(chunked).unwrap_err().0, 413);
        assert_eq!(req("GET / SPDY/3\r\n\r\n").unwrap_err().0, 505);
        assert_eq!(req("garbage\r\n\r\n").unwrap_err().0, 400);
    }
}
