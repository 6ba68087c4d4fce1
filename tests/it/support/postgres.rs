//! A throwaway PostgreSQL 15 cluster per test, run as the `postgres` user (the
//! server refuses root), on its own port and socket folder; stopped on drop.
//! When `DATABASE_URL` is set, tests that do not restart the server use it
//! instead, each in a fresh database.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = "/usr/lib/postgresql/15/bin";

pub struct Pg {
    dir: Option<tempfile::TempDir>,
    pub port: u16,
    /// `postgres://…/postgres` of the cluster (or of `DATABASE_URL`).
    pub admin_url: String,
}

fn pg_bin(name: &str) -> PathBuf {
    let p = Path::new(BIN).join(name);
    assert!(
        p.exists(),
        "{} missing: PostgreSQL 15 server binaries are required",
        p.display()
    );
    p
}

fn as_postgres(args: &[&str]) -> std::process::Output {
    let out = Command::new("runuser")
        .arg("-u")
        .arg("postgres")
        .arg("--")
        .args(args)
        .output()
        .expect("runuser");
    assert!(
        out.status.success(),
        "{args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

impl Pg {
    /// Uses `DATABASE_URL` when set, else starts a private cluster.
    pub fn shared_or_private() -> Pg {
        match std::env::var("DATABASE_URL") {
            Ok(url) if !url.is_empty() => Pg {
                dir: None,
                port: 0,
                admin_url: url,
            },
            _ => Pg::private(),
        }
    }

    /// Starts a private cluster (always; for tests that restart the server).
    pub fn private() -> Pg {
        let dir = tempfile::Builder::new().prefix("logtrain-pg").tempdir().unwrap();
        let uid = nix_uid("postgres");
        std::os::unix::fs::chown(dir.path(), Some(uid.0), Some(uid.1)).unwrap();
        let data = dir.path().join("data");
        as_postgres(&[
            pg_bin("initdb").to_str().unwrap(),
            "-D",
            data.to_str().unwrap(),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
        ]);
        let port = super::free_port();
        let pg = Pg {
            dir: Some(dir),
            port,
            admin_url: format!("postgres://postgres@127.0.0.1:{port}/postgres"),
        };
        pg.start_with("127.0.0.1");
        pg
    }

    fn data(&self) -> PathBuf {
        self.dir.as_ref().expect("private cluster").path().join("data")
    }

    /// Starts the server listening on `listen` ('' = Unix socket only).
    pub fn start_with(&self, listen: &str) {
        let sock = self.dir.as_ref().unwrap().path();
        let opts = format!(
            "-p {} -k {} -c listen_addresses='{listen}' -c fsync=off",
            self.port,
            sock.display()
        );
        as_postgres(&[
            pg_bin("pg_ctl").to_str().unwrap(),
            "-D",
            self.data().to_str().unwrap(),
            "-l",
            sock.join("log.txt").to_str().unwrap(),
            "-o",
            &opts,
            "-w",
            "start",
        ]);
    }

    /// Stops the server at once (no clean shutdown of sessions).
    pub fn stop_immediate(&self) {
        as_postgres(&[
            pg_bin("pg_ctl").to_str().unwrap(),
            "-D",
            self.data().to_str().unwrap(),
            "-m",
            "immediate",
            "-w",
            "stop",
        ]);
    }

    /// Runs SQL over the Unix socket with psql (works while TCP is closed).
    pub fn psql_socket(&self, db: &str, sql: &str) -> String {
        let sock = self.dir.as_ref().unwrap().path();
        let out = as_postgres(&[
            "psql",
            "-h",
            sock.to_str().unwrap(),
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            db,
            "-v",
            "ON_ERROR_STOP=1",
            "-Atc",
            sql,
        ]);
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// A fresh database on this server; returns its URL.
    pub async fn fresh_db(&self, name: &str) -> String {
        let (client, conn) = tokio_postgres::connect(&self.admin_url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute(&format!("drop database if exists {name}"))
            .await
            .unwrap();
        client.batch_execute(&format!("create database {name}")).await.unwrap();
        let mut u = url::Url::parse(&self.admin_url).unwrap();
        u.set_path(&format!("/{name}"));
        u.to_string()
    }
}

fn nix_uid(user: &str) -> (u32, u32) {
    let out = Command::new("id").arg("-u").arg(user).output().unwrap();
    let uid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    let out = Command::new("id").arg("-g").arg(user).output().unwrap();
    let gid = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap();
    (uid, gid)
}

impl Drop for Pg {
    fn drop(&mut self) {
        if self.dir.is_some() {
            let _ = Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(pg_bin("pg_ctl"))
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "stop"])
                .output();
        }
    }
}
