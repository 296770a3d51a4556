//! The guide cannot rot: every C code block of `docs/writing-a-protocol.md` is verbatim in
//! `examples/c-line/c_line.c`, which `c_abi.rs` builds and runs, and every Rust block in
//! `examples/rust-line/src/lib.rs`, which `rust_example.rs` loads and runs, and every TOML block
//! in `templates/protocol/Cargo.toml`, which `rust_example.rs` builds outside the repository.

use switchyard_tests::repository;

/// The fenced blocks of `markdown` in language `language`.
fn code_blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match &mut current {
            None if line.trim() == format!("```{language}") => current = Some(String::new()),
            Some(block) if line.trim() == "```" => {
                blocks.push(std::mem::take(block));
                current = None;
            }
            Some(block) => {
                block.push_str(line);
                block.push('\n');
            }
            None => {}
        }
    }
    blocks
}

/// Asserts the guide has at least `at_least` blocks in `language`, each verbatim in `source`.
fn blocks_are_in(language: &str, at_least: usize, source: &str) {
    let root = repository();
    let guide = std::fs::read_to_string(root.join("docs/writing-a-protocol.md")).expect("guide");
    let example = std::fs::read_to_string(root.join(source)).expect("the example");
    let blocks = code_blocks(&guide, language);
    assert!(
        blocks.len() >= at_least,
        "only {} {language} blocks",
        blocks.len()
    );
    let stale: Vec<&String> = blocks
        .iter()
        .filter(|block| !example.contains(block.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "guide blocks not found in {source}:\n{stale:#?}"
    );
}

#[test]
fn every_c_block_of_the_guide_is_in_the_c_example() {
    blocks_are_in("c", 8, "examples/c-line/c_line.c");
}

#[test]
fn every_rust_block_of_the_guide_is_in_the_rust_example() {
    blocks_are_in("rust", 10, "examples/rust-line/src/lib.rs");
}

#[test]
fn every_toml_block_of_the_guide_is_in_the_template() {
    blocks_are_in("toml", 1, "templates/protocol/Cargo.toml");
}

/// Issue 17, finding 7 and item 5: the docs did not say what a protocol sends back to its
/// clients (the `room` convention), when `notify` is called rather than `broadcast`, or that a
/// `library` value is a path as soon as it has a `/` or ends in `.so`; and the README's quick
/// start did not say how to see the server answer. The default config's HTTP port is the one
/// the quick start's `curl` uses.
#[test]
fn the_docs_answer_what_a_new_author_asked() {
    let root = repository();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).expect(path);
    let guide = read("docs/writing-a-protocol.md");
    for needle in [
        "## What to send back, and the `room` convention",
        "`\"room\": \"<requestId>\"`",
        "## `broadcast` vs `notify`",
        "anything with a `/` or ending in `.so` is a path",
    ] {
        assert!(guide.contains(needle), "the guide lost: {needle}");
    }
    let readme = read("README.md");
    assert!(readme.contains("`curl http://127.0.0.1:7511/_now`"));
    assert!(read("config.toml").contains("[server.protocols.http]\nport = 7511\n"));
}
