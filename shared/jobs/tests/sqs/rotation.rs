//! Rotated database credentials: a private PostgreSQL cluster with password (SCRAM)
//! authentication (the shared test server trusts every local connection, so it cannot
//! refuse a password), its credentials in Secrets Manager, the password rotated under a
//! running pool. A plain pool cannot open new connections any more (28P01); a pool whose
//! connections go through `RefreshingConnect` fetches the secret again and carries on.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use platform::secrets::{is_auth_failure, RefreshingConnect, SecretsCache};
use testkit::aws::moto;

/// `initdb` + `pg_ctl start` on a free port, as the `postgres` OS user when the tests run
/// as root (PostgreSQL refuses to run as root). Stopped and deleted on drop.
struct PrivateCluster {
    dir: PathBuf,
    port: u16,
}

fn pg_bin(name: &str) -> PathBuf {
    let versions = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| {
            let mut v: Vec<PathBuf> = d.flatten().map(|e| e.path().join("bin")).collect();
            v.sort();
            v
        })
        .unwrap_or_default();
    versions
        .into_iter()
        .rev()
        .map(|b| b.join(name))
        .find(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from(name))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

fn pg_command(bin: &str) -> Command {
    if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(pg_bin(bin));
        c
    } else {
        Command::new(pg_bin(bin))
    }
}

impl PrivateCluster {
    fn start(user: &str, password: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("ept-pg-{}", uuid::Uuid::new_v4().simple()));
        let pwfile = std::env::temp_dir().join(format!("ept-pw-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&pwfile, password).unwrap();
        let status = pg_command("initdb")
            .arg("-D")
            .arg(&dir)
            .args([
                "-U",
                user,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--no-sync",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .stdout(Stdio::null())
            .status()
            .expect("initdb runs");
        let _ = std::fs::remove_file(&pwfile);
        assert!(status.success(), "initdb failed");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cluster = Self { dir, port };
        let status = pg_command("pg_ctl")
            .arg("-D")
            .arg(&cluster.dir)
            .arg("-o")
            .arg(format!(
                "-p {port} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
                cluster.dir.display()
            ))
            .arg("-l")
            .arg(cluster.dir.join("log"))
            .args(["-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .status()
            .expect("pg_ctl runs");
        assert!(status.success(), "pg_ctl start failed");
        cluster
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = pg_command("pg_ctl")
            .arg("-D")
            .arg(&self.dir)
            .args(["-m", "immediate", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn pool(url: &str, connect: Option<RefreshingConnect>) -> Pool {
    let pg: tokio_postgres::Config = url.parse().unwrap();
    let config = ManagerConfig {
        recycling_method: RecyclingMethod::Fast,
    };
    let manager = match connect {
        Some(c) => Manager::from_connect(pg, c, config),
        None => Manager::from_config(pg, tokio_postgres::NoTls, config),
    };
    Pool::builder(manager)
        .max_size(4)
        .wait_timeout(Some(Duration::from_secs(10)))
        .create_timeout(Some(Duration::from_secs(10)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .unwrap()
}

fn credentials(password: &str) -> String {
    serde_json::json!({"username": "app_admin", "password": password}).to_string()
}

#[tokio::test]
async fn a_rotated_database_password_is_fetched_again() {
    let old = "old:p@ss/word";
    let cluster = tokio::task::spawn_blocking(move || PrivateCluster::start("app_admin", old))
        .await
        .unwrap();
    let secrets = moto().secrets();
    let arn = secrets
        .create_secret()
        .name(format!("rds-master-{}", uuid::Uuid::new_v4().simple()))
        .secret_string(credentials(old))
        .send()
        .await
        .unwrap()
        .arn
        .unwrap();
    let cache = SecretsCache::new(secrets.clone());
    let port = cluster.port.to_string();
    let vars = cache
        .resolve_env(|k| match k {
            "DB_SECRET_ARN" => Some(arn.clone()),
            "DB_HOST" => Some("127.0.0.1".into()),
            "DB_PORT" => Some(port.clone()),
            "DB_NAME" => Some("postgres".into()),
            _ => None,
        })
        .await
        .unwrap();
    let url = &vars["DATABASE_URL"];

    let plain = pool(url, None);
    let refreshing = pool(
        url,
        Some(
            RefreshingConnect::new(
                cache.clone(),
                arn.clone(),
                platform::tls::DbTls::disabled().connector().unwrap(),
            )
            .min_interval(Duration::ZERO),
        ),
    );
    let held_plain = plain.get().await.expect("the secret's password works");
    let held = refreshing.get().await.expect("the secret's password works");

    // Rotation, as RDS does it: the password changes in the database and in the secret.
    held.batch_execute("ALTER ROLE app_admin PASSWORD 'n3w:p@ss'")
        .await
        .unwrap();
    secrets
        .put_secret_value()
        .secret_id(&arn)
        .secret_string(credentials("n3w:p@ss"))
        .send()
        .await
        .unwrap();

    // Open connections keep working; new ones of the plain pool are refused...
    held_plain.query_one("SELECT 1", &[]).await.unwrap();
    match plain.get().await {
        Err(deadpool_postgres::PoolError::Backend(e)) => {
            assert!(is_auth_failure(&e), "{e}")
        }
        Err(other) => panic!("expected an authentication failure, got {other}"),
        Ok(_) => panic!("the old password still works"),
    }
    // ...while the refreshing pool fetches the new password and connects.
    let fresh = refreshing
        .get()
        .await
        .expect("connects with the rotated password");
    let n: i32 = fresh.query_one("SELECT 1", &[]).await.unwrap().get(0);
    assert_eq!(n, 1);
    assert!(cache.get(&arn).await.unwrap().contains("n3w:p@ss"));
    // Later connections use the new credentials directly.
    let another = refreshing.get().await.unwrap();
    another.query_one("SELECT 1", &[]).await.unwrap();
    drop((held, held_plain, fresh, another));
    drop(cluster);
}
