//! Segments: per-customer attributes (RFM scores, lifecycle stage, value
//! tier, …) recomputed by the `segments` job, and custom segments defined in
//! `campaigns/segments.yaml` as expressions over those attributes.

pub mod attributes;
pub mod derive;
pub mod explain;
pub mod file;
pub mod job;
pub mod plan;
pub mod rules;
pub mod thresholds;

pub use attributes::{CustomerProfile, SegmentOutcome, SegmentRunReport, SegmentSize};
pub use file::{CustomSegment, SegmentsFile};
pub use plan::{RecomputeMode, SegmentPlan, SegmentState};
