//! The disk path's device: opening it for direct IO (or buffered where the kernel refuses
//! `O_DIRECT`, through [`crate::directio::open`], which `disk_lock` shares), reading and
//! writing whole aligned buffers, and the IO of the header block: reading and checking it,
//! checking the size, formatting. Every call blocks; the IO thread and `DiskPath::start`
//! make them, never the async runtime.

use std::convert::Infallible;
use std::fs::File;
use std::io::{self, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::directio::{self, AlignedBuf, IoMode, OpenError};

use super::layout::{device_bytes, Header, HeaderState, HEADER_BYTES, LAYOUT_VERSION};
use super::DiskError;

/// The open device and how it is used.
pub(super) struct Device {
    file: File,
    path: PathBuf,
    mode: IoMode,
}

impl Device {
    /// Opens `path` for direct IO, or buffered IO where direct IO is refused (at open, or on
    /// the first read of the header block, as some filesystems only refuse at IO time).
    /// Direct IO is not even tried when `try_direct` is false.
    pub(super) fn open(path: &Path, try_direct: bool) -> Result<Device, DiskError> {
        let opened = directio::open(path, try_direct, |_| Ok::<(), Infallible>(())).map_err(
            |e| match e {
                OpenError::Open(source) => DiskError::Open {
                    device: path.to_path_buf(),
                    source,
                },
                OpenError::NoMemory => DiskError::Io {
                    device: path.to_path_buf(),
                    op: "allocate",
                    source: io::ErrorKind::OutOfMemory.into(),
                },
                OpenError::Prepare(never) => match never {},
            },
        )?;
        // A failed probe that did not refuse direct IO (a short file included) is judged by
        // the header check, which reads the same block.
        match opened.mode {
            IoMode::Direct => {
                tracing::info!(device = %path.display(), io = "direct",
                    "disk path opened with O_DIRECT|O_DSYNC");
            }
            IoMode::Buffered => {
                let why = opened
                    .refused
                    .as_ref()
                    .map_or_else(|| "not tried".to_string(), ToString::to_string);
                tracing::warn!(device = %path.display(), io = "buffered", direct_error = %why,
                    "disk path: O_DIRECT refused here; using buffered IO with fdatasync");
            }
        }
        Ok(Device {
            file: opened.file,
            path: path.to_path_buf(),
            mode: opened.mode,
        })
    }

    /// Direct or buffered IO.
    pub(super) fn mode(&self) -> IoMode {
        self.mode
    }

    /// The error of `op` on this device.
    pub(super) fn io_err(&self, op: &'static str, source: io::Error) -> DiskError {
        DiskError::Io {
            device: self.path.clone(),
            op,
            source,
        }
    }

    /// One `pread` of the whole buffer at `offset`; a short read is an error.
    pub(super) fn read_at(&self, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
        directio::read_at(&self.file, self.mode, buf, offset)
    }

    /// One `pwrite` of the whole buffer at `offset`, durable before it returns.
    pub(super) fn write_at(&self, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
        directio::write_at(&self.file, self.mode, buf, offset)
    }

    /// Reads and decodes the header block.
    pub(super) fn read_header(&self) -> Result<HeaderState, DiskError> {
        let mut buf = AlignedBuf::new(HEADER_BYTES as usize)
            .ok_or_else(|| self.io_err("allocate", io::ErrorKind::OutOfMemory.into()))?;
        match self.read_at(&mut buf, 0) {
            Ok(()) => {}
            // A file shorter than the header block (a fresh, empty file) reads as blank.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(HeaderState::Blank),
            Err(e) => return Err(self.io_err("reading the header", e)),
        }
        Header::decode(&self.path, buf.as_slice())
    }

    /// The device's size: the file length, or the block device's size.
    fn size(&self) -> Result<u64, DiskError> {
        (&self.file)
            .seek(SeekFrom::End(0))
            .map_err(|e| self.io_err("finding the size", e))
    }

    /// Whether the device holds the header and `nodes` slots of `slot_bytes`.
    pub(super) fn check_size(&self, nodes: usize, slot_bytes: u32) -> Result<(), DiskError> {
        let size = self.size()?;
        let needed = device_bytes(nodes, slot_bytes);
        if size < needed {
            return Err(DiskError::TooSmall {
                device: self.path.clone(),
                size,
                nodes,
                slot_bytes,
                needed,
            });
        }
        Ok(())
    }

    /// Zeroes the slots, then writes the header. A regular file is extended as needed.
    pub(super) fn format(
        &self,
        cluster: &str,
        nodes: usize,
        slot_bytes: u32,
    ) -> Result<(), DiskError> {
        let needed = device_bytes(nodes, slot_bytes);
        let meta = self
            .file
            .metadata()
            .map_err(|e| self.io_err("reading metadata", e))?;
        if meta.file_type().is_file() && self.size()? < needed {
            self.file
                .set_len(needed)
                .map_err(|e| self.io_err("extending the file", e))?;
        }
        self.check_size(nodes, slot_bytes)?;
        let oom = || self.io_err("allocate", io::ErrorKind::OutOfMemory.into());
        // Both ends are multiples of ALIGN: the pill area starts aligned and has whole blocks.
        let zeroes = (device_bytes(nodes, slot_bytes) - HEADER_BYTES) as usize;
        let slots = AlignedBuf::new(zeroes).ok_or_else(oom)?;
        self.write_at(&slots, HEADER_BYTES)
            .map_err(|e| self.io_err("zeroing the slots and the pill area", e))?;
        let mut head = AlignedBuf::new(HEADER_BYTES as usize).ok_or_else(oom)?;
        Header::encode(head.as_mut_slice(), cluster, nodes, slot_bytes);
        self.write_at(&head, 0)
            .map_err(|e| self.io_err("writing the header", e))?;
        tracing::info!(device = %self.path.display(), cluster, nodes, slot_bytes,
            version = LAYOUT_VERSION, "disk path formatted");
        Ok(())
    }
}
