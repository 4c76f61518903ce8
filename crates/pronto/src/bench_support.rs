//! What the benches share, below all of them: a fresh database per run and `pronto serve`'s own assembly in
//! process. It imports none of the bench modules.

use anyhow::{bail, Context};
use std::sync::Arc;

/// A fresh database for one run.
pub(crate) struct Db {
    pub(crate) url: String,
    /// PostgreSQL: the server's URL and the database to drop.
    pg: Option<(String, String)>,
    _dir: Option<tempfile::TempDir>,
}

impl Db {
    pub(crate) async fn create(base: Option<&str>, rate: u64) -> anyhow::Result<Db> {
        match base {
            Some(u) if u.starts_with("postgres") => {
                use sqlx::Connection;
                let name = format!("pronto_bench_{}_{rate}", std::process::id());
                let mut c = sqlx::PgConnection::connect(u)
                    .await
                    .with_context(|| format!("connecting to {u}"))?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
                    .execute(&mut c)
                    .await?;
                sqlx::query(&format!("CREATE DATABASE {name}"))
                    .execute(&mut c)
                    .await?;
                let (server, _) = u.rsplit_once('/').context("a postgres URL ends in /db")?;
                Ok(Db {
                    url: format!("{server}/{name}"),
                    pg: Some((u.to_string(), name)),
                    _dir: None,
                })
            }
            Some(u) if u.starts_with("sqlite") => Ok(Db {
                url: u.to_string(),
                pg: None,
                _dir: None,
            }),
            Some(u) => bail!("--database-url {u}: use sqlite://FILE or postgres://…"),
            None => {
                let dir = tempfile::tempdir()?;
                Ok(Db {
                    url: format!("sqlite://{}", dir.path().join("leads.db").display()),
                    pg: None,
                    _dir: Some(dir),
                })
            }
        }
    }

    pub(crate) async fn drop(self) -> anyhow::Result<()> {
        if let Some((url, name)) = self.pg {
            use sqlx::Connection;
            let mut c = sqlx::PgConnection::connect(&url).await?;
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut c)
                .await?;
        }
        Ok(())
    }
}

/// `pronto serve`'s own assembly, in this process, on a free port: what the benches that time a whole path
/// (lead → alert, cart → email, shop delivery → email) run against.
pub(crate) struct InProcess {
    pub base: String,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Builds and serves `config` with these overrides (listening on a free port whatever they say).
    pub async fn start(
        config: &str,
        overrides: pronto_server::config::Overrides,
    ) -> anyhow::Result<Self> {
        use pronto_server::config::{FileConfig, Overrides, Settings};
        let settings = Settings::resolve(
            FileConfig::parse(config, "bench")?,
            Overrides {
                listen: Some("127.0.0.1:0".into()),
                ..overrides
            },
            "bench".into(),
        )?;
        let app = pronto_server::App::build(settings.clone(), Arc::new(pronto_domain::SystemClock))
            .await?;
        let listener = pronto_server::app::bind(settings.listen).await?;
        let base = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(app.serve(listener, async {
            let _ = stopped.await;
        }));
        Ok(Self { base, stop, task })
    }

    /// Stops serving and waits for the server to drain.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(());
        self.task.await??;
        Ok(())
    }
}
