//! A small blocking client of the control socket, for `eternectl` and the tests.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Request, Response, MAX_REQUEST_BYTES};

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The socket could not be reached.
    #[error("cannot connect to {}: {source}; is eterned running on this node, and are you root?", socket.display())]
    Connect {
        /// The socket.
        socket: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Writing the request or reading the answer failed (or timed out).
    #[error("{}: {source}", socket.display())]
    Io {
        /// The socket.
        socket: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The daemon hung up without an answer, or answered something that is not a response.
    #[error("{}: {why}", socket.display())]
    Protocol {
        /// The socket.
        socket: PathBuf,
        /// What was wrong.
        why: String,
    },
}

/// A connection to the control socket.
pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
}

impl Client {
    /// Connects; every later read waits at most `timeout`.
    pub fn connect(socket: &Path, timeout: Duration) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|source| ClientError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
        let io = |source| ClientError::Io {
            socket: socket.to_path_buf(),
            source,
        };
        stream.set_read_timeout(Some(timeout)).map_err(io)?;
        stream.set_write_timeout(Some(timeout)).map_err(io)?;
        Ok(Client {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
        })
    }

    /// Sends one request.
    pub fn send(&mut self, req: &Request) -> Result<(), ClientError> {
        let mut line = serde_json::to_string(req).map_err(|e| self.protocol(e.to_string()))?;
        line.push('\n');
        let socket = self.socket.clone();
        self.reader
            .get_mut()
            .write_all(line.as_bytes())
            .map_err(|source| ClientError::Io { socket, source })
    }

    /// Reads one response line.
    pub fn read(&mut self) -> Result<Response, ClientError> {
        let mut line = String::new();
        let n = (&mut self.reader)
            .take(MAX_REQUEST_BYTES as u64 * 16)
            .read_line(&mut line)
            .map_err(|source| ClientError::Io {
                socket: self.socket.clone(),
                source,
            })?;
        if n == 0 {
            return Err(self.protocol("the daemon closed the connection without answering".into()));
        }
        serde_json::from_str(&line).map_err(|e| self.protocol(format!("bad response: {e}")))
    }

    fn protocol(&self, why: String) -> ClientError {
        ClientError::Protocol {
            socket: self.socket.clone(),
            why,
        }
    }
}

/// One request, one response: connect, send, read.
pub fn request(socket: &Path, req: &Request, timeout: Duration) -> Result<Response, ClientError> {
    let mut c = Client::connect(socket, timeout)?;
    c.send(req)?;
    c.read()
}
