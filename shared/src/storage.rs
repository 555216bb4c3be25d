//! Where export files live: one `object_store` interface over a local directory (default,
//! `EXPORT_DIR`) or an S3-compatible bucket (`EXPORT_STORE=s3://bucket[/prefix]`, credentials and
//! endpoint from the usual `AWS_*` variables, see [`S3Settings`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::config::{Config, S3Settings};

pub type Store = Arc<dyn ObjectStore>;

#[derive(Clone)]
pub struct Storage {
    pub store: Store,
    /// Key prefix inside the store (for buckets shared with other data).
    pub prefix: String,
    /// The directory of a local store.
    local_root: Option<PathBuf>,
}

impl Storage {
    pub fn from_config(config: &Config) -> anyhow::Result<Self> {
        match config.export_store.as_deref() {
            None => {
                std::fs::create_dir_all(&config.export_dir).map_err(|e| {
                    anyhow::anyhow!(
                        "EXPORT_DIR {} cannot be created: {e}",
                        config.export_dir.display()
                    )
                })?;
                let fs = LocalFileSystem::new_with_prefix(&config.export_dir)?;
                Ok(Self {
                    store: Arc::new(fs),
                    prefix: String::new(),
                    local_root: Some(config.export_dir.clone()),
                })
            }
            Some(url) => s3(url, &config.s3),
        }
    }

    /// The key of a job's file.
    pub fn key(
        &self,
        client_id: crate::domain::ids::ClientId,
        job_id: crate::domain::ids::ExportJobId,
    ) -> String {
        let p = self.prefix.trim_matches('/');
        if p.is_empty() {
            format!("exports/{client_id}/{job_id}.csv")
        } else {
            format!("{p}/exports/{client_id}/{job_id}.csv")
        }
    }

    pub fn path(key: &str) -> Path {
        Path::from(key)
    }

    /// Removes the partial files that workers killed mid-upload left in a local store
    /// (`<key>#<n>`, which the store itself never lists) once they are older than `age`; returns
    /// how many. An S3 bucket keeps such uploads as unfinished multipart uploads instead: its
    /// lifecycle rule ("abort incomplete multipart uploads") removes those.
    pub async fn sweep_abandoned(&self, age: Duration) -> u64 {
        let Some(root) = self.local_root.clone() else {
            return 0;
        };
        tokio::task::spawn_blocking(move || sweep_staged(&root.join("exports"), age))
            .await
            .unwrap_or(0)
    }

    /// Whether the store answers. A bucket: a listing of a prefix that holds nothing (a missing
    /// bucket, refused credentials or an unreachable host fail; needs `s3:ListBucket`). A local
    /// directory: it exists and takes a file.
    pub async fn check(&self) -> Result<(), String> {
        if let Some(root) = &self.local_root {
            let probe = root.join(format!(".ready-{}", uuid::Uuid::new_v4().simple()));
            tokio::fs::write(&probe, b"")
                .await
                .map_err(|e| format!("{}: {e}", root.display()))?;
            let _ = tokio::fs::remove_file(&probe).await;
            return Ok(());
        }
        let nil = uuid::Uuid::nil();
        let key = self.key(nil.into(), nil.into());
        let dir = key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        self.store
            .list_with_delimiter(Some(&Self::path(dir)))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// `exports/<client>/<job>.csv#<n>` files older than `age` under `dir`.
fn sweep_staged(dir: &std::path::Path, age: Duration) -> u64 {
    let Ok(clients) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for client in clients.flatten() {
        let Ok(files) = std::fs::read_dir(client.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name();
            let staged = name
                .to_string_lossy()
                .rsplit_once('#')
                .is_some_and(|(_, n)| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
            let old = file
                .metadata()
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.elapsed().ok())
                .is_some_and(|elapsed| elapsed >= age);
            if staged && old && std::fs::remove_file(file.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

fn s3(url: &str, settings: &S3Settings) -> anyhow::Result<Storage> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("EXPORT_STORE must look like s3://bucket[/prefix]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // Only what the configuration says: a variable it does not know cannot change the store.
    let mut b = AmazonS3Builder::new().with_bucket_name(bucket);
    for (name, value) in &settings.other {
        let key: AmazonS3ConfigKey = name
            .to_ascii_lowercase()
            .parse()
            .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        b = b.with_config(key, value);
    }
    if let Some(endpoint) = &settings.endpoint {
        b = b
            .with_endpoint(endpoint)
            .with_allow_http(endpoint.starts_with("http://"));
    }
    if let Some(region) = &settings.region {
        b = b.with_region(region);
    }
    if let (Some(id), Some(secret)) = (&settings.access_key_id, &settings.secret_access_key) {
        b = b
            .with_access_key_id(id)
            .with_secret_access_key(secret.expose());
    }
    if let Some(token) = &settings.session_token {
        b = b.with_token(token.expose());
    }
    if settings.virtual_hosted_style {
        b = b.with_virtual_hosted_style_request(true);
    }
    Ok(Storage {
        store: Arc::new(b.build()?),
        prefix: prefix.trim_matches('/').to_string(),
        local_root: None,
    })
}
