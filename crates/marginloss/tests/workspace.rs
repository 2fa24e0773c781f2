//! Files the crates' packages carry as copies of the workspace's (a package cannot reach
//! outside its crate): the licence texts and the README examples. This test reads the
//! workspace and stays in the repository (it is not in the package).

use std::path::PathBuf;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

const CRATES: [&str; 4] = ["marginloss", "marginloss-cli", "marginloss-candle", "marginloss-burn"];

#[test]
fn every_crate_carries_the_workspace_licence_texts() {
    for licence in ["LICENSE-MIT", "LICENSE-APACHE"] {
        let want = read(licence);
        for c in CRATES {
            assert!(
                read(&format!("crates/{c}/{licence}")) == want,
                "crates/{c}/{licence} differs from {licence}"
            );
        }
    }
    assert!(
        read("LICENSE-APACHE").contains("Apache License\n                        Version 2.0, January 2004")
    );
    assert!(read("LICENSE-MIT").starts_with("MIT License"));
}

/// The ```rust blocks of a Markdown file.
fn rust_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match &mut cur {
            None if line.trim_start().starts_with("```rust") => cur = Some(String::new()),
            Some(b) if line.trim_start().starts_with("```") => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
            None => {}
        }
    }
    blocks
}

#[test]
fn the_workspace_readme_shows_the_crate_readmes_tested_examples() {
    // The crate READMEs run as doctests (their lib.rs includes them); every Rust block of
    // the workspace README must be one of them, so it is tested too.
    let tested: Vec<String> = ["crates/marginloss/README.md", "crates/marginloss-candle/README.md"]
        .iter()
        .flat_map(|f| rust_blocks(&read(f)))
        .collect();
    let shown = rust_blocks(&read("README.md"));
    assert!(shown.len() >= 2, "the workspace README shows the library and the candle example");
    for b in shown {
        assert!(tested.contains(&b), "README.md block not in a crate README:\n{b}");
    }
}

#[test]
fn every_crate_is_documented_for_crates_io() {
    let version = read("Cargo.toml");
    assert!(version.contains("version = \"0.2.0\""));
    assert!(!version.contains("example.invalid"));
    for c in CRATES {
        let toml = read(&format!("crates/{c}/Cargo.toml"));
        for key in ["description", "readme", "keywords", "categories", "documentation", "include"] {
            assert!(toml.lines().any(|l| l.starts_with(&format!("{key} "))), "crates/{c}: no {key}");
        }
        assert!(toml.contains(&format!("documentation = \"https://docs.rs/{c}\"")), "crates/{c}");
        assert!(!read(&format!("crates/{c}/README.md")).is_empty());
    }
}

#[test]
fn the_binary_is_not_documented_over_the_library() {
    // The binary and the library are both `marginloss`: `cargo doc --workspace` would write
    // target/doc/marginloss/ twice, the last one winning.
    let toml = read("crates/marginloss-cli/Cargo.toml");
    let bin = toml.split("[[bin]]").nth(1).expect("a [[bin]] section");
    let bin = bin.split("\n[").next().unwrap();
    assert!(bin.contains("name = \"marginloss\"") && bin.contains("doc = false"), "{bin}");
}
