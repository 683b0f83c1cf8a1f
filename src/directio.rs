//! Opening a shared device for `O_DIRECT`, aligned buffers and whole-block IO, shared by the
//! disk heartbeat path ([`crate::transport::disk`]) and the `disk_lock` agent
//! ([`crate::resources::disk_lock`]): both read what other nodes wrote to a shared device and
//! must make their own writes durable before they count.
//!
//! `O_DIRECT` needs the buffer, the length and the offset of every read and write aligned to
//! the device's logical block size; [`ALIGN`] (4096) covers 512-byte and 4K-native devices.
//! Where the kernel refuses `O_DIRECT`, [`open`] falls back to buffered IO, and [`read_at`]
//! and [`write_at`] make up for the page cache.

use std::alloc::{self, Layout};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;
use std::ptr::NonNull;

/// How a shared device is read and written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IoMode {
    /// `O_DIRECT | O_DSYNC`: every read and write goes to the device.
    Direct,
    /// Where the kernel refuses `O_DIRECT` (tmpfs, some filesystems): page cache,
    /// `fdatasync` after each write, `POSIX_FADV_DONTNEED` before each read.
    Buffered,
}

/// A device opened by [`open`], and how it is to be read and written.
#[derive(Debug)]
pub struct Opened {
    /// The device, open for reading and writing.
    pub file: File,
    /// Direct, or buffered where direct IO was refused or not asked for.
    pub mode: IoMode,
    /// In buffered mode, what refused direct IO: the error of the `O_DIRECT` open or of the
    /// probe read. `None` in direct mode, and when direct IO was not asked for.
    pub refused: Option<io::Error>,
    /// In direct mode, the probe read's error if it failed for another reason than refusing
    /// direct IO (a file shorter than the probe, a failing device). The mode stays direct; the
    /// caller judges whether that is an error, as its own reads meet the same.
    pub probe_error: Option<io::Error>,
}

/// Why [`open`] failed.
#[derive(Debug)]
pub enum OpenError<E> {
    /// The device could not be opened: buffered, or with `O_DIRECT` for another reason than
    /// the kernel refusing direct IO.
    Open(io::Error),
    /// No memory for the probe buffer.
    NoMemory,
    /// The caller's `prepare` failed.
    Prepare(E),
}

/// Opens `path` for reading and writing with `O_DIRECT | O_DSYNC`, or buffered where the kernel
/// refuses direct IO: at the open (`EINVAL`), or at a first read of [`ALIGN`] bytes at offset 0,
/// as some filesystems accept `O_DIRECT` at open and refuse it only at IO time. With `direct`
/// false it opens buffered without trying (so that tests can run the fallback anywhere). The
/// path is never created.
///
/// `prepare` runs once on the file as first opened, before the probe: a caller that grows a
/// short file there has the probe read real blocks rather than meet the end of the file.
pub fn open<E>(
    path: &Path,
    direct: bool,
    prepare: impl FnOnce(&File) -> Result<(), E>,
) -> Result<Opened, OpenError<E>> {
    let open = |flags: i32| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(flags)
            .open(path)
    };
    let buffered = |refused| -> Result<Opened, OpenError<E>> {
        Ok(Opened {
            file: open(0).map_err(OpenError::Open)?,
            mode: IoMode::Buffered,
            refused,
            probe_error: None,
        })
    };
    if !direct {
        let opened = buffered(None)?;
        prepare(&opened.file).map_err(OpenError::Prepare)?;
        return Ok(opened);
    }
    let file = match open(libc::O_DIRECT | libc::O_DSYNC) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            let opened = buffered(Some(e))?;
            prepare(&opened.file).map_err(OpenError::Prepare)?;
            return Ok(opened);
        }
        Err(e) => return Err(OpenError::Open(e)),
    };
    prepare(&file).map_err(OpenError::Prepare)?;
    let mut probe = AlignedBuf::new(ALIGN).ok_or(OpenError::NoMemory)?;
    match read_at(&file, IoMode::Direct, &mut probe, 0) {
        Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
            drop(file);
            buffered(Some(e))
        }
        probe => Ok(Opened {
            file,
            mode: IoMode::Direct,
            refused: None,
            probe_error: probe.err(),
        }),
    }
}

/// One `pread` of the whole buffer at `offset`; a short read is an error. In buffered mode
/// the cached pages are dropped first so the read sees what other nodes wrote. Best effort:
/// a failed drop only means a possibly stale read, which callers' sequence checks treat as
/// silence.
pub fn read_at(file: &File, mode: IoMode, buf: &mut AlignedBuf, offset: u64) -> io::Result<()> {
    if mode == IoMode::Buffered {
        // SAFETY: plain syscall on an fd we own; no memory is passed.
        unsafe {
            libc::posix_fadvise(
                file.as_raw_fd(),
                offset as libc::off_t,
                buf.len() as libc::off_t,
                libc::POSIX_FADV_DONTNEED,
            );
        }
    }
    let n = file.read_at(buf.as_mut_slice(), offset)?;
    if n != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("read {n} of {} bytes at offset {offset}", buf.len()),
        ));
    }
    Ok(())
}

/// One `pwrite` of the whole buffer at `offset`, durable before it returns (`O_DSYNC` in
/// direct mode, `fdatasync` in buffered mode); a short write is an error.
pub fn write_at(file: &File, mode: IoMode, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
    let n = file.write_at(buf.as_slice(), offset)?;
    if n != buf.len() {
        return Err(io::Error::new(
            io::ErrorKind::WriteZero,
            format!("wrote {n} of {} bytes at offset {offset}", buf.len()),
        ));
    }
    if mode == IoMode::Buffered {
        file.sync_data()?;
    }
    Ok(())
}

/// The alignment of every IO buffer (and of every on-disk area), as `O_DIRECT` requires.
pub const ALIGN: usize = 4096;

/// A heap buffer aligned to [`ALIGN`], as `O_DIRECT` needs; zeroed when allocated.
pub struct AlignedBuf {
    ptr: NonNull<u8>,
    layout: Layout,
}

// SAFETY: the buffer owns its allocation exclusively (like a Box<[u8]>).
unsafe impl Send for AlignedBuf {}

impl AlignedBuf {
    /// A zeroed buffer of `len` bytes (`len > 0`); `None` if the layout is impossible.
    pub fn new(len: usize) -> Option<AlignedBuf> {
        if len == 0 {
            return None;
        }
        let layout = Layout::from_size_align(len, ALIGN).ok()?;
        // SAFETY: the layout has a non-zero size.
        let raw = unsafe { alloc::alloc_zeroed(layout) };
        let ptr = NonNull::new(raw).unwrap_or_else(|| alloc::handle_alloc_error(layout));
        Some(AlignedBuf { ptr, layout })
    }

    /// The buffer's length in bytes.
    pub fn len(&self) -> usize {
        self.layout.size()
    }

    /// Never true (a buffer has at least one byte); here for clippy's `len_without_is_empty`.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes.
    pub fn as_slice(&self) -> &[u8] {
        // SAFETY: ptr is a live allocation of len bytes, initialized (zeroed) at allocation.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len()) }
    }

    /// The bytes, writable.
    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        // SAFETY: as above, and &mut self makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len()) }
    }
}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this very layout.
        unsafe { alloc::dealloc(self.ptr.as_ptr(), self.layout) }
    }
}

impl std::fmt::Debug for AlignedBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlignedBuf")
            .field("len", &self.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_without_direct_io_is_buffered_and_prepares_once() {
        let dev = tempfile::NamedTempFile::new().expect("a temporary file");
        let mut calls = 0;
        let opened = open(dev.path(), false, |_| {
            calls += 1;
            Ok::<(), ()>(())
        })
        .expect("open");
        assert_eq!(opened.mode, IoMode::Buffered);
        assert!(opened.refused.is_none() && opened.probe_error.is_none());
        assert_eq!(calls, 1);
    }

    #[test]
    fn open_neither_creates_a_missing_path_nor_hides_a_failed_prepare() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let missing = dir.path().join("missing");
        for direct in [true, false] {
            let r = open(&missing, direct, |_| Ok::<(), ()>(()));
            assert!(matches!(r, Err(OpenError::Open(_))), "direct {direct}");
        }
        assert!(!missing.exists());
        let dev = tempfile::NamedTempFile::new().expect("a temporary file");
        for direct in [true, false] {
            let r = open(dev.path(), direct, |_| Err("no room"));
            assert!(
                matches!(r, Err(OpenError::Prepare("no room"))),
                "direct {direct}"
            );
        }
    }

    #[test]
    fn buffers_are_aligned_and_zeroed() {
        let b = AlignedBuf::new(8192).expect("layout");
        assert_eq!(b.as_slice().as_ptr() as usize % ALIGN, 0);
        assert!(b.as_slice().iter().all(|&x| x == 0));
        assert!(AlignedBuf::new(0).is_none());
    }
}
