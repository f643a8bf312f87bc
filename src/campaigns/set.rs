//! Every campaign file of the campaigns folder, checked together: the files
//! that pass are kept, the rest are reported, one file never spoils another.

use std::path::{Path, PathBuf};

use super::file::{CheckEnv, check_file};
use super::spec::Campaign;
use crate::expr::CheckContext;
use crate::segments::file::{FILE_NAME as SEGMENTS_FILE, SegmentsFile};
use crate::store::{Store, StoreError};
use crate::templates::TemplateSet;
use crate::yaml_file::FileError;

/// What the campaigns and templates folders hold right now.
pub struct Loaded {
    pub campaigns: Vec<Campaign>,
    pub templates: TemplateSet,
    /// `None` when `segments.yaml` has errors (they are in `errors`).
    pub segments: Option<SegmentsFile>,
    /// Every problem of every file, in file order.
    pub errors: Vec<FileError>,
    /// Campaign files that were read (good or bad).
    pub files: Vec<PathBuf>,
}

impl Loaded {
    pub fn campaign(&self, id: &str) -> Option<&Campaign> {
        self.campaigns.iter().find(|c| c.id.as_str() == id)
    }

    /// Files that have at least one error.
    pub fn failed_files(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.errors.iter().map(|e| e.file.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

/// Whether a folder entry is a campaign file: `*.yaml` / `*.yml`, not
/// `segments.yaml`, not hidden, not an editor's backup or swap file.
pub fn is_campaign_file(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return false;
    };
    if name.starts_with('.') || name.ends_with('~') || name == SEGMENTS_FILE {
        return false;
    }
    name.ends_with(".yaml") || name.ends_with(".yml")
}

/// The campaign files of `dir`, sorted by name.
pub fn campaign_files(dir: &Path) -> Result<Vec<PathBuf>, FileError> {
    let entries = std::fs::read_dir(dir).map_err(|e| FileError {
        file: dir.to_owned(),
        line: 0,
        column: 0,
        message: format!("cannot read the campaigns folder: {e}"),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file() && is_campaign_file(p))
        .collect();
    files.sort();
    Ok(files)
}

/// Check every campaign file in `dir` against `env`.
pub fn check_dir(dir: &Path, env: &CheckEnv<'_>) -> (Vec<Campaign>, Vec<FileError>, Vec<PathBuf>) {
    let files = match campaign_files(dir) {
        Ok(f) => f,
        Err(e) => return (Vec::new(), vec![e], Vec::new()),
    };
    let mut campaigns: Vec<Campaign> = Vec::new();
    let mut errors = Vec::new();
    for path in &files {
        match check_file(path, env) {
            Ok(c) => {
                if let Some(first) = campaigns.iter().find(|o| o.id == c.id) {
                    errors.push(FileError {
                        file: path.clone(),
                        line: 1,
                        column: 1,
                        message: format!(
                            "campaign id {} is already used by {}; ids must be unique (set `id:` to another name)",
                            c.id,
                            first.path.display()
                        ),
                    });
                } else {
                    campaigns.push(c);
                }
            }
            Err(e) => errors.extend(e),
        }
    }
    (campaigns, errors, files)
}

/// Load the templates, `segments.yaml` and every campaign, checked against
/// the stores the database knows.
pub async fn load(
    store: &dyn Store,
    campaigns_dir: &Path,
    templates_dir: &Path,
) -> Result<Loaded, StoreError> {
    let stores: Vec<String> = store
        .stores()
        .await?
        .iter()
        .map(|s| s.code.as_str().to_owned())
        .collect();
    let mut errors = Vec::new();
    let (templates, template_errors) = TemplateSet::load(templates_dir);
    let segments = match SegmentsFile::load(
        campaigns_dir,
        &CheckContext {
            stores: Some(stores.clone()),
        },
    ) {
        Ok(s) => Some(s),
        Err(e) => {
            errors.extend(e);
            None
        }
    };
    let env = CheckEnv {
        stores,
        custom_segments: segments
            .as_ref()
            .map(|s| s.custom.iter().map(|c| c.name.clone()).collect())
            .unwrap_or_default(),
        templates: &templates,
    };
    let (campaigns, campaign_errors, files) = check_dir(campaigns_dir, &env);
    errors.extend(campaign_errors);
    errors.extend(template_errors);
    Ok(Loaded {
        campaigns,
        templates,
        segments,
        errors,
        files,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn which_files_are_campaigns() {
        for yes in ["birthday.yaml", "win-back.yml"] {
            assert!(is_campaign_file(Path::new(yes)), "{yes}");
        }
        for no in [
            "segments.yaml",
            ".birthday.yaml",
            "birthday.yaml~",
            "birthday.yaml.swp",
            ".birthday.yaml.swp",
            "birthday.yaml.tmp",
            "README.md",
            "birthday",
        ] {
            assert!(!is_campaign_file(Path::new(no)), "{no}");
        }
    }
}
