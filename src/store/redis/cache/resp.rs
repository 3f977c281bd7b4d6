//! Just enough RESP3 for the cache's own connection: commands out, replies
//! and push messages in, parsed from a byte buffer that may hold a partial
//! frame. Replies become redis-rs [`Value`]s, so the store's record decoding
//! is the same whichever connection loaded the record.
//!
//! Hand-written because redis-rs does not expose an incremental parser over
//! a caller's buffer (its codec is `doc(hidden)`), and the cache must parse
//! whatever the socket holds at the moment a request asks, without waiting.

use deadpool_redis::redis::Value;

/// Aggregates nest no deeper than this in anything the cache asks for.
const MAX_DEPTH: usize = 8;

/// Larger bulk strings or aggregates than this are refused as malformed,
/// so a garbled length cannot make the parser wait for (or allocate)
/// gigabytes.
const MAX_LEN: usize = 512 * 1024 * 1024;

/// One frame from Redis.
#[derive(Debug, PartialEq)]
pub(super) enum Frame {
    /// An out-of-band push (`>`): for this connection, invalidations.
    Push(Vec<Value>),
    /// An error reply (`-` or `!`): its code and message.
    Error(String),
    /// Any other reply.
    Reply(Value),
}

/// Bytes that are not RESP3.
#[derive(Debug, PartialEq)]
pub(super) struct Malformed;

/// Appends the command `args` to `out` as a RESP array of bulk strings.
pub(super) fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    push_header(out, b'*', args.len());
    for arg in args {
        push_header(out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
}

fn push_header(out: &mut Vec<u8>, kind: u8, len: usize) {
    out.push(kind);
    out.extend_from_slice(len.to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// The first whole frame in `buf` and how many bytes it took; `None` while
/// `buf` holds only part of one.
pub(super) fn parse(buf: &[u8]) -> Result<Option<(Frame, usize)>, Malformed> {
    let mut cursor = Cursor { buf, pos: 0 };
    let frame = match cursor.byte() {
        None => return Ok(None),
        Some(b'>') => match cursor.aggregate_items(0)? {
            Some(items) => Frame::Push(items),
            None => return Ok(None),
        },
        Some(b'-') => match cursor.line()? {
            Some(line) => Frame::Error(String::from_utf8_lossy(line).into_owned()),
            None => return Ok(None),
        },
        Some(b'!') => match cursor.blob()? {
            Some(blob) => Frame::Error(String::from_utf8_lossy(blob).into_owned()),
            None => return Ok(None),
        },
        Some(_) => {
            cursor.pos = 0;
            match cursor.value(0)? {
                Some(value) => Frame::Reply(value),
                None => return Ok(None),
            }
        }
    };
    Ok(Some((frame, cursor.pos)))
}

struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    fn byte(&mut self) -> Option<u8> {
        let b = *self.buf.get(self.pos)?;
        self.pos += 1;
        Some(b)
    }

    /// The rest of the line, without its `\r\n`.
    fn line(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        let rest = &self.buf[self.pos..];
        let Some(end) = memchr::memchr(b'\n', rest) else {
            return Ok(None);
        };
        if end == 0 || rest[end - 1] != b'\r' {
            return Err(Malformed);
        }
        self.pos += end + 1;
        Ok(Some(&rest[..end - 1]))
    }

    /// A length or integer line; `-1` (a RESP2 null) as `None` inside.
    fn int(&mut self) -> Result<Option<i64>, Malformed> {
        let Some(line) = self.line()? else {
            return Ok(None);
        };
        let text = std::str::from_utf8(line).map_err(|_| Malformed)?;
        text.parse().map(Some).map_err(|_| Malformed)
    }

    /// A length: `Some(None)` for the RESP2 null length `-1`.
    fn len(&mut self) -> Result<Option<Option<usize>>, Malformed> {
        match self.int()? {
            None => Ok(None),
            Some(-1) => Ok(Some(None)),
            Some(n) => match usize::try_from(n) {
                Ok(n) if n <= MAX_LEN => Ok(Some(Some(n))),
                _ => Err(Malformed),
            },
        }
    }

    /// Whether a RESP2 null length (`-1`) comes next, taking it if so and
    /// leaving any other length in place.
    fn null_length(&mut self) -> Result<Option<bool>, Malformed> {
        let start = self.pos;
        match self.len()? {
            None => Ok(None),
            Some(None) => Ok(Some(true)),
            Some(Some(_)) => {
                self.pos = start;
                Ok(Some(false))
            }
        }
    }

    /// A length-prefixed string's bytes (after its type byte).
    fn blob(&mut self) -> Result<Option<&'a [u8]>, Malformed> {
        let Some(len) = self.len()? else {
            return Ok(None);
        };
        let Some(len) = len else {
            return Ok(Some(&[]));
        };
        let start = self.pos;
        let Some(end) = start.checked_add(len) else {
            return Err(Malformed);
        };
        if self.buf.len() < end + 2 {
            return Ok(None);
        }
        if &self.buf[end..end + 2] != b"\r\n" {
            return Err(Malformed);
        }
        self.pos = end + 2;
        Ok(Some(&self.buf[start..end]))
    }

    /// `n` values of an aggregate (after its type byte).
    fn aggregate_items(&mut self, depth: usize) -> Result<Option<Vec<Value>>, Malformed> {
        let Some(len) = self.len()? else {
            return Ok(None);
        };
        let len = len.unwrap_or(0);
        let mut items = Vec::with_capacity(len.min(64));
        for _ in 0..len {
            match self.value(depth + 1)? {
                Some(v) => items.push(v),
                None => return Ok(None),
            }
        }
        Ok(Some(items))
    }

    fn value(&mut self, depth: usize) -> Result<Option<Value>, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        let Some(kind) = self.byte() else {
            return Ok(None);
        };
        let value = match kind {
            b'+' => match self.line()? {
                Some(b"OK") => Value::Okay,
                Some(line) => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
                None => return Ok(None),
            },
            b':' => match self.int()? {
                Some(n) => Value::Int(n),
                None => return Ok(None),
            },
            b'$' => match self.null_length()? {
                None => return Ok(None),
                Some(true) => Value::Nil,
                Some(false) => match self.blob()? {
                    Some(bytes) => Value::BulkString(bytes.to_vec()),
                    None => return Ok(None),
                },
            },
            // A verbatim string keeps its `txt:` prefix; nothing the cache
            // asks for answers with one.
            b'=' => match self.blob()? {
                Some(bytes) => Value::BulkString(bytes.to_vec()),
                None => return Ok(None),
            },
            b'_' => match self.line()? {
                Some(b"") => Value::Nil,
                Some(_) => return Err(Malformed),
                None => return Ok(None),
            },
            b'#' => match self.line()? {
                Some(b"t") => Value::Boolean(true),
                Some(b"f") => Value::Boolean(false),
                Some(_) => return Err(Malformed),
                None => return Ok(None),
            },
            b',' => match self.line()? {
                Some(line) => {
                    let text = std::str::from_utf8(line).map_err(|_| Malformed)?;
                    Value::Double(text.parse().map_err(|_| Malformed)?)
                }
                None => return Ok(None),
            },
            b'(' => match self.line()? {
                Some(line) => Value::SimpleString(String::from_utf8_lossy(line).into_owned()),
                None => return Ok(None),
            },
            b'*' | b'~' => match self.null_length()? {
                None => return Ok(None),
                Some(true) => Value::Nil,
                Some(false) => match self.aggregate_items(depth)? {
                    Some(items) if kind == b'*' => Value::Array(items),
                    Some(items) => Value::Set(items),
                    None => return Ok(None),
                },
            },
            b'%' | b'|' => {
                let Some(Some(len)) = self.len()? else {
                    return Ok(None);
                };
                let mut pairs = Vec::with_capacity(len.min(64));
                for _ in 0..len {
                    let Some(k) = self.value(depth + 1)? else {
                        return Ok(None);
                    };
                    let Some(v) = self.value(depth + 1)? else {
                        return Ok(None);
                    };
                    pairs.push((k, v));
                }
                if kind == b'|' {
                    // Attributes annotate the value that follows: skipped.
                    return self.value(depth);
                }
                Value::Map(pairs)
            }
            _ => return Err(Malformed),
        };
        Ok(Some(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(bytes: &[u8]) -> Frame {
        let (frame, used) = parse(bytes).expect("well formed").expect("whole");
        assert_eq!(used, bytes.len(), "{:?}", String::from_utf8_lossy(bytes));
        // Every strict prefix is "not yet".
        for cut in 0..bytes.len() {
            assert_eq!(parse(&bytes[..cut]), Ok(None), "cut at {cut}");
        }
        frame
    }

    #[test]
    fn commands_are_arrays_of_bulk_strings() {
        let mut out = Vec::new();
        command(&mut out, &[b"HGETALL", b"session:k"]);
        assert_eq!(out, b"*2\r\n$7\r\nHGETALL\r\n$9\r\nsession:k\r\n");
    }

    #[test]
    fn replies_pushes_and_errors() {
        assert_eq!(whole(b"+OK\r\n"), Frame::Reply(Value::Okay));
        assert_eq!(whole(b":-2\r\n"), Frame::Reply(Value::Int(-2)));
        assert_eq!(
            whole(b"%1\r\n$1\r\na\r\n$2\r\n{}\r\n"),
            Frame::Reply(Value::Map(vec![(
                Value::BulkString(b"a".to_vec()),
                Value::BulkString(b"{}".to_vec())
            )]))
        );
        assert_eq!(
            whole(b">2\r\n$10\r\ninvalidate\r\n*1\r\n$3\r\nkey\r\n"),
            Frame::Push(vec![
                Value::BulkString(b"invalidate".to_vec()),
                Value::Array(vec![Value::BulkString(b"key".to_vec())]),
            ])
        );
        assert_eq!(
            whole(b">2\r\n$10\r\ninvalidate\r\n_\r\n"),
            Frame::Push(vec![Value::BulkString(b"invalidate".to_vec()), Value::Nil])
        );
        assert_eq!(
            whole(b"-WRONGPASS invalid\r\n"),
            Frame::Error("WRONGPASS invalid".into())
        );
        assert_eq!(whole(b"!3\r\nERR\r\n"), Frame::Error("ERR".into()));
        assert_eq!(whole(b"$-1\r\n"), Frame::Reply(Value::Nil));
        assert_eq!(whole(b"*-1\r\n"), Frame::Reply(Value::Nil));
        assert_eq!(
            whole(b"|1\r\n+a\r\n+b\r\n:1\r\n"),
            Frame::Reply(Value::Int(1))
        );
        assert_eq!(
            whole(b"%2\r\n+server\r\n+redis\r\n+modules\r\n*0\r\n"),
            Frame::Reply(Value::Map(vec![
                (
                    Value::SimpleString("server".into()),
                    Value::SimpleString("redis".into())
                ),
                (Value::SimpleString("modules".into()), Value::Array(vec![])),
            ]))
        );
    }

    #[test]
    fn two_frames_in_one_buffer_come_out_one_at_a_time() {
        let buf = b"+OK\r\n:5\r\n";
        let (first, used) = parse(buf).unwrap().unwrap();
        assert_eq!((first, used), (Frame::Reply(Value::Okay), 5));
        let (second, used) = parse(&buf[5..]).unwrap().unwrap();
        assert_eq!((second, used), (Frame::Reply(Value::Int(5)), 4));
    }

    #[test]
    fn garbage_is_malformed_not_a_panic() {
        for bad in [
            &b"?\r\n"[..],
            b"$3\r\nabcd\r\n",
            b":x\r\n",
            b"+OK\n",
            b"$99999999999999999999\r\n",
            b"$-5\r\n",
            b"#x\r\n",
            b"_x\r\n",
        ] {
            assert_eq!(
                parse(bad),
                Err(Malformed),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "*1\r\n".repeat(MAX_DEPTH + 2) + ":1\r\n";
        assert_eq!(parse(deep.as_bytes()), Err(Malformed));
    }

    proptest::proptest! {
        // Whatever the bytes, the parser answers (a frame, "not yet" or
        // malformed) without panicking, and never claims more than it got.
        #[test]
        fn any_bytes_parse_without_panicking(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
            if let Ok(Some((_, used))) = parse(&bytes) {
                proptest::prop_assert!(used <= bytes.len());
            }
        }

        // Frames built from RESP3's grammar parse whole, and every prefix
        // of one is "not yet".
        #[test]
        fn framed_bulk_strings_parse_whole(fields in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..40), 0..6)) {
            let mut bytes = format!("%{}\r\n", fields.len() / 2).into_bytes();
            let pairs = fields.len() / 2;
            for field in &fields[..pairs * 2] {
                bytes.extend_from_slice(format!("${}\r\n", field.len()).as_bytes());
                bytes.extend_from_slice(field);
                bytes.extend_from_slice(b"\r\n");
            }
            let frame = whole(&bytes);
            let Frame::Reply(Value::Map(got)) = frame else {
                panic!("not a map");
            };
            proptest::prop_assert_eq!(got.len(), pairs);
        }
    }
}
