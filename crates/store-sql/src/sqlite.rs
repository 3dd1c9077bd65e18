//! SQLite's grant path: one dedicated writer thread that commits concurrent writes together
//! (group commit), and readers that answer on the calling thread.
//!
//! Through sqlx every statement is a hand-off to the connection's worker thread and back; a
//! refresh rotation (begin, update, insert, commit, plus its reads) paid six of them, and the
//! hand-offs, not SQLite, were most of its cost. Here (rusqlite, prepared statements cached per
//! connection):
//!
//! - **Writes** go to one thread that owns the only write connection. It takes every write that
//!   is waiting, runs them in one transaction (each in its own savepoint, so one failing write
//!   is undone alone), commits once, and only then answers each caller: a caller that was told
//!   "done" was committed. One hand-off per write; one commit per batch.
//! - **Reads** run on the caller's thread, on a connection of a small pool: a point read by
//!   primary key from the page cache takes a few microseconds, less than handing it to another
//!   thread would. WAL lets them read while the writer writes.
//!
//! Durability: WAL with `synchronous=NORMAL`. A committed write survives the process being
//! killed (SIGKILL); after a power loss the last commits before it may be rolled back, never
//! half applied (SQLite's WAL guarantee). The rest of the store (users, consents, sessions)
//! still writes through sqlx; both take the same writer lock, so the two never meet in SQLite's
//! busy handler.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::StoreError;

/// Most writes committed in one transaction: enough to take a burst of every connection's
/// request at once, few enough that the first caller of a batch does not wait long for the last.
const MAX_BATCH: usize = 64;

/// A read connection's page cache, in KiB (SQLite's `cache_size` takes KiB when negative).
const READER_CACHE_KIB: i64 = -512;

/// Prepared statements kept per connection.
const STATEMENT_CACHE: usize = 64;

/// A write the writer thread runs inside its batch's transaction.
trait Job: Send {
    /// Runs the write; returns whether it failed (its savepoint is then rolled back).
    fn run(&mut self, connection: &Connection) -> bool;
    /// Answers the caller once the batch is committed (or failed to commit).
    fn finish(self: Box<Self>, committed: Result<(), &Arc<rusqlite::Error>>);
}

struct Write<T, F> {
    work: Option<F>,
    outcome: Option<Result<T, StoreError>>,
    reply: tokio::sync::oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> Result<T, StoreError> + Send,
{
    fn run(&mut self, connection: &Connection) -> bool {
        let Some(work) = self.work.take() else {
            return true;
        };
        // A write that panicked is that write's failure, not the writer thread's end.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| work(connection)))
            .unwrap_or(Err(StoreError::Conflict("the write panicked")));
        let failed = outcome.is_err();
        self.outcome = Some(outcome);
        failed
    }

    fn finish(self: Box<Self>, committed: Result<(), &Arc<rusqlite::Error>>) {
        let answer = match (committed, self.outcome) {
            (Ok(()), Some(outcome)) => outcome,
            // The write's own error stands, even when the batch's commit failed too.
            (Err(_), Some(Err(own))) => Err(own),
            (Err(commit), _) => Err(StoreError::Sqlite(Arc::clone(commit))),
            (Ok(()), None) => Err(StoreError::Conflict("the write did not run")),
        };
        // The caller may have gone (its request was cancelled): nothing to tell.
        let _ = self.reply.send(answer);
    }
}

/// The SQLite database's writer thread and reader pool.
pub(crate) struct Sqlite {
    path: PathBuf,
    busy_timeout: Duration,
    /// Longest a caller waits for its write's answer (the queue, the batch, the commit).
    write_timeout: Duration,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Idle read connections; at most `max_idle` are kept.
    readers: Mutex<Vec<Connection>>,
    max_idle: usize,
    jobs: Mutex<Option<mpsc::Sender<Box<dyn Job>>>>,
}

impl std::fmt::Debug for Sqlite {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sqlite")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Sqlite {
    /// Opens the writer (and its thread) on the database at `path`, which sqlx has created
    /// and migrated. `writer_lock` is the lock sqlx's writes take.
    pub(crate) fn open(
        path: &Path,
        busy_timeout: Duration,
        write_timeout: Duration,
        max_idle_readers: u32,
        writer_lock: Arc<tokio::sync::Mutex<()>>,
    ) -> Result<Self, StoreError> {
        let writer = open_connection(path, busy_timeout)?;
        let (jobs, queue) = mpsc::channel::<Box<dyn Job>>();
        let writer = std::thread::Builder::new()
            .name("mcpauth-sqlite-writer".into())
            .spawn(move || write_batches(&writer, &queue, &writer_lock))
            .map_err(StoreError::WriterThread)?;
        // Reads run on the callers' threads: keep a connection for each that may read at once.
        let parallelism = std::thread::available_parallelism().map_or(1, usize::from);
        Ok(Self {
            path: path.to_owned(),
            busy_timeout,
            write_timeout,
            writer: Mutex::new(Some(writer)),
            readers: Mutex::new(Vec::new()),
            max_idle: usize::try_from(max_idle_readers)
                .unwrap_or(usize::MAX)
                .max(parallelism),
            jobs: Mutex::new(Some(jobs)),
        })
    }

    /// Runs `read` on an idle read connection (opening one when none is idle), on this thread.
    pub(crate) fn read<T>(
        &self,
        read: impl FnOnce(&Connection) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let idle = self.readers.lock().ok().and_then(|mut idle| idle.pop());
        let connection = match idle {
            Some(connection) => connection,
            None => {
                let connection = open_connection(&self.path, self.busy_timeout)?;
                // Reads only: a bug that wrote here would bypass the writer's ordering.
                connection.pragma_update(None, "query_only", true)?;
                // A small page cache: in WAL mode a reader drops its cache whenever the writer
                // has committed since its last read, so under writes a large one only costs
                // memory (2 MB each by default; 512 KiB holds a lookup's index pages).
                connection.pragma_update(None, "cache_size", READER_CACHE_KIB)?;
                connection
            }
        };
        let outcome = read(&connection);
        if let Ok(mut idle) = self.readers.lock()
            && idle.len() < self.max_idle
        {
            idle.push(connection);
        }
        outcome
    }

    /// Runs `write` on the writer thread, in the next batch; answers once it is committed.
    pub(crate) async fn write<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(Write {
            work: Some(write),
            outcome: None,
            reply,
        });
        let sent = match self.jobs.lock() {
            Ok(jobs) => jobs.as_ref().is_some_and(|jobs| jobs.send(job).is_ok()),
            Err(_) => false,
        };
        if !sent {
            return Err(StoreError::Closed);
        }
        match tokio::time::timeout(self.write_timeout, answer).await {
            Ok(answered) => answered.unwrap_or(Err(StoreError::Closed)),
            Err(_) => Err(StoreError::WriteTimedOut(self.write_timeout)),
        }
    }

    /// Stops the writer thread once the writes already queued are done; later calls fail.
    /// Returns the thread, to join (it still holds its connection until it ends).
    pub(crate) fn close(&self) -> Option<std::thread::JoinHandle<()>> {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut idle) = self.readers.lock() {
            idle.clear();
        }
        self.writer.lock().ok().and_then(|mut writer| writer.take())
    }
}

fn open_connection(path: &Path, busy_timeout: Duration) -> Result<Connection, StoreError> {
    let connection = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    connection.busy_timeout(busy_timeout)?;
    // Every statement of the grant path stays prepared (the default keeps 16; the writer uses
    // about 25, and an evicted one is parsed and planned again).
    connection.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
    // The database is already in WAL mode (set by the pool that migrated it; it is a property
    // of the file). `synchronous` and foreign keys are per connection.
    connection.pragma_update(None, "synchronous", "NORMAL")?;
    connection.pragma_update(None, "foreign_keys", true)?;
    Ok(connection)
}

/// The writer thread: waits for a write, takes every other one waiting (up to `MAX_BATCH`),
/// commits them together, answers each. Ends when the store is closed and the queue is empty.
fn write_batches(
    connection: &Connection,
    queue: &mpsc::Receiver<Box<dyn Job>>,
    writer_lock: &tokio::sync::Mutex<()>,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Ok(first) = queue.recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = {
            let _writer = writer_lock.blocking_lock();
            commit_batch(connection, &mut batch).map_err(Arc::new)
        };
        for job in batch.drain(..) {
            job.finish(committed.as_ref().map(|_| ()));
        }
    }
}

/// One transaction for the batch; each write in a savepoint when there are several, so a
/// failed one is undone without undoing the others.
fn commit_batch(connection: &Connection, batch: &mut [Box<dyn Job>]) -> rusqlite::Result<()> {
    // A transaction an earlier batch could not end (its COMMIT and ROLLBACK both failed) would
    // make every later BEGIN fail: end it first.
    if !connection.is_autocommit() {
        connection.execute_batch("ROLLBACK")?;
    }
    connection.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let alone = batch.len() == 1;
    let ran = (|| {
        for job in batch.iter_mut() {
            if alone {
                if job.run(connection) {
                    // Its only write failed: nothing of it may be committed.
                    connection.prepare_cached("ROLLBACK")?.execute([])?;
                    return Ok(false);
                }
                continue;
            }
            connection.prepare_cached("SAVEPOINT write")?.execute([])?;
            if job.run(connection) {
                connection
                    .prepare_cached("ROLLBACK TO write")?
                    .execute([])?;
            }
            connection.prepare_cached("RELEASE write")?.execute([])?;
        }
        Ok(true)
    })();
    match ran {
        Ok(false) => Ok(()),
        Ok(true) => match connection
            .prepare_cached("COMMIT")
            .and_then(|mut commit| commit.execute([]))
        {
            Ok(_) => Ok(()),
            Err(e) => {
                if !connection.is_autocommit() {
                    let _ = connection.execute_batch("ROLLBACK");
                }
                Err(e)
            }
        },
        Err(e) => {
            if !connection.is_autocommit() {
                let _ = connection.execute_batch("ROLLBACK");
            }
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Columns as _;
    use crate::statement::{Param, sqlite_execute, sqlite_row};

    fn job(
        work: impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static,
    ) -> (
        Box<dyn Job>,
        tokio::sync::oneshot::Receiver<Result<(), StoreError>>,
    ) {
        let (reply, answer) = tokio::sync::oneshot::channel();
        let job = Box::new(Write {
            work: Some(work),
            outcome: None,
            reply,
        });
        (job, answer)
    }

    fn insert(id: i64) -> impl FnOnce(&Connection) -> Result<(), StoreError> + Send + 'static {
        move |c| sqlite_execute(c, "INSERT INTO t (id) VALUES ($1)", &[Param::from(id)]).map(|_| ())
    }

    fn ids(c: &Connection) -> Vec<i64> {
        let mut statement = c
            .prepare("SELECT id FROM t ORDER BY id")
            .unwrap_or_else(|e| panic!("{e}"));
        statement
            .query_map([], |r| r.get(0))
            .and_then(Iterator::collect)
            .unwrap_or_else(|e| panic!("{e}"))
    }

    fn table() -> Connection {
        let c = Connection::open_in_memory().unwrap_or_else(|e| panic!("{e}"));
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY)")
            .unwrap_or_else(|e| panic!("{e}"));
        c
    }

    #[test]
    fn a_failed_write_is_undone_alone_and_the_rest_of_its_batch_commits() {
        let c = table();
        let (first, first_answer) = job(insert(1));
        // Writes a row, then fails: its row must not be committed.
        let (failing, failing_answer) = job(|c| {
            insert(2)(c)?;
            insert(1)(c)
        });
        let (last, last_answer) = job(insert(3));
        let mut batch = vec![first, failing, last];
        let committed = commit_batch(&c, &mut batch).map_err(Arc::new);
        assert!(committed.is_ok());
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        assert_eq!(ids(&c), [1, 3]);
        let answers = [first_answer, failing_answer, last_answer].map(|mut a| a.try_recv());
        assert!(matches!(answers[0], Ok(Ok(()))));
        assert!(matches!(&answers[1], Ok(Err(e)) if e.is_unique_violation()));
        assert!(matches!(answers[2], Ok(Ok(()))));
    }

    #[test]
    fn a_write_that_fails_alone_commits_nothing() {
        let c = table();
        let (failing, answer) = job(|c| {
            insert(7)(c)?;
            insert(7)(c)
        });
        let mut batch = vec![failing];
        let committed = commit_batch(&c, &mut batch).map_err(Arc::new);
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        assert!(ids(&c).is_empty());
        assert!(c.is_autocommit(), "the transaction was ended");
        assert!(matches!([answer].map(|mut a| a.try_recv()), [Ok(Err(_))]));
    }

    #[test]
    fn a_transaction_left_open_is_ended_and_the_next_batch_commits() {
        let c = table();
        // As after a batch whose COMMIT and ROLLBACK both failed.
        c.execute_batch("BEGIN; INSERT INTO t (id) VALUES (99);")
            .unwrap_or_else(|e| panic!("{e}"));
        let (one, one_answer) = job(insert(1));
        let (two, two_answer) = job(insert(2));
        let mut batch = vec![one, two];
        let committed = commit_batch(&c, &mut batch).map_err(Arc::new);
        assert!(committed.is_ok());
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        for mut answer in [one_answer, two_answer] {
            assert!(matches!(answer.try_recv(), Ok(Ok(()))));
        }
        assert_eq!(ids(&c), [1, 2], "the abandoned transaction's row is gone");
    }

    #[test]
    fn a_batch_that_cannot_begin_tells_every_caller() {
        // Another connection holds the write lock, and this one does not wait for it.
        let path = std::env::temp_dir().join(format!("mcpauth-begin-{}.db", std::process::id()));
        let holder = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        holder
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY); BEGIN IMMEDIATE;",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        let c2 = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        let (one, one_answer) = job(insert(1));
        let (two, two_answer) = job(insert(2));
        let mut batch = vec![one, two];
        let committed = commit_batch(&c2, &mut batch).map_err(Arc::new);
        assert!(committed.is_err());
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        for mut answer in [one_answer, two_answer] {
            assert!(matches!(answer.try_recv(), Ok(Err(StoreError::Sqlite(_)))));
        }
        drop((holder, c2));
        std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{e}"));
    }

    #[test]
    fn a_write_that_panics_is_that_writes_failure_and_the_batch_commits() {
        let c = table();
        let (first, first_answer) = job(insert(1));
        let (panicking, panicking_answer) = job(|_| panic!("a bug in one write"));
        let mut batch = vec![first, panicking];
        let committed = commit_batch(&c, &mut batch).map_err(Arc::new);
        for job in batch {
            job.finish(committed.as_ref().map(|_| ()));
        }
        assert_eq!(ids(&c), [1]);
        let answers = [first_answer, panicking_answer].map(|mut a| a.try_recv());
        assert!(matches!(answers[0], Ok(Ok(()))));
        assert!(matches!(answers[1], Ok(Err(StoreError::Conflict(_)))));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_are_each_answered_after_their_commit() {
        let dir = std::env::temp_dir().join(format!("mcpauth-writer-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
        let path = dir.join("writer.db");
        let setup = Connection::open(&path).unwrap_or_else(|e| panic!("{e}"));
        setup
            .execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY); DELETE FROM t;")
            .unwrap_or_else(|e| panic!("{e}"));
        let lock = Arc::new(tokio::sync::Mutex::new(()));
        let db = Arc::new(
            Sqlite::open(
                &path,
                Duration::from_secs(5),
                Duration::from_secs(10),
                4,
                lock,
            )
            .unwrap_or_else(|e| panic!("{e}")),
        );
        let writes = (0..200).map(|id| {
            let db = Arc::clone(&db);
            tokio::spawn(async move {
                db.write(insert(id)).await?;
                // Answered: a reader sees it.
                let seen = db.read(|c| {
                    sqlite_row(
                        c,
                        "SELECT id FROM t WHERE id = $1",
                        &[Param::from(id)],
                        |r| r.integer("id"),
                    )
                })?;
                Ok::<_, StoreError>(seen == Some(id))
            })
        });
        for write in futures::future::join_all(writes).await {
            assert!(matches!(write, Ok(Ok(true))));
        }
        let seen = db.read(|c| Ok(ids(c))).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seen, (0..200).collect::<Vec<_>>());
        db.close();
        assert!(matches!(
            db.write(insert(1000)).await,
            Err(StoreError::Closed)
        ));
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    }
}
