//! How `zkbc consume` writes a message: kcat's format strings (`-f`), its
//! JSON envelope (`-J`), or the audit line of the fault suite; keys,
//! payloads and header values in the chosen encoding.

use std::borrow::Cow;
use std::io::Write;

use base64::Engine;
use serde::Serialize;
use zkbalance::consumer::Message;

use crate::errors::CliError;

/// How bytes are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Encoding {
    /// As they are (in JSON: as UTF-8 text, invalid bytes replaced).
    Utf8,
    /// Standard base64, padded.
    Base64,
    /// Lower-case hexadecimal.
    Hex,
}

impl Encoding {
    fn write(self, bytes: &[u8], out: &mut Vec<u8>) {
        match self {
            Encoding::Utf8 => out.extend_from_slice(bytes),
            Encoding::Base64 => {
                let start = out.len();
                out.resize(start + base64::encoded_len(bytes.len(), true).unwrap_or(0), 0);
                let n = base64::engine::general_purpose::STANDARD.encode_slice(bytes, &mut out[start..]).unwrap_or(0);
                out.truncate(start + n);
            }
            Encoding::Hex => out.extend_from_slice(hex::encode(bytes).as_bytes()),
        }
    }

    fn text(self, bytes: &[u8]) -> Cow<'_, str> {
        match self {
            Encoding::Utf8 => String::from_utf8_lossy(bytes),
            Encoding::Base64 => Cow::Owned(base64::engine::general_purpose::STANDARD.encode(bytes)),
            Encoding::Hex => Cow::Owned(hex::encode(bytes)),
        }
    }
}

/// One piece of a `-f` format string.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    KeyLen,
    Payload,
    PayloadLen,
    Timestamp,
    Headers,
}

/// A parsed `-f` format string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template(Vec<Token>);

/// What stands for a null key, payload or header value.
const NULL: &[u8] = b"null";

impl Template {
    /// kcat's tokens: `%t` topic, `%p` partition, `%o` offset, `%k` key,
    /// `%K` key length, `%s` payload, `%S` payload length, `%T` timestamp,
    /// `%h` headers, `%%`; escapes `\n \t \r \\ \xHH`.
    pub fn parse(format: &str) -> Result<Template, CliError> {
        let bad = |why: String| CliError::Usage(format!("--format {format:?}: {why}"));
        let mut tokens = Vec::new();
        let mut text = Vec::new();
        let mut chars = format.chars();
        let flush = |text: &mut Vec<u8>, tokens: &mut Vec<Token>| {
            if !text.is_empty() {
                tokens.push(Token::Text(std::mem::take(text)));
            }
        };
        while let Some(c) = chars.next() {
            match c {
                '%' => {
                    let token = match chars.next() {
                        Some('t') => Token::Topic,
                        Some('p') => Token::Partition,
                        Some('o') => Token::Offset,
                        Some('k') => Token::Key,
                        Some('K') => Token::KeyLen,
                        Some('s') => Token::Payload,
                        Some('S') => Token::PayloadLen,
                        Some('T') => Token::Timestamp,
                        Some('h') => Token::Headers,
                        Some('%') => {
                            text.push(b'%');
                            continue;
                        }
                        Some(other) => return Err(bad(format!("unknown token %{other}"))),
                        None => return Err(bad("a lone % at the end".into())),
                    };
                    flush(&mut text, &mut tokens);
                    tokens.push(token);
                }
                '\\' => match chars.next() {
                    Some('n') => text.push(b'\n'),
                    Some('t') => text.push(b'\t'),
                    Some('r') => text.push(b'\r'),
                    Some('\\') => text.push(b'\\'),
                    Some('x') => {
                        let hex: String = chars.by_ref().take(2).collect();
                        let byte =
                            u8::from_str_radix(&hex, 16).map_err(|_| bad(format!("\\x{hex}: two hex digits")))?;
                        text.push(byte);
                    }
                    Some(other) => return Err(bad(format!("unknown escape \\{other}"))),
                    None => text.push(b'\\'),
                },
                c => text.extend_from_slice(c.encode_utf8(&mut [0; 4]).as_bytes()),
            }
        }
        flush(&mut text, &mut tokens);
        Ok(Template(tokens))
    }

    fn render(&self, m: &Message, enc: Encoding, out: &mut Vec<u8>) {
        let bytes = |b: Option<&[u8]>, out: &mut Vec<u8>| match b {
            Some(b) => enc.write(b, out),
            None => out.extend_from_slice(NULL),
        };
        let number = |n: i64, out: &mut Vec<u8>| {
            let _ = write!(out, "{n}");
        };
        let len = |b: Option<&[u8]>| b.map_or(-1, |b| b.len() as i64);
        for token in &self.0 {
            match token {
                Token::Text(t) => out.extend_from_slice(t),
                Token::Topic => out.extend_from_slice(m.topic().as_str().as_bytes()),
                Token::Partition => number(m.partition().0.into(), out),
                Token::Offset => number(m.offset() as i64, out),
                Token::Key => bytes(m.key(), out),
                Token::KeyLen => number(len(m.key()), out),
                Token::Payload => bytes(m.payload(), out),
                Token::PayloadLen => number(len(m.payload()), out),
                Token::Timestamp => number(m.timestamp().unwrap_or(-1), out),
                Token::Headers => {
                    for (i, h) in m.headers().iter().enumerate() {
                        if i > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(h.name().as_bytes());
                        out.push(b'=');
                        bytes(h.value(), out);
                    }
                }
            }
        }
    }
}

fn encoded(enc: Encoding, bytes: Option<&[u8]>) -> Option<Cow<'_, str>> {
    bytes.map(|b| enc.text(b))
}

/// kcat's `-J` envelope, field for field.
#[derive(Serialize)]
struct Envelope<'a> {
    topic: &'a str,
    partition: i32,
    offset: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    tstype: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ts: Option<i64>,
    broker: i32,
    /// Names and values in turn, as kcat writes them.
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Vec<Option<Cow<'a, str>>>>,
    key: Option<Cow<'a, str>>,
    payload: Option<Cow<'a, str>>,
}

/// One `--audit` line.
#[derive(Serialize)]
struct AuditLine<'a> {
    member: &'a str,
    session: u64,
    generation: u64,
    topic: &'a str,
    partition: i32,
    offset: u64,
    at_us: u128,
}

/// What each message becomes.
#[derive(Debug, Clone)]
pub enum Output {
    Format(Template, Encoding),
    Json(Encoding),
    Audit,
}

impl Output {
    /// Appends `m` to `out`; `member` names this process in audit lines.
    pub fn render(&self, m: &Message, member: &str, out: &mut Vec<u8>) {
        // Writing to a Vec cannot fail, nor can serialising these structs.
        match self {
            Output::Format(template, enc) => template.render(m, *enc, out),
            Output::Json(enc) => {
                let text = |b| encoded(*enc, b);
                let headers = (!m.headers().is_empty()).then(|| {
                    m.headers().iter().flat_map(|h| [Some(Cow::Borrowed(h.name())), text(h.value())]).collect()
                });
                let tstype = m.timestamp_type().map(|t| match t {
                    zkbalance::consumer::TimestampType::Create => "create",
                    zkbalance::consumer::TimestampType::LogAppend => "logappend",
                    _ => "unknown",
                });
                let envelope = Envelope {
                    topic: m.topic().as_str(),
                    partition: m.partition().0,
                    offset: m.offset(),
                    tstype,
                    ts: m.timestamp(),
                    broker: m.broker().map_or(-1, |b| b.0),
                    headers,
                    key: text(m.key()),
                    payload: text(m.payload()),
                };
                let _ = serde_json::to_writer(&mut *out, &envelope);
                out.push(b'\n');
            }
            Output::Audit => {
                let at_us = m.delivered_at().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_micros());
                let line = AuditLine {
                    member,
                    session: m.session(),
                    generation: m.generation(),
                    topic: m.topic().as_str(),
                    partition: m.partition().0,
                    offset: m.offset(),
                    at_us,
                };
                let _ = serde_json::to_writer(&mut *out, &line);
                out.push(b'\n');
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_strings_parse_as_kcat_reads_them() {
        let t = Template::parse("%t/%p@%o %k=%s (%K,%S) %T [%h]%%\\n").unwrap();
        assert_eq!(t.0.len(), 18, "{t:?}");
        assert_eq!(t.0.last(), Some(&Token::Text(b"]%\n".to_vec())));
        assert_eq!(Template::parse("a\\x41\\tb").unwrap().0, [Token::Text(b"aA\tb".to_vec())]);
        for bad in ["%q", "50%", "\\q", "\\xZZ"] {
            assert!(Template::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encodings_are_binary_safe() {
        let bytes = [0u8, 0xff, b'a', b'\n'];
        let mut out = Vec::new();
        Encoding::Base64.write(&bytes, &mut out);
        assert_eq!(out, b"AP9hCg==");
        assert_eq!(Encoding::Hex.text(&bytes), "00ff610a");
        let mut out = Vec::new();
        Encoding::Utf8.write(&bytes, &mut out);
        assert_eq!(out, bytes, "raw bytes as they are");
    }
}
