//! The file layer under the journal.
//!
//! Every byte the journal writes goes through [`Storage`], so tests can swap the
//! real filesystem for [`FaultyStorage`], which fails fsync on demand and can
//! "lose power" (forget what was written since the last successful fsync). Disk
//! faults like these cannot be produced on the development machine otherwise
//! (no dm-flakey), and they are exactly the cases the journal must get right.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A flat directory of named files, with the durability operations the journal needs.
pub trait Storage: Send + Sync + 'static {
    /// Names of all files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of a small file (a cursor), including bytes not yet
    /// fsynced (as the page cache would).
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
    /// Opens a file for reading piece by piece: segments are too large to load whole.
    fn open_read(&self, name: &str) -> io::Result<Box<dyn ReadFile>>;
    /// Creates (or empties) a file and opens it for appending.
    fn create(&self, name: &str) -> io::Result<Box<dyn AppendFile>>;
    /// Opens an existing file for appending at its end.
    fn open_append(&self, name: &str) -> io::Result<Box<dyn AppendFile>>;
    /// Cuts a file to `len` bytes and makes that durable.
    fn truncate(&self, name: &str, len: u64) -> io::Result<()>;
    /// Deletes a file (durable only after [`Storage::sync_dir`]).
    fn remove(&self, name: &str) -> io::Result<()>;
    /// Makes creations, renames and deletions in the directory durable.
    fn sync_dir(&self) -> io::Result<()>;
    /// Replaces a file's content atomically and durably: readers after a crash see
    /// either the old or the new content, never a mix.
    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()>;
}

/// A file opened for appending.
pub trait AppendFile: Send {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()>;
    /// fdatasync: returns only once the written bytes are on stable storage.
    fn sync(&mut self) -> io::Result<()>;
}

/// A file opened for reading at any offset.
pub trait ReadFile: Send + Sync {
    /// The file's length now.
    fn size(&mut self) -> io::Result<u64>;
    /// Fills `buf` from `offset` on; `UnexpectedEof` if the file ends first.
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()>;
}

/// The real filesystem, rooted at one directory.
#[derive(Debug)]
pub struct FsStorage {
    root: PathBuf,
}

impl FsStorage {
    /// Uses `root` (created if missing) as the journal directory.
    pub fn new(root: impl AsRef<Path>) -> io::Result<Self> {
        let root = root.as_ref().to_path_buf();
        fs::create_dir_all(&root)?;
        Ok(Self { root })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }
}

struct FsFile(File);

impl AppendFile for FsFile {
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.0.write_all(buf)
    }
    fn sync(&mut self) -> io::Result<()> {
        // fdatasync also flushes the file size, which is all the metadata we need.
        self.0.sync_data()
    }
}

struct FsReader(File);

impl ReadFile for FsReader {
    fn size(&mut self) -> io::Result<u64> {
        Ok(self.0.metadata()?.len())
    }
    fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.0.seek(SeekFrom::Start(offset))?;
        self.0.read_exact(buf)
    }
}

impl Storage for FsStorage {
    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in fs::read_dir(&self.root)? {
            let entry = entry?;
            if let Some(name) = entry.file_name().to_str() {
                names.push(name.to_owned());
            }
        }
        Ok(names)
    }

    fn read(&self, name: &str) -> io::Result<Vec<u8>> {
        fs::read(self.path(name))
    }

    fn open_read(&self, name: &str) -> io::Result<Box<dyn ReadFile>> {
        Ok(Box::new(FsReader(File::open(self.path(name))?)))
    }

    fn create(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(self.path(name))?;
        Ok(Box::new(FsFile(file)))
    }

    fn open_append(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
        let file = OpenOptions::new().append(true).open(self.path(name))?;
        Ok(Box::new(FsFile(file)))
    }

    fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
        let file = OpenOptions::new().write(true).open(self.path(name))?;
        file.set_len(len)?;
        file.sync_all()
    }

    fn remove(&self, name: &str) -> io::Result<()> {
        fs::remove_file(self.path(name))
    }

    fn sync_dir(&self) -> io::Result<()> {
        // On Linux a directory is fsynced through a read-only handle.
        File::open(&self.root)?.sync_all()
    }

    fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
        let tmp = self.path(&format!("{name}.tmp"));
        {
            let mut file = File::create(&tmp)?;
            file.write_all(data)?;
            file.sync_all()?;
        }
        fs::rename(&tmp, self.path(name))?;
        self.sync_dir()
    }
}

#[cfg(any(test, feature = "fault-injection"))]
pub use faulty::{FaultyStorage, FsyncFailure};

#[cfg(any(test, feature = "fault-injection"))]
mod faulty {
    use super::{AppendFile, ReadFile, Storage};
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};

    /// What a failed fsync does to the bytes it could not write.
    #[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
    pub enum FsyncFailure {
        /// They stay dirty and the next successful fsync writes them. The
        /// default, and optimistic: it hides what the other two expose.
        #[default]
        Retried,
        /// What Linux does: the pages are marked clean, so reads keep returning
        /// the bytes until the kernel evicts them, but no later fsync writes
        /// them and after a power loss the file holds zeroes in their place.
        Dropped,
        /// As [`FsyncFailure::Dropped`], and the pages are evicted at once:
        /// reads already return what the disk holds.
        Evicted,
    }

    #[derive(Debug, Default, Clone)]
    struct MemFile {
        /// What a reader sees now (the page cache).
        data: Vec<u8>,
        /// What survives a power loss (the disk). Never longer than `dirty_from`.
        durable: Vec<u8>,
        /// `data[dirty_from..]` has been neither written back by a successful
        /// fsync nor dropped by a failed one.
        dirty_from: usize,
        /// Whether the file's directory entry survives a power loss.
        linked: bool,
    }

    impl MemFile {
        /// A successful fsync: the dirty bytes reach the disk, and the file
        /// length with them (the gaps a failed fsync dropped read as zeroes).
        fn write_back(&mut self) {
            self.durable.resize(self.data.len(), 0);
            self.durable[self.dirty_from..].copy_from_slice(&self.data[self.dirty_from..]);
            self.dirty_from = self.data.len();
        }

        /// A failed fsync: the dirty bytes stay dirty or are dropped, as `mode` says.
        fn fail_fsync(&mut self, mode: FsyncFailure) {
            if mode == FsyncFailure::Evicted {
                for (at, byte) in self.data.iter_mut().enumerate().skip(self.dirty_from) {
                    *byte = self.durable.get(at).copied().unwrap_or(0);
                }
            }
            if mode != FsyncFailure::Retried {
                self.dirty_from = self.data.len();
            }
        }

        /// The disk after a power cut that let `keep_unsynced` dirty bytes through.
        fn lose_power(&mut self, keep_unsynced: usize) {
            let torn_end = self
                .dirty_from
                .saturating_add(keep_unsynced)
                .min(self.data.len());
            if torn_end > self.dirty_from {
                self.durable.resize(self.dirty_from, 0);
                self.durable
                    .extend_from_slice(&self.data[self.dirty_from..torn_end]);
            }
            self.data = self.durable.clone();
            self.dirty_from = self.data.len();
        }

        fn synced(data: Vec<u8>) -> Self {
            MemFile {
                durable: data.clone(),
                dirty_from: data.len(),
                data,
                linked: true,
            }
        }
    }

    /// The directory, under one lock.
    #[derive(Debug, Default)]
    struct Dir {
        /// What a listing shows now.
        files: BTreeMap<String, MemFile>,
        /// Files deleted since the last successful directory fsync, whose
        /// entries were durable: a power loss brings them back.
        unlinked: BTreeMap<String, MemFile>,
        /// What the next failed file fsync does to its bytes.
        fsync_failure: FsyncFailure,
        /// Bytes that writes may still add; `None` for no limit.
        space_left: Option<u64>,
    }

    #[derive(Debug)]
    struct Inner {
        dir: Mutex<Dir>,
        /// How many more fsyncs succeed: 0 fails every one, `u64::MAX` none.
        fsyncs_before_failing: AtomicU64,
        /// Successful fsyncs, for tests that count them.
        fsyncs: AtomicU64,
    }

    impl Default for Inner {
        fn default() -> Self {
            Inner {
                dir: Mutex::default(),
                fsyncs_before_failing: AtomicU64::new(u64::MAX),
                fsyncs: AtomicU64::new(0),
            }
        }
    }

    /// In-memory storage for tests: fsync fails with EIO on demand (keeping or
    /// dropping what it failed to write, see [`FsyncFailure`]), writes fail
    /// with ENOSPC once a space limit is reached, and
    /// [`FaultyStorage::power_loss`] keeps only what reached the disk: file
    /// content written back by a successful fsync, and directory entries made
    /// durable by a successful directory fsync. Clones share the same files.
    #[derive(Debug, Default, Clone)]
    pub struct FaultyStorage {
        inner: Arc<Inner>,
    }

    impl FaultyStorage {
        pub fn new() -> Self {
            Self::default()
        }

        /// From now on every fsync fails with EIO (until set back to false).
        pub fn set_fail_fsync(&self, fail: bool) {
            let left = if fail { 0 } else { u64::MAX };
            self.inner
                .fsyncs_before_failing
                .store(left, Ordering::SeqCst);
        }

        /// The next `ok` fsyncs (of files or of the directory) succeed, and
        /// every one after them fails with EIO until `set_fail_fsync(false)`.
        pub fn fail_fsync_after(&self, ok: u64) {
            self.inner.fsyncs_before_failing.store(ok, Ordering::SeqCst);
        }

        /// What a failed fsync does to the bytes it could not write.
        pub fn set_fsync_failure(&self, mode: FsyncFailure) {
            self.dir().fsync_failure = mode;
        }

        /// Writes may add `bytes` more (then fail with ENOSPC after writing
        /// what fits, as a full disk does); `None` lifts the limit.
        pub fn set_space_left(&self, bytes: Option<u64>) {
            self.dir().space_left = bytes;
        }

        /// Number of successful fsyncs so far.
        pub fn fsyncs(&self) -> u64 {
            self.inner.fsyncs.load(Ordering::SeqCst)
        }

        /// Simulates a power cut: each file keeps its durable content plus at most
        /// `keep_unsynced` of the bytes written after it (a torn write), files
        /// created since the last directory fsync vanish and files deleted
        /// since then come back.
        pub fn power_loss(&self, keep_unsynced: usize) {
            let mut dir = self.dir();
            let unlinked = std::mem::take(&mut dir.unlinked);
            dir.files.retain(|_, file| file.linked);
            for (name, file) in unlinked {
                dir.files.entry(name).or_insert(file);
            }
            for file in dir.files.values_mut() {
                file.lose_power(keep_unsynced);
            }
        }

        /// Direct access for tests that damage files (flip a byte, cut a tail).
        pub fn modify(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
            if let Some(file) = self.dir().files.get_mut(name) {
                f(&mut file.data);
                *file = MemFile::synced(std::mem::take(&mut file.data));
            }
        }

        fn dir(&self) -> MutexGuard<'_, Dir> {
            // A panicking test thread must not hide the files from the others.
            self.inner
                .dir
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        fn existing(&self, name: &str) -> io::Result<MemHandle> {
            if !self.dir().files.contains_key(name) {
                return Err(not_found(name));
            }
            Ok(MemHandle {
                storage: self.clone(),
                name: name.to_owned(),
            })
        }

        fn check_fsync(&self) -> io::Result<()> {
            let failing = self
                .inner
                .fsyncs_before_failing
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |left| match left {
                    0 => None,
                    u64::MAX => Some(u64::MAX),
                    left => Some(left - 1),
                })
                .is_err();
            if failing {
                return Err(io::Error::from_raw_os_error(5)); // EIO
            }
            self.inner.fsyncs.fetch_add(1, Ordering::SeqCst);
            Ok(())
        }
    }

    fn not_found(name: &str) -> io::Error {
        io::Error::new(io::ErrorKind::NotFound, format!("{name}: no such file"))
    }

    struct MemHandle {
        storage: FaultyStorage,
        name: String,
    }

    impl AppendFile for MemHandle {
        fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
            let mut dir = self.storage.dir();
            let room = dir.space_left.map_or(buf.len(), |left| {
                buf.len().min(usize::try_from(left).unwrap_or(usize::MAX))
            });
            let file = dir
                .files
                .get_mut(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            file.data.extend_from_slice(&buf[..room]);
            if let Some(left) = dir.space_left.as_mut() {
                *left -= room as u64;
            }
            if room < buf.len() {
                return Err(io::Error::from_raw_os_error(28)); // ENOSPC
            }
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            let result = self.storage.check_fsync();
            let mut dir = self.storage.dir();
            let mode = dir.fsync_failure;
            let file = dir
                .files
                .get_mut(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            match result {
                Ok(()) => file.write_back(),
                Err(_) => file.fail_fsync(mode),
            }
            result
        }
    }

    /// Reads what the page cache holds at each call, as a real file does.
    impl ReadFile for MemHandle {
        fn size(&mut self) -> io::Result<u64> {
            let dir = self.storage.dir();
            let file = dir
                .files
                .get(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            Ok(file.data.len() as u64)
        }

        fn read_exact_at(&mut self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
            let dir = self.storage.dir();
            let file = dir
                .files
                .get(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            let bytes = usize::try_from(offset)
                .ok()
                .and_then(|start| file.data.get(start..start.checked_add(buf.len())?))
                .ok_or_else(|| io::Error::from(io::ErrorKind::UnexpectedEof))?;
            buf.copy_from_slice(bytes);
            Ok(())
        }
    }

    impl Storage for FaultyStorage {
        fn list(&self) -> io::Result<Vec<String>> {
            Ok(self.dir().files.keys().cloned().collect())
        }

        fn read(&self, name: &str) -> io::Result<Vec<u8>> {
            self.dir()
                .files
                .get(name)
                .map(|f| f.data.clone())
                .ok_or_else(|| not_found(name))
        }

        fn open_read(&self, name: &str) -> io::Result<Box<dyn ReadFile>> {
            Ok(Box::new(self.existing(name)?))
        }

        fn create(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
            let mut dir = self.dir();
            let linked = dir.files.get(name).is_some_and(|file| file.linked);
            dir.files.insert(
                name.to_owned(),
                MemFile {
                    linked,
                    ..MemFile::default()
                },
            );
            Ok(Box::new(MemHandle {
                storage: self.clone(),
                name: name.to_owned(),
            }))
        }

        fn open_append(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
            Ok(Box::new(self.existing(name)?))
        }

        fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
            self.check_fsync()?;
            let mut dir = self.dir();
            let file = dir.files.get_mut(name).ok_or_else(|| not_found(name))?;
            let len = usize::try_from(len).map_err(|_| io::Error::from_raw_os_error(27))?; // EFBIG
            file.data.resize(len, 0);
            file.dirty_from = file.dirty_from.min(len);
            file.write_back();
            Ok(())
        }

        fn remove(&self, name: &str) -> io::Result<()> {
            let mut dir = self.dir();
            let file = dir.files.remove(name).ok_or_else(|| not_found(name))?;
            if file.linked {
                dir.unlinked.insert(name.to_owned(), file);
            }
            Ok(())
        }

        fn sync_dir(&self) -> io::Result<()> {
            self.check_fsync()?;
            let mut dir = self.dir();
            dir.unlinked.clear();
            for file in dir.files.values_mut() {
                file.linked = true;
            }
            Ok(())
        }

        fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
            self.check_fsync()?;
            let mut dir = self.dir();
            dir.unlinked.remove(name);
            dir.files
                .insert(name.to_owned(), MemFile::synced(data.to_vec()));
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(storage: &FaultyStorage, chunks: &[(&[u8], bool)]) -> Vec<u8> {
        let mut file = storage.create("f").expect("create");
        storage.sync_dir().expect("sync dir");
        for &(bytes, sync_ok) in chunks {
            file.write_all(bytes).expect("write");
            storage.set_fail_fsync(!sync_ok);
            assert_eq!(file.sync().is_ok(), sync_ok);
        }
        storage.set_fail_fsync(false);
        storage.read("f").expect("read")
    }

    fn failed_fsync_then_power_loss(mode: FsyncFailure) -> (Vec<u8>, Vec<u8>) {
        let storage = FaultyStorage::new();
        storage.set_fsync_failure(mode);
        let before = written(&storage, &[(b"abc", true), (b"def", false), (b"ghi", true)]);
        storage.power_loss(0);
        (before, storage.read("f").expect("read"))
    }

    #[test]
    fn a_retried_failed_fsync_is_written_by_the_next_one() {
        let (before, after) = failed_fsync_then_power_loss(FsyncFailure::Retried);
        assert_eq!(
            (&before[..], &after[..]),
            (&b"abcdefghi"[..], &b"abcdefghi"[..])
        );
    }

    #[test]
    fn a_dropped_failed_fsync_is_read_back_but_never_reaches_the_disk() {
        let (before, after) = failed_fsync_then_power_loss(FsyncFailure::Dropped);
        assert_eq!(
            (&before[..], &after[..]),
            (&b"abcdefghi"[..], &b"abc\0\0\0ghi"[..])
        );
    }

    #[test]
    fn an_evicted_failed_fsync_reads_back_what_the_disk_holds() {
        let (before, after) = failed_fsync_then_power_loss(FsyncFailure::Evicted);
        assert_eq!(
            (&before[..], &after[..]),
            (&b"abc\0\0\0ghi"[..], &b"abc\0\0\0ghi"[..])
        );
    }

    #[test]
    fn directory_entries_survive_power_loss_only_once_synced() {
        let storage = FaultyStorage::new();
        storage.create("kept").expect("create");
        storage.create("removed").expect("create");
        storage.sync_dir().expect("sync dir");
        storage.create("new").expect("create");
        storage.remove("removed").expect("remove");
        storage.power_loss(0);
        assert_eq!(storage.list().expect("list"), ["kept", "removed"]);
    }

    #[test]
    fn a_full_disk_takes_what_fits_then_refuses() {
        let storage = FaultyStorage::new();
        storage.set_space_left(Some(2));
        let mut file = storage.create("f").expect("create");
        let error = file.write_all(b"abc").expect_err("no space");
        assert_eq!(error.raw_os_error(), Some(28));
        assert_eq!(storage.read("f").expect("read"), b"ab");
    }

    #[test]
    fn fsyncs_fail_after_the_given_number() {
        let storage = FaultyStorage::new();
        storage.fail_fsync_after(2);
        let results: Vec<bool> = (0..3).map(|_| storage.sync_dir().is_ok()).collect();
        assert_eq!(results, [true, true, false]);
        storage.set_fail_fsync(false);
        assert!(storage.sync_dir().is_ok());
        assert_eq!(storage.fsyncs(), 3);
    }

    #[test]
    fn both_storages_read_a_file_at_any_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fs = FsStorage::new(dir.path()).expect("storage");
        let mem = FaultyStorage::new();
        for storage in [&fs as &dyn Storage, &mem] {
            storage
                .create("f")
                .and_then(|mut file| file.write_all(b"0123456789"))
                .expect("write");
            let mut file = storage.open_read("f").expect("open");
            assert_eq!(file.size().expect("size"), 10);
            let mut buf = [0u8; 4];
            file.read_exact_at(3, &mut buf).expect("read");
            assert_eq!(&buf, b"3456");
            let error = file.read_exact_at(8, &mut buf).expect_err("past the end");
            assert_eq!(error.kind(), io::ErrorKind::UnexpectedEof);
        }
    }
}
