//! Provides the private PostgreSQL cluster that `wakeplane serve` runs when no `DATABASE_URL`
//! is given, and that test binaries and benchmarks use as a throwaway database server.
//! It owns one data directory (`pgdata/`, `socket/`, `postgres.log`, `owner.pid`) and one
//! postmaster child tied to this process; it must never touch a cluster it did not create,
//! listen on TCP, or leave a postmaster running once its owning process is gone.
//!
//! Lifetime: the postmaster is spawned (directly, not through `pg_ctl`) from a dedicated
//! thread that lives exactly as long as the postmaster, with `PR_SET_PDEATHSIG = SIGINT`
//! set after the uid switch, so a SIGKILLed owner still gets a fast shutdown of its server —
//! also when the handle sits in a `static LazyLock` initialised on a short-lived test thread.
//! An `atexit` hook additionally stops (and, for temporary clusters, deletes) clusters whose
//! handle is never dropped, which is exactly what happens to statics.
//!
//! Stale servers: a postmaster found alive in `pgdata` at start whose recorded owner process
//! is gone is stopped (SIGINT, then SIGQUIT/SIGKILL after a deadline) and a fresh one started
//! as our child; we do not adopt it, because an adopted server would not be tied to our
//! lifetime. If the recorded owner is still alive, start fails with [`PgError::InUse`].
//!
//! Security: authentication is `trust`, so the socket directory is mode 0700 (only the
//! server's user, and root, can connect).
//!
//! Parts: `discovery` finds the server binaries, `postmaster` owns the child process and its
//! parent-death signal, `registry` the exit hook, `procs` what `/proc` and lock files say,
//! `paths` socket paths, URLs and the server's user, `temp` throwaway cluster directories.

mod discovery;
mod paths;
mod postmaster;
mod procs;
mod registry;
mod temp;

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use discovery::find_bin_dir;
use paths::{
    build_url, check_reachable, check_socket_path, chown_path, chown_tree, resolve_run_as,
    set_mode, socket_dirs_setting, RunAs,
};
use postmaster::{set_parent_death_signal, Postmaster};
use procs::{
    is_live_postgres, log_tail, postmaster_reports_ready, read_lock_pid, read_owner,
    remove_stale_lock, stop_foreign_postmaster, write_owner_file,
};
use registry::{registry_add, registry_remove, registry_set_server};
use temp::{create_unique_dir, sweep_stale_temporaries, temp_base};

/// Port number; with `listen_addresses = ''` it only names the socket file.
const PORT: u16 = 5432;
/// `sizeof(sockaddr_un.sun_path)` is 108 on Linux, including the trailing NUL.
const MAX_SOCKET_PATH: usize = 107;
/// Superuser created by initdb and used in [`PgCluster::url`].
const SUPERUSER: &str = "postgres";
/// System account the server runs as when we are root.
const SYSTEM_USER: &str = "postgres";
const TEMP_PREFIX: &str = "wp-pg-";
const OWNER_FILE: &str = "owner.pid";
const LOG_FILE: &str = "postgres.log";
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a previous incarnation may take to go away before we give up.
const STALE_TIMEOUT: Duration = Duration::from_secs(10);
const FAST_STOP_TIMEOUT: Duration = Duration::from_secs(15);
const IMMEDIATE_STOP_TIMEOUT: Duration = Duration::from_secs(5);
const KILL_TIMEOUT: Duration = Duration::from_secs(5);
/// Temporary directories without an owner file older than this are swept.
const ORPHAN_DIR_AGE: Duration = Duration::from_secs(600);

const NOT_FOUND_MSG: &str = "PostgreSQL server binaries not found (looked for initdb and postgres \
     via `pg_config --bindir`, PATH and /usr/lib/postgresql/*/bin); set DATABASE_URL to use an \
     existing server, or use the Docker Compose stack in docker/";

/// Errors from managing the private cluster.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    #[error("{}", NOT_FOUND_MSG)]
    BinariesNotFound,
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    #[error(
        "socket path {path} is {len} bytes, longer than the {max}-byte limit for Unix sockets; \
         choose a shorter data directory"
    )]
    SocketPathTooLong {
        path: PathBuf,
        len: usize,
        max: usize,
    },
    #[error(
        "running as root, but there is no `postgres` system user to run PostgreSQL as \
         (initdb and postgres refuse to run as root); create one (e.g. install the postgresql \
         package or `useradd -r postgres`), run as an ordinary user, or set DATABASE_URL"
    )]
    NoPostgresUser,
    #[error(
        "the `postgres` system user cannot reach {data_dir}: {blocked} is not searchable by it \
         (PostgreSQL refuses to run as root, so the cluster runs as that user); choose a data \
         directory under a path it can enter, e.g. /var/lib/wakeplane"
    )]
    Unreachable { data_dir: PathBuf, blocked: PathBuf },
    #[error("{path} exists but is not a PostgreSQL data directory (no PG_VERSION); remove it or choose another data directory")]
    NotACluster { path: PathBuf },
    #[error("initdb failed in {data_dir} ({status}):\n{output}")]
    InitdbFailed {
        data_dir: PathBuf,
        status: String,
        output: String,
    },
    #[error(
        "the cluster in {data_dir} is in use: postmaster {postmaster_pid} belongs to live process {owner_pid}"
    )]
    InUse {
        data_dir: PathBuf,
        postmaster_pid: i32,
        owner_pid: i32,
    },
    #[error("could not stop the previous postmaster {pid} in {data_dir}: {reason}")]
    StaleServer {
        data_dir: PathBuf,
        pid: i32,
        reason: String,
    },
    #[error("PostgreSQL in {data_dir} failed to start: {reason}; last lines of {log}:\n{tail}")]
    StartFailed {
        data_dir: PathBuf,
        reason: String,
        log: PathBuf,
        tail: String,
    },
    #[error("PostgreSQL (pid {pid}) did not exit after SIGINT, SIGQUIT and SIGKILL")]
    StopFailed { pid: i32 },
}

fn io_err(context: impl Into<String>) -> impl FnOnce(io::Error) -> PgError {
    let context = context.into();
    move |source| PgError::Io { context, source }
}

/// Options for [`PgCluster::start_with`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Trade durability for speed: `initdb --no-sync`, and `fsync`, `synchronous_commit`,
    /// `full_page_writes` off. For tests and benchmarks only.
    pub fast: bool,
    /// `max_connections` of the server.
    pub max_connections: u32,
}

impl Default for PgOptions {
    fn default() -> Self {
        PgOptions {
            fast: false,
            max_connections: 100,
        }
    }
}

/// A private PostgreSQL cluster: a data directory plus (while running) a postmaster child.
pub struct PgCluster {
    data_dir: PathBuf,
    pgdata: PathBuf,
    socket_dir: PathBuf,
    bin_dir: PathBuf,
    run_as: Option<RunAs>,
    options: PgOptions,
    temporary: bool,
    /// Key of this handle in the exit-hook registry.
    id: u64,
    server: Option<Postmaster>,
}

impl fmt::Debug for PgCluster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgCluster")
            .field("data_dir", &self.data_dir)
            .field("socket_dir", &self.socket_dir)
            .field("bin_dir", &self.bin_dir)
            .field("pid", &self.server.as_ref().map(|s| s.shared.pid))
            .field("temporary", &self.temporary)
            .finish()
    }
}

impl PgCluster {
    /// Creates (first time) or reuses a cluster in `data_dir` and starts it, with durable
    /// settings. See [`PgCluster::start_with`].
    pub fn start(data_dir: &Path) -> Result<PgCluster, PgError> {
        Self::start_with(data_dir, PgOptions::default())
    }

    /// Creates (first time) or reuses a cluster in `data_dir` and starts it.
    /// `options.fast` adds the no-fsync settings.
    pub fn start_with(data_dir: &Path, options: PgOptions) -> Result<PgCluster, PgError> {
        let run_as = resolve_run_as()?;
        let bin_dir = find_bin_dir()?;
        fs::create_dir_all(data_dir).map_err(io_err(format!(
            "creating data directory {}",
            data_dir.display()
        )))?;
        Self::open(data_dir, bin_dir, run_as, options, false)
    }

    /// A throwaway cluster in a fresh temp dir (tests and benchmarks), removed on drop
    /// (or at process exit when the handle is never dropped). Also sweeps older
    /// `wp-pg-*` directories whose owning process is gone.
    pub fn temporary() -> Result<PgCluster, PgError> {
        let run_as = resolve_run_as()?;
        let bin_dir = find_bin_dir()?;
        let base = temp_base();
        sweep_stale_temporaries(&base);
        let dir = create_unique_dir(&base)?;
        write_owner_file(&dir)?;
        // Generous: an in-process test app's pool outlives its test (the executor
        // arbiter's thread keeps it) until the test binary exits, and each node also holds
        // a worker-id lock and a listener connection.
        let options = PgOptions {
            fast: true,
            max_connections: 400,
        };
        match Self::open(&dir, bin_dir, run_as, options, true) {
            Ok(cluster) => Ok(cluster),
            Err(e) => {
                let _ = fs::remove_dir_all(&dir);
                Err(e)
            }
        }
    }

    fn open(
        data_dir: &Path,
        bin_dir: PathBuf,
        run_as: Option<RunAs>,
        options: PgOptions,
        temporary: bool,
    ) -> Result<PgCluster, PgError> {
        let data_dir = data_dir
            .canonicalize()
            .map_err(io_err(format!("resolving {}", data_dir.display())))?;
        let socket_dir = data_dir.join("socket");
        check_socket_path(&socket_dir, PORT)?;
        let mut cluster = PgCluster {
            pgdata: data_dir.join("pgdata"),
            socket_dir,
            data_dir: data_dir.clone(),
            bin_dir,
            run_as,
            options,
            temporary,
            id: registry_add(&data_dir, temporary),
            server: None,
        };
        // From here on, Drop cleans up (stops the server, deletes temporary dirs).
        cluster.prepare_dirs()?;
        cluster.ensure_initialized()?;
        cluster.launch()?;
        Ok(cluster)
    }

    /// libpq/diesel URL for `database` on this cluster, connecting over the Unix socket as
    /// the `postgres` superuser, e.g.
    /// `postgres://postgres@localhost:5432/app?host=%2Ftmp%2Fwp-pg-1-0-ab%2Fsocket`.
    pub fn url(&self, database: &str) -> String {
        build_url(&self.socket_dir, PORT, database)
    }

    /// The socket directory (shown to operators as where the data lives).
    pub fn socket_dir(&self) -> &Path {
        &self.socket_dir
    }

    /// The (canonical) data directory holding `pgdata/`, `socket/` and `postgres.log`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The server log file.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join(LOG_FILE)
    }

    /// The port number naming the socket (`.s.PGSQL.<port>`); nothing listens on TCP.
    pub fn port(&self) -> u16 {
        PORT
    }

    /// Whether the postmaster is currently running.
    pub fn is_running(&self) -> bool {
        self.server
            .as_ref()
            .is_some_and(|s| s.shared.exit_status().is_none())
    }

    /// Stops the server (fast shutdown) and waits for it; idempotent.
    pub fn stop(&mut self) -> Result<(), PgError> {
        let Some(server) = self.server.take() else {
            return Ok(());
        };
        registry_set_server(self.id, None);
        let pid = server.shared.pid;
        server.stop()?;
        tracing::info!(data_dir = %self.data_dir.display(), pid, "private PostgreSQL stopped");
        Ok(())
    }

    /// Starts the server again after [`PgCluster::stop`] in the same directory (same socket
    /// path). A no-op if it is running; restarts it if it exited on its own.
    pub fn restart(&mut self) -> Result<(), PgError> {
        if self.is_running() {
            return Ok(());
        }
        // Reap the remains of a server that died by itself.
        self.stop()?;
        self.prepare_dirs()?;
        self.launch()
    }

    fn pidfile(&self) -> PathBuf {
        self.pgdata.join("postmaster.pid")
    }

    fn socket_path(&self) -> PathBuf {
        self.socket_dir.join(format!(".s.PGSQL.{PORT}"))
    }

    /// Creates `socket/`, fixes ownership and modes, and (as root) checks that the
    /// `postgres` user can reach the data directory.
    fn prepare_dirs(&self) -> Result<(), PgError> {
        if !self.socket_dir.is_dir() {
            fs::DirBuilder::new()
                .mode(0o700)
                .create(&self.socket_dir)
                .map_err(io_err(format!("creating {}", self.socket_dir.display())))?;
        }
        set_mode(&self.socket_dir, 0o700)?;
        if self.pgdata.is_dir() {
            set_mode(&self.pgdata, 0o700)?;
        }
        if let Some(user) = self.run_as {
            chown_path(&self.data_dir, user)?;
            chown_path(&self.socket_dir, user)?;
            let log = self.log_path();
            if log.exists() {
                chown_path(&log, user)?;
            }
            if self.pgdata.is_dir() {
                let meta = fs::metadata(&self.pgdata)
                    .map_err(io_err(format!("reading {}", self.pgdata.display())))?;
                if meta.uid() != user.uid {
                    chown_tree(&self.pgdata, user)?;
                }
            }
            check_reachable(&self.data_dir, user)?;
        }
        Ok(())
    }

    /// Runs initdb on first use. initdb writes into `pgdata.initdb` and the result is
    /// renamed into place, so an interrupted initdb never leaves a half-made cluster.
    fn ensure_initialized(&self) -> Result<(), PgError> {
        if self.pgdata.join("PG_VERSION").is_file() {
            return Ok(());
        }
        if self.pgdata.exists() {
            let empty = fs::read_dir(&self.pgdata)
                .map_err(io_err(format!("reading {}", self.pgdata.display())))?
                .next()
                .is_none();
            if !empty {
                return Err(PgError::NotACluster {
                    path: self.pgdata.clone(),
                });
            }
            fs::remove_dir(&self.pgdata)
                .map_err(io_err(format!("removing empty {}", self.pgdata.display())))?;
        }
        let staging = self.data_dir.join("pgdata.initdb");
        if staging.exists() {
            fs::remove_dir_all(&staging)
                .map_err(io_err(format!("removing leftover {}", staging.display())))?;
        }
        tracing::info!(data_dir = %self.data_dir.display(), "running initdb for the private PostgreSQL cluster");
        let mut cmd = Command::new(self.bin_dir.join("initdb"));
        cmd.arg("-D").arg(&staging).args([
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
        ]);
        if self.options.fast {
            cmd.arg("--no-sync");
        }
        cmd.current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .env_remove("PGDATA");
        self.apply_identity(&mut cmd);
        set_parent_death_signal(&mut cmd, libc::SIGTERM);
        let out = cmd.output().map_err(io_err("running initdb"))?;
        if !out.status.success() {
            let _ = fs::remove_dir_all(&staging);
            let mut output = String::from_utf8_lossy(&out.stdout).into_owned();
            output.push_str(&String::from_utf8_lossy(&out.stderr));
            return Err(PgError::InitdbFailed {
                data_dir: self.data_dir.clone(),
                status: out.status.to_string(),
                output,
            });
        }
        fs::rename(&staging, &self.pgdata).map_err(io_err(format!(
            "moving {} to {}",
            staging.display(),
            self.pgdata.display()
        )))?;
        Ok(())
    }

    fn apply_identity(&self, cmd: &mut Command) {
        if let Some(user) = self.run_as {
            // std drops supplementary groups (setgroups(0)) when switching uid as root.
            cmd.uid(user.uid).gid(user.gid);
        }
    }

    fn postmaster_command(&self, log: fs::File) -> Result<Command, PgError> {
        let log_err = log
            .try_clone()
            .map_err(io_err("duplicating the log file handle"))?;
        let mut cmd = Command::new(self.bin_dir.join("postgres"));
        cmd.arg("-D")
            .arg(&self.pgdata)
            .arg("-p")
            .arg(PORT.to_string())
            .arg("-c")
            .arg("listen_addresses=")
            .arg("-c")
            .arg(socket_dirs_setting(&self.socket_dir))
            .arg("-c")
            .arg("unix_socket_permissions=0700")
            .arg("-c")
            .arg(format!("max_connections={}", self.options.max_connections));
        if self.options.fast {
            for setting in [
                "fsync=off",
                "synchronous_commit=off",
                "full_page_writes=off",
            ] {
                cmd.arg("-c").arg(setting);
            }
        }
        cmd.current_dir(&self.data_dir)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .env_remove("PGDATA")
            // Own process group: a terminal's Ctrl-C reaches wakeplane, which then drains
            // and stops the database itself, instead of killing the database first.
            .process_group(0);
        self.apply_identity(&mut cmd);
        set_parent_death_signal(&mut cmd, libc::SIGINT);
        Ok(cmd)
    }

    /// Starts the postmaster and waits until it accepts connections.
    fn launch(&mut self) -> Result<(), PgError> {
        self.clear_stale_postmaster()?;
        write_owner_file(&self.data_dir)?;
        let log_path = self.log_path();
        let retry_until = Instant::now() + STALE_TIMEOUT;
        loop {
            let log = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&log_path)
                .map_err(io_err(format!("opening {}", log_path.display())))?;
            if let Some(user) = self.run_as {
                chown_path(&log_path, user)?;
            }
            let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
            let cmd = self.postmaster_command(log)?;
            let server =
                Postmaster::spawn(cmd).map_err(io_err("starting the postgres server process"))?;
            let pid = server.shared.pid;
            match self.wait_ready(&server) {
                Ready::Yes => {
                    registry_set_server(self.id, Some(server.shared.clone()));
                    self.server = Some(server);
                    tracing::info!(
                        data_dir = %self.data_dir.display(),
                        socket_dir = %self.socket_dir.display(),
                        pid,
                        "private PostgreSQL is up"
                    );
                    return Ok(());
                }
                Ready::Exited(status) => {
                    let _ = server.stop();
                    let tail = log_tail(&log_path, log_start);
                    if Instant::now() < retry_until && looks_like_previous_instance(&tail) {
                        tracing::debug!(pid, "previous postmaster still going away; retrying");
                        std::thread::sleep(Duration::from_millis(300));
                        continue;
                    }
                    return Err(self.start_failed(format!("postgres exited ({status})"), log_start));
                }
                Ready::Failed(reason) => {
                    let _ = server.stop();
                    return Err(self.start_failed(reason, log_start));
                }
            }
        }
    }

    fn start_failed(&self, reason: String, log_start: u64) -> PgError {
        let log = self.log_path();
        PgError::StartFailed {
            data_dir: self.data_dir.clone(),
            reason,
            tail: log_tail(&log, log_start),
            log,
        }
    }

    fn wait_ready(&self, server: &Postmaster) -> Ready {
        let deadline = Instant::now() + READY_TIMEOUT;
        let pidfile = self.pidfile();
        let socket = self.socket_path();
        let mut delay = Duration::from_millis(5);
        loop {
            if let Some(status) = server.shared.exit_status() {
                return Ready::Exited(describe_status(status));
            }
            if postmaster_reports_ready(&pidfile, server.shared.pid) {
                match UnixStream::connect(&socket) {
                    Ok(_) => return Ready::Yes,
                    Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                        return Ready::Failed(format!(
                            "cannot connect to {}: {e}",
                            socket.display()
                        ))
                    }
                    Err(_) => {}
                }
            }
            let now = Instant::now();
            if now >= deadline {
                return Ready::Failed(format!("not ready after {} s", READY_TIMEOUT.as_secs()));
            }
            if let Some(status) = server.shared.wait_exit(delay.min(deadline - now)) {
                return Ready::Exited(describe_status(status));
            }
            delay = (delay * 2).min(Duration::from_millis(100));
        }
    }

    /// Deals with a `postmaster.pid` left by a previous incarnation (see the module docs).
    fn clear_stale_postmaster(&self) -> Result<(), PgError> {
        let pidfile = self.pidfile();
        if let Some(pid) = read_lock_pid(&pidfile) {
            if is_live_postgres(pid) {
                if let Some(owner) = read_owner(&self.data_dir) {
                    if owner.is_alive() {
                        return Err(PgError::InUse {
                            data_dir: self.data_dir.clone(),
                            postmaster_pid: pid,
                            owner_pid: owner.pid,
                        });
                    }
                }
                tracing::warn!(
                    data_dir = %self.data_dir.display(),
                    pid,
                    "stopping a postmaster left running by a previous process"
                );
                stop_foreign_postmaster(pid).map_err(|reason| PgError::StaleServer {
                    data_dir: self.data_dir.clone(),
                    pid,
                    reason,
                })?;
            }
        }
        // PostgreSQL removes stale lock files itself, except when the recorded pid is a
        // zombie or was reused by another process; remove those ourselves.
        remove_stale_lock(&pidfile);
        remove_stale_lock(&self.socket_dir.join(format!(".s.PGSQL.{PORT}.lock")));
        Ok(())
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if let Err(e) = self.stop() {
            tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "stopping private PostgreSQL failed");
        }
        registry_remove(self.id);
        if self.temporary {
            if let Err(e) = fs::remove_dir_all(&self.data_dir) {
                tracing::warn!(data_dir = %self.data_dir.display(), error = %e, "removing temporary cluster failed");
            }
        }
    }
}

enum Ready {
    Yes,
    Exited(String),
    Failed(String),
}

fn describe_status(status: Option<ExitStatus>) -> String {
    match status {
        Some(s) => s.to_string(),
        None => "exit status unknown".to_string(),
    }
}

/// The log tail mentions a previous instance still holding the lock or shared memory.
fn looks_like_previous_instance(tail: &str) -> bool {
    tail.contains("lock file") || tail.contains("shared memory block")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_handle_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PgCluster>();
    }
}
