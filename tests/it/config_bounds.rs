//! Every config value is bounded; reloads that fail keep the old config; memory stays bounded (issue 14, items 7, 9, 10).
