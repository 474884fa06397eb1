//! A throwaway PostgreSQL cluster for the tests of the PostgreSQL store: one per test process,
//! started on first use, in a temporary directory, listening on 127.0.0.1 (a free port, password
//! authentication; TLS with the test CA's certificate for the clients that ask) and on a Unix
//! socket in that directory (trust, for the tests' own SQL).
//!
//! Where PostgreSQL is not installed, [`cluster`] prints `SKIPPED: PostgreSQL not installed` on
//! stderr and the test returns, unless `TIXNGO_REQUIRE_POSTGRES=1` (CI sets it): then it fails.
//!
//! Stopping: a `Drop` of a static never runs, and a test process can die by a signal. So a
//! watchdog shell, started before `initdb`, waits on a pipe whose only writer is this process:
//! when the process ends in any way (exit, panic, SIGKILL) the kernel closes the pipe, and the
//! watchdog stops the cluster (`pg_ctl stop -m immediate`) and removes its directory. At a
//! normal exit an `atexit` hook closes the pipe and waits for the watchdog, so that `cargo test`
//! ends with the server gone. The server keeps PostgreSQL's defaults (fsync and
//! synchronous_commit on): the crash tests need the real durability.

use std::ffi::CString;
use std::io::Write;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

/// The PostgreSQL superuser of the cluster (also the OS user the server runs as under root).
pub const SUPERUSER: &str = "postgres";

/// One test process's cluster.
pub struct Cluster {
    /// The temporary directory: `data/`, the socket, the server log.
    pub dir: PathBuf,
    pub port: u16,
    /// The superuser's password, for connections over TCP.
    pub password: String,
}

static CLUSTER: OnceLock<Option<Cluster>> = OnceLock::new();
/// The watchdog: closing its stdin stops the cluster.
static WATCHDOG: Mutex<Option<Child>> = Mutex::new(None);
/// Numbers the schemas and roles of one test process.
static NEXT_NAME: AtomicU32 = AtomicU32::new(1);

/// The cluster, started on first use; `None` (after a loud line on stderr) when PostgreSQL is not
/// installed and not required. A cluster that is installed but does not start fails the test.
pub fn cluster() -> Option<&'static Cluster> {
    CLUSTER
        .get_or_init(|| {
            let Some(bin) = find_binaries() else {
                let required =
                    std::env::var_os("TIXNGO_REQUIRE_POSTGRES").is_some_and(|v| v == "1");
                assert!(
                    !required,
                    "TIXNGO_REQUIRE_POSTGRES=1 but PostgreSQL (initdb, pg_ctl) is not installed"
                );
                // Straight to the process's stderr: the test harness shows no captured output
                // of a test that passes.
                let _ = writeln!(
                    std::io::stderr(),
                    "\n*** SKIPPED: PostgreSQL not installed: the PostgreSQL store tests did not run \
                     (apt-get install postgresql, or set TIXNGO_REQUIRE_POSTGRES=1 to fail) ***\n"
                );
                return None;
            };
            let started = Instant::now();
            let cluster = Cluster::start(&bin);
            eprintln!("PostgreSQL test cluster started in {:?}", started.elapsed());
            Some(cluster)
        })
        .as_ref()
}

/// The directory of `initdb` and `pg_ctl`: on PATH, else the newest `/usr/lib/postgresql/*/bin`
/// (Debian does not put them on PATH).
fn find_binaries() -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|dirs| dirs.flatten().map(|d| d.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort_by_key(|dir| {
        let version = dir.parent().and_then(Path::file_name);
        version.and_then(|v| v.to_str()?.parse::<u32>().ok())
    });
    on_path
        .into_iter()
        .chain(debian.into_iter().rev())
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
}

/// The uid and gid of the `postgres` OS user when this process runs as root (PostgreSQL refuses
/// to run as root), else `None`.
fn server_user() -> Option<(u32, u32)> {
    // SAFETY: getuid cannot fail; getpwnam returns NULL or a pointer into static storage,
    // read at once.
    unsafe {
        if libc::getuid() != 0 {
            return None;
        }
        let name = CString::new(SUPERUSER).unwrap();
        let entry = libc::getpwnam(name.as_ptr());
        assert!(
            !entry.is_null(),
            "running as root, and there is no `postgres` OS user to run PostgreSQL as"
        );
        Some(((*entry).pw_uid, (*entry).pw_gid))
    }
}

impl Cluster {
    fn start(bin: &Path) -> Cluster {
        let user = server_user();
        let dir = tempfile::Builder::new()
            .prefix("tixngo-pg-")
            .tempdir()
            .expect("a temporary directory")
            .keep();
        let password = format!("pw-{:016x}", fastrand::u64(..));
        let password_file = dir.join("superuser-password");
        std::fs::write(&password_file, &password).unwrap();
        if let Some((uid, gid)) = user {
            for path in [&dir, &password_file] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).unwrap();
            }
        }
        let pg_ctl = bin.join("pg_ctl");
        start_watchdog(&dir, &as_server_user(user.is_some(), &pg_ctl));
        let data = dir.join("data");
        run(as_server_user(user.is_some(), &bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", SUPERUSER, "-E", "UTF8", "--locale=C.UTF-8"])
            .args(["--auth-local=trust", "--auth-host=scram-sha-256"])
            .arg(format!("--pwfile={}", password_file.display()))
            // initdb's own fsync of the new files only: the server keeps fsync on.
            .args(["--no-sync", "--no-instructions"]));
        let port = free_port();
        let tls = install_tls_files(&dir, user);
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        writeln!(
            conf,
            "listen_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\n{tls}",
            dir.display()
        )
        .unwrap();
        run(as_server_user(user.is_some(), &pg_ctl)
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(dir.join("server.log"))
            .args(["-w", "-t", "60", "start"]));
        let cluster = Cluster {
            dir,
            port,
            password,
        };
        // Every role may create its schema (granted once: concurrent GRANTs on one database
        // fail with "tuple concurrently updated").
        cluster
            .admin()
            .batch_execute("GRANT CREATE ON DATABASE postgres TO PUBLIC")
            .expect("the grant to create schemas");
        cluster
    }

    /// A URL to the cluster over TCP for `user` (no password in it: SPEC §10).
    pub fn url(&self, user: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/postgres", self.port)
    }

    /// A superuser connection through the Unix socket, for the tests' own SQL.
    pub fn admin(&self) -> postgres::Client {
        postgres::Config::new()
            .host_path(&self.dir)
            .port(self.port)
            .user(SUPERUSER)
            .dbname("postgres")
            .connect(postgres::NoTls)
            .expect("a superuser connection to the test cluster")
    }

    /// A schema name no other test of this process uses (the store creates the schema).
    pub fn schema(&self) -> String {
        format!("t{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed))
    }

    /// A new login role with a password (it may create schemas): `(name, password)`.
    pub fn role(&self) -> (String, String) {
        let name = format!("r{}", NEXT_NAME.fetch_add(1, Ordering::Relaxed));
        let password = format!("pw-{:016x}", fastrand::u64(..));
        self.admin()
            .batch_execute(&format!("CREATE ROLE {name} LOGIN PASSWORD '{password}'"))
            .expect("a new role");
        (name, password)
    }
}

/// The test CA's server certificate (for localhost and 127.0.0.1) and its key, copied where the
/// server may read them (the key must be the server user's, mode 0600); returns the settings that
/// turn TLS on. Clients choose: the tests connect without TLS unless they ask for it.
fn install_tls_files(dir: &Path, user: Option<(u32, u32)>) -> String {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
    for name in ["server.pem", "server.key"] {
        let copy = dir.join(name);
        std::fs::copy(fixtures.join(name), &copy).unwrap();
        std::fs::set_permissions(&copy, std::os::unix::fs::PermissionsExt::from_mode(0o600))
            .unwrap();
        if let Some((uid, gid)) = user {
            std::os::unix::fs::chown(&copy, Some(uid), Some(gid)).unwrap();
        }
    }
    format!(
        "ssl = on\nssl_cert_file = '{}'\nssl_key_file = '{}'",
        dir.join("server.pem").display(),
        dir.join("server.key").display()
    )
}

/// The test CA that signed the cluster's certificate, for `--ca-file`.
pub fn test_ca() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls/ca.pem")
}

/// `program`, run as the `postgres` OS user when this process is root.
fn as_server_user(root: bool, program: &Path) -> Command {
    if root {
        let mut command = Command::new("runuser");
        command.args(["-u", SUPERUSER, "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// Runs a setup command; a failure fails the test with its output.
fn run(command: &mut Command) {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({})\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A port nobody listens on now (the server takes it a moment later).
fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().unwrap().port()
}

/// Starts the shell that stops the cluster and removes `dir` once its stdin reaches end of file,
/// that is once this process has closed it or ended; signals to the terminal's process group
/// (Ctrl-C) do not stop it before that.
fn start_watchdog(dir: &Path, pg_ctl: &Command) {
    const SCRIPT: &str = r#"trap '' INT TERM HUP
dir=$1; shift
read _ignored
"$@" -D "$dir/data" stop -m immediate -w >/dev/null 2>&1
rm -rf "$dir""#;
    let watchdog = Command::new("sh")
        .args(["-c", SCRIPT, "sh"])
        .arg(dir)
        .arg(pg_ctl.get_program())
        .args(pg_ctl.get_args())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the cluster's watchdog starts");
    *WATCHDOG.lock().unwrap() = Some(watchdog);
    // SAFETY: registers a plain function; it runs once, at exit.
    unsafe { libc::atexit(stop_at_exit) };
}

/// Stops the cluster before the process exits: closes the watchdog's stdin, waits for it.
extern "C" fn stop_at_exit() {
    if let Some(mut watchdog) = WATCHDOG.lock().ok().and_then(|mut w| w.take()) {
        drop(watchdog.stdin.take());
        let _ = watchdog.wait();
    }
}
