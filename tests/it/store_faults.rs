//! A corrupt store never crash-loops; a full disk is an error, not a hot loop (issue 14, items 5, 6).
