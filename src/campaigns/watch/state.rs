//! The campaigns in force: what the scheduler and the ops API read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::scan::Digests;
use crate::campaigns::spec::{Campaign, CampaignId};
use crate::segments::file::SegmentsFile;
use crate::templates::TemplateSet;
use crate::yaml_file::FileError;

/// One campaign as it runs: the last version of its file that passed, with
/// the templates it was checked against. A template that breaks later does
/// not reach it: it keeps this set until its next good version.
#[derive(Debug)]
pub struct ActiveCampaign {
    pub campaign: Campaign,
    pub templates: Arc<TemplateSet>,
    /// The generation of the snapshot that first held this version.
    pub since: u64,
    pub(super) version: Version,
}

/// The files a campaign version was checked from and their digests: its own
/// file and the template file of each of its channels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Version(Vec<(PathBuf, Option<u64>)>);

impl Version {
    pub(super) fn of(campaign: &Campaign, templates: &TemplateSet, digests: &Digests) -> Version {
        let mut files = vec![(campaign.path.clone(), digests.get(&campaign.path))];
        for ch in &campaign.channels {
            if let Some(p) = templates.path_of(&campaign.template, *ch) {
                files.push((p.to_owned(), digests.get(p)));
            }
        }
        Version(files)
    }

    /// Whether the campaign's own file differs between the two versions.
    pub(super) fn file_differs(&self, other: &Version) -> bool {
        self.0.first() != other.0.first()
    }
}

/// The campaigns in force and the problems of the files, as of one reload.
/// Readers hold an `Arc<Snapshot>`: it never changes under them.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// 0 before the first load, then one more per change.
    pub generation: u64,
    pub campaigns: BTreeMap<CampaignId, Arc<ActiveCampaign>>,
    /// Campaigns running their last good version because their file
    /// currently fails.
    pub stale: BTreeSet<CampaignId>,
    /// The current errors, by the file they are in (campaign files, template
    /// files, `segments.yaml`, or a folder that cannot be read).
    pub errors: BTreeMap<PathBuf, Vec<FileError>>,
    /// The last good `segments.yaml` (`None` before one loaded).
    pub segments: Option<Arc<SegmentsFile>>,
}

impl Snapshot {
    /// The campaign `id`, if it is in force.
    pub fn campaign(&self, id: &str) -> Option<&Arc<ActiveCampaign>> {
        let id = CampaignId::parse(id).ok()?;
        self.campaigns.get(&id)
    }

    /// The campaign in force that comes from `file`.
    pub fn from_file(&self, file: &Path) -> Option<&Arc<ActiveCampaign>> {
        self.campaigns.values().find(|a| a.campaign.path == file)
    }

    /// The errors of `file` (empty when it has none).
    pub fn errors_in(&self, file: &Path) -> &[FileError] {
        self.errors.get(file).map(Vec::as_slice).unwrap_or_default()
    }

    /// Every current error, by file.
    pub fn all_errors(&self) -> impl Iterator<Item = &FileError> {
        self.errors.values().flatten()
    }
}
