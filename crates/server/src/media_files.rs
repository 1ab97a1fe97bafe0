//! Where media bytes live: a local folder by default, an S3-compatible bucket for deployments with
//! several instances. Both sit behind `object_store::ObjectStore`; this module is the one place that
//! knows which, and it names files itself (random keys), so a request can never choose a path.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

#[derive(Clone)]
pub struct MediaFiles {
    inner: Arc<dyn ObjectStore>,
}

impl MediaFiles {
    /// `url` None: `<data_dir>/media`. `s3://bucket[/prefix]`: credentials and endpoint from the
    /// usual AWS_* environment variables (AWS_ENDPOINT for S3-compatible services).
    pub fn open(url: Option<&str>, data_dir: &Path) -> anyhow::Result<MediaFiles> {
        let inner: Arc<dyn ObjectStore> = match url {
            None => {
                let dir = data_dir.join("media");
                std::fs::create_dir_all(&dir)
                    .with_context(|| format!("cannot create media folder {}", dir.display()))?;
                Arc::new(LocalFileSystem::new_with_prefix(&dir)?)
            }
            Some(url) if url.starts_with("s3://") => Arc::new(
                object_store::aws::AmazonS3Builder::from_env()
                    .with_url(url)
                    .build()
                    .context("invalid S3 media store configuration")?,
            ),
            Some(url) if url.starts_with("file://") => {
                let dir = Path::new(url.trim_start_matches("file://"));
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create media folder {}", dir.display()))?;
                Arc::new(LocalFileSystem::new_with_prefix(dir)?)
            }
            Some(other) => {
                anyhow::bail!("unsupported media store {other:?}: use file:///path or s3://bucket")
            }
        };
        Ok(MediaFiles { inner })
    }

    /// Stores the bytes under a new random key and returns it.
    pub async fn put(&self, bytes: Bytes) -> anyhow::Result<String> {
        let key = format!(
            "{}/{}",
            crate::clock::today_path(),
            crate::passwords::random_token()
        );
        self.inner
            .put(&ObjectPath::from(key.as_str()), PutPayload::from(bytes))
            .await
            .context("cannot store media file")?;
        Ok(key)
    }

    pub async fn get(&self, key: &str) -> anyhow::Result<Bytes> {
        let result = self
            .inner
            .get(&ObjectPath::from(key))
            .await
            .context("cannot read media file")?;
        Ok(result.bytes().await?)
    }
}
