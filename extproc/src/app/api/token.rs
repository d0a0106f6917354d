//! The API's bearer token, read from a file (a mounted Secret) on every check, so a rotated
//! Secret applies without a restart, and compared in constant time.

use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// What a presented token was found to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Allowed,
    Refused,
    /// The token file cannot be read (or is empty) right now: nobody is let in.
    Unavailable,
}

/// The token file; never holds or prints the token itself.
#[derive(Debug, Clone)]
pub struct TokenFile {
    path: PathBuf,
}

impl TokenFile {
    /// Checks once that `path` holds a token, so a wrong mount fails at start.
    pub fn open(path: &Path) -> anyhow::Result<TokenFile> {
        let file = TokenFile {
            path: path.to_path_buf(),
        };
        file.read()
            .map_err(|e| anyhow::anyhow!("--api-token-file {}: {e}", path.display()))?;
        Ok(file)
    }

    fn read(&self) -> Result<Vec<u8>, String> {
        let bytes = std::fs::read(&self.path).map_err(|e| e.to_string())?;
        // Secrets written by hand often end with a newline; the token is what is inside.
        let token = bytes.trim_ascii().to_vec();
        if token.is_empty() {
            return Err("the file is empty".into());
        }
        Ok(token)
    }

    /// Checks an `Authorization` header value (`Bearer <token>`).
    pub fn check(&self, authorization: Option<&[u8]>) -> Verdict {
        let expected = match self.read() {
            Ok(t) => t,
            Err(e) => {
                tracing::error!(path = %self.path.display(), error = %e, "API token file unreadable; refusing every API request");
                return Verdict::Unavailable;
            }
        };
        let presented = authorization
            .and_then(|h| h.split_at_checked(7))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case(b"bearer "))
            .map(|(_, token)| token.trim_ascii());
        match presented {
            Some(token) if bool::from(token.ct_eq(&expected)) => Verdict::Allowed,
            _ => Verdict::Refused,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_current_token_is_allowed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "s3cret\n").unwrap();
        let file = TokenFile::open(&path).unwrap();
        assert_eq!(file.check(Some(b"Bearer s3cret")), Verdict::Allowed);
        assert_eq!(file.check(Some(b"bearer s3cret")), Verdict::Allowed);
        for refused in [
            &b"Bearer s3cre"[..],
            b"Bearer s3cret2",
            b"Basic s3cret",
            b"s3cret",
            b"Bearer ",
        ] {
            assert_eq!(file.check(Some(refused)), Verdict::Refused, "{refused:?}");
        }
        assert_eq!(file.check(None), Verdict::Refused);
        // Rotated: the new token applies at once, the old one no longer.
        std::fs::write(&path, "rotated").unwrap();
        assert_eq!(file.check(Some(b"Bearer rotated")), Verdict::Allowed);
        assert_eq!(file.check(Some(b"Bearer s3cret")), Verdict::Refused);
        std::fs::write(&path, "\n").unwrap();
        assert_eq!(file.check(Some(b"Bearer ")), Verdict::Unavailable);
    }

    #[test]
    fn a_missing_or_empty_file_fails_at_start() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        assert!(TokenFile::open(&path).is_err());
        std::fs::write(&path, " \n").unwrap();
        let error = TokenFile::open(&path).unwrap_err().to_string();
        assert!(error.contains("empty"), "{error}");
    }
}
