//! What the measuring examples (`convert_floor`, `json_crates`) share: the
//! archives of a folder, and the median of a run's timings.

use std::path::{Path, PathBuf};

/// The `.json` and `.json.gz` archives in `dir`, in name order; an error
/// line when the folder cannot be read or holds none.
pub fn archives_in(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut archives: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "gz" || x == "json"))
        .collect();
    archives.sort();
    if archives.is_empty() {
        return Err(format!(
            "no .json or .json.gz archives in {}",
            dir.display()
        ));
    }
    Ok(archives)
}

/// The median of `runs` (the upper one of an even count).
pub fn median(mut runs: Vec<f64>) -> f64 {
    runs.sort_by(f64::total_cmp);
    runs[runs.len() / 2]
}
