//! Where export files live: one `object_store` interface over a local directory (default,
//! `EXPORT_DIR`) or an S3-compatible bucket (`EXPORT_STORE=s3://bucket[/prefix]`, credentials and
//! endpoint from the usual `AWS_*` variables; needs the `s3` cargo feature).

use std::sync::Arc;

use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::ObjectStore;

use crate::config::Config;

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
            Some(url) => s3(url),
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
}

#[cfg(feature = "s3")]
fn s3(url: &str) -> anyhow::Result<Storage> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| anyhow::anyhow!("EXPORT_STORE must look like s3://bucket[/prefix]"))?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    let s3 = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()?;
    Ok(Storage {
        store: Arc::new(s3),
        prefix: prefix.to_string(),
    })
}

#[cfg(not(feature = "s3"))]
fn s3(url: &str) -> anyhow::Result<Storage> {
    Err(anyhow::anyhow!(
        "EXPORT_STORE={url} needs S3 support: build with `--features portal-shared/s3`"
    ))
}
