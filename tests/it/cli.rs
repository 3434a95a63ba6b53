//! The command line: exit codes and messages a user sees.

use std::path::Path;

use crate::support::feedmill;

fn write(dir: &Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("feedmill.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

const VALID: &str =
    "[[source]]\nname = \"a\"\nurl = \"https://a.example/feed.xml\"\n\n[[feed]]\nname = \"all\"\n";

#[test]
fn check_accepts_the_shipped_configs() {
    for file in ["config/feedmill.toml", "config/demo.toml"] {
        let out = feedmill()
            .args(["check", "-c", file])
            .output()
            .expect("runs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(stdout.contains("valid"), "{stdout}");
        assert!(stdout.contains("listen 127.0.0.1:8080"), "{stdout}");
    }
    let out = feedmill()
        .args(["check", "-c", "config/demo.toml"])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("4 sources, 2 feeds"), "{stdout}");
    assert!(
        stdout.contains("http://127.0.0.1:8080/feeds/all.atom"),
        "{stdout}"
    );
}

#[test]
fn check_finds_the_config_through_the_environment_and_the_working_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = write(dir.path(), VALID);
    let out = feedmill()
        .arg("check")
        .env("FEEDMILL_CONFIG", &path)
        .output()
        .expect("runs");
    assert!(out.status.success());
    let out = feedmill()
        .arg("check")
        .current_dir(dir.path())
        .output()
        .expect("runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn invalid_configs_exit_2_naming_the_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            format!("{VALID}colour = \"red\"\n"),
            ":7:1:",
            "unknown field `colour`",
        ),
        (
            VALID.replace("https://a.example/feed.xml", "gopher://x/"),
            ":3:7:",
            "not supported",
        ),
        (
            format!("{VALID}sources = [\"b\"]\n"),
            ":7:12:",
            "names source \"b\"",
        ),
        (
            format!("[fetch]\nschedule = \"*/61 * * * *\"\n{VALID}"),
            ":2:12:",
            "bad schedule",
        ),
    ];
    for (text, place, message) in cases {
        let path = write(dir.path(), &text);
        for command in ["check", "run"] {
            let out = feedmill()
                .arg(command)
                .arg("-c")
                .arg(&path)
                .output()
                .expect("runs");
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert_eq!(out.status.code(), Some(2), "{command}: {stderr}");
            assert!(
                stderr.contains(&format!("feedmill.toml{place}")),
                "{stderr}"
            );
            assert!(stderr.contains(message), "{stderr}");
            assert!(!stderr.contains("panicked"), "{stderr}");
        }
    }
}

#[test]
fn a_missing_config_says_how_to_name_one() {
    let out = feedmill()
        .args(["check", "-c", "/nonexistent/feedmill.toml"])
        .output()
        .expect("runs");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr.contains("/nonexistent/feedmill.toml"), "{stderr}");
    assert!(stderr.contains("-c FILE"), "{stderr}");
}

#[test]
fn usage_errors_exit_2_and_help_and_version_work() {
    let out = feedmill().arg("frobnicate").output().expect("runs");
    assert_eq!(out.status.code(), Some(2));
    for args in [
        &["--help"][..],
        &["run", "--help"],
        &["check", "--help"],
        &["--version"],
    ] {
        let out = feedmill().args(args).output().expect("runs");
        assert!(out.status.success(), "{args:?}");
        assert!(!out.stdout.is_empty());
    }
}
