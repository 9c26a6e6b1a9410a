//! The database settings: `DATABASE_URL` (a libpq URL, one host or
//! several) and `PGPASSWORD`, read and checked at start-up, and the session
//! options every connection gets; the password never shown.

use std::time::Duration;

use tokio_postgres::Config;
use tokio_postgres::config::{Host, TargetSessionAttrs};

use service_kit::causes::one_line;

use super::{DEADLINE, LOCK_TIMEOUT, STATEMENT_TIMEOUT};

/// The database settings: where (each host of the URL, in order), as whom,
/// with which options.
#[derive(Debug, Clone)]
pub struct PgSettings {
    /// One single-host configuration per host of the URL, so that each is
    /// tried with a deadline of its own (tokio-postgres's own multi-host
    /// connect bounds only the TCP connect: a host that accepts and then
    /// answers nothing would hold it for ever).
    pub(super) hosts: Vec<HostConfig>,
    target: String,
}

/// One host of the URL.
#[derive(Debug, Clone)]
pub(super) struct HostConfig {
    pub(super) config: Config,
    /// `USER@HOST:PORT/DB`, for the log: the host actually connected.
    pub(super) name: String,
}

impl PgSettings {
    /// Reads `url` (a libpq URL, `postgres://USER@HOST:PORT/DB`, or several
    /// hosts `postgres://USER@H1:P1,H2:P2/DB?target_session_attrs=read-write`)
    /// and, when the URL has no password, `password` (`PGPASSWORD`).
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
        let parsed: Config =
            url.parse().map_err(|e| format!("DATABASE_URL {shown:?} cannot be parsed: {}", one_line(&e)))?;
        if parsed.get_hosts().is_empty() {
            return Err(format!("DATABASE_URL {shown:?} names no host; it must be {SHAPE}"));
        }
        let Some(user) = parsed.get_user().map(str::to_owned) else {
            return Err(format!("DATABASE_URL {shown:?} names no user; it must be {SHAPE}"));
        };
        let ports = parsed.get_ports();
        if ports.len() > 1 && ports.len() != parsed.get_hosts().len() {
            return Err(format!(
                "DATABASE_URL {shown:?} has {} ports for {} hosts",
                ports.len(),
                parsed.get_hosts().len()
            ));
        }
        let password = parsed
            .get_password()
            .map(<[u8]>::to_vec)
            .or_else(|| password.filter(|p| !p.is_empty()).map(String::into_bytes));
        let db = parsed.get_dbname().unwrap_or(&user).to_owned();
        // The session's own limits, below pingpong's deadline, so that a
        // statement given up here is given up by the server too: waiting
        // for a row lock (an operator's open transaction), or running. A
        // commit's wait for a synchronous standby is bounded by neither
        // (PostgreSQL ends the statement timeout before it commits), and
        // pingpong never cancels it (postgres.rs says what it does).
        let mut options = format!(
            "-c synchronous_commit=on -c lock_timeout={} -c statement_timeout={}",
            LOCK_TIMEOUT.as_millis(),
            STATEMENT_TIMEOUT.as_millis()
        );
        if let Some(own) = parsed.get_options() {
            options = format!("{own} {options}");
        }
        let hosts = parsed
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, host)| {
                let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
                let mut config = Config::new();
                let shown_host = match host {
                    Host::Tcp(name) => {
                        config.host(name);
                        name.clone()
                    }
                    Host::Unix(path) => {
                        config.host_path(path);
                        path.display().to_string()
                    }
                };
                config
                    .port(port)
                    .user(&user)
                    .dbname(&db)
                    .application_name(parsed.get_application_name().unwrap_or("pingpong"))
                    .options(&options)
                    .connect_timeout(DEADLINE)
                    .keepalives_idle(Duration::from_secs(10))
                    .tcp_user_timeout(DEADLINE * 2);
                if let Some(password) = &password {
                    config.password(password);
                }
                HostConfig { config, name: format!("{user}@{shown_host}:{port}/{db}") }
            })
            .collect::<Vec<_>>();
        let target = match hosts.as_slice() {
            [one] => one.name.clone(),
            many => {
                let names: Vec<_> = many.iter().map(|h| h.name.split_once('@').map_or("", |(_, at)| at)).collect();
                format!("{user}@{{{}}}", names.join(", "))
            }
        };
        // target_session_attrs: pingpong passes over a host that takes no
        // writes whatever it says (session.rs); read-only is a mistake.
        if parsed.get_target_session_attrs() == TargetSessionAttrs::ReadOnly {
            return Err(format!("DATABASE_URL {shown:?} asks for target_session_attrs=read-only; pingpong writes"));
        }
        Ok(Self { hosts, target })
    }

    /// `USER@HOST:PORT/DB` (several hosts in braces), for the log.
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
        assert_eq!(settings.hosts[0].config.get_password(), Some(&b"pw"[..]));
        let own = PgSettings::from_url("postgresql://app:mine@db/counts", Some("pw".into())).unwrap();
        assert_eq!(own.hosts[0].config.get_password(), Some(&b"mine"[..]));
        for bad in [
            "postgres://app@a:1,b:2,c:3/x?port=1,2",
            "",
            "db:5432",
            "postgres://db:5432/x",
            "postgres://app@db:notaport/x",
            "http://app@db/x",
        ] {
            assert!(PgSettings::from_url(bad, None).is_err(), "{bad:?} was accepted");
        }
    }

    #[test]
    fn each_host_of_a_url_is_tried_on_its_own_with_its_port() {
        let url = "postgres://app@a:5433,b,c:5435/counts?target_session_attrs=read-write";
        let settings = PgSettings::from_url(url, Some("pw".into())).unwrap();
        let names: Vec<_> = settings.hosts.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["app@a:5433/counts", "app@b:5432/counts", "app@c:5435/counts"]);
        assert_eq!(settings.target(), "app@{a:5433/counts, b:5432/counts, c:5435/counts}");
        for host in &settings.hosts {
            assert_eq!(host.config.get_hosts().len(), 1);
            assert_eq!(host.config.get_password(), Some(&b"pw"[..]));
            assert!(host.config.get_options().unwrap().contains("lock_timeout="));
        }
        assert!(PgSettings::from_url("postgres://app@a/x?target_session_attrs=read-only", None).is_err());
    }
}
