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

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};
use std::os::unix::net::UnixStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc, Condvar, Mutex, MutexGuard, Once};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

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
        let options = PgOptions {
            fast: true,
            max_connections: 200,
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

// ---------------------------------------------------------------------------------------
// The postmaster child and its dedicated thread.

#[derive(Clone, Copy, Debug)]
enum PmState {
    Running,
    /// Reaped; `None` if the exit status could not be collected.
    Exited(Option<ExitStatus>),
}

/// State shared between the handle and the thread that owns the child.
#[derive(Debug)]
struct PmShared {
    pid: i32,
    state: Mutex<PmState>,
    cond: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl PmShared {
    fn exit_status(&self) -> Option<Option<ExitStatus>> {
        match *lock(&self.state) {
            PmState::Running => None,
            PmState::Exited(s) => Some(s),
        }
    }

    /// Sends `sig` if the child has not been reaped yet. Holding the lock guarantees the
    /// pid still names our child (it is reaped only under the same lock).
    fn signal(&self, sig: libc::c_int) {
        let guard = lock(&self.state);
        if matches!(*guard, PmState::Running) {
            // SAFETY: plain syscall; pid is our unreaped child.
            unsafe {
                libc::kill(self.pid, sig);
            }
        }
    }

    fn wait_exit(&self, timeout: Duration) -> Option<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        let mut guard = lock(&self.state);
        loop {
            if let PmState::Exited(s) = *guard {
                return Some(s);
            }
            let now = Instant::now();
            if now >= deadline {
                return None;
            }
            guard = match self.cond.wait_timeout(guard, deadline - now) {
                Ok((g, _)) => g,
                Err(e) => e.into_inner().0,
            };
        }
    }

    /// Fast shutdown, escalating to immediate shutdown and SIGKILL after deadlines.
    fn shutdown(&self) -> Result<(), PgError> {
        for (sig, timeout) in [
            (libc::SIGINT, FAST_STOP_TIMEOUT),
            (libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT),
            (libc::SIGKILL, KILL_TIMEOUT),
        ] {
            self.signal(sig);
            if self.wait_exit(timeout).is_some() {
                return Ok(());
            }
            tracing::warn!(
                pid = self.pid,
                signal = sig,
                "postmaster did not exit in time; escalating"
            );
        }
        Err(PgError::StopFailed { pid: self.pid })
    }
}

struct Postmaster {
    shared: Arc<PmShared>,
    thread: Option<JoinHandle<()>>,
}

impl Postmaster {
    /// Spawns `cmd` from a dedicated thread that waits for the child and exits only after
    /// the child has exited, so PR_SET_PDEATHSIG (which tracks the spawning *thread*) fires
    /// only if the whole process dies.
    fn spawn(mut cmd: Command) -> io::Result<Postmaster> {
        let (tx, rx) = mpsc::channel::<io::Result<Arc<PmShared>>>();
        let thread = std::thread::Builder::new()
            .name("wp-postmaster".into())
            .spawn(move || {
                let mut child = match cmd.spawn() {
                    Ok(c) => c,
                    Err(e) => {
                        let _ = tx.send(Err(e));
                        return;
                    }
                };
                let shared = Arc::new(PmShared {
                    pid: child.id() as i32,
                    state: Mutex::new(PmState::Running),
                    cond: Condvar::new(),
                });
                let _ = tx.send(Ok(shared.clone()));
                wait_exited_without_reaping(shared.pid);
                let mut guard = lock(&shared.state);
                *guard = PmState::Exited(child.wait().ok());
                shared.cond.notify_all();
            })?;
        match rx.recv() {
            Ok(Ok(shared)) => Ok(Postmaster {
                shared,
                thread: Some(thread),
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(io::Error::other("postmaster thread ended unexpectedly"))
            }
        }
    }

    fn stop(mut self) -> Result<(), PgError> {
        self.shared.shutdown()?;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        Ok(())
    }
}

/// Blocks until `pid` (our child) has exited, leaving it unreaped (`WNOWAIT`).
fn wait_exited_without_reaping(pid: i32) {
    loop {
        // SAFETY: siginfo_t is plain data; waitid only writes into it.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if rc == 0 || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn set_parent_death_signal(_cmd: &mut Command, _sig: libc::c_int) {
    // No PR_SET_PDEATHSIG outside Linux: the atexit hook and Drop are all we have.
}

/// Makes the child get `sig` when the spawning thread dies. Runs after std's setgid/setuid
/// (which would clear the setting), and checks that the parent did not die before it.
#[cfg(target_os = "linux")]
fn set_parent_death_signal(cmd: &mut Command, sig: libc::c_int) {
    // SAFETY: getpid is async-signal-safe; see below for the closure.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure only makes async-signal-safe syscalls and does not allocate.
    unsafe {
        cmd.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, sig as libc::c_ulong, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::getppid() != parent {
                return Err(io::Error::from_raw_os_error(libc::ESRCH));
            }
            Ok(())
        });
    }
}

// ---------------------------------------------------------------------------------------
// Exit hook: stop clusters whose handles are never dropped (statics).

struct Registered {
    id: u64,
    data_dir: PathBuf,
    temporary: bool,
    server: Option<Arc<PmShared>>,
}

static REGISTRY: Mutex<Vec<Registered>> = Mutex::new(Vec::new());
static EXIT_HOOK: Once = Once::new();

fn registry_set_server(id: u64, server: Option<Arc<PmShared>>) {
    let mut reg = lock(&REGISTRY);
    if let Some(entry) = reg.iter_mut().find(|e| e.id == id) {
        entry.server = server;
    }
}

fn registry_add(data_dir: &Path, temporary: bool) -> u64 {
    static NEXT_ID: AtomicU64 = AtomicU64::new(0);
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    EXIT_HOOK.call_once(|| {
        // SAFETY: registering a plain extern "C" function.
        unsafe {
            libc::atexit(stop_all_at_exit);
        }
    });
    lock(&REGISTRY).push(Registered {
        id,
        data_dir: data_dir.to_path_buf(),
        temporary,
        server: None,
    });
    id
}

fn registry_remove(id: u64) {
    lock(&REGISTRY).retain(|e| e.id != id);
}

extern "C" fn stop_all_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        let entries = std::mem::take(&mut *lock(&REGISTRY));
        for entry in entries {
            if let Some(server) = &entry.server {
                let _ = server.shutdown();
            }
            if entry.temporary {
                let _ = fs::remove_dir_all(&entry.data_dir);
            }
        }
    });
}

// ---------------------------------------------------------------------------------------
// Binary discovery.

/// Finds a directory containing both `initdb` and `postgres` of the same version.
fn find_bin_dir() -> Result<PathBuf, PgError> {
    let candidates = candidate_bin_dirs(
        pg_config_bindir(),
        std::env::var_os("PATH").as_deref(),
        versioned_bin_dirs(Path::new("/usr/lib/postgresql")),
    );
    pick_bin_dir(candidates, is_server_bin_dir).ok_or(PgError::BinariesNotFound)
}

fn pg_config_bindir() -> Option<PathBuf> {
    let out = Command::new("pg_config")
        .arg("--bindir")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (!dir.is_empty()).then(|| PathBuf::from(dir))
}

/// Candidate directories in priority order, without duplicates.
fn candidate_bin_dirs(
    pg_config: Option<PathBuf>,
    path_var: Option<&OsStr>,
    versioned: Vec<PathBuf>,
) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = Vec::new();
    let path_dirs = path_var
        .map(|p| std::env::split_paths(p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in pg_config.into_iter().chain(path_dirs).chain(versioned) {
        if dir.as_os_str().is_empty() || !dir.is_absolute() {
            continue;
        }
        if !out.contains(&dir) {
            out.push(dir);
        }
    }
    out
}

fn pick_bin_dir(candidates: Vec<PathBuf>, is_server: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    candidates.into_iter().find(|d| is_server(d))
}

/// `<root>/<version>/bin` for every version directory, highest version first.
fn versioned_bin_dirs(root: &Path) -> Vec<PathBuf> {
    let names: Vec<String> = fs::read_dir(root)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().to_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    sort_versions_desc(names)
        .into_iter()
        .map(|v| root.join(v).join("bin"))
        .collect()
}

fn sort_versions_desc(mut names: Vec<String>) -> Vec<String> {
    fn key(name: &str) -> Vec<u64> {
        name.split('.')
            .map(|p| p.parse::<u64>().unwrap_or(0))
            .collect()
    }
    names.sort_by(|a, b| key(b).cmp(&key(a)).then_with(|| b.cmp(a)));
    names
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Both binaries exist, are executable, and report the same PostgreSQL version.
fn is_server_bin_dir(dir: &Path) -> bool {
    let initdb = dir.join("initdb");
    let postgres = dir.join("postgres");
    if !is_executable(&initdb) || !is_executable(&postgres) {
        return false;
    }
    match (binary_version(&initdb), binary_version(&postgres)) {
        (Some(a), Some(b)) => a == b,
        _ => false,
    }
}

/// `initdb (PostgreSQL) 15.18 (Debian …)` → `(PostgreSQL) 15.18 (Debian …)`.
fn binary_version(bin: &Path) -> Option<String> {
    let out = Command::new(bin)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next()?.trim();
    line.split_once(' ').map(|(_, rest)| rest.to_string())
}

// ---------------------------------------------------------------------------------------
// Paths, URLs, users.

fn check_socket_path(socket_dir: &Path, port: u16) -> Result<(), PgError> {
    let path = socket_dir.join(format!(".s.PGSQL.{port}"));
    // The lock file next to it is longer, but PostgreSQL only limits the socket path.
    let len = path.as_os_str().len();
    if len > MAX_SOCKET_PATH {
        return Err(PgError::SocketPathTooLong {
            path,
            len,
            max: MAX_SOCKET_PATH,
        });
    }
    Ok(())
}

/// `unix_socket_directories="<dir>"`: quoted, so commas and spaces in the path are safe.
fn socket_dirs_setting(dir: &Path) -> String {
    let quoted = dir.to_string_lossy().replace('"', "\"\"");
    format!("unix_socket_directories=\"{quoted}\"")
}

fn percent_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for &b in bytes {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn build_url(socket_dir: &Path, port: u16, database: &str) -> String {
    format!(
        "postgres://{SUPERUSER}@localhost:{port}/{}?host={}",
        percent_encode(database.as_bytes()),
        percent_encode(socket_dir.as_os_str().as_bytes())
    )
}

#[derive(Clone, Copy, Debug)]
struct RunAs {
    uid: u32,
    gid: u32,
}

/// `Some(postgres user)` when we are root, `None` (run as ourselves) otherwise.
fn resolve_run_as() -> Result<Option<RunAs>, PgError> {
    // SAFETY: plain syscall.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(None);
    }
    let user = lookup_user(SYSTEM_USER).ok_or(PgError::NoPostgresUser)?;
    if user.uid == 0 {
        return Err(PgError::NoPostgresUser);
    }
    Ok(Some(user))
}

fn lookup_user(name: &str) -> Option<RunAs> {
    let cname = CString::new(name).ok()?;
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    // SAFETY: passwd is plain data; getpwnam_r writes into it and buf.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    let rc = unsafe {
        libc::getpwnam_r(
            cname.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut result,
        )
    };
    if rc != 0 || result.is_null() {
        return None;
    }
    Some(RunAs {
        uid: pwd.pw_uid,
        gid: pwd.pw_gid,
    })
}

fn set_mode(path: &Path, mode: u32) -> Result<(), PgError> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(io_err(format!("setting mode of {}", path.display())))
}

fn chown_path(path: &Path, user: RunAs) -> Result<(), PgError> {
    std::os::unix::fs::lchown(path, Some(user.uid), Some(user.gid))
        .map_err(io_err(format!("changing owner of {}", path.display())))
}

fn chown_tree(path: &Path, user: RunAs) -> Result<(), PgError> {
    chown_path(path, user)?;
    let meta = fs::symlink_metadata(path).map_err(io_err(format!("reading {}", path.display())))?;
    if meta.is_dir() {
        let entries = fs::read_dir(path).map_err(io_err(format!("reading {}", path.display())))?;
        for entry in entries {
            let entry = entry.map_err(io_err(format!("reading {}", path.display())))?;
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

/// Every ancestor of `data_dir` must be searchable by `user` (primary group only: std
/// clears supplementary groups when switching uid).
fn check_reachable(data_dir: &Path, user: RunAs) -> Result<(), PgError> {
    for dir in data_dir.ancestors().skip(1) {
        let meta = fs::metadata(dir).map_err(io_err(format!("reading {}", dir.display())))?;
        if !searchable_by(meta.mode(), meta.uid(), meta.gid(), user) {
            return Err(PgError::Unreachable {
                data_dir: data_dir.to_path_buf(),
                blocked: dir.to_path_buf(),
            });
        }
    }
    Ok(())
}

fn searchable_by(mode: u32, owner: u32, group: u32, user: RunAs) -> bool {
    if owner == user.uid {
        mode & 0o100 != 0
    } else if group == user.gid {
        mode & 0o010 != 0
    } else {
        mode & 0o001 != 0
    }
}

// ---------------------------------------------------------------------------------------
// Processes, lock files and owners.

/// `(state, comm)` from `/proc/<pid>/stat`, plus the start time (field 22).
fn proc_stat(pid: i32) -> Option<(char, String, u64)> {
    if pid <= 0 {
        return None;
    }
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let rest: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    let state = rest.first()?.chars().next()?;
    // rest[0] is field 3 (state); field 22 (starttime) is rest[19].
    let start = rest.get(19)?.parse().ok()?;
    Some((state, comm, start))
}

fn is_live_postgres(pid: i32) -> bool {
    match proc_stat(pid) {
        Some((state, comm, _)) => {
            !matches!(state, 'Z' | 'X' | 'x')
                && (comm.starts_with("postgres") || comm.starts_with("postmaster"))
        }
        None => false,
    }
}

/// The pid on the first line of a PostgreSQL lock file (negative for single-user mode).
fn read_lock_pid(path: &Path) -> Option<i32> {
    let text = fs::read_to_string(path).ok()?;
    text.lines()
        .next()?
        .trim()
        .parse::<i32>()
        .ok()
        .map(|p| p.abs())
}

fn remove_stale_lock(path: &Path) {
    if let Some(pid) = read_lock_pid(path) {
        if !is_live_postgres(pid) {
            let _ = fs::remove_file(path);
        }
    }
}

/// `postmaster.pid` names `pid` and (PostgreSQL ≥ 10) its status line says `ready`.
fn postmaster_reports_ready(pidfile: &Path, pid: i32) -> bool {
    let Ok(text) = fs::read_to_string(pidfile) else {
        return false;
    };
    let lines: Vec<&str> = text.lines().collect();
    if lines.first().map(|l| l.trim()) != Some(pid.to_string().as_str()) {
        return false;
    }
    // Line 8 is the status PostgreSQL (10+) writes once it accepts connections; until it
    // is there the server may still answer "the database system is starting up".
    lines.get(7).is_some_and(|status| status.trim() == "ready")
}

/// Stops a postmaster that is not our child: SIGINT, then SIGQUIT, then SIGKILL.
fn stop_foreign_postmaster(pid: i32) -> Result<(), String> {
    for (sig, timeout) in [
        (libc::SIGINT, STALE_TIMEOUT),
        (libc::SIGQUIT, IMMEDIATE_STOP_TIMEOUT),
        (libc::SIGKILL, KILL_TIMEOUT),
    ] {
        if !is_live_postgres(pid) {
            return Ok(());
        }
        // SAFETY: plain syscall; the pid was just checked to be a live postgres process.
        if unsafe { libc::kill(pid, sig) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ESRCH) {
                return Ok(());
            }
            return Err(format!("sending signal {sig}: {e}"));
        }
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if !is_live_postgres(pid) {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    if is_live_postgres(pid) {
        Err("still running after SIGKILL".to_string())
    } else {
        Ok(())
    }
}

/// The process that owns a data directory: pid plus start time (guards against reuse).
struct Owner {
    pid: i32,
    start: u64,
}

impl Owner {
    fn current() -> Owner {
        let pid = std::process::id() as i32;
        let start = proc_stat(pid).map(|(_, _, s)| s).unwrap_or(0);
        Owner { pid, start }
    }

    fn is_alive(&self) -> bool {
        match proc_stat(self.pid) {
            Some((state, _, start)) => !matches!(state, 'Z' | 'X' | 'x') && start == self.start,
            None => false,
        }
    }
}

fn write_owner_file(dir: &Path) -> Result<(), PgError> {
    let owner = Owner::current();
    let path = dir.join(OWNER_FILE);
    fs::write(&path, format!("{} {}\n", owner.pid, owner.start))
        .map_err(io_err(format!("writing {}", path.display())))
}

fn read_owner(dir: &Path) -> Option<Owner> {
    let text = fs::read_to_string(dir.join(OWNER_FILE)).ok()?;
    let mut parts = text.split_whitespace();
    let pid = parts.next()?.parse().ok()?;
    let start = parts.next()?.parse().ok()?;
    Some(Owner { pid, start })
}

/// The last lines written to the log since `from`.
fn log_tail(path: &Path, from: u64) -> String {
    const MAX: u64 = 4096;
    let Ok(mut file) = fs::File::open(path) else {
        return "(no log)".to_string();
    };
    let len = file.metadata().map(|m| m.len()).unwrap_or(0);
    let start = from.max(len.saturating_sub(MAX));
    if file.seek(SeekFrom::Start(start)).is_err() {
        return "(unreadable log)".to_string();
    }
    let mut bytes = Vec::new();
    let _ = file.take(MAX).read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let keep = lines.len().saturating_sub(30);
    lines[keep..].join("\n")
}

// ---------------------------------------------------------------------------------------
// Temporary clusters.

/// `std::env::temp_dir()`, or `/tmp` if that would make the socket path too long.
fn temp_base() -> PathBuf {
    let base = std::env::temp_dir();
    let probe = base.join("wp-pg-0000000-000-000000").join("socket");
    if check_socket_path(&probe, PORT).is_ok() {
        base
    } else {
        PathBuf::from("/tmp")
    }
}

fn create_unique_dir(base: &Path) -> Result<PathBuf, PgError> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let pid = std::process::id();
    for _ in 0..100 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let dir = base.join(format!("{TEMP_PREFIX}{pid}-{n}-{:06x}", nanos & 0xff_ffff));
        match fs::DirBuilder::new().mode(0o755).create(&dir) {
            Ok(()) => {
                set_mode(&dir, 0o755)?;
                return Ok(dir);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(PgError::Io {
                    context: format!("creating a temporary directory in {}", base.display()),
                    source: e,
                })
            }
        }
    }
    Err(PgError::Io {
        context: format!("creating a temporary directory in {}", base.display()),
        source: io::Error::from(io::ErrorKind::AlreadyExists),
    })
}

/// Best effort: removes `wp-pg-*` directories whose owner process is gone, stopping any
/// postmaster still running there.
fn sweep_stale_temporaries(base: &Path) {
    let Ok(entries) = fs::read_dir(base) else {
        return;
    };
    for entry in entries.filter_map(|e| e.ok()) {
        let name = entry.file_name();
        if !name.as_bytes().starts_with(TEMP_PREFIX.as_bytes()) {
            continue;
        }
        let dir = entry.path();
        let Ok(meta) = fs::symlink_metadata(&dir) else {
            continue;
        };
        if !meta.is_dir() {
            continue;
        }
        let abandoned = match read_owner(&dir) {
            Some(owner) => !owner.is_alive(),
            // Possibly still being created: only sweep when old.
            None => meta
                .modified()
                .ok()
                .and_then(|m| m.elapsed().ok())
                .is_some_and(|age| age > ORPHAN_DIR_AGE),
        };
        if !abandoned {
            continue;
        }
        if let Some(pid) = read_lock_pid(&dir.join("pgdata").join("postmaster.pid")) {
            if is_live_postgres(pid) {
                if let Err(e) = stop_foreign_postmaster(pid) {
                    tracing::warn!(dir = %dir.display(), pid, error = %e, "could not stop abandoned postmaster");
                    continue;
                }
            }
        }
        match fs::remove_dir_all(&dir) {
            Ok(()) => tracing::debug!(dir = %dir.display(), "removed abandoned temporary cluster"),
            Err(e) => {
                tracing::debug!(dir = %dir.display(), error = %e, "could not remove abandoned temporary cluster")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_keep_priority_order_and_dedupe() {
        let path = std::env::join_paths(["/usr/local/bin", "relative", "/usr/bin", "/opt/pg/bin"])
            .unwrap_or_default();
        let got = candidate_bin_dirs(
            Some(PathBuf::from("/opt/pg/bin")),
            Some(path.as_os_str()),
            vec![
                PathBuf::from("/usr/lib/postgresql/16/bin"),
                PathBuf::from("/usr/lib/postgresql/15/bin"),
            ],
        );
        let want: Vec<PathBuf> = [
            "/opt/pg/bin",
            "/usr/local/bin",
            "/usr/bin",
            "/usr/lib/postgresql/16/bin",
            "/usr/lib/postgresql/15/bin",
        ]
        .iter()
        .map(PathBuf::from)
        .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn pick_skips_dirs_without_both_binaries() {
        // pg_config points at a client-only dir; PATH has nothing; versioned dir has both.
        let candidates = vec![
            PathBuf::from("/usr/bin"),
            PathBuf::from("/usr/lib/postgresql/16/bin"),
            PathBuf::from("/usr/lib/postgresql/15/bin"),
        ];
        let server_dirs = ["/usr/lib/postgresql/15/bin"];
        let got = pick_bin_dir(candidates.clone(), |d| {
            server_dirs.iter().any(|s| Path::new(s) == d)
        });
        assert_eq!(got, Some(PathBuf::from("/usr/lib/postgresql/15/bin")));
        assert_eq!(pick_bin_dir(candidates, |_| false), None);
        assert!(PgError::BinariesNotFound
            .to_string()
            .contains("set DATABASE_URL to use an existing server, or use the Docker Compose stack in docker/"));
    }

    #[test]
    fn versions_sort_highest_first() {
        let got = sort_versions_desc(
            ["9.6", "15", "10", "16", "abc", "9.5"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        assert_eq!(got, vec!["16", "15", "10", "9.6", "9.5", "abc"]);
    }

    #[test]
    fn url_percent_encodes_socket_dir_and_database() {
        let url = build_url(Path::new("/tmp/wp-pg-1-0-ab/socket"), 5432, "app_test");
        assert_eq!(
            url,
            "postgres://postgres@localhost:5432/app_test?host=%2Ftmp%2Fwp-pg-1-0-ab%2Fsocket"
        );
        let url = build_url(Path::new("/srv/my data,x/socket"), 5432, "a b/c");
        assert_eq!(
            url,
            "postgres://postgres@localhost:5432/a%20b%2Fc?host=%2Fsrv%2Fmy%20data%2Cx%2Fsocket"
        );
    }

    #[test]
    fn socket_path_length_is_checked() {
        // "/.s.PGSQL.5432" is 14 bytes; a 93-byte dir gives exactly 107.
        let ok = PathBuf::from(format!("/{}", "a".repeat(92)));
        assert_eq!(ok.as_os_str().len(), 93);
        assert!(check_socket_path(&ok, 5432).is_ok());
        let too_long = PathBuf::from(format!("/{}", "a".repeat(93)));
        match check_socket_path(&too_long, 5432) {
            Err(PgError::SocketPathTooLong { len, max, .. }) => {
                assert_eq!((len, max), (108, 107));
            }
            other => panic!("expected SocketPathTooLong, got {other:?}"),
        }
    }

    #[test]
    fn socket_setting_is_quoted() {
        assert_eq!(
            socket_dirs_setting(Path::new("/a,b/\"c\"")),
            "unix_socket_directories=\"/a,b/\"\"c\"\"\""
        );
    }

    #[test]
    fn searchability_uses_owner_group_other_bits() {
        let pg = RunAs { uid: 101, gid: 104 };
        assert!(!searchable_by(0o700, 0, 0, pg)); // /root
        assert!(searchable_by(0o755, 0, 0, pg));
        assert!(searchable_by(0o710, 0, 104, pg));
        assert!(searchable_by(0o700, 101, 104, pg));
        assert!(!searchable_by(0o077, 101, 104, pg));
    }

    #[test]
    fn ready_detection_reads_pid_and_status_lines() {
        let dir = std::env::temp_dir().join(format!("wpunit-pg-{}", std::process::id()));
        let _ = fs::create_dir_all(&dir);
        let f = dir.join("postmaster.pid");
        let body = |status: &str| {
            format!("4242\n/x/pgdata\n1700000000\n5432\n/x/socket\n\n  1234 5678\n{status}\n")
        };
        let _ = fs::write(&f, body("starting"));
        assert!(!postmaster_reports_ready(&f, 4242));
        // Status line not written yet: not ready either.
        let _ = fs::write(&f, "4242\n/x/pgdata\n1700000000\n5432\n");
        assert!(!postmaster_reports_ready(&f, 4242));
        let _ = fs::write(&f, body("ready   "));
        assert!(postmaster_reports_ready(&f, 4242));
        assert!(!postmaster_reports_ready(&f, 4243));
        assert_eq!(read_lock_pid(&f), Some(4242));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cluster_handle_is_shareable() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<PgCluster>();
    }
}
