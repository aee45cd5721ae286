//! Who controls the demo, and the addresses to give a class.
//!
//! On loopback only the presenter's own machine can reach the page, so every page commands
//! (no token), as before. Reachable from other machines (a `--listen` address that is not
//! loopback), the controls need the presenter's token: `--presenter-token`, or else one made
//! once, long and random, and kept in `<data dir>/presenter-token` (in memory with
//! `--ephemeral`), so the presenter's link stays the same from one class to the next.
//! `--open-controls` lets every page command instead (e.g. a container whose port the host
//! publishes on its own loopback only).
//!
//! The presenter link carries the token after `#`: browsers never send the fragment, so it
//! reaches no server log; the page logs in with it and removes it from the address bar.

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rand::{Rng, SeedableRng};

/// The file in the data dir.
pub const TOKEN_FILE: &str = "presenter-token";

/// How the controls are guarded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Controls {
    /// Every page may command.
    Open,
    /// Only a page logged in with this token; `made`: cashflow made it (so it prints the
    /// presenter link), rather than the user giving it.
    Token { token: Arc<str>, made: bool },
}

impl Controls {
    pub fn token(&self) -> Option<Arc<str>> {
        match self {
            Controls::Open => None,
            Controls::Token { token, .. } => Some(token.clone()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ControlsError {
    #[error("cannot keep the presenter token in {path}: {source}")]
    TokenFile {
        path: String,
        source: std::io::Error,
    },
}

/// The controls for a server listening on `listen`: the given token wins; else open on
/// loopback or with `open`; else a token made once and kept in `data_dir`.
pub fn controls(
    listen: SocketAddr,
    given: Option<&str>,
    open: bool,
    data_dir: Option<&Path>,
) -> Result<Controls, ControlsError> {
    if let Some(t) = given {
        return Ok(Controls::Token {
            token: t.into(),
            made: false,
        });
    }
    if open || listen.ip().is_loopback() {
        return Ok(Controls::Open);
    }
    let token = match data_dir {
        Some(dir) => kept_token(dir)?,
        None => new_token(),
    };
    Ok(Controls::Token {
        token: token.into(),
        made: true,
    })
}

/// 32 random bytes from the OS, as 64 hex digits.
fn new_token() -> String {
    let bytes: [u8; 32] = rand::rngs::StdRng::from_os_rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The token kept in `dir`, made (readable by its owner only) the first time.
fn kept_token(dir: &Path) -> Result<String, ControlsError> {
    let path = dir.join(TOKEN_FILE);
    let err = |source| ControlsError::TokenFile {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(t) if t.trim().len() >= 32 => {
            // Readable by its owner only, whoever loosened it since.
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                let meta = std::fs::metadata(&path).map_err(err)?;
                if meta.permissions().mode() & 0o077 != 0 {
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                        .map_err(err)?;
                }
            }
            return Ok(t.trim().to_owned());
        }
        Ok(_) => {} // empty or cut short: made again
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    std::fs::create_dir_all(dir).map_err(err)?;
    let token = new_token();
    let tmp = path.with_extension("tmp");
    // A leftover aside file would keep its own mode: the new one is made afresh.
    let _ = std::fs::remove_file(&tmp);
    {
        use std::io::Write as _;
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
        let mut f = opts.open(&tmp).map_err(err)?;
        f.write_all(token.as_bytes()).map_err(err)?;
        f.sync_all().map_err(err)?;
    }
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(token)
}

/// The page's addresses others can open for a server bound to `bound`: each of the
/// machine's non-loopback interface addresses when bound to all of them (0.0.0.0 or ::),
/// else the bound address itself.
pub fn page_urls(bound: SocketAddr) -> Vec<String> {
    let url = |ip: IpAddr| format!("http://{}/", SocketAddr::new(ip, bound.port()));
    if !bound.ip().is_unspecified() {
        return vec![url(bound.ip())];
    }
    let want_v6 = bound.is_ipv6();
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        .filter(|ip| !ip.is_loopback() && (ip.is_ipv4() || want_v6))
        // Link-local IPv6 addresses need a zone to be opened: leave them out.
        .filter(|ip| !matches!(ip, IpAddr::V6(v6) if (v6.segments()[0] & 0xffc0) == 0xfe80))
        .collect();
    ips.sort();
    ips.dedup();
    if ips.is_empty() {
        // No other interface: only this machine can open it.
        return vec![url(if want_v6 {
            IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
        } else {
            IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
        })];
    }
    ips.into_iter().map(url).collect()
}

/// The presenter's link: the page's address with the token after `#`.
pub fn presenter_link(page: &str, token: &str) -> String {
    format!(
        "{page}{}{token}",
        cashflow_shared::protocol::PRESENTER_FRAGMENT
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> SocketAddr {
        s.parse().expect("address")
    }

    #[test]
    fn loopback_stays_open_and_a_given_token_wins() {
        assert_eq!(
            controls(addr("127.0.0.1:8080"), None, false, None).expect("controls"),
            Controls::Open
        );
        assert_eq!(
            controls(addr("[::1]:8080"), None, false, None).expect("controls"),
            Controls::Open
        );
        assert_eq!(
            controls(addr("127.0.0.1:8080"), Some("secret"), false, None).expect("controls"),
            Controls::Token {
                token: "secret".into(),
                made: false
            }
        );
    }

    #[test]
    fn off_loopback_a_token_is_made_once_and_kept() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first =
            controls(addr("0.0.0.0:8080"), None, false, Some(dir.path())).expect("controls");
        let Controls::Token { token, made: true } = &first else {
            panic!("off loopback without a token: {first:?}");
        };
        assert_eq!(token.len(), 64);
        assert!(token.chars().all(|c| c.is_ascii_hexdigit()));
        let again =
            controls(addr("192.0.2.7:9000"), None, false, Some(dir.path())).expect("controls");
        assert_eq!(
            again.token(),
            Some(token.clone()),
            "the same token next time"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(dir.path().join(TOKEN_FILE))
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "readable by its owner only: {mode:o}");
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let file = dir.path().join(TOKEN_FILE);
            std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644))
                .expect("loosen");
            controls(addr("0.0.0.0:8080"), None, false, Some(dir.path())).expect("controls");
            let mode = std::fs::metadata(&file)
                .expect("token file")
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "tightened again: {mode:o}");
        }
        let ephemeral = controls(addr("0.0.0.0:8080"), None, false, None).expect("controls");
        assert!(ephemeral.token().is_some_and(|t| t != *token));
    }

    #[test]
    fn open_controls_is_explicit() {
        assert_eq!(
            controls(addr("0.0.0.0:8080"), None, true, None).expect("controls"),
            Controls::Open
        );
    }

    #[test]
    fn students_get_openable_addresses() {
        assert_eq!(
            page_urls(addr("192.0.2.7:9000")),
            vec!["http://192.0.2.7:9000/".to_owned()]
        );
        let all = page_urls(addr("0.0.0.0:9000"));
        assert!(!all.is_empty());
        assert!(
            all.iter().all(|u| !u.contains("0.0.0.0")),
            "no unspecified address: {all:?}"
        );
        assert_eq!(
            presenter_link("http://192.0.2.7:9000/", "ab"),
            "http://192.0.2.7:9000/#presenter=ab"
        );
    }
}
