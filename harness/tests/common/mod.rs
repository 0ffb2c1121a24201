//! What the golden-sample tests share: the samples themselves.
use std::path::PathBuf;

/// `harness/tests/splats/*.txt`, sorted by name: (file stem, whole text).
pub fn splat_files() -> Vec<(String, String)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/splats");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("harness/tests/splats exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "txt"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_stem().expect("a file name").to_string_lossy().into_owned(), text)
        })
        .collect()
}

/// A sample's report without its `# key: value` header lines.
pub fn body(text: &str) -> String {
    text.lines().filter(|l| !l.starts_with("# ")).collect::<Vec<_>>().join("\n")
}
