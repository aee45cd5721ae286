//! What is checked and chosen before the managed broker starts: Java, the jars, the data
//! folder's lock, the ports, a cluster id.

use super::*;

/// The classpath setup wrote, each jar checked.
pub(super) fn read_classpath(file: &Path) -> Result<String, ManagedError> {
    let text = std::fs::read_to_string(file)
        .map_err(|e| ManagedError::Jars(format!("{}: {e}", file.display())))?;
    let cp = text.trim().to_owned();
    if cp.is_empty() {
        return Err(ManagedError::Jars(format!("{} is empty", file.display())));
    }
    if let Some(missing) = cp.split(':').find(|j| !Path::new(j).is_file()) {
        return Err(ManagedError::Jars(format!(
            "{missing} (listed in {}) is missing",
            file.display()
        )));
    }
    Ok(cp)
}

/// `java -version`, major ≥ 17.
pub(super) fn check_java(java: &Path) -> Result<(), ManagedError> {
    let out = Command::new(java)
        .arg("-version")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| ManagedError::Java(format!("`{}` cannot run: {e}", java.display())))?;
    let text = String::from_utf8_lossy(&out.stderr);
    match java_major(&text) {
        Some(m) if m >= 17 => Ok(()),
        Some(m) => Err(ManagedError::Java(format!(
            "`{}` is Java {m}",
            java.display()
        ))),
        None => Err(ManagedError::Java(format!(
            "`{} -version` said {:?}",
            java.display(),
            text.lines().next().unwrap_or("")
        ))),
    }
}

/// The major version in `java -version`'s first line (`openjdk version "17.0.9" …`; `"1.8.0_…"`
/// is 8).
pub(super) fn java_major(text: &str) -> Option<u32> {
    let v = text.split('"').nth(1)?;
    let mut parts = v.split(['.', '-', '+', '_']);
    match parts.next()?.parse().ok()? {
        1 => parts.next()?.parse().ok(),
        m => Some(m),
    }
}

/// A Kafka cluster id: 16 random bytes in unpadded URL-safe base64, as `StorageTool
/// random-uuid` prints (22 characters).
pub(super) fn cluster_id(bytes: [u8; 16]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = String::with_capacity(22);
    for b in bytes {
        bits = (bits << 8) | u32::from(b);
        n += 8;
        while n >= 6 {
            n -= 6;
            out.push(ABC[((bits >> n) & 63) as usize] as char);
        }
    }
    if n > 0 {
        out.push(ABC[((bits << (6 - n)) & 63) as usize] as char);
    }
    out
}

/// Locks `dir` for this process (released when the file is closed, also by a crash).
pub(super) fn lock_dir(dir: &Path) -> anyhow::Result<File> {
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join("LOCK"))
        .with_context(|| format!("cannot open {}", dir.join("LOCK").display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => {
            Err(ManagedError::DataDirInUse(dir.to_owned()).into())
        }
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock {}", dir.display()))
        }
    }
}

/// Each of `wanted`, or a free port on the same address where it is taken; all different
/// (every one is held until all are chosen).
pub(super) fn pick_addrs(wanted: &[SocketAddr]) -> anyhow::Result<Vec<SocketAddr>> {
    let mut held = Vec::with_capacity(wanted.len());
    for w in wanted {
        let l = match TcpListener::bind(w) {
            Ok(l) => l,
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let l = TcpListener::bind(SocketAddr::new(w.ip(), 0))?;
                info!(wanted = %w, using = %l.local_addr()?, "port taken; the broker uses a free one");
                l
            }
            Err(e) => return Err(e).with_context(|| format!("cannot listen on {w}")),
        };
        held.push(l);
    }
    held.iter()
        .map(|l| l.local_addr().map_err(Into::into))
        .collect()
}

/// The cluster id kept in `dir/cluster.id`, made the first time. As Kafka's
/// `Uuid.randomUuid`: never one starting with "-", which its tools' argument parser would
/// read as an option.
pub(super) fn cluster_id_in(dir: &Path) -> anyhow::Result<String> {
    let file = dir.join("cluster.id");
    if let Ok(s) = std::fs::read_to_string(&file)
        && !s.trim().is_empty()
    {
        return Ok(s.trim().to_owned());
    }
    let id = loop {
        let id = cluster_id(rand::random());
        if !id.starts_with('-') {
            break id;
        }
    };
    std::fs::write(&file, &id).with_context(|| format!("cannot write {}", file.display()))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_versions_are_read_from_the_first_line() {
        assert_eq!(
            java_major("openjdk version \"17.0.13\" 2024-10-15\nOpenJDK Runtime"),
            Some(17)
        );
        assert_eq!(java_major("java version \"1.8.0_392\""), Some(8));
        assert_eq!(java_major("openjdk version \"21\" 2023-09-19"), Some(21));
        assert_eq!(java_major("openjdk version \"25-ea\""), Some(25));
        assert_eq!(java_major("bash: java: command not found"), None);
    }

    #[test]
    fn cluster_ids_look_like_kafkas() {
        // Kafka's Uuid.toString of these bytes (base64url, no padding).
        assert_eq!(cluster_id([0; 16]), "AAAAAAAAAAAAAAAAAAAAAA");
        assert_eq!(cluster_id([255; 16]), "_____________________w");
        // 0xF8 starts with six 1 bits minus one: "-" (62) first, which Kafka never makes.
        assert!(cluster_id([0xF8; 16]).starts_with('-'));
        let id = cluster_id(rand::random());
        assert_eq!(id.len(), 22);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        );
    }

    #[test]
    fn a_missing_jar_is_named() {
        let d = tempfile::tempdir().expect("temp dir");
        let f = d.path().join("cp.txt");
        std::fs::write(&f, "/nonexistent/kafka_2.13-4.1.0.jar\n").expect("write");
        let e = read_classpath(&f).expect_err("a missing jar");
        assert!(
            e.to_string().contains("/nonexistent/kafka_2.13-4.1.0.jar"),
            "{e}"
        );
        assert!(e.to_string().contains("scripts/setup.sh demo"), "{e}");
        let e = read_classpath(&d.path().join("none.txt")).expect_err("no file");
        assert!(e.to_string().contains("--brokers"), "{e}");
    }
}
