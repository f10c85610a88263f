//! Provides claims, leases and run completion: the transactions that move a run through
//! its lifecycle (claim + lease, start, renew, finish + retry or dead letter, recovery).
//!
//! Each must-not-half-happen change is one transaction here; callers never stitch them.
