//! A small gRPC-web client speaking HTTP/1.1, the way a browser's grpc-web
//! library does: `POST /pkg.Service/Method` with a length-prefixed protobuf
//! body; the answer is a sequence of frames, data (flag 0x00) then one trailer
//! frame (flag 0x80) holding `grpc-status`, or just headers for an immediate
//! error. Streams are read as their chunks arrive.

use std::net::SocketAddr;

use bytes::{Buf as _, Bytes, BytesMut};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper_util::{
    client::legacy::{Client, connect::HttpConnector},
    rt::TokioExecutor,
};
use prost::Message;
use tonic::{Code, Status};

const DATA: u8 = 0x00;
const TRAILERS: u8 = 0x80;

/// A gRPC-web client of one gateway (HTTP/1.1 only).
#[derive(Clone)]
pub struct GrpcWebClient {
    addr: SocketAddr,
    http: Client<HttpConnector, Full<Bytes>>,
}

impl GrpcWebClient {
    pub fn new(addr: SocketAddr) -> Self {
        Self {
            addr,
            http: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// `http://gateway/path`.
    pub fn uri(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A gRPC-web POST of `message` to `path`, with a bearer token if given;
    /// callers may add headers before sending it.
    pub fn request(
        &self,
        path: &str,
        token: Option<&str>,
        message: &impl Message,
    ) -> http::Request<Full<Bytes>> {
        self.raw_request(path, token, &message.encode_to_vec())
    }

    /// A gRPC-web POST of one data frame holding `payload` as it is, whether
    /// or not it is a valid message.
    pub fn raw_request(&self, path: &str, token: Option<&str>, payload: &[u8]) -> http::Request<Full<Bytes>> {
        let mut builder = http::Request::post(self.uri(path))
            .header("content-type", "application/grpc-web+proto")
            .header("accept", "application/grpc-web+proto")
            .header("x-grpc-web", "1");
        if let Some(token) = token {
            builder = builder.header("authorization", format!("Bearer {token}"));
        }
        builder.body(Full::new(frame(payload))).expect("a valid request")
    }

    /// Sends any HTTP/1.1 request to the gateway.
    pub async fn send(&self, request: http::Request<Full<Bytes>>) -> http::Response<Incoming> {
        self.http
            .request(request)
            .await
            .expect("the gateway answers over HTTP/1.1")
    }

    /// A unary call: the single answer, or the call's status.
    pub async fn unary<Res: Message + Default>(
        &self,
        path: &str,
        token: Option<&str>,
        message: &impl Message,
    ) -> Result<Res, Status> {
        let mut stream = self.server_stream(path, token, message).await?;
        let answer = stream.message::<Res>().await?;
        match stream.message::<Res>().await? {
            None => answer.ok_or_else(|| Status::internal("no message in a successful unary answer")),
            Some(_) => Err(Status::internal("more than one message in a unary answer")),
        }
    }

    /// Opens a server stream (or a unary call read as one).
    pub async fn server_stream(
        &self,
        path: &str,
        token: Option<&str>,
        message: &impl Message,
    ) -> Result<GrpcWebStream, Status> {
        let response = self.send(self.request(path, token, message)).await;
        GrpcWebStream::from_response(response)
    }
}

/// One length-prefixed data frame.
fn frame(payload: &[u8]) -> Bytes {
    let mut framed = Vec::with_capacity(5 + payload.len());
    framed.push(DATA);
    framed.extend_from_slice(
        &u32::try_from(payload.len())
            .expect("a small message")
            .to_be_bytes(),
    );
    framed.extend_from_slice(payload);
    framed.into()
}

/// The answer of a gRPC-web call, read frame by frame.
pub struct GrpcWebStream {
    body: Incoming,
    buffer: BytesMut,
    /// Set once the trailer frame has been read.
    ended: bool,
}

impl GrpcWebStream {
    /// Checks the HTTP answer; an immediate error carries its status in headers.
    pub fn from_response(response: http::Response<Incoming>) -> Result<Self, Status> {
        if response.status() != http::StatusCode::OK {
            return Err(Status::unknown(format!("HTTP status {}", response.status())));
        }
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok());
        assert!(
            content_type.is_some_and(|t| t.starts_with("application/grpc-web")),
            "a gRPC-web answer, not {content_type:?}"
        );
        let immediate = status_of(|name| response.headers().get(name).and_then(|v| v.to_str().ok()));
        if let Some(status) = immediate.filter(|status| status.code() != Code::Ok) {
            return Err(status);
        }
        Ok(Self {
            body: response.into_body(),
            buffer: BytesMut::new(),
            ended: false,
        })
    }

    /// Reads a whole answer: every message, or the status it ended with
    /// (in its headers or in its trailer frame).
    pub async fn read_all<T: Message + Default>(
        response: http::Response<Incoming>,
    ) -> Result<Vec<T>, Status> {
        let mut stream = Self::from_response(response)?;
        let mut messages = Vec::new();
        while let Some(message) = stream.message().await? {
            messages.push(message);
        }
        Ok(messages)
    }

    /// The next message; `None` once the stream ended with OK.
    pub async fn message<T: Message + Default>(&mut self) -> Result<Option<T>, Status> {
        loop {
            if self.ended {
                return Ok(None);
            }
            if let Some((flag, payload)) = self.next_frame() {
                if flag & TRAILERS != 0 {
                    self.ended = true;
                    let text = String::from_utf8_lossy(&payload).into_owned();
                    let trailers = parse_trailers(&text);
                    let status =
                        status_of(|name| trailers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()))
                            .ok_or_else(|| {
                            Status::internal(format!("a trailer frame without grpc-status: {text:?}"))
                        })?;
                    return if status.code() == Code::Ok {
                        Ok(None)
                    } else {
                        Err(status)
                    };
                }
                return T::decode(payload)
                    .map(Some)
                    .map_err(|e| Status::internal(format!("undecodable message: {e}")));
            }
            match self.body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.buffer.extend_from_slice(&data);
                    }
                }
                Some(Err(e)) => return Err(Status::unknown(format!("the body broke: {e}"))),
                None if self.buffer.is_empty() => {
                    return Err(Status::internal("the body ended without a trailer frame"));
                }
                None => return Err(Status::internal("the body ended inside a frame")),
            }
        }
    }

    /// Takes one complete frame off the buffer, if there is one.
    fn next_frame(&mut self) -> Option<(u8, Bytes)> {
        if self.buffer.len() < 5 {
            return None;
        }
        let length =
            u32::from_be_bytes([self.buffer[1], self.buffer[2], self.buffer[3], self.buffer[4]]) as usize;
        if self.buffer.len() < 5 + length {
            return None;
        }
        let flag = self.buffer[0];
        self.buffer.advance(5);
        Some((flag, self.buffer.split_to(length).freeze()))
    }
}

/// `grpc-status: 0\r\ngrpc-message: ...\r\n` as (lowercase name, value) pairs.
fn parse_trailers(text: &str) -> Vec<(String, String)> {
    text.split("\r\n")
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect()
}

/// The status named by `grpc-status` and `grpc-message`, if any.
fn status_of<'a>(get: impl Fn(&str) -> Option<&'a str>) -> Option<Status> {
    let code = get("grpc-status")?.trim().parse::<i32>().ok()?;
    let message = get("grpc-message").map(percent_decode).unwrap_or_default();
    Some(Status::new(Code::from_i32(code), message))
}

/// `grpc-message` is percent-encoded.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
            if let Ok(byte) = u8::from_str_radix(hex, 16) {
                out.push(byte);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
