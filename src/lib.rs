//! outreach: a marketing-automation worker for restaurant chains, breakfast
//! shops, bakeries and milk-tea shops. See README.md.

pub mod campaigns;
pub mod cli;
pub mod clock;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod demo;
pub mod dispatch;
pub mod domain;
pub mod expr;
pub mod http;
pub mod import;
pub mod memory;
pub mod metrics;
pub mod scheduler;
pub mod segments;
pub mod store;
pub mod telemetry;
pub mod templates;
pub mod unsubscribe;
pub mod yaml_file;
