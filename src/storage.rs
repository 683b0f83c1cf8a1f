//! The consensus log on disk.
//!
//! [`FileLog`] is a [`MemLog`] that every change also goes to disk first, so that a node that
//! restarts answers raft exactly as before the crash: same term, same vote, same entries.
//! Losing a vote or an acknowledged entry could elect two leaders in one term, and then two
//! coordinators could each start a group (design §5).
//!
//! # Files, in the state directory (default [`DEFAULT_STATE_DIR`])
//!
//! - `raft.log`: append-only records `[len: u32 LE][crc32 of payload: u32 LE][payload]`, the
//!   payload a [`Record`] in rmp-serde with named fields. The first record is always a header
//!   naming the snapshot the log continues from. Appends are not fsynced one by one:
//!   [`LogStore::sync`] does that, once per raft `Ready`.
//! - `raft.snap`: the last snapshot (data and metadata), one record in the same framing,
//!   replaced atomically (temporary file, fsync, rename, fsync of the directory).
//!
//! After a snapshot (the leader's, or this node's own every `--snapshot-every` applied entries:
//! [`LogStore::compact_to`]) the log is rewritten the same atomic way with only what is still
//! needed, so it does not grow forever and a start replays only what follows the snapshot.
//!
//! # Replay
//!
//! A damaged record at the end (cut short, bad checksum, or followed only by zero bytes) is what
//! a crash during a write leaves: it was never synced, so raft never relied on it. It is dropped
//! with a warning naming the file and offset, and the log is rewritten without it. A damaged
//! record followed anywhere by a good record is not a torn write (a flipped length field reads
//! as a record cut short, but the records after it are still there): opening fails with
//! [`StoreError::Corrupt`], naming the file, the offset and where the good data resumes, rather
//! than drop records that may have been acknowledged. A file cut short at a record boundary, or
//! inside the last record, cannot be told from a torn write here.

use crate::ondisk::get_u32;
use crate::policy::raft_log::{LogStore, MemLog, Persist, StoreError};
use crate::policy::raft_wire::{WireConfState, WireEntry, WireHardState, WireSnapshot};
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, Storage};
use serde::{Deserialize, Serialize};
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};

/// Where the daemon keeps its raft state unless the configuration says otherwise.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/eterne";

/// The raft state's directory inside the daemon's state directory.
pub const RAFT_DIR: &str = "raft";

/// Name of the append-only log file inside the state directory.
pub const LOG_FILE: &str = "raft.log";

/// Name of the snapshot file inside the state directory.
pub const SNAPSHOT_FILE: &str = "raft.snap";

/// Name of the marker a discarded log leaves in the state directory: the node rejoins the
/// cluster and takes no part in elections until it is caught up
/// ([`crate::policy::consensus::Rejoin`]). Removed once it is.
pub const REJOIN_FILE: &str = "rejoin";

/// Bytes before each payload: length and checksum.
const HEADER_LEN: usize = 8;

/// One change to the log as written to `raft.log`. Replaying the records in order through a
/// [`MemLog`] rebuilds the state; `Entries` needs no separate truncation record because an
/// append at an index the log already holds truncates the suffix on replay exactly as it did
/// when it was first made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Record {
    /// First record of every log file: the position of the snapshot the log continues from
    /// (0, 0 when there is none). Tells on open whether the log predates `raft.snap`.
    Header {
        /// Index of that snapshot.
        snapshot_index: u64,
        /// Term of that snapshot.
        snapshot_term: u64,
    },
    /// Entries appended, as by [`LogStore::append`].
    Entries(Vec<WireEntry>),
    /// The whole list of entries kept, replacing any before (written by a rewrite, after a
    /// compaction: it may start later than the snapshot).
    Base(Vec<WireEntry>),
    /// New hard state.
    HardState(WireHardState),
    /// New membership.
    ConfState(WireConfState),
}

/// A raft log kept in memory and made durable in a state directory; see the module docs.
///
/// Reads are answered from memory with [`MemLog`]'s semantics, including
/// `Storage::snapshot`, the last snapshot with its data (kept in `raft.snap`, also offered by
/// [`FileLog::last_snapshot`]), from which the node core restores its state at startup.
///
/// One process at a time: nothing stops a second `FileLog` on the same directory, and two
/// writers would interleave records. The daemon opens it once.
#[derive(Debug)]
pub struct FileLog {
    /// The state, answered from memory; changes reach it only after they were written.
    mem: MemLog,
    /// The last snapshot made durable, with its data, for the application to restore from.
    snapshot: Option<Snapshot>,
    /// The state directory.
    dir: PathBuf,
    /// `dir/raft.log`.
    log_path: PathBuf,
    /// `raft.log`, opened for appending.
    log: File,
    /// Whether records were written since the last fsync.
    dirty: bool,
    /// The length of `raft.log` as written through `log`.
    len: u64,
    /// How far the file's blocks are reserved (`fallocate`, keeping its size): a record that
    /// fits below is never cut short by a full disk.
    reserved_to: u64,
    /// The filesystem cannot reserve (`EOPNOTSUPP`): records are written unreserved.
    no_reserve: bool,
    /// A batch failed since the last rewrite (set by [`FileLog::persist`] on any error): what
    /// is on disk may hold a partial record, or records a failed fsync lost, so the file is
    /// rewritten before anything more is appended.
    broken: bool,
}

/// How much of `raft.log` is reserved ahead of the records at a time.
const RESERVE: u64 = 1 << 20;

fn io_err<'a>(op: &'static str, path: &'a Path) -> impl FnOnce(std::io::Error) -> StoreError + 'a {
    move |source| StoreError::Io {
        op,
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, offset: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        path: path.to_path_buf(),
        offset,
        reason: reason.into(),
    }
}

/// Frames a payload: `[len][crc32][payload]`.
fn frame<T: Serialize>(value: &T, path: &Path) -> Result<Vec<u8>, StoreError> {
    let payload = rmp_serde::to_vec_named(value).map_err(|source| StoreError::Encode {
        path: path.to_path_buf(),
        source,
    })?;
    let len = u32::try_from(payload.len()).map_err(|_| StoreError::Io {
        op: "write",
        path: path.to_path_buf(),
        source: std::io::Error::new(ErrorKind::InvalidInput, "record larger than 4 GiB"),
    })?;
    let mut buf = Vec::with_capacity(HEADER_LEN + payload.len());
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    buf.extend_from_slice(&payload);
    Ok(buf)
}

/// What reading one framed record found.
enum Frame<'a> {
    /// A record with a good checksum, and the offset after it.
    Good(&'a [u8], usize),
    /// The file ends inside the record.
    Short,
    /// A complete record whose checksum (or length) is wrong.
    Bad(&'static str),
}

fn read_frame(bytes: &[u8], at: usize) -> Frame<'_> {
    let Some(head) = bytes.get(at..at + HEADER_LEN) else {
        return Frame::Short;
    };
    let (Some(len), Some(crc)) = (get_u32(head, 0), get_u32(head, 4)) else {
        return Frame::Short;
    };
    let len = len as usize;
    let start = at + HEADER_LEN;
    let Some(payload) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
        return Frame::Short;
    };
    let end = start + len;
    if len == 0 {
        // We never write an empty payload; zeros are what a crash can leave behind.
        return Frame::Bad("empty record");
    }
    if crc32fast::hash(payload) != crc {
        return Frame::Bad("checksum mismatch");
    }
    Frame::Good(payload, end)
}

/// Writes `bytes` to `dir/name` so that a crash leaves either the old or the new file.
fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
    let tmp = dir.join(format!("{name}.tmp"));
    let path = dir.join(name);
    let written = File::create(&tmp)
        .map_err(io_err("create", &tmp))
        .and_then(|mut f| {
            f.write_all(bytes).map_err(io_err("write", &tmp))?;
            f.sync_all().map_err(io_err("fsync", &tmp))
        })
        .and_then(|()| fs::rename(&tmp, &path).map_err(io_err("rename", &path)));
    if written.is_err() {
        // On a full disk, a half-written copy would only take the room the next try needs.
        let _ = fs::remove_file(&tmp);
    }
    written?;
    sync_dir(dir)
}

/// Gives `f` the blocks of `[offset, offset + len)` without changing its size.
fn fallocate_keep_size(f: &File, offset: u64, len: u64) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (libc::off_t::try_from(offset), libc::off_t::try_from(len)) else {
        return Err(std::io::Error::from_raw_os_error(libc::EFBIG));
    };
    // SAFETY: fallocate on a descriptor `f` owns; no memory is passed.
    let r = unsafe { libc::fallocate(f.as_raw_fd(), libc::FALLOC_FL_KEEP_SIZE, offset, len) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Makes a rename in `dir` durable.
fn sync_dir(dir: &Path) -> Result<(), StoreError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync directory", dir))
}

fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    match fs::read(path) {
        Ok(b) => Ok(Some(b)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path)(e)),
    }
}

fn to_entries(ws: Vec<WireEntry>, path: &Path, offset: u64) -> Result<Vec<Entry>, StoreError> {
    ws.into_iter()
        .map(|w| Entry::try_from(w).map_err(|e| corrupt(path, offset, e.to_string())))
        .collect()
}

/// Reads `raft.snap`; any damage is an error, as the file is only ever replaced atomically.
fn load_snapshot(path: &Path) -> Result<Option<Snapshot>, StoreError> {
    let Some(bytes) = read_optional(path)? else {
        return Ok(None);
    };
    match read_frame(&bytes, 0) {
        Frame::Good(payload, end) if end == bytes.len() => {
            let w: WireSnapshot = rmp_serde::from_slice(payload)
                .map_err(|e| corrupt(path, 0, format!("cannot decode snapshot: {e}")))?;
            Ok(Some(w.into()))
        }
        Frame::Good(..) => Err(corrupt(path, 0, "trailing bytes after the snapshot")),
        Frame::Short => Err(corrupt(path, 0, "snapshot file is cut short")),
        Frame::Bad(why) => Err(corrupt(path, 0, why)),
    }
}

/// The records of `raft.log` with their offsets, and whether a torn tail was dropped.
fn parse_log(path: &Path, bytes: &[u8]) -> Result<(Vec<(u64, Record)>, bool), StoreError> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let offset = at as u64;
        match read_frame(bytes, at) {
            Frame::Good(payload, end) => {
                let rec: Record = rmp_serde::from_slice(payload)
                    .map_err(|e| corrupt(path, offset, format!("cannot decode record: {e}")))?;
                records.push((offset, rec));
                at = end;
            }
            damaged @ (Frame::Short | Frame::Bad(_)) => {
                let why = match damaged {
                    Frame::Bad(why) => why,
                    _ => "record cut short",
                };
                // A crash tears only what was written after the last sync: the end of the
                // file. A good record after the damage was written later, so it was synced
                // after the damaged one was: this is damage, not a torn write (a flipped
                // length field reads as "cut short" too).
                if let Some(next) = next_good_record(bytes, at + 1) {
                    return Err(corrupt(
                        path,
                        offset,
                        format!(
                            "{why}, and a good record follows at offset {next}: the file is damaged, not torn by a crash, and records it holds may have been acknowledged. Not starting. Keep the file; to recover, see \"A damaged raft log\" in docs/runtime.md"
                        ),
                    ));
                }
                tracing::warn!(file = %path.display(), offset, reason = why,
                    "dropping torn tail of the raft log");
                return Ok((records, true));
            }
        }
    }
    Ok((records, false))
}

/// The first offset from `from` on where a whole record with a good checksum starts that
/// decodes as a [`Record`], if any. Only read after damage, at open.
fn next_good_record(bytes: &[u8], from: usize) -> Option<usize> {
    (from..bytes.len().saturating_sub(HEADER_LEN)).find(|&at| match read_frame(bytes, at) {
        Frame::Good(payload, _) => rmp_serde::from_slice::<Record>(payload).is_ok(),
        _ => false,
    })
}

/// Sets a damaged (or doubtful) raft log aside so that the node can rejoin its cluster from
/// the others: `raft.log` and `raft.snap` move into `dir/discarded-<stamp>/` (kept, for an
/// investigation), and [`REJOIN_FILE`] is written first, so that a crash half way still
/// starts the node as rejoining. Returns where the files went. The daemon must be stopped
/// (the caller holds the state directory's lock).
///
/// Nothing acknowledged is lost to the cluster: the node's copy is gone, but it votes for
/// nobody until it holds again everything the coordinator had committed.
pub fn discard_for_rejoin(dir: &Path, stamp: &str) -> Result<PathBuf, StoreError> {
    if !dir.join(LOG_FILE).exists() && !dir.join(SNAPSHOT_FILE).exists() {
        return Err(StoreError::Io {
            op: "find a raft log in",
            path: dir.to_path_buf(),
            source: std::io::Error::from(ErrorKind::NotFound),
        });
    }
    write_atomic(
        dir,
        REJOIN_FILE,
        format!("log discarded at {stamp}\n").as_bytes(),
    )?;
    let aside = dir.join(format!("discarded-{stamp}"));
    fs::create_dir_all(&aside).map_err(io_err("create directory", &aside))?;
    for name in [LOG_FILE, SNAPSHOT_FILE] {
        let from = dir.join(name);
        if from.exists() {
            fs::rename(&from, aside.join(name)).map_err(io_err("move", &from))?;
        }
    }
    sync_dir(&aside)?;
    sync_dir(dir)?;
    Ok(aside)
}

/// What `eternectl state check` reports of a raft state directory, read without changing it.
#[derive(Debug)]
pub struct Inspection {
    /// The log as a start would rebuild it.
    pub log: MemLog,
    /// A start would rewrite the file: a torn tail to drop, or a crash after a snapshot.
    pub needs_rewrite: bool,
    /// The log was discarded and the node has not caught up yet.
    pub rejoining: bool,
}

/// Reads the raft state in `dir` as [`FileLog::open`] would, changing nothing: the same
/// errors (a damaged record names the file and offset), or what a start would find.
pub fn inspect(dir: &Path) -> Result<Inspection, StoreError> {
    let log_path = dir.join(LOG_FILE);
    let snapshot = load_snapshot(&dir.join(SNAPSHOT_FILE))?;
    let (log, needs_rewrite) = match read_optional(&log_path)? {
        Some(bytes) => FileLog::replay(&log_path, &bytes, snapshot.as_ref())?,
        None => {
            let mut mem = MemLog::new();
            if let Some(s) = snapshot {
                mem.apply_snapshot(s)?;
            }
            (mem, false)
        }
    };
    Ok(Inspection {
        log,
        needs_rewrite,
        rejoining: rejoin_pending(dir),
    })
}

/// Whether the log in `dir` was discarded and the node has not caught up since.
pub fn rejoin_pending(dir: &Path) -> bool {
    dir.join(REJOIN_FILE).exists()
}

/// The node caught up after [`discard_for_rejoin`]: removes the marker.
pub fn rejoin_done(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(REJOIN_FILE);
    match fs::remove_file(&path) {
        Ok(()) => sync_dir(dir),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", &path)(e)),
    }
}

impl FileLog {
    /// Opens the raft state in `dir` (created if missing), replaying the log.
    ///
    /// A directory without state starts a node of a fresh cluster whose voters are
    /// `initial_voters` (all founding nodes must pass the same list; an empty list makes an
    /// uninitialized node that waits for a snapshot). When state exists, `initial_voters` is
    /// ignored: the membership on disk is the truth.
    pub fn open(dir: impl Into<PathBuf>, initial_voters: &[u64]) -> Result<Self, StoreError> {
        let dir = dir.into();
        let fresh = !dir.exists();
        fs::create_dir_all(&dir).map_err(io_err("create directory", &dir))?;
        if fresh {
            // The directory's own entry must be durable too, or a crash could lose the whole
            // state directory after raft was told its state is safe.
            if let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                sync_dir(parent)?;
            }
        }
        let log_path = dir.join(LOG_FILE);
        let snap_path = dir.join(SNAPSHOT_FILE);
        let snapshot = load_snapshot(&snap_path)?;
        let (mem, needs_rewrite) = match read_optional(&log_path)? {
            // An empty file is a log created and never written (a first start on a full
            // disk): as if there were none.
            Some(bytes) if !bytes.is_empty() => Self::replay(&log_path, &bytes, snapshot.as_ref())?,
            _ => {
                let mut mem = MemLog::new_with_conf_state(initial_voters);
                if let Some(s) = &snapshot {
                    mem.apply_snapshot(s.clone())?;
                }
                (mem, true)
            }
        };
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(io_err("open", &log_path))?;
        let len = log.metadata().map_err(io_err("stat", &log_path))?.len();
        let mut store = FileLog {
            mem,
            snapshot,
            dir,
            log_path,
            log,
            dirty: false,
            len,
            reserved_to: 0,
            no_reserve: false,
            broken: false,
        };
        if needs_rewrite {
            match store.rewrite() {
                Ok(()) => {}
                // A full or failing disk at start: the state is read, and the log is written
                // again before anything is appended to it (see `FileLog::repair`).
                Err(e @ StoreError::Io { .. }) => {
                    tracing::error!(error = %e, "cannot rewrite the raft log at start; tried again before the first write");
                    store.broken = true;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(store)
    }

    /// Whether the file must be rewritten before anything is appended (a write or fsync
    /// failed, or the rewrite at start did): see [`FileLog::repair`].
    pub fn needs_repair(&self) -> bool {
        self.broken
    }

    /// Rewrites the log from memory, atomically, if a failure left it in doubt: neither a
    /// partial record nor a record a failed fsync may have lost stays behind.
    pub fn repair(&mut self) -> Result<(), StoreError> {
        if self.broken {
            self.rewrite()?;
            self.broken = false;
        }
        Ok(())
    }

    /// Rebuilds the log from its records; the bool says the file must be rewritten (a torn
    /// tail was dropped, or the log predates the snapshot file).
    fn replay(
        path: &Path,
        bytes: &[u8],
        snapshot: Option<&Snapshot>,
    ) -> Result<(MemLog, bool), StoreError> {
        let (records, torn) = parse_log(path, bytes)?;
        let mut records = records.into_iter();
        let Some((
            _,
            Record::Header {
                snapshot_index,
                snapshot_term,
            },
        )) = records.next()
        else {
            return Err(corrupt(path, 0, "the log does not start with a header"));
        };
        let snap_index = snapshot.map_or(0, |s| s.get_metadata().index);
        // The log continues from the snapshot file, or (after a crash between writing the
        // snapshot and rewriting the log) from an older one: then replay it and apply the
        // snapshot on top, as happened before the crash.
        let (meta, stale) = match snapshot {
            Some(s) if snapshot_index == snap_index => (s.get_metadata().clone(), false),
            _ if snapshot_index < snap_index || (snapshot_index == 0 && snapshot.is_none()) => (
                SnapshotMetadata {
                    index: snapshot_index,
                    term: snapshot_term,
                    ..SnapshotMetadata::default()
                },
                snapshot.is_some(),
            ),
            _ => {
                return Err(corrupt(
                    path,
                    0,
                    format!(
                        "the log continues from a snapshot at index {snapshot_index} but \
                         {SNAPSHOT_FILE} holds index {snap_index}"
                    ),
                ))
            }
        };
        let mut mem = MemLog::restore(HardState::default(), ConfState::default(), meta, Vec::new())
            .map_err(|e| corrupt(path, 0, e.to_string()))?;
        for (offset, rec) in records {
            let bad = |e: StoreError| corrupt(path, offset, e.to_string());
            match rec {
                Record::Header { .. } => return Err(corrupt(path, offset, "a second header")),
                Record::Entries(ws) => mem.append(&to_entries(ws, path, offset)?).map_err(bad)?,
                Record::Base(ws) => {
                    mem = MemLog::restore(
                        mem.hard_state().clone(),
                        mem.conf_state().clone(),
                        mem.snapshot_metadata().clone(),
                        to_entries(ws, path, offset)?,
                    )
                    .map_err(bad)?;
                }
                Record::HardState(hs) => mem.set_hardstate(hs.into()),
                Record::ConfState(cs) => mem.set_conf_state(cs.into()),
            }
        }
        if let Some(s) = snapshot {
            let meta = s.get_metadata();
            if !stale {
                mem.set_snapshot_data(s.data.to_vec());
            } else if mem.term(meta.index).is_ok_and(|t| t == meta.term)
                && meta.index <= mem.hard_state().commit
            {
                // Our own snapshot, taken before a crash that left the log unrewritten: the
                // entries after it are still wanted.
                mem.compact_to(s)
                    .map_err(|e| corrupt(path, 0, e.to_string()))?;
            } else {
                // A snapshot from the leader: it replaced the whole log.
                mem.apply_snapshot(s.clone())?;
            }
        }
        Ok((mem, torn || stale))
    }

    /// Replaces `raft.log` with the minimum that rebuilds the current state, atomically, and
    /// reopens it for appending.
    fn rewrite(&mut self) -> Result<(), StoreError> {
        let meta = self.mem.snapshot_metadata();
        let records = [
            Record::Header {
                snapshot_index: meta.index,
                snapshot_term: meta.term,
            },
            Record::HardState(self.mem.hard_state().into()),
            Record::ConfState(self.mem.conf_state().into()),
            Record::Base(self.mem.all_entries().iter().map(WireEntry::from).collect()),
        ];
        let mut bytes = Vec::new();
        for r in &records {
            bytes.extend(frame(r, &self.log_path)?);
        }
        write_atomic(&self.dir, LOG_FILE, &bytes)?;
        // The old handle points at the replaced file.
        self.log = OpenOptions::new()
            .append(true)
            .open(&self.log_path)
            .map_err(io_err("open", &self.log_path))?;
        self.dirty = false;
        self.len = bytes.len() as u64;
        self.reserved_to = 0;
        Ok(())
    }

    fn write_record(&mut self, rec: &Record) -> Result<(), StoreError> {
        let bytes = frame(rec, &self.log_path)?;
        self.reserve(bytes.len() as u64)?;
        self.log
            .write_all(&bytes)
            .map_err(io_err("write", &self.log_path))?;
        self.len += bytes.len() as u64;
        self.dirty = true;
        Ok(())
    }

    /// Makes sure the next `need` bytes of `raft.log` have their blocks, reserving
    /// [`RESERVE`] more when they do not: a full disk fails here, before any byte of the
    /// record is written, and never leaves half a record.
    fn reserve(&mut self, need: u64) -> Result<(), StoreError> {
        let end = self.len + need;
        if self.no_reserve || end <= self.reserved_to {
            return Ok(());
        }
        // Ahead by RESERVE when the disk has it; close to full, just this record.
        let mut last = None;
        for size in [need.max(RESERVE), need] {
            match fallocate_keep_size(&self.log, self.len, size) {
                Ok(()) => {
                    self.reserved_to = self.len + size;
                    return Ok(());
                }
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {
                    tracing::warn!(file = %self.log_path.display(), "this filesystem cannot reserve space ahead: a full disk may cut a record short (dropped as a torn tail at the next start)");
                    self.no_reserve = true;
                    return Ok(());
                }
                Err(e) => last = Some(e),
            }
        }
        Err(io_err("reserve space in", &self.log_path)(
            last.unwrap_or_else(|| std::io::Error::from(ErrorKind::Other)),
        ))
    }

    /// Writes a batch the node core asked for ([`Persist::write_to`]), and returns only once
    /// it is durable. After a failure (a full or failing disk) the same batch may be tried
    /// again, as often as needed: the first try after a failure rewrites the log from memory
    /// (atomically), so neither a partial record nor a record a failed fsync may have lost
    /// stays behind, and the parts of the batch that reached memory before the failure are
    /// written again.
    pub fn persist(&mut self, batch: &Persist) -> Result<(), StoreError> {
        self.repair()?;
        let r = batch.write_to(self);
        if r.is_err() {
            self.broken = true;
        }
        r
    }

    /// The state in memory, as raft sees it.
    pub fn mem(&self) -> &MemLog {
        &self.mem
    }

    /// The last snapshot made durable, with its data: what the application restores its state
    /// machine from at startup. `None` before the first snapshot.
    pub fn last_snapshot(&self) -> Option<&Snapshot> {
        self.snapshot.as_ref()
    }

    /// The state directory, for messages and tools.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Storage for FileLog {
    fn initial_state(&self) -> raft::Result<RaftState> {
        self.mem.initial_state()
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        self.mem.entries(low, high, max_size, context)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        self.mem.term(idx)
    }

    fn first_index(&self) -> raft::Result<u64> {
        self.mem.first_index()
    }

    fn last_index(&self) -> raft::Result<u64> {
        self.mem.last_index()
    }

    fn snapshot(&self, request_index: u64, to: u64) -> raft::Result<Snapshot> {
        self.mem.snapshot(request_index, to)
    }
}

impl LogStore for FileLog {
    fn append(&mut self, ents: &[Entry]) -> Result<(), StoreError> {
        if ents.is_empty() {
            return Ok(());
        }
        self.mem.check_append(ents)?;
        self.write_record(&Record::Entries(ents.iter().map(WireEntry::from).collect()))?;
        self.mem.append(ents)
    }

    fn set_hardstate(&mut self, hs: HardState) -> Result<(), StoreError> {
        if &hs == self.mem.hard_state() {
            return Ok(());
        }
        self.write_record(&Record::HardState((&hs).into()))?;
        self.mem.set_hardstate(hs);
        Ok(())
    }

    fn set_commit(&mut self, commit: u64) -> Result<(), StoreError> {
        let mut hs = self.mem.hard_state().clone();
        if hs.commit == commit {
            return Ok(());
        }
        let last_index = self.mem.last_index().unwrap_or(0);
        if commit > last_index {
            return Err(StoreError::BeyondLog {
                index: commit,
                last_index,
            });
        }
        hs.commit = commit;
        self.set_hardstate(hs)
    }

    fn set_conf_state(&mut self, cs: ConfState) -> Result<(), StoreError> {
        self.write_record(&Record::ConfState((&cs).into()))?;
        self.mem.set_conf_state(cs);
        Ok(())
    }

    fn apply_snapshot(&mut self, snap: Snapshot) -> Result<(), StoreError> {
        let meta = snap.get_metadata();
        let have = self.mem.snapshot_metadata();
        if self.snapshot.is_some() && (have.index, have.term) == (meta.index, meta.term) {
            // Applied already: a batch tried again after a failure.
            return Ok(());
        }
        self.mem.check_snapshot(&snap)?;
        let path = self.dir.join(SNAPSHOT_FILE);
        write_atomic(
            &self.dir,
            SNAPSHOT_FILE,
            &frame(&WireSnapshot::from(&snap), &path)?,
        )?;
        self.mem.apply_snapshot(snap.clone())?;
        self.snapshot = Some(snap);
        self.rewrite()
    }

    fn compact(&mut self, index: u64) -> Result<(), StoreError> {
        let before = self.mem.first_index().unwrap_or(0);
        self.mem.compact(index)?;
        if self.mem.first_index().unwrap_or(0) == before {
            return Ok(());
        }
        self.rewrite()
    }

    fn compact_to(&mut self, snap: &Snapshot) -> Result<(), StoreError> {
        self.mem.check_compact_to(snap)?;
        // Whatever was appended before must be on disk before a rewrite can stand for it.
        self.sync()?;
        let path = self.dir.join(SNAPSHOT_FILE);
        write_atomic(
            &self.dir,
            SNAPSHOT_FILE,
            &frame(&WireSnapshot::from(snap), &path)?,
        )?;
        self.mem.compact_to(snap)?;
        self.snapshot = Some(snap.clone());
        // A crash here leaves the old log beside the new snapshot: `replay` sees the log
        // predates it and compacts it again.
        self.rewrite()
    }

    fn sync(&mut self) -> Result<(), StoreError> {
        if self.dirty {
            // A failed fsync leaves `persist` to rewrite the file: what the kernel could not
            // write may be gone from its cache, and a second fsync would not say so.
            self.log
                .sync_data()
                .map_err(io_err("fsync", &self.log_path))?;
            self.dirty = false;
        }
        Ok(())
    }
}
