//! Throwaway PostgreSQL clusters for tests, so the suite needs no preinstalled server: only the
//! binaries of Debian's `postgresql` package (or any PostgreSQL install).
//!
//! [`TempPostgres::start`] runs `initdb` on a fresh temporary directory and `pg_ctl start` on a
//! free loopback port, with trust authentication for the `postgres` role. The cluster is
//! stopped and its directory removed when the value is dropped, and, should the test process
//! die without dropping it (a panic in another thread, `SIGKILL`), by a small watchdog process
//! that notices the test process is gone. Tests can also [`stop`](TempPostgres::stop) and
//! [`start_again`](TempPostgres::start_again) the cluster to exercise database outages.
//!
//! PostgreSQL refuses to run as root; under root (as in CI containers) the cluster runs as the
//! `postgres` system user that Debian's package creates.
//!
//! Binaries are looked up in `MCPAUTH_PG_BIN`, then the newest `/usr/lib/postgresql/*/bin`,
//! then `PATH`.
//!
//! ```
//! let pg = mcpauth_test_postgres::TempPostgres::start()?; // initdb + pg_ctl on loopback
//! let url = pg.create_database("kit")?;
//! assert!(url.starts_with("postgres://postgres@127.0.0.1:") && url.ends_with("/kit"));
//! // Dropping `pg` stops the cluster and deletes its directory.
//! # Ok::<(), mcpauth_test_postgres::PgError>(())
//! ```

use std::net::TcpListener;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Why a cluster could not be set up or driven.
#[derive(Debug)]
#[non_exhaustive]
pub enum PgError {
    /// No PostgreSQL binaries were found.
    NotInstalled,
    /// A command failed; the message says which and includes its output or server log.
    Command(String),
    /// A file-system or process error.
    Io(std::io::Error),
}

impl std::fmt::Display for PgError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NotInstalled => write!(
                f,
                "PostgreSQL binaries not found: install Debian's `postgresql` package \
                 (apt-get install postgresql) or set MCPAUTH_PG_BIN to the directory holding initdb"
            ),
            Self::Command(message) => write!(f, "{message}"),
            Self::Io(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for PgError {}

impl From<std::io::Error> for PgError {
    fn from(e: std::io::Error) -> Self {
        Self::Io(e)
    }
}

/// A running throwaway cluster.
#[derive(Debug)]
pub struct TempPostgres {
    bin: PathBuf,
    base: PathBuf,
    port: u16,
    /// `Some((uid, gid))` of `postgres` when running as root.
    run_as: Option<(u32, u32)>,
    watchdog: Option<Child>,
}

static NEXT: AtomicU32 = AtomicU32::new(0);

fn find_bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("MCPAUTH_PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Some(bin);
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .find(|dir| dir.join("initdb").exists() && dir.join("pg_ctl").exists())
}

/// The uid and gid of the `postgres` user, from `/etc/passwd`.
fn postgres_user() -> Result<(u32, u32), PgError> {
    let passwd = std::fs::read_to_string("/etc/passwd")?;
    passwd
        .lines()
        .find_map(|line| {
            let mut fields = line.split(':');
            (fields.next()? == "postgres").then_some(())?;
            let _password = fields.next()?;
            Some((fields.next()?.parse().ok()?, fields.next()?.parse().ok()?))
        })
        .ok_or_else(|| {
            PgError::Command(
                "running as root, and there is no `postgres` user to run PostgreSQL as \
                 (Debian's postgresql package creates it)"
                    .into(),
            )
        })
}

fn free_port() -> Result<u16, PgError> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl TempPostgres {
    /// Creates and starts a cluster.
    ///
    /// # Errors
    ///
    /// [`PgError::NotInstalled`] without PostgreSQL binaries; otherwise the failing step with
    /// its output.
    pub fn start() -> Result<Self, PgError> {
        let bin = find_bin_dir().ok_or(PgError::NotInstalled)?;
        // /proc/self belongs to the effective user: root needs another user for PostgreSQL.
        let run_as = if std::fs::metadata("/proc/self")?.uid() == 0 {
            Some(postgres_user()?)
        } else {
            None
        };
        let base = std::env::temp_dir().join(format!(
            "mcpauth-pg-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        if base.exists() {
            std::fs::remove_dir_all(&base)?;
        }
        std::fs::create_dir_all(&base)?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&base, Some(uid), Some(gid))?;
        }
        let mut cluster = Self {
            bin,
            base,
            port: free_port()?,
            run_as,
            watchdog: None,
        };
        cluster.initdb()?;
        cluster.watchdog = Some(cluster.spawn_watchdog()?);
        cluster.start_again()?;
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.base.join("data")
    }

    fn log_file(&self) -> PathBuf {
        self.base.join("server.log")
    }

    /// A command for a PostgreSQL server binary, as the `postgres` user when we are root.
    fn server_command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        let mut command = match self.run_as {
            Some(_) => {
                let mut command = Command::new("runuser");
                command.args(["-u", "postgres", "--"]).arg(path);
                command
            }
            None => Command::new(path),
        };
        // The test's own directory may be closed to the `postgres` user.
        command.current_dir(&self.base);
        command
    }

    fn run(mut command: Command, what: &str) -> Result<(), PgError> {
        let output = command.stdin(Stdio::null()).output()?;
        if output.status.success() {
            return Ok(());
        }
        Err(PgError::Command(format!(
            "{what} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )))
    }

    fn initdb(&self) -> Result<(), PgError> {
        let mut command = self.server_command("initdb");
        command.arg("-D").arg(self.data_dir()).args([
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        ]);
        Self::run(command, "initdb")?;
        // Loopback only, sockets in our own directory; durability traded for speed (the tests
        // stop PostgreSQL cleanly, they never crash it).
        let settings = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {}\nunix_socket_directories = '{}'\n\
             max_connections = 200\nfsync = off\nsynchronous_commit = off\nfull_page_writes = off\n",
            self.port,
            self.base.display()
        );
        let conf = self.data_dir().join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str(&settings);
        std::fs::write(&conf, text)?;
        Ok(())
    }

    /// Stops the cluster and deletes its directory when this process is gone.
    fn spawn_watchdog(&self) -> Result<Child, PgError> {
        let pg_ctl = self.bin.join("pg_ctl");
        let stop = match self.run_as {
            Some(_) => format!(
                "runuser -u postgres -- '{}' -D '{}' stop -m immediate",
                pg_ctl.display(),
                self.data_dir().display()
            ),
            None => format!(
                "'{}' -D '{}' stop -m immediate",
                pg_ctl.display(),
                self.data_dir().display()
            ),
        };
        let script = format!(
            "while kill -0 {pid} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf '{base}'",
            pid = std::process::id(),
            base = self.base.display()
        );
        Ok(Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?)
    }

    /// Starts the (stopped) cluster again on the same port, waiting until it accepts
    /// connections.
    ///
    /// # Errors
    ///
    /// `pg_ctl` failed; the message includes the server log.
    pub fn start_again(&self) -> Result<(), PgError> {
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .arg("-l")
            .arg(self.log_file())
            .args(["-w", "-t", "60", "start"])
            // pg_ctl hands the server our stdout otherwise; keep the test's output clean.
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let status = command.stdin(Stdio::null()).status()?;
        if status.success() {
            return Ok(());
        }
        let log = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        Err(PgError::Command(format!(
            "pg_ctl start failed ({status}): {log}"
        )))
    }

    /// Stops the cluster (fast shutdown: connections are cut, committed work is kept).
    ///
    /// # Errors
    ///
    /// `pg_ctl` failed.
    pub fn stop(&self) -> Result<(), PgError> {
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", "fast", "stop"]);
        Self::run(command, "pg_ctl stop")
    }

    /// The loopback port the cluster listens on.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The URL of `database` for the `postgres` role.
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    /// Creates `database` (letters, digits and `_` only) and returns its URL.
    ///
    /// # Errors
    ///
    /// `createdb` failed, or the name has other characters.
    pub fn create_database(&self, database: &str) -> Result<String, PgError> {
        if database.is_empty()
            || !database
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            return Err(PgError::Command(format!(
                "database name `{database}`: use letters, digits and `_`"
            )));
        }
        let mut command = Command::new(self.bin.join("createdb"));
        command
            .args(["-h", "127.0.0.1", "-U", "postgres", "-p"])
            .arg(self.port.to_string())
            .arg(database);
        Self::run(command, "createdb")?;
        Ok(self.url(database))
    }

    /// The directory holding the cluster (data and log).
    #[must_use]
    pub fn directory(&self) -> &Path {
        &self.base
    }
}

impl Drop for TempPostgres {
    fn drop(&mut self) {
        let mut command = self.server_command("pg_ctl");
        command
            .arg("-D")
            .arg(self.data_dir())
            .args(["-w", "-m", "immediate", "stop"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // A cluster a test already stopped makes this fail; that is fine.
        let _stopped = command.status();
        if let Some(mut watchdog) = self.watchdog.take() {
            let _killed = watchdog.kill();
            let _reaped = watchdog.wait();
        }
        let _removed = std::fs::remove_dir_all(&self.base);
    }
}
