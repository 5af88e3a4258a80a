//! Private instances for fault tests: a PostgreSQL cluster and a Redis server of the test's
//! own, on free ports, that the test may restart or kill without touching the shared ones
//! every other test uses; and a TCP gate that cuts a dependency off and lets it back.
//! Each is stopped (and its files removed) when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free TCP port on 127.0.0.1 (bound, then released for the server to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A directory of its own under the system's temporary directory.
fn scratch(what: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ept-{what}-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}

fn running_as_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// A PostgreSQL server program (`initdb`, `pg_ctl`): on PATH, else in Debian's
/// `/usr/lib/postgresql/<version>/bin` (newest version first).
fn pg_program(name: &str) -> PathBuf {
    let on_path = Command::new("sh")
        .args(["-c", &format!("command -v {name}")])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if let Some(p) = on_path {
        return p;
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path()).collect())
        .unwrap_or_default();
    versions.sort_by_key(|p| {
        p.file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            .unwrap_or(0)
    });
    versions
        .iter()
        .rev()
        .map(|v| v.join("bin").join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{name} not found: install PostgreSQL's server package"))
}

/// A command run as the `postgres` user when the test runs as root (initdb and the server
/// refuse root).
fn as_owner(program: &Path) -> Command {
    if running_as_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(program);
        c
    } else {
        Command::new(program)
    }
}

fn run(mut command: Command, what: &str) {
    let out = command
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        out.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// How a private cluster is set up beyond the defaults (trust auth on 127.0.0.1).
#[derive(Default, Clone)]
pub struct PostgresSetup {
    /// Lines appended to postgresql.conf.
    pub conf: Vec<String>,
    /// The whole pg_hba.conf, when not the default trust-on-localhost.
    pub hba: Option<String>,
    /// Files written into the data directory before the start (name, content): certificates.
    pub files: Vec<(String, Vec<u8>)>,
    /// The `postgres` user's password (SCRAM), set by initdb.
    pub password: Option<String>,
}

/// A PostgreSQL cluster of the test's own (initdb'd, listening on 127.0.0.1:`port`).
pub struct PrivatePostgres {
    pub port: u16,
    dir: PathBuf,
    data: PathBuf,
    pg_ctl: PathBuf,
    password: Option<String>,
    /// The CA that signed the server certificate (TLS-only clusters): a PEM file.
    pub ca_file: Option<PathBuf>,
}

impl PrivatePostgres {
    /// A new cluster with trust authentication for `postgres` on 127.0.0.1, started.
    pub fn start() -> Self {
        Self::start_with(PostgresSetup::default())
    }

    pub fn start_with(setup: PostgresSetup) -> Self {
        let dir = scratch("pg");
        let data = dir.join("data");
        let port = free_port();
        if running_as_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let mut initdb = as_owner(&pg_program("initdb"));
        initdb.arg("-D").arg(&data).args([
            "--auth=trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if let Some(password) = &setup.password {
            let file = dir.join("pwfile");
            std::fs::write(&file, password).expect("pwfile");
            if running_as_root() {
                run(
                    {
                        let mut c = Command::new("chown");
                        c.arg("postgres:postgres").arg(&file);
                        c
                    },
                    "chown",
                );
            }
            initdb.arg(format!("--pwfile={}", file.display()));
        }
        run(initdb, "initdb");
        let mut conf = vec![
            format!("port = {port}"),
            "listen_addresses = '127.0.0.1'".to_owned(),
            format!("unix_socket_directories = '{}'", dir.display()),
            "fsync = off".to_owned(),
            "max_connections = 100".to_owned(),
        ];
        conf.extend(setup.conf);
        append(&data.join("postgresql.conf"), &conf.join("\n"));
        if let Some(hba) = &setup.hba {
            std::fs::write(data.join("pg_hba.conf"), hba).expect("pg_hba.conf");
        }
        for (name, content) in &setup.files {
            let path = data.join(name);
            std::fs::write(&path, content).expect("a cluster file");
            chmod_owner_only(&path);
        }
        if running_as_root() {
            run(
                {
                    let mut c = Command::new("chown");
                    c.args(["-R", "postgres:postgres"]).arg(&dir);
                    c
                },
                "chown",
            );
        }
        let pg = Self {
            port,
            dir,
            data,
            pg_ctl: pg_program("pg_ctl"),
            password: setup.password,
            ca_file: None,
        };
        pg.start_server();
        pg
    }

    /// A stand-in for RDS with `rds.force_ssl=1`: TLS only (`hostssl` lines alone in
    /// pg_hba.conf), SCRAM passwords, a server certificate for `localhost` and 127.0.0.1
    /// issued by a CA of its own ([`Self::ca_file`]). The `postgres` password is `password`.
    pub fn start_tls(password: &str) -> Self {
        let certs = TestCertificates::new();
        let mut pg = Self::start_with(PostgresSetup {
            conf: vec![
                "ssl = on".into(),
                "ssl_cert_file = 'server.crt'".into(),
                "ssl_key_file = 'server.key'".into(),
                "password_encryption = 'scram-sha-256'".into(),
            ],
            hba: Some(
                "hostssl all all 127.0.0.1/32 scram-sha-256\nhostssl all all ::1/128 scram-sha-256\n"
                    .into(),
            ),
            files: vec![
                ("server.crt".into(), certs.server_cert.clone().into_bytes()),
                ("server.key".into(), certs.server_key.clone().into_bytes()),
            ],
            password: Some(password.to_owned()),
        });
        let ca_file = pg.dir.join("ca.pem");
        std::fs::write(&ca_file, &certs.ca).expect("ca.pem");
        pg.ca_file = Some(ca_file);
        pg
    }

    /// `postgres://postgres[:password]@127.0.0.1:port/db`
    pub fn url(&self, db: &str) -> String {
        match &self.password {
            Some(p) => format!("postgres://postgres:{p}@127.0.0.1:{}/{db}", self.port),
            None => format!("postgres://postgres@127.0.0.1:{}/{db}", self.port),
        }
    }

    /// The service's database settings for `db`: TLS verified against the cluster's CA
    /// when it has one.
    pub fn db_config(&self, db: &str) -> platform::config::DbConfig {
        let mut config = platform::config::DbConfig::local(&self.url(db), 4);
        if let Some(ca) = &self.ca_file {
            config.ssl_mode = Some(platform::tls::SslMode::VerifyFull);
            config.ssl_root_cert = Some(ca.clone());
        } else {
            config.ssl_mode = Some(platform::tls::SslMode::Disable);
        }
        config
    }

    /// A client of database `db` (over TLS on a TLS-only cluster).
    pub async fn connect(&self, db: &str) -> tokio_postgres::Client {
        let (config, tls) = self
            .db_config(db)
            .connection()
            .expect("connection settings");
        let (client, conn) = config
            .connect(tls)
            .await
            .expect("the private cluster answers");
        tokio::spawn(conn);
        client
    }

    fn ctl(&self, args: &[&str]) -> Command {
        let mut c = as_owner(&self.pg_ctl);
        c.arg("-D").arg(&self.data).args(args);
        c
    }

    fn start_server(&self) {
        let log = self.dir.join("server.log");
        let mut c = self.ctl(&["-w", "-t", "30", "-l"]);
        c.arg(&log).arg("start");
        let out = c.stdin(Stdio::null()).output().expect("pg_ctl start");
        assert!(
            out.status.success(),
            "pg_ctl start failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
    }

    /// Stops the server as an operator's fast shutdown does: every session is closed.
    pub fn stop(&self) {
        run(self.ctl(&["-w", "-m", "fast", "stop"]), "pg_ctl stop");
    }

    pub fn start_again(&self) {
        self.start_server();
    }

    /// A restart (fast shutdown, start), as a failover or a minor-version upgrade does.
    pub fn restart(&self) {
        self.stop();
        self.start_server();
    }

    /// The server's log so far (to show in an assertion).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    /// Creates database `name` and applies the migrations; its URL.
    pub async fn migrated_database(&self, name: &str) -> String {
        self.connect("postgres")
            .await
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .expect("CREATE DATABASE");
        let mut client = self.connect(name).await;
        platform::db::migrate(&mut client)
            .await
            .expect("migrations apply");
        self.url(name)
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .ctl(&["-w", "-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn append(path: &Path, text: &str) {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("postgresql.conf");
    writeln!(f, "\n{text}").expect("postgresql.conf");
}

fn chmod_owner_only(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
}

/// A CA of the test's own and a server certificate it issued for `localhost` and
/// 127.0.0.1 (PEM).
pub struct TestCertificates {
    pub ca: String,
    pub server_cert: String,
    pub server_key: String,
}

impl TestCertificates {
    pub fn new() -> Self {
        let ca_key = rcgen::KeyPair::generate().expect("a CA key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "ept test CA");
        let ca = ca_params.self_signed(&ca_key).expect("the CA certificate");
        let key = rcgen::KeyPair::generate().expect("a server key");
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .expect("server params");
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let server = params
            .signed_by(&key, &ca, &ca_key)
            .expect("the server certificate");
        Self {
            ca: ca.pem(),
            server_cert: server.pem(),
            server_key: key.serialize_pem(),
        }
    }
}

impl Default for TestCertificates {
    fn default() -> Self {
        Self::new()
    }
}

/// A Redis server of the test's own on 127.0.0.1:`port`, without persistence.
pub struct PrivateRedis {
    pub port: u16,
    child: Option<Child>,
    /// TLS and AUTH (ElastiCache with in-transit encryption): the directory of its
    /// certificates, the CA file, the password.
    tls: Option<(PathBuf, String)>,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let mut r = Self {
            port: free_port(),
            child: None,
            tls: None,
        };
        r.start_again();
        r
    }

    /// A TLS-only Redis requiring `password` (as ElastiCache with in-transit encryption and
    /// AUTH): [`Self::url`] is `rediss://default:password@127.0.0.1:port`, and
    /// [`Self::ca_file`] the CA to trust.
    pub fn start_tls(password: &str) -> Self {
        let dir = scratch("redis");
        let certs = TestCertificates::new();
        for (name, content) in [
            ("ca.pem", &certs.ca),
            ("server.crt", &certs.server_cert),
            ("server.key", &certs.server_key),
        ] {
            std::fs::write(dir.join(name), content).expect("a certificate file");
        }
        let mut r = Self {
            port: free_port(),
            child: None,
            tls: Some((dir, password.to_owned())),
        };
        r.start_again();
        r
    }

    pub fn ca_file(&self) -> Option<PathBuf> {
        self.tls.as_ref().map(|(dir, _)| dir.join("ca.pem"))
    }

    pub fn url(&self) -> String {
        match &self.tls {
            Some((_, password)) => format!("rediss://default:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// (Re)starts the server on the same port and waits until it answers.
    pub fn start_again(&mut self) {
        let mut command = Command::new("redis-server");
        command.args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]);
        match &self.tls {
            None => {
                command.args(["--port", &self.port.to_string()]);
            }
            Some((dir, password)) => {
                command
                    .args(["--port", "0", "--tls-port", &self.port.to_string()])
                    .arg("--tls-cert-file")
                    .arg(dir.join("server.crt"))
                    .arg("--tls-key-file")
                    .arg(dir.join("server.key"))
                    .arg("--tls-ca-cert-file")
                    .arg(dir.join("ca.pem"))
                    .args(["--tls-auth-clients", "no", "--requirepass", password]);
            }
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (infra/scripts/services.sh installs it)");
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }

    /// SIGKILL, as a crashed node: no goodbye to the clients.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
        if let Some((dir, _)) = &self.tls {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on port {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A TCP forwarder in front of a dependency that can be cut: while closed, new connections
/// are refused and open ones are dropped (a network partition or a stopped service, as the
/// client sees it); opened again, it forwards as before.
pub struct TcpGate {
    pub port: u16,
    open: Arc<AtomicBool>,
    connections: Arc<Mutex<Vec<tokio::task::AbortHandle>>>,
    target: String,
    listener: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl TcpGate {
    /// A gate on a free port forwarding to `target` (`host:port`), open.
    pub async fn start(target: &str) -> Self {
        let gate = Self {
            port: free_port(),
            open: Arc::new(AtomicBool::new(false)),
            connections: Arc::default(),
            target: target.to_owned(),
            listener: Mutex::new(None),
        };
        gate.open().await;
        gate
    }

    /// Starts forwarding (binds the port again).
    pub async fn open(&self) {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .expect("the gate's port");
        self.open.store(true, Ordering::SeqCst);
        let (target, connections) = (self.target.clone(), self.connections.clone());
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                let target = target.clone();
                let handle = tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                connections.lock().unwrap().push(handle.abort_handle());
            }
        });
        *self.listener.lock().unwrap() = Some(task);
    }

    /// Stops forwarding: the port is closed (connection refused) and every open connection
    /// is dropped.
    pub fn close(&self) {
        self.open.store(false, Ordering::SeqCst);
        if let Some(task) = self.listener.lock().unwrap().take() {
            task.abort();
        }
        for c in self.connections.lock().unwrap().drain(..) {
            c.abort();
        }
    }

    pub fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.close();
    }
}
