//! One look at the folders: what each file holds now (a digest per file, to
//! tell whether anything changed) and what the campaign checks make of it.

use std::collections::BTreeMap;
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};

use crate::campaigns::file::{CheckEnv, check_file};
use crate::campaigns::set::{self, Loaded};
use crate::campaigns::spec::Campaign;
use crate::store::{Store, StoreError};

/// What a load of the folders found, ready to be merged into the campaigns
/// in force.
pub struct Scan {
    pub loaded: Loaded,
    /// Campaign files that pass on their own but were left out of `loaded`
    /// because another file claims the same id; which of them runs is decided
    /// by the merge (the file already running the id keeps it).
    pub duplicates: Vec<Campaign>,
    /// The files as they were just before they were loaded.
    pub digests: Digests,
    /// `false` when the campaigns folder itself could not be read: then
    /// nothing is stopped (an unmounted or moved folder is not a deletion).
    pub folder_readable: bool,
}

/// A digest of the content of every watched file of the folders, and which
/// folders could not be read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Digests {
    pub(super) files: BTreeMap<PathBuf, u64>,
    pub(super) unreadable: Vec<PathBuf>,
}

impl Digests {
    /// Read every watched file of `dirs` (not recursive).
    pub fn of_folders(dirs: &[&Path]) -> Digests {
        let mut digests = Digests::default();
        for dir in dirs {
            let Ok(entries) = std::fs::read_dir(dir) else {
                digests.unreadable.push(dir.to_path_buf());
                continue;
            };
            for path in entries.filter_map(Result::ok).map(|e| e.path()) {
                if !is_watched(&path) {
                    continue;
                }
                // A file that vanished since the folder was listed is simply absent.
                if let Ok(bytes) = std::fs::read(&path) {
                    digests.files.insert(path, digest(&bytes));
                }
            }
        }
        digests
    }

    /// The digest of `path`, if it was read.
    pub fn get(&self, path: &Path) -> Option<u64> {
        self.files.get(path).copied()
    }
}

pub(super) fn digest(bytes: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(bytes);
    h.finish()
}

/// Whether a file name in the campaigns or templates folder matters:
/// `*.yaml` / `*.yml`, not hidden, not an editor's backup, swap or temporary
/// file. Campaign files, `segments.yaml` and template files all qualify.
pub fn is_watched(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') {
        return false;
    }
    if [".swp", ".tmp"].iter().any(|s| name.ends_with(s)) {
        return false;
    }
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// Load the folders (see [`set::load`]) and find the files that only failed
/// because their id is taken.
pub async fn scan(
    store: &dyn Store,
    campaigns_dir: &Path,
    templates_dir: &Path,
    digests: Digests,
) -> Result<Scan, StoreError> {
    let loaded = set::load(store, campaigns_dir, templates_dir).await?;
    let folder_readable = !loaded
        .errors
        .iter()
        .any(|e| e.file == campaigns_dir && e.line == 0);
    let failed: Vec<&PathBuf> = loaded
        .files
        .iter()
        .filter(|f| !loaded.campaigns.iter().any(|c| &c.path == *f))
        .collect();
    let mut duplicates = Vec::new();
    if !failed.is_empty() {
        let env = CheckEnv {
            stores: store
                .stores()
                .await?
                .iter()
                .map(|s| s.code.as_str().to_owned())
                .collect(),
            custom_segments: loaded
                .segments
                .as_ref()
                .map(|s| s.custom.iter().map(|c| c.name.clone()).collect())
                .unwrap_or_default(),
            templates: &loaded.templates,
        };
        for path in failed {
            // Passing alone with an id another file holds: a duplicate. A file
            // that passes now with an id nobody else claims changed since the
            // load; the next reload sees it.
            if let Ok(c) = check_file(path, &env)
                && loaded.campaigns.iter().any(|o| o.id == c.id)
            {
                duplicates.push(c);
            }
        }
    }
    Ok(Scan {
        loaded,
        duplicates,
        digests,
        folder_readable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_watched() {
        for yes in [
            "birthday.yaml",
            "win-back.yml",
            "segments.yaml",
            "birthday.sms.yaml",
        ] {
            assert!(is_watched(Path::new(yes)), "{yes}");
        }
        for no in [
            ".birthday.yaml",
            "birthday.yaml~",
            "birthday.yaml.swp",
            ".birthday.yaml.swp",
            "birthday.yaml.tmp",
            "README.md",
            "4913",
        ] {
            assert!(!is_watched(Path::new(no)), "{no}");
        }
    }

    #[test]
    fn digests_change_with_content_and_missing_folders() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.yaml");
        std::fs::write(&file, "name: a\n").unwrap();
        std::fs::write(dir.path().join("a.yaml.tmp"), "junk").unwrap();
        let missing = dir.path().join("nope");
        let first = Digests::of_folders(&[dir.path(), &missing]);
        assert_eq!(first.files.len(), 1);
        assert_eq!(first.unreadable, vec![missing.clone()]);
        assert_eq!(first, Digests::of_folders(&[dir.path(), &missing]));
        std::fs::write(&file, "name: b\n").unwrap();
        let second = Digests::of_folders(&[dir.path(), &missing]);
        assert_ne!(first.get(&file), second.get(&file));
        std::fs::create_dir(&missing).unwrap();
        assert!(
            Digests::of_folders(&[dir.path(), &missing])
                .unreadable
                .is_empty()
        );
    }
}
