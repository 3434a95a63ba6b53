//! Connections cannot be hoarded: write timeout and per-address caps (issue 14, item 4).
