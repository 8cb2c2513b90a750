//! `--store`: where `liaison serve` keeps session states (memory, a redb file, or Redis).

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use liaison_resume::{MemoryStore, RedbStore, RedisStore, Store};

use crate::error::CliError;

/// A store as the command line names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum StoreSpec {
    /// `mem`: in this process, gone when it exits.
    Memory,
    /// `redb:PATH`: an embedded database file, created if absent; survives a restart.
    Redb(PathBuf),
    /// `redis://HOST[:PORT][/DB]`: a Redis server that several servers may share.
    Redis(String),
}

impl StoreSpec {
    /// Parses `mem`, `redb:PATH` or `redis://...` (also `rediss://`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        if text == "mem" || text == "memory" {
            Ok(Self::Memory)
        } else if let Some(path) = text.strip_prefix("redb:") {
            if path.is_empty() {
                return Err("redb:PATH needs a file path".into());
            }
            Ok(Self::Redb(PathBuf::from(path)))
        } else if text.starts_with("redis://") || text.starts_with("rediss://") {
            Ok(Self::Redis(text.to_string()))
        } else {
            Err(format!(
                "unknown store `{text}` (expected mem, redb:PATH or redis://HOST[:PORT])"
            ))
        }
    }

    /// Opens the store.
    pub(crate) async fn open(&self) -> Result<Arc<dyn Store>, CliError> {
        Ok(match self {
            Self::Memory => Arc::new(MemoryStore::new()),
            Self::Redb(path) => Arc::new(RedbStore::create(path)?),
            Self::Redis(url) => Arc::new(RedisStore::connect(url).await?),
        })
    }
}

impl fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Memory => f.write_str("mem"),
            Self::Redb(path) => write!(f, "redb:{}", path.display()),
            Self::Redis(url) => f.write_str(url),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_parse() {
        assert_eq!(StoreSpec::parse("mem"), Ok(StoreSpec::Memory));
        assert_eq!(
            StoreSpec::parse("redb:/tmp/x.redb"),
            Ok(StoreSpec::Redb("/tmp/x.redb".into()))
        );
        assert_eq!(
            StoreSpec::parse("redis://127.0.0.1:6379/2"),
            Ok(StoreSpec::Redis("redis://127.0.0.1:6379/2".into()))
        );
        assert!(StoreSpec::parse("redb:").is_err());
        assert!(StoreSpec::parse("postgres://x").is_err());
    }

    #[tokio::test]
    async fn a_redb_store_keeps_values_across_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let spec = StoreSpec::Redb(dir.path().join("states.redb"));
        let store = spec.open().await.unwrap();
        store
            .set("k", bytes::Bytes::from_static(b"v"), None)
            .await
            .unwrap();
        drop(store);
        let again = spec.open().await.unwrap();
        assert_eq!(
            again.get("k").await.unwrap().map(|v| v.value),
            Some(bytes::Bytes::from_static(b"v"))
        );
    }
}
