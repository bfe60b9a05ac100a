//! Reading what arrived: MIME entities and multipart bodies, base64, quoted-printable
//! and encoded words, and the links of a mail.

use super::ReceivedMail;

/// A MIME entity: unfolded headers (names lower-cased) and the raw body, LF line endings.
struct Entity {
    headers: Vec<(String, String)>,
    body: String,
}

impl Entity {
    fn parse(raw: &str) -> Entity {
        let raw = raw.replace("\r\n", "\n");
        let (head, body) = if let Some(body) = raw.strip_prefix('\n') {
            ("", body)
        } else {
            raw.split_once("\n\n").unwrap_or((raw.as_str(), ""))
        };
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, value)) = headers.last_mut() {
                    value.push_str(line);
                }
            } else if let Some((name, value)) = line.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
            }
        }
        Entity {
            headers,
            body: body.to_owned(),
        }
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Lower-cased MIME type and the parameters of Content-Type (text/plain by default).
    fn content_type(&self) -> (String, Vec<(String, String)>) {
        let Some(value) = self.header("content-type") else {
            return ("text/plain".into(), Vec::new());
        };
        let mut pieces = value.split(';');
        let mime = pieces.next().unwrap_or("").trim().to_ascii_lowercase();
        let params = pieces
            .filter_map(|p| p.split_once('='))
            .map(|(k, v)| {
                let v = v.trim();
                let v = v
                    .strip_prefix('"')
                    .and_then(|v| v.strip_suffix('"'))
                    .unwrap_or(v);
                (k.trim().to_ascii_lowercase(), v.to_owned())
            })
            .collect();
        (mime, params)
    }

    /// The decoded body of the first leaf part of type `mime`, searching depth first.
    fn find(&self, mime: &str) -> Option<String> {
        let (own, params) = self.content_type();
        if own.starts_with("multipart/") {
            let boundary = params.iter().find(|(k, _)| k == "boundary")?.1.clone();
            return split_multipart(&self.body, &boundary)
                .iter()
                .find_map(|part| Entity::parse(part).find(mime));
        }
        if own != mime {
            return None;
        }
        let encoding = self
            .header("content-transfer-encoding")
            .unwrap_or("7bit")
            .trim()
            .to_ascii_lowercase();
        let bytes = match encoding.as_str() {
            "base64" => base64_decode(&self.body)?,
            "quoted-printable" => quoted_printable_decode(&self.body),
            _ => self.body.clone().into_bytes(),
        };
        Some(String::from_utf8_lossy(&bytes).replace("\r\n", "\n"))
    }
}

fn split_multipart(body: &str, boundary: &str) -> Vec<String> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    let mut current: Option<Vec<&str>> = None;
    for line in body.split('\n') {
        let line_trimmed = line.trim_end();
        if line_trimmed == delimiter || line_trimmed == format!("{delimiter}--") {
            if let Some(lines) = current.take() {
                parts.push(lines.join("\n"));
            }
            if line_trimmed != delimiter {
                break;
            }
            current = Some(Vec::new());
        } else if let Some(lines) = current.as_mut() {
            lines.push(line);
        }
    }
    parts
}

pub(super) fn base64_decode(input: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    let mut buffer = 0u32;
    let mut bits = 0;
    for c in input.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            c if c.is_ascii_whitespace() => continue,
            _ => return None,
        };
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buffer >> bits) as u8);
            buffer &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn quoted_printable_decode(input: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut lines = input.split('\n').peekable();
    while let Some(line) = lines.next() {
        // trailing white space is transport padding (RFC 2045 6.7)
        let line = line.trim_end_matches([' ', '\t', '\r']);
        let (line, soft_break) = match line.strip_suffix('=') {
            Some(line) => (line, true),
            None => (line, false),
        };
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
            match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (b'=', Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                }
                (b, _, _) => {
                    out.push(b);
                    i += 1;
                }
            }
        }
        if !soft_break && lines.peek().is_some() {
            out.push(b'\n');
        }
    }
    out
}

/// Decodes RFC 2047 encoded words (`=?utf-8?b?…?=`, `=?utf-8?q?…?=`); white space
/// between two encoded words is dropped, as the RFC says.
fn decode_header(value: &str) -> String {
    let mut out = String::new();
    let mut pending_space = String::new();
    let mut previous_encoded = false;
    let mut rest = value;
    while !rest.is_empty() {
        let space_len = rest.len() - rest.trim_start().len();
        pending_space.push_str(&rest[..space_len]);
        rest = &rest[space_len..];
        let word_len = rest.find([' ', '\t']).unwrap_or(rest.len());
        let word = &rest[..word_len];
        rest = &rest[word_len..];
        if word.is_empty() {
            continue;
        }
        match decode_word(word) {
            Some(decoded) => {
                if !previous_encoded {
                    out.push_str(&pending_space);
                }
                out.push_str(&decoded);
                previous_encoded = true;
            }
            None => {
                out.push_str(&pending_space);
                out.push_str(word);
                previous_encoded = false;
            }
        }
        pending_space.clear();
    }
    out
}

fn decode_word(word: &str) -> Option<String> {
    let inner = word.strip_prefix("=?")?.strip_suffix("?=")?;
    let mut fields = inner.splitn(3, '?');
    let _charset = fields.next()?;
    let encoding = fields.next()?;
    let text = fields.next()?;
    let bytes = match encoding {
        "B" | "b" => base64_decode(text)?,
        "Q" | "q" => quoted_printable_decode(&text.replace('_', " ")),
        _ => return None,
    };
    Some(String::from_utf8_lossy(&bytes).into_owned())
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: Option<&u8>| b.and_then(|&b| char::from(b).to_digit(16));
        match (bytes[i], hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b'+', _, _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Every http(s) URL in `text`, in order.
fn links(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = ["http://", "https://"]
        .iter()
        .filter_map(|scheme| rest.find(scheme))
        .min()
    {
        let candidate = &rest[start..];
        let end = candidate
            .find(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\'' | ')' | ']'))
            .unwrap_or(candidate.len());
        found.push(&candidate[..end]);
        rest = &candidate[end..];
    }
    found
}

#[allow(dead_code)]
impl ReceivedMail {
    /// The decoded Subject header.
    pub fn subject(&self) -> Option<String> {
        Entity::parse(&self.data)
            .header("subject")
            .map(decode_header)
    }

    /// A decoded header of the message, e.g. "To" or "Message-ID".
    pub fn header(&self, name: &str) -> Option<String> {
        Entity::parse(&self.data).header(name).map(decode_header)
    }

    /// The decoded text/plain part, LF line endings.
    pub fn text_body(&self) -> Option<String> {
        Entity::parse(&self.data).find("text/plain")
    }

    /// The decoded text/html part, LF line endings.
    pub fn html_body(&self) -> Option<String> {
        Entity::parse(&self.data).find("text/html")
    }

    /// The `token` query parameter of the first link in the text part whose path ends
    /// with `path` (e.g. "/reset-password").
    pub fn link_token(&self, path: &str) -> Option<String> {
        let text = self.text_body()?;
        links(&text).into_iter().find_map(|link| {
            let (before_query, query) = link.split_once('?').unwrap_or((link, ""));
            let before_query = before_query.split('#').next().unwrap_or(before_query);
            if !before_query.ends_with(path) {
                return None;
            }
            let query = query.split('#').next().unwrap_or("");
            query
                .split('&')
                .find_map(|pair| pair.strip_prefix("token="))
                .map(percent_decode)
        })
    }
}
