//! Nothing republished can run in a reader: URLs, titles, names; hostile HTML costs what its size costs (issue 14, items 2, 3, 8).
