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
