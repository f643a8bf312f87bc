//! A deterministic synthetic restaurant chain for demos and benchmarks: stores, customers
//! with Chinese names and contact details, two years of orders, and CSV / JSON Lines export.

pub mod export;
pub mod generate;
pub mod names;

pub use export::{write_csv, write_csv_with_stores, write_jsonl, write_jsonl_with_stores};
pub use generate::{Generator, Persona, demo_stores};
