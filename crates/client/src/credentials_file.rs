//! The AWS shared credentials file, as aws-cli, boto3 and the SDKs read it:
//!
//! ```text
//!  [default]
//!  aws_access_key_id = BKIA...
//!  aws_secret_access_key = ...
//! ```
//! berth writes the bootstrap admin credential in this form, so
//! `AWS_SHARED_CREDENTIALS_FILE=<data-dir>/admin.credentials aws ecs ...` works at once, and
//! berth's own tools read it the same way.

use std::path::Path;

use berth_auth::SecretKey;

use crate::Credentials;

/// Why a credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has no [{profile}] profile with aws_access_key_id and aws_secret_access_key")]
    Missing { path: String, profile: String },
}

/// The file's text for one profile.
pub fn render(profile: &str, credentials: &Credentials) -> String {
    format!(
        "# berth credential {id}: use with AWS_SHARED_CREDENTIALS_FILE or aws --profile\n\
         [{profile}]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n",
        id = credentials.access_key_id,
        secret = credentials.secret.expose()
    )
}

/// The credentials of `profile` in the file's text.
pub fn parse(text: &str, profile: &str) -> Option<Credentials> {
    let mut section: Option<&str> = None;
    let (mut id, mut secret) = (None, None);
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = Some(name.trim());
            continue;
        }
        if section != Some(profile) {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => id = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    Some(Credentials {
        access_key_id: id?,
        secret: SecretKey::new(secret?),
    })
}

/// Reads `profile` from the file at `path`.
pub fn read(path: &Path, profile: &str) -> Result<Credentials, CredentialsFileError> {
    let text = std::fs::read_to_string(path).map_err(|source| CredentialsFileError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse(&text, profile).ok_or_else(|| CredentialsFileError::Missing {
        path: path.display().to_string(),
        profile: profile.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_reads_what_aws_tools_write() {
        let c = Credentials {
            access_key_id: "BKIAAAAAAAAAAAAAAAAA".into(),
            secret: SecretKey::new("s/e+c=r"),
        };
        assert_eq!(parse(&render("default", &c), "default"), Some(c.clone()));
        let aws = "[other]\naws_access_key_id=X\naws_secret_access_key=Y\n\n; comment\n[default]\n  aws_access_key_id =  BKIAAAAAAAAAAAAAAAAA\naws_secret_access_key=s/e+c=r\nregion=us-east-1\n";
        assert_eq!(parse(aws, "default"), Some(c));
        assert_eq!(
            parse(aws, "other").map(|c| c.access_key_id),
            Some("X".into())
        );
        assert_eq!(parse(aws, "missing"), None);
        assert_eq!(parse("[default]\naws_access_key_id=X\n", "default"), None);
    }
}
