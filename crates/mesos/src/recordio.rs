//! RecordIO, the framing of the scheduler event stream: `<decimal length>\n<length bytes>`,
//! repeated.
//!
//! The SUBSCRIBE response body is one long chunked HTTP response; each event is one record of
//! compact JSON. There is no `\r` and no whitespace around the length: pymesos finds records
//! with the regex `\d+\n` and slices exactly `length` bytes after it, so any deviation wedges
//! the framework. The length counts bytes, not characters.
//!
//! [`Decoder`] is the reading side, for tests and clients: feed it whatever the socket
//! returned (a record may arrive split anywhere, or several at once) and take the complete
//! records. A prefix that is not digits-then-newline, or a length over the limit, fails the
//! stream for good: without a trustworthy length there is no way to find the next record.

use crate::scheduler::Event;

/// The framed record of `event`: what the server writes (and flushes) per event.
pub fn record(event: &Event) -> Vec<u8> {
    frame(&event.to_json())
}

/// Frames an arbitrary payload.
pub fn frame(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 21);
    frame_into(payload, &mut out);
    out
}

/// Appends the framed `payload` to `out`.
pub fn frame_into(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b'\n');
    out.extend_from_slice(payload);
}

/// The most bytes [`Decoder::new`] accepts in one record: far above any event berth sends
/// (an OFFERS event for a thousand agents is well under a megabyte), low enough that a
/// corrupt length cannot make a client buffer gigabytes.
pub const DEFAULT_MAX_RECORD_SIZE: usize = 16 * 1024 * 1024;

/// `u64::MAX` has 20 digits; a longer prefix is garbage, not a large record.
const MAX_PREFIX_DIGITS: usize = 20;

/// A RecordIO stream that cannot be read further.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecordIoError {
    /// The bytes where a length should be are not decimal digits followed by `\n`.
    #[error("malformed RecordIO length prefix {prefix:?}: expected decimal digits and a newline")]
    InvalidLength { prefix: String },
    /// The length is over the decoder's limit.
    #[error("RecordIO record of {length} bytes is over the {max}-byte limit")]
    TooLarge { length: u128, max: usize },
    /// The stream ended inside a record (or inside its length).
    #[error("RecordIO stream ended inside a record ({buffered} bytes left over)")]
    Truncated { buffered: usize },
}

/// A streaming RecordIO decoder.
#[derive(Debug, Clone)]
pub struct Decoder {
    buf: Vec<u8>,
    /// Start of the bytes not yet returned as records.
    pos: usize,
    max_record: usize,
    failed: Option<RecordIoError>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A decoder with [`DEFAULT_MAX_RECORD_SIZE`].
    pub fn new() -> Decoder {
        Decoder::with_max_record_size(DEFAULT_MAX_RECORD_SIZE)
    }

    pub fn with_max_record_size(max_record: usize) -> Decoder {
        Decoder {
            buf: Vec::new(),
            pos: 0,
            max_record,
            failed: None,
        }
    }

    /// Buffers more of the stream.
    pub fn push(&mut self, data: &[u8]) {
        if self.pos > 0 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete record, `None` until more data arrives. After an error every call
    /// returns the same error.
    pub fn next_record(&mut self) -> Result<Option<Vec<u8>>, RecordIoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.parse() {
            Ok(record) => Ok(record),
            Err(e) => {
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Buffers `data` and returns every record now complete, in order. On an error the
    /// records completed before it in this call are lost; use [`Decoder::push`] and
    /// [`Decoder::next_record`] to keep them.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, RecordIoError> {
        self.push(data);
        let mut records = Vec::new();
        while let Some(record) = self.next_record()? {
            records.push(record);
        }
        Ok(records)
    }

    /// Bytes received but not yet returned as a record.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.pos
    }

    /// Declares the stream over: an error if it stopped inside a record.
    pub fn finish(&self) -> Result<(), RecordIoError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.buffered() {
            0 => Ok(()),
            buffered => Err(RecordIoError::Truncated { buffered }),
        }
    }

    fn parse(&mut self) -> Result<Option<Vec<u8>>, RecordIoError> {
        let rest = &self.buf[self.pos..];
        let invalid = |upto: usize| RecordIoError::InvalidLength {
            prefix: String::from_utf8_lossy(&rest[..upto.min(32)]).into_owned(),
        };
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        if digits > MAX_PREFIX_DIGITS {
            return Err(invalid(digits));
        }
        match rest.get(digits) {
            None => return Ok(None),
            Some(b'\n') if digits > 0 => {}
            Some(_) => return Err(invalid(digits + 1)),
        }
        let length: u128 = std::str::from_utf8(&rest[..digits])
            .expect("ascii digits")
            .parse()
            .expect("at most 20 digits fit u128");
        if length > self.max_record as u128 {
            return Err(RecordIoError::TooLarge {
                length,
                max: self.max_record,
            });
        }
        let start = digits + 1;
        let end = start + length as usize;
        if rest.len() < end {
            return Ok(None);
        }
        let record = rest[start..end].to_vec();
        self.pos += end;
        Ok(Some(record))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_with_byte_length() {
        assert_eq!(frame(b"{}"), b"2\n{}");
        // "é" is two bytes.
        assert_eq!(frame("\"é\"".as_bytes()), "4\n\"é\"".as_bytes());
        assert_eq!(frame(b""), b"0\n");
    }

    #[test]
    fn decodes_split_and_batched_input() {
        let mut stream = frame(b"{\"a\":1}");
        stream.extend(frame(b"[]"));
        stream.extend(frame(b""));
        stream.extend(frame(&[b'x'; 300]));
        // Every split point, byte by byte.
        let mut d = Decoder::new();
        let mut got = Vec::new();
        for b in &stream {
            got.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(got.len(), 4);
        assert_eq!(got[0], b"{\"a\":1}");
        assert_eq!(got[1], b"[]");
        assert!(got[2].is_empty());
        assert_eq!(got[3].len(), 300);
        d.finish().unwrap();
        // All at once.
        let mut d = Decoder::new();
        assert_eq!(d.feed(&stream).unwrap().len(), 4);
        assert_eq!(d.buffered(), 0);
    }

    #[test]
    fn bad_prefixes_fail_the_stream() {
        let err = |bytes: &[u8]| Decoder::new().feed(bytes).unwrap_err();
        assert!(matches!(err(b"\n{}"), RecordIoError::InvalidLength { .. }));
        assert!(matches!(
            err(b"12\r\n{}"),
            RecordIoError::InvalidLength { .. }
        ));
        assert!(matches!(
            err(b" 2\n{}"),
            RecordIoError::InvalidLength { .. }
        ));
        assert!(matches!(
            err(b"-2\n{}"),
            RecordIoError::InvalidLength { .. }
        ));
        assert!(matches!(
            err(b"{\"type\":\"HEARTBEAT\"}"),
            RecordIoError::InvalidLength { .. }
        ));
        assert_eq!(
            err(b"123456789012345678901"),
            RecordIoError::InvalidLength {
                prefix: "123456789012345678901".into()
            }
        );
        assert_eq!(
            err(b"99999999999999999999\n"),
            RecordIoError::TooLarge {
                length: 99_999_999_999_999_999_999,
                max: DEFAULT_MAX_RECORD_SIZE
            }
        );
        let mut small = Decoder::with_max_record_size(4);
        assert_eq!(small.feed(b"4\nabcd").unwrap(), vec![b"abcd".to_vec()]);
        assert_eq!(
            small.feed(b"5\n").unwrap_err(),
            RecordIoError::TooLarge { length: 5, max: 4 }
        );
        // Failed for good.
        assert!(small.feed(b"1\na").is_err());
        assert!(small.finish().is_err());
        // The error message says what was expected.
        assert_eq!(
            err(b"x\n").to_string(),
            "malformed RecordIO length prefix \"x\": expected decimal digits and a newline"
        );
    }

    #[test]
    fn truncation_is_reported_at_finish() {
        let mut d = Decoder::new();
        assert!(d.feed(b"10\nabc").unwrap().is_empty());
        assert_eq!(d.finish(), Err(RecordIoError::Truncated { buffered: 6 }));
        let mut d = Decoder::new();
        d.feed(b"12").unwrap();
        assert_eq!(d.finish(), Err(RecordIoError::Truncated { buffered: 2 }));
    }

    #[test]
    fn records_before_an_error_can_be_kept() {
        let mut d = Decoder::new();
        d.push(b"1\na1\nbX");
        assert_eq!(d.next_record().unwrap(), Some(b"a".to_vec()));
        assert_eq!(d.next_record().unwrap(), Some(b"b".to_vec()));
        assert!(d.next_record().is_err());
    }
}
