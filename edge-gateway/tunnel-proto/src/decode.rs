//! The incremental frame decoder.

use crate::codec::decode_body;
use crate::frame::{Frame, FrameType};
use crate::{ProtoError, HEADER_LEN, MAX_FRAME, VERSION};

/// Which kind of stream a [`FrameDecoder`] reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamKind {
    /// The control stream: control messages until the stream ends. Frames of unknown types are
    /// skipped (counted by [`FrameDecoder::skipped`]); stream frames are
    /// [`ProtoError::UnexpectedFrame`].
    Control,
    /// A flow stream: exactly one frame ([`Frame::StreamHeader`] from the edge,
    /// [`Frame::StreamAccept`] or [`Frame::StreamRefuse`] from the connector), then raw bytes,
    /// which the decoder does not take. Unknown types are [`ProtoError::UnknownFrameType`],
    /// control messages [`ProtoError::UnexpectedFrame`].
    Flow,
}

/// Turns the bytes of one stream, in chunks of any size, into frames.
///
/// Sans-IO: the driver reads the stream and calls [`push`](Self::push) with what it read, then
/// [`next_frame`](Self::next_frame) until it returns `Ok(None)`, then pushes the rest of the
/// chunk, if any. `push` takes bytes only up to the end of the current frame, so the decoder
/// holds at most one frame ([`HEADER_LEN`] + [`MAX_FRAME`] bytes) and, on a flow stream, the
/// bytes after the first frame stay with the caller: they are the start of the raw byte stream.
/// At the end of the stream, [`finish`](Self::finish) reports a frame cut short.
///
/// The first error is sticky: `push` then takes nothing and `next_frame` repeats the error.
///
/// ```
/// use tunnel_proto::{Frame, FrameDecoder, StreamKind};
///
/// let mut bytes = Frame::Heartbeat { seq: 7 }.encode().unwrap();
/// bytes.extend(Frame::Goodbye.encode().unwrap());
/// let mut decoder = FrameDecoder::new(StreamKind::Control);
/// let mut chunk = &bytes[..];
/// let mut frames = Vec::new();
/// while !chunk.is_empty() {
///     let taken = decoder.push(chunk);
///     chunk = &chunk[taken..];
///     while let Some(frame) = decoder.next_frame().unwrap() {
///         frames.push(frame);
///     }
/// }
/// decoder.finish().unwrap();
/// assert_eq!(frames, [Frame::Heartbeat { seq: 7 }, Frame::Goodbye]);
/// ```
#[derive(Debug)]
pub struct FrameDecoder {
    kind: StreamKind,
    state: State,
    skipped: u64,
}

#[derive(Debug)]
enum State {
    /// Reading a header; `filled` bytes of it are in `header`.
    Header {
        header: [u8; HEADER_LEN],
        filled: usize,
    },
    /// Reading the body of a known frame into `body` (its capacity is the announced length).
    Body {
        frame_type: FrameType,
        len: usize,
        body: Vec<u8>,
    },
    /// Discarding the body of a frame of an unknown type.
    Skip {
        remaining: usize,
    },
    /// The frame of this type is complete and waits for `next_frame`.
    Ready {
        frame_type: FrameType,
        body: Vec<u8>,
    },
    /// A flow stream's frame was returned; the decoder takes no more bytes.
    Done,
    Failed(ProtoError),
}

impl FrameDecoder {
    pub fn new(kind: StreamKind) -> Self {
        Self {
            kind,
            state: State::new_header(),
            skipped: 0,
        }
    }

    /// Takes bytes from the front of `bytes` up to the end of the current frame and returns how
    /// many it took: 0 while a complete frame waits for [`next_frame`](Self::next_frame), after
    /// a flow stream's frame and after an error. Frames of unknown types on the control stream
    /// are consumed and dropped here, without being buffered.
    pub fn push(&mut self, bytes: &[u8]) -> usize {
        let mut taken = 0;
        while taken < bytes.len() {
            let rest = &bytes[taken..];
            match &mut self.state {
                State::Header { header, filled } => {
                    let n = rest.len().min(HEADER_LEN - *filled);
                    header[*filled..*filled + n].copy_from_slice(&rest[..n]);
                    *filled += n;
                    taken += n;
                    if *filled == HEADER_LEN {
                        let header = *header;
                        self.state = self.start_frame(header);
                    }
                }
                State::Body {
                    frame_type,
                    len,
                    body,
                } => {
                    let n = rest.len().min(*len - body.len());
                    body.extend_from_slice(&rest[..n]);
                    taken += n;
                    if body.len() == *len {
                        let frame_type = *frame_type;
                        let body = std::mem::take(body);
                        self.state = State::Ready { frame_type, body };
                    }
                }
                State::Skip { remaining } => {
                    let n = rest.len().min(*remaining);
                    *remaining -= n;
                    taken += n;
                    if *remaining == 0 {
                        self.state = State::new_header();
                    }
                }
                State::Ready { .. } | State::Done | State::Failed(_) => break,
            }
        }
        taken
    }

    /// The next complete frame, or `None` until more bytes are pushed.
    ///
    /// # Errors
    /// The frame's header or body is invalid; see [`ProtoError`]. The error repeats on every
    /// later call.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ProtoError> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::Ready { frame_type, body } => match decode_body(frame_type, &body) {
                Ok(frame) => {
                    self.state = match self.kind {
                        StreamKind::Control => State::new_header(),
                        StreamKind::Flow => State::Done,
                    };
                    Ok(Some(frame))
                }
                Err(e) => {
                    self.state = State::Failed(e.clone());
                    Err(e)
                }
            },
            State::Failed(e) => {
                self.state = State::Failed(e.clone());
                Err(e)
            }
            other @ (State::Header { .. }
            | State::Body { .. }
            | State::Skip { .. }
            | State::Done) => {
                self.state = other;
                Ok(None)
            }
        }
    }

    /// Checks the end of the stream: no frame is cut short, and a flow stream got its frame.
    ///
    /// # Errors
    /// [`ProtoError::Truncated`]`("frame")` when the stream ended inside a frame or before a
    /// flow stream's frame; the sticky error, if any.
    pub fn finish(&self) -> Result<(), ProtoError> {
        match &self.state {
            State::Header { filled: 0, .. } if self.kind == StreamKind::Control => Ok(()),
            State::Done => Ok(()),
            State::Failed(e) => Err(e.clone()),
            State::Ready { .. } => Ok(()),
            State::Header { .. } | State::Body { .. } | State::Skip { .. } => {
                Err(ProtoError::Truncated("frame"))
            }
        }
    }

    /// Whether a flow stream's frame was returned: the bytes after it are the raw stream.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// How many frames of unknown types the control stream skipped.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }

    fn start_frame(&mut self, header: [u8; HEADER_LEN]) -> State {
        let [version, type_byte, l0, l1, l2, l3] = header;
        if version != VERSION {
            return State::Failed(ProtoError::UnsupportedVersion(version));
        }
        let len = u32::from_be_bytes([l0, l1, l2, l3]);
        if len as usize > MAX_FRAME {
            return State::Failed(ProtoError::FrameTooLarge(u64::from(len)));
        }
        let len = len as usize;
        let frame_type = match (FrameType::from_byte(type_byte), self.kind) {
            (Some(t), StreamKind::Control) if t.is_control() => t,
            (Some(t), StreamKind::Flow) if !t.is_control() => t,
            (Some(_), _) => return State::Failed(ProtoError::UnexpectedFrame(type_byte)),
            (None, StreamKind::Control) => {
                self.skipped += 1;
                return if len == 0 {
                    State::new_header()
                } else {
                    State::Skip { remaining: len }
                };
            }
            (None, StreamKind::Flow) => {
                return State::Failed(ProtoError::UnknownFrameType(type_byte))
            }
        };
        if len == 0 {
            State::Ready {
                frame_type,
                body: Vec::new(),
            }
        } else {
            State::Body {
                frame_type,
                len,
                // `len <= MAX_FRAME`, checked above.
                body: Vec::with_capacity(len),
            }
        }
    }
}

impl State {
    fn new_header() -> Self {
        Self::Header {
            header: [0; HEADER_LEN],
            filled: 0,
        }
    }
}
