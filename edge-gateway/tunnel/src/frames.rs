//! Reading and writing `tunnel-proto` frames on quinn streams, shared by both ends.

use quinn::{RecvStream, SendStream};
use tunnel_proto::{Frame, FrameDecoder, ProtoError, StreamKind, HEADER_LEN};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameIoError {
    #[error("invalid frame")]
    Proto(#[from] ProtoError),
    #[error("failed to read from stream")]
    Read(#[from] quinn::ReadError),
    #[error("failed to write to stream")]
    Write(#[from] quinn::WriteError),
    #[error("connection failed")]
    Connection(#[from] quinn::ConnectionError),
    #[error("stream ended before a complete frame")]
    Ended,
}

/// Encodes `frame` and writes it whole.
pub(crate) async fn write_frame(send: &mut SendStream, frame: &Frame) -> Result<(), FrameIoError> {
    let bytes = frame.encode()?;
    send.write_all(&bytes).await?;
    Ok(())
}

/// Reads the first frame of a flow stream, and not one byte more: whatever follows is the raw
/// stream, left in `recv` for the caller.
pub(crate) async fn read_flow_frame(recv: &mut RecvStream) -> Result<Frame, FrameIoError> {
    let mut decoder = FrameDecoder::new(StreamKind::Flow);
    let mut header = [0; HEADER_LEN];
    read_exact(recv, &mut header).await?;
    decoder.push(&header);
    if let Some(frame) = decoder.next_frame()? {
        return Ok(frame);
    }
    // The header passed the decoder's checks, so the length is at most `MAX_FRAME`.
    let [_, _, l0, l1, l2, l3] = header;
    let len = u32::from_be_bytes([l0, l1, l2, l3]) as usize;
    let mut body = vec![0; len];
    read_exact(recv, &mut body).await?;
    decoder.push(&body);
    decoder.next_frame()?.ok_or(FrameIoError::Ended)
}

async fn read_exact(recv: &mut RecvStream, buf: &mut [u8]) -> Result<(), FrameIoError> {
    recv.read_exact(buf).await.map_err(|e| match e {
        quinn::ReadExactError::FinishedEarly(_) => FrameIoError::Ended,
        quinn::ReadExactError::ReadError(e) => FrameIoError::Read(e),
    })
}

/// Reads control messages from the control stream, in chunks.
pub(crate) struct ControlReader {
    recv: RecvStream,
    decoder: FrameDecoder,
    buf: Box<[u8]>,
    start: usize,
    end: usize,
}

impl ControlReader {
    pub(crate) fn new(recv: RecvStream) -> Self {
        Self {
            recv,
            decoder: FrameDecoder::new(StreamKind::Control),
            buf: vec![0; 4096].into_boxed_slice(),
            start: 0,
            end: 0,
        }
    }

    /// The next control message; `None` when the peer finished the stream cleanly.
    pub(crate) async fn next(&mut self) -> Result<Option<Frame>, FrameIoError> {
        loop {
            if let Some(frame) = self.decoder.next_frame()? {
                return Ok(Some(frame));
            }
            if self.start < self.end {
                self.start += self.decoder.push(&self.buf[self.start..self.end]);
                continue;
            }
            match self.recv.read(&mut self.buf).await? {
                Some(n) => {
                    self.start = 0;
                    self.end = n;
                }
                None => {
                    self.decoder.finish()?;
                    return Ok(None);
                }
            }
        }
    }
}
