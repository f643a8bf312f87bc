//! The provider clients, one module each.
