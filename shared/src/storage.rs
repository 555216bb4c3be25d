//! Where export files live: one `object_store` interface over a local directory (default,
//! `EXPORT_DIR`) or an S3-compatible bucket (`EXPORT_STORE=s3://bucket[/prefix]`, credentials and
//! endpoint from the usual `AWS_*` variables, see [`S3Settings`]).

use std::sync::Arc;

use object_store::aws::AmazonS3Builder;
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
                })
            }
            Some(url) => s3(url, &config.s3),
        }
    }

    /// The key of a job's file.
    pub fn key(&self, client_id: uuid::Uuid, job_id: uuid::Uuid) -> String {
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

    /// Whether the store answers: lists a prefix that holds nothing. An empty answer is healthy;
    /// a missing bucket, refused credentials or an unreachable host are not.
    pub async fn check(&self) -> Result<(), String> {
        let nil = uuid::Uuid::nil();
        let key = self.key(nil, nil);
        let dir = key.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
        self.store
            .list_with_delimiter(Some(&Self::path(dir)))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

fn s3(url: &str, settings: &S3Settings) -> anyhow::Result<Storage> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("EXPORT_STORE must look like s3://bucket[/prefix]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    // What the process environment says (instance/container credentials, web identity…), then
    // what the configuration says on top.
    let mut b = AmazonS3Builder::from_env().with_bucket_name(bucket);
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
    })
}
