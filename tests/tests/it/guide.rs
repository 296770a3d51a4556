//! The guide cannot rot: every C code block of `docs/writing-a-protocol.md` is verbatim in
//! `examples/c-line/c_line.c`, which `c_abi.rs` builds and runs.

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

#[test]
fn every_c_block_of_the_guide_is_in_the_c_example() {
    let root = repository();
    let guide = std::fs::read_to_string(root.join("docs/writing-a-protocol.md")).expect("guide");
    let example =
        std::fs::read_to_string(root.join("examples/c-line/c_line.c")).expect("the C example");
    let blocks = code_blocks(&guide, "c");
    assert!(blocks.len() >= 8, "only {} C blocks", blocks.len());
    let stale: Vec<&String> = blocks
        .iter()
        .filter(|block| !example.contains(block.as_str()))
        .collect();
    assert!(
        stale.is_empty(),
        "guide blocks not found in examples/c-line/c_line.c:\n{stale:#?}"
    );
}
