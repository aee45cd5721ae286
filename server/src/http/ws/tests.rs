use super::{host_allowed, origin_allowed};

#[test]
fn hosts() {
    let allowed = vec!["http://teacher.school.example:8081".to_string()];
    for ok in [
        "127.0.0.1:8080",
        "127.0.0.1",
        "[::1]:8080",
        "192.168.1.20:8080",
        "localhost:8080",
        "LOCALHOST",
        "teacher.school.example:8080",
    ] {
        assert!(host_allowed(Some(ok), &allowed), "{ok}");
    }
    // A rebinding page: its own domain, now resolving to 127.0.0.1.
    for bad in [
        "evil.example:8080",
        "evil.example",
        "localhost.evil.example:8080",
        "127.0.0.1.evil.example",
    ] {
        assert!(!host_allowed(Some(bad), &allowed), "{bad}");
    }
    assert!(host_allowed(None, &allowed), "no Host: not a browser");
}

#[test]
fn origins() {
    let allowed = vec!["http://127.0.0.1:8081".to_string()];
    assert!(origin_allowed(None, Some("127.0.0.1:8080"), &allowed));
    assert!(origin_allowed(
        Some("http://127.0.0.1:8080"),
        Some("127.0.0.1:8080"),
        &allowed
    ));
    assert!(origin_allowed(
        Some("http://127.0.0.1:8081"),
        Some("127.0.0.1:8080"),
        &allowed
    ));
    assert!(!origin_allowed(
        Some("http://evil.example"),
        Some("127.0.0.1:8080"),
        &allowed
    ));
    assert!(!origin_allowed(
        Some("http://127.0.0.1:8080.evil.example"),
        Some("127.0.0.1:8080"),
        &allowed
    ));
    assert!(!origin_allowed(Some("http://evil.example"), None, &allowed));
}
