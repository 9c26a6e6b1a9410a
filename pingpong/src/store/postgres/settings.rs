//! The database settings: `DATABASE_URL` (a libpq URL) and `PGPASSWORD`,
//! read and checked at start-up, and the session options every connection
//! gets; the password never shown.

use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use service_kit::causes::one_line;

use super::{CONNECT_TIMEOUT, DEADLINE};

/// The database settings: where, as whom, with which options.
#[derive(Debug, Clone)]
pub struct PgSettings {
    pub(super) config: Config,
    target: String,
}

impl PgSettings {
    /// Reads `url` (a libpq URL, `postgres://USER@HOST:PORT/DB`) and, when the
    /// URL has no password, `password` (`PGPASSWORD`).
    ///
    /// # Errors
    /// One line naming what is wrong, without the password: not a
    /// `postgres://` URL, unparsable, or no host or user.
    pub fn from_url(url: &str, password: Option<String>) -> Result<Self, String> {
        const SHAPE: &str = "a postgres:// URL such as postgres://USER@HOST:5432/DB";
        let shown = without_password(url);
        let url = url.trim();
        if !(url.starts_with("postgres://") || url.starts_with("postgresql://")) {
            return Err(format!("DATABASE_URL must be {SHAPE}, got {shown:?}"));
        }
        let mut config: Config =
            url.parse().map_err(|e| format!("DATABASE_URL {shown:?} cannot be parsed: {}", one_line(&e)))?;
        if config.get_hosts().is_empty() {
            return Err(format!("DATABASE_URL {shown:?} names no host; it must be {SHAPE}"));
        }
        let Some(user) = config.get_user().map(str::to_owned) else {
            return Err(format!("DATABASE_URL {shown:?} names no user; it must be {SHAPE}"));
        };
        if config.get_password().is_none()
            && let Some(password) = password.filter(|p| !p.is_empty())
        {
            config.password(password);
        }
        let host = match &config.get_hosts()[0] {
            Host::Tcp(host) => host.clone(),
            Host::Unix(path) => path.display().to_string(),
        };
        let port = config.get_ports().first().copied().unwrap_or(5432);
        let db = config.get_dbname().unwrap_or(&user).to_owned();
        config
            .application_name("pingpong")
            .options("-c synchronous_commit=on")
            .connect_timeout(CONNECT_TIMEOUT)
            .keepalives_idle(Duration::from_secs(10))
            .tcp_user_timeout(DEADLINE * 2);
        Ok(Self { config, target: format!("{user}@{host}:{port}/{db}") })
    }

    /// `USER@HOST:PORT/DB`, for the log.
    #[must_use]
    pub fn target(&self) -> &str {
        &self.target
    }
}

/// `url` with any password replaced by `***`, for messages.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let (authority, tail) = rest.split_once('/').map_or((rest, None), |(a, t)| (a, Some(t)));
    let Some((userinfo, host)) = authority.rsplit_once('@') else { return url.to_owned() };
    let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
    let masked = if userinfo.contains(':') { format!("{user}:***") } else { user.to_owned() };
    let tail = tail.map(|t| format!("/{t}")).unwrap_or_default();
    format!("{scheme}://{masked}@{host}{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(without_password("postgres://app:s3cret@db:5432/app"), "postgres://app:***@db:5432/app");
        assert_eq!(without_password("postgres://app@db/app"), "postgres://app@db/app");
        let err = PgSettings::from_url("mysql://app:s3cret@db/app", None).unwrap_err();
        assert!(err.contains("postgres://") && !err.contains("s3cret"), "{err}");
    }

    #[test]
    fn urls_are_read_with_the_password_from_pgpassword_unless_they_carry_one() {
        let settings = PgSettings::from_url("postgres://app@db:5433/counts", Some("pw".into())).unwrap();
        assert_eq!(settings.target(), "app@db:5433/counts");
        assert_eq!(settings.config.get_password(), Some(&b"pw"[..]));
        let own = PgSettings::from_url("postgresql://app:mine@db/counts", Some("pw".into())).unwrap();
        assert_eq!(own.config.get_password(), Some(&b"mine"[..]));
        for bad in ["", "db:5432", "postgres://db:5432/x", "postgres://app@db:notaport/x", "http://app@db/x"] {
            assert!(PgSettings::from_url(bad, None).is_err(), "{bad:?} was accepted");
        }
    }
}
