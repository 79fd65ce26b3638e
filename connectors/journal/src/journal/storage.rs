//! The file layer under the journal.
//!
//! Every byte the journal writes goes through [`Storage`], so tests can swap the
//! real filesystem for [`FaultyStorage`], which fails fsync on demand and can
//! "lose power" (forget what was written since the last successful fsync). Disk
//! faults like these cannot be produced on the development machine otherwise
//! (no dm-flakey), and they are exactly the cases the journal must get right.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A flat directory of named files, with the durability operations the journal needs.
pub trait Storage: Send + Sync + 'static {
    /// Names of all files in the directory.
    fn list(&self) -> io::Result<Vec<String>>;
    /// The whole content of a file, including bytes not yet fsynced (as the page cache would).
    fn read(&self, name: &str) -> io::Result<Vec<u8>>;
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
pub use faulty::FaultyStorage;

#[cfg(any(test, feature = "fault-injection"))]
mod faulty {
    use super::{AppendFile, Storage};
    use std::collections::BTreeMap;
    use std::io;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::{Arc, Mutex, MutexGuard};

    #[derive(Debug, Default, Clone)]
    struct MemFile {
        /// What a reader sees now (the page cache).
        data: Vec<u8>,
        /// What survives a power loss: the content at the last successful fsync.
        durable: Vec<u8>,
    }

    #[derive(Debug, Default)]
    struct Inner {
        files: Mutex<BTreeMap<String, MemFile>>,
        fail_fsync: AtomicBool,
        fsyncs: AtomicU64,
    }

    /// In-memory storage for tests: fsync fails with EIO on demand, and
    /// [`FaultyStorage::power_loss`] drops every byte written since the last
    /// successful fsync. Clones share the same files.
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
            self.inner.fail_fsync.store(fail, Ordering::SeqCst);
        }

        /// Number of successful file fsyncs so far.
        pub fn fsyncs(&self) -> u64 {
            self.inner.fsyncs.load(Ordering::SeqCst)
        }

        /// Simulates a power cut: each file keeps its durable content plus at most
        /// `keep_unsynced` of the bytes written after it (a torn write).
        pub fn power_loss(&self, keep_unsynced: usize) {
            for file in self.files().values_mut() {
                let keep = (file.durable.len() + keep_unsynced).min(file.data.len());
                if file.data.starts_with(&file.durable) {
                    file.data.truncate(keep);
                } else {
                    file.data = file.durable.clone();
                }
                file.durable = file.data.clone();
            }
        }

        /// Direct access for tests that damage files (flip a byte, cut a tail).
        pub fn modify(&self, name: &str, f: impl FnOnce(&mut Vec<u8>)) {
            if let Some(file) = self.files().get_mut(name) {
                f(&mut file.data);
                file.durable = file.data.clone();
            }
        }

        fn files(&self) -> MutexGuard<'_, BTreeMap<String, MemFile>> {
            // A panicking test thread must not hide the files from the others.
            self.inner
                .files
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        }

        fn check_fsync(&self) -> io::Result<()> {
            if self.inner.fail_fsync.load(Ordering::SeqCst) {
                Err(io::Error::from_raw_os_error(5)) // EIO
            } else {
                self.inner.fsyncs.fetch_add(1, Ordering::SeqCst);
                Ok(())
            }
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
            let mut files = self.storage.files();
            let file = files
                .get_mut(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            file.data.extend_from_slice(buf);
            Ok(())
        }

        fn sync(&mut self) -> io::Result<()> {
            self.storage.check_fsync()?;
            let mut files = self.storage.files();
            let file = files
                .get_mut(&self.name)
                .ok_or_else(|| not_found(&self.name))?;
            file.durable = file.data.clone();
            Ok(())
        }
    }

    impl Storage for FaultyStorage {
        fn list(&self) -> io::Result<Vec<String>> {
            Ok(self.files().keys().cloned().collect())
        }

        fn read(&self, name: &str) -> io::Result<Vec<u8>> {
            self.files()
                .get(name)
                .map(|f| f.data.clone())
                .ok_or_else(|| not_found(name))
        }

        fn create(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
            self.files().insert(name.to_owned(), MemFile::default());
            Ok(Box::new(MemHandle {
                storage: self.clone(),
                name: name.to_owned(),
            }))
        }

        fn open_append(&self, name: &str) -> io::Result<Box<dyn AppendFile>> {
            if !self.files().contains_key(name) {
                return Err(not_found(name));
            }
            Ok(Box::new(MemHandle {
                storage: self.clone(),
                name: name.to_owned(),
            }))
        }

        fn truncate(&self, name: &str, len: u64) -> io::Result<()> {
            self.check_fsync()?;
            let mut files = self.files();
            let file = files.get_mut(name).ok_or_else(|| not_found(name))?;
            file.data.truncate(len as usize);
            file.durable = file.data.clone();
            Ok(())
        }

        fn remove(&self, name: &str) -> io::Result<()> {
            self.files()
                .remove(name)
                .map(|_| ())
                .ok_or_else(|| not_found(name))
        }

        fn sync_dir(&self) -> io::Result<()> {
            self.check_fsync()
        }

        fn write_atomic(&self, name: &str, data: &[u8]) -> io::Result<()> {
            self.check_fsync()?;
            self.files().insert(
                name.to_owned(),
                MemFile {
                    data: data.to_vec(),
                    durable: data.to_vec(),
                },
            );
            Ok(())
        }
    }
}
