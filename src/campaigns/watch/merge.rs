//! Merging a fresh [`Scan`] into the campaigns in force: a pure function of
//! the old snapshot and what the folders hold now.
//!
//! - A file that passes replaces its campaign (new file content, or new
//!   templates).
//! - A file that fails keeps its campaign's last good version, with the
//!   templates that version was checked against; its errors are reported.
//! - A deleted file stops its campaign.
//! - Campaigns whose file and templates did not change keep their exact
//!   entry (the same `Arc`).
//! - One id, one file. The file already running an id keeps it while it
//!   exists and still defines that id (or fails and keeps its last good
//!   version); another file claiming the id is reported as a duplicate and
//!   does not run. An id nobody runs yet goes to the first claiming file by
//!   name, as `outreach campaigns check` decides. So copying a campaign file
//!   and forgetting to change its `id:` never takes over the running
//!   campaign, and renaming a file moves its campaign to the new name.
//! - A file whose `id:` changed stops the old id and starts the new one.
//! - When the campaigns folder itself cannot be read, nothing is stopped.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use super::scan::{Digests, Scan};
use super::state::{ActiveCampaign, Snapshot, Version};
use crate::campaigns::spec::{Campaign, CampaignId};
use crate::templates::TemplateSet;
use crate::yaml_file::FileError;

/// What a merge changed, in the order it should be logged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A campaign id that was not in force now is.
    Started { id: CampaignId, file: PathBuf },
    /// A new version of a campaign replaced the one in force.
    Reloaded {
        id: CampaignId,
        file: PathBuf,
        cause: ReloadCause,
    },
    /// The campaign's file passes again and is unchanged since its last good
    /// version, which keeps running.
    Recovered { id: CampaignId, file: PathBuf },
    /// The campaign's file now fails: its last good version keeps running.
    KeptLastGood { id: CampaignId, file: PathBuf },
    /// The campaign is no longer in force.
    Stopped {
        id: CampaignId,
        file: PathBuf,
        reason: StopReason,
    },
    /// An error that the previous snapshot did not have.
    Error(FileError),
    /// A file that had errors has none now.
    Fixed(PathBuf),
}

/// Why a campaign was reloaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadCause {
    FileChanged,
    TemplatesChanged,
    /// The id now comes from another file (the old one was deleted or no
    /// longer defines it).
    Moved {
        from: PathBuf,
    },
}

impl ReloadCause {
    pub fn describe(&self) -> String {
        match self {
            ReloadCause::FileChanged => "file changed".to_owned(),
            ReloadCause::TemplatesChanged => "templates changed".to_owned(),
            ReloadCause::Moved { from } => format!("moved from {}", from.display()),
        }
    }
}

/// Why a campaign stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    FileDeleted,
    /// The file now defines another id.
    IdChanged,
}

impl StopReason {
    pub fn describe(self) -> &'static str {
        match self {
            StopReason::FileDeleted => "file deleted",
            StopReason::IdChanged => "the file now defines another id",
        }
    }
}

/// The snapshot that follows `old` given `scan`, and what changed.
pub fn merge(old: &Snapshot, scan: Scan) -> (Snapshot, Vec<Change>) {
    let Scan {
        loaded,
        duplicates,
        digests,
        folder_readable,
    } = scan;
    let mut errors = loaded.errors;
    let mut changes = Vec::new();
    let generation = old.generation + 1;
    let (campaigns, stale) = if folder_readable {
        // Files that pass alone lost on their id in the load; the rules
        // here decide again which file runs an id, and report the others.
        let dup_files: BTreeSet<PathBuf> = duplicates.iter().map(|c| c.path.clone()).collect();
        errors.retain(|e| !dup_files.contains(&e.file));
        let mut claims: Vec<Campaign> = loaded.campaigns;
        claims.extend(duplicates);
        claims.sort_by(|a, b| a.path.cmp(&b.path));
        let mut m = Merger {
            old,
            generation,
            digests: &digests,
            templates: Arc::new(loaded.templates),
            present: loaded.files.into_iter().collect(),
            campaigns: BTreeMap::new(),
            stale: BTreeSet::new(),
            changes: &mut changes,
            errors: &mut errors,
        };
        m.resolve(claims);
        (m.campaigns, m.stale)
    } else {
        (old.campaigns.clone(), old.stale.clone())
    };
    let errors = by_file(errors);
    for e in errors.values().flatten() {
        if !old.errors_in(&e.file).contains(e) {
            changes.push(Change::Error(e.clone()));
        }
    }
    for file in old.errors.keys() {
        if !errors.contains_key(file) {
            changes.push(Change::Fixed(file.clone()));
        }
    }
    let snapshot = Snapshot {
        generation,
        campaigns,
        stale,
        errors,
        segments: loaded
            .segments
            .map(Arc::new)
            .or_else(|| old.segments.clone()),
    };
    (snapshot, changes)
}

/// What became of the file that ran an id in the old snapshot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    /// Deleted.
    Gone,
    /// Still passes and still defines the id.
    Keeps,
    /// Exists but fails: the last good version keeps running.
    Fails,
    /// Passes with another id.
    Switches,
}

struct Merger<'a> {
    old: &'a Snapshot,
    generation: u64,
    digests: &'a Digests,
    templates: Arc<TemplateSet>,
    present: BTreeSet<PathBuf>,
    campaigns: BTreeMap<CampaignId, Arc<ActiveCampaign>>,
    stale: BTreeSet<CampaignId>,
    changes: &'a mut Vec<Change>,
    errors: &'a mut Vec<FileError>,
}

impl Merger<'_> {
    /// `claims`: one per file that passes alone, sorted by file.
    fn resolve(&mut self, claims: Vec<Campaign>) {
        let claim_of: BTreeMap<PathBuf, CampaignId> = claims
            .iter()
            .map(|c| (c.path.clone(), c.id.clone()))
            .collect();
        let holders: BTreeMap<CampaignId, Holder> = self
            .old
            .campaigns
            .iter()
            .map(|(id, a)| {
                let path = &a.campaign.path;
                let holder = if !self.present.contains(path) {
                    Holder::Gone
                } else {
                    match claim_of.get(path) {
                        Some(claimed) if claimed == id => Holder::Keeps,
                        Some(_) => Holder::Switches,
                        None => Holder::Fails,
                    }
                };
                (id.clone(), holder)
            })
            .collect();
        for (id, holder) in &holders {
            if *holder == Holder::Fails {
                self.keep_last_good(id);
            }
        }
        let mut by_id: BTreeMap<CampaignId, Vec<Campaign>> = BTreeMap::new();
        for c in claims {
            by_id.entry(c.id.clone()).or_default().push(c);
        }
        let mut lost: BTreeSet<PathBuf> = BTreeSet::new();
        for (id, mut claimants) in by_id {
            let winner = if self.stale.contains(&id) {
                None
            } else if holders.get(&id) == Some(&Holder::Keeps) {
                let holder = self.old.campaigns.get(&id).map(|a| &a.campaign.path);
                Some(
                    claimants
                        .iter()
                        .position(|c| Some(&c.path) == holder)
                        .unwrap_or(0),
                )
            } else {
                Some(0)
            };
            let taken_by = match winner {
                Some(i) => claimants.remove(i),
                None => {
                    let by = self.running_file(&id);
                    for c in claimants {
                        self.duplicate(&c, &by);
                        lost.insert(c.path);
                    }
                    continue;
                }
            };
            for c in claimants {
                self.duplicate(&c, &taken_by.path);
                lost.insert(c.path);
            }
            self.install(taken_by);
        }
        for (id, holder) in &holders {
            if self.campaigns.contains_key(id) {
                continue;
            }
            let Some(active) = self.old.campaigns.get(id) else {
                continue;
            };
            let file = active.campaign.path.clone();
            match holder {
                Holder::Switches if lost.contains(&file) => self.keep_last_good(id),
                Holder::Switches => self.changes.push(Change::Stopped {
                    id: id.clone(),
                    file,
                    reason: StopReason::IdChanged,
                }),
                Holder::Gone => self.changes.push(Change::Stopped {
                    id: id.clone(),
                    file,
                    reason: StopReason::FileDeleted,
                }),
                Holder::Keeps | Holder::Fails => {}
            }
        }
    }

    fn running_file(&self, id: &CampaignId) -> PathBuf {
        self.campaigns
            .get(id)
            .map(|a| a.campaign.path.clone())
            .unwrap_or_default()
    }

    fn keep_last_good(&mut self, id: &CampaignId) {
        let Some(active) = self.old.campaigns.get(id) else {
            return;
        };
        self.campaigns.insert(id.clone(), active.clone());
        self.stale.insert(id.clone());
        if !self.old.stale.contains(id) {
            self.changes.push(Change::KeptLastGood {
                id: id.clone(),
                file: active.campaign.path.clone(),
            });
        }
    }

    fn duplicate(&mut self, c: &Campaign, by: &std::path::Path) {
        self.errors.push(FileError {
            file: c.path.clone(),
            line: 1,
            column: 1,
            message: format!(
                "campaign id {} is already used by {}; ids must be unique (set `id:` to another name)",
                c.id,
                by.display()
            ),
        });
    }

    fn install(&mut self, c: Campaign) {
        let id = c.id.clone();
        let version = Version::of(&c, &self.templates, self.digests);
        let previous = self.old.campaigns.get(&id);
        let was_stale = self.old.stale.contains(&id);
        if let Some(p) = previous
            && p.campaign.path == c.path
            && p.version == version
        {
            self.campaigns.insert(id.clone(), p.clone());
            if was_stale {
                self.changes.push(Change::Recovered { id, file: c.path });
            }
            return;
        }
        let change = match previous {
            None => Change::Started {
                id: id.clone(),
                file: c.path.clone(),
            },
            Some(p) => Change::Reloaded {
                id: id.clone(),
                file: c.path.clone(),
                cause: if p.campaign.path != c.path {
                    ReloadCause::Moved {
                        from: p.campaign.path.clone(),
                    }
                } else if p.version.file_differs(&version) {
                    ReloadCause::FileChanged
                } else {
                    ReloadCause::TemplatesChanged
                },
            },
        };
        self.changes.push(change);
        self.campaigns.insert(
            id,
            Arc::new(ActiveCampaign {
                campaign: c,
                templates: self.templates.clone(),
                since: self.generation,
                version,
            }),
        );
    }
}

/// Errors grouped by file, each once, in the order found.
fn by_file(errors: Vec<FileError>) -> BTreeMap<PathBuf, Vec<FileError>> {
    let mut map: BTreeMap<PathBuf, Vec<FileError>> = BTreeMap::new();
    for e in errors {
        let list = map.entry(e.file.clone()).or_default();
        if !list.contains(&e) {
            list.push(e);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::campaigns::file::{CheckEnv, check_source};
    use crate::campaigns::set::Loaded;
    use crate::store::Channel;
    use crate::yaml_file::YamlSource;

    fn templates() -> TemplateSet {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("templates");
        let (set, errors) = TemplateSet::load(&dir);
        assert!(errors.is_empty(), "{errors:?}");
        set
    }

    fn text(id: &str, template: &str, priority: i32) -> String {
        format!(
            "id: {id}\nschedule: \"0 10 * * *\"\ntrigger: {{ type: birthday, days_before: 3 }}\n\
             coupon: {{ kind: amount_off, value: 10, valid_days: 14 }}\n\
             channels: [sms, email]\ntemplate: {template}\npriority: {priority}\n"
        )
    }

    fn path(name: &str) -> PathBuf {
        PathBuf::from("campaigns").join(name)
    }

    /// What the folders hold, turned into a [`Scan`] the way the loader
    /// does: every file checked, the first file by name keeps a shared id in
    /// `loaded`, the others are duplicates.
    struct Folder {
        templates: TemplateSet,
        files: BTreeMap<PathBuf, String>,
        /// A revision per template name: changing it changes its files' digests.
        revisions: BTreeMap<String, u64>,
        /// Templates that fail their check for every campaign using them.
        broken: BTreeSet<String>,
        readable: bool,
    }

    impl Folder {
        fn new() -> Folder {
            Folder {
                templates: templates(),
                files: BTreeMap::new(),
                revisions: BTreeMap::new(),
                broken: BTreeSet::new(),
                readable: true,
            }
        }

        fn put(&mut self, name: &str, text: String) {
            self.files.insert(path(name), text);
        }

        fn remove(&mut self, name: &str) {
            self.files.remove(&path(name));
        }

        fn template_path(&self, name: &str) -> PathBuf {
            self.templates
                .path_of(name, Channel::Sms)
                .map(Path::to_owned)
                .unwrap_or_default()
        }

        fn scan(&self) -> Scan {
            let env = CheckEnv {
                stores: vec![],
                custom_segments: vec![],
                templates: &self.templates,
            };
            let mut digests = Digests::default();
            for name in self.templates.names() {
                let rev = self.revisions.get(&name).copied().unwrap_or(0);
                for ch in [Channel::Sms, Channel::Email, Channel::Wechat] {
                    if let Some(p) = self.templates.path_of(&name, ch) {
                        digests.files.insert(p.to_owned(), rev);
                    }
                }
            }
            let mut loaded = Loaded {
                campaigns: vec![],
                templates: self.templates.clone(),
                segments: None,
                errors: vec![],
                files: vec![],
            };
            let mut duplicates = vec![];
            if !self.readable {
                loaded.errors.push(FileError {
                    file: PathBuf::from("campaigns"),
                    line: 0,
                    column: 0,
                    message: "cannot read the campaigns folder".into(),
                });
            }
            for (p, text) in self.files.iter().filter(|_| self.readable) {
                loaded.files.push(p.clone());
                digests
                    .files
                    .insert(p.clone(), super::super::scan::digest(text.as_bytes()));
                let source = YamlSource {
                    path: p.clone(),
                    text: text.clone(),
                };
                match check_source(&source, &env) {
                    Ok(c) if self.broken.contains(&c.template) => {
                        loaded.errors.push(FileError {
                            file: self.template_path(&c.template),
                            line: 4,
                            column: 7,
                            message: format!("unknown variable (used by {})", p.display()),
                        });
                    }
                    Ok(c) => {
                        if let Some(first) = loaded.campaigns.iter().find(|o| o.id == c.id) {
                            loaded.errors.push(FileError {
                                file: p.clone(),
                                line: 1,
                                column: 1,
                                message: format!(
                                    "campaign id {} is already used by {}",
                                    c.id,
                                    first.path.display()
                                ),
                            });
                            duplicates.push(c);
                        } else {
                            loaded.campaigns.push(c);
                        }
                    }
                    Err(e) => loaded.errors.extend(e),
                }
            }
            Scan {
                loaded,
                duplicates,
                digests,
                folder_readable: self.readable,
            }
        }
    }

    fn apply(old: &Snapshot, folder: &Folder) -> (Snapshot, Vec<Change>) {
        merge(old, folder.scan())
    }

    fn priority(s: &Snapshot, id: &str) -> Option<i32> {
        s.campaign(id).map(|a| a.campaign.priority)
    }

    fn ids(s: &Snapshot) -> Vec<&str> {
        s.campaigns.keys().map(|k| k.as_str()).collect()
    }

    fn id(s: &str) -> CampaignId {
        CampaignId::parse(s).unwrap()
    }

    fn start() -> (Folder, Snapshot) {
        let mut f = Folder::new();
        f.put("birthday.yaml", text("birthday", "birthday", 10));
        f.put("winback.yaml", text("winback", "winback", 5));
        let (s, changes) = apply(&Snapshot::default(), &f);
        assert_eq!(ids(&s), ["birthday", "winback"]);
        assert_eq!(
            changes,
            [
                Change::Started {
                    id: id("birthday"),
                    file: path("birthday.yaml")
                },
                Change::Started {
                    id: id("winback"),
                    file: path("winback.yaml")
                },
            ]
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        (f, s)
    }

    #[test]
    fn a_changed_file_replaces_only_its_campaign() {
        let (mut f, s1) = start();
        f.put("birthday.yaml", text("birthday", "birthday", 11));
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(priority(&s2, "birthday"), Some(11));
        assert_eq!(s2.campaign("birthday").unwrap().since, 2);
        assert!(Arc::ptr_eq(
            s1.campaign("winback").unwrap(),
            s2.campaign("winback").unwrap()
        ));
        assert_eq!(
            changes,
            [Change::Reloaded {
                id: id("birthday"),
                file: path("birthday.yaml"),
                cause: ReloadCause::FileChanged
            }]
        );
        // Nothing changed: nothing to report, every entry the same.
        let (s3, changes) = apply(&s2, &f);
        assert!(changes.is_empty(), "{changes:?}");
        for (k, v) in &s2.campaigns {
            assert!(Arc::ptr_eq(v, &s3.campaigns[k]));
        }
    }

    #[test]
    fn a_broken_file_keeps_the_last_good_version_until_fixed() {
        let (mut f, s1) = start();
        f.put(
            "birthday.yaml",
            text("birthday", "birthday", 12).replace("0 10 * * *", "0 25 * * *"),
        );
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(priority(&s2, "birthday"), Some(10));
        assert!(Arc::ptr_eq(
            s1.campaign("birthday").unwrap(),
            s2.campaign("birthday").unwrap()
        ));
        assert!(s2.stale.contains(&id("birthday")));
        let errors = s2.errors_in(&path("birthday.yaml"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].line, 2);
        assert!(errors[0].message.contains("schedule"), "{errors:?}");
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(
            changes[0],
            Change::KeptLastGood {
                id: id("birthday"),
                file: path("birthday.yaml")
            }
        );
        assert_eq!(changes[1], Change::Error(errors[0].clone()));
        // The same broken file again: reported once, not on every rescan.
        let (s3, changes) = apply(&s2, &f);
        assert!(changes.is_empty(), "{changes:?}");
        assert_eq!(priority(&s3, "birthday"), Some(10));
        assert_eq!(s3.errors, s2.errors);
        // Fixed: the new version runs and the errors are gone.
        f.put("birthday.yaml", text("birthday", "birthday", 13));
        let (s4, changes) = apply(&s3, &f);
        assert_eq!(priority(&s4, "birthday"), Some(13));
        assert!(s4.stale.is_empty());
        assert!(s4.errors.is_empty());
        assert_eq!(
            changes,
            [
                Change::Reloaded {
                    id: id("birthday"),
                    file: path("birthday.yaml"),
                    cause: ReloadCause::FileChanged
                },
                Change::Fixed(path("birthday.yaml")),
            ]
        );
    }

    #[test]
    fn a_broken_new_file_runs_nothing_and_is_reported() {
        let (mut f, s1) = start();
        f.put("new.yaml", "id: new\nschedule: nope\n".into());
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(ids(&s2), ["birthday", "winback"]);
        assert!(!s2.errors_in(&path("new.yaml")).is_empty());
        assert!(
            changes.iter().all(|c| matches!(c, Change::Error(_))),
            "{changes:?}"
        );
    }

    #[test]
    fn a_deleted_file_stops_its_campaign_only() {
        let (mut f, s1) = start();
        f.remove("birthday.yaml");
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(ids(&s2), ["winback"]);
        assert!(Arc::ptr_eq(
            s1.campaign("winback").unwrap(),
            s2.campaign("winback").unwrap()
        ));
        assert_eq!(
            changes,
            [Change::Stopped {
                id: id("birthday"),
                file: path("birthday.yaml"),
                reason: StopReason::FileDeleted
            }]
        );
    }

    #[test]
    fn a_deleted_broken_file_stops_its_last_good_version() {
        let (mut f, s1) = start();
        f.put("birthday.yaml", "id: birthday\n: :\n".into());
        let (s2, _) = apply(&s1, &f);
        assert!(s2.campaign("birthday").is_some());
        f.remove("birthday.yaml");
        let (s3, changes) = apply(&s2, &f);
        assert!(s3.campaign("birthday").is_none());
        assert!(s3.stale.is_empty());
        assert!(s3.errors.is_empty());
        assert!(changes.contains(&Change::Fixed(path("birthday.yaml"))));
    }

    #[test]
    fn a_changed_template_reaches_only_the_campaigns_using_it() {
        let (mut f, s1) = start();
        f.revisions.insert("birthday".into(), 1);
        let (s2, changes) = apply(&s1, &f);
        let (old, new) = (
            s1.campaign("birthday").unwrap(),
            s2.campaign("birthday").unwrap(),
        );
        assert!(!Arc::ptr_eq(&old.templates, &new.templates));
        assert!(Arc::ptr_eq(
            s1.campaign("winback").unwrap(),
            s2.campaign("winback").unwrap()
        ));
        assert_eq!(
            changes,
            [Change::Reloaded {
                id: id("birthday"),
                file: path("birthday.yaml"),
                cause: ReloadCause::TemplatesChanged
            }]
        );
    }

    #[test]
    fn a_broken_template_keeps_the_last_good_templates() {
        let (mut f, s1) = start();
        f.broken.insert("birthday".into());
        f.revisions.insert("birthday".into(), 1);
        let (s2, changes) = apply(&s1, &f);
        let (old, new) = (
            s1.campaign("birthday").unwrap(),
            s2.campaign("birthday").unwrap(),
        );
        assert!(
            Arc::ptr_eq(old, new),
            "the last good version with its templates"
        );
        assert!(s2.stale.contains(&id("birthday")));
        assert!(Arc::ptr_eq(
            s1.campaign("winback").unwrap(),
            s2.campaign("winback").unwrap()
        ));
        let tpl = f.template_path("birthday");
        assert_eq!(s2.errors_in(&tpl).len(), 1);
        assert_eq!(changes.len(), 2, "{changes:?}");
        // Fixed back to what it was: the campaign passes again, unchanged.
        f.broken.clear();
        f.revisions.clear();
        let (s3, changes) = apply(&s2, &f);
        assert!(Arc::ptr_eq(new, s3.campaign("birthday").unwrap()));
        assert!(s3.stale.is_empty());
        assert_eq!(
            changes,
            [
                Change::Recovered {
                    id: id("birthday"),
                    file: path("birthday.yaml")
                },
                Change::Fixed(tpl)
            ]
        );
    }

    #[test]
    fn a_copy_with_the_same_id_does_not_take_over() {
        let (mut f, s1) = start();
        // Sorts before birthday.yaml, so `campaigns check` prefers it; the
        // running file keeps its id all the same.
        f.put("birthday-copy.yaml", text("birthday", "birthday", 99));
        let (s2, changes) = apply(&s1, &f);
        assert!(Arc::ptr_eq(
            s1.campaign("birthday").unwrap(),
            s2.campaign("birthday").unwrap()
        ));
        assert!(s2.errors_in(&path("birthday.yaml")).is_empty());
        let errors = s2.errors_in(&path("birthday-copy.yaml"));
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(
            errors[0]
                .message
                .contains("already used by campaigns/birthday.yaml")
        );
        assert_eq!(changes, [Change::Error(errors[0].clone())]);
        // The original is deleted: the copy takes the id over.
        f.remove("birthday.yaml");
        let (s3, changes) = apply(&s2, &f);
        assert_eq!(priority(&s3, "birthday"), Some(99));
        assert!(s3.errors.is_empty());
        assert_eq!(
            changes,
            [
                Change::Reloaded {
                    id: id("birthday"),
                    file: path("birthday-copy.yaml"),
                    cause: ReloadCause::Moved {
                        from: path("birthday.yaml")
                    }
                },
                Change::Fixed(path("birthday-copy.yaml")),
            ]
        );
    }

    #[test]
    fn a_broken_holder_keeps_its_id_against_a_newcomer() {
        let (mut f, s1) = start();
        f.put("birthday.yaml", "id: birthday\nschedule: [\n".into());
        f.put("zz.yaml", text("birthday", "birthday", 42));
        let (s2, _) = apply(&s1, &f);
        assert_eq!(priority(&s2, "birthday"), Some(10));
        assert!(s2.stale.contains(&id("birthday")));
        assert!(
            s2.errors_in(&path("zz.yaml"))[0]
                .message
                .contains("birthday.yaml")
        );
    }

    #[test]
    fn a_new_id_claimed_twice_goes_to_the_first_file_by_name() {
        let (mut f, s1) = start();
        f.put("b.yaml", text("vip", "birthday", 2));
        f.put("a.yaml", text("vip", "birthday", 1));
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(priority(&s2, "vip"), Some(1));
        assert!(s2.errors_in(&path("a.yaml")).is_empty());
        assert_eq!(s2.errors_in(&path("b.yaml")).len(), 1);
        assert_eq!(changes.len(), 2, "{changes:?}");
    }

    #[test]
    fn a_renamed_file_moves_its_campaign() {
        let (mut f, s1) = start();
        f.remove("birthday.yaml");
        f.put("bday.yaml", text("birthday", "birthday", 10));
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(
            s2.campaign("birthday").unwrap().campaign.path,
            path("bday.yaml")
        );
        assert_eq!(
            changes,
            [Change::Reloaded {
                id: id("birthday"),
                file: path("bday.yaml"),
                cause: ReloadCause::Moved {
                    from: path("birthday.yaml")
                }
            }]
        );
    }

    #[test]
    fn a_new_id_in_a_file_stops_the_old_one() {
        let (mut f, s1) = start();
        f.put("birthday.yaml", text("birthday-2", "birthday", 10));
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(ids(&s2), ["birthday-2", "winback"]);
        assert_eq!(
            changes,
            [
                Change::Started {
                    id: id("birthday-2"),
                    file: path("birthday.yaml")
                },
                Change::Stopped {
                    id: id("birthday"),
                    file: path("birthday.yaml"),
                    reason: StopReason::IdChanged
                },
            ]
        );
    }

    #[test]
    fn a_new_id_taken_by_another_file_keeps_the_old_one() {
        let (mut f, s1) = start();
        f.put("birthday.yaml", text("winback", "birthday", 10));
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(ids(&s2), ["birthday", "winback"]);
        assert!(s2.stale.contains(&id("birthday")));
        assert_eq!(
            s2.campaign("winback").unwrap().campaign.path,
            path("winback.yaml")
        );
        assert!(
            s2.errors_in(&path("birthday.yaml"))[0]
                .message
                .contains("winback.yaml")
        );
        assert!(changes.contains(&Change::KeptLastGood {
            id: id("birthday"),
            file: path("birthday.yaml")
        }));
    }

    #[test]
    fn an_unreadable_folder_stops_nothing() {
        let (mut f, s1) = start();
        f.readable = false;
        let (s2, changes) = apply(&s1, &f);
        assert_eq!(ids(&s2), ["birthday", "winback"]);
        assert_eq!(s2.errors_in(Path::new("campaigns")).len(), 1);
        assert!(
            changes.iter().all(|c| matches!(c, Change::Error(_))),
            "{changes:?}"
        );
    }
}
