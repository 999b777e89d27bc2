//! Application state shared by every handler, built once at start-up.

use std::ops::Deref;
use std::sync::Arc;

use anyhow::Context;
use axum::Router;

use crate::config::Config;
use crate::db::Db;
use crate::jwt::JwtKeys;
use crate::routes::FunctionRouter;
use crate::telemetry::Metrics;
use crate::{http, users};

/// Cheap-to-clone handle on the application.
#[derive(Clone)]
pub struct AppState(Arc<App>);

/// Everything a request may need.
pub struct App {
    pub config: Config,
    pub db: Db,
    pub metrics: Metrics,
    pub jwt: JwtKeys,
}

impl Deref for AppState {
    type Target = App;
    fn deref(&self) -> &App {
        &self.0
    }
}

/// What start-up did that the operator must be told once.
pub struct Startup {
    pub state: AppState,
    /// Generated admin password, present only on the start that created the admin.
    pub generated_admin_password: Option<String>,
}

impl AppState {
    /// Connects to the database, applies migrations and creates the first admin.
    pub async fn build(config: Config) -> anyhow::Result<Startup> {
        std::fs::create_dir_all(config.blob_dir())
            .with_context(|| format!("data dir: cannot create {}", config.blob_dir().display()))?;
        let db = Db::connect(&config.database).await?;
        let generated_admin_password =
            users::ensure_admin(&db, config.admin_password.as_deref()).await?;
        let jwt = JwtKeys::load_or_generate(&config.data_dir)?;
        let state = AppState(Arc::new(App {
            config,
            db,
            metrics: Metrics::new(),
            jwt,
        }));
        Ok(Startup {
            state,
            generated_admin_password,
        })
    }

    /// The HTTP router of the given functions, with the common middleware stack.
    pub fn router(&self, functions: Vec<FunctionRouter>) -> Router {
        let routes = functions
            .into_iter()
            .fold(Router::new(), |router, function| {
                router.merge(function.into_router(self))
            });
        http::finish(routes, self.clone())
    }
}
