//! A small, literal HTTP/1.1 client: it sends exactly the bytes a test asks
//! for and reads the response as the server wrote it (no redirects
//! followed, no headers added), which is what tests of a server need.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// How long a test waits for any one response.
pub const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);

/// A response as read off the wire.
#[derive(Debug, Clone)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// Header names in lower case, in order.
    pub headers: Vec<(String, String)>,
    /// The body (de-chunked).
    pub body: Vec<u8>,
}

impl Response {
    /// The first value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// `GET path` with `Connection: close`.
pub fn get(address: SocketAddr, path: &str) -> Response {
    request(address, "GET", path, &[], b"")
}

/// Send one request and read its response; panics on a transport error.
pub fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    try_request(address, method, path, headers, body)
        .unwrap_or_else(|error| panic!("{method} {path} on {address}: {error}"))
}

/// Send one request and read its response.
pub fn try_request(
    address: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> std::io::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&address, RESPONSE_TIMEOUT)?;
    stream.set_read_timeout(Some(RESPONSE_TIMEOUT))?;
    // The address is the host, unless `headers` names one.
    let mut head = format!("{method} {path} HTTP/1.1\r\nconnection: close\r\n");
    if !headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("host"))
    {
        head.push_str(&format!("host: {address}\r\n"));
    }
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        head.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    read_response(BufReader::new(stream), method == "HEAD")
}

fn read_response(mut reader: impl BufRead, head_only: bool) -> std::io::Result<Response> {
    let invalid =
        |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_string());
    let mut line = String::new();
    reader.read_line(&mut line)?;
    let status = line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid(&format!("bad status line {line:?}")))?;
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line)?;
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed
            .split_once(':')
            .ok_or_else(|| invalid("bad header line"))?;
        headers.push((name.to_ascii_lowercase(), value.trim().to_string()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
    };
    if head_only || status == 304 || status == 204 {
        return Ok(response);
    }
    if response.header("transfer-encoding") == Some("chunked") {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size =
                usize::from_str_radix(line.trim(), 16).map_err(|_| invalid("bad chunk size"))?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk)?;
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = response.header("content-length") {
        let length: usize = length.parse().map_err(|_| invalid("bad content-length"))?;
        response.body = vec![0; length];
        reader.read_exact(&mut response.body)?;
    } else {
        reader.read_to_end(&mut response.body)?;
    }
    Ok(response)
}

/// Wait (up to `within`) until `GET path` answers `status`; panics with
/// `what` and the last status otherwise.
pub fn wait_for_status(address: SocketAddr, path: &str, status: u16, within: Duration, what: &str) {
    let deadline = std::time::Instant::now() + within;
    loop {
        let got = try_request(address, "GET", path, &[], b"").map_or(0, |r| r.status);
        if got == status {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: `GET {path}` answered {got}, not {status}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A chunked request body of `chunks` of `size` bytes of `byte` each.
pub fn chunked(chunks: usize, size: usize, byte: u8) -> Vec<u8> {
    let mut body = Vec::new();
    for _ in 0..chunks {
        body.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        body.extend(std::iter::repeat_n(byte, size));
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(b"0\r\n\r\n");
    body
}

/// Send `bytes` as they are and read whatever comes back until the server
/// closes or resets the connection (or [`RESPONSE_TIMEOUT`]); what was read
/// before an error is kept, and a failed write still reads.
pub fn exchange(address: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut stream = TcpStream::connect_timeout(&address, RESPONSE_TIMEOUT).unwrap();
    stream.set_read_timeout(Some(RESPONSE_TIMEOUT)).unwrap();
    let _ = stream.write_all(bytes);
    let mut received = Vec::new();
    let mut buffer = [0; 8192];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        received.extend_from_slice(&buffer[..read]);
    }
    received
}
