//! Where requests may go: no request to a private address, on any hop (issue 14, item 1).
