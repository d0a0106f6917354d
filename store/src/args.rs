//! The Redis flags the ext_proc and the operator share (`--redis-url`, `--redis-cluster`,
//! `--redis-ca-file`, `--redis-password`, each with its `TALLY_REDIS_*` twin) and turning them
//! into a [`RedisStore`]. Both components must reach the same Redis the same way, so the flags
//! are declared once: their names, environment twins and TLS handling cannot drift apart.
//!
//! It owns no defaults beyond [`DEFAULT_URL`]: whether a missing `--redis-url` means "no Redis"
//! (the operator) or "the local one" (the ext_proc) is the caller's choice.

use std::fmt;
use std::path::PathBuf;

use redis::{ConnectionAddr, ConnectionInfo, IntoConnectionInfo};

use crate::StoreError;
use crate::redis::RedisStore;

/// The Redis the ext_proc uses with `--store redis` and no `--redis-url`.
pub const DEFAULT_URL: &str = "redis://127.0.0.1:6379";

/// How to reach the Redis holding the live counters; flatten it into a component's flags.
/// Its `Debug` never shows a password (neither the flag nor one inside the URL).
#[derive(Clone, Default, clap::Args)]
pub struct RedisArgs {
    /// Redis holding the live counters (`redis://host:6379`, `rediss://…` for TLS). Without it the
    /// ext_proc (`--store redis`) uses `redis://127.0.0.1:6379`, and the operator's statuses show
    /// the period and conditions only: spend fields stay empty and spend conditions `Unknown`.
    #[arg(long = "redis-url", env = "TALLY_REDIS_URL", value_name = "URL")]
    pub url: Option<String>,
    /// Treat --redis-url as a seed node of a Redis Cluster.
    #[arg(long = "redis-cluster", env = "TALLY_REDIS_CLUSTER")]
    pub cluster: bool,
    /// PEM CA bundle to verify a `rediss://` server with, instead of the system roots.
    #[arg(long = "redis-ca-file", env = "TALLY_REDIS_CA_FILE", value_name = "PATH")]
    pub ca_file: Option<PathBuf>,
    /// Redis password (prefer the environment variable to the flag); a password in the URL works too.
    #[arg(long = "redis-password", env = "TALLY_REDIS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
}

impl std::fmt::Debug for RedisArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisArgs")
            .field("url", &self.url.as_deref().map(redact_url))
            .field("cluster", &self.cluster)
            .field("ca_file", &self.ca_file)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .finish()
    }
}

/// Why the Redis flags cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RedisArgsError {
    #[error("invalid --redis-url: {0}")]
    Url(#[source] redis::RedisError),
    #[error("cannot read --redis-ca-file {path}: {source}")]
    CaFile { path: PathBuf, source: std::io::Error },
    #[error("cannot connect to Redis at {url}: {source}")]
    Connect {
        /// The URL with its password replaced by `***`.
        url: String,
        source: StoreError,
    },
}

impl RedisArgs {
    /// Checks `--redis-url` and reads `--redis-ca-file`, so a bad flag fails at start rather than
    /// at the first connection. `None` without `--redis-url`.
    pub fn target(&self) -> Result<Option<RedisTarget>, RedisArgsError> {
        self.url.as_deref().map(|url| self.target_at(url)).transpose()
    }

    /// [`Self::target`], with `default_url` standing in for a missing `--redis-url`.
    pub fn target_or(&self, default_url: &str) -> Result<RedisTarget, RedisArgsError> {
        self.target_at(self.url.as_deref().unwrap_or(default_url))
    }

    /// Connects once, to `--redis-url` or else `default_url`; the error names the (redacted) URL.
    pub async fn connect_or(&self, default_url: &str) -> Result<RedisStore, RedisArgsError> {
        let target = self.target_or(default_url)?;
        target.connect().await.map_err(|source| RedisArgsError::Connect {
            url: target.redacted_url.clone(),
            source,
        })
    }

    fn target_at(&self, url: &str) -> Result<RedisTarget, RedisArgsError> {
        let info = url.into_connection_info().map_err(RedisArgsError::Url)?;
        let ca_pem = match &self.ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|source| RedisArgsError::CaFile {
                path: path.clone(),
                source,
            })?),
            None => None,
        };
        Ok(RedisTarget {
            url: url.to_string(),
            redacted_url: redacted(&info),
            cluster: self.cluster,
            password: self.password.clone(),
            ca_pem,
        })
    }
}

/// The Redis flags checked: a URL that parses and the CA bundle's contents. Connect with it as
/// often as needed (the operator reconnects after an outage).
#[derive(Clone)]
pub struct RedisTarget {
    url: String,
    redacted_url: String,
    cluster: bool,
    password: Option<String>,
    ca_pem: Option<Vec<u8>>,
}

impl RedisTarget {
    /// A new connection with the ext_proc's client options (see [`RedisStore::connect`]).
    pub async fn connect(&self) -> crate::Result<RedisStore> {
        RedisStore::connect(&self.url, self.cluster, self.password.as_deref(), self.ca_pem.clone()).await
    }

    /// The URL with any password replaced by `***`, for logs and errors.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }
}

/// Never prints the password, of the URL or of `--redis-password`.
impl fmt::Debug for RedisTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTarget")
            .field("url", &self.redacted_url)
            .field("cluster", &self.cluster)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("ca_pem", &self.ca_pem.as_ref().map(Vec::len))
            .finish()
    }
}

/// A URL for logs: its password as `***`; one that does not parse is not shown at all.
fn redact_url(url: &str) -> String {
    match redis::IntoConnectionInfo::into_connection_info(url) {
        Ok(info) => redacted(&info),
        Err(_) => "<unparsable URL>".to_string(),
    }
}

/// `info` written back as a URL, its password (if any) as `***`. Built from the parsed
/// connection info, not by cutting the string, so an `@` or `:` inside the password cannot
/// leak part of it.
fn redacted(info: &ConnectionInfo) -> String {
    let addr = info.addr();
    let (scheme, fragment) = match addr {
        ConnectionAddr::TcpTls { insecure: true, .. } => ("rediss", "#insecure"),
        ConnectionAddr::TcpTls { .. } => ("rediss", ""),
        ConnectionAddr::Unix(_) => ("redis+unix", ""),
        _ => ("redis", ""),
    };
    let settings = info.redis_settings();
    let user = settings.username().unwrap_or_default();
    let credentials = match settings.password() {
        Some(_) => format!("{user}:***@"),
        None if !user.is_empty() => format!("{user}@"),
        None => String::new(),
    };
    let db = match settings.db() {
        0 => String::new(),
        n => format!("/{n}"),
    };
    match addr {
        ConnectionAddr::Unix(path) => format!("{scheme}://{}{db}", path.display()),
        _ => format!("{scheme}://{credentials}{addr}{db}{fragment}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        redis: RedisArgs,
    }

    fn redact(url: &str) -> String {
        RedisArgs {
            url: Some(url.into()),
            ..RedisArgs::default()
        }
        .target()
        .unwrap()
        .unwrap()
        .redacted_url()
        .to_string()
    }

    #[test]
    fn flags_keep_their_names_and_have_no_url_by_default() {
        let cli = Cli::try_parse_from(["tally"]).unwrap();
        assert!(cli.redis.url.is_none() && !cli.redis.cluster);
        assert!(cli.redis.target().unwrap().is_none());
        let cli = Cli::try_parse_from([
            "tally",
            "--redis-url",
            "redis://h:1",
            "--redis-cluster",
            "--redis-ca-file",
            "/ca.pem",
            "--redis-password",
            "pw",
        ])
        .unwrap();
        assert_eq!(cli.redis.url.as_deref(), Some("redis://h:1"));
        assert!(cli.redis.cluster);
        assert_eq!(cli.redis.ca_file, Some(PathBuf::from("/ca.pem")));
        assert_eq!(cli.redis.password.as_deref(), Some("pw"));
    }

    #[test]
    fn a_default_url_stands_in_only_for_a_missing_one() {
        let none = RedisArgs::default();
        assert_eq!(none.target_or(DEFAULT_URL).unwrap().redacted_url(), DEFAULT_URL);
        let set = RedisArgs {
            url: Some("redis://elsewhere:7000".into()),
            ..RedisArgs::default()
        };
        assert_eq!(
            set.target_or(DEFAULT_URL).unwrap().redacted_url(),
            "redis://elsewhere:7000"
        );
    }

    #[test]
    fn redaction_hides_the_password_and_keeps_the_rest() {
        assert_eq!(redact("redis://h"), "redis://h:6379");
        assert_eq!(redact("redis://user:s3cr%40t@h:6380/2"), "redis://user:***@h:6380/2");
        assert_eq!(
            redact("rediss://:pw@cache.example:6379"),
            "rediss://:***@cache.example:6379"
        );
        assert_eq!(redact("rediss://user@h:1#insecure"), "rediss://user@h:1#insecure");
        assert_eq!(redact("redis+unix:///run/redis.sock"), "redis+unix:///run/redis.sock");
    }

    #[test]
    fn the_password_never_reaches_debug_output() {
        let target = RedisArgs {
            url: Some("redis://u:hunter2@h".into()),
            password: Some("swordfish".into()),
            ..RedisArgs::default()
        }
        .target()
        .unwrap()
        .unwrap();
        let debug = format!("{target:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("swordfish"), "{debug}");
    }

    #[test]
    fn bad_flags_are_named() {
        let bad_url = RedisArgs {
            url: Some("http://h".into()),
            ..RedisArgs::default()
        };
        let error = bad_url.target().unwrap_err().to_string();
        assert!(error.starts_with("invalid --redis-url: "), "{error}");
        let missing_ca = RedisArgs {
            url: Some("rediss://h".into()),
            ca_file: Some("/nonexistent/ca.pem".into()),
            ..RedisArgs::default()
        };
        let error = missing_ca.target().unwrap_err().to_string();
        assert!(
            error.starts_with("cannot read --redis-ca-file /nonexistent/ca.pem: "),
            "{error}"
        );
    }

    #[test]
    fn debug_output_never_shows_a_password() {
        let args = RedisArgs {
            url: Some("redis://tally:s3cr%40t@redis:6379/0".into()),
            password: Some("hunter2".into()),
            ..RedisArgs::default()
        };
        let shown = format!("{args:?}");
        assert!(!shown.contains("s3cr") && !shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("tally:***@redis"), "{shown}");
    }
}
